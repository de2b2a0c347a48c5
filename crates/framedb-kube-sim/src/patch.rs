//! Patch bodies: JSON merge patch (RFC 7386) and JSON patch (RFC 6902), both applied by
//! the `json-patch` crate. Strategic merge patches are `strategic`'s, server-side apply
//! `managed`'s.

use json_patch::PatchOperation;
use serde_json::Value;

pub(crate) use json_patch::merge as merge_patch;

/// Applies an RFC 6902 JSON patch; the error text says which operation failed.
pub(crate) fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch must be an array of operations")?
        .iter()
        .enumerate()
        .map(|(i, op)| {
            serde_json::from_value::<PatchOperation>(op.clone())
                .map_err(|e| format!("operation {i}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    json_patch::patch(target, &ops).map_err(|e| e.to_string())
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

    #[test]
    fn json_patch_errors_name_the_operation_and_leave_the_document() {
        let mut doc = json!({"a": 1});
        assert_eq!(
            json_patch(&mut doc, &json!({"op": "add"})).unwrap_err(),
            "a JSON patch must be an array of operations"
        );
        let malformed = json!([{"op": "test", "path": "/a", "value": 1}, {"op": "frobnicate"}]);
        let err = json_patch(&mut doc, &malformed).unwrap_err();
        assert!(err.starts_with("operation 1: "), "{err}");
        let failing = json!([
            {"op": "replace", "path": "/a", "value": 2},
            {"op": "remove", "path": "/nope"},
        ]);
        let err = json_patch(&mut doc, &failing).unwrap_err();
        assert!(err.contains("/nope"), "{err}");
        assert_eq!(doc, json!({"a": 1}));
    }
}
