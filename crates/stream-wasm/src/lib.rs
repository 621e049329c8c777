//! `stream-wasm`: thin wasm-bindgen bindings over stream-core, one file per
//! exported class, every conversion in `convert`. No logic here that a native
//! test of stream-core cannot reach.

mod client;
mod convert;
mod engine;
mod message_cache;

pub use client::ClientEngine;
pub use convert::IngestResult;
pub use engine::SessionEngine;
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
  | { kind: "started"; run_id: string; provider: string; started_at: number; seq: number }
  | { kind: "finished"; run_id: string; status: Outcome; aborted: boolean; seq: number }
  | { kind: "idle"; seq: number }
  | { kind: "new_epoch" };

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

/** What `ClientEngine.ingest` (or `handleTimeout`) did. */
export interface ClientResult {
  /** Sessions that got frames: `refresh` them. */
  touched: string[];
  /** Sessions to resubscribe, with `subscribeFrame(session)`. */
  resync: string[];
  /** The heartbeat period a `hello` set (ms). */
  heartbeat_ms?: number;
  errors: FrameError[];
  running_changed: boolean;
}

/** What `ClientEngine.refresh` says changed in a session. */
export interface SessionChange {
  /** `messageIds` is a new array. */
  ids: boolean;
  /** `topLevelIds` is a new array. */
  top: boolean;
  /** Every message may have changed. */
  all: boolean;
  /** The ids of the messages that changed, when not `all`. */
  messages: string[];
  /** Tool calls whose answer or inner messages changed, when not `all`. */
  calls: string[];
}

/** The `running` frame, or the body of `GET /v1/sessions/running`. */
export interface RunningList {
  rev: number;
  sessions: { session_id: string; run_id: string; provider: string; started_at: number; last_seq: number; notice?: string }[];
}
"#;

