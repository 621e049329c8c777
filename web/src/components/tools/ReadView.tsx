// A file read: the path, and a folded excerpt of what came back.
import type { Message, ToolCall } from "agent-stream";
import { field, outputText, text } from "./kinds";

/** Lines of the excerpt. */
const EXCERPT_LINES = 40;

export function ReadView({ call, result }: { call: ToolCall; result: Message | undefined }) {
  const path = text(field(call.input, "file_path")) ?? text(field(call.input, "path")) ?? "";
  const lines = outputText(result?.tool_result?.output).replace(/\n$/, "").split("\n");
  return (
    <div className="read">
      <code className="path">{path}</code>
      {result && !result.tool_result?.error && (
        <details className="excerpt">
          <summary>
            {lines.length} line{lines.length === 1 ? "" : "s"}
          </summary>
          <pre>{lines.slice(0, EXCERPT_LINES).join("\n")}</pre>
          {lines.length > EXCERPT_LINES && <p className="muted">… {lines.length - EXCERPT_LINES} more</p>}
        </details>
      )}
    </div>
  );
}
