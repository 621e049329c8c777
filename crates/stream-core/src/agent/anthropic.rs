//! The Anthropic Messages API stream (`message_start` … `message_stop`), as
//! SSE from the API and as Claude Code's `stream_event` lines. Text and
//! thinking stream as they come; tool input is collected per block and parsed
//! at the block's stop; usage is the cumulative figure of `message_delta`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::framing::SseEvent;
use super::{AgentEvent, AgentItem, StreamVerdict, parse_json, parse_tool_input, text_of_blocks};
use crate::message::Usage;

#[derive(Debug)]
enum Block {
    Text,
    Thinking { shown: bool },
    ToolUse { id: String, name: String, json: String, initial: Value },
    Other,
}

/// The state of one Messages stream; several messages may follow each other.
#[derive(Debug, Default)]
pub struct MessageStream {
    message_id: Option<String>,
    model: Option<String>,
    input_tokens: u64,
    cached_tokens: u64,
    /// Blocks of the current message, by index (indexes are per message).
    blocks: BTreeMap<u64, Block>,
    verdict: StreamVerdict,
}

fn figure(usage: &Value, key: &str) -> u64 {
    usage.get(key).and_then(Value::as_u64).unwrap_or(0)
}

impl MessageStream {
    /// A stream with nothing seen.
    pub fn new() -> Self {
        Self::default()
    }

    /// How the stream said it ended.
    pub fn verdict(&self) -> &StreamVerdict {
        &self.verdict
    }

