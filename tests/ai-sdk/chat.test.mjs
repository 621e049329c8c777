// The server as a useChat backend, read by the real AI SDK client (the `ai`
// package's DefaultChatTransport and readUIMessageStream) the way an app's
// useChat does: a reply assembles to the UIMessage the REST snapshot
// describes; a resume mid-run replays and ends equal; a resume when idle is
// 204; a retry starts no second run; stop aborts; bad bodies get a 400.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { DefaultChatTransport, readUIMessageStream } from "ai";
import { startServer } from "../support/server.mjs";
import { expectedMessage, uiParts } from "./expected.mjs";

let server;
let transport;

before(async () => {
  server = await startServer({ args: ["--demo-delta-ms", "5", "--demo-reply-words", "120"] });
  transport = new DefaultChatTransport({ api: `${server.base}/v1/ai-sdk/chat` });
});

after(async () => {
  await server?.stop();
});

const userMessage = (id, text) => ({ id, role: "user", parts: [{ type: "text", text }] });

/** The last UIMessage the library assembles from a chunk stream. */
async function assemble(stream) {
  let last;
  for await (const message of readUIMessageStream({ stream })) last = message;
  return last;
}

async function restSnapshot(chatId) {
  return (await fetch(`${server.base}/v1/sessions/${chatId}`)).json();
}

async function untilIdle(chatId) {
  for (let tries = 0; tries < 400; tries += 1) {
    if ((await restSnapshot(chatId)).run === null) return;
    await new Promise((done) => setTimeout(done, 25));
  }
  assert.fail("the run never ended");
}

function send(chatId, messages, abortSignal) {
  return transport.sendMessages({ chatId, messages, trigger: "submit-message", messageId: undefined, abortSignal });
}

test("a reply assembles to the UIMessage of the server's snapshot: text, tool with input and output, steps, metadata", async () => {
  const message = await assemble(await send("chat1", [userMessage("u1", "Summarise the notes")]));
  const snapshot = await restSnapshot("chat1");
  assert.equal(snapshot.run, null);
  assert.deepEqual(uiParts(message), expectedMessage(snapshot, "u1").parts);
  assert.ok(message.parts.some((part) => part.type === "dynamic-tool" && part.providerExecuted === true));
  assert.equal(message.metadata.model, "demo-1");
  assert.ok(message.metadata.tokensUsed > 0);
});

test("an external agent's reasoning, tools and a failed tool assemble as the snapshot says", async () => {
  const stream = await transport.sendMessages({
    chatId: "chat5",
    messages: [userMessage("u1", "Use your tools")],
    trigger: "submit-message",
    messageId: undefined,
    body: { provider: "external" },
  });
  const assembled = assemble(stream);
  const { run } = await restSnapshot("chat5");
  const batches = [
    [{ type: "reasoning", content: "Two tools, " }, { type: "reasoning", content: "one will fail." }],
    [{ type: "text", content: "Reading." }, { type: "tool_call", id: "t1", name: "Read", input: { path: "/a", n: 1.5 } }],
    [{ type: "tool_call", id: "t2", name: "Bash", input: { command: "false" } }],
    [{ type: "tool_result", tool_call_id: "t1", output: "hello\n" }, { type: "tool_result", tool_call_id: "t2", error: "exit code 1" }],
    [{ type: "text", content: "The file says hello." }, { type: "usage", tokens_used: 9, cost_usd: 0.002, model: "ext-1" }],
    [{ type: "finish", status: "complete" }],
  ];
  for (const [seq, batch] of batches.entries()) {
    const appended = await fetch(`${server.base}/v1/sessions/chat5/runs/${run.run_id}/events`, {
      method: "POST",
      headers: { "content-type": "application/json", "producer-id": "agent", "producer-epoch": "0", "producer-seq": String(seq) },
      body: JSON.stringify(batch),
    });
    assert.equal(appended.status, 200);
  }
  const message = await assembled;
  const parts = uiParts(message);
  assert.deepEqual(parts, expectedMessage(await restSnapshot("chat5"), "u1").parts);
  assert.deepEqual(
    parts.map((part) => part.type),
    ["step-start", "reasoning", "text", "dynamic-tool", "dynamic-tool", "step-start", "text"],
  );
  assert.equal(parts[4].errorText, "exit code 1");
  assert.deepEqual(message.metadata, { model: "ext-1", tokensUsed: 9, costUsd: 0.002 });
});

