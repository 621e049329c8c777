//! Codex's `codex exec --json` lines (FORMATS.md §4). Messages and reasoning
//! come whole on `item.completed`; commands, file changes, MCP calls, web
//! searches and todo lists are tool calls (opened on `item.started`, or on
//! their completion when they had no start) whose result is the completed
//! item. `thread.started` names the thread for `codex exec resume`.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::{AgentEvent, AgentItem, StreamVerdict, parse_json, text_of_blocks};
use crate::message::Usage;

/// The state of one Codex run's output.
#[derive(Debug, Default)]
pub struct Codex {
    /// Tool-like items whose call was emitted.
    called: HashSet<String>,
    /// Put before item ids: Codex numbers them per process (`item_0`...), so
    /// the runs of one session would reuse them.
    id_prefix: String,
    verdict: StreamVerdict,
}

impl Codex {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Nothing seen yet; tool call ids start with `prefix`.
    pub fn with_id_prefix(prefix: &str) -> Self {
        Self { id_prefix: prefix.to_owned(), ..Self::default() }
    }

    /// How the output said the run ended; `finished` once the turn completed.
    pub fn verdict(&self) -> StreamVerdict {
        self.verdict.clone()
    }

    /// Reads one line of output.
    pub fn line(&mut self, line: &str, out: &mut Vec<AgentItem>) {
        if line.trim().is_empty() {
            return;
        }
        let Some(value) = parse_json(line, "Codex printed a line", &mut self.verdict, out) else { return };
        let mut emit = |event: AgentEvent| out.push(event.into());
        let text = |pointer: &str| value.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned();
        match value.get("type").and_then(Value::as_str).unwrap_or_default() {
            "thread.started" => emit(AgentEvent::Continuation { id: text("/thread_id") }),
            "item.started" => {
                let item = value.get("item").unwrap_or(&Value::Null);
                if let Some((name, input)) = tool_of(item) {
                    let id = format!("{}{}", self.id_prefix, text("/item/id"));
                    if self.called.insert(id.clone()) {
                        emit(AgentEvent::ToolCall { id, name, input });
                    }
                }
            }
            "item.completed" => {
                let item = value.get("item").unwrap_or(&Value::Null);
                match item.get("type").and_then(Value::as_str).unwrap_or_default() {
                    "agent_message" => emit(AgentEvent::Text { content: text("/item/text") }),
                    "reasoning" => emit(AgentEvent::Reasoning { content: text("/item/text") }),
                    "error" => emit(AgentEvent::Error { error: text("/item/message") }),
                    _ => {
                        let Some((name, input)) = tool_of(item) else { return };
                        let id = format!("{}{}", self.id_prefix, text("/item/id"));
                        if self.called.insert(id.clone()) {
                            emit(AgentEvent::ToolCall { id: id.clone(), name, input });
                        }
                        let (output, error) = result_of(item);
                        emit(AgentEvent::ToolResult { tool_call_id: id, output, truncated: false, error });
                    }
                }
            }
            "turn.completed" => {
                let usage = value.get("usage").unwrap_or(&Value::Null);
                let figure = |key| usage.get(key).and_then(Value::as_u64);
                let total = ["input_tokens", "output_tokens"].into_iter().filter_map(figure).reduce(|a, b| a + b);
                emit(AgentEvent::Usage(Usage {
                    tokens_used: total,
                    cache_tokens: figure("cached_input_tokens").filter(|&cached| cached > 0),
                    reasoning_tokens: figure("reasoning_output_tokens").filter(|&reasoning| reasoning > 0),
                    ..Usage::default()
                }));
                self.verdict.finished = true;
            }
            "turn.failed" => {
                let error = value.pointer("/error/message").and_then(Value::as_str).unwrap_or("the turn failed");
                emit(AgentEvent::Error { error: error.to_owned() });
                self.verdict.fail(error);
            }
            // A fatal stream error; a retry notice reads the same, so the turn's end decides.
            "error" => emit(AgentEvent::Error { error: text("/message") }),
            _ => {}
        }
    }
}

