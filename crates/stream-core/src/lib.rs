//! `stream-core`: the sans-IO engine for streaming agent chat sessions,
//! shared by the server (natively) and the browser (on wasm32).
//!
//! It does no I/O and reads no clock: time comes in as `now_ms` arguments,
//! and where something must happen (resubscribe, take a snapshot) it returns
//! that as a value instead of doing it. Same frames in, same state and same
//! [`StateHash`] out, on both targets.
//!
//! Shared by both ends:
//!
//! | module | owns |
//! |---|---|
//! | [`agent`] | adapters from agents' native output to frames |
//! | [`frame`] | wire types of protocol §2–3 and the validating parser |
//! | [`message`] | the message model of §5 |
//! | `reducer` | the session state and the apply function ([`SessionState`]) |
//! | `state_hash` | the canonical 64-bit state hash ([`StateHash`]) |
//! | `changes` | what changed since the last read, as a patch plan ([`Patch`]) |
//!
//! The two ends' own parts: [`client`] (the engines of a page's sessions,
//! their reorder buffers, optimistic sends and running map) and [`server`]
//! (the sequencer and the replay ring). Each keeps its modules private and
//! names what it offers in one `pub use` list.

pub mod agent;
mod changes;
pub mod client;
pub mod frame;
#[cfg(feature = "arbitrary")]
pub mod fuzzing;
pub mod message;
mod reducer;
pub mod server;
mod state_hash;

pub use changes::{ChangedIds, ListShape, Patch};
pub use client::{Client, ClientReport, Cursor, EngineConfig, IngestReport, ResyncReason, RunningMap, SessionEngine};
pub use frame::{
    ClientFrame, ControlFrame, FrameBody, FrameError, FrameErrorKind, SequencedFrame, ServerFrame, Snapshot,
};
pub use message::{Message, MessageStatus, Role};
pub use reducer::{RunEvent, SessionState, TOOL_CALL_UNANSWERED};
pub use state_hash::StateHash;
