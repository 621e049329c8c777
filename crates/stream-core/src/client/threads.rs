//! How a session's messages nest, for a client that shows tool calls as
//! cards: the tool message answering each call, the messages a subagent
//! wrote inside its call, and the messages shown at the top level (all the
//! others). Kept up to date from each patch, so a streaming delta costs no
//! walk of the list.

use rustc_hash::FxHashMap;

use crate::message::Message;

/// The nesting of one session's messages.
#[derive(Debug, Clone, Default)]
pub struct Threads {
    /// Call id → the message that made the call.
    callers: FxHashMap<String, String>,
    /// Call id → the tool message answering it.
    answers: FxHashMap<String, String>,
    /// Call id → the messages written inside it (a subagent's), in order.
    children: FxHashMap<String, Vec<String>>,
    /// Messages not shown inside a call, in order.
    top: Vec<String>,
    /// Entries of `top` unchanged since the last take, when some changed.
    top_kept: Option<usize>,
    /// Calls whose answer or inner messages changed since the last take.
    calls: Vec<String>,
}

/// What changed in the nesting since the last [`Threads::take_changes`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadChanges {
    /// `Some(k)`: the first `k` top-level ids are as they were, the rest are new.
    pub top_kept: Option<usize>,
    /// Calls whose answer or inner messages changed.
    pub calls: Vec<String>,
}

impl Threads {
    /// The messages shown at the top level, in order.
    pub fn top(&self) -> &[String] {
        &self.top
    }

    /// The tool message answering a call.
    pub fn answer(&self, call_id: &str) -> Option<&str> {
        self.answers.get(call_id).map(String::as_str)
    }

    /// The messages written inside a call (a subagent's), in order.
    pub fn children(&self, call_id: &str) -> &[String] {
        self.children.get(call_id).map_or(&[], Vec::as_slice)
    }

    /// What changed since the last call.
    pub fn take_changes(&mut self) -> ThreadChanges {
        ThreadChanges { top_kept: self.top_kept.take(), calls: std::mem::take(&mut self.calls) }
    }

    /// Follows a change of the list: `at(i)` is its message at position `i`
    /// of `len` now; the messages at `changed` positions were updated in
    /// place, and those from `rebuild_from` on are new or moved (0: all of
    /// them may be), of a list that had `before_len` entries.
    pub fn follow<'a>(
        &mut self,
        len: usize,
        at: impl Fn(usize) -> &'a Message,
        changed: &[usize],
        rebuild_from: usize,
        before_len: usize,
    ) {
        if rebuild_from == 0 && before_len > 0 {
            self.callers.clear();
            self.answers.clear();
            self.children.clear();
        }
        let touched = changed.iter().copied().chain(rebuild_from..len);
        let mut nesting_may_change = rebuild_from < before_len;
        for position in touched.clone() {
            let message = at(position);
            for call in &message.tool_calls {
                if !self.callers.contains_key(&call.id) {
                    self.callers.insert(call.id.clone(), message.id.clone());
                    // A message already listed may answer the new call.
                    nesting_may_change = true;
                }
            }
        }
        for position in touched {
            let message = at(position);
            if let Some(result) = &message.tool_result {
                if self.answers.get(&result.tool_call_id) != Some(&message.id) {
                    self.answers.insert(result.tool_call_id.clone(), message.id.clone());
                    self.calls.push(result.tool_call_id.clone());
                }
            } else if let Some(parent) = &message.parent_tool_call_id {
                let children = self.children.entry(parent.clone()).or_default();
                if !children.contains(&message.id) {
                    children.push(message.id.clone());
                    self.calls.push(parent.clone());
                }
            }
            // A parent or an answer given after the message was listed moves it.
            nesting_may_change |=
                position < rebuild_from && (message.tool_result.is_some() || message.parent_tool_call_id.is_some());
        }
        if nesting_may_change {
            self.recompute_top((0..len).map(&at));
        } else {
            let kept = self.top.len();
            let added: Vec<String> = (rebuild_from..len)
                .map(&at)
                .filter(|message| !self.is_nested(message))
                .map(|message| message.id.clone())
                .collect();
            self.top.extend(added);
            if self.top.len() > kept {
                self.keep_top(kept);
            }
        }
    }

    /// Whether a message shows inside a call's card rather than at the top level.
    fn is_nested(&self, message: &Message) -> bool {
        match (&message.tool_result, &message.parent_tool_call_id) {
            (Some(result), _) if self.callers.contains_key(&result.tool_call_id) => true,
            (_, Some(parent)) => self.callers.contains_key(parent),
            _ => false,
        }
    }

    fn recompute_top<'a>(&mut self, messages: impl Iterator<Item = &'a Message>) {
        let top: Vec<String> =
            messages.filter(|message| !self.is_nested(message)).map(|message| message.id.clone()).collect();
        let same = self.top.iter().zip(&top).take_while(|(before, now)| before == now).count();
        if same < self.top.len().max(top.len()) {
            self.keep_top(same);
        }
        self.top = top;
    }

    fn keep_top(&mut self, kept: usize) {
        self.top_kept = Some(self.top_kept.map_or(kept, |earlier| earlier.min(kept)));
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use serde_json::json;

    use super::*;
    use crate::message::{MessageStatus, Role, ToolCall, ToolCallState, ToolResult};

    fn message(id: &str) -> Message {
        Message::new(id, Role::Assistant, MessageStatus::Complete)
    }

    fn caller(id: &str, call: &str) -> Message {
        let mut message = message(id);
        message.tool_calls.push(ToolCall {
            id: call.into(),
            name: "Task".into(),
            input: json!({}),
            state: ToolCallState::Running,
            error: None,
            started_at: None,
        });
        message
    }

    fn answer(id: &str, call: &str) -> Message {
        let mut message = message(id);
        message.tool_result =
            Some(ToolResult { tool_call_id: call.into(), output: json!("ok"), truncated: false, error: None });
        message
    }

    fn inside(id: &str, call: &str) -> Message {
        let mut message = message(id);
        message.parent_tool_call_id = Some(call.into());
        message
    }

    #[test]
    fn answers_and_subagent_messages_nest_under_their_call() {
        let list = [message("a"), caller("b", "t1"), inside("c", "t1"), answer("d", "t1"), message("e")];
        let at = |i: usize| &list[i];
        let mut threads = Threads::default();
        threads.follow(2, at, &[], 0, 0);
        assert_eq!(threads.take_changes(), ThreadChanges { top_kept: Some(0), calls: vec![] });
        threads.follow(5, at, &[], 2, 2);
        assert_eq!(threads.top(), ["a", "b", "e"]);
        assert_eq!((threads.answer("t1"), threads.children("t1")), (Some("d"), &["c".to_string()][..]));
        assert_eq!(threads.take_changes(), ThreadChanges { top_kept: Some(2), calls: vec!["t1".into(), "t1".into()] });
        // A delta to the last message changes no nesting.
        threads.follow(5, at, &[4], 5, 5);
        assert_eq!(threads.take_changes(), ThreadChanges::default());
    }

    #[test]
    fn an_answer_that_came_before_its_call_moves_into_the_card() {
        let list = [answer("d", "t1"), caller("b", "t1")];
        let at = |i: usize| &list[i];
        let mut threads = Threads::default();
        threads.follow(1, at, &[], 0, 0);
        assert_eq!(threads.top(), ["d"]);
        threads.take_changes();
        threads.follow(2, at, &[], 1, 1);
        assert_eq!(threads.top(), ["b"]);
        assert_eq!(threads.take_changes().top_kept, Some(0));
    }
}
