//! [`Part`]: one part of the dashboard as a view reads it, redrawn only when it changed.

use cashflow_shared::dashboard::Dashboard;
use leptos::prelude::*;

/// A part of the dashboard that a view shows, taken by [`Ctx::select`](super::Ctx::select).
///
/// Its value is kept beside a memo that only counts its changes: every part is then the same
/// `Memo<u64>` to the reactive system, not a memo type of its own (a `Memo<T>` per type was
/// 60 KB of the page's wasm), and a reader still runs again only when the value changed.
pub struct Part<T: 'static> {
    changes: Memo<u64>,
    value: StoredValue<T>,
}

/// A memo counting the times `update` said the dashboard changed its part, run when `trigger`
/// fires. Not generic: one memo closure for every part.
fn change_count(
    dash: StoredValue<Dashboard>,
    trigger: RwSignal<u64>,
    update: Box<dyn Fn(&Dashboard) -> bool + Send + Sync>,
) -> Memo<u64> {
    Memo::new(move |n: Option<&u64>| {
        trigger.track();
        let n = n.copied().unwrap_or(0);
        if dash.with_value(|d| update(d)) {
            n + 1
        } else {
            n
        }
    })
}

impl<T> Clone for Part<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Part<T> {}

impl<T: PartialEq + Send + Sync + 'static> Part<T> {
    pub(super) fn new(
        dash: StoredValue<Dashboard>,
        trigger: RwSignal<u64>,
        // Boxed: `new` is made once per type of part, not once per place that takes one.
        part: Box<dyn Fn(&Dashboard) -> T + Send + Sync>,
    ) -> Part<T> {
        let value = StoredValue::new(dash.with_value(&part));
        let update = move |d: &Dashboard| {
            let new = part(d);
            let changed = value.with_value(|v| *v != new);
            if changed {
                value.set_value(new);
            }
            changed
        };
        Part {
            changes: change_count(dash, trigger, Box::new(update)),
            value,
        }
    }

    /// Reads the part (and runs the reader again when it changes).
    pub fn with<U>(&self, f: impl FnOnce(&T) -> U) -> U {
        // `get`, not `track`: it brings the memo (and so `value`) up to date first, where a
        // reader run for another reason would otherwise read the part of a frame before.
        self.changes.get();
        self.value.with_value(f)
    }
}

impl<T: Clone + PartialEq + Send + Sync + 'static> Part<T> {
    pub fn get(&self) -> T {
        self.with(T::clone)
    }
}
