// A useChat({ resume: true }) page (page/app.jsx, built into dist/) served by
// the server itself, in Debian's Chromium: a prompt streams; a reload mid-run
// resumes the reply, which ends equal to the server's snapshot with no chunk
// doubled or missing.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { startServer } from "../support/server.mjs";
import { expectedMessage, uiParts } from "./expected.mjs";

const webDir = new URL("./dist", import.meta.url).pathname;
let server;
let browser;

before(async () => {
  server = await startServer({ args: ["--demo-delta-ms", "20", "--demo-reply-words", "200"], webDir });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function restSnapshot(chatId) {
  return (await fetch(`${server.base}/v1/sessions/${chatId}`)).json();
}

test("a reload mid-run resumes the reply, which ends equal to the snapshot", async () => {
  const page = await browser.newPage();
  page.on("pageerror", (error) => assert.fail(`page error: ${error.message}`));
  await page.goto(`${server.base}/#resume-1`);
  await page.locator("#prompt").fill("Explain resumable streams");
  await page.getByRole("button", { name: "Send" }).click();
  await page.locator("article[data-role=assistant] .text").first().waitFor();
  await page.reload();
  assert.notEqual((await restSnapshot("resume-1")).run, null, "the run was over before the reload: slow the demo down");
  await page.locator("main[data-status=ready]").waitFor({ state: "attached", timeout: 30_000 });
  await page.locator("main[data-status=ready] article[data-role=assistant]").waitFor({ timeout: 30_000 });
  const snapshot = await restSnapshot("resume-1");
  assert.equal(snapshot.run, null);
  const messages = await page.evaluate(() => window.chat.messages);
  const assistant = messages.filter((message) => message.role === "assistant");
  assert.equal(assistant.length, 1, "one reply, resumed in place");
  assert.deepEqual(uiParts(assistant[0]), expectedMessage(snapshot, snapshot.messages.find((m) => m.role === "user").client_message_id).parts);
  const shown = (await page.locator("article[data-role=assistant] .text").allTextContents()).join("");
  const said = snapshot.messages.filter((m) => m.role === "assistant").map((m) => m.content).join("");
  assert.equal(shown, said, "the text on screen is the server's, once");
  await page.close();
});
