// What a run's UIMessage should hold, built from the server's REST snapshot
// (independently of the server's mapping), and the parts of an assembled
// UIMessage in the same plain shape.

/** The UIMessage of the run answering the user message `clientMessageId`. */
export function expectedMessage(snapshot, clientMessageId) {
  const start = snapshot.messages.findIndex((m) => m.client_message_id === clientMessageId);
  const after = snapshot.messages.slice(start + 1);
  const next = after.findIndex((m) => m.role === "user");
  const run = (next < 0 ? after : after.slice(0, next)).filter((m) => !m.parent_tool_call_id);
  const results = new Map(run.filter((m) => m.tool_result).map((m) => [m.tool_result.tool_call_id, m.tool_result]));
  const parts = [{ type: "step-start" }];
  let answered = false;
  for (const message of run) {
    if (message.role === "reasoning" && message.content) parts.push({ type: "reasoning", text: message.content });
    if (message.role === "tool") answered = true;
    if (message.role !== "assistant") continue;
    if (answered) parts.push({ type: "step-start" });
    answered = false;
    if (message.content) parts.push({ type: "text", text: message.content });
    for (const call of message.tool_calls) {
      const result = results.get(call.id);
      const outcome = !result
        ? { state: "input-available" }
        : result.error
          ? { state: "output-error", errorText: result.error }
          : { state: "output-available", output: result.output };
      parts.push({ type: "dynamic-tool", toolCallId: call.id, toolName: call.name, input: call.input, ...outcome });
    }
  }
  return { parts };
}

/** An assembled UIMessage's parts, keeping what the snapshot can say. */
export function uiParts(message) {
  return message.parts.map((part) => {
    switch (part.type) {
      case "text":
      case "reasoning":
        return { type: part.type, text: part.text };
      case "dynamic-tool": {
        const outcome =
          part.state === "output-error"
            ? { errorText: part.errorText }
            : part.state === "output-available"
              ? { output: part.output }
              : {};
        return { type: part.type, toolCallId: part.toolCallId, toolName: part.toolName, input: part.input, state: part.state, ...outcome };
      }
      default:
        return { type: part.type };
    }
  });
}
