// The scrolling list of messages. It follows the stream while the reader is
// at the bottom and stays put while they read above ("Jump to latest" brings
// them back). Tool messages are shown inside the card of the call they
// answer, and a subagent's messages inside the card of its call.
import { useLayoutEffect, useMemo, useRef, useState } from "react";
import type { Message } from "agent-stream";
import { MessageView } from "./MessageView";
import { shownInCard, toolIndex } from "./toolIndex";

/** How close to the bottom (px) still counts as following the stream. */
const FOLLOW_SLACK_PX = 48;

export function MessageList(props: { messages: Message[]; onRetry: (content: string, clientMessageId: string) => void }) {
  const { messages } = props;
  const scroller = useRef<HTMLDivElement>(null);
  const [following, setFollowing] = useState(true);
  const index = useMemo(() => toolIndex(messages), [messages]);

  useLayoutEffect(() => {
    const element = scroller.current;
    if (element && following) element.scrollTop = element.scrollHeight;
  }, [messages, following]);

  const onScroll = () => {
    const element = scroller.current;
    if (!element) return;
    setFollowing(element.scrollHeight - element.scrollTop - element.clientHeight < FOLLOW_SLACK_PX);
  };

  return (
    <div className="messages-wrap">
      <div className="messages" ref={scroller} onScroll={onScroll} role="log" aria-label="Messages" aria-live="off">
        {messages.length === 0 && <p className="notice">No messages yet. Say hello below.</p>}
        {messages.map((message) =>
          shownInCard(message, index) ? null : (
            <MessageView key={message.id} message={message} index={message.tool_calls.length ? index : null} onRetry={props.onRetry} />
          ),
        )}
      </div>
      {!following && (
        <button type="button" className="jump" onClick={() => setFollowing(true)}>
          Jump to latest ↓
        </button>
      )}
    </div>
  );
}
