// In one pass over a session's messages: the tool message answering each
// call, the calls in the list (their results show inside their cards), and
// each subagent call's own messages (shown nested in its card).
import type { Message } from "agent-stream";

export interface ToolIndex {
  results: Map<string, Message>;
  calls: Set<string>;
  children: Map<string, Message[]>;
}

export function toolIndex(messages: Message[]): ToolIndex {
  const results = new Map<string, Message>();
  const calls = new Set<string>();
  const children = new Map<string, Message[]>();
  for (const message of messages) {
    if (message.tool_result) results.set(message.tool_result.tool_call_id, message);
    for (const call of message.tool_calls) calls.add(call.id);
    const parent = message.parent_tool_call_id;
    if (parent && !message.tool_result) {
      const list = children.get(parent);
      if (list) list.push(message);
      else children.set(parent, [message]);
    }
  }
  return { results, calls, children };
}

/** Whether the message shows inside a card rather than in the list. */
export function shownInCard(message: Message, index: ToolIndex): boolean {
  if (message.tool_result && index.calls.has(message.tool_result.tool_call_id)) return true;
  return !!message.parent_tool_call_id && index.calls.has(message.parent_tool_call_id);
}
