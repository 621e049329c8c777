//! Every conversion between stream-core's Rust values and JS values, in one
//! place: the JS views of reports, errors, run events and cursors (the wire's
//! snake_case field names, numbers for u64 fields, hashes as hex strings).
//!
//! Values cross as JSON text and the host's `JSON.parse`/`JSON.stringify`:
//! the engine already carries serde_json, so no second serializer is linked
//! (the .wasm stays within its size budget), and native JSON is fast.

use std::cell::RefCell;

use serde::Serialize;
use stream_core::client::SendOutcome;
use stream_core::frame::FrameError;
use stream_core::message::Outcome;
use stream_core::{ClientReport, IngestReport, ResyncReason, RunEvent};
use wasm_bindgen::prelude::*;

/// A time argument from JS (ms since the epoch), the host's clock when absent.
pub(crate) fn now_or(now_ms: Option<f64>) -> u64 {
    now_ms.unwrap_or_else(js_sys::Date::now).max(0.0) as u64
}

/// Serialises any value as plain JS objects and numbers.
pub(crate) fn to_js<T: Serialize + ?Sized>(value: &T) -> JsValue {
    // Our types always serialise; a failure would be a bug, reported as null.
    serde_json::to_string(value).ok().and_then(|text| js_sys::JSON::parse(&text).ok()).unwrap_or(JsValue::NULL)
}

#[wasm_bindgen]
extern "C" {
    /// The host's `TextEncoder` (browsers, Node ≥ 11).
    type TextEncoder;
    #[wasm_bindgen(constructor)]
    fn new() -> TextEncoder;
    /// Writes UTF-8 straight into `destination` (here, the engine's memory).
    #[wasm_bindgen(method, js_name = encodeInto)]
    fn encode_into(this: &TextEncoder, source: &JsValue, destination: &mut [u8]) -> EncodeIntoResult;

    /// What `encodeInto` did.
    type EncodeIntoResult;
    #[wasm_bindgen(method, getter)]
    fn written(this: &EncodeIntoResult) -> usize;
}

/// A scratch buffer above this size is let go after use, so that one huge
/// message does not pin its memory.
const SCRATCH_KEPT_BYTES: usize = 256 * 1024;

thread_local! {
    static ENCODER: TextEncoder = TextEncoder::new();
    /// Where JS strings are written: reused, so a message costs no allocation.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Calls `read` with the text of a JS string; `None` for any other value.
///
/// The host's native `TextEncoder.encodeInto` writes the text into a reused
/// buffer, rather than wasm-bindgen's string glue, which copies byte by byte
/// in JS (on WebSocket messages that loop was an eighth of the time of an
/// ingest), or `encode`, which allocates a JS buffer per message.
pub(crate) fn with_text<R>(value: &JsValue, read: impl FnOnce(&str) -> R) -> Option<R> {
    let units = value.dyn_ref::<js_sys::JsString>()?.length() as usize;
    SCRATCH.with_borrow_mut(|scratch| {
        // A UTF-16 code unit takes at most 3 bytes of UTF-8.
        let room = units * 3;
        if scratch.len() < room {
            scratch.resize(room, 0);
        }
        let written = ENCODER.with(|encoder| encoder.encode_into(value, &mut scratch[..room]).written());
        // TextEncoder writes valid UTF-8 (a lone surrogate becomes U+FFFD).
        let result = std::str::from_utf8(&scratch[..written]).ok().map(read);
        if scratch.len() > SCRATCH_KEPT_BYTES {
            *scratch = Vec::new();
        }
        result
    })
}

/// Reads a JS value (plain objects, or JSON text) as `T`.
pub(crate) fn from_js<T: serde::de::DeserializeOwned>(value: &JsValue) -> Option<T> {
    let parse = |text: &str| serde_json::from_str(text).ok();
    match with_text(value, parse) {
        Some(parsed) => parsed,
        None => with_text(&js_sys::JSON::stringify(value).ok()?.into(), parse)?,
    }
}

/// The name JS gets for a send's outcome.
pub(crate) fn send_outcome(outcome: SendOutcome) -> String {
    match outcome {
        SendOutcome::Added => "added",
        SendOutcome::Retried => "retried",
        SendOutcome::Duplicate => "duplicate",
    }
    .to_owned()
}

/// A validation error as JS sees it.
#[derive(Serialize)]
pub(crate) struct ErrorView {
    pub code: &'static str,
    pub message: String,
    pub index: Option<usize>,
}

impl From<&FrameError> for ErrorView {
    fn from(error: &FrameError) -> Self {
        Self { code: error.kind.code(), message: error.to_string(), index: error.index }
    }
}

/// A run event as JS sees it: `{kind: "started", run_id, provider, started_at, seq}`,
/// `{kind: "finished", run_id, status, aborted, seq}`, `{kind: "idle", seq}`
/// or `{kind: "new_epoch"}`.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum RunEventView {
    Started { run_id: String, provider: String, started_at: u64, seq: u64 },
    Finished { run_id: String, status: Outcome, aborted: bool, seq: u64 },
    Idle { seq: u64 },
    NewEpoch {},
}

