//! The client engine of one session: parses what the socket delivers, puts it
//! in order, applies it, merges optimistic sends, and says what the transport
//! must do next (resubscribe, and from where). No I/O: time is an argument and
//! actions are returned.

use crate::changes::{ChangedIds, ListShape, Patch};
use crate::client::optimistic::{DEFAULT_ECHO_WINDOW_MS, PendingSends, SendOutcome};
use crate::client::reorder::{Cursor, Offer, ReorderBuffer, ReorderLimits};
pub use crate::client::resync::ResyncReason;
use crate::client::threads::Threads;
use crate::frame::{
    ClientFrame, ControlFrame, DEFAULT_MAX_MESSAGE_BYTES, FrameBody, FrameError, ParsedFrame, SequencedFrame,
    ServerFrame, Snapshot, parse_client_message,
};
use crate::message::{Message, Role};
use crate::reducer::{RunEvent, SessionState};
use crate::state_hash::StateHash;

/// Settings of an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Reorder buffer bounds.
    pub reorder: ReorderLimits,
    /// Largest WebSocket message accepted.
    pub max_message_bytes: usize,
    /// Window for matching echoes that lack a `client_message_id`.
    pub echo_window_ms: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            reorder: ReorderLimits::default(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            echo_window_ms: DEFAULT_ECHO_WINDOW_MS,
        }
    }
}

/// What one `ingest` call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Sequenced frames applied (including held ones this call released).
    pub applied: usize,
    /// Frames held for a gap.
    pub buffered: usize,
    /// Frames dropped as already applied.
    pub duplicates: usize,
    /// Frames with nothing for this engine (unknown types, other control frames).
    pub ignored: usize,
    /// Frames that failed validation; they changed nothing.
    pub errors: Vec<FrameError>,
    /// Set when the transport must resubscribe (with `subscribe_frame`).
    pub need_resync: Option<ResyncReason>,
    /// Runs that started or finished, for the running map.
    pub run_events: Vec<RunEvent>,
}

/// The client engine of one session.
#[derive(Debug, Clone)]
pub struct SessionEngine {
    channel: String,
    config: EngineConfig,
    reorder: ReorderBuffer<SequencedFrame>,
    state: SessionState,
    pending: PendingSends,
    /// Set when only a snapshot can repair the state; cleared by one.
    snapshot_required: bool,
    /// Set while a resubscribe is asked for and no frame has applied since.
    resyncing: bool,
    /// What was wrong with the last input that failed validation, until
    /// frames apply again.
    error: Option<String>,
    /// The list's shape when the last patch was taken.
    published: ListShape,
    /// How the messages nest under tool calls, as of the last patch.
    threads: Threads,
}

impl SessionEngine {
    /// An empty engine for `channel` with default settings.
    pub fn new(channel: impl Into<String>) -> Self {
        Self::with_config(channel, EngineConfig::default())
    }

    /// An empty engine for `channel`.
    pub fn with_config(channel: impl Into<String>, config: EngineConfig) -> Self {
        Self {
            channel: channel.into(),
            config,
            reorder: ReorderBuffer::new(config.reorder),
            state: SessionState::new(),
            pending: PendingSends::new(config.echo_window_ms),
            snapshot_required: false,
            resyncing: false,
            error: None,
            published: ListShape::default(),
            threads: Threads::default(),
        }
    }

    /// The channel (session id).
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The confirmed state.
    pub fn state(&self) -> &SessionState {
        &self.state
    }

    /// Every message: the confirmed ones, then the local pending or failed ones.
    pub fn messages(&self) -> impl Iterator<Item = &Message> {
        self.state.messages().iter().chain(self.pending.messages())
    }

    /// The position of a message in `messages`, if it is there.
    pub fn position_of(&self, id: &str) -> Option<usize> {
        self.state.position_of(id).or_else(|| {
            self.pending.messages().position(|message| message.id == id).map(|i| i + self.state.messages().len())
        })
    }

