//! The JS objects of one session's messages, patched as stream-core's plan
//! says: an object is built when first read after it changed, unchanged
//! messages stay the same objects (`===`), and the id list and the message
//! array are new only when they changed. It follows the plan; it decides
//! nothing.

use js_sys::{Array, JsString, Object, Reflect};
use stream_core::{Patch, SessionEngine};
use wasm_bindgen::{JsCast, JsValue};

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

/// The JS object of one message, as far as it is still right.
#[derive(Clone, Default)]
enum Slot {
    /// Not built since the message last changed.
    #[default]
    Stale,
    /// Right, with the length in bytes of the text it holds.
    Built(JsValue, usize),
    /// Right but for text added after its first `len` bytes.
    Grown(JsValue, usize),
}

/// The cached JS side of one session's message list.
#[derive(Default)]
pub(crate) struct MessageCache {
    /// By position.
    objects: Vec<Slot>,
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
            self.objects[at] = Slot::Stale;
        }
        for &(at, _) in &patch.appended {
            // A grown object stays grown from the same text, a stale one stale.
            if let Slot::Built(object, len) = &self.objects[at] {
                self.objects[at] = Slot::Grown(object.clone(), *len);
            }
        }
        self.objects.resize(patch.len, Slot::Stale);
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
            self.list_updates.extend(patch.appended.iter().map(|&(at, _)| at));
        }
    }

    /// The object of the message at `position`.
    pub(crate) fn object_at(&mut self, engine: &SessionEngine, position: usize) -> JsValue {
        let Some(message) = engine.messages().nth(position) else { return JsValue::UNDEFINED };
        let object = match std::mem::take(&mut self.objects[position]) {
            Slot::Built(object, len) => {
                self.objects[position] = Slot::Built(object.clone(), len);
                return object;
            }
            // A copy of the old object with the added text: no walk of the message.
            Slot::Grown(base, len) => extended(&base, &message.content[len..]),
            Slot::Stale => to_js(message),
        };
        self.objects[position] = Slot::Built(object.clone(), message.content.len());
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
        let stale: Vec<usize> = (0..self.objects.len()).filter(|&at| matches!(self.objects[at], Slot::Stale)).collect();
        if !stale.is_empty() {
            let messages: Vec<_> = engine.messages().collect();
            let wanted: Vec<_> = stale.iter().map(|&at| messages[at]).collect();
            let objects: Array = to_js(&wanted).into();
            for (index, &at) in stale.iter().enumerate() {
                self.objects[at] = Slot::Built(objects.get(index as u32), messages[at].content.len());
            }
        }
        (0..self.objects.len()).map(|at| self.object_at(engine, at)).collect()
    }
}

/// A new object with `base`'s fields and `added` after its `content`.
fn extended(base: &JsValue, added: &str) -> JsValue {
    let object = Object::assign(&Object::new(), base.unchecked_ref());
    let key = JsValue::from_str("content");
    let text = Reflect::get(base, &key).ok().and_then(|text| text.dyn_into::<JsString>().ok()).unwrap_or_default();
    // Setting a field of a plain object fails only on a frozen one, which this is not.
    let _ = Reflect::set(&object, &key, &text.concat(&JsValue::from_str(added)));
    object.into()
}
