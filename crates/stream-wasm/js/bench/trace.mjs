// Feeds a recorded trace through the package and through a plain JS reducer
// written the way common apps write it (an immutable copy of the list per
// frame), for a side-by-side ratio. The trace: a 2,000-message session, 200,000
// frames, delivered in WebSocket messages of 1 to 50 frames.
//
// Prints a table and writes target/bench/wasm.json (run from the repository root
// through `just bench`).
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { SessionEngine } from "agent-stream";

const MESSAGES = 2000;
const FRAMES_PER_MESSAGE = 100; // message_started + 98 deltas + message_complete
/** Rounds of one process per reducer; the figure is the median round. */
const ROUNDS = 5;

function buildTrace() {
  const frames = [];
  let seq = 0;
  const push = (body) => frames.push(JSON.stringify({ channel: "bench", epoch: "e1", seq: ++seq, ...body }));
  for (let m = 0; m < MESSAGES; m++) {
    const id = `m${m}`;
    push({ type: "message_started", message_id: id, role: m % 2 ? "assistant" : "user", created_at: 1700000000000 + m });
    for (let d = 0; d < FRAMES_PER_MESSAGE - 2; d++) push({ type: "delta", message_id: id, content: `tok${d} ` });
    push({ type: "message_complete", message_id: id, status: "complete", finished_at: 1700000000500 + m });
  }
  return { frames: frames.length, batches: batches(frames) };
}

/** Frames cut into WebSocket messages of deterministic sizes 1..50 (a linear congruential sequence). */
export function batches(frames) {
  const batches = [];
  let state = 12345;
  for (let i = 0; i < frames.length; ) {
    state = (state * 1103515245 + 12345) % 2147483648;
    const size = 1 + (state % 50);
    const slice = frames.slice(i, i + size);
    batches.push({ text: slice.length === 1 ? slice[0] : `[${slice.join(",")}]`, frames: slice.length });
    i += size;
  }
  return batches;
}

/** The baseline: parse, then copy the list for every frame, as many apps do. */
export function jsReducer() {
  let state = { messages: [] };
  return {
    ingest(text) {
      const parsed = JSON.parse(text);
      for (const frame of Array.isArray(parsed) ? parsed : [parsed]) {
        if (frame.type === "message_started") {
          state = { ...state, messages: [...state.messages, { id: frame.message_id, role: frame.role, content: "", status: "streaming" }] };
        } else if (frame.type === "delta") {
          state = { ...state, messages: state.messages.map((m) => (m.id === frame.message_id ? { ...m, content: m.content + frame.content } : m)) };
        } else if (frame.type === "message_complete") {
          state = { ...state, messages: state.messages.map((m) => (m.id === frame.message_id ? { ...m, status: frame.status } : m)) };
        }
      }
    },
    messages: () => state.messages,
  };
}

function run(name, make, trace) {
  const reducer = make();
  const tenth = Math.floor(trace.batches.length / 10);
  let ingestMs = 0;
  let messagesMs = 0;
  let firstTenthMs = 0;
  let lastTenthMs = 0;
  let firstTenthFrames = 0;
  let lastTenthFrames = 0;
  trace.batches.forEach((batch, i) => {
    const start = performance.now();
    reducer.ingest(batch.text);
    const ingested = performance.now();
    const list = reducer.messages();
    const end = performance.now();
    if (list.length === 0) throw new Error("no messages");
    ingestMs += ingested - start;
    messagesMs += end - ingested;
    if (i < tenth) {
      firstTenthMs += end - start;
      firstTenthFrames += batch.frames;
    } else if (i >= trace.batches.length - tenth) {
      lastTenthMs += end - start;
      lastTenthFrames += batch.frames;
    }
  });
  const last = reducer.messages();
  return {
    name,
    framesPerSecond: (trace.frames / (ingestMs + messagesMs)) * 1000,
    ingestMs,
    messagesCallUs: (messagesMs / trace.batches.length) * 1000,
    nsPerFrameFirstTenth: (firstTenthMs / firstTenthFrames) * 1e6,
    nsPerFrameLastTenth: (lastTenthMs / lastTenthFrames) * 1e6,
    finalMessages: last.length,
    finalChars: last.reduce((sum, m) => sum + m.content.length, 0),
  };
}

