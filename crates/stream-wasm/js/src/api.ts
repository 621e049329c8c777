// The package's public surface, shared by the browser and Node entries: the
// engine classes and types (not the raw exports of the WebAssembly module),
// and the transport.

export { ClientEngine, IngestResult, SessionEngine, protocolVersion } from "./wasm/stream_wasm.js";
export type {
  ClientResult,
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
  SessionChange,
  ToolCall,
  ToolResult,
} from "./wasm/stream_wasm.js";
export { StreamClient } from "./transport.js";
export type {
  ConnectionState,
  CreatedSession,
  ProviderInfo,
  SessionInfo,
  SessionSnapshot,
  SessionSummary,
  StreamClientOptions,
  WebSocketInstance,
  WebSocketLike,
} from "./transport.js";
