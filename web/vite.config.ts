// Builds the demo app into dist/ (served by stream-server at `/`). In
// development, `npm run dev` proxies the API and the WebSocket to a running
// server (STREAM_SERVER, default http://127.0.0.1:8080).
import { defineConfig, type ProxyOptions } from "vite";

const server = process.env.STREAM_SERVER ?? "http://127.0.0.1:8080";

/** Rewrites the browser's Origin to the server's, on requests and upgrades. */
const asServerOrigin: ProxyOptions["configure"] = (proxy) => {
  const origin = new URL(server).origin;
  proxy.on("proxyReq", (request) => request.setHeader("origin", origin));
  proxy.on("proxyReqWs", (request) => request.setHeader("origin", origin));
};

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
    // The server refuses a foreign Origin (and Host): the proxy presents
    // itself as the server's own page. Vite's own host check guards this port.
    proxy: {
      "/v1/ws": { target: server.replace(/^http/, "ws"), ws: true, changeOrigin: true, configure: asServerOrigin },
      "/v1": { target: server, changeOrigin: true, configure: asServerOrigin },
      "/healthz": { target: server, changeOrigin: true },
    },
  },
});
