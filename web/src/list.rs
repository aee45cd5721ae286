//! Keyed lists: a frame adds the rows that are new and drops the ones that went, and the rows
//! still shown stay as they were (no DOM work for them).
//!
//! Every list of the page is the same `<For>` over [`Row`]s, each keyed by a hash of what it
//! shows: one instantiation of Leptos's keyed diff for the whole page, where a `<For>` per item
//! type cost about 10 KB of wasm each.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use leptos::prelude::*;

use crate::socket::Part;

/// One row: its key and how to make its view.
pub struct Row {
    key: u64,
    make: Box<dyn FnOnce() -> AnyView + Send>,
}

/// A row showing `shown`, made by `make` when a row with the same `shown` was not there before.
pub fn row<T: Hash>(shown: &T, make: impl FnOnce() -> AnyView + Send + 'static) -> Row {
    let mut h = DefaultHasher::new();
    shown.hash(&mut h);
    Row {
        key: h.finish(),
        make: Box::new(make),
    }
}

/// The rows `rows` gives, kept in step with it. Equal rows (a line a consumer read twice) get
/// keys of their own.
pub fn keyed(rows: Box<dyn Fn() -> Vec<Row> + Send>) -> AnyView {
    let each = move || {
        let mut rows = rows();
        let mut seen = std::collections::HashSet::new();
        for r in &mut rows {
            while !seen.insert(r.key) {
                r.key = r.key.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
            }
        }
        rows
    };
    view! { <For each=each key=|r: &Row| r.key children=|r: Row| (r.make)()/> }.into_any()
}

/// A keyed list of the items of `items`, a row made by `make` for each item that is new.
pub fn each<T>(items: Part<Vec<T>>, make: impl Fn(T) -> AnyView + Send + Sync + 'static) -> AnyView
where
    T: Hash + Clone + PartialEq + Send + Sync + 'static,
{
    each_boxed(items, Arc::new(make))
}

/// [`each`], made once per type of item (not once per list).
fn each_boxed<T>(items: Part<Vec<T>>, make: Arc<dyn Fn(T) -> AnyView + Send + Sync>) -> AnyView
where
    T: Hash + Clone + PartialEq + Send + Sync + 'static,
{
    keyed(Box::new(move || {
        items.with(|items| {
            items
                .iter()
                .map(|item| {
                    let (shown, make) = (item.clone(), make.clone());
                    row(item, move || make(shown))
                })
                .collect()
        })
    }))
}