/// The TypeScript types above, and the REST types in `js/src/transport.ts`,
/// are written by hand: this checks them against what the Rust types
/// serialise, field by field and variant by variant, so a field added on one
/// side and not the other fails here.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod types_match_rust {
    use std::collections::BTreeSet;

    use serde::Serialize;
    use serde_json::{Value, json};
    use stream_core::client::RunningEntry;
    use stream_core::frame::{RunInfo, Running};
    use stream_core::message::{Message, MessageStatus, Outcome, Role, ToolCall, ToolCallState, ToolResult, Usage};
    use stream_core::{ResyncReason, RunEvent};

    /// The TypeScript section as written above (the macro takes the constant itself).
    static TYPES: std::sync::LazyLock<&'static str> = std::sync::LazyLock::new(|| {
        let source = include_str!("lib.rs");
        let start = source.find("const TYPES: &'static str = r#\"").expect("the section") + 31;
        &source[start..start + source[start..].find("\"#;").expect("its end")]
    });

    /// The transport's REST types.
    const TRANSPORT: &str = include_str!("../js/src/transport.ts");

    /// The field names of `export interface NAME { ... }` in the section.
    fn declared(interface: &str) -> BTreeSet<String> {
        declared_in(&TYPES, interface)
    }

    /// The field names of `export interface NAME { ... }` in `source`.
    fn declared_in(source: &str, interface: &str) -> BTreeSet<String> {
        let head = format!("export interface {interface} ");
        let start = source.find(&head).unwrap_or_else(|| panic!("{interface} is declared"));
        let body = &source[start..start + source[start..].find("\n}").expect("its end")];
        body.lines()
            .skip(1)
            .map(str::trim)
            .filter(|line| !line.starts_with("/**") && !line.starts_with('*') && !line.is_empty())
            .filter_map(|line| line.split([':', '?']).next())
            .map(str::to_owned)
            .collect()
    }

    /// The field names of each `{ ... }` member of the union `export type NAME =`.
    fn union_members(name: &str) -> Vec<BTreeSet<String>> {
        let head = format!("export type {name} =");
        let start = TYPES.find(&head).unwrap_or_else(|| panic!("{name} is declared")) + head.len();
        let union = &TYPES[start..start + TYPES[start..].find(";\n").expect("its end")];
        // One member per line (`| { ... }`): a member's field may be a union itself.
        union
            .lines()
            .filter_map(|line| line.trim().strip_prefix("| {")?.trim_end().strip_suffix('}').map(str::to_owned))
            .map(|body| {
                body.split(';')
                    .filter_map(|field| field.split([':', '?']).next())
                    .map(|field| field.trim().to_owned())
                    .filter(|field| !field.is_empty())
                    .collect()
            })
            .collect()
    }

    /// The string literals of `export type NAME = ...;` (or of a field's union).
    fn literals(declaration: &str) -> BTreeSet<String> {
        let start = TYPES.find(declaration).expect("the declaration is there") + declaration.len();
        let end = start + TYPES[start..].find(';').expect("its end");
        TYPES[start..end]
            .split('|')
            .filter_map(|part| part.trim().strip_prefix('"')?.strip_suffix('"').map(str::to_owned))
            .collect()
    }

    fn keys(value: &impl Serialize) -> BTreeSet<String> {
        match serde_json::to_value(value).expect("serialises") {
            Value::Object(map) => map.keys().cloned().collect(),
            other => panic!("not an object: {other}"),
        }
    }

    fn names<T: Serialize>(variants: &[T]) -> BTreeSet<String> {
        variants.iter().map(|variant| serde_json::to_value(variant).unwrap().as_str().unwrap().to_owned()).collect()
    }

    #[test]
    fn every_field_and_variant_is_declared_and_nothing_more() {
        let call = ToolCall {
            id: "t".into(),
            name: "n".into(),
            input: json!({}),
            state: ToolCallState::Running,
            error: Some("e".into()),
            started_at: Some(1),
        };
        let result =
            ToolResult { tool_call_id: "t".into(), output: json!(1), truncated: false, error: Some("e".into()) };
        let mut message = Message::new("m", Role::Assistant, MessageStatus::Complete);
        message.created_at = Some(1);
        message.finished_at = Some(2);
        message.client_message_id = Some("c".into());
        message.parent_tool_call_id = Some("p".into());
        message.tool_calls.push(call.clone());
        message.tool_result = Some(result.clone());
        message.error = Some("e".into());
        message.usage = Usage {
            tokens_used: Some(1),
            ctx_used: Some(1),
            ctx_max: Some(1),
            cache_tokens: Some(1),
            reasoning_tokens: Some(1),
            model: Some("m".into()),
            cost_usd: Some(0.5),
            metadata: Some(json!({})),
        };
        assert_eq!(keys(&message), declared("Message"));
        assert_eq!(keys(&call), declared("ToolCall"));
        let error = stream_core::frame::FrameError {
            index: Some(0),
            kind: stream_core::frame::FrameErrorKind::ZeroSeq { frame_type: "delta".into() },
        };
        assert_eq!(keys(&crate::convert::ErrorView::from(&error)), declared("FrameError"));
        let report = stream_core::ClientReport { heartbeat_ms: Some(1), ..Default::default() };
        assert_eq!(keys(&crate::convert::ClientResultView::from(&report)), declared("ClientResult"));
        assert_eq!(keys(&result), declared("ToolResult"));
        assert_eq!(
            names(&[Role::User, Role::Assistant, Role::Tool, Role::System, Role::Reasoning]),
            literals("export type Role =")
        );
        let states = [
            ToolCallState::Preparing,
            ToolCallState::Running,
            ToolCallState::Succeeded,
            ToolCallState::Failed,
            ToolCallState::Cancelled,
        ];
        assert_eq!(names(&states), literals("  state:"));
        let statuses = [MessageStatus::Pending, MessageStatus::Streaming];
        let mut expected = names(&statuses);
        expected.insert("Outcome".into());
        let declared_statuses: BTreeSet<String> = TYPES
            .split("export type MessageStatus =")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .map(|union| union.split('|').map(|part| part.trim().trim_matches('"').to_owned()).collect())
            .unwrap();
        assert_eq!(declared_statuses, expected);
        assert_eq!(keys(&crate::client::SessionChange::default()), declared("SessionChange"));
        assert_eq!(keys(&stream_core::Cursor { epoch: Some("e".into()), seq: 1 }), declared("Cursor"));
        let run = RunInfo { run_id: "r".into(), provider: "p".into(), started_at: 1 };
        assert_eq!(keys(&run), declared("RunInfo"));
        assert_eq!(keys(&Running { rev: 1, sessions: vec![] }), declared("RunningList"));
    }

    #[test]
    fn every_union_member_is_declared_and_nothing_more() {
        let members = |values: Vec<serde_json::Value>| -> Vec<BTreeSet<String>> {
            values.iter().map(|value| value.as_object().expect("an object").keys().cloned().collect()).collect()
        };
        let events = [
            RunEvent::Started { info: RunInfo { run_id: "r".into(), provider: "p".into(), started_at: 1 }, seq: 1 },
            RunEvent::Finished { seq: 2, run_id: "r".into(), status: Outcome::Complete, aborted: false },
            RunEvent::Idle { seq: 3 },
            RunEvent::NewEpoch,
        ];
        let events =
            events.iter().map(|event| serde_json::to_value(crate::convert::RunEventView::from(event)).unwrap());
        assert_eq!(members(events.collect()), union_members("RunEvent"));
        let hash = stream_core::StateHash(1);
        let reasons = [
            ResyncReason::Overflow { held_frames: 1, held_bytes: 1 },
            ResyncReason::EpochChanged { from: None, to: "e".into() },
            ResyncReason::Stalled { after_seq: 1, held_frames: 1, waited_ms: 1 },
            ResyncReason::Diverged { expected: hash, actual: hash },
            ResyncReason::Unsubscribed { reason: "r".into() },
        ];
        assert_eq!(
            members(reasons.iter().map(|r| serde_json::to_value(r).unwrap()).collect()),
            union_members("ResyncReason")
        );
        let entries = [
            RunningEntry::Local { marked_at: 1 },
            RunningEntry::Run { run_id: "r".into(), provider: "p".into(), started_at: 1, notice: Some("n".into()) },
        ];
        assert_eq!(
            members(entries.iter().map(|e| serde_json::to_value(e).unwrap()).collect()),
            union_members("RunningEntry")
        );
    }

    #[test]
    fn the_transports_rest_types_are_what_the_server_answers() {
        use stream_server::rest::{CreatedSession, SessionSummary};
        let summary = SessionSummary {
            session_id: "s".into(),
            name: None,
            created_at: 1,
            updated_at: 1,
            provider: None,
            cost_usd: None,
            running: false,
        };
        assert_eq!(keys(&summary), declared_in(TRANSPORT, "SessionSummary"));
        let created = CreatedSession { session_id: "s".into(), name: "n".into(), provider: None };
        assert_eq!(keys(&created), declared_in(TRANSPORT, "CreatedSession"));
        let provider = stream_server::provider::ProviderInfo {
            name: "d".into(),
            kind: "demo",
            model: Some("m".into()),
            default: true,
        };
        assert_eq!(keys(&provider), declared_in(TRANSPORT, "ProviderInfo"));
    }
}