impl From<&RunEvent> for RunEventView {
    fn from(event: &RunEvent) -> Self {
        match event {
            RunEvent::Started { info, seq } => Self::Started {
                run_id: info.run_id.clone(),
                provider: info.provider.clone(),
                started_at: info.started_at,
                seq: *seq,
            },
            RunEvent::Finished { run_id, status, aborted, seq } => {
                Self::Finished { run_id: run_id.clone(), status: *status, aborted: *aborted, seq: *seq }
            }
            RunEvent::Idle { seq } => Self::Idle { seq: *seq },
            RunEvent::NewEpoch => Self::NewEpoch {},
        }
    }
}

/// The result of one `ingest` call. A class with getters rather than a plain
/// object: counts cross as numbers, and the lists are only converted when read
/// (most calls have no errors, resync or run events), which keeps the
/// per-call cost low.
#[wasm_bindgen]
#[derive(Default)]
pub struct IngestResult {
    applied: usize,
    buffered: usize,
    duplicates: usize,
    ignored: usize,
    errors: Vec<ErrorView>,
    need_resync: Option<ResyncReason>,
    run_events: Vec<RunEventView>,
    changed: bool,
}

impl IngestResult {
    /// Adds one report (of one WebSocket message).
    pub(crate) fn absorb(&mut self, report: &IngestReport) {
        self.applied += report.applied;
        self.buffered += report.buffered;
        self.duplicates += report.duplicates;
        self.ignored += report.ignored;
        self.errors.extend(report.errors.iter().map(ErrorView::from));
        if report.need_resync.is_some() {
            self.need_resync.clone_from(&report.need_resync);
        }
        self.run_events.extend(report.run_events.iter().map(RunEventView::from));
    }

    /// Records an input that was not text.
    pub(crate) fn not_text(&mut self, index: usize) {
        self.errors.push(ErrorView {
            code: "not_text",
            message: format!("input {index} is not a string; pass WebSocket text messages"),
            index: Some(index),
        });
    }

    /// Records whether the messages or the name changed.
    pub(crate) fn set_changed(&mut self, changed: bool) {
        self.changed = changed;
    }
}

fn list<T: Serialize>(items: &[T]) -> JsValue {
    if items.is_empty() { js_sys::Array::new().into() } else { to_js(items) }
}

#[wasm_bindgen]
impl IngestResult {
    /// Sequenced frames applied (including held ones released).
    #[wasm_bindgen(getter)]
    pub fn applied(&self) -> usize {
        self.applied
    }

    /// Frames held for a gap.
    #[wasm_bindgen(getter)]
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Frames dropped as already applied.
    #[wasm_bindgen(getter)]
    pub fn duplicates(&self) -> usize {
        self.duplicates
    }

    /// Frames with nothing for this engine.
    #[wasm_bindgen(getter)]
    pub fn ignored(&self) -> usize {
        self.ignored
    }

    /// Frames that failed validation; they changed nothing.
    #[wasm_bindgen(getter, unchecked_return_type = "FrameError[]")]
    pub fn errors(&self) -> JsValue {
        list(&self.errors)
    }

    /// Set when the transport must resubscribe (with `subscribeFrame()`).
    #[wasm_bindgen(getter, js_name = needResync, unchecked_return_type = "ResyncReason | null")]
    pub fn need_resync(&self) -> JsValue {
        self.need_resync.as_ref().map_or(JsValue::NULL, to_js)
    }

    /// Runs that started or finished.
    #[wasm_bindgen(getter, js_name = runEvents, unchecked_return_type = "RunEvent[]")]
    pub fn run_events(&self) -> JsValue {
        list(&self.run_events)
    }

    /// Whether the messages or the name changed.
    #[wasm_bindgen(getter)]
    pub fn changed(&self) -> bool {
        self.changed
    }
}

/// What one socket message did across a connection's sessions, as JS sees it.
#[derive(Serialize)]
pub(crate) struct ClientResultView<'a> {
    /// Sessions that got frames: read them again.
    touched: &'a [String],
    /// Sessions to resubscribe, with `subscribeFrame(session)`.
    resync: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    heartbeat_ms: Option<u64>,
    errors: Vec<ErrorView>,
    running_changed: bool,
}

impl<'a> From<&'a ClientReport> for ClientResultView<'a> {
    fn from(report: &'a ClientReport) -> Self {
        Self {
            touched: &report.touched,
            resync: report.resync.iter().map(|(session_id, _)| session_id.as_str()).collect(),
            heartbeat_ms: report.heartbeat_ms,
            errors: report.errors.iter().map(ErrorView::from).collect(),
            running_changed: report.running_changed,
        }
    }
}
