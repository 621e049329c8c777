//! Wire types for every frame of protocol §2–3, and the validating parser for
//! one WebSocket text message (a frame or an array of frames).
//!
//! A sequenced frame is read in one pass into a wide struct of every field a
//! sequenced frame may carry, then moved into the typed body its `type` names,
//! which is where missing fields are found. Errors stay precise (which frame of
//! a batch, which field, what was wrong) without buffering the frame in a
//! generic tree. Control frames, which are rare, take a second typed pass.

use std::borrow::Cow;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::message::{Message, Outcome, Role, Usage, with_usage_fields};
use crate::state_hash::StateHash;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Whether `id` is a valid session (channel) id: `[A-Za-z0-9._:-]{1,128}`.
pub fn is_valid_session_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b':' | b'-'))
}

/// The default bound on one WebSocket text message.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// A frame that takes a place in a channel's sequence. Channel and epoch are
/// shared strings: every frame of a channel names the same two, so they are
/// allocated once per batch (client) or once per channel (server).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SequencedFrame {
    /// The channel (session id).
    pub channel: Arc<str>,
    /// The history this frame belongs to.
    pub epoch: Arc<str>,
    /// Its place in the history, from 1.
    pub seq: u64,
    /// What happened.
    #[serde(flatten)]
    pub body: FrameBody,
}

/// The body of a sequenced frame, by `type` (protocol §2.1).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FrameBody {
    /// A run began.
    RunStarted(RunStarted),
    /// A message began.
    MessageStarted(MessageStarted),
    /// Text appended to a message.
    Delta(Delta),
    /// A message called a tool.
    ToolCall(ToolCallFrame),
    /// A tool message carries a result.
    ToolResult(ToolResultFrame),
    /// Usage figures for a message.
    Status(StatusFrame),
    /// A message ended.
    MessageComplete(MessageComplete),
    /// Something went wrong, for a message or for the session.
    Error(ErrorFrame),
    /// Messages were removed.
    MessagesDeleted(MessagesDeleted),
    /// The session got a new name.
    Renamed(Renamed),
    /// A run ended.
    RunFinished(RunFinished),
    /// A type this version does not know: it advances the cursor and is
    /// otherwise ignored. Never sent by this implementation.
    #[serde(skip)]
    Unknown(String),
}

/// Body of `run_started`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStarted {
    /// The run.
    pub run_id: String,
    /// The provider that runs it.
    pub provider: String,
    /// Start time, ms since the Unix epoch.
    pub started_at: u64,
}

/// Body of `message_started`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageStarted {
    /// The message.
    pub message_id: String,
    /// Who writes it.
    pub role: Role,
    /// Creation time, ms since the Unix epoch.
    pub created_at: u64,
    /// The id the sending client chose, for user messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<String>,
    /// The full text, for messages that do not stream (user messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The tool call this message is written inside (a subagent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_tool_call_id: Option<String>,
}

/// Body of `delta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// The message.
    pub message_id: String,
    /// Text appended to it.
    pub content: String,
}

/// A tool call as a `tool_call` frame carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallSpec {
    /// The call's id.
    pub id: String,
    /// The tool.
    pub name: String,
    /// Its input, any JSON.
    pub input: Value,
    /// When the call was made (ms since the epoch), for its duration (an
    /// extension of the protocol's shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    /// Set while the input is still streaming: a later `tool_call` with the
    /// same id carries the whole input (an extension).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preparing: bool,
}

/// Body of `tool_call`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallFrame {
    /// The message that makes the call.
    pub message_id: String,
    /// The call.
    pub tool_call: ToolCallSpec,
}

/// Body of `tool_result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResultFrame {
    /// The tool message that carries the result.
    pub message_id: String,
    /// The call it answers.
    pub tool_call_id: String,
    /// The output, any JSON.
    pub output: Value,
    /// Whether the output was cut short.
    pub truncated: bool,
    /// The tool's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Body of `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusFrame {
    /// The message.
    pub message_id: String,
    /// The figures that changed.
    #[serde(flatten)]
    pub usage: Box<Usage>,
}

/// Body of `message_complete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageComplete {
    /// The message.
    pub message_id: String,
    /// How it ended.
    pub status: Outcome,
    /// End time, ms since the Unix epoch.
    pub finished_at: u64,
    /// Final figures.
    #[serde(flatten)]
    pub usage: Box<Usage>,
}

/// Body of `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// The message it concerns; none for a session-level error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// What went wrong.
    pub error: String,
    /// A machine-readable reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Body of `messages_deleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesDeleted {
    /// The removed messages.
    pub message_ids: Vec<String>,
}

/// Body of `renamed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Renamed {
    /// The new name.
    pub name: String,
}

/// Body of `run_finished`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFinished {
    /// The run.
    pub run_id: String,
    /// How it ended.
    pub status: Outcome,
    /// Whether it ended because of an abort.
    pub aborted: bool,
    /// The provider process's exit code, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The state hash after this frame; a client that differs has diverged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_hash: Option<StateHash>,
}

