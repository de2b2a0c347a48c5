//! `events.k8s.io/v1` Events: the objects `core/v1` Events are, in the newer API's shape
//! (`regarding`, `note`, `reportingController`, `deprecated*`), as the API server
//! converts between the two versions of one stored Event
//! (`Convert_core_Event_To_v1_Event`, pkg/apis/events/v1/conversion.go).
//!
//! The store keeps the core shape; `routes` converts bodies in and answers out.

use serde_json::{Map, Value, json};

use super::resources::{EVENTS_GROUP, ResourceDef};

/// Fields named differently in the two shapes: (`core/v1`, `events.k8s.io/v1`).
const RENAMED: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// Whether `res` is the `events.k8s.io` view.
pub(crate) fn is_v1(res: &ResourceDef) -> bool {
    res.group == EVENTS_GROUP
}

/// A stored (core) Event as `events.k8s.io/v1` writes it; `eventTime` is required there,
/// so an Event recorded through the core API shows it `null`.
pub(crate) fn from_core(core: Value) -> Value {
    let mut v1 = renamed(core, |(old, new)| (old, new));
    if let Some(fields) = v1.as_object_mut() {
        fields.entry("eventTime").or_insert(Value::Null);
        fields.insert("apiVersion".into(), json!(format!("{EVENTS_GROUP}/v1")));
    }
    v1
}

/// An `events.k8s.io/v1` body in the core shape the store keeps.
pub(crate) fn to_core(v1: Value) -> Value {
    let mut core = renamed(v1, |(old, new)| (new, old));
    if let Some(fields) = core.as_object_mut() {
        if fields.get("eventTime").is_some_and(Value::is_null) {
            fields.remove("eventTime");
        }
        fields.insert("apiVersion".into(), json!("v1"));
    }
    core
}

/// `object` with the `RENAMED` fields renamed `(from, to)` as `direction` orders each pair.
fn renamed(
    object: Value,
    direction: fn((&'static str, &'static str)) -> (&'static str, &'static str),
) -> Value {
    let Value::Object(mut fields) = object else {
        return object;
    };
    let mut out = Map::new();
    for (from, to) in RENAMED.map(direction) {
        if let Some(v) = fields.remove(from) {
            out.insert(to.to_string(), v);
        }
    }
    out.extend(fields);
    Value::Object(out)
}

/// A patch of the `events.k8s.io/v1` view as a patch of the core object: a JSON patch's
/// paths renamed (`/note` is `/message`), a merge or apply patch (a partial object)
/// converted as an object is.
pub(crate) fn patch_to_core(json_patch: bool, patch: Value) -> Value {
    if !json_patch {
        let had_version = patch.get("apiVersion").is_some();
        let mut core = to_core(patch);
        if !had_version && let Some(fields) = core.as_object_mut() {
            fields.remove("apiVersion");
        }
        return core;
    }
    let mut ops = patch;
    for op in ops.as_array_mut().into_iter().flatten() {
        for key in ["path", "from"] {
            if let Some(path) = op[key].as_str().map(rename_path) {
                op[key] = json!(path);
            }
        }
    }
    ops
}

/// A field selector of the newer API (`regarding.name=p`, `reportingController=x`) in the
/// core API's field names.
pub(crate) fn field_selector_to_core(selector: &str) -> String {
    selector
        .split(',')
        .map(|term| {
            let renamed = RENAMED.iter().find_map(|(old, new)| {
                term.strip_prefix(new)
                    .filter(|rest| rest.starts_with(['.', '=', '!']))
                    .map(|rest| format!("{old}{rest}"))
            });
            renamed.unwrap_or_else(|| term.to_string())
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `/note` as `/message`, `/regarding/name` as `/involvedObject/name`.
fn rename_path(path: &str) -> String {
    let (first, rest) = path
        .trim_start_matches('/')
        .split_once('/')
        .map_or((path.trim_start_matches('/'), None), |(f, r)| (f, Some(r)));
    let first = RENAMED
        .iter()
        .find(|(_, new)| *new == first)
        .map_or(first, |(old, _)| old);
    match rest {
        Some(rest) => format!("/{first}/{rest}"),
        None => format!("/{first}"),
    }
}

/// An answer of the core view as the `events.k8s.io/v1` view gives it: an Event or a
/// list of them converted, anything else (a `Status`, a `Table`) as it is.
pub(crate) fn answer_from_core(answer: Value) -> Value {
    match answer["kind"].as_str() {
        Some("Event") => from_core(answer),
        Some("EventList") => {
            let mut list = answer;
            if let Some(items) = list.get_mut("items").and_then(Value::as_array_mut) {
                for item in items.iter_mut() {
                    *item = from_core(item.take());
                }
            }
            list["apiVersion"] = json!(format!("{EVENTS_GROUP}/v1"));
            list
        }
        _ => answer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_shapes_convert_both_ways() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": { "name": "p.1", "namespace": "ns" },
            "involvedObject": { "kind": "Pod", "name": "p" },
            "reason": "Scheduled", "message": "Successfully assigned ns/p to node-a",
            "source": { "component": "default-scheduler" }, "count": 1,
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z",
            "type": "Normal", "reportingComponent": "default-scheduler",
        });
        let v1 = from_core(core.clone());
        assert_eq!(v1["apiVersion"], "events.k8s.io/v1");
        assert_eq!(v1["regarding"]["name"], "p");
        assert_eq!(v1["note"], "Successfully assigned ns/p to node-a");
        assert_eq!(v1["reportingController"], "default-scheduler");
        assert_eq!(v1["deprecatedCount"], 1);
        assert_eq!(v1["eventTime"], Value::Null);
        assert!(v1.get("involvedObject").is_none() && v1.get("message").is_none());
        assert_eq!(to_core(v1), core);
    }

    #[test]
    fn patches_of_the_newer_shape_patch_the_core_object() {
        let merge = patch_to_core(false, json!({ "note": "again", "deprecatedCount": 2 }));
        assert_eq!(merge, json!({ "message": "again", "count": 2 }));
        let ops = patch_to_core(
            true,
            json!([{ "op": "replace", "path": "/regarding/name", "value": "q" }, { "op": "add", "path": "/note", "value": "n" }]),
        );
        assert_eq!(ops[0]["path"], "/involvedObject/name");
        assert_eq!(ops[1]["path"], "/message");
        assert_eq!(
            field_selector_to_core("regarding.name=p,type!=Normal,reportingController=x"),
            "involvedObject.name=p,type!=Normal,reportingComponent=x"
        );
    }
}
