// Imports the built package the way a user does (by name, through its
// exports map) and checks reorder and duplicate handling, bad input, object
// identity of unchanged messages, fine-grained reads, and the connection's
// client: one parse of mixed-session messages, the running map, errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { ClientEngine, SessionEngine, protocolVersion, ready } from "agent-stream";

await ready();

const frame = (seq, body) => JSON.stringify({ channel: "s", epoch: "e1", seq, ...body });
const delta = (seq, id, content) => frame(seq, { type: "delta", message_id: id, content });

test("speaks protocol 1", () => {
  assert.equal(protocolVersion(), 1);
});

test("out-of-order and duplicated frames apply once, in order", () => {
  const engine = new SessionEngine("s");
  let result = engine.ingest(`[${delta(3, "a", "c")},${delta(2, "a", "b")}]`);
  assert.equal(result.applied, 0);
  assert.equal(result.buffered, 2);
  result = engine.ingest([delta(1, "a", "a"), delta(2, "a", "b"), delta(1, "a", "a")]);
  assert.equal(result.applied, 3);
  assert.equal(result.duplicates, 2);
  assert.equal(engine.messages()[0].content, "abc");
  assert.deepEqual(engine.cursor(), { epoch: "e1", seq: 3 });
});

test("text crosses into the engine intact, whatever came before it", () => {
  const engine = new SessionEngine("s");
  const text = "héllo ✓ 🦀 \u0000 end";
  engine.ingest(delta(1, "a", text));
  assert.equal(engine.messages()[0].content, text);
  // The engine reuses one buffer for the text of each message, and lets a
  // big one go: a long message, then a short one, must not leave bytes behind.
  const long = "✓".repeat(100_000);
  engine.ingest(delta(2, "b", long));
  engine.ingest(delta(3, "c", "z"));
  const [, b, c] = engine.messages();
  assert.ok(b.content === long, "the long text arrived whole");
  assert.equal(c.content, "z");
});

test("a rename is reported as a change of its own", () => {
  const engine = new SessionEngine("s");
  const ids = engine.messageIds();
  const renamed = engine.ingest(frame(1, { type: "renamed", name: "Plans" }));
  assert.deepEqual([renamed.changed, engine.name()], [true, "Plans"]);
  assert.equal(engine.messageIds(), ids, "no message came: the same ids");
  assert.equal(engine.ingest(frame(1, { type: "renamed", name: "Plans" })).changed, false, "a duplicate changes nothing");
});

test("bad input is reported, never thrown, and changes nothing", () => {
  const engine = new SessionEngine("s");
  engine.ingest(delta(1, "a", "x"));
  const hash = engine.stateHash();
  for (const bad of ["{", "[1,2]", frame(2, { type: "delta", message_id: "a" }), delta(2, "a", "y").replace('"s"', '"t"'), 42]) {
    const result = engine.ingest(bad);
    assert.ok(result.errors.length >= 1, `no error for ${bad}`);
    assert.equal(result.applied, 0);
    assert.equal(typeof result.errors[0].code, "string");
  }
  assert.equal(engine.stateHash(), hash);
});

test("unchanged messages are the same objects; changed ones are rebuilt", () => {
  const engine = new SessionEngine("s");
  engine.ingest([delta(1, "a", "x"), delta(2, "b", "y")]);
  const before = engine.messages();
  assert.equal(engine.messages(), before, "nothing changed: the same array");
  const ids = engine.messageIds();
  const result = engine.ingest(delta(3, "b", "z"));
  assert.equal(result.changed, true);
  assert.equal(engine.messageIds(), ids, "a delta keeps the id list");
  assert.equal(engine.message("a"), before[0], "one message read is the list's object");
  const after = engine.messages();
  assert.equal(after[0], before[0]);
  assert.notEqual(after[1], before[1]);
  assert.equal(after[1].content, "yz");
});

