// One session: its header (name, run status, connection), the message list,
// and the composer.
import { useCallback, useEffect } from "react";
import { useSessionStream } from "agent-stream/react";
import { Composer } from "./Composer";
import { ConnectionIndicator } from "./ConnectionIndicator";
import { MessageList } from "./MessageList";

export function ChatPane(props: { sessionId: string; onNamed: () => Promise<void> }) {
  const stream = useSessionStream(props.sessionId);
  const { name, send } = stream;
  const { onNamed } = props;
  // A rename (from any tab) arrives as a frame; the sidebar list follows.
  useEffect(() => {
    if (name) void onNamed();
  }, [name, onNamed]);
  // Stable across renders: every message view is memoised on its props.
  const retry = useCallback((content: string, id: string) => void send(content, id), [send]);
  const pending = stream.messages.length > 0 && stream.messages[stream.messages.length - 1].status === "pending";
  const running = stream.status === "running";
  return (
    <section className="chat" aria-label={name ?? props.sessionId}>
      <header className="chat-head">
        <h1>{name ?? props.sessionId}</h1>
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
      <MessageList messages={stream.messages} onRetry={retry} />
      <Composer
        busy={running || pending}
        running={running}
        onSend={(content) => void stream.send(content)}
        onAbort={() => void stream.abort()}
      />
    </section>
  );
}
