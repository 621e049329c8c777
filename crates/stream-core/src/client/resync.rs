//! Why a client engine cannot go on without a new subscription: the reorder
//! buffer and the session engine both say so, in these terms.

use crate::state_hash::StateHash;

/// Why the engine cannot go on without a new subscription.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ResyncReason {
    /// Too many frames (or bytes) arrived ahead of a gap.
    Overflow {
        /// Frames that would have been held.
        held_frames: usize,
        /// Bytes that would have been held.
        held_bytes: usize,
    },
    /// Frames of another history arrived.
    EpochChanged {
        /// The engine's epoch.
        from: Option<String>,
        /// The frame's.
        to: String,
    },
    /// A gap did not fill in time.
    Stalled {
        /// The last seq applied.
        after_seq: u64,
        /// Frames held behind the gap.
        held_frames: usize,
        /// How long they waited.
        waited_ms: u64,
    },
    /// The server's state hash differs from the engine's.
    Diverged {
        /// The server's.
        expected: StateHash,
        /// The engine's.
        actual: StateHash,
    },
    /// The server ended the subscription (`unsubscribed`), e.g. `slow_consumer`.
    Unsubscribed {
        /// The server's reason.
        reason: String,
    },
}

impl ResyncReason {
    /// Whether the engine's state is no longer a base to resume from, so only a
    /// snapshot helps.
    pub fn needs_snapshot(&self) -> bool {
        matches!(self, Self::EpochChanged { .. } | Self::Diverged { .. })
    }
}