test("a local send is pending at once and its echo replaces it", () => {
  const engine = new SessionEngine("s");
  assert.equal(engine.sendLocal("hello", "c1", 0), "added");
  assert.equal(engine.sendLocal("hello", "c1", 0), "duplicate");
  assert.equal(engine.messages()[0].status, "pending");
  assert.equal(engine.markSendFailed("c1", "offline"), true);
  assert.equal(engine.messages()[0].status, "failed");
  assert.equal(engine.sendLocal("hello", "c1", 1), "retried");
  engine.ingest(frame(1, { type: "message_started", message_id: "m1", role: "user", created_at: 1, client_message_id: "c1", content: "hello" }), 2);
  const messages = engine.messages();
  assert.equal(messages.length, 1);
  assert.equal(messages[0].id, "m1");
  assert.equal(messages[0].status, "complete");
});

test("the client parses a mixed message once: each session's hash is the one its own frames give", () => {
  // Numbers a JSON round trip through JavaScript rewrites: 1.0 becomes 1,
  // -0.0 becomes 0, 9007199254740993 is rounded.
  const input = '{"a":1.0,"b":-0.0,"c":9007199254740993,"d":[0.1,1e300]}';
  const call = (channel) =>
    `{"channel":"${channel}","epoch":"e1","seq":1,"type":"tool_call","message_id":"m","tool_call":{"id":"t","name":"calc","input":${input}}}`;
  const mixed = `[${call("s")},${call("t")}]`;
  const client = new ClientEngine();
  client.open("s");
  client.open("t");
  const result = client.ingest(mixed, 0);
  assert.deepEqual(result.touched, ["s", "t"]);
  assert.deepEqual(result.errors, []);
  for (const channel of ["s", "t"]) {
    const own = new SessionEngine(channel);
    own.ingest(call(channel), 0);
    assert.equal(client.stateHash(channel), own.stateHash(), `${channel}: the hash of its own frames`);
    // The test can fail: what a re-stringifying router would hand over hashes otherwise.
    const restrung = new SessionEngine(channel);
    restrung.ingest(JSON.stringify(JSON.parse(call(channel))), 0);
    assert.notEqual(restrung.stateHash(), own.stateHash());
  }
});

test("a bad frame shows as its session's error until frames apply again", () => {
  const client = new ClientEngine();
  client.open("s");
  client.ingest(`[${delta(1, "a", "x")},${frame(2, { type: "delta", message_id: "a" })}]`, 0);
  assert.match(client.error("s") ?? "", /content/);
  client.ingest(delta(2, "a", "y"), 0);
  assert.equal(client.error("s"), undefined);
});

test("the running map ignores a stale list after a finish, and a snapshot with no run ends one", () => {
  const client = new ClientEngine();
  client.open("s");
  let result = client.ingest(frame(1, { type: "run_started", run_id: "r1", provider: "demo", started_at: 1 }), 0);
  assert.equal(result.running_changed, true);
  assert.ok(client.isRunning("s"));
  const entries = client.runningSessions();
  assert.equal(client.runningSessions(), entries, "unchanged: the same object");
  client.ingest(frame(2, { type: "run_finished", run_id: "r1", status: "complete", aborted: false }), 0);
  assert.ok(!client.isRunning("s"));
  assert.equal(client.syncRunning({ rev: 5, sessions: [{ session_id: "s", run_id: "r1", provider: "demo", started_at: 1, last_seq: 1 }] }, 0), false);
  assert.ok(!client.isRunning("s"));
  // A list shows a run the client never saw start; the snapshot after it shows none.
  client.syncRunning({ rev: 6, sessions: [{ session_id: "s", run_id: "r2", provider: "demo", started_at: 2, last_seq: 4 }] }, 0);
  assert.ok(client.isRunning("s"));
  const hash = new SessionEngine("s").stateHash();
  result = client.ingest(JSON.stringify({ type: "snapshot", channel: "s", epoch: "e1", seq: 5, messages: [], state_hash: hash }), 0);
  assert.equal(result.running_changed, true);
  assert.ok(!client.isRunning("s"));
});

test("refresh names the messages that changed, and a send to a closed session does nothing", () => {
  const client = new ClientEngine();
  assert.equal(client.sendLocal("s", "hi", "c1", 0), undefined);
  client.open("s");
  client.ingest(`[${delta(1, "a", "x")},${delta(2, "b", "y")}]`, 0);
  assert.deepEqual(client.refresh("s"), { ids: true, top: true, all: true, messages: [], calls: [] });
  client.ingest(delta(3, "b", "z"), 0);
  assert.deepEqual(client.refresh("s"), { ids: false, top: false, all: false, messages: ["b"], calls: [] });
  assert.equal(client.refresh("s"), null);
  assert.equal(client.message("s", "b").content, "yz");
  assert.deepEqual(client.messageIds("s"), ["a", "b"]);
});

