//! The client side of one connection: the engines of every session a page
//! follows, and the running map. Each socket message is parsed once, here:
//! its frames go to their sessions' engines in order, `running` lists and
//! run events go to the running map, and what is the transport's business
//! (the heartbeat a `hello` sets) comes back as data. Other control frames
//! (`subscribed`, `pong`, `protocol_error`) ask nothing of a client and are
//! not read. The transport only moves bytes and arms timers.
//!
//! | module | owns |
//! |---|---|
//! | `session` | the engine of one session, which ties the others together ([`SessionEngine`]) |
//! | `reorder` | the per-channel reorder buffer ([`Cursor`], [`ReorderLimits`]) |
//! | `resync` | why a client must resubscribe ([`ResyncReason`]) |
//! | `optimistic` | pending local sends and echo dedupe ([`SendOutcome`]) |
//! | `running` | the map of running sessions ([`RunningMap`]) |
//! | `threads` | how messages nest under tool calls, kept from each patch ([`Threads`]) |

pub(crate) mod optimistic;
pub(crate) mod reorder;
pub(crate) mod resync;
pub(crate) mod running;
pub(crate) mod session;
pub(crate) mod threads;

pub use optimistic::{DEFAULT_ECHO_WINDOW_MS, SendOutcome};
pub use reorder::{Cursor, ReorderLimits};
pub use resync::ResyncReason;
pub use running::{DEFAULT_LOCAL_GRACE_MS, RunningEntry, RunningMap};
pub use session::{EngineConfig, IngestReport, SessionEngine};
pub use threads::{ThreadChanges, Threads};

use rustc_hash::FxHashMap;

use crate::frame::{ControlFrame, FrameError, ParsedFrame, ServerFrame, parse_client_message};

/// What one socket message (or timeout) did across the sessions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientReport {
    /// Open sessions that got frames or errors, in the order they first came.
    pub touched: Vec<String>,
    /// Sessions that must resubscribe (with their `subscribe_frame`), and why.
    pub resync: Vec<(String, ResyncReason)>,
    /// The heartbeat period a `hello` set, in ms.
    pub heartbeat_ms: Option<u64>,
    /// Frames that failed validation; they changed nothing.
    pub errors: Vec<FrameError>,
    /// Frames for sessions not open here, and frames of unknown types.
    pub ignored: usize,
    /// Whether the running map changed.
    pub running_changed: bool,
}

/// Every session of one connection, and which of them are running.
#[derive(Debug, Clone, Default)]
pub struct Client {
    config: EngineConfig,
    sessions: FxHashMap<String, SessionEngine>,
    running: RunningMap,
}

impl Client {
    /// A client with no session open, and default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// A client whose engines use `config`, with `running` as its running map.
    pub fn with_config(config: EngineConfig, running: RunningMap) -> Self {
        Self { config, sessions: FxHashMap::default(), running }
    }

    /// Opens a session's engine; false when it was open already.
    pub fn open(&mut self, session_id: &str) -> bool {
        if self.sessions.contains_key(session_id) {
            return false;
        }
        self.sessions.insert(session_id.to_owned(), SessionEngine::with_config(session_id, self.config));
        true
    }

    /// Drops a session's engine; its frames are ignored from now on.
    pub fn close(&mut self, session_id: &str) -> bool {
        self.sessions.remove(session_id).is_some()
    }

    /// The engine of an open session.
    pub fn session(&self, session_id: &str) -> Option<&SessionEngine> {
        self.sessions.get(session_id)
    }

    /// The engine of an open session, to change.
    pub fn session_mut(&mut self, session_id: &str) -> Option<&mut SessionEngine> {
        self.sessions.get_mut(session_id)
    }

    /// The open sessions, in no particular order.
    pub fn session_ids(&self) -> impl Iterator<Item = &str> {
        self.sessions.keys().map(String::as_str)
    }

    /// Which sessions are running.
    pub fn running(&self) -> &RunningMap {
        &self.running
    }

