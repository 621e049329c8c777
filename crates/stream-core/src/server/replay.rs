//! Resume on the server (protocol §4), sans-IO: the hot ring of a channel's
//! recent frames, bounded in frames and in bytes; the verdict for a
//! `subscribe`; when an idle channel's ring may go; and the index of running
//! runs behind the `running` frame.

use std::collections::{BTreeMap, VecDeque};

use crate::frame::{RunInfo, Running, RunningSession};

/// Bounds of a replay ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLimits {
    /// Most frames kept.
    pub max_frames: usize,
    /// Most bytes kept.
    pub max_bytes: usize,
}

impl Default for RingLimits {
    fn default() -> Self {
        Self { max_frames: 16_384, max_bytes: 8 * 1024 * 1024 }
    }
}

/// The default time a finished run's ring stays in memory.
pub const DEFAULT_RETENTION_MS: u64 = 5 * 60 * 1000;

/// The most recent frames of one channel, oldest first, contiguous.
#[derive(Debug, Clone)]
pub struct ReplayRing<T> {
    frames: VecDeque<(u64, T, usize)>,
    bytes: usize,
    limits: RingLimits,
}

impl<T> ReplayRing<T> {
    /// An empty ring.
    pub fn new(limits: RingLimits) -> Self {
        Self { frames: VecDeque::new(), bytes: 0, limits }
    }

    /// Appends the frame at `seq`, which follows the last one; evicts the
    /// oldest frames past the bounds (the newest always stays). A `seq` that
    /// does not follow starts the ring over, so it stays contiguous.
    pub fn push(&mut self, seq: u64, item: T, size: usize) {
        if self.last_seq().is_some_and(|last| seq != last + 1) {
            self.clear();
        }
        self.frames.push_back((seq, item, size));
        self.bytes += size;
        while self.frames.len() > 1
            && (self.frames.len() > self.limits.max_frames || self.bytes > self.limits.max_bytes)
        {
            if let Some((_, _, size)) = self.frames.pop_front() {
                self.bytes -= size;
            }
        }
    }

    /// The oldest seq held.
    pub fn first_seq(&self) -> Option<u64> {
        self.frames.front().map(|(seq, _, _)| *seq)
    }

    /// The newest seq held.
    pub fn last_seq(&self) -> Option<u64> {
        self.frames.back().map(|(seq, _, _)| *seq)
    }

    /// Frames held.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Every frame after `after_seq`, when the ring holds all of them up to its
    /// newest; `None` when some are no longer in memory.
    pub fn after(&self, after_seq: u64) -> Option<impl Iterator<Item = &T>> {
        let first = self.first_seq()?;
        if after_seq + 1 < first {
            return None;
        }
        let skip = usize::try_from(after_seq + 1 - first).unwrap_or(usize::MAX).min(self.frames.len());
        Some(self.frames.range(skip..).map(|(_, item, _)| item))
    }

    /// Drops every frame.
    pub fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }
}

/// How a `subscribe` catches up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A snapshot at the head, then live frames.
    Snapshot,
    /// The frames `after_seq + 1 ..= head`, then live frames.
    Replay {
        /// The client's last seq.
        after_seq: u64,
        /// The channel's head.
        head: u64,
    },
}

/// Decides protocol §4 for a channel at `(epoch, head)` whose frames from
/// `retained_from` on are still kept (in memory or in the durable log).
pub fn verdict(
    channel_epoch: Option<&str>,
    head: u64,
    retained_from: u64,
    cursor_epoch: Option<&str>,
    after_seq: Option<u64>,
) -> Verdict {
    match (channel_epoch, cursor_epoch, after_seq) {
        (Some(epoch), Some(cursor_epoch), Some(after_seq))
            if epoch == cursor_epoch && after_seq <= head && after_seq + 1 >= retained_from =>
        {
            Verdict::Replay { after_seq, head }
        }
        _ => Verdict::Snapshot,
    }
}

/// Whether an idle channel's ring may leave memory: no run going, and the
/// last one ended at least `retention_ms` ago.
pub fn is_evictable(running: bool, last_finished_at: Option<u64>, now_ms: u64, retention_ms: u64) -> bool {
    !running && last_finished_at.is_none_or(|finished| now_ms.saturating_sub(finished) >= retention_ms)
}

/// The running runs of every session, with a revision that grows on change.
#[derive(Debug, Clone, Default)]
pub struct RunningIndex {
    rev: u64,
    runs: BTreeMap<String, RunInfo>,
    notices: BTreeMap<String, String>,
}

impl RunningIndex {
    /// No runs, revision 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current revision.
    pub fn rev(&self) -> u64 {
        self.rev
    }

    /// Whether the session has a run going.
    pub fn is_running(&self, session_id: &str) -> bool {
        self.runs.contains_key(session_id)
    }

    /// A run started.
    pub fn started(&mut self, session_id: &str, run: RunInfo) {
        self.runs.insert(session_id.to_owned(), run);
        self.rev += 1;
    }

    /// A run (or the session) ended; returns whether that changed anything.
    pub fn finished(&mut self, session_id: &str) -> bool {
        self.notices.remove(session_id);
        let removed = self.runs.remove(session_id).is_some();
        if removed {
            self.rev += 1;
        }
        removed
    }