test("a tool's answer and a subagent's messages nest under the call, out of the top-level list", () => {
  const client = new ClientEngine();
  client.open("s");
  const call = { id: "t1", name: "Task", input: {} };
  client.ingest(`[${frame(1, { type: "tool_call", message_id: "a", tool_call: call })},${frame(2, { type: "message_started", message_id: "sub", role: "assistant", created_at: 1, parent_tool_call_id: "t1" })}]`, 0);
  assert.deepEqual(client.refresh("s").all, true);
  assert.deepEqual([client.topLevelIds("s"), client.toolChildIds("s", "t1")], [["a"], ["sub"]]);
  const top = client.topLevelIds("s");
  client.ingest(frame(3, { type: "tool_result", message_id: "r", tool_call_id: "t1", output: "done", truncated: false }), 0);
  const change = client.refresh("s");
  assert.deepEqual([change.top, change.calls, change.messages.sort()], [false, ["t1"], ["a", "r"]]);
  assert.equal(client.toolAnswerId("s", "t1"), "r");
  assert.equal(client.topLevelIds("s"), top, "the answer is not top-level: the same array");
  client.ingest(delta(4, "b", "after"), 0);
  assert.deepEqual(client.refresh("s").top, true);
  assert.deepEqual(client.topLevelIds("s"), ["a", "b"]);
});

test("the id list follows appends, pending sends, their echoes and snapshots", () => {
  const client = new ClientEngine();
  client.open("s");
  const same = () => assert.deepEqual(client.messageIds("s"), client.messages("s").map((m) => m.id));
  client.ingest(delta(1, "a", "x"), 0);
  same();
  client.sendLocal("s", "hi", "c1", 0);
  same();
  client.ingest(delta(2, "b", "y"), 0);
  same();
  assert.deepEqual(client.messageIds("s"), ["a", "b", "c1"]);
  client.ingest(frame(3, { type: "message_started", message_id: "u", role: "user", created_at: 1, client_message_id: "c1", content: "hi" }), 0);
  same();
  assert.deepEqual(client.messageIds("s"), ["a", "b", "u"]);
  client.ingest(frame(4, { type: "messages_deleted", message_ids: ["a"] }), 0);
  same();
  assert.deepEqual(client.messageIds("s"), ["b", "u"]);
});

test("the public declarations never say any", () => {
  const root = createRequire(import.meta.url).resolve("agent-stream/package.json").replace(/package\.json$/, "");
  for (const file of ["index.d.ts", "node.d.ts", "api.d.ts", "react.d.ts", "transport.d.ts", "wasm/stream_wasm.d.ts"]) {
    let text = readFileSync(root + file, "utf8");
    // The module's raw exports and its init functions are not re-exported by the entries.
    text = text.split("export type InitInput")[0];
    assert.doesNotMatch(text, /\bany\b/, `${file} has an any`);
  }
});

test("a streaming message read after each delta is a new object with the whole text", () => {
  const client = new ClientEngine();
  client.open("s");
  client.ingest(frame(1, { type: "message_started", message_id: "a", role: "assistant", created_at: 1, content: "é" }), 0);
  let expected = "é";
  let before = client.message("s", "a");
  for (let seq = 2; seq < 60; seq += 1) {
    const text = seq % 7 === 0 ? "🦀 " : `w${seq} `;
    expected += text;
    client.ingest(delta(seq, "a", text), 0);
    if (seq % 3 === 0) continue; // Some deltas pile up before a read.
    const now = client.message("s", "a");
    assert.notEqual(now, before, "a new object");
    assert.equal(now.content, expected);
    assert.deepEqual({ ...now, content: "" }, { ...before, content: "" }, "the rest as it was");
    before = now;
  }
  client.ingest(frame(60, { type: "message_complete", message_id: "a", status: "complete", finished_at: 2 }), 0);
  assert.equal(client.message("s", "a").status, "complete");
  assert.equal(client.message("s", "a").content, expected);
});
