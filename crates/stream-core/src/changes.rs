//! What changed since the bindings last read a session, as a patch plan: the
//! entries of the message list that changed in place, and the position from
//! which it must be rebuilt. The plan is decided here, so a binding only
//! builds the JS objects it names.

use rustc_hash::FxHashMap;

use crate::client::threads::ThreadChanges;

/// Ids of messages changed (created, updated or removed) since the last patch.
#[derive(Debug, Clone, Default)]
pub struct ChangedIds {
    /// Each id, with where its text started to grow when that is all that
    /// changed (`Some(byte offset)`), or `None` when anything else did.
    ids: FxHashMap<String, Option<usize>>,
    /// Set when so much changed that every message must be rebuilt.
    everything: bool,
    /// Set when the session's name changed.
    renamed: bool,
}

impl ChangedIds {
    /// Records a change to `id`.
    pub fn mark(&mut self, id: &str) {
        self.note(id, None);
    }

    /// Records that only the text of `id` grew, from byte `from` of it.
    pub fn mark_appended(&mut self, id: &str, from: usize) {
        self.note(id, Some(from));
    }

    fn note(&mut self, id: &str, appended_from: Option<usize>) {
        if self.everything {
            return;
        }
        // Looked up first so that a streaming message costs no allocation per delta.
        match self.ids.get_mut(id) {
            // Anything but more text, or text from earlier on: the wider change stays.
            Some(change) => *change = change.zip(appended_from).map(|(earlier, from)| earlier.min(from)),
            None => {
                self.ids.insert(id.to_owned(), appended_from);
            }
        }
    }

    /// Records that the whole list was replaced.
    pub fn mark_everything(&mut self) {
        self.everything = true;
        self.ids.clear();
    }

    /// Records that the session's name changed.
    pub fn mark_renamed(&mut self) {
        self.renamed = true;
    }

    /// Whether anything changed.
    pub fn is_empty(&self) -> bool {
        !self.everything && !self.renamed && self.ids.is_empty()
    }

    /// Moves the changes out of `self` into `into`.
    pub fn drain_into(&mut self, into: &mut ChangedIds) {
        if std::mem::take(&mut self.everything) {
            into.mark_everything();
        }
        into.renamed |= std::mem::take(&mut self.renamed);
        for (id, appended_from) in self.ids.drain() {
            into.note(&id, appended_from);
        }
    }

    /// Plans the patch of a list that had `before` entries (`before_stable` of
    /// them confirmed) and now has `len`, where confirmed entries only grow
    /// at their end between snapshots and everything after them is the
    /// client's own pending sends. `position` finds a confirmed message;
    /// `deleted` says whether a missing one was removed. Leaves `self` empty.
    pub fn plan(
        &mut self,
        before: ListShape,
        now: ListShape,
        position: impl Fn(&str) -> Option<usize>,
        deleted: impl Fn(&str) -> bool,
    ) -> Patch {
        let renamed = std::mem::take(&mut self.renamed);
        // The confirmed entries both lists share; what follows them is the tail.
        let shared = before.confirmed.min(now.confirmed);
        let mut rebuild_from = if std::mem::take(&mut self.everything) {
            0
        } else if before != now {
            shared
        } else {
            now.len
        };
        let (mut updated, mut appended) = (Vec::new(), Vec::new());
        for (id, appended_from) in self.ids.drain() {
            match position(&id) {
                Some(at) if at < shared => match appended_from {
                    Some(from) => appended.push((at, from)),
                    None => updated.push(at),
                },
                // A confirmed message new since the last patch: in the tail.
                Some(_) => rebuild_from = rebuild_from.min(shared),
                None if deleted(&id) => rebuild_from = 0,
                // A pending send: the pending sends are the tail.
                None => rebuild_from = rebuild_from.min(shared),
            }
        }
        updated.retain(|&at| at < rebuild_from);
        appended.retain(|&(at, _)| at < rebuild_from);
        Patch {
            rebuild_from,
            updated,
            appended,
            len: now.len,
            ids_changed: rebuild_from < before.len.max(now.len),
            renamed,
            threads: ThreadChanges::default(),
        }
    }
}

