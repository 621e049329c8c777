//! From an agent's own output to frames. Each adapter reads one native format
//! (Claude Code's and Codex's JSON lines, OpenAI's and Anthropic's SSE) and
//! emits provider-neutral [`AgentItem`]s; the [`Translator`] turns those into
//! the frame bodies of a run. Pure: bytes and `now_ms` in, values out, so the
//! same tests run natively and on wasm32.
//!
//! | module | owns |
//! |---|---|
//! | [`decoder`] | one format's framing and adapter, bytes to items |
//! | [`framing`] | lines and SSE events out of chunks cut anywhere |
//! | [`claude_code`] | `claude -p --output-format stream-json` |
//! | [`codex`] | `codex exec --json` |
//! | [`openai_chat`] | Chat Completions streaming |
//! | [`anthropic`] | Messages API streaming |

pub mod anthropic;
pub mod claude_code;
pub mod codex;
pub mod decoder;
pub mod framing;
pub mod openai_chat;

use std::collections::BTreeMap;

pub use decoder::{Decoder, Format};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::frame::{
    Delta, ErrorFrame, FrameBody, MessageComplete, MessageStarted, StatusFrame, ToolCallFrame, ToolCallSpec,
    ToolResultFrame,
};
use crate::message::{Outcome, Role, Usage};

/// Something an agent did, in order. The JSON-lines form (`{"type": ...}`)
/// is the `command` provider's format.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    /// Text of the agent's reply.
    Text {
        /// The text.
        content: String,
    },
    /// Thinking text, streamed into a reasoning message of its own.
    Reasoning {
        /// The text.
        content: String,
    },
    /// Thinking the provider did not show: only signed, or redacted.
    ReasoningHidden {
        /// Redacted (encrypted) rather than merely omitted.
        #[serde(default)]
        redacted: bool,
    },
    /// The agent started a tool call whose input is still streaming.
    ToolPreparing {
        /// The call's id; the [`AgentEvent::ToolCall`] that follows has it too.
        id: String,
        /// The tool.
        name: String,
    },
    /// The agent called a tool.
    ToolCall {
        /// The call's id, unique within the run.
        id: String,
        /// The tool.
        name: String,
        /// Its input.
        #[serde(default)]
        input: Value,
    },
    /// A tool returned.
    ToolResult {
        /// The call it answers.
        tool_call_id: String,
        /// Its output.
        #[serde(default)]
        output: Value,
        /// Whether the output was cut.
        #[serde(default)]
        truncated: bool,
        /// The tool's error.
        #[serde(default)]
        error: Option<String>,
    },
    /// Usage figures (and cost) of the current assistant message.
    Usage(Usage),
    /// An error shown in the session; whether the run fails is the adapter's
    /// verdict ([`StreamVerdict`]) or the process's exit.
    Error {
        /// What went wrong.
        error: String,
    },
    /// The provider's own id of the conversation (Claude Code's session,
    /// Codex's thread), for continuing it next run. Never becomes a frame.
    #[serde(skip)]
    Continuation {
        /// The id.
        id: String,
    },
}

/// An event and where it happened: inside a tool call (a subagent's), or on
/// the main thread.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AgentItem {
    /// The event.
    #[serde(flatten)]
    pub event: AgentEvent,
    /// The tool call it happened inside, for a subagent.
    #[serde(default)]
    pub parent_tool_call_id: Option<String>,
}

impl From<AgentEvent> for AgentItem {
    fn from(event: AgentEvent) -> Self {
        Self { event, parent_tool_call_id: None }
    }
}

/// How a stream said it ended, apart from how its process exited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamVerdict {
    /// Set when the stream reported a failure (an `error` event, a failed
    /// turn, an error result): the run fails with this message.
    pub failed: Option<String>,
    /// Whether the stream reached its own end marker (`result`, `[DONE]`,
    /// `message_stop`, `turn.completed`); a stream cut before it failed.
    pub finished: bool,
}

impl StreamVerdict {
    pub(crate) fn fail(&mut self, error: impl Into<String>) {
        self.failed.get_or_insert_with(|| error.into());
    }
}

