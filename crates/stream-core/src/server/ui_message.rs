//! One run's frames as the Vercel AI SDK's UI message stream (what its
//! `useChat` reads): the run is one assistant `UIMessage`, whose parts are
//! the run's reasoning, text and tool calls, in the order they happened.
//!
//! - `run_started` → `start` (`messageId` is the run id) and `start-step`;
//! - an assistant message → `text-start`, its deltas `text-delta`, its end
//!   `text-end`; a reasoning message likewise with `reasoning-*`;
//! - a tool call → `tool-input-start` and `tool-input-available`, with
//!   `dynamic` and `providerExecuted` (the server ran the tool, the browser
//!   must not); its result → `tool-output-available` or `tool-output-error`;
//! - an assistant message after a tool result opens a new step
//!   (`finish-step`, `start-step`);
//! - usage and cost → `message-metadata`, and `finish`'s metadata;
//! - `run_finished` → `finish-step`, then `finish`, `abort` or `error`.
//!
//! Every delta follows its start (the client fails the stream otherwise):
//! a part opens with its message's first text, and a delta or end of a
//! message never opened is not sent. Messages of subagents (inside a
//! tool call) and the user's are left out: they are not the reply's parts.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::frame::FrameBody;
use crate::message::{Outcome, Role, Usage};

/// One chunk of the UI message stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum UiChunk {
    /// The message begins.
    #[serde(rename_all = "camelCase")]
    Start {
        /// The message's id (the run's).
        message_id: String,
    },
    /// A step begins.
    StartStep,
    /// A step ends.
    FinishStep,
    /// A text part opens.
    TextStart {
        /// The part.
        id: String,
    },
    /// Text appended to a part.
    TextDelta {
        /// The part.
        id: String,
        /// The text.
        delta: String,
    },
    /// A text part ends.
    TextEnd {
        /// The part.
        id: String,
    },
    /// A reasoning part opens.
    ReasoningStart {
        /// The part.
        id: String,
    },
    /// Reasoning appended to a part.
    ReasoningDelta {
        /// The part.
        id: String,
        /// The text.
        delta: String,
    },
    /// A reasoning part ends.
    ReasoningEnd {
        /// The part.
        id: String,
    },
    /// A tool call's part opens.
    #[serde(rename_all = "camelCase")]
    ToolInputStart {
        /// The call.
        tool_call_id: String,
        /// The tool.
        tool_name: String,
        /// Always true: the browser does not define the agent's tools.
        dynamic: bool,
        /// Always true: the server ran the tool.
        provider_executed: bool,
    },
    /// A tool call's input, whole.
    #[serde(rename_all = "camelCase")]
    ToolInputAvailable {
        /// The call.
        tool_call_id: String,
        /// The tool.
        tool_name: String,
        /// Its input.
        input: Value,
        /// See [`UiChunk::ToolInputStart`].
        dynamic: bool,
        /// See [`UiChunk::ToolInputStart`].
        provider_executed: bool,
    },
    /// A tool call's output.
    #[serde(rename_all = "camelCase")]
    ToolOutputAvailable {
        /// The call.
        tool_call_id: String,
        /// Its output.
        output: Value,
        /// See [`UiChunk::ToolInputStart`].
        dynamic: bool,
        /// See [`UiChunk::ToolInputStart`].
        provider_executed: bool,
    },
    /// A tool call failed.
    #[serde(rename_all = "camelCase")]
    ToolOutputError {
        /// The call.
        tool_call_id: String,
        /// Why.
        error_text: String,
        /// See [`UiChunk::ToolInputStart`].
        dynamic: bool,
        /// See [`UiChunk::ToolInputStart`].
        provider_executed: bool,
    },
    /// The message's metadata: usage, cost, model.
    #[serde(rename_all = "camelCase")]
    MessageMetadata {
        /// Merged into `message.metadata` by the client.
        message_metadata: Value,
    },
    /// The run completed.
    #[serde(rename_all = "camelCase")]
    Finish {
        /// Always `stop`.
        finish_reason: &'static str,
        /// The metadata at the end.
        message_metadata: Value,
    },
    /// The run was aborted.
    Abort {
        /// Why.
        reason: String,
    },
    /// The run failed.
    #[serde(rename_all = "camelCase")]
    Error {
        /// Why.
        error_text: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Text,
    Reasoning,
    /// A tool result's message: its part is the call's.
    Tool,
}

