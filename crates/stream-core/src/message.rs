//! The message model of protocol §5: the entries of a session's list, as the
//! server materialises them, as snapshots carry them and as the client shows them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The person at the keyboard.
    User,
    /// The agent.
    Assistant,
    /// The result of a tool the agent called.
    Tool,
    /// The agent's thinking, streamed like its text; empty when the provider
    /// only signed or redacted it.
    Reasoning,
    /// Notices from the system, such as errors that belong to no message.
    System,
}

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Sent by this client, not yet echoed by the server (client-only).
    Pending,
    /// Still receiving deltas.
    Streaming,
    /// Finished normally.
    Complete,
    /// Stopped by an abort.
    Cancelled,
    /// Stopped by an error, or a local send that did not reach the server.
    Failed,
}

impl MessageStatus {
    /// Whether nothing more is expected for the message.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Complete | Self::Cancelled | Self::Failed)
    }
}

/// How something that ran (a message, a run) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It ran to its end.
    Complete,
    /// It was stopped on request.
    Cancelled,
    /// It broke.
    Failed,
}

impl From<Outcome> for MessageStatus {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Complete => Self::Complete,
            Outcome::Cancelled => Self::Cancelled,
            Outcome::Failed => Self::Failed,
        }
    }
}

/// The state of one tool call. The protocol's `{id, name, input}` is extended
/// with this, so a UI never has to guess whether a call still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolCallState {
    /// Called, no result yet.
    #[default]
    Running,
    /// Its input is still streaming in; the call is not made yet.
    Preparing,
    /// A result came back without an error.
    Succeeded,
    /// A result came back with an error, or the run failed before the result.
    Failed,
    /// The run was aborted before the result.
    Cancelled,
}

/// A tool call made by an assistant message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Unique id of the call; the `tool_result` names it.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The tool's input, any JSON.
    pub input: Value,
    /// Where the call is (an extension of the protocol's shape).
    #[serde(default)]
    pub state: ToolCallState,
    /// Why the call ended without a result, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the call was made, if the frame said (an extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
}

/// The result carried by a tool message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The call this answers.
    pub tool_call_id: String,
    /// The tool's output, any JSON.
    pub output: Value,
    /// Whether the output was cut short.
    pub truncated: bool,
    /// The tool's error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The usage fields that `status` and `message_complete` frames carry and a
/// message keeps. A frame's `Some` values overwrite; its `None` values leave
/// what is there.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens used by the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_used: Option<u64>,
    /// Context window in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx_used: Option<u64>,
    /// Context window size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx_max: Option<u64>,
    /// Tokens served from cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_tokens: Option<u64>,
    /// Tokens spent on reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    /// The model that wrote the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// What the message cost, in US dollars, when the provider says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Provider-specific extras, any JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

impl Usage {
    /// Takes every field `update` sets.
    pub fn merge(&mut self, update: Usage) {
        let Usage { tokens_used, ctx_used, ctx_max, cache_tokens, reasoning_tokens, model, cost_usd, metadata } =
            update;
        overwrite(&mut self.tokens_used, tokens_used);
        overwrite(&mut self.ctx_used, ctx_used);
        overwrite(&mut self.ctx_max, ctx_max);
        overwrite(&mut self.cache_tokens, cache_tokens);
        overwrite(&mut self.reasoning_tokens, reasoning_tokens);
        overwrite(&mut self.model, model);
        overwrite(&mut self.cost_usd, cost_usd);
        overwrite(&mut self.metadata, metadata);
    }
}

fn overwrite<T>(slot: &mut Option<T>, update: Option<T>) {
    if update.is_some() {
        *slot = update;
    }
}

