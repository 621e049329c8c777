//! Claude Code's `--output-format stream-json` lines (FORMATS.md §1).
//!
//! - `system/init` and `result` carry the CLI's `session_id`: a
//!   [`AgentEvent::Continuation`], for `--resume` on the next run.
//! - With `--include-partial-messages`, text and thinking stream from the
//!   `stream_event` lines ([`MessageStream`]); the whole `assistant` line of a
//!   message that streamed is then skipped, so nothing shows twice. Without
//!   them, each `assistant` line's block is taken whole.
//! - Tool results come as `user` lines; `is_error` marks failures and refusals.
//! - Lines of a subagent carry `parent_tool_use_id`: its messages nest there.
//! - `result` ends the run: its totals and `total_cost_usd` go on the last
//!   assistant message, and an error result fails the run.

use std::collections::HashSet;

use serde_json::Value;

use super::anthropic::MessageStream;
use super::{AgentEvent, AgentItem, StreamVerdict, parse_json, text_of_blocks};
use crate::message::Usage;

/// The state of one Claude Code run's output.
#[derive(Debug, Default)]
pub struct ClaudeCode {
    /// Partial-message streams, one per thread (main or a subagent's).
    streams: std::collections::BTreeMap<Option<String>, MessageStream>,
    /// Ids of the API messages whose blocks arrived as stream events.
    streamed: HashSet<String>,
    verdict: StreamVerdict,
}

impl ClaudeCode {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// How the output said the run ended; `finished` once `result` came.
    pub fn verdict(&self) -> StreamVerdict {
        let mut verdict = self.verdict.clone();
        if verdict.failed.is_none() {
            verdict.failed = self.streams.values().find_map(|stream| stream.verdict().failed.clone());
        }
        verdict
    }

    /// Reads one line of output.
    pub fn line(&mut self, line: &str, out: &mut Vec<AgentItem>) {
        if line.trim().is_empty() {
            return;
        }
        let Some(value) = parse_json(line, "Claude Code printed a line", &mut self.verdict, out) else { return };
        let parent = value.get("parent_tool_use_id").and_then(Value::as_str).map(str::to_owned);
        let mut emit = |event: AgentEvent| out.push(AgentItem { event, parent_tool_call_id: parent.clone() });
        let field = |key: &str| value.get(key).and_then(Value::as_str);
        match (field("type").unwrap_or_default(), field("subtype")) {
            ("system", Some("init")) => {
                if let Some(id) = field("session_id") {
                    emit(AgentEvent::Continuation { id: id.to_owned() });
                }
            }
            ("stream_event", _) => {
                let event = value.get("event").unwrap_or(&Value::Null);
                let stream = self.streams.entry(parent.clone()).or_default();
                let mut streamed = Vec::new();
                stream.event(event, parent.as_deref(), &mut streamed);
                if let Some(id) = stream.message_id() {
                    self.streamed.insert(id.to_owned());
                }
                out.extend(streamed);
            }
            ("assistant", _) => {
                let message = value.get("message").unwrap_or(&Value::Null);
                let id = message.get("id").and_then(Value::as_str).unwrap_or_default();
                if let Some(error) = field("error") {
                    let text = text_of_blocks(message.get("content").unwrap_or(&Value::Null));
                    let detail = text.as_str().filter(|text| !text.is_empty()).unwrap_or(error);
                    emit(AgentEvent::Error { error: format!("{error}: {detail}") });
                    return;
                }
                if self.streamed.contains(id) {
                    return;
                }
                for block in message.get("content").and_then(Value::as_array).into_iter().flatten() {
                    if let Some(event) = whole_block(block) {
                        emit(event);
                    }
                }
            }
            ("user", _) => {
                let content = value.pointer("/message/content").and_then(Value::as_array);
                for block in content.into_iter().flatten() {
                    if block.get("type").and_then(Value::as_str) != Some("tool_result") {
                        continue;
                    }
                    let output = text_of_blocks(block.get("content").unwrap_or(&Value::Null));
                    let failed = block.get("is_error").and_then(Value::as_bool).unwrap_or(false);
                    let error = failed.then(|| output.as_str().unwrap_or("the tool failed").to_owned());
                    let tool_call_id = block.get("tool_use_id").and_then(Value::as_str).unwrap_or_default().to_owned();
                    emit(AgentEvent::ToolResult { tool_call_id, output, truncated: false, error });
                }
            }
            ("result", subtype) => {
                if let Some(id) = field("session_id") {
                    emit(AgentEvent::Continuation { id: id.to_owned() });
                }
                emit(AgentEvent::Usage(result_usage(&value)));
                let is_error = value.get("is_error").and_then(Value::as_bool).unwrap_or(false);
                if is_error || subtype.is_some_and(|subtype| subtype != "success") {
                    let errors: Vec<&str> = value
                        .get("errors")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    let error = if !errors.is_empty() {
                        errors.join("; ")
                    } else {
                        field("result").or(subtype).unwrap_or("Claude Code reported an error").to_owned()
                    };
                    emit(AgentEvent::Error { error: error.clone() });
                    self.verdict.failed.get_or_insert(error);
                }
                self.verdict.finished = true;
            }
            _ => {}
        }
    }
}

