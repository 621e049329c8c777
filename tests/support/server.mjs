// Starts the stream-server binary for JavaScript tests: on a free port (or a
// given one, to restart in place), in a temporary data directory unless one
// is given, and reads the address from the line it prints when it listens.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

const defaultBinary = new URL("../../target/debug/stream-server", import.meta.url).pathname;

/**
 * @param {object} [options]
 * @param {string[]} [options.args] extra command-line flags
 * @param {string} [options.bind] address to listen on; default a free port
 * @param {string} [options.dataDir] data directory; default a new temporary one
 * @param {string} [options.webDir] web app to serve; default none
 */
export async function startServer({ args = [], bind = "127.0.0.1:0", dataDir, webDir = "/nonexistent" } = {}) {
  const binary = resolve(process.env.STREAM_SERVER_BIN ?? defaultBinary);
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), "stream-test-"));
  const child = spawn(binary, ["--bind", bind, "--data-dir", dir, "--web-dir", webDir, "--log", "warn", ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const line = await new Promise((done, fail) => {
    createInterface({ input: child.stdout }).once("line", done);
    child.once("exit", (code) => fail(new Error(`stream-server exited with ${code}`)));
  });
  const address = /http:\/\/([^ /]+)/.exec(line)[1];
  const exited = new Promise((done) => child.once("exit", done));
  return {
    base: `http://${address}`,
    address,
    dataDir: dir,
    /** Kills the process (SIGKILL), keeping its data directory. */
    async kill() {
      child.kill("SIGKILL");
      await exited;
    },
    /** Kills the process and removes the data directory. */
    async stop() {
      child.kill("SIGKILL");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
