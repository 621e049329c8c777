//! The JS objects of one session's messages, patched as stream-core's plan
//! says: an object is built when first read after it changed, unchanged
//! messages stay the same objects (`===`), and the id list and the message
//! array are new only when they changed. It follows the plan; it decides
//! nothing.

use js_sys::Array;
use stream_core::{Patch, SessionEngine};
use wasm_bindgen::JsValue;

use crate::convert::to_js;

/// A JS array of ids, the same while unchanged, and extended by native
/// copies when only its end changed.
#[derive(Default)]
struct IdArray {
    array: Option<Array>,
    /// Entries of `array` still in place, when some changed.
    kept: Option<usize>,
}

impl IdArray {
    /// Only the first `kept` entries are still right.
    fn keep(&mut self, kept: usize) {
        self.kept = Some(self.kept.unwrap_or(usize::MAX).min(kept));
    }

    /// The array for `ids` (all of them, in order).
    fn get<'a>(&mut self, ids: impl Iterator<Item = &'a str>) -> Array {
        let kept = match (self.kept.take(), &self.array) {
            (None, Some(array)) => return array.clone(),
            (Some(kept), Some(_)) => kept,
            (_, None) => 0,
        };
        let added: Vec<&str> = ids.skip(kept).collect();
        let added: Array = to_js(&added).into();
        let array = match &self.array {
            Some(last) if kept > 0 => last.slice(0, kept as u32).concat(&added),
            _ => added,
        };
        self.array = Some(array.clone());
        array
    }
}

/// The cached JS side of one session's message list.
#[derive(Default)]
pub(crate) struct MessageCache {
    /// By position; `None` until read since the message last changed.
    objects: Vec<Option<JsValue>>,
    /// The ids, in order.
    ids: IdArray,
    /// The ids of the messages shown at the top level, in order.
    top: IdArray,
    /// The messages, in order, while unchanged.
    list: Option<Array>,
    /// Positions changed since `list` was built, when it can be patched.
    list_updates: Vec<usize>,
}

impl MessageCache {
    /// Follows a patch plan.
    pub(crate) fn apply(&mut self, patch: &Patch) {
        if patch.is_empty() {
            return;
        }
        self.objects.truncate(patch.rebuild_from);
        for &at in &patch.updated {
            self.objects[at] = None;
        }
        self.objects.resize(patch.len, None);
        if patch.ids_changed {
            // The entries before `rebuild_from` are the same messages.
            self.ids.keep(patch.rebuild_from);
        }
        if let Some(kept) = patch.threads.top_kept {
            self.top.keep(kept);
        }
        if patch.rebuild_from < patch.len || patch.ids_changed {
            self.list = None;
            self.list_updates.clear();
        } else if self.list.is_some() {
            self.list_updates.extend_from_slice(&patch.updated);
        }
    }

    /// The object of the message at `position`.
    pub(crate) fn object_at(&mut self, engine: &SessionEngine, position: usize) -> JsValue {
        let slot = &mut self.objects[position];
        if let Some(object) = slot {
            return object.clone();
        }
        let object = engine.messages().nth(position).map_or(JsValue::UNDEFINED, to_js);
        *slot = Some(object.clone());
        object
    }

    /// The object of the message `id`, or undefined.
    pub(crate) fn message(&mut self, engine: &SessionEngine, id: &str) -> JsValue {
        match engine.position_of(id) {
            Some(position) => self.object_at(engine, position),
            None => JsValue::UNDEFINED,
        }
    }

    /// The ids in order; the same array while no message came, went or moved.
    pub(crate) fn ids(&mut self, engine: &SessionEngine) -> Array {
        self.ids.get(engine.messages().map(|message| message.id.as_str()))
    }

    /// The ids of the messages shown at the top level (not inside a tool
    /// call's card); the same array while they are the same.
    pub(crate) fn top(&mut self, engine: &SessionEngine) -> Array {
        self.top.get(engine.threads().top().iter().map(String::as_str))
    }

    /// Every message; the same array while nothing changed.
    pub(crate) fn list(&mut self, engine: &SessionEngine) -> Array {
        if let Some(list) = &self.list
            && self.list_updates.is_empty()
        {
            return list.clone();
        }
        let list = match self.list.take() {
            // Changes in place: a copy with those entries replaced.
            Some(last) => {
                let list = last.slice(0, last.length());
                for at in std::mem::take(&mut self.list_updates) {
                    list.set(at as u32, self.object_at(engine, at));
                }
                list
            }
            None => self.built(engine),
        };
        self.list = Some(list.clone());
        list
    }

    /// The whole array; the messages with no object yet built in one crossing.
    fn built(&mut self, engine: &SessionEngine) -> Array {
        let missing: Vec<usize> = (0..self.objects.len()).filter(|&at| self.objects[at].is_none()).collect();
        if !missing.is_empty() {
            let messages: Vec<_> = engine.messages().collect();
            let wanted: Vec<_> = missing.iter().map(|&at| messages[at]).collect();
            let objects: Array = to_js(&wanted).into();
            for (index, &at) in missing.iter().enumerate() {
                self.objects[at] = Some(objects.get(index as u32));
            }
        }
        self.objects.iter().map(|object| object.clone().unwrap_or(JsValue::UNDEFINED)).collect()
    }
}
