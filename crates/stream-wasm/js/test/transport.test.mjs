// The transport against a real stream-server process: subscribe, optimistic
// send, streaming to the end, then a dropped socket mid-run: it reconnects,
// resumes from the cursor, and ends with the server's state hash; reads of
// sessions nobody watches, and fine-grained reads that follow one message.
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { StreamClient } from "agent-stream";
import { startServer } from "../../../../tests/support/server.mjs";

/** A WebSocket class that remembers its sockets (so a test can cut them) and what they sent. */
const sockets = [];
const sent = [];
class TrackedWebSocket extends WebSocket {
  constructor(url) {
    super(url);
    sockets.push(this);
  }
  send(data) {
    sent.push(JSON.parse(data));
    super.send(data);
  }
}

function until(client, sessionId, predicate, timeoutMs = 20000) {
  return new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error("timed out waiting")), timeoutMs);
    const check = () => {
      if (predicate(client.snapshot(sessionId))) {
        clearTimeout(timer);
        stop();
        done();
      }
    };
    const stop = client.watch(sessionId, check);
    check();
  });
}

function untilConnection(client, kind, timeoutMs = 10000) {
  return new Promise((done, fail) => {
    if (client.connection().kind === kind) return done();
    const timer = setTimeout(() => fail(new Error(`connection never became ${kind}`)), timeoutMs);
    const stop = client.onConnection(() => {
      if (client.connection().kind === kind) {
        clearTimeout(timer);
        stop();
        done();
      }
    });
  });
}

async function restSnapshot(base, sessionId) {
  return (await fetch(`${base}/v1/sessions/${sessionId}`)).json();
}

/**
 * Runs `body(client, server)` against a fresh server process, then closes the
 * client and stops the server whatever happened.
 */
async function withClient({ args = [], ...clientOptions }, body) {
  const server = await startServer({ args });
  const client = new StreamClient({ baseUrl: server.base, WebSocket: TrackedWebSocket, ...clientOptions });
  try {
    await body(client, server);
  } finally {
    client.close();
    await server.stop();
  }
}

test("streams a run, survives a dropped socket, and ends with the server's hash", () =>
  withClient({ args: ["--demo-delta-ms", "2", "--demo-reply-words", "400"], backoffMs: 50 }, async (client, server) => {
    const sessionId = "t1";
    const unwatch = client.watch(sessionId, () => {});
    await untilConnection(client, "open");
    const sending = client.send(sessionId, "hello", "c1");
    // Optimistic: the message is there before the POST answers.
    await until(client, sessionId, (s) => s.messages.some((m) => m.client_message_id === "c1" || m.id === "c1"));
    await sending;
    await until(client, sessionId, (s) => s.messages.filter((m) => m.role === "assistant").length >= 1 && s.run !== null);
    // Cut the socket mid-run: the client reconnects and resumes from its cursor.
    const reconnecting = untilConnection(client, "reconnecting");
    sockets.at(-1).terminate();
    await reconnecting;
    await untilConnection(client, "open");
    await until(client, sessionId, (s) => s.run === null && s.messages.length === 4);
    const snapshot = await restSnapshot(server.base, sessionId);
    const engineView = client.snapshot(sessionId).messages;
    assert.deepEqual(engineView.map((m) => m.content), snapshot.messages.map((m) => m.content));
    assert.equal(engineView.filter((m) => m.role === "user").length, 1, "one user message, no duplicate");
    assert.ok(sockets.length >= 2, "a second socket was opened");
    const running = client.runningSessions();
    assert.equal(running[sessionId], undefined, "the finished session is not running");
    unwatch();
  }));

test("a failed POST marks the message failed and a retry keeps its id", () => {
  let failNext = true;
  const flakyFetch = (url, init) => {
    if (failNext && init?.method === "POST") {
      failNext = false;
      return Promise.reject(new Error("network down"));
    }
    return fetch(url, init);
  };
  return withClient({ fetch: flakyFetch }, async (client, server) => {
    const unwatch = client.watch("t2", () => {});
    await client.send("t2", "hi", "c9");
    await until(client, "t2", (s) => s.messages.some((m) => m.id === "c9" && m.status === "failed"));
    assert.equal(client.runningSessions().t2, undefined, "a refused send leaves nothing running");
    await client.send("t2", "hi", "c9");
    await until(client, "t2", (s) => s.messages.length >= 2 && s.messages[0].client_message_id === "c9" && s.run === null);
    const snapshot = await restSnapshot(server.base, "t2");
    assert.equal(snapshot.messages.filter((m) => m.role === "user").length, 1);
    unwatch();
  });
});