test("a resume mid-run replays the reply from its start and ends equal, with no chunk doubled", async () => {
  const reload = new AbortController();
  const first = (await send("chat2", [userMessage("u1", "Explain resumable streams")], reload.signal)).getReader();
  for (let read = 0; read < 12; read += 1) await first.read();
  reload.abort(); // the page goes away mid-run
  await first.cancel().catch(() => {});
  assert.equal((await restSnapshot("chat2")).run !== null, true, "the run was over before the resume: slow the demo down");
  const resumed = await transport.reconnectToStream({ chatId: "chat2" });
  assert.ok(resumed, "an active run resumes");
  const message = await assemble(resumed);
  await untilIdle("chat2");
  assert.deepEqual(uiParts(message), expectedMessage(await restSnapshot("chat2"), "u1").parts);
});

test("a resume when nothing runs is a 204: the library gets no stream", async () => {
  assert.equal(await transport.reconnectToStream({ chatId: "chat1" }), null);
  assert.equal(await transport.reconnectToStream({ chatId: "never-used" }), null);
});

test("a retry with the same message id starts no second run and replays the first", async () => {
  const messages = [userMessage("u-retry", "Once only")];
  const first = await assemble(await send("chat3", messages));
  const again = await assemble(await send("chat3", messages));
  assert.deepEqual(uiParts(again), uiParts(first));
  const snapshot = await restSnapshot("chat3");
  assert.equal(snapshot.messages.filter((m) => m.role === "user").length, 1);
});

test("stop aborts the run: the stream ends with an abort and the server's reply is cancelled", async () => {
  const reader = (await send("chat4", [userMessage("u1", "Stop me")])).getReader();
  const chunks = [];
  while (chunks.filter((chunk) => chunk.type === "text-delta").length < 3) chunks.push((await reader.read()).value);
  const stopped = await fetch(`${server.base}/v1/ai-sdk/chat/chat4/stream`, { method: "DELETE" });
  assert.equal(stopped.status, 204);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  assert.equal(chunks.at(-1).type, "abort");
  await untilIdle("chat4");
  const snapshot = await restSnapshot("chat4");
  assert.equal(snapshot.messages.at(-1).status, "cancelled");
  const message = await assemble(new ReadableStream({ start: (c) => (chunks.forEach((x) => c.enqueue(x)), c.close()) }));
  assert.deepEqual(uiParts(message), expectedMessage(snapshot, "u1").parts);
});

test("bad bodies get a 400 with the reason", async () => {
  const post = (body) =>
    fetch(`${server.base}/v1/ai-sdk/chat`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const cases = [
    [{ id: "bad", messages: [], trigger: "submit-message" }, "no_messages"],
    [{ id: "bad", messages: [{ id: "a1", role: "assistant", parts: [{ type: "text", text: "hi" }] }] }, "last_message_not_user"],
    [{ id: "bad", messages: [userMessage("u1", "x".repeat(300 * 1024))] }, "message_too_large"],
    [{ id: "bad", messages: [userMessage("u1", "again")], trigger: "regenerate-message", messageId: "a1" }, "regenerate_unsupported"],
  ];
  for (const [body, code] of cases) {
    const response = await post(body);
    assert.equal(response.status, 400, code);
    const error = (await response.json()).error;
    assert.equal(error.code, code);
    assert.ok(error.message.length > 10, error.message);
  }
});

test("the stream's headers and framing are those of the library's own server (../shared fixtures)", async (t) => {
  const fixtures = new URL("../../../shared/fixtures/providers/ai-sdk-ui/", import.meta.url);
  let expected;
  try {
    expected = JSON.parse(readFileSync(new URL("synthetic-ui-message-stream.expected-uimessage.json", fixtures), "utf8"));
  } catch {
    t.skip("../shared/fixtures/providers/ai-sdk-ui is absent");
    return;
  }
  const response = await fetch(`${server.base}/v1/ai-sdk/chat`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ id: "chat6", messages: [userMessage("u1", "Frame it")], trigger: "submit-message" }),
  });
  // `connection` is hop-by-hop: HTTP/1.1 keeps the connection alive without it.
  for (const [name, value] of Object.entries(expected.headers).filter(([name]) => name !== "connection")) {
    assert.equal(response.headers.get(name), value, name);
  }
  const text = await response.text();
  const library = readFileSync(new URL("synthetic-ui-message-stream.sse", fixtures), "utf8");
  const framing = (sse) => sse.split("\n\n").filter(Boolean).map((event) => (event.startsWith("data: {") ? "data: {…}" : event));
  assert.deepEqual(new Set(framing(text)), new Set(framing(library)), "data: <json> events, then data: [DONE]");
  assert.ok(text.endsWith("data: [DONE]\n\n"));
});