/// The run a session has going, as a snapshot reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The run.
    pub run_id: String,
    /// Its provider.
    pub provider: String,
    /// Start time, ms since the Unix epoch.
    pub started_at: u64,
}

/// A frame outside the sequence (protocol §2.2).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlFrame {
    /// The server's greeting.
    Hello(Hello),
    /// The verdict for a `subscribe`.
    Subscribed(Subscribed),
    /// The state of a channel at a watermark.
    Snapshot(Snapshot),
    /// The sessions that have a run going.
    Running(Running),
    /// The server ended a subscription.
    Unsubscribed(Unsubscribed),
    /// The answer to a `ping`.
    Pong(Pong),
    /// The client sent something invalid.
    ProtocolError(ProtocolError),
    /// A control type this version does not know, or one this reader does
    /// not read (see [`parse_client_message`]); ignored.
    #[serde(skip)]
    Unknown(String),
}

/// Body of `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version.
    pub protocol: u32,
    /// The connection's id, for logs.
    pub connection_id: String,
    /// How often the server sends something; silence beyond it means a dead link.
    pub heartbeat_ms: u64,
}

/// How a subscription catches up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscribeMode {
    /// The frames after the client's cursor follow.
    Replay,
    /// A snapshot follows.
    Snapshot,
}

/// Body of `subscribed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribed {
    /// The channel.
    pub channel: String,
    /// Its current epoch; none for a session that does not exist yet.
    pub epoch: Option<String>,
    /// The last seq of the channel.
    pub head_seq: u64,
    /// How the client catches up.
    pub mode: SubscribeMode,
}

/// Body of `snapshot`; also the answer of `GET /v1/sessions/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The channel.
    pub channel: String,
    /// Its epoch; none for a session that does not exist yet.
    pub epoch: Option<String>,
    /// The watermark: every frame up to it is in, none after.
    pub seq: u64,
    /// The session's name.
    #[serde(default)]
    pub name: Option<String>,
    /// The confirmed messages.
    pub messages: Vec<Message>,
    /// The run going at the watermark.
    #[serde(default)]
    pub run: Option<RunInfo>,
    /// The hash of `messages`.
    pub state_hash: StateHash,
    /// Ids removed so far, so that a late frame cannot bring one back (an
    /// extension of the protocol's shape; absent means none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted_message_ids: Vec<String>,
    /// The session's cost so far in US dollars: the sum of its messages'
    /// `cost_usd`; absent when none has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

/// One running session in a `running` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningSession {
    /// The session.
    pub session_id: String,
    /// Its run.
    pub run_id: String,
    /// The run's provider.
    pub provider: String,
    /// Start time, ms since the Unix epoch.
    pub started_at: u64,
    /// The channel's last seq when this was reported.
    pub last_seq: u64,
    /// The server's notice on the run, e.g. that its provider has gone silent (an extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

/// Body of `running`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    /// Grows with every change; an older one is stale.
    pub rev: u64,
    /// The sessions with a run going.
    pub sessions: Vec<RunningSession>,
}

/// Body of `unsubscribed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsubscribed {
    /// The channel.
    pub channel: String,
    /// Why, such as `slow_consumer` or `deleted`.
    pub reason: String,
}

/// Body of `pong`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    /// The `id` of the ping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
}

/// Body of `protocol_error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolError {
    /// Machine-readable code.
    pub code: String,
    /// What was wrong.
    pub message: String,
    /// The channel concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// Any frame a server sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ServerFrame {
    /// A frame in a channel's sequence.
    Sequenced(SequencedFrame),
    /// A frame outside it.
    Control(ControlFrame),
}

/// A frame a client sends (protocol §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Start (or resume) a channel.
    Subscribe {
        /// The channel.
        channel: String,
        /// The epoch of the cursor.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<String>,
        /// The last seq the client applied.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after_seq: Option<u64>,
    },
    /// Stop a channel.
    Unsubscribe {
        /// The channel.
        channel: String,
    },
    /// Ask for `running` now and on every change.
    WatchRunning,
    /// Ask for a `pong`.
    Ping {
        /// Echoed in the `pong`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
    },
}

/// A frame that failed validation, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {kind}", match .index { Some(i) => format!("frame {i} of the batch"), None => "message".to_string() })]
pub struct FrameError {
    /// Its position in a batch; none when the whole message is at fault.
    pub index: Option<usize>,
    /// What was wrong.
    pub kind: FrameErrorKind,
}