/// The messages open in one scope: the main thread or one subagent.
#[derive(Debug, Default)]
struct Scope {
    assistant: Option<String>,
    reasoning: Option<String>,
    /// The last assistant message, open or not: usage that comes after it closed goes there.
    last_assistant: Option<String>,
    /// The last reasoning message, until an assistant message follows it.
    last_reasoning: Option<String>,
    /// The reasoning that led to the last assistant message: its thinking tokens go there.
    thinking_of_last: Option<String>,
}

/// Turns a run's agent events into frame bodies: it opens an assistant (or
/// reasoning) message when text, a tool call or usage needs one, gives each
/// tool result a tool message of its own, keeps a subagent's messages apart
/// from the main thread's, and closes what is open at the end.
#[derive(Debug)]
pub struct Translator {
    run_id: String,
    next_message: u32,
    scopes: BTreeMap<Option<String>, Scope>,
    /// Calls shown as preparing, by id, with the message that shows them.
    preparing: BTreeMap<String, String>,
}

impl Translator {
    /// A translator for run `run_id`; its messages are `<run_id>.<n>`.
    pub fn new(run_id: &str) -> Self {
        Self { run_id: run_id.to_owned(), next_message: 0, scopes: BTreeMap::new(), preparing: BTreeMap::new() }
    }

    /// Appends the frame bodies of `item` to `bodies`.
    pub fn push(&mut self, item: AgentItem, now_ms: u64, bodies: &mut Vec<FrameBody>) {
        let parent = item.parent_tool_call_id;
        match item.event {
            AgentEvent::Text { content } => {
                self.close(&parent, Role::Reasoning, Outcome::Complete, now_ms, bodies);
                let message_id = self.open(&parent, Role::Assistant, now_ms, bodies);
                bodies.push(FrameBody::Delta(Delta { message_id, content }));
            }
            AgentEvent::Reasoning { content } => {
                // Thinking after text starts the next step: the text's message is done.
                self.close(&parent, Role::Assistant, Outcome::Complete, now_ms, bodies);
                let message_id = self.open(&parent, Role::Reasoning, now_ms, bodies);
                bodies.push(FrameBody::Delta(Delta { message_id, content }));
            }
            AgentEvent::ReasoningHidden { redacted } => {
                self.close(&parent, Role::Assistant, Outcome::Complete, now_ms, bodies);
                let message_id = self.open(&parent, Role::Reasoning, now_ms, bodies);
                let metadata = json!({ "reasoning": if redacted { "redacted" } else { "hidden" } });
                let usage = Usage { metadata: Some(metadata), ..Usage::default() };
                bodies.push(FrameBody::Status(StatusFrame { message_id, usage: usage.into() }));
            }
            AgentEvent::ToolPreparing { id, name } => {
                self.close(&parent, Role::Reasoning, Outcome::Complete, now_ms, bodies);
                let message_id = self.open(&parent, Role::Assistant, now_ms, bodies);
                self.preparing.insert(id.clone(), message_id.clone());
                let tool_call = ToolCallSpec { id, name, input: Value::Null, started_at: None, preparing: true };
                bodies.push(FrameBody::ToolCall(ToolCallFrame { message_id, tool_call }));
            }
            AgentEvent::ToolCall { id, name, input } => {
                self.close(&parent, Role::Reasoning, Outcome::Complete, now_ms, bodies);
                // A prepared call completes in the message that shows it.
                let message_id = match self.preparing.remove(&id) {
                    Some(message_id) => message_id,
                    None => self.open(&parent, Role::Assistant, now_ms, bodies),
                };
                let tool_call = ToolCallSpec { id, name, input, started_at: Some(now_ms), preparing: false };
                bodies.push(FrameBody::ToolCall(ToolCallFrame { message_id, tool_call }));
            }
            AgentEvent::ToolResult { tool_call_id, output, truncated, error } => {
                // The reply after a tool result is a new assistant message,
                // and a subagent is done once its call has its result.
                let subagent = Some(tool_call_id.clone());
                for scope in [&subagent, &parent] {
                    self.close(scope, Role::Reasoning, Outcome::Complete, now_ms, bodies);
                    self.close(scope, Role::Assistant, Outcome::Complete, now_ms, bodies);
                }
                let message_id = self.start(&parent, Role::Tool, now_ms, bodies);
                bodies.push(FrameBody::ToolResult(ToolResultFrame {
                    message_id,
                    tool_call_id,
                    output,
                    truncated,
                    error,
                }));
            }
            AgentEvent::Usage(usage) => {
                let scope = self.scopes.entry(parent.clone()).or_default();
                let message_id = match scope.last_assistant.clone() {
                    Some(id) => id,
                    None => self.open(&parent, Role::Assistant, now_ms, bodies),
                };
                let thinking = self.scopes.get(&parent).and_then(|scope| scope.thinking_of_last.clone());
                if let (Some(thinking), Some(tokens)) = (thinking, usage.reasoning_tokens) {
                    let usage = Usage { reasoning_tokens: Some(tokens), ..Usage::default() };
                    bodies.push(FrameBody::Status(StatusFrame { message_id: thinking, usage: usage.into() }));
                }
                bodies.push(FrameBody::Status(StatusFrame { message_id, usage: usage.into() }));
            }
            AgentEvent::Error { error } => {
                let message_id = self.scopes.get(&parent).and_then(|scope| scope.assistant.clone());
                bodies.push(FrameBody::Error(ErrorFrame { message_id, error, reason: None }));
            }
            AgentEvent::Continuation { .. } => {}
        }
    }

