#!/usr/bin/env node
// A stand-in for an agent CLI in the end-to-end tests: it reads the prompt
// from stdin, then prints a transcript line by line with a pause between
// lines, as the real CLI streams. Its own flags ride on the provider's extra
// arguments: --transcript=PATH (required), --delay-ms=N, --record=PATH (each
// run appends its arguments there). Every other argument is ignored.
import { appendFileSync, readFileSync } from "node:fs";

const flag = (name) => process.argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
const record = flag("record");
if (record) appendFileSync(record, `${JSON.stringify(process.argv.slice(2))}\n`);
const delayMs = Number(flag("delay-ms") ?? 0);
const lines = readFileSync(flag("transcript"), "utf8").split("\n").filter(Boolean);
process.stdin.resume();
process.stdin.on("end", async () => {
  for (const line of lines) {
    process.stdout.write(`${line}\n`);
    if (delayMs) await new Promise((done) => setTimeout(done, delayMs));
  }
});
