//! The reducer: the confirmed state of one session (its name, its run, its
//! message list) and the function that applies one sequenced frame to it.
//!
//! Server and client run this same code, so the same frames give the same
//! list and the same [`StateHash`]. Each frame costs O(1) amortised: messages
//! are found through an id→index map, text is appended in place, and the
//! list is never copied. Frames are applied in sequence order; ordering is the
//! reorder buffer's job.

use std::cell::OnceCell;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::changes::ChangedIds;
use crate::frame::{FrameBody, RunInfo, SequencedFrame, Snapshot};
use crate::message::{Message, MessageStatus, Outcome, Role, ToolCall, ToolCallState, ToolResult};
use crate::state_hash::StateHash;

/// Said of a tool call still open when its run ended.
pub const TOOL_CALL_UNANSWERED: &str = "the run ended before the tool returned a result";

/// A change in whether a session has a run going, for the running map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEvent {
    /// A run began.
    Started {
        /// The run.
        info: RunInfo,
        /// The seq of its `run_started` (or of the snapshot that reported it).
        seq: u64,
    },
    /// A run ended.
    Finished {
        /// The seq of its `run_finished`.
        seq: u64,
        /// The run.
        run_id: String,
        /// How it ended.
        status: Outcome,
        /// Whether an abort ended it.
        aborted: bool,
    },
    /// A snapshot showed the session with no run going.
    Idle {
        /// The snapshot's seq.
        seq: u64,
    },
    /// The session's history began again (a snapshot of a new epoch): seqs
    /// seen before belong to another history.
    NewEpoch,
}

/// The confirmed state of one session.
#[derive(Debug, Clone, Default)]
pub struct SessionState {
    name: Option<String>,
    run: Option<RunInfo>,
    messages: Vec<Message>,
    /// Position of each message in `messages`.
    index: FxHashMap<String, usize>,
    /// Removed ids: frames naming them are ignored, so they cannot come back.
    deleted: FxHashSet<String>,
    /// `client_message_id`s of confirmed messages, for optimistic dedupe.
    client_ids: FxHashSet<String>,
    /// Messages created streaming since the last `run_finished`; it closes those still open.
    opened: Vec<String>,
    /// Tool calls without a result: call id → id of the calling message.
    open_tool_calls: FxHashMap<String, String>,
    changed: ChangedIds,
    /// The session's cost and model, summed when first asked after a change
    /// of usage, so that reads between changes walk no list.
    figures: OnceCell<Figures>,
}

/// What a session's usage adds up to.
#[derive(Debug, Clone, Default)]
struct Figures {
    cost_usd: Option<f64>,
    model: Option<String>,
}

impl SessionState {
    /// An empty session.
    pub fn new() -> Self {
        Self::default()
    }

