//! The per-channel reorder buffer: turns frames that arrive duplicated, out of
//! order, or overlapping (a replay meeting live frames) into the one
//! contiguous sequence the reducer may apply.
//!
//! It keys frames by `(epoch, seq)`, releases them in order, drops what was
//! already released, and holds what is early, within bounds in frames and in
//! bytes. Whenever it cannot make progress by waiting (a new epoch, a full
//! buffer, a gap that does not fill in time) it answers [`ResyncReason`]
//! instead: the caller resubscribes. Time comes in as `now_ms`.

use std::collections::{BTreeMap, VecDeque};

use crate::client::resync::ResyncReason;

/// What the buffer reads of a frame: its place in the sequence.
pub trait Positioned {
    /// The history it belongs to.
    fn epoch(&self) -> &str;
    /// Its place in that history.
    fn seq(&self) -> u64;
}

impl Positioned for crate::frame::SequencedFrame {
    fn epoch(&self) -> &str {
        &self.epoch
    }

    fn seq(&self) -> u64 {
        self.seq
    }
}

/// Bounds of a reorder buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReorderLimits {
    /// Most frames held out of order.
    pub max_frames: usize,
    /// Most bytes (of frame text) held out of order.
    pub max_bytes: usize,
    /// How long held frames may wait for a gap to fill.
    pub stall_ms: u64,
    /// Cap of the wait when the same gap keeps coming back (it doubles each time).
    pub max_stall_ms: u64,
}

impl Default for ReorderLimits {
    fn default() -> Self {
        Self { max_frames: 4096, max_bytes: 8 * 1024 * 1024, stall_ms: 2_000, max_stall_ms: 60_000 }
    }
}

/// What became of an offered frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// It (and maybe held frames after it) can be applied: call `pop_ready`.
    Ready,
    /// It was released before, or is already held: dropped.
    Duplicate,
    /// It is early: held until the gap before it fills.
    Held,
    /// The buffer cannot go on by waiting; it holds nothing now.
    Resync(ResyncReason),
}

/// Where a channel's sequence stands: what to send in `subscribe`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Cursor {
    /// The history; none until the first frame or snapshot names one.
    pub epoch: Option<String>,
    /// The last seq released.
    pub seq: u64,
}

/// The reorder buffer of one channel.
#[derive(Debug, Clone)]
pub struct ReorderBuffer<T> {
    cursor: Cursor,
    held: BTreeMap<u64, (T, usize)>,
    held_bytes: usize,
    ready: VecDeque<T>,
    limits: ReorderLimits,
    stall: StallClock,
}

/// Times the wait for a gap, and lengthens it when the same gap stalls again.
#[derive(Debug, Clone, Default)]
struct StallClock {
    /// When the current wait began (the last progress with frames held).
    waiting_since: Option<u64>,
    /// The gap that last stalled, as the seq it waited after.
    last_stalled_after: Option<(Option<String>, u64)>,
    /// How many times in a row that gap stalled.
    strikes: u32,
}

impl<T: Positioned> ReorderBuffer<T> {
    /// An empty buffer at cursor `(none, 0)`.
    pub fn new(limits: ReorderLimits) -> Self {
        Self {
            cursor: Cursor::default(),
            held: BTreeMap::new(),
            held_bytes: 0,
            ready: VecDeque::new(),
            limits,
            stall: StallClock::default(),
        }
    }

    /// The last released position.
    pub fn cursor(&self) -> &Cursor {
        &self.cursor
    }

    /// Frames held out of order.
    pub fn held_frames(&self) -> usize {
        self.held.len()
    }

    /// Bytes held out of order.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Offers a frame, `size` bytes long.
    pub fn offer(&mut self, item: T, size: usize, now_ms: u64) -> Offer {
        let seq = item.seq();
        match self.cursor.epoch.as_deref() {
            // A cursor at seq 0 takes the first epoch it sees (protocol §4).
            None if self.cursor.seq == 0 => self.cursor.epoch = Some(item.epoch().to_owned()),
            Some(current) if current == item.epoch() => {}
            current => {
                let reason =
                    ResyncReason::EpochChanged { from: current.map(str::to_owned), to: item.epoch().to_owned() };
                self.clear_held();
                return Offer::Resync(reason);
            }
        }
        if seq <= self.cursor.seq || self.held.contains_key(&seq) {
            return Offer::Duplicate;
        }
        if seq == self.cursor.seq + 1 {
            self.cursor.seq = seq;
            self.ready.push_back(item);
            self.release_contiguous(now_ms);
            return Offer::Ready;
        }
        if self.held.len() + 1 > self.limits.max_frames || self.held_bytes + size > self.limits.max_bytes {
            let reason =
                ResyncReason::Overflow { held_frames: self.held.len() + 1, held_bytes: self.held_bytes + size };
            self.clear_held();
            return Offer::Resync(reason);
        }
        self.held.insert(seq, (item, size));
        self.held_bytes += size;
        self.stall.waiting_since.get_or_insert(now_ms);
        Offer::Held
    }