/// What was wrong with a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameErrorKind {
    /// The message is over the size bound.
    #[error("{len} bytes is over the {max}-byte bound for one message; send smaller batches")]
    Oversize {
        /// Its size.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The text is not JSON.
    #[error("invalid JSON at line {line}, column {column}: {detail}")]
    BadJson {
        /// Line of the fault, from 1.
        line: usize,
        /// Column of the fault, from 1.
        column: usize,
        /// The parser's words.
        detail: String,
    },
    /// The frame is not an object with a string `type`.
    #[error("a frame must be a JSON object with a string field `type`: {detail}")]
    NotAFrame {
        /// The parser's words.
        detail: String,
    },
    /// A required field is absent.
    #[error("`{frame_type}` frame lacks the field `{field}`")]
    MissingField {
        /// The frame's type.
        frame_type: String,
        /// The field.
        field: String,
    },
    /// A field has the wrong type or value.
    #[error("`{frame_type}` frame has a field of the wrong type or value: {detail}")]
    WrongType {
        /// The frame's type.
        frame_type: String,
        /// The parser's words.
        detail: String,
    },
    /// A sequenced frame carries seq 0.
    #[error("`{frame_type}` frame has seq 0; sequences start at 1")]
    ZeroSeq {
        /// The frame's type.
        frame_type: String,
    },
    /// The frame is for another channel than the reader's.
    #[error("frame for channel `{found}` given to the reader of channel `{expected}`")]
    WrongChannel {
        /// The reader's channel.
        expected: String,
        /// The frame's channel.
        found: String,
    },
    /// A client frame of a type the server does not know.
    #[error("unknown frame type `{frame_type}`")]
    UnknownType {
        /// The type.
        frame_type: String,
    },
}

impl FrameErrorKind {
    /// A stable machine-readable code, for `protocol_error` and the JS API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Oversize { .. } => "oversize",
            Self::BadJson { .. } => "bad_json",
            Self::NotAFrame { .. } => "not_a_frame",
            Self::MissingField { .. } => "missing_field",
            Self::WrongType { .. } => "wrong_type",
            Self::ZeroSeq { .. } => "zero_seq",
            Self::WrongChannel { .. } => "wrong_channel",
            Self::UnknownType { .. } => "unknown_type",
        }
    }
}

/// A parsed frame with the size of its text, which the reorder buffer counts.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedFrame {
    /// The frame.
    pub frame: ServerFrame,
    /// Bytes of its JSON text.
    pub wire_len: usize,
}

/// What one WebSocket message held: the frames that validated and the errors
/// of those that did not, in batch order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ParsedMessage {
    /// Valid frames.
    pub frames: Vec<ParsedFrame>,
    /// Invalid ones.
    pub errors: Vec<FrameError>,
}

/// Parses one WebSocket text message from a server: a frame or an array of
/// frames. Each frame of a batch stands alone: a bad one is reported with its
/// index and the others are kept. When `channel` is given, frames for another
/// channel are errors.
pub fn parse_server_message(text: &str, channel: Option<&str>, max_bytes: usize) -> ParsedMessage {
    parse_message(text, channel, max_bytes, read_any_control)
}

/// Like [`parse_server_message`] for a client, which needs only the control
/// frames it acts on (`snapshot`, `unsubscribed`, `running`, `hello`); the
/// others come back as [`ControlFrame::Unknown`] without their bodies being
/// read, so a client build carries no parser for them.
pub fn parse_client_message(text: &str, channel: Option<&str>, max_bytes: usize) -> ParsedMessage {
    parse_message(text, channel, max_bytes, read_client_control)
}

/// Reads the body of a control frame of a type the reader wants; `None` for
/// a type it leaves alone. Generic, so a build keeps only the readers it calls.
trait ControlRead: Fn(&str, &str) -> Option<Result<ControlFrame, FrameErrorKind>> {}

impl<F: Fn(&str, &str) -> Option<Result<ControlFrame, FrameErrorKind>>> ControlRead for F {}

fn read_any_control(frame_type: &str, text: &str) -> Option<Result<ControlFrame, FrameErrorKind>> {
    Some(match frame_type {
        "subscribed" => body(text, frame_type).map(ControlFrame::Subscribed),
        "pong" => body(text, frame_type).map(ControlFrame::Pong),
        "protocol_error" => body(text, frame_type).map(ControlFrame::ProtocolError),
        _ => return read_client_control(frame_type, text),
    })
}

fn read_client_control(frame_type: &str, text: &str) -> Option<Result<ControlFrame, FrameErrorKind>> {
    Some(match frame_type {
        "snapshot" => body(text, frame_type).map(ControlFrame::Snapshot),
        "unsubscribed" => body(text, frame_type).map(ControlFrame::Unsubscribed),
        "running" => body(text, frame_type).map(ControlFrame::Running),
        "hello" => body(text, frame_type).map(ControlFrame::Hello),
        _ => return None,
    })
}