/// One entry of a session's list (protocol §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "FlatMessage")]
pub struct Message {
    /// Server-assigned id; for a pending local message, its `client_message_id`.
    pub id: String,
    /// Who wrote it.
    pub role: Role,
    /// The text so far.
    pub content: String,
    /// Where it is in its life.
    pub status: MessageStatus,
    /// When the server started it (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<u64>,
    /// When it ended (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
    /// The id the client chose when it sent the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<String>,
    /// The tool call this message was written inside (a subagent's), so a UI
    /// can nest it under that call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_tool_call_id: Option<String>,
    /// Tools this message called.
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
    /// For a tool message, the result it carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_result: Option<ToolResult>,
    /// Usage figures.
    #[serde(flatten)]
    pub usage: Usage,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Declares a wide struct that reads a wire object whose usage fields sit at
/// its top level (serde's `flatten` would buffer the object, which is slow
/// and weighs on the WebAssembly build), with `usage()` to take them out.
/// The one list of the usage fields, for every such struct.
macro_rules! with_usage_fields {
    ($(#[$meta:meta])* struct $name:ident $(<$lifetime:lifetime>)? { $($fields:tt)* }) => {
        $(#[$meta])*
        struct $name $(<$lifetime>)? {
            $($fields)*
            #[serde(default)]
            tokens_used: Option<u64>,
            #[serde(default)]
            ctx_used: Option<u64>,
            #[serde(default)]
            ctx_max: Option<u64>,
            #[serde(default)]
            cache_tokens: Option<u64>,
            #[serde(default)]
            reasoning_tokens: Option<u64>,
            #[serde(default)]
            model: Option<String>,
            #[serde(default)]
            cost_usd: Option<f64>,
            #[serde(default)]
            metadata: Option<Value>,
        }

        impl $(<$lifetime>)? $name $(<$lifetime>)? {
            /// Takes the usage fields out.
            fn usage(&mut self) -> $crate::message::Usage {
                $crate::message::Usage {
                    tokens_used: self.tokens_used.take(),
                    ctx_used: self.ctx_used.take(),
                    ctx_max: self.ctx_max.take(),
                    cache_tokens: self.cache_tokens.take(),
                    reasoning_tokens: self.reasoning_tokens.take(),
                    model: self.model.take(),
                    cost_usd: self.cost_usd.take(),
                    metadata: self.metadata.take(),
                }
            }
        }
    };
}
pub(crate) use with_usage_fields;

with_usage_fields! {
    /// `Message` as it is on the wire, usage fields and all at one level.
    #[derive(Deserialize)]
    struct FlatMessage {
        id: String,
        role: Role,
        content: String,
        status: MessageStatus,
        #[serde(default)]
        created_at: Option<u64>,
        #[serde(default)]
        finished_at: Option<u64>,
        #[serde(default)]
        client_message_id: Option<String>,
        #[serde(default)]
        parent_tool_call_id: Option<String>,
        #[serde(default)]
        tool_calls: Vec<ToolCall>,
        #[serde(default)]
        tool_result: Option<ToolResult>,
        #[serde(default)]
        error: Option<String>,
    }
}

impl From<FlatMessage> for Message {
    fn from(mut flat: FlatMessage) -> Self {
        let usage = flat.usage();
        Self {
            id: flat.id,
            role: flat.role,
            content: flat.content,
            status: flat.status,
            created_at: flat.created_at,
            finished_at: flat.finished_at,
            client_message_id: flat.client_message_id,
            parent_tool_call_id: flat.parent_tool_call_id,
            tool_calls: flat.tool_calls,
            tool_result: flat.tool_result,
            usage,
            error: flat.error,
        }
    }
}

impl Message {
    /// An empty message with the given id, role and status.
    pub fn new(id: impl Into<String>, role: Role, status: MessageStatus) -> Self {
        Self {
            id: id.into(),
            role,
            content: String::new(),
            status,
            created_at: None,
            finished_at: None,
            client_message_id: None,
            parent_tool_call_id: None,
            tool_calls: Vec::new(),
            tool_result: None,
            usage: Usage::default(),
            error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn usage_merge_keeps_fields_the_update_leaves_out() {
        let mut usage = Usage { tokens_used: Some(10), model: Some("m1".into()), ..Usage::default() };
        usage.merge(Usage { tokens_used: Some(12), ctx_max: Some(200), ..Usage::default() });
        assert_eq!(usage.tokens_used, Some(12));
        assert_eq!(usage.ctx_max, Some(200));
        assert_eq!(usage.model.as_deref(), Some("m1"));
    }

    #[test]
    fn message_json_round_trips_with_flattened_usage() {
        let mut message = Message::new("m1", Role::Assistant, MessageStatus::Streaming);
        message.usage.tokens_used = Some(7);
        message.tool_calls.push(ToolCall {
            id: "t1".into(),
            name: "grep".into(),
            input: serde_json::json!({"q": 1.5}),
            state: ToolCallState::Running,
            error: None,
            started_at: Some(5),
        });
        let json = serde_json::to_string(&message).unwrap();
        assert!(json.contains("\"tokens_used\":7"), "{json}");
        let back: Message = serde_json::from_str(&json).unwrap();
        assert_eq!(back, message);
    }

    #[test]
    fn tool_call_without_state_reads_as_running() {
        let call: ToolCall = serde_json::from_str(r#"{"id":"t","name":"n","input":null}"#).unwrap();
        assert_eq!(call.state, ToolCallState::Running);
    }
}
