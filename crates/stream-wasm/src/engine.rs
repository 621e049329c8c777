//! `SessionEngine` for JS: stream-core's client engine of one session, with
//! the message cache that makes every read a patch.

use js_sys::Array;
use wasm_bindgen::prelude::*;

use crate::convert::{IngestResult, now_or, send_outcome, to_js, with_text};
use crate::message_cache::MessageCache;

/// The client engine of one session.
#[wasm_bindgen]
pub struct SessionEngine {
    inner: stream_core::SessionEngine,
    cache: MessageCache,
}

#[wasm_bindgen]
impl SessionEngine {
    /// An empty engine for the session (channel) `sessionId`.
    #[wasm_bindgen(constructor)]
    pub fn new(session_id: &str) -> SessionEngine {
        SessionEngine { inner: stream_core::SessionEngine::new(session_id), cache: MessageCache::default() }
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
        let patch = self.inner.take_patch();
        self.cache.apply(&patch);
        result.set_changed(!patch.is_empty());
        result
    }

    /// Every message: confirmed ones, then local pending or failed ones.
    /// Unchanged messages are the same objects as in the previous call, and
    /// an unchanged list is the same array.
    #[wasm_bindgen(unchecked_return_type = "Message[]")]
    pub fn messages(&mut self) -> Array {
        self.refresh();
        self.cache.list(&self.inner)
    }

    /// The ids of `messages()`, in order: the same array until a message is
    /// added, removed or moved.
    #[wasm_bindgen(js_name = messageIds, unchecked_return_type = "string[]")]
    pub fn message_ids(&mut self) -> Array {
        self.refresh();
        self.cache.ids(&self.inner)
    }

    /// One message (the same object until it changes), or undefined.
    #[wasm_bindgen(unchecked_return_type = "Message | undefined")]
    pub fn message(&mut self, id: &str) -> JsValue {
        self.refresh();
        self.cache.message(&self.inner, id)
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
        send_outcome(self.inner.send_local(content, client_message_id, now_or(now_ms)))
    }

    /// Marks a local send whose POST failed; `sendLocal` with the same id retries it.
    #[wasm_bindgen(js_name = markSendFailed)]
    pub fn mark_send_failed(
        &mut self,
        #[wasm_bindgen(js_name = clientMessageId)] client_message_id: &str,
        error: &str,
    ) -> bool {
        self.inner.mark_send_failed(client_message_id, error)
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

    /// Whether the engine waits for a resubscribe to repair a gap.
    pub fn resyncing(&self) -> bool {
        self.inner.resyncing()
    }

    /// What was wrong with the last bad input, until frames apply again.
    pub fn error(&self) -> Option<String> {
        self.inner.error().map(str::to_owned)
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

impl SessionEngine {
    /// Ingests one WebSocket text message; false when `message` is not a string.
    fn ingest_message(&mut self, message: &JsValue, now: u64, result: &mut IngestResult) -> bool {
        with_text(message, |text| result.absorb(&self.inner.ingest(text, now))).is_some()
    }

    /// Brings the cache up to the engine (after sends and failures).
    fn refresh(&mut self) {
        self.cache.apply(&self.inner.take_patch());
    }
}