    /// How many messages `messages` yields.
    pub fn message_count(&self) -> usize {
        self.state.messages().len() + self.pending.len()
    }

    /// Where the sequence stands.
    pub fn cursor(&self) -> &Cursor {
        self.reorder.cursor()
    }

    /// The hash of the confirmed messages.
    pub fn state_hash(&self) -> StateHash {
        self.state.state_hash()
    }

    /// Whether the engine waits for a resubscribe to repair a gap.
    pub fn resyncing(&self) -> bool {
        self.resyncing
    }

    /// What was wrong with the last bad input, until frames apply again.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Frames and bytes held out of order.
    pub fn held(&self) -> (usize, usize) {
        (self.reorder.held_frames(), self.reorder.held_bytes())
    }

    /// The `subscribe` to send: with the cursor, unless only a snapshot helps.
    pub fn subscribe_frame(&self) -> ClientFrame {
        let cursor = self.reorder.cursor();
        let resume = !self.snapshot_required && cursor.seq > 0;
        ClientFrame::Subscribe {
            channel: self.channel.clone(),
            epoch: if resume { cursor.epoch.clone() } else { None },
            after_seq: if resume { Some(cursor.seq) } else { None },
        }
    }

    /// Ingests one WebSocket text message (a frame or an array of frames).
    pub fn ingest(&mut self, text: &str, now_ms: u64) -> IngestReport {
        let parsed = parse_client_message(text, Some(&self.channel), self.config.max_message_bytes);
        self.ingest_parsed(parsed.frames, parsed.errors, now_ms)
    }

    /// Ingests frames of this channel parsed already (by a [`crate::Client`]
    /// that routes one socket message to many engines), with the errors of
    /// the input they came in.
    pub fn ingest_parsed(&mut self, frames: Vec<ParsedFrame>, errors: Vec<FrameError>, now_ms: u64) -> IngestReport {
        let mut report = IngestReport { errors, ..IngestReport::default() };
        for parsed_frame in frames {
            match parsed_frame.frame {
                ServerFrame::Sequenced(frame) => self.offer(frame, parsed_frame.wire_len, now_ms, &mut report),
                ServerFrame::Control(ControlFrame::Snapshot(snapshot)) => {
                    self.load_snapshot(snapshot, now_ms, &mut report)
                }
                ServerFrame::Control(ControlFrame::Unsubscribed(unsubscribed)) => {
                    report.need_resync = Some(ResyncReason::Unsubscribed { reason: unsubscribed.reason });
                }
                ServerFrame::Control(_) => report.ignored += 1,
            }
        }
        self.note_outcome(&report);
        report
    }

    /// Keeps what the transport shows: the error of the last bad input until
    /// frames apply again, and whether a resubscribe is awaited.
    fn note_outcome(&mut self, report: &IngestReport) {
        if !report.errors.is_empty() {
            let mut error = String::new();
            for (i, each) in report.errors.iter().enumerate() {
                use std::fmt::Write;
                let _ = write!(error, "{}{each}", if i == 0 { "" } else { "; " });
            }
            self.error = Some(error);
        } else if report.applied > 0 {
            self.error = None;
        }
        if report.need_resync.is_some() {
            self.resyncing = true;
        } else if report.applied > 0 {
            self.resyncing = false;
        }
    }

    /// Applies a snapshot (from the socket, or from `GET /v1/sessions/{id}`).
    pub fn apply_snapshot(&mut self, snapshot: Snapshot, now_ms: u64) -> IngestReport {
        let mut report = IngestReport::default();
        self.load_snapshot(snapshot, now_ms, &mut report);
        self.note_outcome(&report);
        report
    }

    /// Shows a user message at once, as `pending` after the confirmed ones.
    pub fn send_local(&mut self, content: &str, client_message_id: &str, now_ms: u64) -> SendOutcome {
        if self.state.has_client_message(client_message_id) {
            return SendOutcome::Duplicate;
        }
        self.pending.send(content, client_message_id, now_ms)
    }

