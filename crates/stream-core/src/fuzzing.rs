//! Generated input for the engine: frame bodies over a small universe of ids
//! (so that generated frames collide, continue and delete each other), and
//! `Arbitrary` sequences of engine operations. The fuzz target, the property
//! tests and the replay of committed crash inputs all build on this, so they
//! exercise the same shapes.

use arbitrary::{Arbitrary, Unstructured};

use crate::client::session::{EngineConfig, SessionEngine};
use crate::frame::*;
use crate::message::{Outcome, Role, Usage};

/// The channel generated frames belong to.
pub const CHANNEL: &str = "fuzz";

/// A frame body drawn from small id spaces.
#[derive(Debug, Clone, Arbitrary)]
pub enum BodyPick {
    /// `run_started`.
    RunStarted {
        /// Run id pick.
        run: u8,
    },
    /// `message_started`.
    MessageStarted {
        /// Message id pick.
        message: u8,
        /// Role pick.
        role: u8,
        /// `client_message_id` pick.
        client_id: Option<u8>,
        /// Content pick.
        content: Option<u8>,
        /// The call (a subagent's) it is written inside, if any.
        parent_call: Option<u8>,
    },
    /// `delta`.
    Delta {
        /// Message id pick.
        message: u8,
        /// Text pick.
        text: u8,
    },
    /// `tool_call`.
    ToolCall {
        /// Message id pick.
        message: u8,
        /// Call id pick.
        call: u8,
    },
    /// `tool_result`.
    ToolResult {
        /// Tool message id pick.
        message: u8,
        /// Call id pick.
        call: u8,
        /// Whether it carries an error.
        failed: bool,
    },
    /// `status`.
    Status {
        /// Message id pick.
        message: u8,
        /// Tokens.
        tokens: u16,
    },
    /// `message_complete`.
    MessageComplete {
        /// Message id pick.
        message: u8,
        /// Outcome pick.
        outcome: u8,
    },
    /// `error`.
    Error {
        /// Message id pick; none for a session error.
        message: Option<u8>,
    },
    /// `messages_deleted`.
    Deleted {
        /// Message id picks.
        messages: Vec<u8>,
    },
    /// `renamed`.
    Renamed {
        /// Name pick.
        name: u8,
    },
    /// `run_finished`.
    RunFinished {
        /// Run id pick.
        run: u8,
        /// Outcome pick.
        outcome: u8,
        /// Whether an abort ended it.
        aborted: bool,
    },
    /// A type from the future.
    Unknown,
}

const TEXTS: [&str; 6] = ["", "a", "hello ", "wörld ✓", "\"quoted\"\n", "line\\break"];

fn message_id(pick: u8) -> String {
    format!("m{}", pick % 8)
}

fn outcome(pick: u8) -> Outcome {
    [Outcome::Complete, Outcome::Cancelled, Outcome::Failed][usize::from(pick % 3)]
}

impl BodyPick {
    /// The frame body this pick stands for.
    pub fn body(&self) -> FrameBody {
        match *self {
            Self::RunStarted { run } => FrameBody::RunStarted(RunStarted {
                run_id: format!("r{}", run % 4),
                provider: "demo".into(),
                started_at: u64::from(run),
            }),
            Self::MessageStarted { message, role, client_id, content, parent_call } => {
                FrameBody::MessageStarted(MessageStarted {
                    message_id: message_id(message),
                    role: [Role::User, Role::Assistant, Role::Tool, Role::System, Role::Reasoning]
                        [usize::from(role % 5)],
                    created_at: u64::from(message),
                    client_message_id: client_id.map(|pick| format!("c{}", pick % 8)),
                    content: content.map(|pick| TEXTS[usize::from(pick) % TEXTS.len()].to_owned()),
                    parent_tool_call_id: parent_call.map(|pick| format!("t{}", pick % 4)),
                })
            }
            Self::Delta { message, text } => FrameBody::Delta(Delta {
                message_id: message_id(message),
                content: TEXTS[usize::from(text) % TEXTS.len()].to_owned(),
            }),
            Self::ToolCall { message, call } => FrameBody::ToolCall(ToolCallFrame {
                message_id: message_id(message),
                tool_call: ToolCallSpec {
                    id: format!("t{}", call % 6),
                    name: "search".into(),
                    input: serde_json::json!({"q": TEXTS[usize::from(call) % TEXTS.len()], "n": call, "f": 0.5}),
                    started_at: Some(u64::from(call)),
                    // From the same byte, so recorded inputs decode as before.
                    preparing: call & 0x80 != 0,
                },
            }),
            Self::ToolResult { message, call, failed } => FrameBody::ToolResult(ToolResultFrame {
                message_id: format!("tool{}", message % 4),
                tool_call_id: format!("t{}", call % 6),
                output: serde_json::json!([call, "out"]),
                truncated: call % 2 == 0,
                error: failed.then(|| "tool failed".to_owned()),
            }),
            Self::Status { message, tokens } => FrameBody::Status(StatusFrame {
                message_id: message_id(message),
                usage: Box::new(Usage {
                    tokens_used: Some(u64::from(tokens)),
                    model: (tokens % 3 == 0).then(|| "model-x".to_owned()),
                    ..Usage::default()
                }),
            }),
            Self::MessageComplete { message, outcome: pick } => FrameBody::MessageComplete(MessageComplete {
                message_id: message_id(message),
                status: outcome(pick),
                finished_at: u64::from(pick),
                usage: Box::default(),
            }),
            Self::Error { message } => FrameBody::Error(ErrorFrame {
                message_id: message.map(message_id),
                error: "provider error".into(),
                reason: None,
            }),
            Self::Deleted { ref messages } => FrameBody::MessagesDeleted(MessagesDeleted {
                message_ids: messages.iter().take(3).map(|&pick| message_id(pick)).collect(),
            }),
            Self::Renamed { name } => FrameBody::Renamed(Renamed { name: format!("chat {name}") }),
            Self::RunFinished { run, outcome: pick, aborted } => FrameBody::RunFinished(RunFinished {
                run_id: format!("r{}", run % 4),
                status: outcome(pick),
                aborted,
                exit_code: None,
                state_hash: None,
            }),
            Self::Unknown => FrameBody::Unknown("future_frame".into()),
        }
    }
}