    /// The next frame to apply, in sequence order.
    pub fn pop_ready(&mut self) -> Option<T> {
        self.ready.pop_front()
    }

    /// Moves the cursor to a snapshot's watermark: held frames at or before it,
    /// or of another epoch, are dropped; those after it are kept and released
    /// when contiguous.
    pub fn reset(&mut self, epoch: Option<String>, seq: u64, now_ms: u64) {
        if epoch != self.cursor.epoch {
            self.clear_held();
        }
        self.ready.clear();
        self.cursor = Cursor { epoch, seq };
        let stale: Vec<u64> = self.held.range(..=seq).map(|(&held_seq, _)| held_seq).collect();
        for held_seq in stale {
            self.remove_held(held_seq);
        }
        self.release_contiguous(now_ms);
    }

    /// When `handle_timeout` should next be called, if frames are held.
    pub fn poll_timeout(&self) -> Option<u64> {
        let since = self.stall.waiting_since?;
        Some(since.saturating_add(self.stall_window()))
    }

    /// Gives up on a gap that did not fill in time.
    pub fn handle_timeout(&mut self, now_ms: u64) -> Option<ResyncReason> {
        let deadline = self.poll_timeout()?;
        if now_ms < deadline {
            return None;
        }
        let gap = (self.cursor.epoch.clone(), self.cursor.seq);
        if self.stall.last_stalled_after.as_ref() == Some(&gap) {
            self.stall.strikes = self.stall.strikes.saturating_add(1);
        } else {
            self.stall.last_stalled_after = Some(gap);
            self.stall.strikes = 0;
        }
        let reason = ResyncReason::Stalled {
            after_seq: self.cursor.seq,
            held_frames: self.held.len(),
            waited_ms: now_ms - self.stall.waiting_since.unwrap_or(now_ms),
        };
        self.clear_held();
        Some(reason)
    }

    /// The wait for the current gap: `stall_ms`, doubled for each time in a
    /// row this same gap stalled before, capped at `max_stall_ms`.
    fn stall_window(&self) -> u64 {
        let same_gap = self.stall.last_stalled_after.as_ref() == Some(&(self.cursor.epoch.clone(), self.cursor.seq));
        let doublings = if same_gap { self.stall.strikes.saturating_add(1).min(32) } else { 0 };
        self.limits.stall_ms.saturating_mul(1u64 << doublings).min(self.limits.max_stall_ms)
    }

    fn release_contiguous(&mut self, now_ms: u64) {
        while let Some((item, _)) = self.remove_held(self.cursor.seq + 1) {
            self.cursor.seq += 1;
            self.ready.push_back(item);
        }
        self.stall.waiting_since = if self.held.is_empty() { None } else { Some(now_ms) };
    }

    fn remove_held(&mut self, seq: u64) -> Option<(T, usize)> {
        let removed = self.held.remove(&seq)?;
        self.held_bytes -= removed.1;
        Some(removed)
    }