    /// The id of the message being streamed, once `message_start` named it.
    pub fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }

    /// Reads one SSE event of the API.
    pub fn sse(&mut self, event: &SseEvent, out: &mut Vec<AgentItem>) {
        if let Some(value) = parse_json(&event.data, "the stream sent an event", &mut self.verdict, out) {
            self.event(&value, None, out);
        }
    }

    /// Reads one stream event (the JSON object), inside `parent` if given.
    pub fn event(&mut self, event: &Value, parent: Option<&str>, out: &mut Vec<AgentItem>) {
        let mut emit = |event: AgentEvent| {
            out.push(AgentItem { event, parent_tool_call_id: parent.map(str::to_owned) });
        };
        let index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
        match event.get("type").and_then(Value::as_str).unwrap_or_default() {
            "message_start" => {
                let message = event.get("message").unwrap_or(&Value::Null);
                self.message_id = message.get("id").and_then(Value::as_str).map(str::to_owned);
                self.model = message.get("model").and_then(Value::as_str).map(str::to_owned);
                let usage = message.get("usage").unwrap_or(&Value::Null);
                self.input_tokens = figure(usage, "input_tokens");
                self.cached_tokens = figure(usage, "cache_read_input_tokens");
                self.blocks.clear();
            }
            "content_block_start" => {
                let block = event.get("content_block").unwrap_or(&Value::Null);
                let text = |key| block.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
                let started = match block.get("type").and_then(Value::as_str).unwrap_or_default() {
                    "text" => {
                        if !text("text").is_empty() {
                            emit(AgentEvent::Text { content: text("text") });
                        }
                        Block::Text
                    }
                    "thinking" => {
                        let shown = !text("thinking").is_empty();
                        if shown {
                            emit(AgentEvent::Reasoning { content: text("thinking") });
                        }
                        Block::Thinking { shown }
                    }
                    "redacted_thinking" => {
                        emit(AgentEvent::ReasoningHidden { redacted: true });
                        Block::Other
                    }
                    "tool_use" | "server_tool_use" => {
                        emit(AgentEvent::ToolPreparing { id: text("id"), name: text("name") });
                        Block::ToolUse {
                            id: text("id"),
                            name: text("name"),
                            json: String::new(),
                            initial: block.get("input").cloned().unwrap_or(Value::Null),
                        }
                    }
                    // Results of server tools (web search, code execution) come whole.
                    kind if kind.ends_with("_tool_result") => {
                        emit(AgentEvent::ToolResult {
                            tool_call_id: text("tool_use_id"),
                            output: text_of_blocks(block.get("content").unwrap_or(&Value::Null)),
                            truncated: false,
                            error: None,
                        });
                        Block::Other
                    }
                    _ => Block::Other,
                };
                self.blocks.insert(index, started);
            }
            "content_block_delta" => {
                let delta = event.get("delta").unwrap_or(&Value::Null);
                let piece = |key| delta.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
                match (delta.get("type").and_then(Value::as_str).unwrap_or_default(), self.blocks.get_mut(&index)) {
                    ("text_delta", _) => emit(AgentEvent::Text { content: piece("text") }),
                    ("thinking_delta", block) => {
                        if let Some(Block::Thinking { shown }) = block {
                            *shown = true;
                        }
                        emit(AgentEvent::Reasoning { content: piece("thinking") });
                    }
                    ("input_json_delta", Some(Block::ToolUse { json, .. })) => json.push_str(&piece("partial_json")),
                    _ => {}
                }
            }
            "content_block_stop" => match self.blocks.remove(&index) {
                Some(Block::ToolUse { id, name, json, initial }) => {
                    let input = if json.is_empty() && initial.as_object().is_some_and(|input| !input.is_empty()) {
                        initial
                    } else {
                        parse_tool_input(&json)
                    };
                    emit(AgentEvent::ToolCall { id, name, input });
                }
                Some(Block::Thinking { shown: false }) => emit(AgentEvent::ReasoningHidden { redacted: false }),
                Some(Block::Text | Block::Thinking { .. } | Block::Other) | None => {}
            },
            "message_delta" => {
                let usage = event.get("usage").unwrap_or(&Value::Null);
                // Cumulative totals; some servers repeat the input figures here.
                let input = usage.get("input_tokens").and_then(Value::as_u64).unwrap_or(self.input_tokens);
                let cached = usage.get("cache_read_input_tokens").and_then(Value::as_u64).unwrap_or(self.cached_tokens);
                let output = figure(usage, "output_tokens");
                let reasoning = usage.pointer("/output_tokens_details/thinking_tokens").and_then(Value::as_u64);
                emit(AgentEvent::Usage(Usage {
                    tokens_used: Some(input + cached + output),
                    cache_tokens: (cached > 0).then_some(cached),
                    reasoning_tokens: reasoning,
                    model: self.model.clone(),
                    ..Usage::default()
                }));
                if event.pointer("/delta/stop_reason").and_then(Value::as_str) == Some("refusal") {
                    emit(AgentEvent::Error { error: "the model declined to answer".into() });
                }
            }
            "message_stop" => {
                self.verdict.finished = true;
                self.message_id = None;
            }
            "error" => {
                let kind = event.pointer("/error/type").and_then(Value::as_str).unwrap_or("error");
                let message = event.pointer("/error/message").and_then(Value::as_str).unwrap_or("the stream failed");
                let error = format!("{kind}: {message}");
                emit(AgentEvent::Error { error: error.clone() });
                self.verdict.fail(error);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use serde_json::json;

    use super::*;

    fn run(events: &[Value]) -> (Vec<AgentEvent>, StreamVerdict) {
        let mut stream = MessageStream::new();
        let mut out = Vec::new();
        for event in events {
            stream.event(event, None, &mut out);
        }
        (out.into_iter().map(|item| item.event).collect(), stream.verdict().clone())
    }

    #[test]
    fn tool_input_fragments_become_one_call_at_the_block_stop() {
        let (events, verdict) = run(&[
            json!({"type": "message_start", "message": {"id": "m", "model": "claude", "usage": {"input_tokens": 5}}}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "Read", "input": {}}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
            json!({"type": "ping"}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"pa"}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "th\": \"a\"}"}}),
            json!({"type": "content_block_stop", "index": 1}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 7}}),
            json!({"type": "message_stop"}),
        ]);
        assert_eq!(
            events,
            vec![
                AgentEvent::ToolPreparing { id: "t".into(), name: "Read".into() },
                AgentEvent::ToolCall { id: "t".into(), name: "Read".into(), input: json!({"path": "a"}) },
                AgentEvent::Usage(Usage { tokens_used: Some(12), model: Some("claude".into()), ..Usage::default() }),
            ]
        );
        assert_eq!(verdict, StreamVerdict { failed: None, finished: true });
    }

    #[test]
    fn signature_only_thinking_and_an_error_after_200_are_reported() {
        let (events, verdict) = run(&[
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "abc"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "Now", "input": {}}}),
            json!({"type": "content_block_stop", "index": 1}),
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ]);
        assert_eq!(
            events,
            vec![
                AgentEvent::ReasoningHidden { redacted: false },
                AgentEvent::ToolPreparing { id: "t".into(), name: "Now".into() },
                AgentEvent::ToolCall { id: "t".into(), name: "Now".into(), input: json!({}) },
                AgentEvent::Error { error: "overloaded_error: Overloaded".into() },
            ]
        );
        assert_eq!(verdict.failed.as_deref(), Some("overloaded_error: Overloaded"));
        assert!(!verdict.finished);
    }
}
