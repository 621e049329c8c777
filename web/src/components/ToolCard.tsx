// A tool call as a collapsible card: its state (preparing, running,
// succeeded, failed, denied, cancelled), name, label and duration; inside,
// the view its tool has (shell, diff, read, todo list, a subagent's own
// messages) or, for other tools, the input and output as JSON.
import { useEffect, useState } from "react";
import type { Message, ToolCall } from "agent-stream";
import { useToolAnswer, useToolChildIds } from "agent-stream/react";
import { DiffView } from "./tools/DiffView";
import { field, isDenial, outputText, summaryLabel, text, toolKind } from "./tools/kinds";
import { ReadView } from "./tools/ReadView";
import { ShellView } from "./tools/ShellView";
import { TodoView } from "./tools/TodoView";
import { MessageRow } from "./MessageList";

interface Props {
  sessionId: string;
  call: ToolCall | null;
  /** The answer, for a tool message shown without its call. */
  result?: Message;
}

export function ToolCard({ sessionId, call, result: given }: Props) {
  const answer = useToolAnswer(sessionId, call?.id ?? "");
  const result = given ?? answer;
  const error = call?.error ?? result?.tool_result?.error;
  const base = call?.state ?? (result?.tool_result?.error ? "failed" : "succeeded");
  const state = base === "failed" && isDenial(error) ? "denied" : base;
  const busy = state === "running" || state === "preparing";
  const kind = call ? toolKind(call.name) : "generic";
  return (
    <details className={`tool-card ${state}`} data-state={state} data-kind={kind} open={kind === "subagent" && busy}>
      <summary>
        {busy ? <span className="spinner" aria-hidden="true" /> : <span className="tool-icon" aria-hidden="true">⚙</span>}
        <span className="tool-name">{call?.name ?? "tool"}</span>
        {call && <span className="tool-label">{summaryLabel(call)}</span>}
        <span className={`badge ${state === "succeeded" ? "ok" : busy ? "" : "bad"}`}>{state}</span>
        <Duration call={call} result={result} />
      </summary>
      {call && kind === "shell" && <ShellView call={call} result={result} />}
      {call && kind === "edit" && <DiffView call={call} />}
      {call && kind === "read" && <ReadView call={call} result={result} />}
      {call && kind === "todo" && <TodoView call={call} result={result} />}
      {call && kind === "subagent" && <Subagent sessionId={sessionId} call={call} result={result} />}
      {kind === "generic" && <Generic call={call} result={result} />}
      {error && kind !== "shell" && <p className="tool-error">{error}</p>}
    </details>
  );
}

function Generic({ call, result }: { call: ToolCall | null; result: Message | undefined }) {
  const output = result?.tool_result;
  return (
    <>
      {call && (
        <section>
          <h4>Input</h4>
          <pre>{JSON.stringify(call.input, null, 2)}</pre>
        </section>
      )}
      {output && (
        <section>
          <h4>Output{output.truncated ? " (truncated)" : ""}</h4>
          <pre>{JSON.stringify(output.output, null, 2)}</pre>
        </section>
      )}
    </>
  );
}

/** A subagent's call: its task, then its own messages, nested. */
function Subagent(props: { sessionId: string; call: ToolCall; result: Message | undefined }) {
  const prompt = text(field(props.call.input, "prompt"));
  const children = useToolChildIds(props.sessionId, props.call.id);
  return (
    <div className="subagent">
      {prompt && <p className="muted">{prompt}</p>}
      <div className="nested" aria-label="Subagent messages">
        {children.map((id) => (
          <MessageRow key={id} sessionId={props.sessionId} id={id} onRetry={noRetry} />
        ))}
      </div>
      {props.result?.tool_result && <pre className="terminal">{outputText(props.result.tool_result.output)}</pre>}
    </div>
  );
}

const noRetry = () => {};

/** How long the call took; while it runs, how long it has been running. */
function Duration({ call, result }: { call: ToolCall | null; result: Message | undefined }) {
  const running = call?.state === "running";
  const now = useNow(running);
  if (call?.state === "preparing") return <span className="duration">preparing…</span>;
  const started = call?.started_at;
  const ended = result?.created_at ?? (running ? now : undefined);
  if (started === undefined || ended === undefined) return <span className="duration">—</span>;
  return <span className="duration">{formatDuration(ended - started)}</span>;
}

/** The time, every second while `ticking`. */
function useNow(ticking: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!ticking) return;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [ticking]);
  return now;
}

function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.max(0, ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}
