//! The server side of a channel, sans-IO: the sequencer that gives every frame
//! its place (`seq` +1, no gaps, one epoch), materialises the session with the
//! same reducer the client runs, and enforces the run rules: at most one
//! running run per session, exactly one `run_finished` per run.

use std::sync::Arc;

use crate::frame::{FrameBody, RunInfo, SequencedFrame, Snapshot};
use crate::reducer::SessionState;

/// Why the sequencer refused a frame. Nothing was sequenced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    /// A `run_started` while another run is running.
    #[error("run `{running}` is still running; a session runs one run at a time")]
    RunInProgress {
        /// The running run.
        running: String,
    },
    /// A second terminal event, such as a provider's own exit after an abort.
    #[error("run `{run_id}` is not running; its run_finished was already sequenced or it never started")]
    NotRunning {
        /// The run the frame named.
        run_id: String,
    },
    /// A body of a type this version cannot encode.
    #[error("frames of unknown type `{frame_type}` are never sequenced")]
    UnknownType {
        /// The type.
        frame_type: String,
    },
    /// A frame about a message that was deleted.
    #[error("message `{message_id}` was deleted")]
    DeletedMessage {
        /// The message.
        message_id: String,
    },
}

impl Dropped {
    /// A stable label, for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::RunInProgress { .. } => "run_in_progress",
            Self::NotRunning { .. } => "second_terminal",
            Self::DeletedMessage { .. } => "deleted_message",
            Self::UnknownType { .. } => "unknown_type",
        }
    }
}

/// A sequenced frame, encoded once for the log and every subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Its seq.
    pub seq: u64,
    /// Its JSON text.
    pub text: String,
}

fn encode(frame: &SequencedFrame) -> String {
    serde_json::to_string(frame).expect("known frame bodies always encode")
}

/// The sequencer of one channel.
#[derive(Debug, Clone)]
pub struct ChannelSequencer {
    channel: Arc<str>,
    epoch: Arc<str>,
    head: u64,
    state: SessionState,
}

impl ChannelSequencer {
    /// A new, empty channel in history `epoch`.
    pub fn new(channel: impl Into<Arc<str>>, epoch: impl Into<Arc<str>>) -> Self {
        Self { channel: channel.into(), epoch: epoch.into(), head: 0, state: SessionState::new() }
    }

    /// Rebuilds a channel from its durable log: the frames `1..=head`, in order.
    pub fn restore(
        channel: impl Into<Arc<str>>,
        epoch: impl Into<Arc<str>>,
        frames: impl IntoIterator<Item = SequencedFrame>,
    ) -> Self {
        Self::restore_from(channel, epoch, None, frames)
    }

    /// Rebuilds a compacted channel: its base snapshot (the state at the
    /// base's seq), then the frames after it, in order.
    pub fn restore_from(
        channel: impl Into<Arc<str>>,
        epoch: impl Into<Arc<str>>,
        base: Option<Snapshot>,
        frames: impl IntoIterator<Item = SequencedFrame>,
    ) -> Self {
        let mut sequencer = Self::new(channel, epoch);
        if let Some(base) = base {
            sequencer.head = base.seq;
            sequencer.state.load_snapshot(base);
        }
        for frame in frames {
            sequencer.head = frame.seq;
            sequencer.state.apply(frame);
        }
        sequencer.state.changed_mut().mark_everything();
        sequencer
    }

    /// Applies frames that another writer of the same log committed after
    /// `head`, in seq order (frames at or before `head` are skipped), so the
    /// sequencer goes on from the log's head. Returns `false`, having applied
    /// those before it, at the first frame that does not follow on: the
    /// caller must restore from the log instead.
    pub fn catch_up(&mut self, frames: impl IntoIterator<Item = SequencedFrame>) -> bool {
        for frame in frames {
            if frame.seq <= self.head {
                continue;
            }
            if frame.seq != self.head + 1 {
                return false;
            }
            self.head = frame.seq;
            self.state.apply(frame);
        }
        true
    }

    /// The channel.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The history.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The last seq given.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// The materialised state at `head`.
    pub fn state(&self) -> &SessionState {
        &self.state
    }

    /// The running run.
    pub fn running(&self) -> Option<&RunInfo> {
        self.state.run()
    }

