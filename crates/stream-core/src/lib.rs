//! `stream-core`: the sans-IO engine for streaming agent chat sessions,
//! shared by the server (natively) and the browser (on wasm32).
//!
//! It does no I/O and reads no clock: time comes in as `now_ms` arguments,
//! and where something must happen (resubscribe, take a snapshot) it returns
//! that as a value instead of doing it. Same frames in, same state and same
//! [`StateHash`] out, on both targets.
//!
//! | module | owns |
//! |---|---|
//! | [`agent`] | adapters from agents' native output to frames |
//! | [`frame`] | wire types of protocol §2–3 and the validating parser |
//! | [`message`] | the message model of §5 |
//! | [`reorder`] | the per-channel reorder buffer |
//! | [`resync`] | why a client must resubscribe |
//! | [`reducer`] | the session state and the apply function |
//! | [`optimistic`] | pending local sends and echo dedupe |
//! | [`running`] | the map of running sessions |
//! | [`state_hash`] | the canonical 64-bit state hash |
//! | [`changes`] | what changed since the last read, as a patch plan |
//! | [`threads`] | how messages nest under tool calls, kept from each patch |
//! | [`session`] | the client engine of one session, which ties them together |
//! | [`client`] | the sessions of one connection: one parse per socket message, routed |
//! | [`sequencer`] | the server's per-channel sequencer and run rules |
//! | [`replay`] | the server's replay ring, resume verdict and running index |

pub mod agent;
pub mod changes;
pub mod client;
pub mod frame;
#[cfg(feature = "arbitrary")]
pub mod fuzzing;
pub mod message;
pub mod optimistic;
pub mod reducer;
pub mod reorder;
pub mod replay;
pub mod resync;
pub mod running;
pub mod sequencer;
pub mod session;
pub mod state_hash;
pub mod threads;

pub use changes::Patch;
pub use client::{Client, ClientReport};
pub use frame::{
    ClientFrame, ControlFrame, FrameBody, FrameError, FrameErrorKind, SequencedFrame, ServerFrame, Snapshot,
};
pub use message::{Message, MessageStatus, Role};
pub use reducer::{RunEvent, SessionState};
pub use reorder::Cursor;
pub use running::RunningMap;
pub use session::{EngineConfig, IngestReport, ResyncReason, SessionEngine};
pub use state_hash::StateHash;