/// A content block of an `assistant` line, taken whole.
fn whole_block(block: &Value) -> Option<AgentEvent> {
    let text = |key| block.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    Some(match block.get("type").and_then(Value::as_str)? {
        "text" => AgentEvent::Text { content: text("text") },
        "thinking" if text("thinking").is_empty() => AgentEvent::ReasoningHidden { redacted: false },
        "thinking" => AgentEvent::Reasoning { content: text("thinking") },
        "redacted_thinking" => AgentEvent::ReasoningHidden { redacted: true },
        "tool_use" | "server_tool_use" => AgentEvent::ToolCall {
            id: text("id"),
            name: text("name"),
            input: block.get("input").cloned().unwrap_or(Value::Null),
        },
        _ => return None,
    })
}

/// The run's totals from a `result` line: tokens, cache, cost, and the main model.
fn result_usage(result: &Value) -> Usage {
    let usage = result.get("usage").unwrap_or(&Value::Null);
    let figure = |key| usage.get(key).and_then(Value::as_u64);
    let tokens = ["input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"]
        .into_iter()
        .filter_map(figure)
        .reduce(|total, tokens| total + tokens);
    // The model that spent the most, when several did (subagents on Haiku).
    let model = result.get("modelUsage").and_then(Value::as_object).and_then(|models| {
        models
            .iter()
            .max_by(|(_, a), (_, b)| {
                let cost = |usage: &Value| usage.get("costUSD").and_then(Value::as_f64).unwrap_or(0.0);
                cost(a).total_cmp(&cost(b))
            })
            .map(|(model, _)| model.clone())
    });
    Usage {
        tokens_used: tokens,
        cache_tokens: figure("cache_read_input_tokens").filter(|&cached| cached > 0),
        cost_usd: result.get("total_cost_usd").and_then(Value::as_f64),
        model,
        ..Usage::default()
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use serde_json::json;

    use super::*;

    fn read(lines: &[Value]) -> (Vec<AgentItem>, StreamVerdict) {
        let mut adapter = ClaudeCode::new();
        let mut out = Vec::new();
        for line in lines {
            adapter.line(&line.to_string(), &mut out);
        }
        (out, adapter.verdict())
    }

    #[test]
    fn a_streamed_message_is_not_repeated_by_its_whole_assistant_line() {
        let (items, verdict) = read(&[
            json!({"type": "system", "subtype": "init", "session_id": "cli-1", "model": "m"}),
            json!({"type": "stream_event", "event": {"type": "message_start", "message": {"id": "msg1", "model": "m"}}}),
            json!({"type": "stream_event", "event": {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}}),
            json!({"type": "stream_event", "event": {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}}),
            json!({"type": "assistant", "message": {"id": "msg1", "content": [{"type": "text", "text": "Hi"}]}}),
            json!({"type": "stream_event", "event": {"type": "content_block_stop", "index": 0}}),
            json!({"type": "stream_event", "event": {"type": "message_stop"}}),
            json!({"type": "result", "subtype": "success", "session_id": "cli-1", "total_cost_usd": 0.25,
                   "usage": {"input_tokens": 3, "output_tokens": 4}}),
        ]);
        let events: Vec<AgentEvent> = items.into_iter().map(|item| item.event).collect();
        assert_eq!(
            events,
            vec![
                AgentEvent::Continuation { id: "cli-1".into() },
                AgentEvent::Text { content: "Hi".into() },
                AgentEvent::Continuation { id: "cli-1".into() },
                AgentEvent::Usage(Usage { tokens_used: Some(7), cost_usd: Some(0.25), ..Usage::default() }),
            ]
        );
        assert_eq!(verdict, StreamVerdict { failed: None, finished: true });
    }

    #[test]
    fn subagent_lines_nest_and_refused_tools_are_errors() {
        let (items, _) = read(&[
            json!({"type": "assistant", "parent_tool_use_id": "task", "message": {"id": "m2",
                   "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}}]}}),
            json!({"type": "user", "parent_tool_use_id": "task", "message": {"content": [
                {"type": "tool_result", "tool_use_id": "t1", "is_error": true, "content": "This command requires approval"}]}}),
        ]);
        assert!(items.iter().all(|item| item.parent_tool_call_id.as_deref() == Some("task")));
        assert_eq!(
            items[1].event,
            AgentEvent::ToolResult {
                tool_call_id: "t1".into(),
                output: json!("This command requires approval"),
                truncated: false,
                error: Some("This command requires approval".into()),
            }
        );
    }

    #[test]
    fn an_error_result_or_an_api_error_line_fails_the_run() {
        let (items, verdict) = read(&[
            json!({"type": "assistant", "error": "rate_limit", "message": {"id": "m", "content": [{"type": "text", "text": "API Error: 429"}]}}),
            json!({"type": "result", "subtype": "error_max_turns", "is_error": true, "errors": ["too many turns"]}),
        ]);
        assert_eq!(items[0].event, AgentEvent::Error { error: "rate_limit: API Error: 429".into() });
        assert_eq!(verdict.failed.as_deref(), Some("too many turns"));
        let (_, verdict) = read(&[json!({"type": "system", "subtype": "init", "session_id": "s"})]);
        assert!(!verdict.finished, "no result: the output was cut");
    }
}
