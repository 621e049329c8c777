//! `SessionEngine` for JS: stream-core's client engine, plus the cache that
//! makes `messages()` a patch: unchanged messages stay the same JS objects
//! (`===`), only changed ones are rebuilt, and an unchanged list is the same
//! array.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use js_sys::Array;
use stream_core::Message;
use stream_core::changes::Changes;
use stream_core::optimistic::SendOutcome;
use wasm_bindgen::prelude::*;

use crate::convert::{IngestResult, now_or, to_js, with_text};

/// Run events kept for `ProcessingMap.applyRunEvents`.
const MAX_PENDING_RUN_EVENTS: usize = 16;

/// The client engine of one session.
#[wasm_bindgen]
pub struct SessionEngine {
    inner: stream_core::SessionEngine,
    /// JS objects of messages that did not change since they were built.
    objects: HashMap<String, JsValue>,
    /// Ids changed since the last `messages()`.
    dirty: HashSet<String>,
    all_dirty: bool,
    /// The last array `messages()` returned, while nothing changed.
    last: Option<Array>,
    /// Run events since `ProcessingMap.applyRunEvents` last took them.
    run_events: Vec<stream_core::RunEvent>,
}

#[wasm_bindgen]
impl SessionEngine {
    /// An empty engine for the session (channel) `sessionId`.
    #[wasm_bindgen(constructor)]
    pub fn new(session_id: &str) -> SessionEngine {
        SessionEngine {
            inner: stream_core::SessionEngine::new(session_id),
            objects: HashMap::default(),
            dirty: HashSet::default(),
            all_dirty: false,
            last: None,
            run_events: Vec::new(),
        }
    }

    /// The session id.
    #[wasm_bindgen(getter, js_name = sessionId)]
    pub fn session_id(&self) -> String {
        self.inner.channel().to_owned()
    }

    /// Ingests one WebSocket text message (a frame or an array of frames), or
    /// an array of such messages. Bad input is reported in `errors`; nothing
    /// is thrown.
    pub fn ingest(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string | string[]")] input: JsValue,
        #[wasm_bindgen(js_name = nowMs)] now_ms: Option<f64>,
    ) -> IngestResult {
        let now = now_or(now_ms);
        let mut result = IngestResult::default();
        // One message per call is the common case: no array to build or walk.
        if !self.ingest_message(&input, now, &mut result) {
            match input.dyn_ref::<Array>() {
                Some(messages) => {
                    for (index, item) in messages.iter().enumerate() {
                        if !self.ingest_message(&item, now, &mut result) {
                            result.not_text(index);
                        }
                    }
                }
                None => result.not_text(0),
            }
        }
        result.set_changes(self.absorb_changes());
        result
    }

    /// Every message: confirmed ones, then local pending or failed ones.
    /// Unchanged messages are the same objects as in the previous call, and
    /// an unchanged list is the same array.
    #[wasm_bindgen(unchecked_return_type = "Message[]")]
    pub fn messages(&mut self) -> Array {
        self.absorb_changes();
        let all_dirty = std::mem::take(&mut self.all_dirty);
        if all_dirty {
            self.objects.clear();
        }
        let dirty: Vec<String> = self.dirty.drain().collect();
        for id in &dirty {
            self.objects.remove(id);
        }
        let array = match &self.last {
            Some(last) if dirty.is_empty() && !all_dirty => return last.clone(),
            // Updates and appends patch a copy of the last array.
            Some(last) if !all_dirty => patched(&self.inner, &mut self.objects, last, &dirty),
            _ => None,
        }
        .unwrap_or_else(|| rebuilt(&self.inner, &mut self.objects));
        self.last = Some(array.clone());
        array
    }

    /// Where the sequence stands: `{epoch, seq}` to send in `subscribe`.
    #[wasm_bindgen(unchecked_return_type = "Cursor")]
    pub fn cursor(&self) -> JsValue {
        to_js(self.inner.cursor())
    }

    /// The state hash of the confirmed messages (16 hex digits).
    #[wasm_bindgen(js_name = stateHash)]
    pub fn state_hash(&self) -> String {
        self.inner.state_hash().to_string()
    }

    /// The JSON text of the `subscribe` frame to send: from the cursor, or
    /// without one when only a snapshot can help.
    #[wasm_bindgen(js_name = subscribeFrame)]
    pub fn subscribe_frame(&self) -> String {
        serde_json::to_string(&self.inner.subscribe_frame()).unwrap_or_default()
    }

