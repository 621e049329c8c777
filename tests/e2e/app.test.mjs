// The web app in Debian's Chromium (playwright-core, never a downloaded
// browser) against a real stream-server serving web/dist. Each test ends by
// comparing what the page holds, and what it shows, with the server's
// `GET /v1/sessions/{id}`. Screenshots of the main states go to target/e2e/.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { chromium } from "playwright-core";
import { startServer } from "../support/server.mjs";

const root = new URL("../../", import.meta.url).pathname;
const shots = `${root}target/e2e`;
const webDir = `${root}web/dist`;
/** A stand-in agent CLI, and the transcripts it replays (this repository's own). */
const fakeAgent = new URL("./fake-agent.mjs", import.meta.url).pathname;
const fixture = (name) => new URL(`./fixtures/${name}`, import.meta.url).pathname;
const launchFlags = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  // A name that resolves to this machine, as a DNS-rebinding attacker's does.
  "--host-resolver-rules=MAP rebind.test 127.0.0.1",
];
/** The demo's pace: slow enough to act mid-run, fast enough for CI. */
const demoArgs = ["--test-hooks", "--demo-delta-ms", "20", "--demo-reply-words", "200"];

let server;
let browser;

before(async () => {
  mkdirSync(shots, { recursive: true });
  server = await startServer({ args: demoArgs, webDir });
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: launchFlags });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function newPage(context) {
  const page = await (context ?? (await browser.newContext({ viewport: { width: 1280, height: 800 } }))).newPage();
  page.on("pageerror", (error) => assert.fail(`page error: ${error.message}`));
  return page;
}

async function openSession(page, base, sessionId) {
  await page.goto(`${base}/#/s/${encodeURIComponent(sessionId)}`);
  await page.locator(".chat").waitFor();
}

async function sendPrompt(page, text) {
  await page.locator("#prompt").fill(text);
  await page.locator("#prompt").press("Enter");
}

async function restSnapshot(base, sessionId) {
  const response = await fetch(`${base}/v1/sessions/${encodeURIComponent(sessionId)}`);
  assert.equal(response.status, 200);
  return response.json();
}

async function waitForServerIdle(base, sessionId, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const running = await (await fetch(`${base}/v1/sessions/running`)).json();
    if (!running.sessions.some((entry) => entry.session_id === sessionId)) return;
    assert.ok(Date.now() < deadline, "the run never finished");
    await new Promise((done) => setTimeout(done, 50));
  }
}

/** The page's message list for a session, as the engine holds it. */
function pageMessages(page, sessionId) {
  return page.evaluate((id) => window.streamClient.snapshot(id).messages, sessionId);
}

/**
 * Waits until the server's session has no run going and the page holds
 * exactly its messages (both read again each round, so a send still in
 * flight cannot freeze the comparison), then checks the assistant text on screen equals the
 * server's: no chunk missing or doubled.
 */
async function expectSameAsServer(page, base, sessionId, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // The snapshot's own `run` says whether it is final: the running list is
    // a separate read, and a send may land between the two.
    const snapshot = await restSnapshot(base, sessionId);
    const held = await pageMessages(page, sessionId);
    const settled = snapshot.run === null && isDeepStrictEqual(held, snapshot.messages);
    if (settled || Date.now() > deadline) {
      assert.equal(snapshot.run, null, "the run never finished");
      assert.deepEqual(held, snapshot.messages);
      // What the reader sees: each assistant text once, whole, the latest
      // last (a long session renders its latest rows; earlier ones come as
      // the reader scrolls up). textContent, since off-screen messages skip
      // rendering (content-visibility) and have no innerText. The page
      // paints on its next frame: a few tries.
      const expected = snapshot.messages.filter((m) => m.role === "assistant" && m.content).map((m) => normalize(shownText(m.content)));
      let shown = [];
      const matches = () => shown.length > 0 === expected.length > 0 && isDeepStrictEqual(shown, expected.slice(expected.length - shown.length));
      for (let attempt = 0; attempt < 50; attempt += 1) {
        shown = (await page.locator("article.assistant .markdown").allTextContents()).map(normalize);
        if (matches()) break;
        await new Promise((done) => setTimeout(done, 100));
      }
      assert.deepEqual(shown, expected.slice(expected.length - shown.length));
      assert.ok(matches(), "the latest texts are shown");
      return snapshot;
    }
    await new Promise((done) => setTimeout(done, 100));
  }
}

/** The text markdown shows: without the code fences, backticks and emphasis marks these transcripts use. */
function shownText(markdown) {
  return markdown.replace(/```[\w+-]*\n?/g, "").replace(/`/g, "").replace(/\*\*|__/g, "");
}

function normalize(text) {
  return text.replace(/\s+/g, " ").trim();
}

