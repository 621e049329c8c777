// The transport against a real stream-server process: subscribe, optimistic
// send, streaming to the end, then a dropped socket mid-run: it reconnects,
// resumes from the cursor, and ends with the server's state hash.
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { StreamClient } from "agent-stream";
import { startServer } from "../../../../tests/support/server.mjs";

/** A WebSocket class that remembers its sockets, so a test can cut them. */
const sockets = [];
class TrackedWebSocket extends WebSocket {
  constructor(url) {
    super(url);
    sockets.push(this);
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
