// One session: its header (name, run status, connection), the message list,
// and the composer.
import { useCallback, useEffect } from "react";
import { useMessage, useMessageIds, useSession } from "agent-stream/react";
import { Composer } from "./Composer";
import { ConnectionIndicator } from "./ConnectionIndicator";
import { MessageList } from "./MessageList";
import { formatCost } from "./MessageView";

export function ChatPane(props: { sessionId: string; provider: string | null; onNamed: () => Promise<void> }) {
  const stream = useSession(props.sessionId);
  const { name, send } = stream;
  const { onNamed } = props;
  // A rename (from any tab) arrives as a frame; the sidebar list follows.
  useEffect(() => {
    if (name) void onNamed();
  }, [name, onNamed]);
  // Stable across renders: every message view is memoised on its props.
  const retry = useCallback((content: string, id: string) => void send(content, id), [send]);
  const last = useMessage(props.sessionId, useMessageIds(props.sessionId).at(-1) ?? "");
  const pending = last?.status === "pending";
  const running = stream.status === "running";
  const { model, costUsd: cost } = stream;
  return (
    <section className="chat" aria-label={name ?? props.sessionId}>
      <header className="chat-head">
        <h1>{name ?? props.sessionId}</h1>
        {(props.provider || model) && (
          <span className="agent" title="Provider and model">
            {[props.provider, model].filter(Boolean).join(" · ")}
          </span>
        )}
        {cost !== null && (
          <span className="cost" title="What this session has cost">
            {formatCost(cost)}
          </span>
        )}
        {running && (
          <span className="run-status" role="status">
            <span className="spinner" aria-hidden="true" /> Working…
          </span>
        )}
        <ConnectionIndicator connection={stream.connection} resyncing={stream.resyncing} />
      </header>
      {stream.error && (
        <p className="notice error" role="alert">
          {stream.error}
        </p>
      )}
      <MessageList sessionId={props.sessionId} onRetry={retry} />
      <Composer
        busy={running || pending}
        running={running}
        onSend={(content) => void stream.send(content)}
        onAbort={() => void stream.abort()}
      />
    </section>
  );
}