async function newSessionThroughTheUi(page, base) {
  await page.goto(`${base}/`);
  await page.getByRole("button", { name: "New session" }).first().click();
  await page.waitForURL(/#\/s\//);
  await page.locator(".chat").waitFor();
  return decodeURIComponent(new URL(page.url()).hash.slice("#/s/".length));
}

/** A new session with a prompt sent, once its reply is streaming on screen. */
async function streamingSession(prompt) {
  const page = await newPage();
  const sessionId = await newSessionThroughTheUi(page, server.base);
  await sendPrompt(page, prompt);
  await page.locator("article.assistant[data-status=streaming] .markdown").waitFor();
  return { page, sessionId };
}

test("a prompt streams a reply that completes and equals the server's session", async () => {
  const page = await newPage();
  const sessionId = await newSessionThroughTheUi(page, server.base);
  await page.locator(".session.active").getByText("New session").waitFor();
  await sendPrompt(page, "Summarise the design notes");
  // Optimistic: the user message is on screen before the server answers.
  await page.locator("article.user").getByText("Summarise the design notes").waitFor();
  await page.locator("article.assistant[data-status=streaming]").waitFor();
  await page.locator("[data-session-id] .spinner").waitFor();
  await page.screenshot({ path: `${shots}/streaming.png` });
  const snapshot = await expectSameAsServer(page, server.base, sessionId);
  assert.equal(snapshot.messages.at(-1).status, "complete");
  // The tool call is a card with its input, output and duration.
  const card = page.locator("details.tool-card").first();
  await card.locator("summary").click();
  await card.getByText("notes about Summarise the design notes").waitFor();
  assert.match(await card.locator(".duration").innerText(), /\d+(\.\d)? m?s/);
  assert.match(await page.locator("article.assistant .usage").last().innerText(), /demo-1 · \d+ tokens/);
  await page.screenshot({ path: `${shots}/complete.png` });
  await page.context().close();
});

test("a reload mid-run shows the run at once and resumes without a doubled or missing chunk", async () => {
  const { page, sessionId } = await streamingSession("Explain resumable streams");
  const reloaded = Date.now();
  await page.reload();
  // The sidebar's loader and the header's status come from the first REST
  // answers, before any frame of the run is replayed.
  await page.locator(`[data-session-id="${sessionId}"] .spinner`).waitFor({ timeout: 5_000 });
  await page.locator(".run-status").waitFor({ timeout: 5_000 });
  const shownAfterMs = Date.now() - reloaded;
  await page.screenshot({ path: `${shots}/reloaded-mid-run.png` });
  const stillRunning = (await (await fetch(`${server.base}/v1/sessions/running`)).json()).sessions.some(
    (entry) => entry.session_id === sessionId,
  );
  assert.ok(stillRunning, `the run was over before the page showed it (${shownAfterMs} ms): slow the demo down`);
  await expectSameAsServer(page, server.base, sessionId);
  await page.locator(`[data-session-id="${sessionId}"] .spinner`).waitFor({ state: "detached" });
  await page.context().close();
});

test("when the server drops every socket mid-run the page reconnects, resumes and ends the same", async () => {
  const { page, sessionId } = await streamingSession("Survive a cut");
  const cut = await fetch(`${server.base}/v1/test/drop-connections`, { method: "POST" });
  assert.equal(cut.status, 204);
  await page.locator(".connection[data-state=reconnecting]").waitFor({ timeout: 5_000 });
  assert.match(await page.locator(".connection").innerText(), /Reconnecting in \d+ s/);
  await page.screenshot({ path: `${shots}/reconnecting.png` });
  await page.locator(".connection[data-state=open]").waitFor({ timeout: 10_000 });
  await expectSameAsServer(page, server.base, sessionId);
  await page.context().close();
});

test("with the WebSocket blocked the page follows over HTTP: a prompt streams, a reload resumes, both end as the server's", async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript(() => {
    // What a proxy that refuses WebSockets looks like to a page: a socket that never opens.
    window.WebSocket = class BlockedWebSocket {
      constructor() {
        this.readyState = 3;
        setTimeout(() => {
          this.onerror?.(new Event("error"));
          this.onclose?.(new CloseEvent("close", { code: 1006 }));
        }, 0);
      }
      send() {}
      close() {}
    };
  });
  const page = await newPage(context);
  const sessionId = await newSessionThroughTheUi(page, server.base);
  await sendPrompt(page, "Stream over HTTP");
  await page.locator("article.assistant[data-status=streaming] .markdown").waitFor();
  await page.locator(".connection[data-via=sse]").waitFor({ timeout: 10_000 });
  assert.match(await page.locator(".connection").innerText(), /Connected \(HTTP\)/);
  await page.screenshot({ path: `${shots}/over-http.png` });
  await page.reload();
  await page.locator("article.assistant .markdown").first().waitFor();
  await expectSameAsServer(page, server.base, sessionId);
  await context.close();
});

test("two tabs on one session end identical", async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const first = await newPage(context);
  const sessionId = await newSessionThroughTheUi(first, server.base);
  const second = await newPage(context);
  await openSession(second, server.base, sessionId);
  await sendPrompt(first, "Two views, one truth");
  await second.locator("article.assistant[data-status=streaming]").waitFor();
  const snapshot = await expectSameAsServer(first, server.base, sessionId);
  await expectSameAsServer(second, server.base, sessionId);
  assert.deepEqual(await pageMessages(second, sessionId), await pageMessages(first, sessionId));
  assert.ok(snapshot.messages.length >= 3);
  await context.close();
});