    /// The confirmed messages, in order.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The position of the message with this id.
    pub fn position_of(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The message with this id.
    pub fn message(&self, id: &str) -> Option<&Message> {
        self.index.get(id).map(|&i| &self.messages[i])
    }

    /// The session's name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The run going, if any.
    pub fn run(&self) -> Option<&RunInfo> {
        self.run.as_ref()
    }

    /// Whether a confirmed message carries this `client_message_id`.
    pub fn has_client_message(&self, client_message_id: &str) -> bool {
        self.client_ids.contains(client_message_id)
    }

    /// Whether the id was deleted.
    pub fn is_deleted(&self, id: &str) -> bool {
        self.deleted.contains(id)
    }

    /// The hash of the confirmed messages.
    pub fn state_hash(&self) -> StateHash {
        StateHash::of(&self.messages)
    }

    /// The ids changed since the last drain.
    pub fn changed_mut(&mut self) -> &mut ChangedIds {
        &mut self.changed
    }

    /// The state as a snapshot at `(epoch, seq)`.
    pub fn snapshot(&self, channel: &str, epoch: Option<&str>, seq: u64) -> Snapshot {
        let mut deleted_message_ids: Vec<String> = self.deleted.iter().cloned().collect();
        deleted_message_ids.sort_unstable();
        Snapshot {
            channel: channel.to_owned(),
            epoch: epoch.map(str::to_owned),
            seq,
            name: self.name.clone(),
            messages: self.messages.clone(),
            run: self.run.clone(),
            state_hash: self.state_hash(),
            deleted_message_ids,
            cost_usd: self.cost_usd(),
        }
    }

    /// The session's cost: the sum of its messages' `cost_usd`, if any has one.
    pub fn cost_usd(&self) -> Option<f64> {
        self.figures().cost_usd
    }

    /// The model of the latest message that names one.
    pub fn model(&self) -> Option<&str> {
        self.figures().model.as_deref()
    }

    fn figures(&self) -> &Figures {
        self.figures.get_or_init(|| Figures {
            cost_usd: self
                .messages
                .iter()
                .filter_map(|message| message.usage.cost_usd)
                .reduce(|total, cost| total + cost),
            model: self.messages.iter().rev().find_map(|message| message.usage.model.clone()),
        })
    }

    /// Replaces the whole state with a snapshot's.
    pub fn load_snapshot(&mut self, snapshot: Snapshot) {
        let Snapshot { name, messages, run, deleted_message_ids, .. } = snapshot;
        let mut changed = std::mem::take(&mut self.changed);
        changed.mark_everything();
        *self = Self { name, run, deleted: deleted_message_ids.into_iter().collect(), changed, ..Self::default() };
        for message in messages {
            let position = self.messages.len();
            self.index.insert(message.id.clone(), position);
            if let Some(client_id) = &message.client_message_id {
                self.client_ids.insert(client_id.clone());
            }
            if message.status == MessageStatus::Streaming {
                self.opened.push(message.id.clone());
            }
            let open = |call: &&ToolCall| matches!(call.state, ToolCallState::Running | ToolCallState::Preparing);
            for call in message.tool_calls.iter().filter(open) {
                self.open_tool_calls.insert(call.id.clone(), message.id.clone());
            }
            self.messages.push(message);
        }
    }

    /// Applies one frame, in sequence order. Returns the run event it carries.
    pub fn apply(&mut self, frame: SequencedFrame) -> Option<RunEvent> {
        match frame.body {
            FrameBody::RunStarted(started) => {
                let info =
                    RunInfo { run_id: started.run_id, provider: started.provider, started_at: started.started_at };
                self.run = Some(info.clone());
                return Some(RunEvent::Started { info, seq: frame.seq });
            }
            FrameBody::MessageStarted(started) => {
                let i = self.slot(&started.message_id, started.role)?;
                let message = &mut self.messages[i];
                message.role = started.role;
                message.created_at = Some(started.created_at);
                if let Some(content) = started.content {
                    // Text that streamed before the start frame stays after it.
                    message.content.insert_str(0, &content);
                }
                if let Some(client_id) = started.client_message_id {
                    self.client_ids.insert(client_id.clone());
                    message.client_message_id = Some(client_id);
                }
                if started.parent_tool_call_id.is_some() {
                    message.parent_tool_call_id = started.parent_tool_call_id;
                }
            }
            FrameBody::Delta(delta) => {
                if let Some((i, created)) = self.place(&delta.message_id, Role::Assistant) {
                    let content = &mut self.messages[i].content;
                    let from = content.len();
                    content.push_str(&delta.content);
                    // Only its text grew: a binding extends the message's text.
                    if created {
                        self.changed.mark(&delta.message_id);
                    } else {
                        self.changed.mark_appended(&delta.message_id, from);
                    }
                }
            }
            FrameBody::ToolCall(frame) => {
                if let Some(i) = self.slot(&frame.message_id, Role::Assistant) {
                    let spec = frame.tool_call;
                    let state = if spec.preparing { ToolCallState::Preparing } else { ToolCallState::Running };
                    let calls = &mut self.messages[i].tool_calls;
                    match calls.iter_mut().find(|call| call.id == spec.id) {
                        // The whole call after its preparing one: same place, full input.
                        Some(call) if call.state == ToolCallState::Preparing => {
                            call.name = spec.name;
                            call.input = spec.input;
                            call.state = state;
                            call.started_at = spec.started_at.or(call.started_at);
                        }
                        Some(_) => {}
                        None => {
                            self.open_tool_calls.insert(spec.id.clone(), frame.message_id);
                            calls.push(ToolCall {
                                id: spec.id,
                                name: spec.name,
                                input: spec.input,
                                state,
                                error: None,
                                started_at: spec.started_at,
                            });
                        }
                    }
                }
            }
            FrameBody::ToolResult(result) => {
                let i = self.slot(&result.message_id, Role::Tool)?;
                let state = if result.error.is_some() { ToolCallState::Failed } else { ToolCallState::Succeeded };
                self.close_tool_call(&result.tool_call_id, state, result.error.clone());
                let message = &mut self.messages[i];
                if message.status == MessageStatus::Streaming {
                    // The result is the whole of a tool message.
                    message.status = MessageStatus::Complete;
                }
                message.tool_result = Some(ToolResult {
                    tool_call_id: result.tool_call_id,
                    output: result.output,
                    truncated: result.truncated,
                    error: result.error,
                });
            }
            FrameBody::Status(status) => {
                if let Some(i) = self.slot(&status.message_id, Role::Assistant) {
                    self.messages[i].usage.merge(*status.usage);
                    self.figures.take();
                }
            }
            FrameBody::MessageComplete(complete) => {
                if let Some(i) = self.slot(&complete.message_id, Role::Assistant) {
                    let message = &mut self.messages[i];
                    message.status = complete.status.into();
                    message.finished_at = Some(complete.finished_at);
                    message.usage.merge(*complete.usage);
                    self.figures.take();
                }
            }
            FrameBody::Error(error) => {
                // An error for no message becomes a system message of its own,
                // named by its place in the sequence so every reducer agrees.
                let (id, role) = match error.message_id {
                    Some(id) => (id, Role::Assistant),
                    None => (format!("error-{}", frame.seq), Role::System),
                };
                if let Some(i) = self.slot(&id, role) {
                    let message = &mut self.messages[i];
                    if role == Role::System {
                        message.content.clone_from(&error.error);
                    }
                    if !message.status.is_final() {
                        message.status = MessageStatus::Failed;
                    }
                    message.error = Some(error.error);
                }
            }
            FrameBody::MessagesDeleted(deleted) => self.delete(deleted.message_ids),
            FrameBody::Renamed(renamed) => {
                if self.name.as_deref() != Some(renamed.name.as_str()) {
                    self.changed.mark_renamed();
                    self.name = Some(renamed.name);
                }
            }
            FrameBody::RunFinished(finished) => {
                self.close_run(finished.status, finished.aborted);
                return Some(RunEvent::Finished {
                    seq: frame.seq,
                    run_id: finished.run_id,
                    status: finished.status,
                    aborted: finished.aborted,
                });
            }
            FrameBody::Unknown(_) => {}
        }
        None
    }

    /// Finds the message, creating it (with `role`) when a frame names it
    /// before its `message_started`: nothing is dropped. Marks it changed.
    /// `None` when the id was deleted.
    fn slot(&mut self, id: &str, role: Role) -> Option<usize> {
        let (i, _) = self.place(id, role)?;
        self.changed.mark(id);
        Some(i)
    }

    /// Like `slot`, without marking; also says whether the message is new.
    fn place(&mut self, id: &str, role: Role) -> Option<(usize, bool)> {
        if let Some(&i) = self.index.get(id) {
            return Some((i, false));
        }
        if self.deleted.contains(id) {
            return None;
        }
        let status = match role {
            Role::User | Role::System => MessageStatus::Complete,
            Role::Assistant | Role::Tool | Role::Reasoning => {
                self.opened.push(id.to_owned());
                MessageStatus::Streaming
            }
        };
        let i = self.messages.len();
        self.messages.push(Message::new(id, role, status));
        self.index.insert(id.to_owned(), i);
        Some((i, true))
    }

    fn close_tool_call(&mut self, call_id: &str, state: ToolCallState, error: Option<String>) {
        if let Some(message_id) = self.open_tool_calls.remove(call_id) {
            self.set_call_state(&message_id, call_id, state, error);
        }
    }

    fn set_call_state(&mut self, message_id: &str, call_id: &str, state: ToolCallState, error: Option<String>) {
        let Some(&i) = self.index.get(message_id) else { return };
        if let Some(call) = self.messages[i].tool_calls.iter_mut().find(|call| call.id == call_id) {
            call.state = state;
            call.error = error;
            self.changed.mark(message_id);
        }
    }

    /// Ends the run: every message still streaming takes the run's outcome and
    /// every tool call left open gets a synthetic end, so nothing spins forever.
    fn close_run(&mut self, status: Outcome, aborted: bool) {
        self.run = None;
        let outcome = if aborted { Outcome::Cancelled } else { status };
        for id in std::mem::take(&mut self.opened) {
            if let Some(&i) = self.index.get(&id) {
                let message = &mut self.messages[i];
                if message.status == MessageStatus::Streaming {
                    message.status = outcome.into();
                    self.changed.mark(&id);
                }
            }
        }
        let call_state = match outcome {
            Outcome::Cancelled => ToolCallState::Cancelled,
            Outcome::Complete | Outcome::Failed => ToolCallState::Failed,
        };
        for (call_id, message_id) in std::mem::take(&mut self.open_tool_calls) {
            self.set_call_state(&message_id, &call_id, call_state, Some(TOOL_CALL_UNANSWERED.to_owned()));
        }
    }

    fn delete(&mut self, ids: Vec<String>) {
        let mut removed_any = false;
        for id in ids {
            // Only a removal changes the list; an id never seen, or gone
            // already, is just kept from coming back.
            if self.index.contains_key(&id) {
                removed_any = true;
                self.changed.mark(&id);
            }
            self.deleted.insert(id);
        }
        if !removed_any {
            return;
        }
        self.figures.take();
        // Deletes are rare and user-driven, so one O(n) pass rebuilds the map.
        let deleted = &self.deleted;
        self.messages.retain(|message| !deleted.contains(&message.id));
        self.index.clear();
        self.client_ids.clear();
        for (i, message) in self.messages.iter().enumerate() {
            self.index.insert(message.id.clone(), i);
            if let Some(client_id) = &message.client_message_id {
                self.client_ids.insert(client_id.clone());
            }
        }
        self.open_tool_calls.retain(|_, message_id| !deleted.contains(message_id));
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::changes::ListShape;
    use crate::frame::*;
    use crate::message::Usage;

    fn apply_all(state: &mut SessionState, bodies: Vec<FrameBody>) {
        for (i, body) in bodies.into_iter().enumerate() {
            state.apply(SequencedFrame { channel: "s".into(), epoch: "e".into(), seq: i as u64 + 1, body });
        }
    }

    fn delta(id: &str, text: &str) -> FrameBody {
        FrameBody::Delta(Delta { message_id: id.into(), content: text.into() })
    }

    fn tool_call(message: &str, call: &str) -> FrameBody {
        FrameBody::ToolCall(ToolCallFrame {
            message_id: message.into(),
            tool_call: ToolCallSpec {
                id: call.into(),
                name: "grep".into(),
                input: serde_json::json!({"q": "x"}),
                started_at: None,
                preparing: false,
            },
        })
    }

    fn run_finished(status: Outcome, aborted: bool) -> FrameBody {
        FrameBody::RunFinished(RunFinished { run_id: "r".into(), status, aborted, exit_code: None, state_hash: None })
    }

    #[test]
    fn a_preparing_call_is_completed_in_place_by_its_whole_call_and_fails_if_the_run_ends_first() {
        let mut state = SessionState::new();
        let preparing = |id: &str| {
            FrameBody::ToolCall(ToolCallFrame {
                message_id: "a".into(),
                tool_call: ToolCallSpec {
                    id: id.into(),
                    name: "Bash".into(),
                    input: serde_json::Value::Null,
                    started_at: None,
                    preparing: true,
                },
            })
        };
        apply_all(&mut state, vec![preparing("t1"), preparing("t2")]);
        let calls = &state.message("a").unwrap().tool_calls;
        assert_eq!(calls.iter().map(|call| call.state).collect::<Vec<_>>(), [ToolCallState::Preparing; 2]);
        apply_all(&mut state, vec![tool_call("a", "t1"), tool_call("a", "t1")]);
        let calls = &state.message("a").unwrap().tool_calls;
        assert_eq!(calls.len(), 2, "completed in place, a repeat ignored");
        assert_eq!((calls[0].state, &calls[0].input), (ToolCallState::Running, &serde_json::json!({"q": "x"})));
        apply_all(&mut state, vec![run_finished(Outcome::Complete, false)]);
        assert_eq!(state.message("a").unwrap().tool_calls[1].state, ToolCallState::Failed);
    }

    #[test]
    fn frames_before_message_started_create_the_message() {
        let mut state = SessionState::new();
        apply_all(
            &mut state,
            vec![
                delta("a", "lo"),
                FrameBody::MessageStarted(MessageStarted {
                    message_id: "a".into(),
                    role: Role::Assistant,
                    created_at: 5,
                    client_message_id: None,
                    content: Some("hel".into()),
                    parent_tool_call_id: None,
                }),
                FrameBody::Status(StatusFrame {
                    message_id: "b".into(),
                    usage: Box::new(Usage { tokens_used: Some(3), ..Usage::default() }),
                }),
            ],
        );
        let a = state.message("a").unwrap();
        assert_eq!((a.content.as_str(), a.created_at, a.status), ("hello", Some(5), MessageStatus::Streaming));
        assert_eq!(state.message("b").unwrap().usage.tokens_used, Some(3));
    }

    #[test]
    fn the_cost_and_model_follow_usage_and_deletes() {
        let status = |id: &str, cost: f64, model: &str| {
            FrameBody::Status(StatusFrame {
                message_id: id.into(),
                usage: Box::new(Usage { cost_usd: Some(cost), model: Some(model.into()), ..Usage::default() }),
            })
        };
        let mut state = SessionState::new();
        assert_eq!((state.cost_usd(), state.model()), (None, None));
        apply_all(&mut state, vec![status("a", 0.25, "m1"), status("b", 0.5, "m2")]);
        assert_eq!((state.cost_usd(), state.model()), (Some(0.75), Some("m2")));
        apply_all(&mut state, vec![status("a", 1.0, "m1")]);
        assert_eq!((state.cost_usd(), state.model()), (Some(1.5), Some("m2")));
        apply_all(&mut state, vec![FrameBody::MessagesDeleted(MessagesDeleted { message_ids: vec!["b".into()] })]);
        assert_eq!((state.cost_usd(), state.model()), (Some(1.0), Some("m1")));
    }

    #[test]
    fn tool_calls_move_through_explicit_states() {
        let mut state = SessionState::new();
        apply_all(
            &mut state,
            vec![
                tool_call("a", "t1"),
                tool_call("a", "t2"),
                FrameBody::ToolResult(ToolResultFrame {
                    message_id: "tool1".into(),
                    tool_call_id: "t1".into(),
                    output: serde_json::json!("ok"),
                    truncated: false,
                    error: None,
                }),
                FrameBody::ToolResult(ToolResultFrame {
                    message_id: "tool2".into(),
                    tool_call_id: "t2".into(),
                    output: serde_json::Value::Null,
                    truncated: false,
                    error: Some("boom".into()),
                }),
            ],
        );
        let states: Vec<_> = state.message("a").unwrap().tool_calls.iter().map(|call| call.state).collect();
        assert_eq!(states, vec![ToolCallState::Succeeded, ToolCallState::Failed]);
        let tool1 = state.message("tool1").unwrap();
        assert_eq!((tool1.role, tool1.status), (Role::Tool, MessageStatus::Complete));
    }

    #[test]
    fn run_finished_closes_streaming_messages_and_open_tool_calls() {
        for (status, aborted, message_status, call_state) in [
            (Outcome::Complete, false, MessageStatus::Complete, ToolCallState::Failed),
            (Outcome::Failed, false, MessageStatus::Failed, ToolCallState::Failed),
            (Outcome::Complete, true, MessageStatus::Cancelled, ToolCallState::Cancelled),
        ] {
            let mut state = SessionState::new();
            apply_all(&mut state, vec![delta("a", "x"), tool_call("a", "t1"), run_finished(status, aborted)]);
            let a = state.message("a").unwrap();
            assert_eq!(a.status, message_status);
            assert_eq!(a.tool_calls[0].state, call_state);
            assert_eq!(a.tool_calls[0].error.as_deref(), Some(TOOL_CALL_UNANSWERED));
            assert!(state.run().is_none());
        }
    }

    #[test]
    fn run_finished_leaves_finished_messages_alone() {
        let mut state = SessionState::new();
        apply_all(
            &mut state,
            vec![
                delta("a", "x"),
                FrameBody::MessageComplete(MessageComplete {
                    message_id: "a".into(),
                    status: Outcome::Complete,
                    finished_at: 9,
                    usage: Box::default(),
                }),
                run_finished(Outcome::Failed, false),
            ],
        );
        assert_eq!(state.message("a").unwrap().status, MessageStatus::Complete);
    }

    #[test]
    fn deleted_messages_cannot_come_back() {
        let mut state = SessionState::new();
        apply_all(
            &mut state,
            vec![
                delta("a", "x"),
                delta("b", "y"),
                FrameBody::MessagesDeleted(MessagesDeleted { message_ids: vec!["a".into()] }),
                delta("a", "late"),
                delta("b", "z"),
            ],
        );
        let ids: Vec<_> = state.messages().iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, vec!["b"]);
        assert_eq!(state.message("b").unwrap().content, "yz");
        assert!(state.is_deleted("a"));
    }

    #[test]
    fn an_error_without_a_message_becomes_a_system_message() {
        let mut state = SessionState::new();
        apply_all(
            &mut state,
            vec![
                delta("a", "x"),
                FrameBody::Error(ErrorFrame { message_id: None, error: "quota".into(), reason: None }),
                FrameBody::Error(ErrorFrame { message_id: Some("a".into()), error: "cut".into(), reason: None }),
            ],
        );
        let system = state.message("error-2").unwrap();
        assert_eq!((system.role, system.content.as_str()), (Role::System, "quota"));
        let a = state.message("a").unwrap();
        assert_eq!((a.status, a.error.as_deref()), (MessageStatus::Failed, Some("cut")));
    }

    #[test]
    fn a_snapshot_round_trip_rebuilds_derived_state() {
        let mut state = SessionState::new();
        apply_all(&mut state, vec![delta("a", "x"), tool_call("a", "t1")]);
        let snapshot = state.snapshot("s", Some("e"), 2);
        let json = serde_json::to_string(&snapshot).unwrap();
        let mut loaded = SessionState::new();
        loaded.load_snapshot(serde_json::from_str(&json).unwrap());
        assert_eq!(loaded.state_hash(), state.state_hash());
        // The loaded state still knows what is open.
        apply_all(&mut loaded, vec![run_finished(Outcome::Complete, true)]);
        let a = loaded.message("a").unwrap();
        assert_eq!((a.status, a.tool_calls[0].state), (MessageStatus::Cancelled, ToolCallState::Cancelled));
    }

    #[test]
    fn changes_name_each_touched_message_once() {
        let mut state = SessionState::new();
        apply_all(&mut state, vec![delta("a", "x"), delta("a", "y"), delta("b", "z")]);
        let shape = ListShape { confirmed: 0, len: 0 };
        let now = ListShape { confirmed: 2, len: 2 };
        let patch = std::mem::take(state.changed_mut()).plan(shape, now, |id| state.position_of(id), |_| false);
        assert_eq!((patch.rebuild_from, patch.updated), (0, vec![]));
        // Touched again in place, each is named once.
        apply_all(&mut state, vec![delta("b", "x"), delta("a", "y"), delta("b", "z")]);
        let mut patch = std::mem::take(state.changed_mut()).plan(now, now, |id| state.position_of(id), |_| false);
        patch.appended.sort_unstable();
        // Only their text grew: each from where its text ended.
        assert_eq!((patch.rebuild_from, patch.updated, patch.appended), (2, vec![], vec![(0, 2), (1, 1)]));
        assert!(state.changed_mut().is_empty());
    }

    #[test]
    fn a_rename_is_a_change_and_the_same_name_again_is_not() {
        let mut state = SessionState::new();
        let rename = |name: &str| FrameBody::Renamed(Renamed { name: name.into() });
        apply_all(&mut state, vec![rename("Plans")]);
        let shape = ListShape::default();
        let patch = std::mem::take(state.changed_mut()).plan(shape, shape, |_| None, |_| false);
        assert!(patch.renamed && !patch.ids_changed && patch.updated.is_empty());
        assert_eq!(state.name(), Some("Plans"));
        apply_all(&mut state, vec![rename("Plans")]);
        assert!(state.changed_mut().is_empty());
    }
}