    /// Ingests one socket message: a frame or an array of frames, for any
    /// mix of sessions.
    pub fn ingest(&mut self, text: &str, now_ms: u64) -> ClientReport {
        let parsed = parse_client_message(text, None, self.config.max_message_bytes);
        let mut report = ClientReport::default();
        let mut routed: Vec<(String, Vec<ParsedFrame>)> = Vec::new();
        for parsed_frame in parsed.frames {
            let session_id = match &parsed_frame.frame {
                ServerFrame::Sequenced(frame) => &*frame.channel,
                ServerFrame::Control(ControlFrame::Running(list)) => {
                    self.running.sync(list, now_ms);
                    continue;
                }
                ServerFrame::Control(control @ (ControlFrame::Snapshot(_) | ControlFrame::Unsubscribed(_))) => {
                    control.channel().unwrap_or_default()
                }
                ServerFrame::Control(ControlFrame::Hello(hello)) => {
                    report.heartbeat_ms = Some(hello.heartbeat_ms);
                    self.running.connected();
                    continue;
                }
                ServerFrame::Control(_) => {
                    report.ignored += 1;
                    continue;
                }
            };
            if !self.sessions.contains_key(session_id) {
                report.ignored += 1;
                continue;
            }
            // A message is almost always one session's: the last entry is it.
            let slot = match routed.iter().rposition(|(id, _)| id == session_id) {
                Some(slot) => slot,
                None => {
                    routed.push((session_id.to_owned(), Vec::new()));
                    routed.len() - 1
                }
            };
            routed[slot].1.push(parsed_frame);
        }
        // Bad frames belong to the one session the message was for; in a
        // message for several (or none) they are the connection's alone.
        if routed.is_empty() && !parsed.errors.is_empty() {
            // A bad frame sent alone is still its session's business, when it names one.
            if let Some(session_id) = named_session(text).filter(|id| self.sessions.contains_key(id)) {
                routed.push((session_id, Vec::new()));
            }
        }
        let mut errors = Some(parsed.errors);
        if routed.len() != 1 {
            report.errors = errors.take().unwrap_or_default();
        }
        for (session_id, frames) in routed {
            self.deliver(&session_id, frames, errors.take().unwrap_or_default(), now_ms, &mut report);
        }
        report.running_changed = self.running.take_changed();
        report
    }

    /// Gives up on gaps that did not fill in time.
    pub fn handle_timeout(&mut self, now_ms: u64) -> ClientReport {
        let mut report = ClientReport::default();
        for (session_id, engine) in &mut self.sessions {
            if engine.poll_timeout().is_some_and(|deadline| deadline <= now_ms)
                && let Some(reason) = engine.handle_timeout(now_ms)
            {
                report.touched.push(session_id.clone());
                report.resync.push((session_id.clone(), reason));
            }
        }
        report
    }

    /// When `handle_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.sessions.values().filter_map(SessionEngine::poll_timeout).min()
    }

    /// Shows a user message at once as pending, and the session as running.
    /// `None` when the session is not open.
    pub fn send_local(
        &mut self,
        session_id: &str,
        content: &str,
        client_message_id: &str,
        now_ms: u64,
    ) -> Option<SendOutcome> {
        let outcome = self.sessions.get_mut(session_id)?.send_local(content, client_message_id, now_ms);
        if outcome != SendOutcome::Duplicate {
            self.running.mark_local(session_id, now_ms);
        }
        Some(outcome)
    }

    /// Marks a send whose POST failed, and drops its session's local running mark.
    pub fn mark_send_failed(&mut self, session_id: &str, client_message_id: &str, error: &str) -> bool {
        self.running.clear_local(session_id);
        self.sessions.get_mut(session_id).is_some_and(|engine| engine.mark_send_failed(client_message_id, error))
    }

    /// Applies a `running` list that came by REST; true when the map changed.
    pub fn sync_running(&mut self, list: &crate::frame::Running, now_ms: u64) -> bool {
        self.running.sync(list, now_ms);
        self.running.take_changed()
    }

    /// Drops local running marks past their grace; true when the map changed.
    pub fn expire_local(&mut self, now_ms: u64) -> bool {
        self.running.expire_local(now_ms);
        self.running.take_changed()
    }

    /// Whether the running map changed since this was last asked, by sends,
    /// failures or expiries.
    pub fn take_running_changed(&mut self) -> bool {
        self.running.take_changed()
    }

    fn deliver(
        &mut self,
        session_id: &str,
        frames: Vec<ParsedFrame>,
        errors: Vec<FrameError>,
        now_ms: u64,
        report: &mut ClientReport,
    ) {
        let Some(engine) = self.sessions.get_mut(session_id) else { return };
        let session_report: IngestReport = engine.ingest_parsed(frames, errors, now_ms);
        report.ignored += session_report.ignored;
        report.errors.extend(session_report.errors);
        for event in &session_report.run_events {
            self.running.apply_event(session_id, event);
        }
        if let Some(reason) = session_report.need_resync {
            report.resync.push((session_id.to_owned(), reason));
        }
        report.touched.push(session_id.to_owned());
    }
}

