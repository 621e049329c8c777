// A shell command: the command, its exit code, and what it printed.
import type { Message, ToolCall } from "agent-stream";
import { field, outputText, text } from "./kinds";
import { Output } from "./Output";

export function ShellView({ call, result }: { call: ToolCall; result: Message | undefined }) {
  const command = field(call.input, "command");
  const shown = Array.isArray(command) ? command.join(" ") : (text(command) ?? JSON.stringify(call.input));
  const output = result?.tool_result?.output;
  const exitCode = field(output ?? null, "exit_code");
  return (
    <div className="shell">
      <pre className="command">
        <span aria-hidden="true">$ </span>
        {shown}
      </pre>
      {typeof exitCode === "number" && (
        <span className={`badge ${exitCode === 0 ? "ok" : "bad"}`} data-exit-code={exitCode}>
          exit {exitCode}
        </span>
      )}
      <Output text={outputText(output) || (result?.tool_result?.error ?? "")} />
    </div>
  );
}
