//! The map of sessions that are running (have a run going), as a client
//! sees it: fed by local sends, by `run_started`/`run_finished` frames and by
//! the server's `running` lists, which may arrive late or out of order.
//!
//! Two rules keep a finished session from spinning again: a `running` list
//! older than one already applied is ignored, and an entry whose `last_seq` is
//! not past the `run_finished` this client applied for that session describes
//! the channel before the finish, so it is not believed.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::frame::{Running, RunningSession};
use crate::reducer::RunEvent;

/// The default time a local mark survives lists that do not report it yet.
pub const DEFAULT_LOCAL_GRACE_MS: u64 = 10_000;

/// Why a session is in the map.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum RunningEntry {
    /// This client just sent a message; the server has not reported the run yet.
    Local {
        /// When the mark was made.
        marked_at: u64,
    },
    /// The server reported this run.
    Run {
        /// The run.
        run_id: String,
        /// Its provider.
        provider: String,
        /// Start time, ms since the Unix epoch.
        started_at: u64,
        /// The server's notice on it (a silent provider), when there is one.
        #[serde(skip_serializing_if = "Option::is_none")]
        notice: Option<String>,
    },
}

impl RunningEntry {
    /// The run's id, when the server reported one.
    pub fn run_id(&self) -> Option<&str> {
        match self {
            Self::Local { .. } => None,
            Self::Run { run_id, .. } => Some(run_id),
        }
    }
}

/// Running sessions, by id (sorted, so listing is stable).
#[derive(Debug, Clone)]
pub struct RunningMap {
    entries: BTreeMap<String, RunningEntry>,
    /// The seq of the last `run_finished` applied in each session.
    finished_at_seq: FxHashMap<String, u64>,
    /// The seq at which each reported run was last known to be going.
    run_seen_at_seq: FxHashMap<String, u64>,
    last_rev: Option<u64>,
    local_grace_ms: u64,
    changed: bool,
}

impl Default for RunningMap {
    fn default() -> Self {
        Self::new(DEFAULT_LOCAL_GRACE_MS)
    }
}

impl RunningMap {
    /// An empty map; local marks survive `local_grace_ms` of lists without them.
    pub fn new(local_grace_ms: u64) -> Self {
        Self {
            entries: BTreeMap::new(),
            finished_at_seq: FxHashMap::default(),
            run_seen_at_seq: FxHashMap::default(),
            last_rev: None,
            local_grace_ms,
            changed: false,
        }
    }

    /// The running sessions.
    pub fn entries(&self) -> &BTreeMap<String, RunningEntry> {
        &self.entries
    }

    /// Whether the session is running.
    pub fn is_running(&self, session_id: &str) -> bool {
        self.entries.contains_key(session_id)
    }

    /// The last `rev` applied.
    pub fn last_rev(&self) -> Option<u64> {
        self.last_rev
    }

    /// Whether the map changed since the last call (for render scheduling).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// This client started something in the session: show it running now.
    pub fn mark_local(&mut self, session_id: &str, now_ms: u64) {
        if !self.entries.contains_key(session_id) {
            self.entries.insert(session_id.to_owned(), RunningEntry::Local { marked_at: now_ms });
            self.changed = true;
        }
    }

    /// This client's start failed (its send was refused): the local mark goes.
    /// A run the server reported stays.
    pub fn clear_local(&mut self, session_id: &str) {
        if matches!(self.entries.get(session_id), Some(RunningEntry::Local { .. })) {
            self.entries.remove(session_id);
            self.changed = true;
        }
    }

    /// Feeds a run event from a session engine's report.
    pub fn apply_event(&mut self, session_id: &str, event: &RunEvent) {
        match event {
            RunEvent::Started { info, seq } => {
                self.run_started(session_id, &info.run_id, &info.provider, info.started_at, *seq)
            }
            RunEvent::Finished { run_id, seq, .. } => self.run_finished(session_id, run_id, *seq),
            RunEvent::Idle { seq } => self.idle_at(session_id, *seq),
            RunEvent::NewEpoch => {
                // Seqs of the old history say nothing about the new one.
                self.finished_at_seq.remove(session_id);
                self.run_seen_at_seq.remove(session_id);
            }
        }
    }