/// What the run's usage adds up to, as message metadata.
#[derive(Debug, Default, Clone, PartialEq)]
struct Totals {
    model: Option<String>,
    tokens: Option<u64>,
    cost_usd: Option<f64>,
    per_message: BTreeMap<String, Usage>,
}

impl Totals {
    /// Takes a message's usage (merged like the reducer does); returns whether anything changed.
    fn add(&mut self, message_id: &str, usage: &Usage) -> bool {
        let entry = self.per_message.entry(message_id.to_owned()).or_default();
        let before = entry.clone();
        entry.merge(usage.clone());
        if *entry == before {
            return false;
        }
        if let Some(model) = &entry.model {
            self.model = Some(model.clone());
        }
        let usages = self.per_message.values();
        self.tokens = usages.clone().filter_map(|usage| usage.tokens_used).reduce(|a, b| a + b);
        self.cost_usd = usages.clone().filter_map(|usage| usage.cost_usd).reduce(|a, b| a + b);
        true
    }

    fn metadata(&self) -> Value {
        let mut map = Map::new();
        if let Some(model) = &self.model {
            map.insert("model".into(), model.clone().into());
        }
        if let Some(tokens) = self.tokens {
            map.insert("tokensUsed".into(), tokens.into());
        }
        if let Some(cost) = self.cost_usd {
            map.insert("costUsd".into(), cost.into());
        }
        Value::Object(map)
    }
}

/// Turns one run's frames into UI message chunks, in order.
#[derive(Debug)]
pub struct UiMessageStream {
    run_id: String,
    started: bool,
    finished: bool,
    /// A tool answered since the step began: the next text opens a new step.
    step_answered: bool,
    parts: HashMap<String, Part>,
    /// The parts opened and not closed yet, in the order they opened.
    open: Vec<String>,
    /// Every tool call opened, and those still waiting for their output.
    calls: HashSet<String>,
    unanswered: HashSet<String>,
    totals: Totals,
    last_error: Option<String>,
}

impl UiMessageStream {
    /// A stream of the run `run_id`; frames before its `run_started` are skipped.
    pub fn new(run_id: impl Into<String>) -> Self {
        Self {
            run_id: run_id.into(),
            started: false,
            finished: false,
            step_answered: false,
            parts: HashMap::new(),
            open: Vec::new(),
            calls: HashSet::new(),
            unanswered: HashSet::new(),
            totals: Totals::default(),
            last_error: None,
        }
    }

