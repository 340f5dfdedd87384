//! JSON ↔ Automerge: the value a plain HTTP client sends is applied to a document as the
//! operations that make the document equal to it ([`apply`]), and a document reads back as
//! JSON ([`view`]).
//!
//! The mapping follows Automerge's JavaScript library, so a document edited over HTTP and one
//! edited in a browser look the same: JSON objects are maps, arrays are lists, strings are
//! collaborative text (edits to them merge character by character), integral numbers are
//! integers, other numbers floats, `true`/`false` booleans, `null` null.

use automerge::transaction::Transactable;
use automerge::{AutomergeError, ObjId, ObjType, Prop, ReadDoc, ScalarValue, Value};
use serde_json::{Map, Value as Json};

/// Deepest nesting accepted (a guard against hostile input; documents are metadata).
pub const MAX_DEPTH: usize = 64;

/// Checks that `json` may be a document: an object at its root, nested at most
/// [`MAX_DEPTH`] levels, numbers Automerge can hold.
pub fn check_root(json: &Json) -> Result<(), String> {
    if !json.is_object() {
        return Err("a document is a JSON object at its root".into());
    }
    check(json, 0)
}

fn check(json: &Json, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} levels"));
    }
    match json {
        Json::Number(n) if scalar_number(n).is_none() => Err(format!("unsupported number {n}")),
        Json::Array(items) => items.iter().try_for_each(|v| check(v, depth + 1)),
        Json::Object(map) => map.values().try_for_each(|v| check(v, depth + 1)),
        _ => Ok(()),
    }
}

/// Makes the document's root equal to `json` (checked by [`check_root`]) with the fewest
/// operations this simple walk finds: keys that went are deleted, values that did not change
/// are left alone (so the same JSON again changes nothing), maps and lists are updated in
/// place, element by element, and text is spliced where it differs (`update_text`), so
/// concurrent edits elsewhere in the document — or elsewhere in the same string — survive.
///
/// Lists are matched by position: what is beyond the new length is deleted from the end, what
/// is new is inserted at the end. (Automerge's own `update_object` diffs lists too, but
/// automerge 0.12 loses elements doing so; see the test.)
pub fn apply<T: Transactable>(doc: &mut T, json: &Json) -> Result<(), AutomergeError> {
    match json {
        Json::Object(map) => update_map(doc, &automerge::ROOT, map),
        _ => Ok(()),
    }
}

fn update_map<T: Transactable>(
    doc: &mut T,
    obj: &ObjId,
    map: &Map<String, Json>,
) -> Result<(), AutomergeError> {
    let gone: Vec<String> = doc.keys(obj).filter(|k| !map.contains_key(k)).collect();
    for k in gone {
        doc.delete(obj, k.as_str())?;
    }
    for (k, v) in map {
        set(doc, obj, Slot::Put(Prop::Map(k.clone())), v)?;
    }
    Ok(())
}

fn update_list<T: Transactable>(
    doc: &mut T,
    obj: &ObjId,
    items: &[Json],
) -> Result<(), AutomergeError> {
    let len = doc.length(obj);
    for i in (items.len()..len).rev() {
        doc.delete(obj, i)?;
    }
    for (i, v) in items.iter().enumerate() {
        let slot = if i < len {
            Slot::Put(Prop::Seq(i))
        } else {
            Slot::Insert(i)
        };
        set(doc, obj, slot, v)?;
    }
    Ok(())
}

/// Where a value goes: an existing key or list position, or a new list element.
enum Slot {
    Put(Prop),
    Insert(usize),
}

fn set<T: Transactable>(
    doc: &mut T,
    obj: &ObjId,
    slot: Slot,
    v: &Json,
) -> Result<(), AutomergeError> {
    let current = match &slot {
        Slot::Put(prop) => doc.get(obj, prop.clone())?,
        Slot::Insert(_) => None,
    };
    let want = match v {
        Json::Object(_) => ObjType::Map,
        Json::Array(_) => ObjType::List,
        Json::String(_) => ObjType::Text,
        _ => {
            let value = scalar(v);
            match (current, slot) {
                (Some((Value::Scalar(cur), _)), _) if *cur == value => {}
                (_, Slot::Put(prop)) => doc.put(obj, prop, value)?,
                (_, Slot::Insert(i)) => doc.insert(obj, i, value)?,
            }
            return Ok(());
        }
    };
    let child = match (current, slot) {
        (Some((Value::Object(t), id)), _) if t == want => id,
        (_, Slot::Put(prop)) => doc.put_object(obj, prop, want)?,
        (_, Slot::Insert(i)) => doc.insert_object(obj, i, want)?,
    };
    match v {
        Json::Object(map) => update_map(doc, &child, map),
        Json::Array(items) => update_list(doc, &child, items),
        Json::String(text) => doc.update_text(&child, text),
        _ => Ok(()),
    }
}

fn scalar(v: &Json) -> ScalarValue {
    match v {
        Json::Bool(b) => ScalarValue::Boolean(*b),
        Json::Number(n) => scalar_number(n).unwrap_or(ScalarValue::Null),
        _ => ScalarValue::Null,
    }
}

fn scalar_number(n: &serde_json::Number) -> Option<ScalarValue> {
    match (n.as_i64(), n.as_u64(), n.as_f64()) {
        (Some(i), _, _) => Some(ScalarValue::Int(i)),
        (None, Some(u), _) => Some(ScalarValue::Uint(u)),
        (None, None, Some(f)) => Some(ScalarValue::F64(f)),
        _ => None,
    }
}

/// The JSON view of a document (its current state; conflicting values show the winner).
pub fn view<D: ReadDoc>(doc: &D) -> serde_json::Value {
    serde_json::to_value(automerge::AutoSerde::from(doc)).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::AutoCommit;
    use serde_json::json;

    #[test]
    fn json_round_trips_through_a_document() {
        let input = json!({
            "title": "Fractions",
            "steps": [1, 2.5, "three", {"done": true}, null],
            "meta": {"level": -3, "tags": ["a", "b"]},
        });
        check_root(&input).expect("a document");
        let mut doc = AutoCommit::new();
        apply(&mut doc, &input).expect("update");
        assert_eq!(view(&doc), input);
        // A second update only changes what differs.
        let next = json!({"title": "Fractions!", "steps": [1], "meta": {"level": -3}});
        doc.commit();
        apply(&mut doc, &next).expect("update");
        assert_eq!(view(&doc), next);
        // The same JSON again is no change at all.
        doc.commit();
        apply(&mut doc, &next).expect("update");
        assert!(doc.commit().is_none());
        // A type change in place, and a list growing again.
        let last = json!({"title": 7, "steps": [1, [2, "x"], "y"], "meta": "flat"});
        apply(&mut doc, &last).expect("update");
        assert_eq!(view(&doc), last);
    }

    #[test]
    fn a_non_object_root_or_deep_nesting_is_refused() {
        assert!(check_root(&json!([1, 2])).is_err());
        let mut deep = json!(1);
        for _ in 0..(MAX_DEPTH + 2) {
            deep = json!({ "x": deep });
        }
        assert!(check_root(&deep).is_err());
    }
}
