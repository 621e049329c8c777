//! The state hash: a stable 64-bit digest of a session's confirmed messages.
//!
//! Server and client compare it to prove they hold the same list, so it must
//! not depend on anything but the messages: the encoding below is canonical
//! (fixed field order, length-prefixed strings, object keys sorted, numbers as
//! their bits), so no hash-map order or float formatting leaks in, and the
//! digest is the same natively and on wasm32.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use xxhash_rust::xxh3::Xxh3;

use crate::message::{Message, MessageStatus, Role, ToolCallState, Usage};

/// A state hash. On the wire it is 16 lowercase hex digits, because a JSON
/// number cannot carry 64 bits into JavaScript.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateHash(pub u64);

impl StateHash {
    /// Hashes the given messages in order.
    pub fn of<'a>(messages: impl IntoIterator<Item = &'a Message>) -> Self {
        let mut encoder = CanonicalEncoder(Xxh3::new());
        let mut count = 0u64;
        for message in messages {
            encoder.message(message);
            count += 1;
        }
        // The count closes the encoding, so a list is never a prefix of another.
        encoder.u64(count);
        Self(encoder.0.digest())
    }
}

impl fmt::Display for StateHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for StateHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StateHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        if text.len() != 16 {
            return Err(serde::de::Error::custom(format!("a state hash is 16 hex digits, got {:?}", text)));
        }
        u64::from_str_radix(&text, 16)
            .map(StateHash)
            .map_err(|_| serde::de::Error::custom(format!("a state hash is 16 hex digits, got {text:?}")))
    }
}

/// Feeds values to the hasher in the canonical encoding.
struct CanonicalEncoder(Xxh3);

impl CanonicalEncoder {
    fn byte(&mut self, value: u8) {
        self.0.update(&[value]);
    }

    fn u64(&mut self, value: u64) {
        self.0.update(&value.to_le_bytes());
    }

    fn str(&mut self, value: &str) {
        self.u64(value.len() as u64);
        self.0.update(value.as_bytes());
    }

    fn opt<T>(&mut self, value: Option<T>, mut write: impl FnMut(&mut Self, T)) {
        match value {
            None => self.byte(0),
            Some(value) => {
                self.byte(1);
                write(self, value);
            }
        }
    }

    fn message(&mut self, message: &Message) {
        // Destructured so that a new field cannot be forgotten here.
        let Message {
            id,
            role,
            content,
            status,
            created_at,
            finished_at,
            client_message_id,
            parent_tool_call_id,
            tool_calls,
            tool_result,
            usage,
            error,
        } = message;
        self.str(id);
        self.byte(match role {
            Role::User => 0,
            Role::Assistant => 1,
            Role::Tool => 2,
            Role::System => 3,
            Role::Reasoning => 4,
        });
        self.str(content);
        self.byte(match status {
            MessageStatus::Pending => 0,
            MessageStatus::Streaming => 1,
            MessageStatus::Complete => 2,
            MessageStatus::Cancelled => 3,
            MessageStatus::Failed => 4,
        });
        self.opt(*created_at, Self::u64);
        self.opt(*finished_at, Self::u64);
        self.opt(client_message_id.as_deref(), Self::str);
        self.opt(parent_tool_call_id.as_deref(), Self::str);
        self.u64(tool_calls.len() as u64);
        for call in tool_calls {
            self.str(&call.id);
            self.str(&call.name);
            self.json(&call.input);
            self.byte(match call.state {
                ToolCallState::Running => 0,
                ToolCallState::Succeeded => 1,
                ToolCallState::Failed => 2,
                ToolCallState::Cancelled => 3,
                ToolCallState::Preparing => 4,
            });
            self.opt(call.error.as_deref(), Self::str);
            self.opt(call.started_at, Self::u64);
        }
        self.opt(tool_result.as_ref(), |encoder, result| {
            encoder.str(&result.tool_call_id);
            encoder.json(&result.output);
            encoder.byte(u8::from(result.truncated));
            encoder.opt(result.error.as_deref(), Self::str);
        });
        self.usage(usage);
        self.opt(error.as_deref(), Self::str);
    }

    fn usage(&mut self, usage: &Usage) {
        let Usage { tokens_used, ctx_used, ctx_max, cache_tokens, reasoning_tokens, model, cost_usd, metadata } = usage;
        for figure in [tokens_used, ctx_used, ctx_max, cache_tokens, reasoning_tokens] {
            self.opt(*figure, Self::u64);
        }
        self.opt(model.as_deref(), Self::str);
        self.opt(*cost_usd, |encoder, cost| encoder.u64(cost.to_bits()));
        self.opt(metadata.as_ref(), Self::json);
    }

