// One session: its header (name, run status, connection), the message list,
// and the composer.
import { useCallback, useEffect, useSyncExternalStore } from "react";
import { useMessageIds, useSession, useStreamClient } from "agent-stream/react";
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
  const pending = useLastSendPending(props.sessionId);
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

/** Whether the session's last message is a send still pending. A boolean,
 *  so a streaming reply does not render the pane on every delta. */
function useLastSendPending(sessionId: string): boolean {
  const client = useStreamClient();
  const lastId = useMessageIds(sessionId).at(-1) ?? "";
  const subscribe = useCallback(
    (notify: () => void) => client.watchMessage(sessionId, lastId, notify),
    [client, sessionId, lastId],
  );
  const read = () => client.message(sessionId, lastId)?.status === "pending";
  return useSyncExternalStore(subscribe, read, read);
}
