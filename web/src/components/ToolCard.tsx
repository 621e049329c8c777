// A tool call as a collapsible card: name, state, duration; inside, the input
// and the output (or the error).
import type { Message, ToolCall } from "agent-stream";

export function ToolCard({ call, result }: { call: ToolCall | null; result: Message | undefined }) {
  const state = call?.state ?? (result?.tool_result?.error ? "failed" : "succeeded");
  const name = call?.name ?? "tool";
  const output = result?.tool_result;
  const duration = call?.started_at !== undefined && result?.created_at !== undefined ? result.created_at - call.started_at : undefined;
  return (
    <details className={`tool-card ${state}`} data-state={state}>
      <summary>
        {state === "running" || state === "preparing" ? <span className="spinner" aria-hidden="true" /> : <span className="tool-icon" aria-hidden="true">⚙</span>}
        <span className="tool-name">{name}</span>
        <span className={`badge ${state === "succeeded" ? "ok" : state === "running" || state === "preparing" ? "" : "bad"}`}>{state}</span>
        {duration !== undefined && <span className="duration">{formatDuration(duration)}</span>}
      </summary>
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
      {(call?.error ?? output?.error) && <p className="tool-error">{call?.error ?? output?.error}</p>}
    </details>
  );
}

function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.max(0, ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}
