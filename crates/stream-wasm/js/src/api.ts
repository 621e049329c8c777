// The package's public surface, shared by the browser and Node entries: the
// engine classes and types (not the raw exports of the WebAssembly module),
// and the transport.

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
  ProviderInfo,
  SessionSnapshot,
  SessionSummary,
  StreamClientOptions,
  WebSocketInstance,
  WebSocketLike,
} from "./transport.js";