/// The tool name and input of a tool-like item; `None` for other items.
fn tool_of(item: &Value) -> Option<(String, Value)> {
    let field = |key: &str| item.get(key).cloned().unwrap_or(Value::Null);
    Some(match item.get("type").and_then(Value::as_str)? {
        "command_execution" => ("shell".into(), json!({ "command": field("command") })),
        "file_change" => ("file_change".into(), json!({ "changes": field("changes") })),
        "mcp_tool_call" => {
            let server = item.get("server").and_then(Value::as_str).unwrap_or_default();
            let tool = item.get("tool").and_then(Value::as_str).unwrap_or_default();
            (format!("mcp__{server}__{tool}"), field("arguments"))
        }
        "web_search" => ("web_search".into(), json!({ "query": field("query") })),
        "todo_list" => ("todo_list".into(), json!({ "items": field("items") })),
        "collab_tool_call" => ("subagent".into(), item.clone()),
        _ => return None,
    })
}

/// The output and error of a completed tool-like item.
fn result_of(item: &Value) -> (Value, Option<String>) {
    let status = item.get("status").and_then(Value::as_str).unwrap_or("completed");
    match item.get("type").and_then(Value::as_str).unwrap_or_default() {
        "command_execution" => {
            let output = item.get("aggregated_output").cloned().unwrap_or(json!(""));
            let exit_code = item.get("exit_code").and_then(Value::as_i64);
            let error = match (exit_code, status) {
                (Some(0), _) => None,
                (Some(code), _) => Some(format!("exited with {code}")),
                (None, "declined") => Some("declined".into()),
                (None, "completed") => None,
                (None, other) => Some(other.to_owned()),
            };
            (json!({ "output": output, "exit_code": exit_code }), error)
        }
        "mcp_tool_call" => match item.pointer("/error/message").and_then(Value::as_str) {
            Some(message) => (Value::Null, Some(message.to_owned())),
            None => (text_of_blocks(item.pointer("/result/content").unwrap_or(&Value::Null)), None),
        },
        "todo_list" => (item.get("items").cloned().unwrap_or(Value::Null), None),
        _ => {
            let error = matches!(status, "failed" | "declined").then(|| status.to_owned());
            (json!({ "status": status }), error)
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn read(lines: &[&str]) -> (Vec<AgentEvent>, StreamVerdict) {
        let mut adapter = Codex::new();
        let mut out = Vec::new();
        for line in lines {
            adapter.line(line, &mut out);
        }
        (out.into_iter().map(|item| item.event).collect(), adapter.verdict())
    }

    #[test]
    fn a_command_is_one_call_and_one_result_and_the_thread_continues() {
        let (events, verdict) = read(&[
            r#"{"type":"thread.started","thread_id":"th-1"}"#,
            r#"{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":"bash -lc false","status":"in_progress"}}"#,
            r#"{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"bash -lc false","aggregated_output":"no\n","exit_code":1,"status":"failed"}}"#,
            r#"{"type":"item.completed","item":{"id":"item_2","type":"agent_message","text":"It failed."}}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":4,"output_tokens":2}}"#,
        ]);
        assert_eq!(
            events,
            vec![
                AgentEvent::Continuation { id: "th-1".into() },
                AgentEvent::ToolCall {
                    id: "item_1".into(),
                    name: "shell".into(),
                    input: json!({"command": "bash -lc false"})
                },
                AgentEvent::ToolResult {
                    tool_call_id: "item_1".into(),
                    output: json!({"output": "no\n", "exit_code": 1}),
                    truncated: false,
                    error: Some("exited with 1".into()),
                },
                AgentEvent::Text { content: "It failed.".into() },
                AgentEvent::Usage(Usage { tokens_used: Some(12), cache_tokens: Some(4), ..Usage::default() }),
            ]
        );
        assert_eq!(verdict, StreamVerdict { failed: None, finished: true });
    }

    #[test]
    fn the_ids_of_one_run_are_its_own() {
        let mut adapter = Codex::with_id_prefix("run_2.");
        let mut out = Vec::new();
        adapter.line(
            r#"{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":"ls"}}"#,
            &mut out,
        );
        assert!(matches!(&out[0].event, AgentEvent::ToolCall { id, .. } if id == "run_2.item_1"));
    }

    #[test]
    fn a_failed_turn_fails_the_run() {
        let (events, verdict) = read(&[
            r#"{"type":"error","message":"retrying 1/5"}"#,
            r#"{"type":"turn.failed","error":{"message":"401 Unauthorized"}}"#,
            "not json",
        ]);
        assert_eq!(events.len(), 3);
        assert_eq!(verdict.failed.as_deref(), Some("401 Unauthorized"));
    }
}
