//! Patch bodies: JSON merge patch (RFC 7386, also used for strategic merge patches and
//! server-side apply, which the simulator approximates) and JSON patch (RFC 6902).

use serde_json::Value;

/// Applies an RFC 7386 merge patch: objects merge key by key, `null` removes a key,
/// anything else (arrays included) replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let Value::Object(target_map) = target else {
        return;
    };
    for (key, value) in patch_map {
        if value.is_null() {
            target_map.remove(key);
        } else {
            merge_patch(target_map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Applies an RFC 6902 JSON patch; the error text says which operation failed.
pub(crate) fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch must be an array of operations")?;
    for (i, op) in ops.iter().enumerate() {
        apply_op(target, op).map_err(|e| format!("operation {i}: {e}"))?;
    }
    Ok(())
}

fn apply_op(doc: &mut Value, op: &Value) -> Result<(), String> {
    let name = op["op"].as_str().ok_or("missing \"op\"")?;
    let path = pointer(op, "path")?;
    match name {
        "add" => add(doc, &path, value_of(op)?),
        "remove" => remove(doc, &path).map(|_| ()),
        "replace" => {
            let slot = doc
                .pointer_mut(&to_pointer(&path))
                .ok_or_else(|| missing(&path))?;
            *slot = value_of(op)?;
            Ok(())
        }
        "move" => {
            let from = pointer(op, "from")?;
            let value = remove(doc, &from)?;
            add(doc, &path, value)
        }
        "copy" => {
            let from = pointer(op, "from")?;
            let value = doc
                .pointer(&to_pointer(&from))
                .cloned()
                .ok_or_else(|| missing(&from))?;
            add(doc, &path, value)
        }
        "test" => {
            let have = doc
                .pointer(&to_pointer(&path))
                .ok_or_else(|| missing(&path))?;
            if *have == value_of(op)? {
                Ok(())
            } else {
                Err(format!("test failed at {}", to_pointer(&path)))
            }
        }
        other => Err(format!("unknown operation {other:?}")),
    }
}

fn value_of(op: &Value) -> Result<Value, String> {
    op.get("value")
        .cloned()
        .ok_or_else(|| "missing \"value\"".to_string())
}

fn missing(path: &[String]) -> String {
    format!("path {} does not exist", to_pointer(path))
}

/// Splits a JSON pointer into unescaped reference tokens.
fn pointer(op: &Value, field: &str) -> Result<Vec<String>, String> {
    let text = op[field]
        .as_str()
        .ok_or_else(|| format!("missing \"{field}\""))?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let rest = text
        .strip_prefix('/')
        .ok_or_else(|| format!("invalid pointer {text:?}"))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn to_pointer(tokens: &[String]) -> String {
    tokens
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect()
}

fn parent<'a>(doc: &'a mut Value, path: &[String]) -> Result<(&'a mut Value, String), String> {
    let (last, init) = path.split_last().ok_or("the root cannot be the target")?;
    let parent = doc
        .pointer_mut(&to_pointer(init))
        .ok_or_else(|| missing(init))?;
    Ok((parent, last.clone()))
}

fn add(doc: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = parent(doc, path)?;
    match parent {
        Value::Object(map) => {
            map.insert(last, value);
            Ok(())
        }
        Value::Array(items) => {
            let index = if last == "-" {
                items.len()
            } else {
                last.parse::<usize>()
                    .map_err(|_| format!("invalid array index {last:?}"))?
            };
            if index > items.len() {
                return Err(format!("array index {index} out of bounds"));
            }
            items.insert(index, value);
            Ok(())
        }
        _ => Err(format!("cannot add below a scalar at {}", to_pointer(path))),
    }
}

fn remove(doc: &mut Value, path: &[String]) -> Result<Value, String> {
    let (parent, last) = parent(doc, path)?;
    match parent {
        Value::Object(map) => map.remove(&last).ok_or_else(|| missing(path)),
        Value::Array(items) => {
            let index = last
                .parse::<usize>()
                .map_err(|_| format!("invalid array index {last:?}"))?;
            if index >= items.len() {
                return Err(missing(path));
            }
            Ok(items.remove(index))
        }
        _ => Err(missing(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    }

    #[test]
    fn json_patch_ops() {
        let mut doc = json!({"spec": {"replicas": 1, "list": ["a"]}});
        json_patch(
            &mut doc,
            &json!([
                {"op": "test", "path": "/spec/replicas", "value": 1},
                {"op": "replace", "path": "/spec/replicas", "value": 3},
                {"op": "add", "path": "/spec/list/-", "value": "b"},
                {"op": "add", "path": "/metadata", "value": {"labels": {"a/b": "x"}}},
                {"op": "copy", "from": "/metadata/labels/a~1b", "path": "/spec/copied"},
                {"op": "remove", "path": "/spec/list/0"},
            ]),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"spec": {"replicas": 3, "list": ["b"], "copied": "x"}, "metadata": {"labels": {"a/b": "x"}}})
        );
        assert!(json_patch(&mut doc, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }
}