fn parse_message<R: ControlRead>(
    text: &str,
    channel: Option<&str>,
    max_bytes: usize,
    read_control: R,
) -> ParsedMessage {
    let mut parsed = ParsedMessage::default();
    if text.len() > max_bytes {
        parsed
            .errors
            .push(FrameError { index: None, kind: FrameErrorKind::Oversize { len: text.len(), max: max_bytes } });
        return parsed;
    }
    let mut names = SharedNames::default();
    if !text.trim_start().starts_with('[') {
        match parse_server_frame(text, channel, &read_control, &mut names) {
            Ok(frame) => parsed.frames.push(ParsedFrame { frame, wire_len: text.len() }),
            Err(kind) => parsed.errors.push(FrameError { index: None, kind }),
        }
        return parsed;
    }
    if let Some(fast) = parse_sequenced_batch(text, channel) {
        return fast;
    }
    let items: Vec<&RawValue> = match serde_json::from_str(text) {
        Ok(items) => items,
        Err(error) => {
            parsed.errors.push(FrameError { index: None, kind: json_error("batch", &error) });
            return parsed;
        }
    };
    parsed.frames.reserve(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let item = item.get();
        match parse_server_frame(item, channel, &read_control, &mut names) {
            Ok(frame) => parsed.frames.push(ParsedFrame { frame, wire_len: item.len() }),
            Err(kind) => parsed.errors.push(FrameError { index: Some(index), kind }),
        }
    }
    parsed
}

/// The common batch, read in one pass: an array of sequenced frames, each
/// read into its wide struct and made a frame as the array is read (no list
/// of wide structs is built). `None` (use the general path, which splits the
/// array first) when the batch holds a control frame, whose body needs its
/// own text, or when any element is not even wire-shaped, so that the error
/// can name it. Each frame's size is counted as an equal share.
fn parse_sequenced_batch(text: &str, channel: Option<&str>) -> Option<ParsedMessage> {
    let mut reader = serde_json::Deserializer::from_str(text);
    let mut parsed = serde::Deserializer::deserialize_seq(&mut reader, SequencedBatch { channel }).ok()?;
    reader.end().ok()?;
    let share = text.len() / (parsed.frames.len() + parsed.errors.len()).max(1);
    for frame in &mut parsed.frames {
        frame.wire_len = share;
    }
    Some(parsed)
}

/// The visitor of [`parse_sequenced_batch`]: fails at the first element
/// that is not a sequenced frame.
struct SequencedBatch<'c> {
    channel: Option<&'c str>,
}

impl<'de> serde::de::Visitor<'de> for SequencedBatch<'_> {
    type Value = ParsedMessage;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an array of sequenced frames")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<ParsedMessage, A::Error> {
        let mut parsed = ParsedMessage::default();
        let mut names = SharedNames::default();
        let mut index = 0;
        while let Some(mut wire) = items.next_element::<WireFrame<'de>>()? {
            if !SEQUENCED_TYPES.contains(&&*wire.frame_type) {
                return Err(serde::de::Error::custom("not a sequenced frame"));
            }
            match sequenced_from_wire(&mut wire, self.channel, &mut names) {
                Ok(frame) => parsed.frames.push(ParsedFrame { frame: ServerFrame::Sequenced(frame), wire_len: 0 }),
                Err(kind) => parsed.errors.push(FrameError { index: Some(index), kind }),
            }
            index += 1;
        }
        Ok(parsed)
    }
}

/// The sequenced frame a wide struct of a sequenced type holds.
fn sequenced_from_wire(
    wire: &mut WireFrame<'_>,
    channel: Option<&str>,
    names: &mut SharedNames,
) -> Result<SequencedFrame, FrameErrorKind> {
    let body = match wire.take_body()? {
        Some(body) => body,
        // Callers pass sequenced types only; any other would be skipped like a future type.
        None => FrameBody::Unknown(wire.frame_type.to_string()),
    };
    let (channel, epoch, seq) = envelope(&Envelope::of(wire), channel, names)?;
    Ok(SequencedFrame { channel, epoch, seq, body })
}

/// Parses one client frame (protocol §3).
pub fn parse_client_frame(text: &str, max_bytes: usize) -> Result<ClientFrame, FrameError> {
    let fail = |kind| FrameError { index: None, kind };
    if text.len() > max_bytes {
        return Err(fail(FrameErrorKind::Oversize { len: text.len(), max: max_bytes }));
    }
    let typed: TypeOnly<'_> = serde_json::from_str(text).map_err(|error| fail(head_error(text, &error)))?;
    if !matches!(&*typed.frame_type, "subscribe" | "unsubscribe" | "watch_running" | "ping") {
        return Err(fail(FrameErrorKind::UnknownType { frame_type: typed.frame_type.into_owned() }));
    }
    serde_json::from_str(text).map_err(|error| fail(json_error(&typed.frame_type, &error)))
}

/// A frame read for its `type` alone.
#[derive(Deserialize)]
struct TypeOnly<'a> {
    #[serde(rename = "type", borrow)]
    frame_type: Cow<'a, str>,
}

/// The envelope of a frame: what places it in a channel's sequence.
struct Envelope<'t> {
    frame_type: &'t str,
    channel: Option<&'t str>,
    epoch: Option<&'t str>,
    seq: Option<u64>,
}

impl<'t> Envelope<'t> {
    fn of(wire: &'t WireFrame<'_>) -> Self {
        Self {
            frame_type: &wire.frame_type,
            channel: wire.channel.as_deref(),
            epoch: wire.epoch.as_deref(),
            seq: wire.seq,
        }
    }

