// The package entry for browsers and bundlers (Vite): the engine classes,
// `ready()` to load the WebAssembly once, and the transport.

import init from "./wasm/stream_wasm.js";

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

let loading: Promise<unknown> | null = null;

/** Loads the WebAssembly module; call (and await) once before using the classes. */
export function ready(): Promise<void> {
  loading ??= init();
  return loading.then(() => undefined);
}
