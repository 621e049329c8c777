// Reads a server-sent event stream from a fetch body: the events of the
// Durable Streams read of a session (`GET /v1/sessions/{id}/stream?live=sse`),
// which the transport follows when its WebSocket cannot connect.

/** One event: its type and its data lines joined with newlines. */
export interface SseEvent {
  event: string;
  data: string;
}

/** Calls `onEvent` for each event of `body` until it ends or `signal` aborts. */
export async function readEvents(
  body: ReadableStream<Uint8Array>,
  onEvent: (event: SseEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  const reader = body.getReader();
  const abort = () => void reader.cancel().catch(() => undefined);
  signal.addEventListener("abort", abort, { once: true });
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const parsed = parseBlock(block);
        if (parsed) onEvent(parsed);
      }
    }
  } finally {
    signal.removeEventListener("abort", abort);
  }
}

function parseBlock(block: string): SseEvent | null {
  let event = "message";
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
  }
  return data.length > 0 ? { event, data: data.join("\n") } : null;
}

/** The Durable Streams offset after `seq`. */
export function offsetAfter(seq: number): string {
  return `${"0".repeat(16)}_${String(seq).padStart(16, "0")}`;
}