    /// Whether the run's `run_finished` came: the stream is over.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Appends to `out` the chunks one frame of the session makes.
    pub fn push(&mut self, body: &FrameBody, out: &mut Vec<UiChunk>) {
        if self.finished {
            return;
        }
        if !self.started {
            if let FrameBody::RunStarted(started) = body
                && started.run_id == self.run_id
            {
                self.started = true;
                out.push(UiChunk::Start { message_id: self.run_id.clone() });
                out.push(UiChunk::StartStep);
            }
            return;
        }
        match body {
            FrameBody::MessageStarted(started) if started.parent_tool_call_id.is_none() => {
                let part = match started.role {
                    Role::Assistant => Part::Text,
                    Role::Reasoning => Part::Reasoning,
                    Role::Tool => Part::Tool,
                    Role::User | Role::System => return,
                };
                self.parts.insert(started.message_id.clone(), part);
                if part == Part::Text && std::mem::take(&mut self.step_answered) {
                    out.extend([UiChunk::FinishStep, UiChunk::StartStep]);
                }
                if let Some(content) = &started.content {
                    self.delta(&started.message_id, content, out);
                }
            }
            FrameBody::Delta(delta) => self.delta(&delta.message_id, &delta.content, out),
            // A call's input may come again, more complete: the part is opened once and updated.
            FrameBody::ToolCall(call)
                if self.parts.get(&call.message_id) == Some(&Part::Text)
                    && (self.unanswered.contains(&call.tool_call.id) || !self.calls.contains(&call.tool_call.id)) =>
            {
                let (tool_call_id, tool_name) = (call.tool_call.id.clone(), call.tool_call.name.clone());
                if self.calls.insert(tool_call_id.clone()) {
                    self.unanswered.insert(tool_call_id.clone());
                    out.push(UiChunk::ToolInputStart {
                        tool_call_id: tool_call_id.clone(),
                        tool_name: tool_name.clone(),
                        dynamic: true,
                        provider_executed: true,
                    });
                }
                out.push(UiChunk::ToolInputAvailable {
                    tool_call_id,
                    tool_name,
                    input: call.tool_call.input.clone(),
                    dynamic: true,
                    provider_executed: true,
                });
            }
            FrameBody::ToolResult(result) if self.unanswered.remove(&result.tool_call_id) => {
                self.step_answered = true;
                let tool_call_id = result.tool_call_id.clone();
                out.push(match &result.error {
                    Some(error) => UiChunk::ToolOutputError {
                        tool_call_id,
                        error_text: error.clone(),
                        dynamic: true,
                        provider_executed: true,
                    },
                    None => UiChunk::ToolOutputAvailable {
                        tool_call_id,
                        output: result.output.clone(),
                        dynamic: true,
                        provider_executed: true,
                    },
                });
            }
            FrameBody::Status(status) if self.parts.contains_key(&status.message_id) => {
                self.usage(&status.message_id, &status.usage, out);
            }
            FrameBody::MessageComplete(complete) if self.parts.contains_key(&complete.message_id) => {
                self.usage(&complete.message_id, &complete.usage, out);
                self.close(&complete.message_id, out);
            }
            FrameBody::Error(error) => self.last_error = Some(error.error.clone()),
            FrameBody::RunFinished(finished) if finished.run_id == self.run_id => {
                for id in self.open.clone() {
                    self.close(&id, out);
                }
                out.push(UiChunk::FinishStep);
                out.push(match (finished.aborted, finished.status) {
                    (true, _) | (_, Outcome::Cancelled) => UiChunk::Abort { reason: "the run was aborted".into() },
                    (false, Outcome::Failed) => UiChunk::Error {
                        error_text: self.last_error.clone().unwrap_or_else(|| "the run failed".into()),
                    },
                    (false, Outcome::Complete) => {
                        UiChunk::Finish { finish_reason: "stop", message_metadata: self.totals.metadata() }
                    }
                });
                self.finished = true;
            }
            _ => {}
        }
    }

    /// Text of a message: its part opens with its first text, so a message
    /// without any (a tool call alone, hidden reasoning) adds no empty part.
    fn delta(&mut self, message_id: &str, content: &str, out: &mut Vec<UiChunk>) {
        let part = self.parts.get(message_id).copied();
        if content.is_empty() || !matches!(part, Some(Part::Text | Part::Reasoning)) {
            return;
        }
        let id = message_id.to_owned();
        if !self.open.contains(&id) {
            self.open.push(id.clone());
            out.push(match part {
                Some(Part::Text) => UiChunk::TextStart { id: id.clone() },
                _ => UiChunk::ReasoningStart { id: id.clone() },
            });
        }
        let delta = content.to_owned();
        out.push(match part {
            Some(Part::Text) => UiChunk::TextDelta { id, delta },
            _ => UiChunk::ReasoningDelta { id, delta },
        });
    }

    /// A message ended: its part closes, and nothing more is added to it.
    fn close(&mut self, message_id: &str, out: &mut Vec<UiChunk>) {
        let part = self.parts.remove(message_id);
        let Some(at) = self.open.iter().position(|open| open == message_id) else { return };
        let id = self.open.remove(at);
        match part {
            Some(Part::Text) => out.push(UiChunk::TextEnd { id }),
            Some(Part::Reasoning) => out.push(UiChunk::ReasoningEnd { id }),
            _ => {}
        }
    }