    /// Read from a generic tree: only for frames whose fields clash with the
    /// wide struct (future types), so the slower path is rare.
    fn of_value(value: &'t Value) -> Option<Self> {
        Some(Self {
            frame_type: value.get("type")?.as_str()?,
            channel: value.get("channel").and_then(Value::as_str),
            epoch: value.get("epoch").and_then(Value::as_str),
            seq: value.get("seq").and_then(Value::as_u64),
        })
    }
}

with_usage_fields! {
    /// Every field a sequenced frame can carry, read in one pass over the text.
    /// Which of them a frame must have depends on its `type`, and is checked when
    /// the typed body is built; fields of control frames are skipped here.
    #[derive(Deserialize)]
    struct WireFrame<'a> {
        #[serde(rename = "type", borrow)]
        frame_type: Cow<'a, str>,
        #[serde(default, borrow)]
        channel: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        epoch: Option<Cow<'a, str>>,
        #[serde(default)]
        seq: Option<u64>,
        #[serde(default)]
        message_id: Option<String>,
        #[serde(default)]
        content: Option<String>,
        #[serde(default)]
        role: Option<Role>,
        #[serde(default)]
        created_at: Option<u64>,
        #[serde(default)]
        client_message_id: Option<String>,
        #[serde(default)]
        parent_tool_call_id: Option<String>,
        #[serde(default)]
        run_id: Option<String>,
        #[serde(default)]
        provider: Option<String>,
        #[serde(default)]
        started_at: Option<u64>,
        #[serde(default)]
        tool_call: Option<ToolCallSpec>,
        #[serde(default)]
        tool_call_id: Option<String>,
        #[serde(default, deserialize_with = "present")]
        output: Option<Value>,
        #[serde(default)]
        truncated: Option<bool>,
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        reason: Option<String>,
        #[serde(default)]
        status: Option<Outcome>,
        #[serde(default)]
        finished_at: Option<u64>,
        #[serde(default)]
        aborted: Option<bool>,
        #[serde(default)]
        exit_code: Option<i32>,
        #[serde(default)]
        state_hash: Option<StateHash>,
        #[serde(default)]
        message_ids: Option<Vec<String>>,
        #[serde(default)]
        name: Option<String>,
    }
}

/// Reads a field that may be JSON `null` as present (`Some(Value::Null)`),
/// where a plain `Option` would take `null` for absent.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

impl WireFrame<'_> {
    /// The typed body, for a sequenced type; `None` for any other type.
    fn take_body(&mut self) -> Result<Option<FrameBody>, FrameErrorKind> {
        let frame_type = self.frame_type.clone();
        macro_rules! required {
            ($field:ident) => {
                self.$field.take().ok_or_else(|| FrameErrorKind::MissingField {
                    frame_type: frame_type.to_string(),
                    field: stringify!($field).to_owned(),
                })?
            };
        }
        let body = match &*frame_type {
            "run_started" => FrameBody::RunStarted(RunStarted {
                run_id: required!(run_id),
                provider: required!(provider),
                started_at: required!(started_at),
            }),
            "message_started" => FrameBody::MessageStarted(MessageStarted {
                message_id: required!(message_id),
                role: required!(role),
                created_at: required!(created_at),
                client_message_id: self.client_message_id.take(),
                content: self.content.take(),
                parent_tool_call_id: self.parent_tool_call_id.take(),
            }),
            "delta" => FrameBody::Delta(Delta { message_id: required!(message_id), content: required!(content) }),
            "tool_call" => FrameBody::ToolCall(ToolCallFrame {
                message_id: required!(message_id),
                tool_call: required!(tool_call),
            }),
            "tool_result" => FrameBody::ToolResult(ToolResultFrame {
                message_id: required!(message_id),
                tool_call_id: required!(tool_call_id),
                output: required!(output),
                truncated: required!(truncated),
                error: self.error.take(),
            }),
            "status" => {
                FrameBody::Status(StatusFrame { message_id: required!(message_id), usage: Box::new(self.usage()) })
            }
            "message_complete" => FrameBody::MessageComplete(MessageComplete {
                message_id: required!(message_id),
                status: required!(status),
                finished_at: required!(finished_at),
                usage: Box::new(self.usage()),
            }),
            "error" => FrameBody::Error(ErrorFrame {
                message_id: self.message_id.take(),
                error: required!(error),
                reason: self.reason.take(),
            }),
            "messages_deleted" => FrameBody::MessagesDeleted(MessagesDeleted { message_ids: required!(message_ids) }),
            "renamed" => FrameBody::Renamed(Renamed { name: required!(name) }),
            "run_finished" => FrameBody::RunFinished(RunFinished {
                run_id: required!(run_id),
                status: required!(status),
                aborted: required!(aborted),
                exit_code: self.exit_code.take(),
                state_hash: self.state_hash.take(),
            }),
            _ => return Ok(None),
        };
        Ok(Some(body))
    }
}

