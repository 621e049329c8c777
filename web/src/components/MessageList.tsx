// The scrolling list of messages. It follows the stream while the reader is
// at the bottom and stays put while they read above ("Jump to latest" brings
// them back). Only the top-level messages are listed: a tool's answer and a
// subagent's messages show inside the card of their call. The list renders
// again only when a top-level message comes or goes; each row follows its
// own message, so a streaming delta renders one row.
import { memo, useLayoutEffect, useRef, useState } from "react";
import { useMessage, useTopLevelIds } from "agent-stream/react";
import { MessageView } from "./MessageView";

/** How close to the bottom (px) still counts as following the stream. */
const FOLLOW_SLACK_PX = 48;

type Retry = (content: string, clientMessageId: string) => void;

export function MessageList(props: { sessionId: string; onRetry: Retry }) {
  const ids = useTopLevelIds(props.sessionId);
  const scroller = useRef<HTMLDivElement>(null);
  const rows = useRef<HTMLDivElement>(null);
  const [following, setFollowing] = useState(true);

  // Rows grow as they stream without this list rendering: follow their height.
  useLayoutEffect(() => {
    const [element, content] = [scroller.current, rows.current];
    if (!element || !content || !following) return;
    const toBottom = () => (element.scrollTop = element.scrollHeight);
    toBottom();
    const observer = new ResizeObserver(toBottom);
    observer.observe(content);
    return () => observer.disconnect();
  }, [following]);

  const onScroll = () => {
    const element = scroller.current;
    if (!element) return;
    setFollowing(element.scrollHeight - element.scrollTop - element.clientHeight < FOLLOW_SLACK_PX);
  };

  return (
    <div className="messages-wrap">
      <div className="messages" ref={scroller} onScroll={onScroll} role="log" aria-label="Messages" aria-live="off">
        <div className="rows" ref={rows}>
          {ids.length === 0 && <p className="notice">No messages yet. Say hello below.</p>}
          {ids.map((id) => (
            <MessageRow key={id} sessionId={props.sessionId} id={id} onRetry={props.onRetry} />
          ))}
        </div>
      </div>
      {!following && (
        <button type="button" className="jump" onClick={() => setFollowing(true)}>
          Jump to latest ↓
        </button>
      )}
    </div>
  );
}

/** One message of the session, following that message alone. */
export const MessageRow = memo(function MessageRow(props: { sessionId: string; id: string; onRetry: Retry }) {
  const message = useMessage(props.sessionId, props.id);
  return message ? <MessageView sessionId={props.sessionId} message={message} onRetry={props.onRetry} /> : null;
});
