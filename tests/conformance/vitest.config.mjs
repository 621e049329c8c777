import { defineConfig } from "vitest/config";

// One server, one file: the suite's tests share the server started in conformance.test.mjs.
export default defineConfig({
  test: {
    include: ["conformance.test.mjs"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    fileParallelism: false,
    maxWorkers: 1,
  },
});