    /// A snapshot at `seq` showed no run: a run the map knew of at or before
    /// `seq` is over, and a list from before `seq` cannot bring it back. A
    /// run reported after `seq`, and a local mark (its run may not have
    /// started yet), stay.
    pub fn idle_at(&mut self, session_id: &str, seq: u64) {
        if !self.is_after_finish(session_id, seq) {
            return;
        }
        self.finished_at_seq.insert(session_id.to_owned(), seq);
        let seen_later = self.run_seen_at_seq.get(session_id).is_some_and(|&seen| seen > seq);
        if !seen_later && matches!(self.entries.get(session_id), Some(RunningEntry::Run { .. })) {
            self.entries.remove(session_id);
            self.changed = true;
        }
    }

    /// A `run_started` frame at `seq` was applied.
    pub fn run_started(&mut self, session_id: &str, run_id: &str, provider: &str, started_at: u64, seq: u64) {
        if !self.is_after_finish(session_id, seq) {
            return;
        }
        self.run_seen_at_seq.insert(session_id.to_owned(), seq);
        let entry =
            RunningEntry::Run { run_id: run_id.to_owned(), provider: provider.to_owned(), started_at, notice: None };
        if self.entries.get(session_id) != Some(&entry) {
            self.entries.insert(session_id.to_owned(), entry);
            self.changed = true;
        }
    }

    /// A `run_finished` frame at `seq` was applied.
    pub fn run_finished(&mut self, session_id: &str, run_id: &str, seq: u64) {
        if !self.is_after_finish(session_id, seq) {
            return;
        }
        self.finished_at_seq.insert(session_id.to_owned(), seq);
        let ends_entry = match self.entries.get(session_id) {
            Some(RunningEntry::Run { run_id: running, .. }) => running == run_id,
            // The local mark was for this run, which is over.
            Some(RunningEntry::Local { .. }) => true,
            None => false,
        };
        if ends_entry {
            self.entries.remove(session_id);
            self.changed = true;
        }
    }

    /// Whether something at `seq` of the session comes after the last finish applied.
    fn is_after_finish(&self, session_id: &str, seq: u64) -> bool {
        self.finished_at_seq.get(session_id).is_none_or(|&finished| seq > finished)
    }

    /// A new connection began, perhaps to another node of the server, whose
    /// revisions are its own: the next list applies whatever its `rev`.
    pub fn connected(&mut self) {
        self.last_rev = None;
    }

    /// Applies a server `running` list. Returns false when it was stale (its
    /// `rev` not newer than one applied) and so ignored.
    pub fn sync(&mut self, running: &Running, now_ms: u64) -> bool {
        if self.last_rev.is_some_and(|last| running.rev <= last) {
            return false;
        }
        self.last_rev = Some(running.rev);
        let reported: BTreeMap<&str, &RunningSession> = running
            .sessions
            .iter()
            .filter(|session| self.is_after_finish(&session.session_id, session.last_seq))
            .map(|session| (session.session_id.as_str(), session))
            .collect();
        let grace = self.local_grace_ms;
        let before = self.entries.len();
        let mut changed = false;
        self.entries.retain(|session_id, entry| match entry {
            RunningEntry::Local { marked_at } => {
                reported.contains_key(session_id.as_str()) || now_ms.saturating_sub(*marked_at) < grace
            }
            RunningEntry::Run { .. } => reported.contains_key(session_id.as_str()),
        });
        changed |= before != self.entries.len();
        for (session_id, session) in reported {
            self.run_seen_at_seq.insert(session_id.to_owned(), session.last_seq);
            let entry = RunningEntry::Run {
                run_id: session.run_id.clone(),
                provider: session.provider.clone(),
                started_at: session.started_at,
                notice: session.notice.clone(),
            };
            if self.entries.get(session_id) != Some(&entry) {
                self.entries.insert(session_id.to_owned(), entry);
                changed = true;
            }
        }
        self.changed |= changed;
        true
    }