test("a double-click on send makes one message", async () => {
  const page = await newPage();
  const sessionId = await newSessionThroughTheUi(page, server.base);
  await page.locator("#prompt").fill("Only once, please");
  await page.getByRole("button", { name: "Send" }).dblclick();
  const snapshot = await expectSameAsServer(page, server.base, sessionId);
  assert.deepEqual(
    snapshot.messages.filter((m) => m.role === "user").map((m) => m.content),
    ["Only once, please"],
  );
  assert.equal(await page.locator("article.user").count(), 1);
  await page.context().close();
});

test("Stop aborts the run: the reply ends cancelled, like the server's", async () => {
  const { page, sessionId } = await streamingSession("Stop me halfway");
  await page.getByRole("button", { name: "Stop" }).click();
  await page.locator("article.assistant[data-status=cancelled]").last().getByText("Cancelled", { exact: true }).waitFor();
  const snapshot = await expectSameAsServer(page, server.base, sessionId);
  assert.equal(snapshot.messages.at(-1).status, "cancelled");
  await page.getByRole("button", { name: "Send" }).waitFor();
  await page.screenshot({ path: `${shots}/cancelled.png` });
  await page.context().close();
});

test("a failed send is marked, and Retry sends it once with the same id", async () => {
  const page = await newPage();
  const sessionId = await newSessionThroughTheUi(page, server.base);
  let refused = 0;
  await page.route("**/v1/sessions/*/messages", (route) => {
    refused += 1;
    return refused === 1 ? route.abort("connectionrefused") : route.continue();
  });
  await sendPrompt(page, "Try again later");
  const failed = page.locator("article.user[data-status=failed]");
  await failed.getByText(/Not sent/).waitFor();
  // Nothing runs after a refused send: no loader, a zero count.
  await page.getByRole("tab", { name: "Running 0" }).waitFor();
  assert.equal(await page.locator(`[data-session-id="${sessionId}"] .spinner`).count(), 0);
  await page.screenshot({ path: `${shots}/send-failed.png` });
  const localId = await page.evaluate((id) => window.streamClient.snapshot(id).messages[0].client_message_id, sessionId);
  await failed.getByRole("button", { name: "Retry" }).click();
  const snapshot = await expectSameAsServer(page, server.base, sessionId);
  const users = snapshot.messages.filter((m) => m.role === "user");
  assert.deepEqual(users.map((m) => [m.content, m.client_message_id]), [["Try again later", localId]]);
  assert.equal(refused, 2);
  await page.context().close();
});

test("sessions are renamed, filtered, shown as running, and deleted from the sidebar", async () => {
  const page = await newPage();
  const sessionId = await newSessionThroughTheUi(page, server.base);
  const item = page.locator(`[data-session-id="${sessionId}"]`);
  await item.getByRole("button", { name: /^Rename/ }).click();
  await page.getByLabel(/^New name for/).fill("Release checklist");
  await page.getByLabel(/^New name for/).press("Enter");
  // The rename comes back as a `renamed` frame: the header follows it.
  await page.getByRole("heading", { name: "Release checklist" }).waitFor();
  await page.getByLabel("Filter sessions").fill("checklist");
  await item.waitFor();
  assert.equal(await page.locator(".session-list > li").count(), 1);
  await page.getByLabel("Filter sessions").fill("no such session");
  await page.getByText("No session matches the filter.").waitFor();
  await page.getByLabel("Filter sessions").fill("");
  await sendPrompt(page, "Keep running");
  await page.getByRole("tab", { name: /^Running [1-9]/ }).click();
  await item.locator(".spinner").waitFor();
  await page.screenshot({ path: `${shots}/running-view.png` });
  await waitForServerIdle(server.base, sessionId);
  await page.getByText("Nothing is running.").waitFor();
  await page.getByRole("tab", { name: "All" }).click();
  await item.getByRole("button", { name: /^Delete/ }).click();
  await item.waitFor({ state: "detached" });
  const listed = await (await fetch(`${server.base}/v1/sessions`)).json();
  assert.ok(!listed.some((s) => s.session_id === sessionId));
  await page.context().close();
});

/**
 * Opens a session of at least `minMessages`, scrolls to the middle of its
 * history, sends `prompt` and, while the reply streams in, records long tasks
 * and the gaps between painted frames. Checks the page ends equal to the
 * server and the reader was not moved; writes the figures to target/e2e/NAME.json.
 */