    fn usage(&mut self, message_id: &str, usage: &Usage, out: &mut Vec<UiChunk>) {
        if self.totals.add(message_id, usage) {
            out.push(UiChunk::MessageMetadata { message_metadata: self.totals.metadata() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{AgentEvent, Translator};
    use crate::frame::{FrameBody, RunFinished, RunStarted};
    use serde_json::json;

    /// A run as the server frames it: the translator's frames between run_started and run_finished.
    fn run_frames(events: Vec<AgentEvent>, status: Outcome, aborted: bool) -> Vec<FrameBody> {
        let mut translator = Translator::new("run-1");
        let mut frames =
            vec![FrameBody::RunStarted(RunStarted { run_id: "run-1".into(), provider: "demo".into(), started_at: 1 })];
        for event in events {
            translator.push(event.into(), 2, &mut frames);
        }
        translator.finish(status, 3, &mut frames);
        frames.push(FrameBody::RunFinished(RunFinished {
            run_id: "run-1".into(),
            status,
            aborted,
            exit_code: None,
            state_hash: None,
        }));
        frames
    }

    fn chunks(frames: &[FrameBody]) -> Vec<Value> {
        let mut stream = UiMessageStream::new("run-1");
        let mut out = Vec::new();
        for frame in frames {
            stream.push(frame, &mut out);
        }
        assert!(stream.is_finished());
        out.iter().map(|chunk| serde_json::to_value(chunk).unwrap()).collect()
    }

    #[test]
    fn a_run_with_reasoning_a_tool_and_text_maps_to_parts_in_order() {
        let frames = run_frames(
            vec![
                AgentEvent::Reasoning { content: "think".into() },
                AgentEvent::Text { content: "Let me ".into() },
                AgentEvent::Text { content: "look.".into() },
                AgentEvent::ToolCall { id: "t1".into(), name: "Read".into(), input: json!({ "path": "a" }) },
                AgentEvent::ToolResult {
                    tool_call_id: "t1".into(),
                    output: json!("hi"),
                    truncated: false,
                    error: None,
                },
                AgentEvent::Text { content: "Done.".into() },
            ],
            Outcome::Complete,
            false,
        );
        let types: Vec<String> =
            chunks(&frames).iter().map(|chunk| chunk["type"].as_str().unwrap().to_owned()).collect();
        assert_eq!(
            types,
            [
                "start",
                "start-step",
                "reasoning-start",
                "reasoning-delta",
                "reasoning-end",
                "text-start",
                "text-delta",
                "text-delta",
                "tool-input-start",
                "tool-input-available",
                "text-end",
                "tool-output-available",
                "finish-step",
                "start-step",
                "text-start",
                "text-delta",
                "text-end",
                "finish-step",
                "finish"
            ]
        );
        let all = chunks(&frames);
        assert_eq!(all[0], json!({ "type": "start", "messageId": "run-1" }));
        let available = all.iter().find(|chunk| chunk["type"] == "tool-input-available").unwrap();
        assert_eq!(
            *available,
            json!({ "type": "tool-input-available", "toolCallId": "t1", "toolName": "Read", "input": { "path": "a" }, "dynamic": true, "providerExecuted": true })
        );
    }

    #[test]
    fn the_end_is_an_error_or_an_abort_and_open_parts_close_first() {
        let failed = run_frames(vec![AgentEvent::Error { error: "rate limited".into() }], Outcome::Failed, false);
        assert_eq!(chunks(&failed).last().unwrap(), &json!({ "type": "error", "errorText": "rate limited" }));
        let aborted = run_frames(vec![AgentEvent::Text { content: "part".into() }], Outcome::Cancelled, true);
        let aborted = chunks(&aborted);
        let types: Vec<&str> = aborted.iter().map(|chunk| chunk["type"].as_str().unwrap()).collect();
        assert_eq!(&types[types.len() - 3..], ["text-end", "finish-step", "abort"]);
    }

    #[test]
    fn usage_and_cost_become_message_metadata() {
        let usage = Usage { tokens_used: Some(7), cost_usd: Some(0.25), model: Some("m".into()), ..Usage::default() };
        let frames = run_frames(
            vec![AgentEvent::Text { content: "x".into() }, AgentEvent::Usage(usage)],
            Outcome::Complete,
            false,
        );
        let all = chunks(&frames);
        assert_eq!(
            all.last().unwrap(),
            &json!({ "type": "finish", "finishReason": "stop", "messageMetadata": { "model": "m", "tokensUsed": 7, "costUsd": 0.25 } })
        );
        assert!(all.iter().any(|chunk| chunk["type"] == "message-metadata"));
    }

    #[test]
    fn frames_of_other_runs_and_before_the_start_are_not_sent() {
        let frames = run_frames(vec![AgentEvent::Text { content: "x".into() }], Outcome::Complete, false);
        let mut stream = UiMessageStream::new("run-2");
        let mut out = Vec::new();
        for frame in &frames {
            stream.push(frame, &mut out);
        }
        assert!(out.is_empty() && !stream.is_finished());
    }
}
