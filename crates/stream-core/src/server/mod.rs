//! The server's part: the sequencer that numbers each channel's frames and
//! keeps its run rules, and the replay ring that answers resumes.
//!
//! | module | owns |
//! |---|---|
//! | `sequencer` | the per-channel sequencer and run rules ([`ChannelSequencer`]) |
//! | `replay` | the replay ring, the resume verdict and the running index ([`ReplayRing`], [`verdict`], [`RunningIndex`]) |
//! | `ui_message` | a run as the Vercel AI SDK's UI message stream ([`UiMessageStream`]) |

mod replay;
mod sequencer;
mod ui_message;

pub use replay::{DEFAULT_RETENTION_MS, ReplayRing, RingLimits, RunningIndex, Verdict, is_evictable, verdict};
pub use sequencer::{Appended, ChannelSequencer, Dropped};
pub use ui_message::{UiChunk, UiMessageStream};