    /// Closes every open message with `status`, subagents' first.
    pub fn finish(&mut self, status: Outcome, now_ms: u64, bodies: &mut Vec<FrameBody>) {
        let parents: Vec<Option<String>> = self.scopes.keys().rev().cloned().collect();
        for parent in parents {
            self.close(&parent, Role::Reasoning, status, now_ms, bodies);
            self.close(&parent, Role::Assistant, status, now_ms, bodies);
        }
    }

    fn start(&mut self, parent: &Option<String>, role: Role, now_ms: u64, bodies: &mut Vec<FrameBody>) -> String {
        self.next_message += 1;
        let message_id = format!("{}.{}", self.run_id, self.next_message);
        bodies.push(FrameBody::MessageStarted(MessageStarted {
            message_id: message_id.clone(),
            role,
            created_at: now_ms,
            client_message_id: None,
            content: None,
            parent_tool_call_id: parent.clone(),
        }));
        message_id
    }

    /// The open message of `role` (assistant or reasoning) in the scope, started if none is.
    fn open(&mut self, parent: &Option<String>, role: Role, now_ms: u64, bodies: &mut Vec<FrameBody>) -> String {
        if let Some(id) = self.slot(parent, role).clone() {
            return id;
        }
        let id = self.start(parent, role, now_ms, bodies);
        *self.slot(parent, role) = Some(id.clone());
        let scope = self.scopes.entry(parent.clone()).or_default();
        if role == Role::Assistant {
            scope.last_assistant = Some(id.clone());
            scope.thinking_of_last = scope.last_reasoning.take();
        } else {
            scope.last_reasoning = Some(id.clone());
        }
        id
    }

    fn close(
        &mut self,
        parent: &Option<String>,
        role: Role,
        status: Outcome,
        now_ms: u64,
        bodies: &mut Vec<FrameBody>,
    ) {
        if let Some(message_id) = self.slot(parent, role).take() {
            bodies.push(FrameBody::MessageComplete(MessageComplete {
                message_id,
                status,
                finished_at: now_ms,
                usage: Box::default(),
            }));
        }
    }

    fn slot(&mut self, parent: &Option<String>, role: Role) -> &mut Option<String> {
        let scope = self.scopes.entry(parent.clone()).or_default();
        if role == Role::Reasoning { &mut scope.reasoning } else { &mut scope.assistant }
    }
}