/** Median (by throughput) of `runs` timed runs, after one untimed run of the
 *  whole trace, so JIT and WebAssembly tier-up do not land in a figure. */
function measure(name, make, trace, runs = 3) {
  run(name, make, trace);
  const results = [];
  for (let i = 0; i < runs; i++) {
    globalThis.gc?.();
    results.push(run(name, make, trace));
  }
  results.sort((a, b) => a.framesPerSecond - b.framesPerSecond);
  return results[Math.floor(runs / 2)];
}

const makeWasm = () => {
  const engine = new SessionEngine("bench");
  return { ingest: (text) => engine.ingest(text, 0), messages: () => engine.messages() };
};

// Each reducer runs in a process of its own, so neither inherits the other's
// heap (the baseline's cost is mostly garbage collection, which depends on it).
const which = process.argv[2];
if (process.argv[1] !== fileURLToPath(import.meta.url)) {
  // Imported for its trace and its baseline reducer.
} else if (which === "wasm" || which === "js") {
  const trace = buildTrace();
  globalThis.gc?.();
  const before = process.memoryUsage();
  const make = which === "wasm" ? makeWasm : jsReducer;
  const kept = make();
  for (const batch of trace.batches) kept.ingest(batch.text);
  kept.messages();
  const after = process.memoryUsage();
  const result = measure(which === "wasm" ? "wasm engine" : "js immutable reducer", make, trace);
  result.heapGrowthMiB = (after.heapUsed - before.heapUsed) / 2 ** 20;
  result.rssGrowthMiB = (after.rss - before.rss) / 2 ** 20;
  process.stdout.write(JSON.stringify(result));
} else {
  const trace = buildTrace();
  const runIn = (name) =>
    JSON.parse(execFileSync(process.execPath, ["--expose-gc", fileURLToPath(import.meta.url), name], { encoding: "utf8" }));
  // Rounds of one process per reducer, back to back: a machine whose speed
  // drifts (a shared VM) then slows both sides of a round alike, and the
  // median of the rounds' ratios is the figure.
  const rounds = [];
  for (let round = 0; round < ROUNDS; round++) {
    const wasm = runIn("wasm");
    const js = runIn("js");
    if (wasm.finalChars !== js.finalChars || wasm.finalMessages !== js.finalMessages) {
      throw new Error(`the two reducers disagree: ${JSON.stringify([wasm, js])}`);
    }
    rounds.push({ wasm, js, ratio: wasm.framesPerSecond / js.framesPerSecond });
  }
  const byRatio = [...rounds].sort((a, b) => a.ratio - b.ratio);
  const { wasm, js, ratio } = byRatio[Math.floor(ROUNDS / 2)];
  console.log(`trace: ${MESSAGES} messages, ${trace.frames} frames, ${trace.batches.length} ingest calls of 1-50 frames`);
  console.log("reducer                 frames/s   messages() µs   ns/frame first 10%   ns/frame last 10%   heap MiB");
  for (const r of [wasm, js]) {
    console.log(
      `${r.name.padEnd(22)} ${r.framesPerSecond.toFixed(0).padStart(9)} ${r.messagesCallUs.toFixed(2).padStart(15)} ${r.nsPerFrameFirstTenth.toFixed(0).padStart(20)} ${r.nsPerFrameLastTenth.toFixed(0).padStart(19)} ${r.heapGrowthMiB.toFixed(1).padStart(10)}`,
    );
  }
  const ratios = rounds.map((r) => `${r.ratio.toFixed(1)}x`).join(", ");
  console.log(`wasm / js throughput, median of ${ROUNDS} rounds (${ratios}): ${ratio.toFixed(1)}x`);
  mkdirSync("target/bench", { recursive: true });
  writeFileSync(
    "target/bench/wasm.json",
    JSON.stringify(
      {
        benchmark: "wasm package trace",
        messages: MESSAGES,
        frames: trace.frames,
        ingestCalls: trace.batches.length,
        results: [wasm, js],
        ratio,
        roundRatios: rounds.map((r) => r.ratio),
      },
      null,
      2,
    ),
  );
  console.log("wrote target/bench/wasm.json");
}