const SEQUENCED_TYPES: [&str; 11] = [
    "run_started",
    "message_started",
    "delta",
    "tool_call",
    "tool_result",
    "status",
    "message_complete",
    "error",
    "messages_deleted",
    "renamed",
    "run_finished",
];

const CONTROL_TYPES: [&str; 7] =
    ["hello", "subscribed", "snapshot", "running", "unsubscribed", "pong", "protocol_error"];

fn parse_server_frame<R: ControlRead>(
    text: &str,
    channel: Option<&str>,
    read_control: &R,
    names: &mut SharedNames,
) -> Result<ServerFrame, FrameErrorKind> {
    let mut wire: WireFrame<'_> = match serde_json::from_str(text) {
        Ok(wire) => wire,
        // A frame of a future type may use a known field name with another
        // type; only its envelope matters.
        Err(error) => {
            let tree: Option<Value> = serde_json::from_str(text).ok();
            return match tree.as_ref().and_then(Envelope::of_value) {
                Some(head) if !is_known_type(head.frame_type) => unknown_frame(&head, channel, names),
                _ => Err(head_error(text, &error)),
            };
        }
    };
    if SEQUENCED_TYPES.contains(&&*wire.frame_type) {
        return sequenced_from_wire(&mut wire, channel, names).map(ServerFrame::Sequenced);
    }
    let control = match read_control(&wire.frame_type, text) {
        Some(control) => control?,
        None if CONTROL_TYPES.contains(&&*wire.frame_type) => ControlFrame::Unknown(wire.frame_type.into_owned()),
        None => return unknown_frame(&Envelope::of(&wire), channel, names),
    };
    if let (Some(expected), Some(found)) = (channel, control.channel()) {
        check_channel(expected, found)?;
    }
    Ok(ServerFrame::Control(control))
}

fn is_known_type(frame_type: &str) -> bool {
    SEQUENCED_TYPES.contains(&frame_type) || CONTROL_TYPES.contains(&frame_type)
}

/// Forward compatibility (§2.1): a frame of an unknown type with a whole
/// envelope still takes its place in the sequence; without one it is an
/// unknown control frame, ignored.
fn unknown_frame(
    head: &Envelope<'_>,
    channel: Option<&str>,
    names: &mut SharedNames,
) -> Result<ServerFrame, FrameErrorKind> {
    let frame_type = head.frame_type.to_string();
    if head.channel.is_some() && head.epoch.is_some() && head.seq.is_some() {
        let (channel, epoch, seq) = envelope(head, channel, names)?;
        return Ok(ServerFrame::Sequenced(SequencedFrame {
            channel,
            epoch,
            seq,
            body: FrameBody::Unknown(frame_type),
        }));
    }
    Ok(ServerFrame::Control(ControlFrame::Unknown(frame_type)))
}

impl ControlFrame {
    /// The channel a control frame concerns, if any.
    pub fn channel(&self) -> Option<&str> {
        match self {
            Self::Subscribed(frame) => Some(&frame.channel),
            Self::Snapshot(frame) => Some(&frame.channel),
            Self::Unsubscribed(frame) => Some(&frame.channel),
            Self::ProtocolError(frame) => frame.channel.as_deref(),
            Self::Hello(_) | Self::Running(_) | Self::Pong(_) | Self::Unknown(_) => None,
        }
    }
}

/// Shares the channel and epoch strings among the frames of one message.
#[derive(Default)]
struct SharedNames {
    channel: Option<Arc<str>>,
    epoch: Option<Arc<str>>,
}

impl SharedNames {
    fn share(slot: &mut Option<Arc<str>>, text: &str) -> Arc<str> {
        match slot {
            Some(shared) if **shared == *text => Arc::clone(shared),
            _ => Arc::clone(slot.insert(Arc::from(text))),
        }
    }
}

fn envelope(
    head: &Envelope<'_>,
    expected: Option<&str>,
    names: &mut SharedNames,
) -> Result<(Arc<str>, Arc<str>, u64), FrameErrorKind> {
    let missing =
        |field: &str| FrameErrorKind::MissingField { frame_type: head.frame_type.to_string(), field: field.to_owned() };
    let channel = head.channel.ok_or_else(|| missing("channel"))?;
    let epoch = head.epoch.ok_or_else(|| missing("epoch"))?;
    let seq = head.seq.ok_or_else(|| missing("seq"))?;
    if seq == 0 {
        return Err(FrameErrorKind::ZeroSeq { frame_type: head.frame_type.to_string() });
    }
    if let Some(expected) = expected {
        check_channel(expected, channel)?;
    }
    Ok((SharedNames::share(&mut names.channel, channel), SharedNames::share(&mut names.epoch, epoch), seq))
}

fn check_channel(expected: &str, found: &str) -> Result<(), FrameErrorKind> {
    if expected == found {
        Ok(())
    } else {
        Err(FrameErrorKind::WrongChannel { expected: expected.to_owned(), found: found.to_owned() })
    }
}

fn body<T: DeserializeOwned>(text: &str, frame_type: &str) -> Result<T, FrameErrorKind> {
    serde_json::from_str(text).map_err(|error| json_error(frame_type, &error))
}

