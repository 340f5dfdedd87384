//! JSON ↔ Automerge: the value a plain HTTP client sends becomes the Automerge value tree that
//! `update_object` diffs the document against, and a document reads back as JSON.
//!
//! The mapping follows Automerge's JavaScript library, so a document edited over HTTP and one
//! edited in a browser look the same: JSON objects are maps, arrays are lists, strings are
//! collaborative text (edits to them merge character by character), integral numbers are
//! integers, other numbers floats, `true`/`false` booleans, `null` null.

use automerge::hydrate::{self, Value};
use automerge::{ReadDoc, ScalarValue, TextEncoding};
use std::collections::HashMap;

/// Deepest nesting accepted (a guard against hostile input; documents are metadata).
pub const MAX_DEPTH: usize = 64;

/// The Automerge value of a JSON document root, which must be an object.
pub fn root_value(json: &serde_json::Value) -> Result<Value, String> {
    if !json.is_object() {
        return Err("a document is a JSON object at its root".into());
    }
    value(json, 0)
}

fn value(json: &serde_json::Value, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} levels"));
    }
    Ok(match json {
        serde_json::Value::Null => Value::scalar(ScalarValue::Null),
        serde_json::Value::Bool(b) => Value::scalar(ScalarValue::Boolean(*b)),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::scalar(ScalarValue::Int(i)),
            (None, Some(u), _) => Value::scalar(ScalarValue::Uint(u)),
            (None, None, Some(f)) => Value::scalar(ScalarValue::F64(f)),
            _ => return Err(format!("unsupported number {n}")),
        },
        serde_json::Value::String(s) => {
            Value::Text(hydrate::Text::new(TextEncoding::platform_default(), s))
        }
        serde_json::Value::Array(items) => {
            let items = items
                .iter()
                .map(|v| value(v, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            Value::from(items)
        }
        serde_json::Value::Object(map) => {
            let mut out: HashMap<String, Value> = HashMap::with_capacity(map.len());
            for (k, v) in map {
                out.insert(k.clone(), value(v, depth + 1)?);
            }
            Value::from(hydrate::Map::from(out))
        }
    })
}

/// The JSON view of a document (its current state; conflicting values show the winner).
pub fn view<D: ReadDoc>(doc: &D) -> serde_json::Value {
    serde_json::to_value(automerge::AutoSerde::from(doc)).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT};
    use serde_json::json;

    #[test]
    fn json_round_trips_through_a_document() {
        let input = json!({
            "title": "Fractions",
            "steps": [1, 2.5, "three", {"done": true}, null],
            "meta": {"level": -3, "tags": ["a", "b"]},
        });
        let mut doc = AutoCommit::new();
        doc.update_object(&ROOT, &root_value(&input).expect("value"))
            .expect("update");
        assert_eq!(view(&doc), input);
        // A second update only changes what differs.
        let next = json!({"title": "Fractions!", "steps": [1], "meta": {"level": -3}});
        doc.commit();
        doc.update_object(&ROOT, &root_value(&next).expect("value"))
            .expect("update");
        assert_eq!(view(&doc), next);
    }

    #[test]
    fn a_non_object_root_or_deep_nesting_is_refused() {
        assert!(root_value(&json!([1, 2])).is_err());
        let mut deep = json!(1);
        for _ in 0..(MAX_DEPTH + 2) {
            deep = json!({ "x": deep });
        }
        assert!(root_value(&deep).is_err());
    }
}
