//! Small helpers for reading and writing the JSON objects the simulator stores, and
//! the clock formats Kubernetes uses.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value};

/// A string field, or `""` when absent or not a string.
pub(crate) fn str_at<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = value;
    for seg in path {
        cur = &cur[*seg];
    }
    cur.as_str().unwrap_or("")
}

/// `metadata.<field>` as a string.
pub(crate) fn meta<'a>(obj: &'a Value, field: &str) -> &'a str {
    str_at(obj, &["metadata", field])
}

/// The object at `path`, created (replacing non-objects) as needed.
pub(crate) fn object_at<'a>(value: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    let mut cur = value;
    for seg in path {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        cur = cur
            .as_object_mut()
            .expect("just made an object")
            .entry(seg.to_string())
            .or_insert(Value::Null);
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    cur.as_object_mut().expect("just made an object")
}

/// Sets list `field` of object `parent` of `obj` to `items`, or removes it when there
/// are none (as an `omitempty` list is written).
pub(crate) fn set_list(obj: &mut Value, parent: &str, field: &str, items: Vec<Value>) {
    if items.is_empty() {
        if let Some(map) = obj[parent].as_object_mut() {
            map.remove(field);
        }
    } else {
        obj[parent][field] = Value::Array(items);
    }
}

/// Sets `path` to `value` unless a non-null value is already there (API defaulting).
pub(crate) fn default_at(value: &mut Value, path: &[&str], default: Value) {
    let (last, parent) = path.split_last().expect("non-empty path");
    let map = object_at(value, parent);
    if map.get(*last).is_none_or(Value::is_null) {
        map.insert(last.to_string(), default);
    }
}

/// The current time as RFC 3339 with whole seconds, as Kubernetes writes timestamps.
pub(crate) fn now_rfc3339() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The current time plus `seconds` (which may be negative), as RFC 3339: a pod's
/// `deletionTimestamp` is when its grace period ends.
pub(crate) fn rfc3339_in(seconds: i64) -> String {
    shifted_rfc3339(&now_rfc3339(), seconds)
}

/// `timestamp` moved by `seconds`, as RFC 3339 (now, when `timestamp` cannot be read).
pub(crate) fn shifted_rfc3339(timestamp: &str, seconds: i64) -> String {
    let base = timestamp
        .parse::<Timestamp>()
        .unwrap_or_else(|_| Timestamp::now());
    Timestamp::from_second(base.as_second().saturating_add(seconds))
        .unwrap_or(base)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `metadata.finalizers`, in order.
pub(crate) fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// Whether the object is being deleted (it has a `deletionTimestamp`).
pub(crate) fn is_terminating(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
}

/// Seconds since an RFC 3339 timestamp (0 when it cannot be read).
pub(crate) fn age_seconds(timestamp: &str) -> i64 {
    timestamp
        .parse::<Timestamp>()
        .map(|t| (Timestamp::now().as_second() - t.as_second()).max(0))
        .unwrap_or(0)
}

/// A duration the way `kubectl` prints ages (`45s`, `3m12s`, `2h5m`, `4d`).
pub(crate) fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 8 * 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s if s < 8 * 86400 => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(3 * 86400), "3d0h");
    }
}
