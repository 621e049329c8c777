// The package entry for Node ≥ 20: the WebAssembly module is loaded
// synchronously at import, so the classes are usable at once.

import { readFileSync } from "node:fs";
import { initSync } from "./wasm/stream_wasm.js";

initSync({ module: readFileSync(new URL("./wasm/stream_wasm_bg.wasm", import.meta.url)) });

// Only the public surface: not the raw exports of the WebAssembly module.
export { IngestResult, ProcessingMap, SessionEngine, protocolVersion } from "./wasm/stream_wasm.js";
export type {
  Cursor,
  FrameError,
  Json,
  Message,
  MessageStatus,
  Outcome,
  ResyncReason,
  Role,
  RunEvent,
  RunInfo,
  RunningEntry,
  RunningList,
  SendOutcome,
  ToolCall,
  ToolResult,
} from "./wasm/stream_wasm.js";
export { StreamClient } from "./transport.js";
export type {
  ConnectionState,
  SessionSnapshot,
  StreamClientOptions,
  WebSocketInstance,
  WebSocketLike,
} from "./transport.js";

/** Already loaded in Node; kept for code shared with browsers. */
export function ready(): Promise<void> {
  return Promise.resolve();
}
