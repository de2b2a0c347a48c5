//! Patch bodies: JSON merge patch (RFC 7386) and JSON patch (RFC 6902), both applied by
//! the `json-patch` crate, and Kubernetes' strategic merge patch (what `kubectl apply`,
//! `edit`, `label` and `drain` send): a merge patch whose lists of objects merge by their
//! `patchMergeKey` and which carries directives (`$patch`, `$setElementOrder/...`,
//! `$retainKeys`, `$deleteFromPrimitiveList/...`).

use json_patch::PatchOperation;
use serde_json::{Map, Value};

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

/// The `patchMergeKey` of the list at `names` (field names from the root), for the
/// lists the Kubernetes types merge (`patchStrategy:"merge"`); `None`: the list is
/// replaced whole, but for lists of scalars that merge as sets (`finalizers`).
fn merge_key(names: &[String]) -> Option<&'static str> {
    let last = names.last().map(String::as_str).unwrap_or_default();
    let parent = names.len().checked_sub(2).map_or("", |i| names[i].as_str());
    Some(match (parent, last) {
        (_, "containers" | "initContainers" | "ephemeralContainers") => "name",
        ("containers" | "initContainers" | "ephemeralContainers", "ports") => "containerPort",
        ("spec", "ports") => "port",
        (_, "env" | "volumes" | "imagePullSecrets" | "resourceClaims") => "name",
        (_, "volumeMounts") => "mountPath",
        (_, "volumeDevices") => "devicePath",
        (_, "hostAliases") => "ip",
        (_, "topologySpreadConstraints") => "topologyKey",
        (_, "conditions" | "addresses") => "type",
        ("metadata", "ownerReferences") => "uid",
        _ => return None,
    })
}

/// Lists of scalars that a strategic merge patch unites rather than replaces.
fn merges_as_set(names: &[String]) -> bool {
    matches!(names, [.., parent, last] if parent == "metadata" && last == "finalizers")
}

/// Applies a strategic merge patch to `target`.
///
/// # Errors
///
/// A sentence for a patch that is not an object, or an unknown `$patch` directive.
pub(crate) fn strategic_merge_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    if !patch.is_object() {
        return Err("a strategic merge patch must be a JSON object".into());
    }
    merge_object(target, patch, &mut Vec::new())
}

fn merge_object(target: &mut Value, patch: &Value, names: &mut Vec<String>) -> Result<(), String> {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return Ok(());
    };
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replaced = patch.clone();
            replaced.remove("$patch");
            *target = Value::Object(replaced);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(format!("unknown patch type: {other:?}")),
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let fields = target.as_object_mut().expect("made an object");
    for (key, value) in patch {
        if key == "$patch" || key == "$retainKeys" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Some(gone)) =
                (fields.get_mut(field), value.as_array())
            {
                items.retain(|item| !gone.contains(item));
            }
            continue;
        }
        if value.is_null() {
            fields.remove(key);
            continue;
        }
        names.push(key.clone());
        let slot = fields.entry(key.clone()).or_insert(Value::Null);
        match value {
            Value::Object(_) => {
                merge_object(slot, value, names)?;
                if slot.is_null() {
                    fields.remove(key);
                }
            }
            Value::Array(items) => merge_list(slot, items, names)?,
            _ => *slot = value.clone(),
        }
        names.pop();
    }
    for (key, order) in patch
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("$setElementOrder/")?, v)))
    {
        names.push(key.to_string());
        if let (Some(Value::Array(items)), Some(order)) = (fields.get_mut(key), order.as_array()) {
            reorder(items, order, merge_key(names));
        }
        names.pop();
    }
    if let Some(keep) = patch.get("$retainKeys").and_then(Value::as_array) {
        fields.retain(|k, _| keep.iter().any(|kept| kept == k));
    }
    Ok(())
}

fn merge_list(target: &mut Value, items: &[Value], names: &mut Vec<String>) -> Result<(), String> {
    let replace = items
        .iter()
        .any(|item| item.get("$patch").and_then(Value::as_str) == Some("replace"));
    let Some(key) = merge_key(names).filter(|_| !replace) else {
        if merges_as_set(names) && !replace {
            let mut united = target.as_array().cloned().unwrap_or_default();
            for item in items {
                if !united.contains(item) {
                    united.push(item.clone());
                }
            }
            *target = Value::Array(united);
            return Ok(());
        }
        let kept = items
            .iter()
            .filter(|item| item.get("$patch").is_none())
            .cloned()
            .collect();
        *target = Value::Array(kept);
        return Ok(());
    };
    if !target.is_array() {
        *target = Value::Array(Vec::new());
    }
    let list = target.as_array_mut().expect("made an array");
    for item in items {
        let id = item.get(key);
        let at = list
            .iter()
            .position(|have| id.is_some() && have.get(key) == id);
        match (item.get("$patch").and_then(Value::as_str), at) {
            (Some("delete"), Some(i)) => {
                list.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => merge_object(&mut list[i], item, names)?,
            (_, None) => {
                let mut added = Value::Null;
                merge_object(&mut added, item, names)?;
                list.push(added);
            }
        }
    }
    Ok(())
}

/// `$setElementOrder`: the elements it names first, in its order, then the others.
fn reorder(items: &mut [Value], order: &[Value], key: Option<&str>) {
    let position = |item: &Value| {
        order.iter().position(|o| match key {
            Some(key) => o.get(key).is_some() && o.get(key) == item.get(key),
            None => o == item,
        })
    };
    items.sort_by_key(|item| position(item).unwrap_or(usize::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_patches_merge_lists_by_key_and_obey_directives() {
        let mut deployment = json!({
            "metadata": { "labels": { "a": "1", "b": "2" }, "finalizers": ["x"] },
            "spec": { "template": { "spec": { "containers": [
                { "name": "web", "image": "nginx:1", "ports": [{ "containerPort": 80 }] },
                { "name": "log", "image": "busybox" },
            ] } } },
        });
        // What `kubectl apply` sends to change one container's image.
        let patch = json!({
            "metadata": { "labels": { "b": null }, "finalizers": ["y"] },
            "spec": { "template": { "spec": {
                "$setElementOrder/containers": [{ "name": "log" }, { "name": "web" }],
                "containers": [{ "name": "web", "image": "nginx:2" }],
            } } },
        });
        strategic_merge_patch(&mut deployment, &patch).unwrap();
        let containers = &deployment["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["name"], "log");
        assert_eq!(containers[1]["image"], "nginx:2");
        assert_eq!(
            containers[1]["ports"][0]["containerPort"], 80,
            "the rest of the element stays"
        );
        assert!(
            deployment["spec"]["template"]["spec"]
                .get("$setElementOrder/containers")
                .is_none()
        );
        assert_eq!(deployment["metadata"]["labels"], json!({ "a": "1" }));
        assert_eq!(deployment["metadata"]["finalizers"], json!(["x", "y"]));

        let delete = json!({ "spec": { "template": { "spec": {
            "containers": [{ "name": "log", "$patch": "delete" }],
        } } }, "metadata": { "$deleteFromPrimitiveList/finalizers": ["x"] } });
        strategic_merge_patch(&mut deployment, &delete).unwrap();
        assert_eq!(
            deployment["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(deployment["metadata"]["finalizers"], json!(["y"]));
        let bad = strategic_merge_patch(&mut deployment, &json!({ "$patch": "explode" }));
        assert!(bad.unwrap_err().contains("explode"));
    }

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
