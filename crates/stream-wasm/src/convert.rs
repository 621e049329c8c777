//! Every conversion between stream-core's Rust values and JS values, in one
//! place: the JS views of reports, errors, run events and cursors (camelCase
//! names, numbers for u64 fields, hashes as hex strings).
//!
//! Values cross as JSON text and the host's `JSON.parse`/`JSON.stringify`:
//! the engine already carries serde_json, so no second serializer is linked
//! (the .wasm stays within its size budget), and native JSON is fast.

use serde::Serialize;
use stream_core::message::Outcome;
use stream_core::{IngestReport, ResyncReason, RunEvent};
use wasm_bindgen::JsValue;

/// Serialises any value as plain JS objects and numbers.
pub(crate) fn to_js<T: Serialize + ?Sized>(value: &T) -> JsValue {
    // Our types always serialise; a failure would be a bug, reported as null.
    serde_json::to_string(value).ok().and_then(|text| js_sys::JSON::parse(&text).ok()).unwrap_or(JsValue::NULL)
}

/// Reads a JS value (plain objects, or JSON text) as `T`.
pub(crate) fn from_js<T: serde::de::DeserializeOwned>(value: &JsValue) -> Option<T> {
    let text = match value.as_string() {
        Some(text) => text,
        None => js_sys::JSON::stringify(value).ok()?.as_string()?,
    };
    serde_json::from_str(&text).ok()
}

/// A validation error as JS sees it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorView {
    pub code: &'static str,
    pub message: String,
    pub index: Option<usize>,
}

/// A run event as JS sees it: `{kind: "started", runId, provider, startedAt, seq}`
/// or `{kind: "finished", runId, status, aborted, seq}`.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub(crate) enum RunEventView {
    #[serde(rename_all = "camelCase")]
    Started { run_id: String, provider: String, started_at: u64, seq: u64 },
    #[serde(rename_all = "camelCase")]
    Finished { run_id: String, status: Outcome, aborted: bool, seq: u64 },
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
        }
    }
}

/// The result of one `ingest` call.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IngestView<'a> {
    pub applied: usize,
    pub buffered: usize,
    pub duplicates: usize,
    pub ignored: usize,
    pub errors: Vec<ErrorView>,
    pub need_resync: Option<&'a ResyncReason>,
    pub run_events: Vec<RunEventView>,
    pub changed_ids: Vec<String>,
    pub everything_changed: bool,
}

impl<'a> IngestView<'a> {
    /// Adds one report (of one WebSocket message) to the view.
    pub fn absorb(&mut self, report: &'a IngestReport) {
        self.applied += report.applied;
        self.buffered += report.buffered;
        self.duplicates += report.duplicates;
        self.ignored += report.ignored;
        self.errors.extend(report.errors.iter().map(|error| ErrorView {
            code: error.kind.code(),
            message: error.to_string(),
            index: error.index,
        }));
        if report.need_resync.is_some() {
            self.need_resync = report.need_resync.as_ref();
        }
        self.run_events.extend(report.run_events.iter().map(RunEventView::from));
    }
}
