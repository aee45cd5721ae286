//! JSON merge patches (RFC 7386): a delta frame carries only the fields of a part that changed
//! (the counters, the broker's view, the group), not the whole part every time.
//!
//! A patch is an object of the changed fields, nested objects patched in turn; anything else
//! (numbers, strings, arrays) is sent whole when it differs, and `null` removes a field. Our
//! wire types read a missing optional field as `None`, so a field that turns `None` arrives as
//! one. [`diff`] and [`merge`] are exact inverses for such values (property-tested below).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The merge patch that turns `old` into `new`; `None` when they are equal.
pub fn diff(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = Map::new();
            for (k, nv) in n {
                let change = match o.get(k) {
                    Some(ov) => diff(ov, nv),
                    // Absent and null are the same to the reader.
                    None => (!nv.is_null()).then(|| nv.clone()),
                };
                if let Some(c) = change {
                    patch.insert(k.clone(), c);
                }
            }
            for (k, ov) in o {
                if !n.contains_key(k) && !ov.is_null() {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        _ if old == new => None,
        _ => Some(new.clone()),
    }
}

/// Applies `patch` to `target` (RFC 7386's MergePatch).
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// [`diff`] of two values of a wire type, its lists of objects patched item by item (see
/// [`indexed`]): one member's count changing sends that count, not the list of members.
pub fn diff_of<T: Serialize>(old: &T, new: &T) -> Option<Value> {
    diff(
        &indexed(serde_json::to_value(old).ok()?),
        &indexed(serde_json::to_value(new).ok()?),
    )
}

/// Applies a patch made by [`diff_of`] to `value`; on a patch that does not fit the type,
/// `value` stays as it was and the error says why.
pub fn apply<T: Serialize + DeserializeOwned>(
    value: &mut T,
    patch: &Value,
) -> Result<(), serde_json::Error> {
    // Through text, not `to_value`/`from_value`: the page reads every wire type from text
    // already, and a reader of each from `Value` as well would double that code in its wasm.
    let mut v = indexed(serde_json::from_str(&serde_json::to_string(&*value)?)?);
    merge(&mut v, patch);
    *value = serde_json::from_str(&unindexed(v).to_string())?;
    Ok(())
}

/// Marks an item's index among the keys of an [`indexed`] list.
const ITEM: char = '#';

/// A list of objects as an object keyed `#0`, `#1`, … (recursively), so a merge patch can
/// reach into its items; other lists stay lists (sent whole when they change).
pub fn indexed(v: Value) -> Value {
    match v {
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            Value::Object(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| (format!("{ITEM}{i}"), indexed(item)))
                    .collect(),
            )
        }
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, indexed(v))).collect()),
        other => other,
    }
}

/// The inverse of [`indexed`]: an object whose keys are all `#N` is a list again, in order.
pub fn unindexed(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let index = |k: &str| k.strip_prefix(ITEM).and_then(|n| n.parse::<usize>().ok());
            if !m.is_empty() && m.keys().all(|k| index(k).is_some()) {
                let mut items: Vec<(usize, Value)> = m
                    .into_iter()
                    .map(|(k, v)| (index(&k).unwrap_or(usize::MAX), unindexed(v)))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(m.into_iter().map(|(k, v)| (k, unindexed(v))).collect())
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn only_the_changed_fields_travel() {
        let old = json!({"a": 1, "b": {"c": 2, "d": [1, 2]}, "e": "x", "f": 5});
        let new = json!({"a": 1, "b": {"c": 3, "d": [1, 2]}, "e": null, "g": 7});
        let p = diff(&old, &new).unwrap();
        assert_eq!(p, json!({"b": {"c": 3}, "e": null, "f": null, "g": 7}));
        let mut t = old.clone();
        merge(&mut t, &p);
        assert_eq!(t, json!({"a": 1, "b": {"c": 3, "d": [1, 2]}, "g": 7}));
        assert_eq!(diff(&new, &new), None);
        // Arrays go whole.
        assert_eq!(
            diff(&json!({"d": [1, 2]}), &json!({"d": [1, 3]})),
            Some(json!({"d": [1, 3]}))
        );
    }

    #[test]
    fn typed_values_round_trip_through_a_patch() {
        use crate::protocol::Counters;
        let old = Counters::default();
        let mut new = old;
        new.sent = 12;
        new.latency.p50_ms = Some(4);
        new.ordering.worst = Some((3, 2));
        let p = diff_of(&old, &new).unwrap();
        assert!(p.to_string().len() < 80, "{p}");
        let mut got = old;
        apply(&mut got, &p).unwrap();
        assert_eq!(got, new);
        // And back to None.
        apply(&mut got, &diff_of(&new, &old).unwrap()).unwrap();
        assert_eq!(got, old);
        // A patch of the wrong shape is refused and changes nothing.
        assert!(apply(&mut got, &json!({"sent": "many"})).is_err());
        assert_eq!(got, old);
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z]{0,3}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[a-d]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Nulls inside objects mean "absent" to a merge patch.
    fn without_null_fields(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), without_null_fields(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    proptest! {
        #[test]
        fn merging_the_diff_gives_the_new_value(old in value(), new in value()) {
            let mut t = old.clone();
            if let Some(p) = diff(&old, &new) {
                merge(&mut t, &p);
            }
            prop_assert_eq!(without_null_fields(&t), without_null_fields(&new));
        }

        /// Lists of objects patched item by item: added, removed, changed items.
        #[test]
        fn indexed_lists_round_trip(old in lists(), new in lists()) {
            let mut t = indexed(old.clone());
            if let Some(p) = diff(&indexed(old), &indexed(new.clone())) {
                merge(&mut t, &p);
            }
            prop_assert_eq!(without_null_fields(&unindexed(t)), without_null_fields(&new));
        }
    }

    /// An object holding lists of objects (members, partitions) and of numbers.
    fn lists() -> impl Strategy<Value = Value> {
        let item = prop::collection::btree_map("[a-c]", any::<u8>(), 0..3)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k, json!(v))).collect()));
        (
            prop::collection::vec(item, 0..4),
            prop::collection::vec(any::<u8>(), 0..3),
        )
            .prop_map(|(objects, numbers)| json!({"objects": objects, "numbers": numbers}))
    }

    #[test]
    fn one_items_change_travels_alone() {
        let old = json!({"members": [{"member": 1, "records": 5}, {"member": 2, "records": 9}]});
        let new = json!({"members": [{"member": 1, "records": 5}, {"member": 2, "records": 10}]});
        let p = diff(&indexed(old.clone()), &indexed(new.clone())).unwrap();
        assert_eq!(p, json!({"members": {"#1": {"records": 10}}}));
        let mut t = indexed(old);
        merge(&mut t, &p);
        assert_eq!(unindexed(t), new);
    }
}