/// `text` as JSON; else an error shown where it came (`what` says what it
/// was), which fails the run.
fn parse_json(text: &str, what: &str, verdict: &mut StreamVerdict, out: &mut Vec<AgentItem>) -> Option<Value> {
    match serde_json::from_str(text) {
        Ok(value) => Some(value),
        Err(error) => {
            let error = format!("{what} that is not JSON: {error}");
            out.push(AgentEvent::Error { error: error.clone() }.into());
            verdict.fail(error);
            None
        }
    }
}

/// The text of a JSON value that is a string or a list of `{type: "text",
/// text}` blocks (tool results of Claude Code and MCP); other values as they are.
fn text_of_blocks(value: &Value) -> Value {
    match value {
        Value::Array(blocks) => {
            let texts: Option<Vec<&str>> = blocks
                .iter()
                .map(|block| match block.get("type").and_then(Value::as_str) {
                    Some("text") => block.get("text").and_then(Value::as_str),
                    _ => None,
                })
                .collect();
            match texts {
                Some(texts) => Value::String(texts.concat()),
                None => value.clone(),
            }
        }
        other => other.clone(),
    }
}

/// Tool input that arrived as JSON text in fragments: `{}` for nothing, the
/// parsed value when it parses, else the raw text (a UI can still show it).
fn parse_tool_input(raw: &str) -> Value {
    if raw.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn kinds(bodies: &[FrameBody]) -> Vec<String> {
        bodies
            .iter()
            .map(|body| match body {
                FrameBody::MessageStarted(started) => format!(
                    "start {} {:?}{}",
                    started.message_id,
                    started.role,
                    started.parent_tool_call_id.as_deref().map(|parent| format!(" in {parent}")).unwrap_or_default()
                ),
                FrameBody::Delta(delta) => format!("delta {}", delta.message_id),
                FrameBody::ToolCall(call) => format!("call {}", call.message_id),
                FrameBody::ToolResult(result) => format!("result {}", result.message_id),
                FrameBody::Status(status) => format!("status {}", status.message_id),
                FrameBody::MessageComplete(complete) => format!("complete {}", complete.message_id),
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn translate(items: Vec<AgentItem>) -> Vec<String> {
        let mut translator = Translator::new("r");
        let mut bodies = Vec::new();
        for item in items {
            translator.push(item, 7, &mut bodies);
        }
        translator.finish(Outcome::Complete, 9, &mut bodies);
        kinds(&bodies)
    }

    fn tool_result(tool_call_id: &str, output: Value) -> AgentEvent {
        AgentEvent::ToolResult { tool_call_id: tool_call_id.into(), output, truncated: false, error: None }
    }

    fn text(content: &str) -> AgentItem {
        AgentEvent::Text { content: content.into() }.into()
    }

    fn in_task(event: AgentEvent) -> AgentItem {
        AgentItem { event, parent_tool_call_id: Some("task".into()) }
    }

    #[test]
    fn the_translator_opens_and_closes_messages_around_tools() {
        let kinds = translate(vec![
            AgentEvent::Reasoning { content: "hmm".into() }.into(),
            text("a"),
            AgentEvent::ToolCall { id: "t".into(), name: "n".into(), input: Value::Null }.into(),
            tool_result("t", json!(1)).into(),
            text("b"),
            AgentEvent::Usage(Usage { cost_usd: Some(0.5), ..Usage::default() }).into(),
        ]);
        assert_eq!(
            kinds,
            vec![
                "start r.1 Reasoning",
                "delta r.1",
                "complete r.1",
                "start r.2 Assistant",
                "delta r.2",
                "call r.2",
                "complete r.2",
                "start r.3 Tool",
                "result r.3",
                "start r.4 Assistant",
                "delta r.4",
                "status r.4",
                "complete r.4",
            ]
        );
    }

    #[test]
    fn a_subagent_writes_messages_of_its_own_nested_under_its_call() {
        let kinds = translate(vec![
            AgentEvent::ToolCall { id: "task".into(), name: "Task".into(), input: json!({}) }.into(),
            in_task(AgentEvent::Text { content: "sub".into() }),
            in_task(AgentEvent::ToolCall { id: "t2".into(), name: "Read".into(), input: json!({}) }),
            in_task(tool_result("t2", json!("x"))),
            tool_result("task", json!("done")).into(),
        ]);
        assert_eq!(
            kinds,
            vec![
                "start r.1 Assistant",
                "call r.1",
                "start r.2 Assistant in task",
                "delta r.2",
                "call r.2",
                "complete r.2",
                "start r.3 Tool in task",
                "result r.3",
                "complete r.1",
                "start r.4 Tool",
                "result r.4",
            ]
        );
    }

    #[test]
    fn a_prepared_call_completes_in_the_message_that_shows_it() {
        let kinds = translate(vec![
            AgentEvent::ToolPreparing { id: "t".into(), name: "Read".into() }.into(),
            AgentEvent::ToolCall { id: "t".into(), name: "Read".into(), input: json!({"path": "a"}) }.into(),
        ]);
        assert_eq!(kinds, vec!["start r.1 Assistant", "call r.1", "call r.1", "complete r.1"]);
    }

    #[test]
    fn thinking_tokens_also_go_to_the_thinking_that_led_to_the_message() {
        let kinds = translate(vec![
            AgentEvent::Reasoning { content: "hmm".into() }.into(),
            text("a"),
            AgentEvent::Usage(Usage { reasoning_tokens: Some(9), ..Usage::default() }).into(),
            text("b"),
        ]);
        assert_eq!(&kinds[3..7], ["start r.2 Assistant", "delta r.2", "status r.1", "status r.2"]);
    }

    #[test]
    fn a_subagent_s_last_message_is_done_when_its_call_has_its_result() {
        let kinds = translate(vec![
            AgentEvent::ToolCall { id: "task".into(), name: "Task".into(), input: json!({}) }.into(),
            in_task(AgentEvent::Text { content: "the last word".into() }),
            tool_result("task", json!("done")).into(),
        ]);
        let done = kinds.iter().position(|kind| kind == "complete r.2").expect("the subagent's message completes");
        assert!(done < kinds.iter().position(|kind| kind == "result r.3").unwrap(), "{kinds:?}");
    }

    #[test]
    fn usage_after_the_last_message_closed_goes_to_it() {
        let kinds = translate(vec![
            text("a"),
            AgentEvent::ToolCall { id: "t".into(), name: "n".into(), input: json!({}) }.into(),
            tool_result("t", json!(1)).into(),
            AgentEvent::Usage(Usage { tokens_used: Some(3), ..Usage::default() }).into(),
        ]);
        assert_eq!(kinds.last().map(String::as_str), Some("status r.1"));
    }

    #[test]
    fn the_command_format_reads_events_with_an_optional_parent() {
        let item: AgentItem =
            serde_json::from_str(r#"{"type":"text","content":"hi","parent_tool_call_id":"t"}"#).unwrap();
        assert_eq!(item, in_task_named("t", AgentEvent::Text { content: "hi".into() }));
        let item: AgentItem = serde_json::from_str(r#"{"type":"usage","tokens_used":3,"cost_usd":0.25}"#).unwrap();
        assert_eq!(
            item.event,
            AgentEvent::Usage(Usage { tokens_used: Some(3), cost_usd: Some(0.25), ..Usage::default() })
        );
        assert!(serde_json::from_str::<AgentItem>(r#"{"type":"continuation","id":"x"}"#).is_err());
    }

    fn in_task_named(parent: &str, event: AgentEvent) -> AgentItem {
        AgentItem { event, parent_tool_call_id: Some(parent.into()) }
    }

    #[test]
    fn tool_input_fragments_parse_once_whole() {
        assert_eq!(parse_tool_input(""), json!({}));
        assert_eq!(parse_tool_input(r#"{"a": [1, 2]}"#), json!({"a": [1, 2]}));
        assert_eq!(parse_tool_input(r#"{"a": [1"#), json!(r#"{"a": [1"#));
        assert_eq!(text_of_blocks(&json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])), json!("ab"));
        assert_eq!(text_of_blocks(&json!([{"type": "image"}])), json!([{"type": "image"}]));
    }
}