    fn json(&mut self, value: &Value) {
        match value {
            Value::Null => self.byte(0),
            Value::Bool(flag) => {
                self.byte(1);
                self.byte(u8::from(*flag));
            }
            Value::Number(number) => {
                // Integers and floats are told apart and hashed by their bits,
                // never by a formatted string.
                if let Some(unsigned) = number.as_u64() {
                    self.byte(2);
                    self.u64(unsigned);
                } else if let Some(signed) = number.as_i64() {
                    self.byte(3);
                    self.u64(signed as u64);
                } else {
                    self.byte(4);
                    self.u64(number.as_f64().unwrap_or(f64::NAN).to_bits());
                }
            }
            Value::String(text) => {
                self.byte(5);
                self.str(text);
            }
            Value::Array(items) => {
                self.byte(6);
                self.u64(items.len() as u64);
                for item in items {
                    self.json(item);
                }
            }
            Value::Object(map) => {
                self.byte(7);
                self.u64(map.len() as u64);
                // Sorted here, whatever order the map keeps its keys in.
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                for (key, item) in entries {
                    self.str(key);
                    self.json(item);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::message::ToolCall;

    fn sample() -> Vec<Message> {
        let mut user = Message::new("u1", Role::User, MessageStatus::Complete);
        user.content = "hello".into();
        user.created_at = Some(1_700_000_000_000);
        user.client_message_id = Some("c1".into());
        let mut assistant = Message::new("a1", Role::Assistant, MessageStatus::Streaming);
        assistant.content = "hi ✓".into();
        assistant.tool_calls.push(ToolCall {
            id: "t1".into(),
            name: "search".into(),
            input: serde_json::json!({"z": [1, -2, 2.5], "a": {"b": null, "c": true}}),
            state: ToolCallState::Running,
            error: None,
            started_at: Some(1_700_000_000_100),
        });
        assistant.usage.tokens_used = Some(42);
        assistant.usage.cost_usd = Some(0.012_5);
        let mut thinking = Message::new("r1", Role::Reasoning, MessageStatus::Complete);
        thinking.content = "first, look".into();
        thinking.parent_tool_call_id = Some("task-1".into());
        vec![user, assistant, thinking]
    }

    /// A pinned digest of a fixed list: the wasm32 run of this test proves the
    /// hash is the same on both targets, and a change to the encoding shows here.
    #[test]
    fn digest_is_pinned_across_targets() {
        assert_eq!(StateHash::of(&sample()).to_string(), "569b3bbe73e5e843");
    }

    #[test]
    fn object_key_order_does_not_change_the_hash() {
        let mut reordered = sample();
        reordered[1].tool_calls[0].input =
            serde_json::from_str(r#"{"a": {"c": true, "b": null}, "z": [1, -2, 2.5]}"#).unwrap();
        assert_eq!(StateHash::of(&sample()), StateHash::of(&reordered));
    }

    #[test]
    fn any_field_change_changes_the_hash() {
        let base = StateHash::of(&sample());
        let mut changed = sample();
        changed[1].content.push('!');
        assert_ne!(StateHash::of(&changed), base);
        let mut changed = sample();
        changed[1].usage.tokens_used = Some(43);
        assert_ne!(StateHash::of(&changed), base);
        let mut changed = sample();
        changed[1].tool_calls[0].state = ToolCallState::Succeeded;
        assert_ne!(StateHash::of(&changed), base);
        let mut changed = sample();
        changed[1].usage.cost_usd = Some(0.012_6);
        assert_ne!(StateHash::of(&changed), base);
        let mut changed = sample();
        changed[2].parent_tool_call_id = None;
        assert_ne!(StateHash::of(&changed), base);
        let mut changed = sample();
        changed[2].role = Role::Assistant;
        assert_ne!(StateHash::of(&changed), base);
        // Moving text across the boundary of two fields must not collide.
        let mut moved = sample();
        moved[0].content = "hell".into();
        moved[0].id = "u1o".into();
        assert_ne!(StateHash::of(&moved), base);
    }

    #[test]
    fn wire_form_is_sixteen_hex_digits_and_round_trips() {
        let hash = StateHash(0x00ab_cdef_0123_4567);
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(json, "\"00abcdef01234567\"");
        assert_eq!(serde_json::from_str::<StateHash>(&json).unwrap(), hash);
        assert!(serde_json::from_str::<StateHash>("\"abc\"").is_err());
        assert!(serde_json::from_str::<StateHash>("\"zzzzzzzzzzzzzzzz\"").is_err());
        assert!(serde_json::from_str::<StateHash>("12").is_err());
    }
}