/// The `channel` a message that is one JSON object names, if any.
fn named_session(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value.get("channel")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn delta(channel: &str, seq: u64, text: &str) -> String {
        format!(
            r#"{{"channel":"{channel}","epoch":"e","seq":{seq},"type":"delta","message_id":"m","content":"{text}"}}"#
        )
    }

    fn content(client: &Client, session_id: &str) -> String {
        client.session(session_id).unwrap().messages().map(|message| message.content.clone()).collect()
    }

    #[test]
    fn a_mixed_message_goes_to_each_session_in_order_and_control_frames_come_back() {
        let mut client = Client::new();
        client.open("a");
        client.open("b");
        let text = format!(
            r#"[{},{},{{"type":"hello","protocol":1,"connection_id":"k","heartbeat_ms":500}},{},{}]"#,
            delta("a", 1, "x"),
            delta("b", 1, "1"),
            delta("a", 2, "y"),
            delta("c", 1, "?"),
        );
        let report = client.ingest(&text, 0);
        assert_eq!(report.touched, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(report.ignored, 1, "the frame for a session not open");
        assert_eq!(report.heartbeat_ms, Some(500));
        assert_eq!((content(&client, "a"), content(&client, "b")), ("xy".into(), "1".into()));
    }

    #[test]
    fn a_bad_frame_is_its_sessions_error_until_frames_apply_again() {
        let mut client = Client::new();
        client.open("a");
        let report = client.ingest(&format!(r#"[{},{{"type":"delta"}}]"#, delta("a", 1, "x")), 0);
        assert_eq!(report.errors.len(), 1);
        assert!(client.session("a").unwrap().error().is_some());
        client.ingest(&delta("a", 2, "y"), 0);
        assert_eq!(client.session("a").unwrap().error(), None);
        // Alone, too: a frame with seq 0 names its session.
        let report = client.ingest(&delta("a", 0, "z"), 0);
        assert_eq!((report.errors.len(), &report.touched[..]), (1, &["a".to_string()][..]));
        assert!(client.session("a").unwrap().error().is_some());
    }

    #[test]
    fn runs_and_running_lists_reach_the_running_map() {
        let mut client = Client::new();
        client.open("a");
        let started =
            r#"{"channel":"a","epoch":"e","seq":1,"type":"run_started","run_id":"r","provider":"demo","started_at":5}"#;
        assert!(client.ingest(started, 0).running_changed);
        assert!(client.running().is_running("a"));
        let list = r#"{"type":"running","rev":1,"sessions":[{"session_id":"z","run_id":"q","provider":"demo","started_at":1,"last_seq":3}]}"#;
        assert!(client.ingest(list, 0).running_changed);
        assert!(client.running().is_running("z") && !client.running().is_running("a"));
    }

    #[test]
    fn a_snapshot_without_a_run_ends_the_run_the_map_shows() {
        let mut client = Client::new();
        client.open("a");
        let list = r#"{"type":"running","rev":1,"sessions":[{"session_id":"a","run_id":"r","provider":"demo","started_at":1,"last_seq":3}]}"#;
        client.ingest(list, 0);
        let snapshot = |seq: u64| {
            format!(
                r#"{{"type":"snapshot","channel":"a","epoch":"e","seq":{seq},"messages":[],"state_hash":"{}"}}"#,
                crate::StateHash::of([])
            )
        };
        // Older than the list: the run may have started after it.
        assert!(!client.ingest(&snapshot(2), 0).running_changed);
        assert!(client.running().is_running("a"));
        assert!(client.ingest(&snapshot(3), 0).running_changed);
        assert!(!client.running().is_running("a"));
    }

    #[test]
    fn a_new_epoch_forgets_the_seqs_of_the_old_history() {
        let mut client = Client::new();
        client.open("a");
        let snapshot = |epoch: &str, seq: u64, run: &str| {
            format!(
                r#"{{"type":"snapshot","channel":"a","epoch":"{epoch}","seq":{seq},"messages":[],"state_hash":"{}"{run}}}"#,
                crate::StateHash::of([])
            )
        };
        client.ingest(&snapshot("e1", 5000, ""), 0);
        // The server lost its log: a new history, whose seqs start again.
        let run = r#","run":{"run_id":"r","provider":"demo","started_at":1}"#;
        assert!(client.ingest(&snapshot("e2", 3, run), 0).running_changed);
        assert!(client.running().is_running("a"));
    }

    #[test]
    fn sends_mark_the_session_running_and_failures_clear_it() {
        let mut client = Client::new();
        assert_eq!(client.send_local("a", "hi", "c1", 0), None, "not open");
        client.open("a");
        assert_eq!(client.send_local("a", "hi", "c1", 0), Some(SendOutcome::Added));
        assert!(client.take_running_changed() && client.running().is_running("a"));
        assert!(client.mark_send_failed("a", "c1", "offline"));
        assert!(client.take_running_changed() && !client.running().is_running("a"));
    }
}