    /// Drops local marks older than the grace period with no list to confirm them.
    pub fn expire_local(&mut self, now_ms: u64) {
        let grace = self.local_grace_ms;
        let before = self.entries.len();
        self.entries.retain(|_, entry| match entry {
            RunningEntry::Local { marked_at } => now_ms.saturating_sub(*marked_at) < grace,
            RunningEntry::Run { .. } => true,
        });
        self.changed |= before != self.entries.len();
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn running(rev: u64, sessions: &[(&str, &str, u64)]) -> Running {
        Running {
            rev,
            sessions: sessions
                .iter()
                .map(|&(session, run, last_seq)| RunningSession {
                    session_id: session.to_string(),
                    run_id: run.to_string(),
                    provider: "demo".into(),
                    started_at: 1,
                    last_seq,
                    notice: None,
                })
                .collect(),
        }
    }

    fn ids(map: &RunningMap) -> Vec<&str> {
        map.entries().keys().map(String::as_str).collect()
    }

    #[test]
    fn local_marks_survive_the_grace_period_then_clear() {
        let mut map = RunningMap::new(1_000);
        map.mark_local("s1", 0);
        assert!(map.take_changed());
        assert!(map.sync(&running(1, &[]), 500));
        assert_eq!(ids(&map), vec!["s1"]);
        assert!(map.sync(&running(2, &[]), 1_000));
        assert!(ids(&map).is_empty());
        map.mark_local("s2", 0);
        map.expire_local(999);
        assert_eq!(ids(&map), vec!["s2"]);
        map.expire_local(1_000);
        assert!(ids(&map).is_empty());
    }

    #[test]
    fn a_failed_start_clears_its_local_mark_but_never_a_reported_run() {
        let mut map = RunningMap::default();
        map.mark_local("mine", 0);
        map.run_started("theirs", "r1", "demo", 1, 1);
        map.take_changed();
        map.clear_local("mine");
        map.clear_local("theirs");
        assert!(map.take_changed());
        assert_eq!(map.entries().keys().collect::<Vec<_>>(), vec!["theirs"]);
    }

    #[test]
    fn sync_clears_sessions_the_server_no_longer_reports() {
        let mut map = RunningMap::default();
        map.sync(&running(1, &[("a", "r1", 1), ("b", "r2", 1)]), 0);
        map.sync(&running(2, &[("b", "r2", 1)]), 0);
        assert_eq!(ids(&map), vec!["b"]);
    }

    #[test]
    fn an_older_rev_is_ignored() {
        let mut map = RunningMap::default();
        map.sync(&running(5, &[]), 0);
        assert!(!map.sync(&running(4, &[("a", "r1", 1)]), 0));
        assert!(!map.sync(&running(5, &[("a", "r1", 1)]), 0));
        assert!(ids(&map).is_empty());
    }

    #[test]
    fn a_new_connection_takes_the_first_list_whatever_its_rev() {
        let mut map = RunningMap::default();
        map.sync(&running(50, &[("a", "r1", 1)]), 0);
        // Another node counts its revisions from elsewhere.
        map.connected();
        assert!(map.sync(&running(3, &[("b", "r2", 1)]), 0));
        assert_eq!(ids(&map), vec!["b"]);
        assert!(!map.sync(&running(2, &[]), 0));
    }

    #[test]
    fn frames_update_at_once_and_a_late_list_cannot_revive_a_finished_run() {
        let mut map = RunningMap::default();
        map.run_started("a", "r1", "demo", 1, 1);
        assert_eq!(ids(&map), vec!["a"]);
        map.run_finished("a", "r1", 9);
        assert!(ids(&map).is_empty());
        // A newer rev describing the channel before the finish: not believed.
        map.sync(&running(7, &[("a", "r1", 8)]), 0);
        assert!(ids(&map).is_empty());
        // A newer rev describing a run begun after it is.
        map.sync(&running(8, &[("a", "r2", 10)]), 0);
        assert_eq!(map.entries()["a"].run_id(), Some("r2"));
    }

    #[test]
    fn an_older_finish_does_not_end_a_newer_run() {
        let mut map = RunningMap::default();
        map.run_finished("a", "r1", 9);
        map.run_started("a", "r2", "demo", 1, 10);
        map.run_finished("a", "r1", 9);
        assert_eq!(map.entries()["a"].run_id(), Some("r2"));
    }
}
