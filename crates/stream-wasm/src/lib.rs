//! `stream-wasm`: thin wasm-bindgen bindings over stream-core, one file per
//! exported class, every conversion in `convert`. No logic here that a native
//! test of stream-core cannot reach.

mod convert;
mod engine;
mod processing;

pub use convert::IngestResult;
pub use engine::SessionEngine;
pub use processing::ProcessingMap;
use wasm_bindgen::prelude::wasm_bindgen;

/// The wire protocol version the engine speaks.
#[wasm_bindgen(js_name = protocolVersion)]
pub fn protocol_version() -> u32 {
    stream_core::frame::PROTOCOL_VERSION
}

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** How a message or run ended. */
export type Outcome = "complete" | "cancelled" | "failed";
/** Where a message is in its life; `pending` is client-only. */
export type MessageStatus = "pending" | "streaming" | Outcome;
/** `reasoning`: the agent's thinking, in a message of its own before its text. */
export type Role = "user" | "assistant" | "tool" | "system" | "reasoning";
/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface ToolCall {
  id: string;
  name: string;
  input: Json;
  /** `preparing`: its input is still streaming in. */
  state: "preparing" | "running" | "succeeded" | "failed" | "cancelled";
  error?: string;
  /** When the call was made (ms since the epoch), when the server said. */
  started_at?: number;
}

export interface ToolResult {
  tool_call_id: string;
  output: Json;
  truncated: boolean;
  error?: string;
}

/** One entry of a session's list (protocol §5; wire field names). */
export interface Message {
  id: string;
  role: Role;
  content: string;
  status: MessageStatus;
  created_at?: number;
  finished_at?: number;
  client_message_id?: string;
  /** The tool call (a subagent's) this message was written inside. */
  parent_tool_call_id?: string;
  tool_calls: ToolCall[];
  tool_result?: ToolResult;
  tokens_used?: number;
  ctx_used?: number;
  ctx_max?: number;
  cache_tokens?: number;
  reasoning_tokens?: number;
  model?: string;
  /** What the message cost in US dollars, when the provider says. */
  cost_usd?: number;
  error?: string;
  metadata?: Json;
}

export interface Cursor {
  epoch: string | null;
  seq: number;
}

export interface RunInfo {
  run_id: string;
  provider: string;
  started_at: number;
}

/** Why the transport must resubscribe (`subscribeFrame()` says from where). */
export type ResyncReason =
  | { kind: "overflow"; held_frames: number; held_bytes: number }
  | { kind: "epoch_changed"; from: string | null; to: string }
  | { kind: "stalled"; after_seq: number; held_frames: number; waited_ms: number }
  | { kind: "diverged"; expected: string; actual: string }
  | { kind: "unsubscribed"; reason: string };

export type RunEvent =
  | { kind: "started"; runId: string; provider: string; startedAt: number; seq: number }
  | { kind: "finished"; runId: string; status: Outcome; aborted: boolean; seq: number };

export interface FrameError {
  /** `bad_json`, `not_a_frame`, `missing_field`, `wrong_type`, `zero_seq`, `wrong_channel`, `oversize`, `not_text`. */
  code: string;
  message: string;
  /** Position in a batch; null when the whole message is at fault. */
  index: number | null;
}

export type SendOutcome = "added" | "retried" | "duplicate";

export type RunningEntry =
  | { source: "local"; marked_at: number }
  | { source: "run"; run_id: string; provider: string; started_at: number; notice?: string };

/** The `running` frame, or the body of `GET /v1/sessions/running`. */
export interface RunningList {
  rev: number;
  sessions: { session_id: string; run_id: string; provider: string; started_at: number; last_seq: number; notice?: string }[];
}
"#;