/// The frames `1..=n` of epoch `epoch` for the given bodies.
pub fn sequence(picks: &[BodyPick], epoch: &str) -> Vec<SequencedFrame> {
    let (channel, epoch): (std::sync::Arc<str>, std::sync::Arc<str>) = (CHANNEL.into(), epoch.into());
    picks
        .iter()
        .enumerate()
        .map(|(i, pick)| SequencedFrame {
            channel: channel.clone(),
            epoch: epoch.clone(),
            seq: i as u64 + 1,
            body: pick.body(),
        })
        .collect()
}

/// The JSON text of one frame as a server sends it. Unknown bodies, which
/// this implementation never serialises, are written by hand.
pub fn frame_json(frame: &SequencedFrame) -> String {
    match &frame.body {
        FrameBody::Unknown(kind) => serde_json::json!({
            "type": kind, "channel": frame.channel, "epoch": frame.epoch, "seq": frame.seq, "extra": [1, 2]
        })
        .to_string(),
        _ => serde_json::to_string(frame).expect("known frame bodies serialise"),
    }
}

/// The JSON text of a batch of frames.
pub fn batch_json(frames: &[&SequencedFrame]) -> String {
    let items: Vec<String> = frames.iter().map(|frame| frame_json(frame)).collect();
    format!("[{}]", items.join(","))
}

/// One operation on an engine.
#[derive(Debug, Clone, Arbitrary)]
pub enum Op {
    /// Raw text, as a broken or hostile server might send.
    Raw(String),
    /// A valid frame at a chosen seq (maybe out of order, duplicated, or of another epoch).
    Frame {
        /// Seq (0 is made 1).
        seq: u8,
        /// Whether it belongs to a second epoch.
        other_epoch: bool,
        /// Its body.
        body: BodyPick,
    },
    /// A valid frame with one byte of its text changed.
    Mutated {
        /// The body.
        body: BodyPick,
        /// Where to change.
        at: u16,
        /// The new byte.
        byte: u8,
    },
    /// A local send.
    SendLocal {
        /// Content pick.
        content: u8,
        /// `client_message_id` pick.
        client_id: u8,
    },
    /// A failed POST.
    FailSend {
        /// `client_message_id` pick.
        client_id: u8,
    },
    /// A snapshot of the engine's own state at its cursor, or of an empty session.
    Snapshot {
        /// Whether it is the empty `epoch: null` snapshot.
        empty: bool,
    },
    /// Time passes, and timeouts fire.
    Advance {
        /// Milliseconds.
        ms: u16,
    },
}