    /// Sets (or, with `None`, clears) the notice on a running session's run;
    /// returns whether that changed anything.
    pub fn notice(&mut self, session_id: &str, notice: Option<String>) -> bool {
        if !self.runs.contains_key(session_id) || self.notices.get(session_id) == notice.as_ref() {
            return false;
        }
        match notice {
            Some(notice) => self.notices.insert(session_id.to_owned(), notice),
            None => self.notices.remove(session_id),
        };
        self.rev += 1;
        true
    }

    /// The `running` frame body; `last_seq` gives each channel's head now.
    pub fn list(&self, last_seq: impl Fn(&str) -> u64) -> Running {
        Running {
            rev: self.rev,
            sessions: self
                .runs
                .iter()
                .map(|(session_id, run)| RunningSession {
                    session_id: session_id.clone(),
                    run_id: run.run_id.clone(),
                    provider: run.provider.clone(),
                    started_at: run.started_at,
                    last_seq: last_seq(session_id),
                    notice: self.notices.get(session_id).cloned(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn a_notice_rides_on_a_running_run_until_cleared_or_finished() {
        let mut index = RunningIndex::new();
        let run = RunInfo { run_id: "r".into(), provider: "p".into(), started_at: 1 };
        assert!(!index.notice("s", Some("quiet".into())), "no run, no notice");
        index.started("s", run);
        let rev = index.rev();
        assert!(index.notice("s", Some("quiet".into())));
        assert!(!index.notice("s", Some("quiet".into())), "the same notice changes nothing");
        assert_eq!(index.list(|_| 0).sessions[0].notice.as_deref(), Some("quiet"));
        assert!(index.notice("s", None));
        assert_eq!(index.list(|_| 0).sessions[0].notice, None);
        index.notice("s", Some("again".into()));
        index.finished("s");
        assert!(index.list(|_| 0).sessions.is_empty());
        assert!(index.rev() > rev + 2);
    }

    fn ring(max_frames: usize, max_bytes: usize) -> ReplayRing<u64> {
        ReplayRing::new(RingLimits { max_frames, max_bytes })
    }

    #[test]
    fn the_ring_keeps_the_newest_frames_within_both_bounds() {
        let mut r = ring(3, 100);
        for seq in 1..=5 {
            r.push(seq, seq, 10);
        }
        assert_eq!((r.first_seq(), r.last_seq(), r.len(), r.bytes()), (Some(3), Some(5), 3, 30));
        let mut r = ring(100, 25);
        for seq in 1..=5 {
            r.push(seq, seq, 10);
        }
        assert_eq!((r.first_seq(), r.bytes()), (Some(4), 20));
        // One frame over the byte bound on its own still stays: it is the head.
        r.push(6, 6, 1_000);
        assert_eq!((r.first_seq(), r.len()), (Some(6), 1));
    }

    #[test]
    fn after_returns_exactly_the_missing_frames_or_none() {
        let mut r = ring(3, 100);
        for seq in 1..=5 {
            r.push(seq, seq, 1);
        }
        assert_eq!(r.after(2).map(|it| it.copied().collect::<Vec<_>>()), Some(vec![3, 4, 5]));
        assert_eq!(r.after(4).map(|it| it.copied().collect::<Vec<_>>()), Some(vec![5]));
        assert_eq!(r.after(5).map(|it| it.count()), Some(0));
        assert!(r.after(1).is_none());
    }

    #[test]
    fn a_gap_in_pushes_restarts_the_ring() {
        let mut r = ring(10, 100);
        r.push(1, 1, 1);
        r.push(5, 5, 1);
        assert_eq!((r.first_seq(), r.len()), (Some(5), 1));
    }

    #[test]
    fn verdicts_follow_protocol_section_4() {
        use Verdict::*;
        assert_eq!(verdict(Some("e"), 10, 1, Some("e"), Some(4)), Replay { after_seq: 4, head: 10 });
        assert_eq!(verdict(Some("e"), 10, 1, Some("e"), Some(10)), Replay { after_seq: 10, head: 10 });
        assert_eq!(verdict(Some("e"), 10, 1, None, None), Snapshot);
        assert_eq!(verdict(Some("e"), 10, 1, Some("old"), Some(4)), Snapshot);
        assert_eq!(verdict(Some("e"), 10, 1, Some("e"), Some(11)), Snapshot);
        assert_eq!(verdict(Some("e"), 10, 6, Some("e"), Some(4)), Snapshot);
        assert_eq!(verdict(None, 0, 1, Some("e"), Some(0)), Snapshot);
    }

    #[test]
    fn only_idle_channels_past_retention_are_evictable() {
        assert!(!is_evictable(true, None, 1_000, 100));
        assert!(!is_evictable(false, Some(950), 1_000, 100));
        assert!(is_evictable(false, Some(900), 1_000, 100));
        assert!(is_evictable(false, None, 1_000, 100));
    }

    #[test]
    fn the_running_index_bumps_its_rev_on_every_change() {
        let mut index = RunningIndex::new();
        let run = RunInfo { run_id: "r1".into(), provider: "demo".into(), started_at: 5 };
        index.started("a", run);
        assert!(!index.finished("b"));
        assert_eq!(index.rev(), 1);
        let list = index.list(|_| 7);
        assert_eq!((list.rev, list.sessions.len(), list.sessions[0].last_seq), (1, 1, 7));
        assert!(index.finished("a"));
        assert_eq!(index.list(|_| 0), Running { rev: 2, sessions: vec![] });
    }
}
