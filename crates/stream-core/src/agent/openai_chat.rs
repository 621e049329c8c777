//! Chat Completions streaming (FORMATS.md §3): OpenAI and every server that
//! speaks it. `delta.content` is text, `reasoning_content` or `reasoning` is
//! thinking, tool calls collect per `index` and become calls when the choice
//! finishes, usage comes on whichever chunk carries it, `[DONE]` ends it.

use std::collections::BTreeMap;

use serde_json::Value;

use super::framing::SseEvent;
use super::{AgentEvent, AgentItem, StreamVerdict, parse_json, parse_tool_input};
use crate::message::Usage;

#[derive(Debug, Default)]
struct PendingCall {
    id: String,
    name: String,
    arguments: String,
    /// Whether it was shown as preparing.
    shown: bool,
}

/// The state of one streamed completion.
#[derive(Debug, Default)]
pub struct ChatStream {
    /// Tool calls being collected, by their `index`.
    calls: BTreeMap<u64, PendingCall>,
    model: Option<String>,
    verdict: StreamVerdict,
}

impl ChatStream {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// How the stream said it ended; `finished` once `[DONE]` came.
    pub fn verdict(&self) -> &StreamVerdict {
        &self.verdict
    }

    /// Reads one SSE event.
    pub fn sse(&mut self, event: &SseEvent, out: &mut Vec<AgentItem>) {
        let data = event.data.trim();
        if data == "[DONE]" {
            self.flush_calls(out);
            self.verdict.finished = true;
            return;
        }
        let Some(chunk) = parse_json(data, "the stream sent a chunk", &mut self.verdict, out) else { return };
        if event.event == "error" || chunk.get("error").is_some() {
            let error = chunk
                .pointer("/error/message")
                .and_then(Value::as_str)
                .or_else(|| chunk.get("message").and_then(Value::as_str))
                .unwrap_or("the server reported an error")
                .to_owned();
            out.push(AgentEvent::Error { error: error.clone() }.into());
            self.verdict.fail(error);
            return;
        }
        if let Some(model) = chunk.get("model").and_then(Value::as_str) {
            self.model = Some(model.to_owned());
        }
        let choices = chunk.get("choices").and_then(Value::as_array);
        // One conversation, one choice: others (n > 1) are not shown.
        // A server that leaves `index` out sends one choice.
        let first = |choice: &&Value| choice.get("index").and_then(Value::as_u64).unwrap_or(0) == 0;
        for choice in choices.into_iter().flatten().filter(first) {
            let delta = choice.get("delta").unwrap_or(&Value::Null);
            let piece = |key| delta.get(key).and_then(Value::as_str).filter(|piece| !piece.is_empty());
            if let Some(reasoning) = piece("reasoning_content").or_else(|| piece("reasoning")) {
                out.push(AgentEvent::Reasoning { content: reasoning.to_owned() }.into());
            }
            if let Some(content) = piece("content") {
                out.push(AgentEvent::Text { content: content.to_owned() }.into());
            }
            if let Some(refusal) = piece("refusal") {
                out.push(AgentEvent::Error { error: format!("refused: {refusal}") }.into());
            }
            let calls = delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten();
            for (position, call) in calls.enumerate() {
                let index = call.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
                let pending = self.calls.entry(index).or_default();
                let field = |pointer| call.pointer(pointer).and_then(Value::as_str);
                if let Some(id) = field("/id") {
                    id.clone_into(&mut pending.id);
                }
                if let Some(name) = field("/function/name") {
                    pending.name.push_str(name);
                }
                if !pending.shown && !pending.id.is_empty() && !pending.name.is_empty() {
                    pending.shown = true;
                    out.push(AgentEvent::ToolPreparing { id: pending.id.clone(), name: pending.name.clone() }.into());
                }
                if let Some(arguments) = field("/function/arguments") {
                    pending.arguments.push_str(arguments);
                }
            }
            if choice.get("finish_reason").and_then(Value::as_str).is_some() {
                self.flush_calls(out);
            }
        }
        if let Some(usage) = chunk.get("usage").filter(|usage| usage.is_object()) {
            let figure = |pointer| usage.pointer(pointer).and_then(Value::as_u64);
            out.push(
                AgentEvent::Usage(Usage {
                    tokens_used: figure("/total_tokens"),
                    cache_tokens: figure("/prompt_tokens_details/cached_tokens").filter(|&cached| cached > 0),
                    reasoning_tokens: figure("/completion_tokens_details/reasoning_tokens")
                        .filter(|&tokens| tokens > 0),
                    model: self.model.clone(),
                    ..Usage::default()
                })
                .into(),
            );
        }
    }

    fn flush_calls(&mut self, out: &mut Vec<AgentItem>) {
        for (_, call) in std::mem::take(&mut self.calls) {
            let input = parse_tool_input(&call.arguments);
            out.push(AgentEvent::ToolCall { id: call.id, name: call.name, input }.into());
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use serde_json::json;

    use super::*;

    fn read(data: &[&str]) -> (Vec<AgentEvent>, StreamVerdict) {
        let mut stream = ChatStream::new();
        let mut out = Vec::new();
        for data in data {
            stream.sse(&SseEvent { event: String::new(), data: (*data).to_owned() }, &mut out);
        }
        (out.into_iter().map(|item| item.event).collect(), stream.verdict().clone())
    }

    #[test]
    fn tool_call_fragments_join_per_index_and_usage_comes_last() {
        let (events, verdict) = read(&[
            r#"{"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning_content":"hm"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"c1","type":"function","function":{"name":"read","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{\"p\":"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"1}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":null}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#,
            "[DONE]",
        ]);
        assert_eq!(
            events,
            vec![
                AgentEvent::Reasoning { content: "hm".into() },
                AgentEvent::Text { content: "Hi".into() },
                AgentEvent::ToolPreparing { id: "c1".into(), name: "read".into() },
                AgentEvent::ToolCall { id: "c1".into(), name: "read".into(), input: json!({"p": 1}) },
                AgentEvent::Usage(Usage { tokens_used: Some(7), model: Some("m".into()), ..Usage::default() }),
            ]
        );
        assert_eq!(verdict, StreamVerdict { failed: None, finished: true });
    }

    #[test]
    fn a_server_that_leaves_out_the_indexes_still_streams_its_text_and_calls() {
        let (events, _) = read(&[
            r#"{"choices":[{"delta":{"content":"Hi"}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"a","function":{"name":"x","arguments":"{}"}},{"id":"b","function":{"name":"y","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#,
        ]);
        let calls: Vec<&AgentEvent> =
            events.iter().filter(|event| matches!(event, AgentEvent::ToolCall { .. })).collect();
        assert_eq!(events[0], AgentEvent::Text { content: "Hi".into() });
        assert_eq!(calls.len(), 2);
    }

    #[test]
    fn an_error_chunk_fails_the_stream() {
        let (events, verdict) = read(&[r#"{"error":{"message":"Rate limit reached","type":"rate_limit"}}"#]);
        assert_eq!(events, vec![AgentEvent::Error { error: "Rate limit reached".into() }]);
        assert_eq!(verdict.failed.as_deref(), Some("Rate limit reached"));
    }
}
