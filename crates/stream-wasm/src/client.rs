//! `ClientEngine` for JS: stream-core's [`Client`](stream_core::Client), the
//! sessions of one connection. The transport hands it each socket message as
//! it came; it parses it once, and answers with what the transport must do.
//! Every read of a session is patched from the core's plan.

use js_sys::Array;
use rustc_hash::{FxHashMap, FxHashSet};
use stream_core::frame::Running;
use wasm_bindgen::prelude::*;

use crate::convert::{ClientResultView, from_js, now_or, send_outcome, to_js, with_text};
use crate::message_cache::MessageCache;

/// The sessions a page follows over one connection, and which are running.
#[wasm_bindgen]
pub struct ClientEngine {
    inner: stream_core::Client,
    caches: FxHashMap<String, SessionCache>,
    /// The last `runningSessions()` object, while the map is unchanged.
    running: Option<JsValue>,
}

/// One session's cache, and what changed in it that `refresh` has not told.
#[derive(Default)]
struct SessionCache {
    messages: MessageCache,
    untold: SessionChange,
}

/// What changed in one session since the last `refresh`. A read between
/// two refreshes brings the cache up to date; what it took in is kept here
/// until told, so no listener misses a change.
#[derive(Default, serde::Serialize)]
pub(crate) struct SessionChange {
    /// Whether the id list changed (`messageIds` is a new array).
    ids: bool,
    /// Whether the top-level id list changed (`topLevelIds` is a new array).
    top: bool,
    /// Every message may have changed.
    all: bool,
    /// The messages that changed, when not `all`.
    messages: FxHashSet<String>,
    /// Tool calls whose answer or inner messages changed, when not `all`.
    calls: FxHashSet<String>,
    /// Whether anything changed.
    #[serde(skip)]
    any: bool,
}

impl SessionChange {
    /// Adds a patch taken from `engine`.
    fn absorb(&mut self, patch: &stream_core::Patch, engine: &stream_core::SessionEngine) {
        if patch.is_empty() {
            return;
        }
        self.any = true;
        self.ids |= patch.ids_changed;
        self.top |= patch.threads.top_kept.is_some();
        self.all |= patch.rebuild_from == 0 && patch.len > 0;
        if self.all {
            self.messages.clear();
            self.calls.clear();
            return;
        }
        let grown = patch.appended.iter().map(|&(at, _)| at);
        let positions = patch.updated.iter().copied().chain(grown).chain(patch.rebuild_from..patch.len);
        self.messages.extend(positions.filter_map(|at| engine.messages().nth(at)).map(|message| message.id.clone()));
        self.calls.extend(patch.threads.calls.iter().cloned());
    }
}

#[wasm_bindgen]
impl ClientEngine {
    /// A client with no session open.
    #[wasm_bindgen(constructor)]
    pub fn new() -> ClientEngine {
        ClientEngine { inner: stream_core::Client::new(), caches: FxHashMap::default(), running: None }
    }

    /// Opens a session; false when it was open. Subscribe with `subscribeFrame`.
    pub fn open(&mut self, #[wasm_bindgen(js_name = sessionId)] session_id: &str) -> bool {
        let opened = self.inner.open(session_id);
        if opened {
            self.caches.insert(session_id.to_owned(), SessionCache::default());
        }
        opened
    }

    /// Drops a session: its frames are ignored from now on.
    pub fn close(&mut self, #[wasm_bindgen(js_name = sessionId)] session_id: &str) -> bool {
        self.caches.remove(session_id);
        self.inner.close(session_id)
    }