/// Applies operations to a fresh engine with small bounds, checking the
/// invariants that hold for any input: no panic, bounded memory, unique
/// message ids, no deleted message back in the list, and a copy of the list
/// kept up to date by patches alone equal to the list.
pub fn run(ops: &[Op]) {
    let mut mirror: Vec<crate::Message> = Vec::new();
    let config = EngineConfig {
        reorder: crate::client::reorder::ReorderLimits {
            max_frames: 16,
            max_bytes: 4096,
            stall_ms: 50,
            max_stall_ms: 400,
        },
        ..EngineConfig::default()
    };
    let mut engine = SessionEngine::with_config(CHANNEL, config);
    let mut now = 0u64;
    for op in ops {
        match op {
            Op::Raw(text) => {
                engine.ingest(text, now);
            }
            Op::Frame { seq, other_epoch, body } => {
                let frame = SequencedFrame {
                    channel: CHANNEL.into(),
                    epoch: if *other_epoch { "e2" } else { "e1" }.into(),
                    seq: u64::from((*seq).max(1)),
                    body: body.body(),
                };
                engine.ingest(&frame_json(&frame), now);
            }
            Op::Mutated { body, at, byte } => {
                let frame = SequencedFrame { channel: CHANNEL.into(), epoch: "e1".into(), seq: 1, body: body.body() };
                let mut bytes = frame_json(&frame).into_bytes();
                let at = usize::from(*at) % bytes.len();
                bytes[at] = *byte;
                engine.ingest(&String::from_utf8_lossy(&bytes), now);
            }
            Op::SendLocal { content, client_id } => {
                engine.send_local(TEXTS[usize::from(*content) % TEXTS.len()], &format!("c{}", client_id % 8), now);
            }
            Op::FailSend { client_id } => {
                engine.mark_send_failed(&format!("c{}", client_id % 8), "offline");
            }
            Op::Snapshot { empty } => {
                let snapshot = if *empty {
                    crate::reducer::SessionState::new().snapshot(CHANNEL, None, 0)
                } else {
                    let cursor = engine.cursor().clone();
                    engine.state().snapshot(CHANNEL, cursor.epoch.as_deref(), cursor.seq)
                };
                let text = serde_json::to_string(&ControlFrame::Snapshot(snapshot)).expect("snapshots serialise");
                engine.ingest(&text, now);
            }
            Op::Advance { ms } => {
                now += u64::from(*ms);
                engine.handle_timeout(now);
            }
        }
        let (frames, bytes) = engine.held();
        assert!(frames <= config.reorder.max_frames && bytes <= config.reorder.max_bytes, "buffer past its bounds");
        let confirmed = engine.state().messages();
        let mut ids: Vec<&str> = confirmed.iter().map(|message| message.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), confirmed.len(), "a message id appears twice");
        assert!(ids.iter().all(|id| !engine.state().is_deleted(id)), "a deleted message came back");
        follow_patch(&mut mirror, &mut engine);
        let _ = engine.state_hash();
    }
}

/// Patches `mirror` the way a binding does, rebuilding only what the patch
/// names, and checks that it then equals the list: a change the patch missed
/// leaves a stale entry.
fn follow_patch(mirror: &mut Vec<crate::Message>, engine: &mut SessionEngine) {
    let patch = engine.take_patch();
    let messages: Vec<&crate::Message> = engine.messages().collect();
    assert_eq!(patch.len, messages.len(), "the patch's length");
    let ids_before: Vec<String> = mirror.iter().map(|message| message.id.clone()).collect();
    mirror.truncate(patch.rebuild_from);
    for &at in &patch.updated {
        mirror[at] = messages[at].clone();
    }
    for &(at, from) in &patch.appended {
        // Only text was added, from where the copy's text ends.
        assert_eq!(mirror[at].content.len(), from, "an append from where the text ended");
        mirror[at].content.push_str(&messages[at].content[from..]);
    }
    mirror.extend(messages[patch.rebuild_from..].iter().map(|&message| message.clone()));
    assert!(mirror.iter().eq(messages.iter().copied()), "a change the patch did not name");
    let ids_after: Vec<&str> = mirror.iter().map(|message| message.id.as_str()).collect();
    assert!(patch.ids_changed || ids_before == ids_after, "the ids changed and the patch said not");
    // The nesting kept from patches equals the nesting of the list as it is.
    let mut fresh = crate::client::threads::Threads::default();
    fresh.follow(messages.len(), |i| messages[i], &[], 0, 0);
    let kept = engine.threads();
    assert_eq!(kept.top(), fresh.top(), "the top-level messages");
    for call in messages.iter().flat_map(|message| &message.tool_calls) {
        assert_eq!(kept.answer(&call.id), fresh.answer(&call.id), "the answer of {}", call.id);
        assert_eq!(kept.children(&call.id), fresh.children(&call.id), "the messages inside {}", call.id);
    }
}

/// Decodes operations from raw fuzzer bytes.
pub fn ops_from_bytes(data: &[u8]) -> Vec<Op> {
    Vec::<Op>::arbitrary_take_rest(Unstructured::new(data)).unwrap_or_default()
}