/// The sizes of a message list: all of it, and its confirmed prefix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListShape {
    /// Confirmed messages, which come first.
    pub confirmed: usize,
    /// Every message, pending sends included.
    pub len: usize,
}

/// How a session's message list changed since the last patch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patch {
    /// Entries from here to `len` are new or moved: build them again. Entries
    /// before it are the messages they were.
    pub rebuild_from: usize,
    /// Positions before `rebuild_from` whose message changed in place, each
    /// once, in no particular order.
    pub updated: Vec<usize>,
    /// Positions before `rebuild_from` whose message only had text added,
    /// with the byte of its text where the addition starts: a binding
    /// extends the text it holds rather than building the message again.
    pub appended: Vec<(usize, usize)>,
    /// The list's length now.
    pub len: usize,
    /// Whether the list of ids may have changed (an entry added, removed or moved).
    pub ids_changed: bool,
    /// Whether the session's name changed.
    pub renamed: bool,
    /// How the nesting under tool calls changed (filled by the session engine).
    pub threads: ThreadChanges,
}

impl Patch {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.rebuild_from == self.len
            && self.updated.is_empty()
            && self.appended.is_empty()
            && !self.ids_changed
            && !self.renamed
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    const fn shape(confirmed: usize, len: usize) -> ListShape {
        ListShape { confirmed, len }
    }

    /// A list of ids `m0..` where `m{i}` is at position i.
    fn at(id: &str) -> Option<usize> {
        id.strip_prefix('m')?.parse().ok()
    }

    #[test]
    fn a_delta_updates_one_entry_in_place() {
        let mut changed = ChangedIds::default();
        changed.mark("m3");
        changed.mark("m3");
        let patch = changed.plan(shape(10, 10), shape(10, 10), at, |_| false);
        assert_eq!(patch, Patch { rebuild_from: 10, updated: vec![3], len: 10, ..Patch::default() });
        assert!(changed.is_empty());
    }

    #[test]
    fn text_added_to_a_message_is_an_append_to_its_text_and_any_other_change_wins() {
        let mut changed = ChangedIds::default();
        changed.mark_appended("m3", 10);
        changed.mark_appended("m3", 14);
        changed.mark_appended("m5", 7);
        changed.mark("m5");
        let mut patch = changed.plan(shape(10, 10), shape(10, 10), at, |_| false);
        patch.appended.sort_unstable();
        assert_eq!((patch.updated, patch.appended), (vec![5], vec![(3, 10)]));
    }

    #[test]
    fn a_new_message_is_an_append() {
        let mut changed = ChangedIds::default();
        changed.mark("m10");
        changed.mark("m9");
        let patch = changed.plan(shape(10, 10), shape(11, 11), at, |_| false);
        assert_eq!(patch, Patch { rebuild_from: 10, updated: vec![9], len: 11, ids_changed: true, ..Patch::default() });
    }

    #[test]
    fn a_confirmed_echo_rebuilds_only_the_tail() {
        // m10 confirmed the pending send "c1", which leaves the tail.
        let mut changed = ChangedIds::default();
        changed.mark("m10");
        changed.mark("c1");
        let patch = changed.plan(shape(10, 11), shape(11, 11), at, |_| false);
        assert_eq!(patch, Patch { rebuild_from: 10, updated: vec![], len: 11, ids_changed: true, ..Patch::default() });
    }

    #[test]
    fn a_removal_or_a_snapshot_rebuilds_everything() {
        let mut changed = ChangedIds::default();
        changed.mark("m4");
        changed.mark("gone");
        let patch = changed.plan(shape(10, 10), shape(9, 9), at, |id| id == "gone");
        assert_eq!((patch.rebuild_from, patch.updated, patch.ids_changed), (0, vec![], true));
        changed.mark_everything();
        changed.mark_renamed();
        let patch = changed.plan(shape(9, 9), shape(9, 9), at, |_| false);
        assert_eq!(
            patch,
            Patch { rebuild_from: 0, updated: vec![], len: 9, ids_changed: true, renamed: true, ..Patch::default() }
        );
    }

    #[test]
    fn nothing_changed_is_an_empty_patch() {
        let patch = ChangedIds::default().plan(shape(3, 4), shape(3, 4), at, |_| false);
        assert!(patch.is_empty());
    }
}