    /// Ingests one socket message: its text as it came, for one session or several.
    #[wasm_bindgen(unchecked_return_type = "ClientResult")]
    pub fn ingest(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] text: JsValue,
        #[wasm_bindgen(js_name = nowMs)] now_ms: Option<f64>,
    ) -> JsValue {
        let now = now_or(now_ms);
        let report = with_text(&text, |text| self.inner.ingest(text, now)).unwrap_or_default();
        self.result(&report)
    }

    /// When `handleTimeout` should next be called (ms since the Unix epoch).
    #[wasm_bindgen(js_name = pollTimeout)]
    pub fn poll_timeout(&self) -> Option<f64> {
        self.inner.poll_timeout().map(|deadline| deadline as f64)
    }

    /// Gives up on gaps that did not fill in time.
    #[wasm_bindgen(js_name = handleTimeout, unchecked_return_type = "ClientResult")]
    pub fn handle_timeout(&mut self, #[wasm_bindgen(js_name = nowMs)] now_ms: Option<f64>) -> JsValue {
        let report = self.inner.handle_timeout(now_or(now_ms));
        self.result(&report)
    }

    /// Takes what changed in a session since the last call, for its listeners.
    #[wasm_bindgen(unchecked_return_type = "SessionChange | null")]
    pub fn refresh(&mut self, #[wasm_bindgen(js_name = sessionId)] session_id: &str) -> JsValue {
        let Some(cache) = self.synced(session_id) else { return JsValue::NULL };
        let change = std::mem::take(&mut cache.untold);
        if change.any { to_js(&change) } else { JsValue::NULL }
    }

    /// A session's messages; the same array while nothing changed.
    #[wasm_bindgen(unchecked_return_type = "Message[]")]
    pub fn messages(&mut self, #[wasm_bindgen(js_name = sessionId)] session_id: &str) -> Array {
        self.with_cache(session_id, MessageCache::list).unwrap_or_default()
    }

    /// A session's message ids; the same array until one is added, removed or moved.
    #[wasm_bindgen(js_name = messageIds, unchecked_return_type = "string[]")]
    pub fn message_ids(&mut self, #[wasm_bindgen(js_name = sessionId)] session_id: &str) -> Array {
        self.with_cache(session_id, MessageCache::ids).unwrap_or_default()
    }

    /// A session's top-level message ids (those not shown inside a tool
    /// call's card), in order; the same array while they are the same.
    #[wasm_bindgen(js_name = topLevelIds, unchecked_return_type = "string[]")]
    pub fn top_level_ids(&mut self, #[wasm_bindgen(js_name = sessionId)] session_id: &str) -> Array {
        self.with_cache(session_id, MessageCache::top).unwrap_or_default()
    }

    /// The id of the tool message answering a call, if one has.
    #[wasm_bindgen(js_name = toolAnswerId)]
    pub fn tool_answer_id(
        &mut self,
        #[wasm_bindgen(js_name = sessionId)] session_id: &str,
        #[wasm_bindgen(js_name = callId)] call_id: &str,
    ) -> Option<String> {
        self.with_cache(session_id, |_, engine| engine.threads().answer(call_id).map(str::to_owned)).flatten()
    }

    /// The ids of the messages written inside a call (a subagent's), in order.
    #[wasm_bindgen(js_name = toolChildIds, unchecked_return_type = "string[]")]
    pub fn tool_child_ids(
        &mut self,
        #[wasm_bindgen(js_name = sessionId)] session_id: &str,
        #[wasm_bindgen(js_name = callId)] call_id: &str,
    ) -> Array {
        self.with_cache(session_id, |_, engine| to_js(&engine.threads().children(call_id)).into()).unwrap_or_default()
    }

    /// What a session has cost in US dollars, when its provider said.
    #[wasm_bindgen(js_name = costUsd)]
    pub fn cost_usd(&self, #[wasm_bindgen(js_name = sessionId)] session_id: &str) -> Option<f64> {
        self.inner.session(session_id)?.state().cost_usd()
    }

    /// The model of the latest message that names one.
    pub fn model(&self, #[wasm_bindgen(js_name = sessionId)] session_id: &str) -> Option<String> {
        self.inner.session(session_id)?.state().model().map(str::to_owned)
    }

    /// One message of a session (the same object until it changes), or undefined.
    #[wasm_bindgen(unchecked_return_type = "Message | undefined")]
    pub fn message(
        &mut self,
        #[wasm_bindgen(js_name = sessionId)] session_id: &str,
        #[wasm_bindgen(js_name = messageId)] message_id: &str,
    ) -> JsValue {
        self.with_cache(session_id, |cache, engine| cache.message(engine, message_id)).unwrap_or(JsValue::UNDEFINED)
    }

    /// The run going in a session, or null.
    #[wasm_bindgen(unchecked_return_type = "RunInfo | null")]
    pub fn run(&self, #[wasm_bindgen(js_name = sessionId)] session_id: &str) -> JsValue {
        self.inner.session(session_id).map_or(JsValue::NULL, |engine| to_js(&engine.state().run()))
    }

    /// A session's name, if it has one.
    pub fn name(&self, #[wasm_bindgen(js_name = sessionId)] session_id: &str) -> Option<String> {
        self.inner.session(session_id)?.state().name().map(str::to_owned)
    }

    /// Whether a session waits for a resubscribe to repair a gap.
    pub fn resyncing(&self, #[wasm_bindgen(js_name = sessionId)] session_id: &str) -> bool {
        self.inner.session(session_id).is_some_and(stream_core::SessionEngine::resyncing)
    }

    /// What was wrong with a session's last bad input, until frames apply again.
    pub fn error(&self, #[wasm_bindgen(js_name = sessionId)] session_id: &str) -> Option<String> {
        self.inner.session(session_id)?.error().map(str::to_owned)
    }

    /// A session's state hash (16 hex digits).
    #[wasm_bindgen(js_name = stateHash)]
    pub fn state_hash(&self, #[wasm_bindgen(js_name = sessionId)] session_id: &str) -> Option<String> {
        Some(self.inner.session(session_id)?.state_hash().to_string())
    }

    /// The last seq the session applied (0 before its first): where an HTTP
    /// (Durable Streams) read of its frames resumes.
    #[wasm_bindgen(js_name = cursorSeq)]
    pub fn cursor_seq(&self, #[wasm_bindgen(js_name = sessionId)] session_id: &str) -> Option<f64> {
        Some(self.inner.session(session_id)?.cursor().seq as f64)
    }

    /// The JSON text of a session's `subscribe` frame: from its cursor, or
    /// without one when only a snapshot can help.
    #[wasm_bindgen(js_name = subscribeFrame)]
    pub fn subscribe_frame(&self, #[wasm_bindgen(js_name = sessionId)] session_id: &str) -> Option<String> {
        serde_json::to_string(&self.inner.session(session_id)?.subscribe_frame()).ok()
    }

    /// Shows a user message at once as pending, and the session as running.
    /// Null when the session is not open.
    #[wasm_bindgen(js_name = sendLocal, unchecked_return_type = "SendOutcome | null")]
    pub fn send_local(
        &mut self,
        #[wasm_bindgen(js_name = sessionId)] session_id: &str,
        content: &str,
        #[wasm_bindgen(js_name = clientMessageId)] client_message_id: &str,
        #[wasm_bindgen(js_name = nowMs)] now_ms: Option<f64>,
    ) -> Option<String> {
        self.running = None;
        self.inner.send_local(session_id, content, client_message_id, now_or(now_ms)).map(send_outcome)
    }

    /// Marks a send whose POST failed; `sendLocal` with the same id retries it.
    #[wasm_bindgen(js_name = markSendFailed)]
    pub fn mark_send_failed(
        &mut self,
        #[wasm_bindgen(js_name = sessionId)] session_id: &str,
        #[wasm_bindgen(js_name = clientMessageId)] client_message_id: &str,
        error: &str,
    ) -> bool {
        self.running = None;
        self.inner.mark_send_failed(session_id, client_message_id, error)
    }

    /// Applies a `running` list from `GET /v1/sessions/running` (its text or
    /// the parsed object); true when the running map changed.
    #[wasm_bindgen(js_name = syncRunning)]
    pub fn sync_running(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string | RunningList")] list: JsValue,
        #[wasm_bindgen(js_name = nowMs)] now_ms: Option<f64>,
    ) -> bool {
        let changed = from_js::<Running>(&list).is_some_and(|list| self.inner.sync_running(&list, now_or(now_ms)));
        self.forget_running_if(changed)
    }

    /// Drops local running marks past their grace; true when the map changed.
    #[wasm_bindgen(js_name = expireLocal)]
    pub fn expire_local(&mut self, #[wasm_bindgen(js_name = nowMs)] now_ms: Option<f64>) -> bool {
        let changed = self.inner.expire_local(now_or(now_ms));
        self.forget_running_if(changed)
    }

    /// Whether the running map changed since this was last asked (by sends
    /// and their failures; `ingest` reports its own changes).
    #[wasm_bindgen(js_name = takeRunningChanged)]
    pub fn take_running_changed(&mut self) -> bool {
        let changed = self.inner.take_running_changed();
        self.forget_running_if(changed)
    }

    /// Whether a session is running.
    #[wasm_bindgen(js_name = isRunning)]
    pub fn is_running(&self, #[wasm_bindgen(js_name = sessionId)] session_id: &str) -> bool {
        self.inner.running().is_running(session_id)
    }

    /// The running sessions by id; the same object while nothing changed.
    #[wasm_bindgen(js_name = runningSessions, unchecked_return_type = "Record<string, RunningEntry>")]
    pub fn running_sessions(&mut self) -> JsValue {
        self.running.get_or_insert_with(|| to_js(self.inner.running().entries())).clone()
    }
}

impl Default for ClientEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientEngine {
    fn result(&mut self, report: &stream_core::ClientReport) -> JsValue {
        self.forget_running_if(report.running_changed);
        to_js(&ClientResultView::from(report))
    }

    /// Drops the cached running object when the map changed; returns `changed`.
    fn forget_running_if(&mut self, changed: bool) -> bool {
        if changed {
            self.running = None;
        }
        changed
    }

    /// A session's cache, brought up to its engine.
    fn synced(&mut self, session_id: &str) -> Option<&mut SessionCache> {
        let engine = self.inner.session_mut(session_id)?;
        let cache = self.caches.get_mut(session_id)?;
        let patch = engine.take_patch();
        cache.messages.apply(&patch);
        cache.untold.absorb(&patch, engine);
        Some(cache)
    }

    /// Runs `read` on a session's cache, brought up to its engine first.
    fn with_cache<R>(
        &mut self,
        session_id: &str,
        read: impl FnOnce(&mut MessageCache, &stream_core::SessionEngine) -> R,
    ) -> Option<R> {
        self.synced(session_id)?;
        let (engine, cache) = (self.inner.session(session_id)?, self.caches.get_mut(session_id)?);
        Some(read(&mut cache.messages, engine))
    }
}