/// Explains why the envelope could not be read. When only an envelope field
/// was wrong, a second look for `type` alone lets the error name the frame.
fn head_error(text: &str, error: &serde_json::Error) -> FrameErrorKind {
    match json_error("frame", error) {
        syntax @ FrameErrorKind::BadJson { .. } => syntax,
        _ => match serde_json::from_str::<TypeOnly<'_>>(text) {
            Ok(typed) => {
                FrameErrorKind::WrongType { frame_type: typed.frame_type.into_owned(), detail: message_of(error) }
            }
            Err(_) => FrameErrorKind::NotAFrame { detail: message_of(error) },
        },
    }
}

/// Sorts a serde_json error into our kinds. serde reports a missing field only
/// in its message (`missing field `x``), so that is where the name is read from.
fn json_error(frame_type: &str, error: &serde_json::Error) -> FrameErrorKind {
    use serde_json::error::Category;
    let detail = message_of(error);
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            FrameErrorKind::BadJson { line: error.line(), column: error.column(), detail }
        }
        Category::Data => match detail.strip_prefix("missing field `").and_then(|rest| rest.strip_suffix('`')) {
            Some(field) => FrameErrorKind::MissingField { frame_type: frame_type.to_owned(), field: field.to_owned() },
            None => FrameErrorKind::WrongType { frame_type: frame_type.to_owned(), detail },
        },
    }
}

