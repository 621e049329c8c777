// The published Durable Streams conformance suite against our server binary
// (STREAM_SERVER_BIN, default target/debug/stream-server) on a free port.
// Long-polls wait 2 s here, as the suite's own timeouts assume; users get ~30 s.
import { afterAll, beforeAll, describe } from "vitest";
import { runConformanceTests } from "@durable-streams/server-conformance-tests";
import { startServer } from "../support/server.mjs";

const longPollTimeoutMs = 2_000;
const config = { baseUrl: "", longPollTimeoutMs };
let server;

describe("stream-server", () => {
  beforeAll(async () => {
    server = await startServer({ args: ["--long-poll-ms", String(longPollTimeoutMs)] });
    config.baseUrl = server.base;
  });
  afterAll(async () => {
    await server?.stop();
  });
  runConformanceTests(config);
});