    /// The state as a snapshot at `head`.
    pub fn snapshot(&self) -> Snapshot {
        self.state.snapshot(&self.channel, Some(&self.epoch), self.head)
    }

    /// Gives the frame its seq, applies it, and returns it with its JSON text,
    /// or refuses it. A `run_finished` carries the state hash after it.
    pub fn append(&mut self, body: FrameBody) -> Result<Appended, Dropped> {
        self.check(&body)?;
        self.head += 1;
        let mut frame =
            SequencedFrame { channel: Arc::clone(&self.channel), epoch: Arc::clone(&self.epoch), seq: self.head, body };
        let text = if let FrameBody::RunFinished(_) = frame.body {
            self.state.apply(frame.clone());
            if let FrameBody::RunFinished(finished) = &mut frame.body {
                finished.state_hash = Some(self.state.state_hash());
            }
            encode(&frame)
        } else {
            // Encoded first so the frame can move into the reducer uncloned.
            let text = encode(&frame);
            self.state.apply(frame);
            text
        };
        Ok(Appended { seq: self.head, text })
    }

    fn check(&self, body: &FrameBody) -> Result<(), Dropped> {
        let message_id = match body {
            FrameBody::RunStarted(_) => {
                return match self.running() {
                    Some(running) => Err(Dropped::RunInProgress { running: running.run_id.clone() }),
                    None => Ok(()),
                };
            }
            FrameBody::RunFinished(finished) => {
                return match self.running() {
                    Some(running) if running.run_id == finished.run_id => Ok(()),
                    _ => Err(Dropped::NotRunning { run_id: finished.run_id.clone() }),
                };
            }
            FrameBody::MessageStarted(frame) => Some(&frame.message_id),
            FrameBody::Delta(frame) => Some(&frame.message_id),
            FrameBody::ToolCall(frame) => Some(&frame.message_id),
            FrameBody::ToolResult(frame) => Some(&frame.message_id),
            FrameBody::Status(frame) => Some(&frame.message_id),
            FrameBody::MessageComplete(frame) => Some(&frame.message_id),
            FrameBody::Error(frame) => frame.message_id.as_ref(),
            FrameBody::Unknown(frame_type) => return Err(Dropped::UnknownType { frame_type: frame_type.clone() }),
            FrameBody::MessagesDeleted(_) | FrameBody::Renamed(_) => None,
        };
        // Clients that start from a snapshot learn deleted ids from it, but
        // dropping such frames here keeps every log free of them.
        match message_id {
            Some(id) if self.state.is_deleted(id) => Err(Dropped::DeletedMessage { message_id: id.clone() }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::client::session::SessionEngine;
    use crate::frame::*;
    use crate::message::Outcome;

    fn run_started(run: &str) -> FrameBody {
        FrameBody::RunStarted(RunStarted { run_id: run.into(), provider: "demo".into(), started_at: 1 })
    }

    fn run_finished(run: &str, aborted: bool) -> FrameBody {
        FrameBody::RunFinished(RunFinished {
            run_id: run.into(),
            status: if aborted { Outcome::Cancelled } else { Outcome::Complete },
            aborted,
            exit_code: None,
            state_hash: None,
        })
    }

    fn delta(id: &str, text: &str) -> FrameBody {
        FrameBody::Delta(Delta { message_id: id.into(), content: text.into() })
    }

    #[test]
    fn seqs_are_contiguous_and_a_client_reaches_the_same_hash() {
        let mut sequencer = ChannelSequencer::new("s", "e1");
        let mut client = SessionEngine::new("s");
        for body in [run_started("r1"), delta("a", "hi"), delta("a", " there"), run_finished("r1", false)] {
            let appended = sequencer.append(body).unwrap();
            assert_eq!(appended.seq, sequencer.head());
            let report = client.ingest(&appended.text, 0);
            assert_eq!((report.applied, report.need_resync), (1, None), "{}", appended.text);
        }
        assert_eq!(sequencer.head(), 4);
        assert_eq!(client.state_hash(), sequencer.state().state_hash());
    }

    #[test]
    fn one_run_at_a_time_and_exactly_one_finish_per_run() {
        let mut sequencer = ChannelSequencer::new("s", "e1");
        sequencer.append(run_started("r1")).unwrap();
        assert_eq!(sequencer.append(run_started("r2")), Err(Dropped::RunInProgress { running: "r1".into() }));
        sequencer.append(run_finished("r1", true)).unwrap();
        // The provider's own exit after the abort: dropped.
        assert_eq!(sequencer.append(run_finished("r1", false)), Err(Dropped::NotRunning { run_id: "r1".into() }));
        assert_eq!(sequencer.head(), 2);
        assert!(sequencer.append(run_started("r2")).is_ok());
    }

    #[test]
    fn frames_about_deleted_messages_are_dropped() {
        let mut sequencer = ChannelSequencer::new("s", "e1");
        sequencer.append(delta("a", "x")).unwrap();
        sequencer.append(FrameBody::MessagesDeleted(MessagesDeleted { message_ids: vec!["a".into()] })).unwrap();
        assert_eq!(sequencer.append(delta("a", "late")), Err(Dropped::DeletedMessage { message_id: "a".into() }));
        assert!(sequencer.state().messages().is_empty());
    }

    #[test]
    fn restore_from_the_log_rebuilds_the_same_state() {
        let mut sequencer = ChannelSequencer::new("s", "e1");
        let mut log = Vec::new();
        for body in [run_started("r1"), delta("a", "x"), delta("b", "y")] {
            log.push(sequencer.append(body).unwrap().text);
        }
        let frames = log.iter().map(|text| {
            let parsed = parse_server_message(text, None, DEFAULT_MAX_MESSAGE_BYTES);
            match parsed.frames.into_iter().next().unwrap().frame {
                ServerFrame::Sequenced(frame) => frame,
                other => panic!("{other:?}"),
            }
        });
        let restored = ChannelSequencer::restore("s", "e1", frames);
        assert_eq!(restored.head(), 3);
        assert_eq!(restored.state().state_hash(), sequencer.state().state_hash());
        assert_eq!(restored.running().map(|run| run.run_id.as_str()), Some("r1"));
        assert_eq!(restored.snapshot(), sequencer.snapshot());
    }

    #[test]
    fn a_second_writer_catches_up_on_the_first_ones_frames_and_goes_on_from_its_head() {
        let parse = |text: &str| match parse_server_message(text, None, DEFAULT_MAX_MESSAGE_BYTES)
            .frames
            .into_iter()
            .next()
            .unwrap()
            .frame
        {
            ServerFrame::Sequenced(frame) => frame,
            other => panic!("{other:?}"),
        };
        let mut first = ChannelSequencer::new("s", "e1");
        let mut second = first.clone();
        let log: Vec<String> = [run_started("r1"), delta("a", "x"), delta("a", "y")]
            .into_iter()
            .map(|body| first.append(body).unwrap().text)
            .collect();
        // Frames it already has are skipped; the rest apply in order.
        assert!(second.catch_up(log[..1].iter().map(|text| parse(text))));
        assert!(second.catch_up(log.iter().map(|text| parse(text))));
        assert_eq!((second.head(), second.state().state_hash()), (3, first.state().state_hash()));
        // It sees the run the first one started, so it refuses a second.
        assert_eq!(second.append(run_started("r2")), Err(Dropped::RunInProgress { running: "r1".into() }));
        assert_eq!(second.append(delta("a", "z")).unwrap().seq, 4);
        // A gap is refused: only a restore from the log can fill it.
        let mut behind = ChannelSequencer::new("s", "e1");
        assert!(!behind.catch_up(log[1..].iter().map(|text| parse(text))));
        assert_eq!(behind.head(), 0);
    }

    #[test]
    fn a_compacted_channel_restores_from_its_base_and_the_frames_after_it() {
        let mut sequencer = ChannelSequencer::new("s", "e1");
        for body in [run_started("r1"), delta("a", "x")] {
            sequencer.append(body).unwrap();
        }
        let base = sequencer.snapshot();
        let later = sequencer.append(delta("a", "y")).unwrap();
        let after = match parse_server_message(&later.text, None, DEFAULT_MAX_MESSAGE_BYTES).frames.remove(0).frame {
            ServerFrame::Sequenced(frame) => frame,
            other => panic!("{other:?}"),
        };
        let restored = ChannelSequencer::restore_from("s", "e1", Some(base), [after]);
        assert_eq!(restored.head(), 3);
        assert_eq!(restored.snapshot(), sequencer.snapshot());
    }
}