test("sessions are created, listed, renamed and deleted through the client", () =>
  withClient({}, async (client) => {
    const created = await client.createSession("Draft");
    assert.equal(created.name, "Draft");
    const unwatch = client.watch(created.session_id, () => {});
    await client.renameSession(created.session_id, "Final");
    await until(client, created.session_id, (s) => s.name === "Final");
    assert.deepEqual(
      (await client.listSessions()).map((s) => [s.session_id, s.name, s.running]),
      [[created.session_id, "Final", false]],
    );
    await assert.rejects(client.renameSession(created.session_id, "  "), /name/);
    unwatch();
    await client.deleteSession(created.session_id);
    assert.deepEqual(await client.listSessions(), []);
    await assert.rejects(client.deleteSession(created.session_id), /no session/);
  }));

test("reading a session nobody watches opens nothing, and a send to one leaves no channel behind", () =>
  withClient({ args: ["--demo-delta-ms", "1", "--demo-reply-words", "5"] }, async (client, server) => {
    await untilConnection(client, "open");
    const before = sent.length;
    const empty = client.snapshot("t4");
    assert.deepEqual([empty.messages, client.messageIds("t4"), client.message("t4", "m")], [[], [], undefined]);
    assert.equal(sent.length, before, "a read subscribes to nothing");
    await client.send("t4", "hello", "c4");
    const frames = sent.slice(before).map((frame) => [frame.type, frame.channel]);
    assert.deepEqual(frames, [["subscribe", "t4"], ["unsubscribe", "t4"]], "followed while the POST ran, then let go");
    assert.equal(client.snapshot("t4"), empty, "no channel left behind");
    // A watch later gets the confirmed message from the server.
    const unwatch = client.watch("t4", () => {});
    const finished = (s) => s.run === null && s.messages.length > 1 && s.messages.at(-1).status === "complete";
    await until(client, "t4", finished);
    assert.equal(client.snapshot("t4").messages[0].client_message_id, "c4");
    const rest = await restSnapshot(server.base, "t4");
    assert.equal(client.stateHash("t4"), rest.state_hash);
    unwatch();
  }));

test("an id watcher hears of new messages only, a message watcher of its message only", () =>
  withClient({ args: ["--demo-delta-ms", "2", "--demo-reply-words", "60"] }, async (client) => {
    // Each time the id watcher is told, the id list it reads is another one.
    const lists = [];
    const unwatchIds = client.watchIds("t5", () => lists.push(client.messageIds("t5")));
    let heardUser = 0;
    await untilConnection(client, "open");
    await client.send("t5", "hello", "c5");
    await until(client, "t5", (s) => s.messages.some((m) => m.role === "user" && m.id !== "c5"));
    const userId = client.messageIds("t5").find((id) => client.message("t5", id).role === "user");
    const user = client.message("t5", userId);
    // Past the next flush, so the echo itself is told before this watcher listens.
    await new Promise((done) => setTimeout(done, 50));
    const unwatchUser = client.watchMessage("t5", userId, () => (heardUser += 1));
    await until(client, "t5", (s) => s.run === null && s.messages.length > 1 && s.messages.at(-1).status === "complete");
    const reply = client.messageIds("t5").find((id) => client.message("t5", id).role === "assistant");
    assert.ok(client.message("t5", reply).content.length > 0, "the reply streamed");
    assert.ok(lists.length > 0, "the id watcher heard of the new messages");
    lists.forEach((list, i) => {
      if (i > 0) assert.notDeepEqual(list, lists[i - 1], `told ${i + 1} times, the ids unchanged since the last`);
    });
    assert.equal(heardUser, 0, "the user message never changed while the reply streamed");
    assert.equal(client.message("t5", userId), user, "and is the same object");
    unwatchUser();
    unwatchIds();
  }));

/** A WebSocket that a proxy blocks: it never opens, only fails. */
class BlockedWebSocket {
  constructor() {
    this.readyState = 3;
    setTimeout(() => {
      this.onerror?.({});
      this.onclose?.({ code: 1006 });
    }, 0);
  }
  send() {}
  close() {}
}

test("with the WebSocket blocked, a session streams over SSE and ends with the server's hash", async () => {
  const server = await startServer({ args: ["--demo-delta-ms", "2", "--demo-reply-words", "300"] });
  const client = new StreamClient({ baseUrl: server.base, WebSocket: BlockedWebSocket, backoffMs: 50, maxBackoffMs: 200 });
  try {
    const sessionId = "sse1";
    const unwatch = client.watch(sessionId, () => {});
    await client.send(sessionId, "over http", "c1");
    // Seen running: frames arrive live over SSE, not only in the final snapshot.
    await until(client, sessionId, (s) => s.run !== null && s.messages.some((m) => m.role === "assistant"));
    await until(client, sessionId, (s) => s.run === null && s.messages.some((m) => m.role === "assistant" && m.status !== "streaming"));
    assert.equal(client.connection().kind, "open");
    assert.equal(client.connection().via, "sse");
    const rest = await restSnapshot(server.base, sessionId);
    assert.equal(client.stateHash(sessionId), rest.state_hash);
    assert.equal(client.snapshot(sessionId).messages.length, rest.messages.length);
    unwatch();
  } finally {
    client.close();
    await server.stop();
  }
});
