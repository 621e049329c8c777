//! `ProcessingMap` for JS: stream-core's map of running sessions, fed by
//! local sends, run events from engines, and `running` lists.

use stream_core::frame::Running;
use wasm_bindgen::prelude::*;

use crate::SessionEngine;
use crate::convert::{from_js, now_or, to_js};

/// Which sessions are processing.
#[wasm_bindgen]
pub struct ProcessingMap {
    inner: stream_core::ProcessingMap,
    /// The last `entries()` object, while nothing changed.
    last: Option<JsValue>,
}

#[wasm_bindgen]
impl ProcessingMap {
    /// An empty map; a local mark lasts `localGraceMs` (default 10 s) without server confirmation.
    #[wasm_bindgen(constructor)]
    pub fn new(#[wasm_bindgen(js_name = localGraceMs)] local_grace_ms: Option<f64>) -> ProcessingMap {
        let grace = local_grace_ms.map_or(stream_core::processing::DEFAULT_LOCAL_GRACE_MS, |ms| ms.max(0.0) as u64);
        ProcessingMap { inner: stream_core::ProcessingMap::new(grace), last: None }
    }

    /// This client just sent in the session: show it running now.
    #[wasm_bindgen(js_name = markLocal)]
    pub fn mark_local(
        &mut self,
        #[wasm_bindgen(js_name = sessionId)] session_id: &str,
        #[wasm_bindgen(js_name = nowMs)] now_ms: Option<f64>,
    ) {
        self.inner.mark_local(session_id, now_or(now_ms));
    }

    /// Applies a `running` frame (its JSON text, or the parsed object, or the
    /// `GET /v1/sessions/running` body). Returns false when it was stale or invalid.
    pub fn sync(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string | RunningList")] running: JsValue,
        #[wasm_bindgen(js_name = nowMs)] now_ms: Option<f64>,
    ) -> bool {
        match from_js::<Running>(&running) {
            Some(list) => self.inner.sync(&list, now_or(now_ms)),
            None => false,
        }
    }

    /// Takes the run events the engine's `ingest` calls reported since the
    /// last call, so runs that start and finish show at once.
    #[wasm_bindgen(js_name = applyRunEvents)]
    pub fn apply_run_events(&mut self, engine: &mut SessionEngine) {
        let session_id = engine.session_id();
        for event in engine.take_run_events() {
            self.inner.apply_event(&session_id, &event);
        }
    }

    /// Drops the local mark of a session whose send failed.
    #[wasm_bindgen(js_name = clearLocal)]
    pub fn clear_local(&mut self, #[wasm_bindgen(js_name = sessionId)] session_id: &str) {
        self.inner.clear_local(session_id);
    }

    /// Drops local marks past the grace period.
    #[wasm_bindgen(js_name = expireLocal)]
    pub fn expire_local(&mut self, #[wasm_bindgen(js_name = nowMs)] now_ms: Option<f64>) {
        self.inner.expire_local(now_or(now_ms));
    }

    /// Whether the session is running.
    #[wasm_bindgen(js_name = isRunning)]
    pub fn is_running(&self, #[wasm_bindgen(js_name = sessionId)] session_id: &str) -> bool {
        self.inner.is_running(session_id)
    }

    /// The running sessions by id; the same object while nothing changed.
    #[wasm_bindgen(unchecked_return_type = "Record<string, RunningEntry>")]
    pub fn entries(&mut self) -> JsValue {
        let changed = self.inner.take_changed();
        match &self.last {
            Some(last) if !changed => last.clone(),
            _ => {
                let entries = to_js(self.inner.entries());
                self.last = Some(entries.clone());
                entries
            }
        }
    }
}