    /// Shows a user message at once as `pending`. Returns `"added"` (POST it),
    /// `"retried"` (a failed one, POST it again with the same id) or
    /// `"duplicate"` (already pending or confirmed: do nothing).
    #[wasm_bindgen(js_name = sendLocal, unchecked_return_type = "SendOutcome")]
    pub fn send_local(
        &mut self,
        content: &str,
        #[wasm_bindgen(js_name = clientMessageId)] client_message_id: &str,
        #[wasm_bindgen(js_name = nowMs)] now_ms: Option<f64>,
    ) -> String {
        let outcome = self.inner.send_local(content, client_message_id, now_or(now_ms));
        self.absorb_changes();
        match outcome {
            SendOutcome::Added => "added",
            SendOutcome::Retried => "retried",
            SendOutcome::Duplicate => "duplicate",
        }
        .to_owned()
    }

    /// Marks a local send whose POST failed; `sendLocal` with the same id retries it.
    #[wasm_bindgen(js_name = markSendFailed)]
    pub fn mark_send_failed(
        &mut self,
        #[wasm_bindgen(js_name = clientMessageId)] client_message_id: &str,
        error: &str,
    ) -> bool {
        let found = self.inner.mark_send_failed(client_message_id, error);
        self.absorb_changes();
        found
    }

    /// When `handleTimeout` should next be called (ms since the Unix epoch).
    #[wasm_bindgen(js_name = pollTimeout)]
    pub fn poll_timeout(&self) -> Option<f64> {
        self.inner.poll_timeout().map(|deadline| deadline as f64)
    }

    /// Gives up on a gap that did not fill in time; returns the resync reason or null.
    #[wasm_bindgen(js_name = handleTimeout, unchecked_return_type = "ResyncReason | null")]
    pub fn handle_timeout(&mut self, #[wasm_bindgen(js_name = nowMs)] now_ms: Option<f64>) -> JsValue {
        to_js(&self.inner.handle_timeout(now_or(now_ms)))
    }

    /// The run going, or null.
    #[wasm_bindgen(unchecked_return_type = "RunInfo | null")]
    pub fn run(&self) -> JsValue {
        to_js(&self.inner.state().run())
    }

    /// The session's name, if it has one.
    pub fn name(&self) -> Option<String> {
        self.inner.state().name().map(str::to_owned)
    }
}

/// The JS object of a message, from the cache or built.
fn object_for(objects: &mut HashMap<String, JsValue>, message: &Message) -> JsValue {
    objects.entry(message.id.clone()).or_insert_with(|| to_js(message)).clone()
}

/// A copy of `last` with the changed messages rebuilt and new ones appended;
/// `None` when a message went away or moved, which needs a rebuild.
fn patched(
    engine: &stream_core::SessionEngine,
    objects: &mut HashMap<String, JsValue>,
    last: &Array,
    dirty: &[String],
) -> Option<Array> {
    let old_len = last.length() as usize;
    let new_len = engine.message_count();
    if new_len < old_len {
        return None;
    }
    let mut positions = Vec::with_capacity(dirty.len());
    for id in dirty {
        positions.push(engine.position_of(id)?);
    }
    let array = last.slice(0, old_len as u32);
    for position in positions.into_iter().filter(|&position| position < old_len) {
        let message = engine.messages().nth(position)?;
        array.set(position as u32, object_for(objects, message));
    }
    for message in engine.messages().skip(old_len) {
        array.push(&object_for(objects, message));
    }
    Some(array)
}

/// The whole array, reusing the cached objects of unchanged messages.
fn rebuilt(engine: &stream_core::SessionEngine, objects: &mut HashMap<String, JsValue>) -> Array {
    let array: Array = engine.messages().map(|message| object_for(objects, message)).collect();
    // Drop objects of messages that are gone.
    if objects.len() > engine.message_count() {
        objects.retain(|id, _| engine.position_of(id).is_some());
    }
    array
}

impl SessionEngine {
    /// The run events reported since the last call.
    pub(crate) fn take_run_events(&mut self) -> Vec<stream_core::RunEvent> {
        std::mem::take(&mut self.run_events)
    }

    /// Ingests one WebSocket text message; false when `message` is not a string.
    fn ingest_message(&mut self, message: &JsValue, now: u64, result: &mut IngestResult) -> bool {
        with_text(message, |text| {
            let report = self.inner.ingest(text, now);
            result.absorb(&report);
            self.keep_run_events(report.run_events);
        })
        .is_some()
    }

    fn keep_run_events(&mut self, events: Vec<stream_core::RunEvent>) {
        self.run_events.extend(events);
        // Only the latest events decide whether a session runs; an engine used
        // without a ProcessingMap must not pile them up.
        let excess = self.run_events.len().saturating_sub(MAX_PENDING_RUN_EVENTS);
        self.run_events.drain(..excess);
    }

    /// Moves the core's changed ids into the cache's dirty set; returns them.
    fn absorb_changes(&mut self) -> Changes {
        let changes = self.inner.drain_changes();
        if changes.everything {
            self.all_dirty = true;
        }
        self.dirty.extend(changes.ids.iter().cloned());
        changes
    }
}