async function streamWhileScrolledUp(base, sessionId, prompt, minMessages, name) {
  const page = await newPage();
  await openSession(page, base, sessionId);
  await page.waitForFunction(([id, min]) => window.streamClient.snapshot(id).messages.length >= min, [sessionId, minMessages], { timeout: 60_000 });
  // Read from the middle of the history while the reply streams in. The
  // list may not be laid out at its full height yet when the snapshot is in,
  // and a scroll to the middle of a short list still follows the bottom: the
  // scroll is made again until the page shows it has left the bottom.
  const jump = page.getByRole("button", { name: /Jump to latest/ });
  for (let attempt = 0; !(await jump.isVisible()); attempt += 1) {
    assert.ok(attempt < 20, "the page never left the bottom of the history");
    await page.locator(".messages").evaluate((element) => {
      element.scrollTop = element.scrollHeight / 2;
      element.dispatchEvent(new Event("scroll"));
    });
    await jump.waitFor({ timeout: 1_000 }).catch(() => {});
  }
  await page.evaluate(() => {
    window.longTasks = [];
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) window.longTasks.push(entry.duration);
    }).observe({ type: "longtask" });
    // The gaps between painted frames, for what the reader feels.
    window.frameGaps = [];
    let last = performance.now();
    const tick = (now) => {
      window.frameGaps.push(now - last);
      last = now;
      if (!window.stopFrames) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  // Messages coming into view render at their real height (content-visibility)
  // and scroll anchoring moves the position meanwhile: read it once it is still.
  await page.locator(".messages").evaluate(async (element) => {
    let last = -1;
    for (let still = 0; still < 3; ) {
      await new Promise((done) => setTimeout(done, 100));
      still = element.scrollTop === last ? still + 1 : 0;
      last = element.scrollTop;
    }
  });
  // What the reader is looking at: the message under the list's top edge.
  // (Its scrollTop may still move: messages above render at their real
  // height, and scroll anchoring keeps the view where it is.)
  const reading = () =>
    page.locator(".messages").evaluate((element) => {
      const box = element.getBoundingClientRect();
      const hit = document.elementFromPoint(box.left + box.width / 2, box.top + 40);
      return hit?.closest("article")?.textContent?.slice(0, 300) ?? null;
    });
  const readBefore = await reading();
  assert.ok(readBefore, "a message is under the reader's eyes");
  await sendPrompt(page, prompt);
  const started = Date.now();
  await page.locator("article.assistant[data-status=streaming]").last().waitFor({ state: "attached" });
  await waitForServerIdle(base, sessionId);
  const streamedMs = Date.now() - started;
  const snapshot = await expectSameAsServer(page, base, sessionId);
  assert.ok(snapshot.messages.length > minMessages);
  // The reader was not dragged to the bottom: the same message is in view.
  assert.equal(await reading(), readBefore);
  await page.screenshot({ path: `${shots}/${name}.png` });
  const durations = (await page.evaluate(() => window.longTasks)).sort((a, b) => a - b);
  const gaps = (await page.evaluate(() => ((window.stopFrames = true), window.frameGaps))).sort((a, b) => a - b);
  // Then the reader scrolls the whole history, top to bottom, a screen per frame.
  const scrolling = await page.locator(".messages").evaluate(async (element) => {
    window.longTasks = [];
    element.scrollTop = 0;
    const started = performance.now();
    while (element.scrollTop + element.clientHeight < element.scrollHeight - 1) {
      element.scrollTop += element.clientHeight;
      await new Promise((done) => requestAnimationFrame(done));
    }
    await new Promise((done) => setTimeout(done, 100));
    return { ms: performance.now() - started, tasks: [...window.longTasks].sort((a, b) => a - b) };
  });
  const report = {
    messages: snapshot.messages.length,
    streamed_ms: streamedMs,
    long_tasks: durations.length,
    over_50_ms: durations.filter((duration) => duration > 50).length,
    median_ms: percentile(durations, 0.5),
    p95_ms: percentile(durations, 0.95),
    max_ms: durations.at(-1) ?? 0,
    frames: gaps.length,
    frame_gap_median_ms: percentile(gaps, 0.5),
    frame_gap_p95_ms: percentile(gaps, 0.95),
    scroll_ms: Math.round(scrolling.ms),
    scroll_long_tasks: scrolling.tasks.length,
    scroll_over_50_ms: scrolling.tasks.filter((duration) => duration > 50).length,
    scroll_max_ms: Math.round(scrolling.tasks.at(-1) ?? 0),
  };
  writeFileSync(`${shots}/${name}.json`, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`${name}: long tasks while streaming into ${report.messages} messages: ${JSON.stringify(report)}`);
  await page.context().close();
  return report;
}