    /// Marks a local send whose POST failed; it can be retried with `send_local`.
    pub fn mark_send_failed(&mut self, client_message_id: &str, error: &str) -> bool {
        self.pending.mark_failed(client_message_id, error)
    }

    /// When `handle_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.reorder.poll_timeout()
    }

    /// Gives up on a gap that did not fill in time.
    pub fn handle_timeout(&mut self, now_ms: u64) -> Option<ResyncReason> {
        let reason = self.reorder.handle_timeout(now_ms);
        self.resyncing |= reason.is_some();
        reason
    }

    /// How the list changed since the last call: the plan a binding follows
    /// to patch its copy of the list.
    pub fn take_patch(&mut self) -> Patch {
        let mut changes = ChangedIds::default();
        self.state.changed_mut().drain_into(&mut changes);
        self.pending.changed_mut().drain_into(&mut changes);
        let now = ListShape { confirmed: self.state.messages().len(), len: self.message_count() };
        let before = std::mem::replace(&mut self.published, now);
        let mut patch = changes.plan(before, now, |id| self.state.position_of(id), |id| self.state.is_deleted(id));
        if !patch.is_empty() {
            let (confirmed, pending) = (self.state.messages(), &self.pending);
            let at = |i: usize| match confirmed.get(i) {
                Some(message) => message,
                None => pending.messages().nth(i - confirmed.len()).expect("a position within the list"),
            };
            self.threads.follow(now.len, at, &patch.updated, patch.rebuild_from, before.len);
            patch.threads = self.threads.take_changes();
        }
        patch
    }

    /// How the messages nest under tool calls, as of the last patch.
    pub fn threads(&self) -> &Threads {
        &self.threads
    }

    fn offer(&mut self, frame: SequencedFrame, wire_len: usize, now_ms: u64, report: &mut IngestReport) {
        match self.reorder.offer(frame, wire_len, now_ms) {
            Offer::Ready => {
                while let Some(ready) = self.reorder.pop_ready() {
                    self.apply(ready, now_ms, report);
                }
            }
            Offer::Held => report.buffered += 1,
            Offer::Duplicate => report.duplicates += 1,
            Offer::Resync(reason) => {
                if reason.needs_snapshot() {
                    self.snapshot_required = true;
                }
                report.need_resync = Some(reason);
            }
        }
    }

    fn apply(&mut self, frame: SequencedFrame, now_ms: u64, report: &mut IngestReport) {
        report.applied += 1;
        if let FrameBody::MessageStarted(started) = &frame.body
            && started.role == Role::User
        {
            self.pending.take_echo(started.client_message_id.as_deref(), started.content.as_deref(), now_ms);
        }
        let expected_hash = match &frame.body {
            FrameBody::RunFinished(finished) => finished.state_hash,
            _ => None,
        };
        if let Some(event) = self.state.apply(frame) {
            report.run_events.push(event);
        }
        if let Some(expected) = expected_hash {
            let actual = self.state.state_hash();
            if actual != expected {
                self.snapshot_required = true;
                report.need_resync = Some(ResyncReason::Diverged { expected, actual });
            }
        }
    }

    fn load_snapshot(&mut self, snapshot: Snapshot, now_ms: u64, report: &mut IngestReport) {
        let cursor = self.reorder.cursor();
        let stale = !self.snapshot_required && snapshot.epoch == cursor.epoch && snapshot.seq < cursor.seq;
        if stale {
            // Older than what is applied: the state already includes it.
            report.ignored += 1;
            return;
        }
        let (epoch, seq) = (snapshot.epoch.clone(), snapshot.seq);
        if cursor.epoch.is_some() && epoch != cursor.epoch {
            report.run_events.push(RunEvent::NewEpoch);
        }
        report.run_events.push(match &snapshot.run {
            Some(run) => RunEvent::Started { info: run.clone(), seq },
            // The session is idle at the snapshot: a run the map still shows is over.
            None => RunEvent::Idle { seq },
        });
        let previous = std::mem::take(&mut self.state);
        self.state.load_snapshot(snapshot);
        if !self.pending.is_empty() {
            // User messages new to this client are echoes, whether they came
            // as frames or inside a snapshot.
            for message in self.state.messages() {
                if message.role == Role::User && previous.message(&message.id).is_none() {
                    self.pending.take_echo(message.client_message_id.as_deref(), Some(&message.content), now_ms);
                }
            }
        }
        self.snapshot_required = false;
        self.reorder.reset(epoch, seq, now_ms);
        while let Some(ready) = self.reorder.pop_ready() {
            self.apply(ready, now_ms, report);
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::message::MessageStatus;

    fn frame(seq: u64, body: &str) -> String {
        format!(r#"{{"channel":"s","epoch":"e","seq":{seq},{body}}}"#)
    }

    fn delta(seq: u64, id: &str, text: &str) -> String {
        frame(seq, &format!(r#""type":"delta","message_id":"{id}","content":"{text}""#))
    }

    fn contents(engine: &SessionEngine) -> Vec<(String, String, MessageStatus)> {
        engine.messages().map(|m| (m.id.clone(), m.content.clone(), m.status)).collect()
    }

    #[test]
    fn out_of_order_and_duplicated_batches_apply_once_in_order() {
        let mut engine = SessionEngine::new("s");
        let report = engine.ingest(&format!("[{},{}]", delta(2, "a", "b"), delta(3, "a", "c")), 0);
        assert_eq!((report.applied, report.buffered), (0, 2));
        let report = engine.ingest(&format!("[{},{}]", delta(1, "a", "a"), delta(2, "a", "b")), 0);
        assert_eq!((report.applied, report.duplicates), (3, 1));
        assert_eq!(contents(&engine), vec![("a".into(), "abc".into(), MessageStatus::Streaming)]);
        assert_eq!(engine.cursor(), &Cursor { epoch: Some("e".into()), seq: 3 });
    }

    #[test]
    fn bad_input_is_reported_and_changes_nothing() {
        let mut engine = SessionEngine::new("s");
        engine.ingest(&delta(1, "a", "x"), 0);
        let before = (engine.state_hash(), engine.cursor().clone());
        for bad in ["", "nul", "[", r#"{"type":"delta"}"#, &delta(2, "a", "y").replace("\"s\"", "\"t\"")] {
            let report = engine.ingest(bad, 0);
            assert_eq!(report.errors.len(), 1, "{bad}");
            assert_eq!(report.applied, 0);
        }
        assert_eq!((engine.state_hash(), engine.cursor().clone()), before);
    }

    #[test]
    fn unknown_types_advance_the_cursor() {
        let mut engine = SessionEngine::new("s");
        let report = engine.ingest(&format!("[{},{}]", frame(1, r#""type":"future_thing""#), delta(2, "a", "x")), 0);
        assert_eq!(report.applied, 2);
        assert_eq!(engine.cursor().seq, 2);
    }

    #[test]
    fn the_echo_replaces_the_pending_message_in_the_same_ingest() {
        let mut engine = SessionEngine::new("s");
        assert_eq!(engine.send_local("hello", "c1", 0), SendOutcome::Added);
        assert_eq!(contents(&engine), vec![("c1".into(), "hello".into(), MessageStatus::Pending)]);
        engine.ingest(
            &frame(1, r#""type":"message_started","message_id":"m1","role":"user","created_at":1,"client_message_id":"c1","content":"hello""#),
            10,
        );
        assert_eq!(contents(&engine), vec![("m1".into(), "hello".into(), MessageStatus::Complete)]);
        assert_eq!(engine.send_local("hello", "c1", 20), SendOutcome::Duplicate);
        // The echo took the pending message's place: the tail is rebuilt.
        let patch = engine.take_patch();
        assert_eq!((patch.rebuild_from, patch.len, patch.ids_changed), (0, 1, true));
    }

    #[test]
    fn a_hash_mismatch_on_run_finished_asks_for_a_snapshot() {
        let mut engine = SessionEngine::new("s");
        engine.ingest(&delta(1, "a", "x"), 0);
        let report = engine.ingest(
            &frame(2, r#""type":"run_finished","run_id":"r","status":"complete","aborted":false,"state_hash":"0000000000000001""#),
            0,
        );
        assert!(matches!(report.need_resync, Some(ResyncReason::Diverged { .. })));
        assert_eq!(
            engine.subscribe_frame(),
            ClientFrame::Subscribe { channel: "s".into(), epoch: None, after_seq: None }
        );
    }

    #[test]
    fn a_matching_hash_on_run_finished_is_quiet() {
        let mut engine = SessionEngine::new("s");
        engine.ingest(&delta(1, "a", "x"), 0);
        let mut reference = engine.state().clone();
        reference.apply(SequencedFrame {
            channel: "s".into(),
            epoch: "e".into(),
            seq: 2,
            body: FrameBody::RunFinished(crate::frame::RunFinished {
                run_id: "r".into(),
                status: crate::message::Outcome::Complete,
                aborted: false,
                exit_code: None,
                state_hash: None,
            }),
        });
        let hash = reference.state_hash();
        let report = engine.ingest(
            &frame(
                2,
                &format!(
                    r#""type":"run_finished","run_id":"r","status":"complete","aborted":false,"state_hash":"{hash}""#
                ),
            ),
            0,
        );
        assert_eq!(report.need_resync, None);
        assert_eq!(report.run_events.len(), 1);
    }

    #[test]
    fn a_snapshot_resets_the_cursor_keeps_pending_and_releases_later_frames() {
        let mut source = SessionEngine::new("s");
        source.ingest(&delta(1, "a", "x"), 0);
        source.ingest(&delta(2, "b", "y"), 0);
        let snapshot =
            serde_json::to_string(&ControlFrame::Snapshot(source.state().snapshot("s", Some("e"), 2))).unwrap();

        let mut engine = SessionEngine::new("s");
        engine.send_local("mine", "c1", 0);
        assert_eq!(engine.ingest(&delta(3, "b", "z"), 0).buffered, 1);
        let report = engine.ingest(&snapshot, 0);
        assert_eq!(report.applied, 1);
        assert_eq!(
            contents(&engine),
            vec![
                ("a".into(), "x".into(), MessageStatus::Streaming),
                ("b".into(), "yz".into(), MessageStatus::Streaming),
                ("c1".into(), "mine".into(), MessageStatus::Pending),
            ]
        );
        assert_eq!(engine.cursor().seq, 3);
        assert_eq!(engine.take_patch().rebuild_from, 0);
        // An older snapshot of the same epoch changes nothing.
        assert_eq!(engine.ingest(&snapshot, 0).ignored, 1);
        assert_eq!(engine.cursor().seq, 3);
    }

    #[test]
    fn subscribe_frame_resumes_from_the_cursor() {
        let mut engine = SessionEngine::new("s");
        assert_eq!(
            engine.subscribe_frame(),
            ClientFrame::Subscribe { channel: "s".into(), epoch: None, after_seq: None }
        );
        engine.ingest(&delta(1, "a", "x"), 0);
        assert_eq!(
            engine.subscribe_frame(),
            ClientFrame::Subscribe { channel: "s".into(), epoch: Some("e".into()), after_seq: Some(1) }
        );
        let report = engine.ingest(r#"{"type":"unsubscribed","channel":"s","reason":"slow_consumer"}"#, 0);
        assert_eq!(report.need_resync, Some(ResyncReason::Unsubscribed { reason: "slow_consumer".into() }));
    }
}