    fn clear_held(&mut self) {
        self.held.clear();
        self.held_bytes = 0;
        self.stall.waiting_since = None;
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    /// A frame that is only its position.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct At(&'static str, u64);

    impl Positioned for At {
        fn epoch(&self) -> &str {
            self.0
        }

        fn seq(&self) -> u64 {
            self.1
        }
    }

    fn buffer() -> ReorderBuffer<At> {
        ReorderBuffer::new(ReorderLimits { max_frames: 4, max_bytes: 100, stall_ms: 1_000, max_stall_ms: 5_000 })
    }

    fn drain(buffer: &mut ReorderBuffer<At>) -> Vec<u64> {
        std::iter::from_fn(|| buffer.pop_ready()).map(|at| at.1).collect()
    }

    #[test]
    fn releases_in_order_and_drops_duplicates() {
        let mut b = buffer();
        assert_eq!(b.offer(At("e", 1), 10, 0), Offer::Ready);
        assert_eq!(b.offer(At("e", 3), 10, 0), Offer::Held);
        assert_eq!(b.offer(At("e", 3), 10, 0), Offer::Duplicate);
        assert_eq!(b.offer(At("e", 1), 10, 0), Offer::Duplicate);
        assert_eq!(drain(&mut b), vec![1]);
        assert_eq!(b.offer(At("e", 2), 10, 0), Offer::Ready);
        assert_eq!(drain(&mut b), vec![2, 3]);
        assert_eq!(b.cursor(), &Cursor { epoch: Some("e".into()), seq: 3 });
        assert_eq!((b.held_frames(), b.held_bytes()), (0, 0));
    }

    #[test]
    fn overflow_in_frames_or_bytes_asks_for_resync_and_frees_memory() {
        let mut b = buffer();
        for seq in 2..=5 {
            assert_eq!(b.offer(At("e", seq), 1, 0), Offer::Held);
        }
        assert!(matches!(b.offer(At("e", 6), 1, 0), Offer::Resync(ResyncReason::Overflow { held_frames: 5, .. })));
        assert_eq!(b.held_frames(), 0);

        let mut b = buffer();
        assert_eq!(b.offer(At("e", 2), 60, 0), Offer::Held);
        assert!(matches!(b.offer(At("e", 3), 60, 0), Offer::Resync(ResyncReason::Overflow { held_bytes: 120, .. })));
        assert_eq!(b.held_bytes(), 0);
    }

    #[test]
    fn a_new_epoch_asks_for_resync() {
        let mut b = buffer();
        b.offer(At("e1", 1), 1, 0);
        assert_eq!(
            b.offer(At("e2", 2), 1, 0),
            Offer::Resync(ResyncReason::EpochChanged { from: Some("e1".into()), to: "e2".into() })
        );
    }

    #[test]
    fn a_cursor_at_zero_adopts_the_first_epoch_even_when_early() {
        let mut b = buffer();
        assert_eq!(b.offer(At("e", 2), 1, 0), Offer::Held);
        assert_eq!(b.offer(At("e", 1), 1, 0), Offer::Ready);
        assert_eq!(drain(&mut b), vec![1, 2]);
    }

    #[test]
    fn a_stalled_gap_asks_for_resync_with_backoff_when_it_returns() {
        let mut b = buffer();
        b.offer(At("e", 1), 1, 0);
        b.offer(At("e", 3), 1, 100);
        assert_eq!(b.poll_timeout(), Some(1_100));
        assert_eq!(b.handle_timeout(1_099), None);
        assert!(matches!(b.handle_timeout(1_100), Some(ResyncReason::Stalled { after_seq: 1, .. })));
        assert_eq!(b.poll_timeout(), None);
        // The same gap again: the wait doubles, then doubles again, up to the cap.
        b.offer(At("e", 3), 1, 2_000);
        assert_eq!(b.poll_timeout(), Some(4_000));
        assert!(b.handle_timeout(4_000).is_some());
        b.offer(At("e", 3), 1, 5_000);
        assert_eq!(b.poll_timeout(), Some(9_000));
        assert!(b.handle_timeout(9_000).is_some());
        b.offer(At("e", 3), 1, 10_000);
        assert_eq!(b.poll_timeout(), Some(15_000));
        // Progress past the gap: a new gap waits the base time again.
        assert_eq!(b.offer(At("e", 2), 1, 10_500), Offer::Ready);
        b.offer(At("e", 5), 1, 11_000);
        assert_eq!(b.poll_timeout(), Some(12_000));
    }

    #[test]
    fn progress_with_frames_still_held_restarts_the_wait() {
        let mut b = buffer();
        b.offer(At("e", 2), 1, 0);
        b.offer(At("e", 4), 1, 0);
        assert_eq!(b.offer(At("e", 1), 1, 700), Offer::Ready);
        assert_eq!(b.poll_timeout(), Some(1_700));
    }

    #[test]
    fn reset_keeps_held_frames_after_the_watermark() {
        let mut b = buffer();
        b.offer(At("e", 3), 1, 0);
        b.offer(At("e", 6), 1, 0);
        b.offer(At("e", 7), 1, 0);
        b.reset(Some("e".into()), 5, 0);
        assert_eq!(drain(&mut b), vec![6, 7]);
        assert_eq!(b.cursor().seq, 7);
        assert_eq!(b.held_frames(), 0);
        b.offer(At("e", 9), 1, 0);
        b.reset(Some("other".into()), 2, 0);
        assert_eq!(b.held_frames(), 0);
    }
}