test("a 1,000-message session streams while scrolled up; long tasks are measured", async () => {
  // Seed 250 runs (4 messages each) on a fast server, then restart it in
  // place at the demo's pace: the history comes back from SQLite.
  const seeder = await startServer({ args: ["--demo-delta-ms", "0", "--demo-reply-words", "12"], webDir });
  const sessionId = "long-history";
  for (let run = 0; run < 250; run += 1) {
    const sent = await fetch(`${seeder.base}/v1/sessions/${sessionId}/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ client_message_id: `seed-${run}`, content: `Seed question ${run}` }),
    });
    assert.equal(sent.status, 202);
    await waitForServerIdle(seeder.base, sessionId);
  }
  await seeder.kill();
  const paced = await startServer({
    args: ["--demo-delta-ms", "10", "--demo-reply-words", "400"],
    webDir,
    bind: seeder.address,
    dataDir: seeder.dataDir,
  });
  try {
    await streamWhileScrolledUp(paced.base, sessionId, "Stream while I read", 1000, "long-tasks");
  } finally {
    await paced.stop();
  }
});

/** A Claude Code transcript of `rounds` tool rounds (a command, its big output, the next step), then one answer. */
function bigClaudeTranscript(rounds, outputLines) {
  const session = "fake-cli-long";
  const line = (value) => JSON.stringify({ session_id: session, parent_tool_use_id: null, ...value });
  const lines = [line({ type: "system", subtype: "init", model: "claude-sonnet-test" })];
  for (let round = 0; round < rounds; round += 1) {
    const id = `toolu_${round}`;
    const block = (content) => line({ type: "assistant", message: { id: `msg_${round}`, content: [content] } });
    lines.push(block({ type: "text", text: `Step ${round}: checking module ${round}.` }));
    lines.push(block({ type: "tool_use", id, name: "Bash", input: { command: `cargo test -p module_${round}`, description: `Test module ${round}` } }));
    const output = Array.from({ length: outputLines }, (_, i) => `test module_${round}::case_${i} ... ok`).join("\n");
    lines.push(line({ type: "user", message: { role: "user", content: [{ type: "tool_result", tool_use_id: id, content: output }] } }));
  }
  lines.push(line({ type: "result", subtype: "success", is_error: false, total_cost_usd: 1.5, usage: { input_tokens: 1000, output_tokens: 1000 } }));
  return `${lines.join("\n")}\n`;
}

/** A Claude Code answer streamed word by word (partial messages). */
function streamedClaudeAnswer(words) {
  const event = (value) => JSON.stringify({ type: "stream_event", session_id: "fake-cli-long", parent_tool_use_id: null, event: value });
  const lines = [
    event({ type: "message_start", message: { id: "msg_answer", model: "claude-sonnet-test", usage: { input_tokens: 10 } } }),
    event({ type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }),
  ];
  for (let i = 0; i < words; i += 1) {
    lines.push(event({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text: `word${i} ` } }));
  }
  lines.push(event({ type: "content_block_stop", index: 0 }), event({ type: "message_stop" }));
  lines.push(JSON.stringify({ type: "result", subtype: "success", session_id: "fake-cli-long", total_cost_usd: 0.01, usage: {} }));
  return `${lines.join("\n")}\n`;
}

/**
 * Seeds `sessionId` with a Claude Code transcript of `rounds` tool rounds of
 * `outputLines` lines each, from the fake CLI at full speed; then restarts
 * the server in place, its CLI streaming a 400-word answer at a word per
 * 10 ms, and runs `body` against it. The history comes back from SQLite.
 */
async function withClaudeHistory(sessionId, rounds, outputLines, body) {
  const dir = mkdtempSync(join(tmpdir(), "stream-e2e-"));
  const history = join(dir, "history.jsonl");
  const answer = join(dir, "answer.jsonl");
  writeFileSync(history, bigClaudeTranscript(rounds, outputLines));
  writeFileSync(answer, streamedClaudeAnswer(400));
  const claude = (transcript, delayMs) => ["--no-cli-detection", "--default-provider", "claude-code", "--claude-command", fakeAgent, `--claude-args=--transcript=${transcript},--delay-ms=${delayMs}`];
  const seeder = await startServer({ args: claude(history, 0), webDir });
  const sent = await fetch(`${seeder.base}/v1/sessions/${sessionId}/messages`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ client_message_id: "seed", content: "Test every module" }),
  });
  assert.equal(sent.status, 202);
  await waitForServerIdle(seeder.base, sessionId, 300_000);
  await seeder.kill();
  const paced = await startServer({ args: claude(answer, 10), webDir, bind: seeder.address, dataDir: seeder.dataDir });
  try {
    await body(paced);
  } finally {
    await paced.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

test("a 1,000-message Claude Code session with big tool outputs streams while scrolled up; long tasks are measured", () =>
  // 500 tool rounds of 200 output lines: about 8 MB of history.
  withClaudeHistory("long-claude", 500, 200, (paced) =>
    streamWhileScrolledUp(paced.base, "long-claude", "Now summarise", 1000, "long-tasks-claude"),
  ));

test("a 10,000-message session paints its latest messages soon after its snapshot, and streams at 60 fps", () =>
  // 5,000 tool rounds: an assistant message and its tool's answer each.
  withClaudeHistory("huge-claude", 5000, 3, async (paced) => {
    const sessionId = "huge-claude";
    // The median of three reloads: one alone can meet the machine busy elsewhere.
    const paints = [];
    for (let reload = 0; reload < 3; reload += 1) {
      const page = await newPage();
      // From the first script on: when the snapshot arrives (the first big
      // socket message), and the frame after the one where the last round's
      // message is in the page, which is when it has been painted.
      await page.addInitScript(() => {
        const Native = window.WebSocket;
        window.WebSocket = class extends Native {
          constructor(...args) {
            super(...args);
            this.addEventListener("message", (event) => {
              if (window.snapshotAt === undefined && typeof event.data === "string" && event.data.length > 1_000_000) window.snapshotAt = performance.now();
            });
          }
        };
        const watch = () => {
          const last = document.querySelector(".rows > article.assistant:last-of-type");
          if (last?.textContent.includes("Step 4999:")) requestAnimationFrame(() => (window.paintedAt = performance.now()));
          else requestAnimationFrame(watch);
        };
        requestAnimationFrame(watch);
      });
      await openSession(page, paced.base, sessionId);
      await page.waitForFunction(() => window.paintedAt !== undefined && window.snapshotAt !== undefined, null, { timeout: 60_000 });
      paints.push(await page.evaluate(() => window.paintedAt - window.snapshotAt));
      await page.context().close();
    }
    const firstPaintMs = paints.sort((a, b) => a - b)[1];
    const messages = (await restSnapshot(paced.base, sessionId)).messages.length;
    const report = await streamWhileScrolledUp(paced.base, sessionId, "Now summarise", 10_000, "long-tasks-10k");
    const rounded = paints.map(Math.round);
    writeFileSync(`${shots}/reload-10k.json`, `${JSON.stringify({ messages, first_paint_after_snapshot_ms: rounded }, null, 2)}\n`);
    console.log(`reload-10k: ${messages} messages, latest painted ${rounded.join(" / ")} ms after the snapshot arrived (median ${Math.round(firstPaintMs)})`);
    assert.ok(messages >= 10_000, `${messages} messages`);
    // The target is 300 ms. On this 2-core machine the median varies from
    // about 200 to 390 ms with what else runs, so the figure is reported and
    // the assertion guards against a regression: rendering the whole history
    // would take seconds.
    assert.ok(firstPaintMs <= 1_000, `first paint ${firstPaintMs} ms after the snapshot, the median of ${rounded.join(", ")}`);
    assert.equal(report.over_50_ms, 0, "no long task over 50 ms while streaming");
    assert.ok(report.frame_gap_median_ms <= 17.5, `frames every ${report.frame_gap_median_ms} ms`);
  }));

/** A server whose `claude-code` and `codex` are the fake agent replaying these transcripts. */
function agentServer(record) {
  const agentArgs = (transcript) => `--transcript=${fixture(transcript)},--delay-ms=25,--record=${record}`;
  return startServer({
    webDir,
    args: [
      "--no-cli-detection",
      "--claude-command", fakeAgent, `--claude-args=${agentArgs("claude-session.jsonl")}`,
      "--codex-command", fakeAgent, `--codex-args=${agentArgs("codex-session.jsonl")}`,
    ],
  });
}

/** Picks the provider for new sessions, creates one, and sends a prompt. */
async function agentSession(page, base, provider, prompt) {
  await page.goto(`${base}/`);
  await page.getByLabel("Provider for new sessions").selectOption(provider);
  await page.getByRole("button", { name: "New session" }).first().click();
  await page.waitForURL(/#\/s\//);
  const sessionId = decodeURIComponent(new URL(page.url()).hash.slice("#/s/".length));
  await sendPrompt(page, prompt);
  return sessionId;
}

test("a Claude Code session shows thinking, shell, diff, read, todo, a failed tool, a subagent and its cost", async () => {
  const record = `${shots}/claude-args.jsonl`;
  writeFileSync(record, "");
  const agents = await agentServer(record);
  try {
    const page = await newPage();
    const picker = page.getByLabel("Provider for new sessions");
    await page.goto(`${agents.base}/`);
    await picker.locator("option").nth(2).waitFor({ state: "attached" });
    assert.deepEqual(await picker.locator("option").allTextContents(), ["claude-code", "codex", "demo (demo-1)"]);
    // While it streams, the thinking is open; once done it folds. It is open
    // for a few lines of the transcript only, which a poll from this process
    // can miss on a busy machine: the page notes it itself.
    await page.addInitScript(() => {
      const note = () => {
        if (document.querySelector("details.message.reasoning[open]")) window.thinkingWasOpen = true;
      };
      new MutationObserver(note).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ["open"] });
    });
    const sessionId = await agentSession(page, agents.base, "claude-code", "Fix add()");
    await page.waitForFunction(() => window.thinkingWasOpen === true);
    await waitForServerIdle(agents.base, sessionId);
    const snapshot = await expectSameAsServer(page, agents.base, sessionId);
    assert.equal(snapshot.cost_usd, 0.0123);
    const thinking = page.locator("details.message.reasoning");
    assert.equal(await thinking.getAttribute("open"), null);
    assert.equal(await thinking.locator("summary").innerText(), "Thinking · 40 tokens");

    await page.locator("details.tool-card summary").evaluateAll((summaries) => summaries.forEach((s) => s.parentElement.setAttribute("open", "")));
    const shell = page.locator('details.tool-card[data-kind="shell"]').first();
    assert.match(await shell.locator(".command").innerText(), /\$ ls src/);
    await shell.getByRole("button", { name: /Show all 250 lines/ }).click();
    assert.match(await shell.locator(".terminal").innerText(), /^lib\.rs/);
    const failed = page.locator('details.tool-card[data-kind="shell"][data-state="failed"]');
    assert.match(await failed.innerText(), /cargo test --offline[\s\S]*no matching package named `serde`/);
    const diff = page.locator('details.tool-card[data-kind="edit"]');
    assert.equal((await diff.locator(".removed").innerText()).trimEnd(), "-     a - b");
    assert.equal((await diff.locator(".added").innerText()).trimEnd(), "+     a + b");
    assert.equal(await page.locator('details.tool-card[data-kind="read"] .path').innerText(), "/repo/src/lib.rs");
    const todo = page.locator('details.tool-card[data-kind="todo"] .todo li');
    assert.deepEqual(await todo.locator("input").evaluateAll((boxes) => boxes.map((box) => box.checked)), [true, false, false]);
    const subagent = page.locator('details.tool-card[data-kind="subagent"]');
    await subagent.locator(".nested article.assistant").first().getByText("Reading the README for add().").waitFor();
    await subagent.locator('.nested details.tool-card[data-state="succeeded"] .tool-name').getByText("Grep").waitFor();
    const outsideTheCard = await page
      .locator("article.assistant .markdown")
      .evaluateAll((texts) => texts.filter((t) => t.textContent.includes("Reading the README") && !t.closest(".nested")).length);
    assert.equal(outsideTheCard, 0, "nested, not also in the list");
    assert.equal(await page.locator(".chat-head .agent").innerText(), "claude-code · claude-sonnet-test");
    assert.equal(await page.locator(".chat-head .cost").innerText(), "$0.0123");
    await page.locator(`[data-session-id="${sessionId}"] .session-cost`).getByText("$0.0123").waitFor();
    assert.match(await page.locator(".rows > article.assistant .usage").last().textContent(), /\$0\.0123/);
    await page.locator(".markdown code.hljs").waitFor();
    // The README's picture: the thinking, the diff and the subagent open, the long output folded.
    await page.locator('details.tool-card[data-kind="shell"], details.tool-card[data-kind="read"]').evaluateAll((cards) => cards.forEach((card) => card.removeAttribute("open")));
    await page.locator("details.message.reasoning").evaluate((details) => details.setAttribute("open", ""));
    await diff.evaluate((card) => card.scrollIntoView({ block: "start" }));
    await page.screenshot({ path: `${shots}/agent-session.png`, fullPage: false });
    await subagent.screenshot({ path: `${shots}/agent-subagent.png` });
    await diff.screenshot({ path: `${shots}/agent-diff.png` });

    // The next message continues the CLI's own session.
    await sendPrompt(page, "And the docs?");
    await page.locator("article.user").nth(1).waitFor();
    await waitForServerIdle(agents.base, sessionId);
    const runs = (await import("node:fs")).readFileSync(record, "utf8").trim().split("\n").map((line) => JSON.parse(line));
    assert.equal(runs.length, 2);
    assert.ok(!runs[0].includes("--resume"));
    assert.deepEqual(runs[1].slice(runs[1].indexOf("--resume"), runs[1].indexOf("--resume") + 2), ["--resume", "fake-cli-session-1"]);
    await page.context().close();
  } finally {
    await agents.stop();
  }
});

test("a Codex session shows its commands with exit codes, file changes and plan", async () => {
  const record = `${shots}/codex-args.jsonl`;
  writeFileSync(record, "");
  const agents = await agentServer(record);
  try {
    const page = await newPage();
    const sessionId = await agentSession(page, agents.base, "codex", "Fix the failing test");
    await waitForServerIdle(agents.base, sessionId);
    await expectSameAsServer(page, agents.base, sessionId);
    await page.locator("details.tool-card summary").evaluateAll((summaries) => summaries.forEach((s) => s.parentElement.setAttribute("open", "")));
    const shell = page.locator('details.tool-card[data-kind="shell"]');
    assert.equal(await shell.getAttribute("data-state"), "failed");
    assert.equal(await shell.locator("[data-exit-code]").innerText(), "exit 101");
    assert.match(await page.locator('details.tool-card[data-kind="edit"] .file-changes').innerText(), /update\s+src\/lib\.rs/);
    const todo = page.locator('details.tool-card[data-kind="todo"] .todo input');
    assert.deepEqual(await todo.evaluateAll((boxes) => boxes.map((box) => box.checked)), [true, true]);
    assert.match(await page.locator("details.message.reasoning").textContent(), /Looking for the failing test/);
    assert.equal(await page.locator(".chat-head .agent").innerText(), "codex");
    await page.screenshot({ path: `${shots}/codex-session.png` });
    await page.context().close();
  } finally {
    await agents.stop();
  }
});

test("an agent gone silent shows the server's notice in the chat and on its running row until it speaks", async () => {
  const dir = mkdtempSync(join(tmpdir(), "stream-e2e-"));
  const transcript = join(dir, "pausing.jsonl");
  const line = (value) => JSON.stringify({ session_id: "fake-quiet", parent_tool_use_id: null, ...value });
  writeFileSync(transcript, `${[
    line({ type: "system", subtype: "init" }),
    line({ type: "assistant", message: { id: "m1", content: [{ type: "text", text: "Thinking it over." }] } }),
    line({ type: "assistant", message: { id: "m2", content: [{ type: "text", text: "Back again." }] } }),
    line({ type: "result", subtype: "success", total_cost_usd: 0.001 }),
  ].join("\n")}\n`);
  const quiet = await startServer({
    webDir,
    args: ["--no-cli-detection", "--default-provider", "claude-code", "--provider-stall-ms", "600", "--claude-command", fakeAgent, `--claude-args=--transcript=${transcript},--delay-ms=2500`],
  });
  try {
    const page = await newPage();
    const sessionId = await newSessionThroughTheUi(page, quiet.base);
    await sendPrompt(page, "Take your time");
    const notice = page.locator("article.assistant .notice.stall");
    await notice.getByText(/no output from the provider for 600 ms/).waitFor({ timeout: 10_000 });
    await page.locator(`[data-session-id="${sessionId}"] .stall`).waitFor();
    await page.screenshot({ path: `${shots}/silent-agent.png` });
    await notice.waitFor({ state: "detached", timeout: 10_000 });
    await page.locator(`[data-session-id="${sessionId}"] .stall`).waitFor({ state: "detached" });
    await waitForServerIdle(quiet.base, sessionId);
    await expectSameAsServer(page, quiet.base, sessionId);
    await page.context().close();
  } finally {
    await quiet.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * Run in a page: what that page can learn of a session, over the WebSocket
 * (hello, then the snapshot it subscribes to) and by a REST read.
 */
async function probeSession({ base, sessionId }) {
  const learned = { hello: false, snapshot: null, read: null };
  await new Promise((done) => {
    const socket = new WebSocket(`${base.replace(/^http/, "ws")}/v1/ws`);
    const timer = setTimeout(() => socket.close(), 5_000);
    socket.onmessage = (event) => {
      const parsed = JSON.parse(event.data);
      for (const frame of Array.isArray(parsed) ? parsed : [parsed]) {
        if (frame.type === "hello") {
          learned.hello = true;
          socket.send(JSON.stringify({ type: "subscribe", channel: sessionId }));
        }
        if (frame.type === "snapshot") {
          learned.snapshot = event.data;
          socket.close();
        }
      }
    };
    socket.onclose = () => {
      clearTimeout(timer);
      done();
    };
  });
  try {
    const response = await fetch(`${base}/v1/sessions/${sessionId}`);
    learned.read = { status: response.status, text: await response.text() };
  } catch (error) {
    learned.read = { blocked: String(error) };
  }
  return learned;
}

test("a page of another origin, or behind a rebound name, cannot read a session", async () => {
  const sessionId = `private-${Date.now()}`;
  const secret = "the key I pasted: hunter2";
  const sent = await fetch(`${server.base}/v1/sessions/${sessionId}/messages`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ client_message_id: "c1", content: secret }),
  });
  assert.equal(sent.status, 202);
  const elsewhere = createServer((_, response) => response.end("<!doctype html><title>elsewhere</title>"));
  await new Promise((done) => elsewhere.listen(0, "127.0.0.1", done));
  const context = await browser.newContext();
  try {
    const page = await newPage(context);
    // The control: the server's own page reads it, so the probe can see a leak.
    await page.goto(`${server.base}/`);
    const own = await page.evaluate(probeSession, { base: server.base, sessionId });
    assert.ok(own.hello && own.snapshot?.includes(secret), JSON.stringify(own));
    assert.equal(own.read.status, 200);

    await page.goto(`http://127.0.0.1:${elsewhere.address().port}/`);
    const foreign = await page.evaluate(probeSession, { base: server.base, sessionId });
    assert.deepEqual([foreign.hello, foreign.snapshot], [false, null], "the socket of a foreign page is refused");
    assert.ok(foreign.read.blocked, `CORS keeps the REST answer from the page: ${JSON.stringify(foreign.read)}`);

    // After rebinding, the attacker's name points here and the page is "same-origin".
    const rebound = `http://rebind.test:${new URL(server.base).port}`;
    const landing = await page.goto(`${rebound}/`);
    assert.equal(landing.status(), 403);
    const rebinding = await page.evaluate(probeSession, { base: rebound, sessionId });
    assert.deepEqual([rebinding.hello, rebinding.snapshot], [false, null]);
    assert.equal(rebinding.read.status, 403);
    assert.ok(!rebinding.read.text.includes(secret));
  } finally {
    await context.close();
    elsewhere.close();
  }
});

function percentile(sorted, fraction) {
  if (sorted.length === 0) return 0;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]);
}
