// Builds the demo app into dist/ (served by stream-server at `/`). In
// development, `npm run dev` proxies the API and the WebSocket to a running
// server (STREAM_SERVER, default http://127.0.0.1:8080).
import { defineConfig } from "vite";

const server = process.env.STREAM_SERVER ?? "http://127.0.0.1:8080";

export default defineConfig({
  // JSX without a framework plugin: esbuild's automatic runtime is enough.
  esbuild: { jsx: "automatic" },
  resolve: {
    // agent-stream is linked from ../pkg; its `import "react"` must find this
    // app's React, not a second copy.
    dedupe: ["react", "react-dom"],
  },
  // Pre-bundling would move the package away from its .wasm file.
  optimizeDeps: { exclude: ["agent-stream"] },
  build: { target: "es2022", chunkSizeWarningLimit: 800 },
  server: {
    proxy: {
      "/v1/ws": { target: server.replace(/^http/, "ws"), ws: true },
      "/v1": server,
      "/healthz": server,
    },
  },
});
