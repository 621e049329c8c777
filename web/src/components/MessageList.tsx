// The scrolling list of messages. It follows the stream while the reader is
// at the bottom and stays put while they read above ("Jump to latest" brings
// them back). Tool messages are shown inside the card of the call they answer.
import { useLayoutEffect, useMemo, useRef, useState } from "react";
import type { Message } from "agent-stream";
import { MessageView } from "./MessageView";

/** How close to the bottom (px) still counts as following the stream. */
const FOLLOW_SLACK_PX = 48;

export function MessageList(props: { messages: Message[]; onRetry: (content: string, clientMessageId: string) => void }) {
  const { messages } = props;
  const scroller = useRef<HTMLDivElement>(null);
  const [following, setFollowing] = useState(true);
  const { results, calls } = useMemo(() => toolIndex(messages), [messages]);

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
          message.role === "tool" && message.tool_result && calls.has(message.tool_result.tool_call_id) ? null : (
            <MessageView
              key={message.id}
              message={message}
              results={message.tool_calls.length ? message.tool_calls.map((call) => results.get(call.id)) : NO_RESULTS}
              onRetry={props.onRetry}
            />
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

const NO_RESULTS: (Message | undefined)[] = [];

/** In one pass: the tool message answering each call (by call id), and the
 *  ids of the calls in the list (their results show inside their cards). */
function toolIndex(messages: Message[]): { results: Map<string, Message>; calls: Set<string> } {
  const results = new Map<string, Message>();
  const calls = new Set<string>();
  for (const message of messages) {
    if (message.tool_result) results.set(message.tool_result.tool_call_id, message);
    for (const call of message.tool_calls) calls.add(call.id);
  }
  return { results, calls };
}
