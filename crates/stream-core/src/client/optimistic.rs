//! Optimistic user messages: a local send shows at once as `pending`, and the
//! server's echo replaces it, so every send ends as exactly one message.
//!
//! An echo is matched by its `client_message_id`. An echo without one (older
//! servers) matches a local message with the same content sent within
//! `echo_window_ms`, oldest first, one local message per echo, so two
//! identical prompts stay two messages.

use rustc_hash::FxHashSet;

use crate::changes::ChangedIds;
use crate::message::{Message, MessageStatus, Role};

/// The default window in which an echo without `client_message_id` may match.
pub const DEFAULT_ECHO_WINDOW_MS: u64 = 30_000;

/// What `send_local` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// A new pending message was added: POST it.
    Added,
    /// A failed message with this id is pending again: POST it again, same id.
    Retried,
    /// A message with this id is already pending or confirmed: nothing to do
    /// (a double click).
    Duplicate,
}

#[derive(Debug, Clone)]
struct LocalSend {
    message: Message,
    sent_at_ms: u64,
}

/// The local messages not yet confirmed, in send order.
#[derive(Debug, Clone)]
pub struct PendingSends {
    sends: Vec<LocalSend>,
    /// Ids of local sends that an echo without `client_message_id` confirmed:
    /// the confirmed message does not carry the id, so it is remembered here
    /// and a retry of it stays a duplicate.
    confirmed_by_content: FxHashSet<String>,
    echo_window_ms: u64,
    changed: ChangedIds,
}

impl Default for PendingSends {
    fn default() -> Self {
        Self::new(DEFAULT_ECHO_WINDOW_MS)
    }
}

impl PendingSends {
    /// No local messages; echoes without an id match within `echo_window_ms`.
    pub fn new(echo_window_ms: u64) -> Self {
        Self {
            sends: Vec::new(),
            confirmed_by_content: FxHashSet::default(),
            echo_window_ms,
            changed: ChangedIds::default(),
        }
    }

    /// The local messages, oldest first.
    pub fn messages(&self) -> impl Iterator<Item = &Message> {
        self.sends.iter().map(|send| &send.message)
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.sends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sends.is_empty()
    }

    /// The ids changed since the last drain.
    pub fn changed_mut(&mut self) -> &mut ChangedIds {
        &mut self.changed
    }

    /// Adds a pending message, or puts a failed one with the same id back to
    /// pending. The caller has checked that no confirmed message has the id.
    pub fn send(&mut self, content: &str, client_message_id: &str, now_ms: u64) -> SendOutcome {
        if self.confirmed_by_content.contains(client_message_id) {
            return SendOutcome::Duplicate;
        }
        if let Some(send) = self.find_mut(client_message_id) {
            if send.message.status != MessageStatus::Failed {
                return SendOutcome::Duplicate;
            }
            send.message.status = MessageStatus::Pending;
            send.message.error = None;
            send.sent_at_ms = now_ms;
            self.changed.mark(client_message_id);
            return SendOutcome::Retried;
        }
        let mut message = Message::new(client_message_id, Role::User, MessageStatus::Pending);
        message.content = content.to_owned();
        message.client_message_id = Some(client_message_id.to_owned());
        message.created_at = Some(now_ms);
        self.sends.push(LocalSend { message, sent_at_ms: now_ms });
        self.changed.mark(client_message_id);
        SendOutcome::Added
    }

    /// Marks a send as failed (its POST did not succeed). It stays, and can be
    /// retried with the same id. Returns whether it was found.
    pub fn mark_failed(&mut self, client_message_id: &str, error: &str) -> bool {
        let Some(send) = self.find_mut(client_message_id) else { return false };
        send.message.status = MessageStatus::Failed;
        send.message.error = Some(error.to_owned());
        self.changed.mark(client_message_id);
        true
    }

    /// Removes the local message an echoed user message confirms, if any.
    pub fn take_echo(&mut self, client_message_id: Option<&str>, content: Option<&str>, now_ms: u64) -> bool {
        let position = match client_message_id {
            Some(id) => self.sends.iter().position(|send| send.message.id == id),
            None => {
                let content = content.unwrap_or_default();
                self.sends.iter().position(|send| {
                    send.message.content == content && now_ms.saturating_sub(send.sent_at_ms) <= self.echo_window_ms
                })
            }
        };
        let Some(position) = position else { return false };
        let removed = self.sends.remove(position);
        self.changed.mark(&removed.message.id);
        if client_message_id.is_none() {
            self.confirmed_by_content.insert(removed.message.id);
        }
        true
    }

    fn find_mut(&mut self, client_message_id: &str) -> Option<&mut LocalSend> {
        self.sends.iter_mut().find(|send| send.message.id == client_message_id)
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn a_double_send_is_one_message() {
        let mut pending = PendingSends::default();
        assert_eq!(pending.send("hi", "c1", 0), SendOutcome::Added);
        assert_eq!(pending.send("hi", "c1", 5), SendOutcome::Duplicate);
        assert_eq!(pending.len(), 1);
    }

    #[test]
    fn a_failed_send_is_kept_and_retried_with_its_id() {
        let mut pending = PendingSends::default();
        pending.send("hi", "c1", 0);
        assert!(pending.mark_failed("c1", "offline"));
        let message = pending.messages().next().unwrap();
        assert_eq!((message.status, message.error.as_deref()), (MessageStatus::Failed, Some("offline")));
        assert_eq!(pending.send("hi", "c1", 10), SendOutcome::Retried);
        assert_eq!(pending.messages().next().unwrap().status, MessageStatus::Pending);
        assert!(!pending.mark_failed("nope", "x"));
    }

    #[test]
    fn an_echo_with_an_id_takes_that_message() {
        let mut pending = PendingSends::default();
        pending.send("same", "c1", 0);
        pending.send("same", "c2", 0);
        assert!(pending.take_echo(Some("c2"), Some("same"), 1));
        assert_eq!(pending.messages().map(|m| m.id.as_str()).collect::<Vec<_>>(), vec!["c1"]);
        assert!(!pending.take_echo(Some("c9"), Some("same"), 1));
    }

    #[test]
    fn echoes_without_an_id_match_by_content_oldest_first_within_the_window() {
        let mut pending = PendingSends::new(1_000);
        pending.send("same", "c1", 0);
        pending.send("same", "c2", 500);
        pending.send("other", "c3", 500);
        assert!(pending.take_echo(None, Some("same"), 900));
        assert_eq!(pending.messages().map(|m| m.id.as_str()).collect::<Vec<_>>(), vec!["c2", "c3"]);
        // c2 was sent at 500: at 1_600 it is out of the window.
        assert!(!pending.take_echo(None, Some("same"), 1_600));
        assert!(pending.take_echo(None, Some("same"), 1_500));
        assert!(!pending.take_echo(None, Some("same"), 1_500));
        // A retry of a send confirmed by content stays a duplicate.
        assert_eq!(pending.send("same", "c1", 1_600), SendOutcome::Duplicate);
    }
}