/// The error's message without serde_json's " at line L column C" suffix,
/// which the kinds carry on their own where it means something.
fn message_of(error: &serde_json::Error) -> String {
    let full = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match full.strip_suffix(&suffix) {
        Some(message) => message.to_owned(),
        None => full,
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    const MAX: usize = DEFAULT_MAX_MESSAGE_BYTES;

    fn only_error(text: &str, channel: Option<&str>) -> FrameError {
        let parsed = parse_server_message(text, channel, MAX);
        assert!(parsed.frames.is_empty(), "{parsed:?}");
        assert_eq!(parsed.errors.len(), 1, "{parsed:?}");
        parsed.errors[0].clone()
    }

    #[test]
    fn session_ids_follow_the_protocol_pattern() {
        for good in ["a", "chat-1", "A.b_c:d-9", &"x".repeat(128)] {
            assert!(is_valid_session_id(good), "{good}");
        }
        for bad in ["", "a b", "a/b", "é", &"x".repeat(129)] {
            assert!(!is_valid_session_id(bad), "{bad}");
        }
    }

    #[test]
    fn parses_a_delta() {
        let parsed = parse_server_message(
            r#"{"type":"delta","channel":"s1","epoch":"e1","seq":3,"message_id":"m1","content":"hi"}"#,
            Some("s1"),
            MAX,
        );
        assert!(parsed.errors.is_empty());
        let ServerFrame::Sequenced(frame) = &parsed.frames[0].frame else { panic!("{parsed:?}") };
        assert_eq!(frame.seq, 3);
        assert_eq!(frame.body, FrameBody::Delta(Delta { message_id: "m1".into(), content: "hi".into() }));
    }

    #[test]
    fn sequenced_frames_serialize_to_what_they_parse_from() {
        let frame = SequencedFrame {
            channel: "s".into(),
            epoch: "e".into(),
            seq: 9,
            body: FrameBody::RunFinished(RunFinished {
                run_id: "r".into(),
                status: Outcome::Cancelled,
                aborted: true,
                exit_code: Some(-9),
                state_hash: Some(StateHash(77)),
            }),
        };
        let text = serde_json::to_string(&ServerFrame::Sequenced(frame.clone())).unwrap();
        assert!(text.contains(r#""type":"run_finished""#), "{text}");
        let parsed = parse_server_message(&text, None, MAX);
        assert_eq!(parsed.frames[0].frame, ServerFrame::Sequenced(frame));
    }

    #[test]
    fn a_batch_keeps_its_good_frames_and_reports_the_bad_by_index() {
        let parsed = parse_server_message(
            r#"[{"type":"renamed","channel":"s","epoch":"e","seq":1,"name":"a"},
                {"type":"delta","channel":"s","epoch":"e","seq":2,"message_id":"m"},
                {"type":"pong"}]"#,
            None,
            MAX,
        );
        assert_eq!(parsed.frames.len(), 2);
        assert_eq!(
            parsed.errors,
            vec![FrameError {
                index: Some(1),
                kind: FrameErrorKind::MissingField { frame_type: "delta".into(), field: "content".into() }
            }]
        );
        assert_eq!(parsed.errors[0].to_string(), "frame 1 of the batch: `delta` frame lacks the field `content`");
    }

    #[test]
    fn each_validation_error_has_its_kind() {
        let cases: &[(&str, &str)] = &[
            ("{not json", "bad_json"),
            ("[1,", "bad_json"),
            ("42", "not_a_frame"),
            (r#"{"channel":"s"}"#, "not_a_frame"),
            (r#"{"type":"delta","epoch":"e","seq":1,"message_id":"m","content":""}"#, "missing_field"),
            (r#"{"type":"delta","channel":"s","epoch":"e","message_id":"m","content":""}"#, "missing_field"),
            (r#"{"type":"delta","channel":"s","epoch":"e","seq":"1","message_id":"m","content":""}"#, "wrong_type"),
            (r#"{"type":"delta","channel":"s","epoch":"e","seq":1,"message_id":"m","content":5}"#, "wrong_type"),
            (
                r#"{"type":"run_finished","channel":"s","epoch":"e","seq":1,"run_id":"r","status":"odd","aborted":false}"#,
                "wrong_type",
            ),
            (r#"{"type":"delta","channel":"s","epoch":"e","seq":0,"message_id":"m","content":""}"#, "zero_seq"),
            (
                r#"{"type":"delta","channel":"other","epoch":"e","seq":1,"message_id":"m","content":""}"#,
                "wrong_channel",
            ),
            (
                r#"{"type":"snapshot","channel":"other","epoch":null,"seq":0,"messages":[],"state_hash":"0000000000000000"}"#,
                "wrong_channel",
            ),
        ];
        for (text, code) in cases {
            let error = only_error(text, Some("s"));
            assert_eq!(error.kind.code(), *code, "{text}: {error}");
        }
    }

    #[test]
    fn missing_field_names_the_field_and_the_type() {
        let error = only_error(r#"{"type":"tool_call","channel":"s","epoch":"e","seq":1,"message_id":"m"}"#, None);
        assert_eq!(
            error.kind,
            FrameErrorKind::MissingField { frame_type: "tool_call".into(), field: "tool_call".into() }
        );
    }

    #[test]
    fn bad_json_says_where() {
        let error = only_error("{\"type\":\n  oops}", None);
        let FrameErrorKind::BadJson { line, column, .. } = error.kind else { panic!("{error:?}") };
        assert_eq!((line, column), (2, 3));
    }

    #[test]
    fn oversize_is_refused_before_parsing() {
        let text = format!(r#"{{"type":"pong","id":"{}"}}"#, "x".repeat(100));
        let parsed = parse_server_message(&text, None, 64);
        assert_eq!(parsed.errors[0].kind, FrameErrorKind::Oversize { len: text.len(), max: 64 });
    }

    #[test]
    fn unknown_type_with_envelope_is_sequenced_and_without_is_control() {
        let parsed = parse_server_message(
            r#"[{"type":"reaction","channel":"s","epoch":"e","seq":4,"emoji":"+1"},{"type":"banner","text":"hi"}]"#,
            Some("s"),
            MAX,
        );
        assert!(parsed.errors.is_empty(), "{parsed:?}");
        let ServerFrame::Sequenced(frame) = &parsed.frames[0].frame else { panic!() };
        assert_eq!((frame.seq, &frame.body), (4, &FrameBody::Unknown("reaction".into())));
        assert_eq!(parsed.frames[1].frame, ServerFrame::Control(ControlFrame::Unknown("banner".into())));
        // A future type may give a known field name another type.
        let parsed = parse_server_message(
            r#"{"type":"reaction","channel":"s","epoch":"e","seq":5,"content":{"emoji":"+1"}}"#,
            Some("s"),
            MAX,
        );
        let ServerFrame::Sequenced(frame) = &parsed.frames[0].frame else { panic!("{parsed:?}") };
        assert_eq!((frame.seq, &frame.body), (5, &FrameBody::Unknown("reaction".into())));
    }

    #[test]
    fn empty_snapshot_parses_with_null_epoch() {
        let parsed = parse_server_message(
            r#"{"type":"snapshot","channel":"s","epoch":null,"seq":0,"name":null,"messages":[],"run":null,"state_hash":"0123456789abcdef"}"#,
            Some("s"),
            MAX,
        );
        let ServerFrame::Control(ControlFrame::Snapshot(snapshot)) = &parsed.frames[0].frame else {
            panic!("{parsed:?}")
        };
        assert_eq!((snapshot.epoch.as_deref(), snapshot.seq), (None, 0));
    }

    #[test]
    fn client_frames_parse_and_unknown_ones_are_named() {
        assert_eq!(
            parse_client_frame(r#"{"type":"subscribe","channel":"s","epoch":"e","after_seq":5}"#, MAX).unwrap(),
            ClientFrame::Subscribe { channel: "s".into(), epoch: Some("e".into()), after_seq: Some(5) }
        );
        assert_eq!(parse_client_frame(r#"{"type":"watch_running"}"#, MAX).unwrap(), ClientFrame::WatchRunning);
        let error = parse_client_frame(r#"{"type":"dance"}"#, MAX).unwrap_err();
        assert_eq!(error.kind.code(), "unknown_type");
        let error = parse_client_frame(r#"{"type":"subscribe"}"#, MAX).unwrap_err();
        assert_eq!(
            error.kind,
            FrameErrorKind::MissingField { frame_type: "subscribe".into(), field: "channel".into() }
        );
    }
}
