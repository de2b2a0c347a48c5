//! Strategic merge patches (`application/strategic-merge-patch+json`, what `kubectl
//! patch` sends by default, and `kubectl cordon`, `label` and client-side `apply`), as
//! staging/src/k8s.io/apimachinery/pkg/util/strategicpatch applies them: a JSON merge
//! patch, except that the lists the built-in types mark `patchStrategy: merge` are
//! merged by their `patchMergeKey` (a node's or pod's `conditions` by `type`, containers
//! and volumes by `name`, ...) or, for lists of strings (`finalizers`), as sets; and the
//! `$patch`, `$retainKeys`, `$deleteFromPrimitiveList/` and `$setElementOrder/`
//! directives. The merge keys are looked up by field name, which the modelled types
//! never use for two lists of different keys (but `ports`, told apart by their items).

use serde_json::{Map, Value};

/// The merge key of a list field marked `patchStrategy: merge`, by its name; `Some("")`
/// for a list of primitives merged as a set.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    Some(match field {
        "conditions" | "addresses" => "type",
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "finalizers" => "",
        // A container's ports merge by `containerPort`, a Service's by `port`.
        "ports" if items.iter().any(|p| p.get("containerPort").is_some()) => "containerPort",
        "ports" => "port",
        _ => return None,
    })
}

/// Applies strategic merge patch `patch` to `target`.
pub(crate) fn strategic_merge(target: &mut Value, patch: &Value) {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = Value::Object(without_directives(patch));
            return;
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return;
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let map = target.as_object_mut().expect("just made an object");
    if let Some(keep) = patch.get("$retainKeys").and_then(Value::as_array) {
        map.retain(|k, _| keep.iter().any(|kept| kept == k) || patch.contains_key(k));
    }
    for (field, value) in patch {
        if let Some(list) = field.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(current), Some(gone)) = (
                map.get_mut(list).and_then(Value::as_array_mut),
                value.as_array(),
            ) {
                current.retain(|v| !gone.contains(v));
            }
            continue;
        }
        if field.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                map.remove(field);
            }
            Value::Object(_) => {
                strategic_merge(map.entry(field.clone()).or_insert(Value::Null), value)
            }
            Value::Array(items) => match merge_key(field, items) {
                Some(key) => {
                    let current = map
                        .entry(field.clone())
                        .or_insert_with(|| Value::Array(Vec::new()));
                    merge_list(current, items, key);
                }
                None => {
                    map.insert(field.clone(), value.clone());
                }
            },
            _ => {
                map.insert(field.clone(), value.clone());
            }
        }
    }
}

/// Merges `items` into the list `current` by `key` (`""`: as a set of primitives).
fn merge_list(current: &mut Value, items: &[Value], key: &str) {
    if !current.is_array() {
        *current = Value::Array(Vec::new());
    }
    let list = current.as_array_mut().expect("just made an array");
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *list = items
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .cloned()
            .collect();
        return;
    }
    for item in items {
        if key.is_empty() || !item.is_object() {
            if !list.contains(item) {
                list.push(item.clone());
            }
            continue;
        }
        let id = &item[key];
        let found = list.iter().position(|existing| existing[key] == *id);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (found, delete) {
            (Some(i), true) => {
                list.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut list[i], item),
            (None, false) => {
                let mut added = Value::Null;
                strategic_merge(&mut added, item);
                list.push(added);
            }
        }
    }
}

fn without_directives(patch: &Map<String, Value>) -> Map<String, Value> {
    patch
        .iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_merge_by_type_and_other_lists_are_replaced() {
        let mut node = json!({
            "spec": { "taints": [{ "key": "a", "effect": "NoSchedule" }] },
            "status": { "conditions": [
                { "type": "Ready", "status": "True", "reason": "KubeletReady" },
                { "type": "MemoryPressure", "status": "False" },
            ] },
        });
        strategic_merge(
            &mut node,
            &json!({
                "spec": { "taints": [{ "key": "b", "effect": "NoExecute" }] },
                "status": { "conditions": [{ "type": "Ready", "status": "False" }] },
            }),
        );
        assert_eq!(
            node,
            json!({
                "spec": { "taints": [{ "key": "b", "effect": "NoExecute" }] },
                "status": { "conditions": [
                    { "type": "Ready", "status": "False", "reason": "KubeletReady" },
                    { "type": "MemoryPressure", "status": "False" },
                ] },
            })
        );
    }

    #[test]
    fn directives_delete_replace_and_retain() {
        let mut pod = json!({
            "metadata": { "finalizers": ["a"] },
            "spec": { "containers": [{ "name": "x", "image": "1" }, { "name": "y", "image": "2" }],
                      "strategy": { "type": "Recreate", "rollingUpdate": null } },
        });
        strategic_merge(
            &mut pod,
            &json!({
                "$setElementOrder/containers": [{ "name": "x" }],
                "metadata": { "finalizers": ["b", "a"] },
                "spec": { "containers": [{ "name": "y", "$patch": "delete" }, { "name": "x", "image": "3" }] },
            }),
        );
        assert_eq!(pod["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(
            pod["spec"]["containers"],
            json!([{ "name": "x", "image": "3" }])
        );
        assert!(pod.get("$setElementOrder/containers").is_none());
        strategic_merge(
            &mut pod,
            &json!({ "metadata": { "$deleteFromPrimitiveList/finalizers": ["a"] },
                     "spec": { "strategy": { "$retainKeys": ["type"], "type": "RollingUpdate" } } }),
        );
        assert_eq!(pod["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(pod["spec"]["strategy"], json!({ "type": "RollingUpdate" }));
    }
}
