// Per-frame cost at any history: a session with 10, 2,000 or 10,000 messages
// streams 200 more replies of 100 frames each (started, 98 deltas, complete),
// delivered in WebSocket messages of 1 to 50 frames.
// The package reads the way the fine-grained hooks do (the connection's
// client parses the message, `refresh` names what changed, `message` builds
// the one object); the plain JS reducer copies its list per frame, as many
// apps do. Each history runs in a process of its own, both sides back to
// back per round; the figures are medians of the rounds.
//
// Prints each target beside its figure and writes target/bench/history.json.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ClientEngine } from "agent-stream";
import { batches, jsReducer } from "./trace.mjs";

const HISTORIES = [10, 2000, 10000];
const REPLIES = 200;
const FRAMES_PER_REPLY = 100;
const REPLY_FRAMES = REPLIES * FRAMES_PER_REPLY;
const ROUNDS = 5;
const SESSION = "bench";

/** The history as frames (one started and one complete per message), then the reply's deltas. */
function session(history) {
  const frames = [];
  let seq = 0;
  const push = (body) => frames.push(JSON.stringify({ channel: SESSION, epoch: "e1", seq: ++seq, ...body }));
  for (let m = 0; m < history; m++) {
    push({ type: "message_started", message_id: `m${m}`, role: m % 2 ? "assistant" : "user", created_at: 1, content: `message ${m}` });
    push({ type: "message_complete", message_id: `m${m}`, status: "complete", finished_at: 2 });
  }
  const historyFrames = frames.length;
  for (let r = 0; r < REPLIES; r++) {
    const id = `reply${r}`;
    push({ type: "message_started", message_id: id, role: "assistant", created_at: 3 });
    for (let d = 0; d < FRAMES_PER_REPLY - 2; d++) push({ type: "delta", message_id: id, content: `tok${d} ` });
    push({ type: "message_complete", message_id: id, status: "complete", finished_at: 4 });
  }
  return { history: batches(frames.slice(0, historyFrames)), reply: batches(frames.slice(historyFrames)), replyFrames: REPLY_FRAMES };
}

function packageReader() {
  const client = new ClientEngine();
  client.open(SESSION);
  let last;
  return {
    ingest(text) {
      client.ingest(text, 0);
      const change = client.refresh(SESSION);
      if (change?.ids) client.messageIds(SESSION);
      for (const id of change?.messages ?? []) last = client.message(SESSION, id);
    },
    last: () => last,
  };
}

function plainReader() {
  const reducer = jsReducer();
  return {
    ingest(text) {
      reducer.ingest(text);
      reducer.messages();
    },
    last: () => reducer.messages().at(-1),
  };
}

/** ns per reply frame, after the history is in; one untimed warm-up run first. */
function measure(make, data) {
  let figure = 0;
  for (let run = 0; run < 2; run++) {
    const reader = make();
    for (const batch of data.history) reader.ingest(batch.text);
    globalThis.gc?.();
    const start = performance.now();
    for (const batch of data.reply) reader.ingest(batch.text);
    figure = ((performance.now() - start) / data.replyFrames) * 1e6;
    if (!reader.last()?.content.startsWith("tok0 ")) throw new Error("the reply did not arrive");
  }
  return figure;
}

const [which, history] = [process.argv[2], Number(process.argv[3])];
if (which) {
  const data = session(history);
  process.stdout.write(JSON.stringify(measure(which === "wasm" ? packageReader : plainReader, data)));
} else {
  const runIn = (side, history) =>
    Number(execFileSync(process.execPath, ["--expose-gc", fileURLToPath(import.meta.url), side, String(history)], { encoding: "utf8" }));
  const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const figures = {};
  for (const history of HISTORIES) {
    const rounds = [];
    for (let round = 0; round < ROUNDS; round++) rounds.push({ wasm: runIn("wasm", history), js: runIn("js", history) });
    figures[history] = {
      wasmNsPerFrame: median(rounds.map((r) => r.wasm)),
      jsNsPerFrame: median(rounds.map((r) => r.js)),
      speedup: median(rounds.map((r) => r.js / r.wasm)),
    };
  }
  console.log(`history: ${REPLIES} replies of ${FRAMES_PER_REPLY} frames after 10 / 2,000 / 10,000 messages, medians of ${ROUNDS} rounds`);
  console.log("history   package ns/frame   js reducer ns/frame   package speed-up");
  for (const history of HISTORIES) {
    const f = figures[history];
    console.log(`${String(history).padStart(7)} ${f.wasmNsPerFrame.toFixed(0).padStart(18)} ${f.jsNsPerFrame.toFixed(0).padStart(21)} ${f.speedup.toFixed(1).padStart(17)}x`);
  }
  const flatness = figures[10000].wasmNsPerFrame / figures[10].wasmNsPerFrame;
  const targets = [
    ["cost at 10,000 messages / cost at 10", flatness, "<= 1.2", flatness <= 1.2],
    ["speed-up over the js reducer at 10", figures[10].speedup, ">= 3", figures[10].speedup >= 3],
    ["speed-up over the js reducer at 2,000", figures[2000].speedup, ">= 30", figures[2000].speedup >= 30],
  ];
  for (const [name, value, target, met] of targets) {
    console.log(`target: ${name.padEnd(40)} ${value.toFixed(2).padStart(8)}  (${target}) ${met ? "met" : "NOT MET"}`);
  }
  // The repository's target/bench, wherever this runs from.
  const out = fileURLToPath(new URL("../../../../target/bench/", import.meta.url));
  mkdirSync(out, { recursive: true });
  writeFileSync(`${out}history.json`, JSON.stringify({ benchmark: "per-frame cost at any history", replyFrames: REPLY_FRAMES, figures, targets }, null, 2));
  console.log("wrote target/bench/history.json");
}
