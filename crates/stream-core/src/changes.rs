//! What changed since the last drain: the message ids, which the JS patch API
//! uses to rebuild only the messages that changed, and whether the name did.

use rustc_hash::FxHashSet;

/// Ids of messages changed (created, updated or removed) since the last drain.
#[derive(Debug, Clone, Default)]
pub struct ChangedIds {
    ids: FxHashSet<String>,
    /// Set when so much changed that every message must be rebuilt.
    everything: bool,
    /// Set when the session's name changed.
    renamed: bool,
}

impl ChangedIds {
    /// Records a change to `id`.
    pub fn mark(&mut self, id: &str) {
        // Checked first so that a streaming message costs no allocation per delta.
        if !self.everything && !self.ids.contains(id) {
            self.ids.insert(id.to_owned());
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
        for id in self.ids.drain() {
            if !into.everything {
                into.ids.insert(id);
            }
        }
    }

    /// The changes, leaving `self` empty. Ids come in no particular order.
    pub fn take(&mut self) -> Changes {
        Changes {
            everything: std::mem::take(&mut self.everything),
            renamed: std::mem::take(&mut self.renamed),
            ids: self.ids.drain().collect(),
        }
    }
}

/// Drained changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// When true, treat every message as changed (`ids` is then empty).
    pub everything: bool,
    /// When true, the session's name changed.
    pub renamed: bool,
    /// The ids that changed, each once, in no particular order.
    pub ids: Vec<String>,
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn drains_unique_ids_once() {
        let mut changed = ChangedIds::default();
        changed.mark("b");
        changed.mark("a");
        changed.mark("b");
        let mut other = ChangedIds::default();
        other.mark("a");
        let mut out = ChangedIds::default();
        changed.drain_into(&mut out);
        other.drain_into(&mut out);
        let mut ids = out.take().ids;
        ids.sort();
        assert_eq!(ids, vec!["a".to_string(), "b".to_string()]);
        assert!(changed.is_empty() && out.is_empty());
    }

    #[test]
    fn everything_absorbs_single_ids() {
        let mut changed = ChangedIds::default();
        changed.mark_everything();
        changed.mark("a");
        let mut out = ChangedIds::default();
        out.mark("b");
        changed.drain_into(&mut out);
        assert_eq!(out.take(), Changes { everything: true, renamed: false, ids: vec![] });
    }
}
