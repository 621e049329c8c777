//! How a session's messages nest, for a client that shows tool calls as
//! cards: the tool message answering each call, the messages a subagent
//! wrote inside its call, and the messages shown at the top level (all the
//! others). Kept up to date from each patch, so a streaming delta costs no
//! walk of the list.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::message::Message;

/// Where a message nests, when it does: as a call's answer or inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    Answer(String),
    Inside(String),
}

/// Messages filed under calls, each list in list order: `(position, id)`.
type Filed = FxHashMap<String, Vec<(usize, String)>>;

/// The nesting of one session's messages.
#[derive(Debug, Clone, Default)]
pub struct Threads {
    /// The ids of the calls the messages made.
    calls_made: FxHashSet<String>,
    /// Call id → the tool messages answering it (the last one is its answer).
    answers: Filed,
    /// Call id → the messages written inside it (a subagent's).
    children: Filed,
    /// Where each filed message is.
    places: FxHashMap<String, Place>,
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

    /// The tool message answering a call (the last one, if several do).
    pub fn answer(&self, call_id: &str) -> Option<&str> {
        self.answers.get(call_id).and_then(|answers| answers.last()).map(|(_, id)| id.as_str())
    }

    /// The messages written inside a call (a subagent's), in order.
    pub fn children(&self, call_id: &str) -> Vec<&str> {
        self.children
            .get(call_id)
            .map_or_else(Vec::new, |children| children.iter().map(|(_, id)| id.as_str()).collect())
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
            self.calls_made.clear();
            self.answers.clear();
            self.children.clear();
            self.places.clear();
        }
        // In list order, so that messages are filed under a call in order.
        let mut changed = changed.to_vec();
        changed.sort_unstable();
        let touched = changed.into_iter().chain(rebuild_from..len);
        let mut nesting_may_change = rebuild_from < before_len;
        for position in touched.clone() {
            for call in &at(position).tool_calls {
                // A message filed under the new call leaves the top level.
                if self.calls_made.insert(call.id.clone())
                    && (self.answers.contains_key(&call.id) || self.children.contains_key(&call.id))
                {
                    nesting_may_change = true;
                }
            }
        }
        for position in touched {
            let message = at(position);
            let place = match (&message.tool_result, &message.parent_tool_call_id) {
                (Some(result), _) => Some(Place::Answer(result.tool_call_id.clone())),
                (None, Some(parent)) => Some(Place::Inside(parent.clone())),
                (None, None) => None,
            };
            if self.places.get(&message.id) == place.as_ref() {
                continue;
            }
            if let Some(before) = self.places.remove(&message.id) {
                self.unfile(&before, &message.id);
            }
            if let Some(place) = place {
                self.file(&place, position, &message.id);
                self.places.insert(message.id.clone(), place);
            }
            // A message listed already may move into a card, or out of one.
            nesting_may_change |= position < rebuild_from;
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

    /// Files a message under its call, in list order.
    fn file(&mut self, place: &Place, position: usize, id: &str) {
        let (filed, call) = self.filed(place);
        let list = filed.entry(call.clone()).or_default();
        let at = list.partition_point(|&(before, _)| before < position);
        list.insert(at, (position, id.to_owned()));
        self.calls.push(call);
    }

    /// Takes a message out of the call it was filed under.
    fn unfile(&mut self, place: &Place, id: &str) {
        let (filed, call) = self.filed(place);
        if let Some(list) = filed.get_mut(&call) {
            list.retain(|(_, filed_id)| filed_id != id);
            if list.is_empty() {
                filed.remove(&call);
            }
        }
        self.calls.push(call);
    }

    fn filed(&mut self, place: &Place) -> (&mut Filed, String) {
        match place {
            Place::Answer(call) => (&mut self.answers, call.clone()),
            Place::Inside(call) => (&mut self.children, call.clone()),
        }
    }

    /// Whether a message shows inside a call's card rather than at the top level.
    fn is_nested(&self, message: &Message) -> bool {
        match (&message.tool_result, &message.parent_tool_call_id) {
            (Some(result), _) if self.calls_made.contains(&result.tool_call_id) => true,
            (_, Some(parent)) => self.calls_made.contains(parent),
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
        assert_eq!((threads.answer("t1"), threads.children("t1")), (Some("d"), vec!["c"]));
        assert_eq!(threads.take_changes().top_kept, Some(2));
        // A delta to the last message changes no nesting.
        threads.follow(5, at, &[4], 5, 5);
        assert_eq!(threads.take_changes(), ThreadChanges::default());
    }

    #[test]
    fn messages_filed_under_a_call_keep_list_order_and_follow_a_new_parent() {
        let mut list = [message("m5"), inside("m6", "t1")];
        let mut threads = Threads::default();
        threads.follow(2, |i| &list[i], &[], 0, 0);
        // m5 learns its parent after m6 was filed: it goes first, as in the list.
        list[0] = inside("m5", "t1");
        threads.follow(2, |i| &list[i], &[0], 2, 2);
        assert_eq!(threads.children("t1"), vec!["m5", "m6"]);
        list[1] = inside("m6", "t2");
        threads.follow(2, |i| &list[i], &[1], 2, 2);
        assert_eq!((threads.children("t1"), threads.children("t2")), (vec!["m5"], vec!["m6"]));
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
