// The plain Node.js server `loadgen` measures stream-server against, built
// the way agent UIs commonly build this: the `ws` library, an in-memory
// registry with a replay array of the last 5,000 events per run, and a
// JSON-lines file per session, written after each event is published (so it
// is not durable: a crash loses what was sent and not yet written).
//
// It speaks the slice of the wire protocol loadgen uses: `hello`, a
// `subscribe` answered by `subscribed` and a snapshot, `POST
// /v1/sessions/{id}/messages`, and the demo agent's script with its in-band
// latency probes, one WebSocket message per event. It takes stream-server's
// flags (`--bind`, `--data-dir`, `--demo-*`) and ignores the others.

import { createWriteStream, mkdirSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { WebSocketServer } from "ws";

const REPLAY_EVENTS = 5_000;
const TOOL_BEATS = 10;
const WORDS = "streaming frames arrive in order, each one applied once; a reconnect resumes from the cursor cleanly."
  .split(" ");

const flags = new Map();
for (let i = 2; i < process.argv.length; i += 2) flags.set(process.argv[i], process.argv[i + 1]);
const [host, port] = (flags.get("--bind") ?? "127.0.0.1:0").split(":");
const dataDir = flags.get("--data-dir") ?? "data-baseline";
const deltaMs = Number(flags.get("--demo-delta-ms") ?? 30);
const replyWords = Number(flags.get("--demo-reply-words") ?? 60);
const probeEvery = Number(flags.get("--demo-probe-every") ?? 0);
mkdirSync(dataDir, { recursive: true });

/** Each session: its subscribers, its seq, the current run's replay array and its file. */
const sessions = new Map();
let ids = 0;

function session(id) {
  let entry = sessions.get(id);
  if (!entry) {
    const file = createWriteStream(join(dataDir, `${encodeURIComponent(id)}.jsonl`), { flags: "a" });
    entry = { id, epoch: `ep_${Date.now().toString(16)}`, seq: 0, subscribers: new Set(), replay: [], file };
    sessions.set(id, entry);
  }
  return entry;
}

/** Sends the event to every subscriber, keeps it for replay, then writes it to the session's file. */
function publish(entry, event) {
  const text = JSON.stringify({ channel: entry.id, epoch: entry.epoch, seq: ++entry.seq, ...event });
  for (const socket of entry.subscribers) socket.send(text);
  entry.replay.push(text);
  if (entry.replay.length > REPLAY_EVENTS) entry.replay.shift();
  entry.file.write(`${text}\n`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
/** The latency probe: its send time, and when the pacing meant it to go (the end of the pause before it). */
const probe = (dueUs) => ({ type: "status", metadata: { probe_us: nowUs(), due_us: dueUs } });

/** The demo agent's script for one prompt, as stream-server's demo provider streams it. */
async function run(entry, prompt) {
  const runId = `run_${++ids}`;
  const messageId = `${runId}.1`;
  entry.replay = [];
  publish(entry, { type: "run_started", run_id: runId, provider: "demo", started_at: Date.now() });
  publish(entry, { type: "message_started", message_id: messageId, role: "assistant", created_at: Date.now() });
  const events = [
    ...["Looking ", "into: ", `"${prompt}". `].map((content) => ({ type: "delta", content })),
    { type: "tool_call", tool_call: { id: `${runId}-search`, name: "search", input: { query: prompt } } },
    { type: "tool_result", tool_call_id: `${runId}-search`, output: { hits: 3, top: `notes about ${prompt}` } },
    ...Array.from({ length: replyWords }, (_, i) => ({ type: "delta", content: `${WORDS[i % WORDS.length]} ` })),
    { type: "usage", tokens_used: replyWords + 12, model: "demo-1" },
  ];
  let dueUs = nowUs();
  for (const [index, event] of events.entries()) {
    if (probeEvery > 0 && index % probeEvery === 0) publish(entry, { message_id: messageId, ...probe(dueUs) });
    publish(entry, { message_id: messageId, ...event });
    const pause = event.type === "delta" ? deltaMs : event.type === "tool_call" ? deltaMs * TOOL_BEATS : 0;
    if (pause > 0) {
      dueUs = nowUs() + pause * 1000;
      await sleep(pause);
    }
  }
  publish(entry, { type: "message_complete", message_id: messageId, status: "complete", finished_at: Date.now() });
  publish(entry, { type: "run_finished", run_id: runId, status: "complete", aborted: false });
}

const http = createServer((request, response) => {
  const match = /^\/v1\/sessions\/([^/]+)\/messages$/.exec(request.url ?? "");
  if (request.method !== "POST" || !match) {
    response.writeHead(404).end();
    return;
  }
  let body = "";
  request.on("data", (chunk) => (body += chunk));
  request.on("end", () => {
    const { content } = JSON.parse(body);
    const entry = session(decodeURIComponent(match[1]));
    response.writeHead(202, { "content-type": "application/json" }).end(JSON.stringify({ accepted: true }));
    run(entry, content);
  });
});

const sockets = new WebSocketServer({ server: http, path: "/v1/ws" });
sockets.on("connection", (socket) => {
  socket.send(JSON.stringify({ type: "hello", protocol: 1, connection_id: `conn-${++ids}`, heartbeat_ms: 15_000 }));
  const subscribed = new Set();
  socket.on("message", (data) => {
    const frame = JSON.parse(data.toString());
    if (frame.type !== "subscribe") return;
    const entry = session(frame.channel);
    socket.send(JSON.stringify({ type: "subscribed", channel: entry.id, epoch: entry.epoch, head_seq: entry.seq, mode: "replay" }));
    socket.send(JSON.stringify({ type: "snapshot", channel: entry.id, epoch: entry.epoch, seq: entry.seq, replay: entry.replay.length }));
    for (const text of entry.replay) socket.send(text);
    entry.subscribers.add(socket);
    subscribed.add(entry);
  });
  socket.on("close", () => subscribed.forEach((entry) => entry.subscribers.delete(socket)));
});

http.listen(Number(port), host, () => {
  const address = http.address();
  console.log(`baseline: listening on http://${address.address}:${address.port} (WebSocket ws://${address.address}:${address.port}/v1/ws)`);
});
