// The scrolling list of messages. It follows the stream while the reader is
// at the bottom and stays put while they read above ("Jump to latest" brings
// them back). Only the top-level messages are listed: a tool's answer and a
// subagent's messages show inside the card of their call. The list renders
// again only when a top-level message comes or goes; each row follows its
// own message, so a streaming delta renders one row. A long session renders
// its latest rows first and grows upward as the reader scrolls near the top,
// so a reload paints at once whatever the history.
import { memo, useLayoutEffect, useRef, useState } from "react";
import { useMessage, useTopLevelIds } from "agent-stream/react";
import { MessageView } from "./MessageView";

/** How close to the bottom (px) still counts as following the stream. */
const FOLLOW_SLACK_PX = 48;
/** Rows rendered at first (a few screens), and added each time the reader nears the top. */
const FIRST_ROWS = 80;
const MORE_ROWS = 200;
/** How close to the top (px) asks for earlier rows. */
const GROW_WITHIN_PX = 600;

type Retry = (content: string, clientMessageId: string) => void;

export const MessageList = memo(function MessageList(props: { sessionId: string; onRetry: Retry }) {
  const ids = useTopLevelIds(props.sessionId);
  const scroller = useRef<HTMLDivElement>(null);
  const rows = useRef<HTMLDivElement>(null);
  const [following, setFollowing] = useState(true);
  // The first row shown, fixed once the list has rows: new rows add below
  // it, and nothing above the reader goes away while they read. Held by id,
  // so that rows removed or moved above it do not shift it; when it goes
  // itself, the list starts again from its latest rows.
  const [firstId, setFirstId] = useState<string | null>(null);
  const held = firstId === null ? -1 : ids.indexOf(firstId);
  const hidden = held >= 0 ? held : Math.max(0, ids.length - FIRST_ROWS);
  if (held < 0 && ids.length > 0 && firstId !== ids[hidden]) setFirstId(ids[hidden]);
  /** The distance from the bottom to keep while earlier rows are added. */
  const keepFromBottom = useRef<number | null>(null);

  const showEarlier = () => {
    const element = scroller.current;
    if (!element || hidden === 0 || keepFromBottom.current !== null) return;
    keepFromBottom.current = element.scrollHeight - element.scrollTop;
    setFirstId(ids[Math.max(0, hidden - MORE_ROWS)]);
  };

  useLayoutEffect(() => {
    const element = scroller.current;
    if (element && keepFromBottom.current !== null) element.scrollTop = element.scrollHeight - keepFromBottom.current;
    keepFromBottom.current = null;
  }, [firstId]);

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
    if (element.scrollTop < GROW_WITHIN_PX) showEarlier();
  };

  return (
    <div className="messages-wrap">
      <div className="messages" ref={scroller} onScroll={onScroll} role="log" aria-label="Messages" aria-live="off">
        <div className="rows" ref={rows}>
          {ids.length === 0 && <p className="notice">No messages yet. Say hello below.</p>}
          {hidden > 0 && (
            <button type="button" className="earlier" onClick={showEarlier}>
              {hidden} earlier messages
            </button>
          )}
          {(hidden > 0 ? ids.slice(hidden) : ids).map((id) => (
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
});

/** One message of the session, following that message alone. */
export const MessageRow = memo(function MessageRow(props: { sessionId: string; id: string; onRetry: Retry }) {
  const message = useMessage(props.sessionId, props.id);
  return message ? <MessageView sessionId={props.sessionId} message={message} onRetry={props.onRetry} /> : null;
});
