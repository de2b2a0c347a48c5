//! `metadata`: the caller's own JSON object attached to an instance, bounded so that one
//! record cannot exhaust the registry, and with keys that dotted query paths can address.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::invalid::Invalid;

type Result<T, E = Invalid> = std::result::Result<T, E>;

/// Largest metadata object, serialized as compact JSON.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
/// Deepest nesting of objects and arrays; the object itself is level 1.
pub const MAX_METADATA_DEPTH: usize = 8;

/// A validated metadata object (insertion order kept, as MongoDB keeps it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub struct Metadata(Map<String, Value>);

impl Metadata {
    /// Validates `value` as metadata.
    ///
    /// # Errors
    /// [`Invalid`] when `value` is not an object, is larger than 64 KiB or deeper
    /// than 8 levels, or has a key that is empty, starts with `$`, or holds `.` or NUL.
    pub fn new(value: Value) -> Result<Self> {
        let Value::Object(map) = value else {
            return Err(Invalid::new(format!(
                "metadata must be a JSON object (got {})",
                json_kind(&value)
            )));
        };
        check_level(&map, 1)?;
        let size = serde_json::to_vec(&map).map_or(usize::MAX, |bytes| bytes.len());
        if size > MAX_METADATA_BYTES {
            return Err(Invalid::new(format!(
                "metadata must be at most 64 KiB of JSON (got {size} bytes)"
            )));
        }
        Ok(Self(map))
    }

    /// This metadata with `patch` applied as an RFC 7386 JSON merge patch (a key set to
    /// `null` is removed, others are set or replaced, objects merge key by key),
    /// validated as new metadata is.
    ///
    /// # Errors
    /// [`Invalid`] when the result is not valid metadata (see [`Self::new`]).
    pub fn merged(&self, patch: &Value) -> Result<Self> {
        let mut merged = Value::Object(self.0.clone());
        json_patch::merge(&mut merged, patch);
        Self::new(merged)
    }

    /// The object's fields.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The value at `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }
}

impl TryFrom<Value> for Metadata {
    type Error = Invalid;
    fn try_from(value: Value) -> Result<Self> {
        Self::new(value)
    }
}

impl From<Metadata> for Value {
    fn from(value: Metadata) -> Self {
        Value::Object(value.0)
    }
}

/// The name of a JSON value's type, for messages.
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn check_level(map: &Map<String, Value>, depth: usize) -> Result<()> {
    if depth > MAX_METADATA_DEPTH {
        return Err(depth_error());
    }
    for (key, value) in map {
        check_key(key)?;
        check_value(value, depth)?;
    }
    Ok(())
}

fn check_value(value: &Value, depth: usize) -> Result<()> {
    match value {
        Value::Object(inner) => check_level(inner, depth + 1),
        Value::Array(items) => {
            if depth + 1 > MAX_METADATA_DEPTH {
                return Err(depth_error());
            }
            items
                .iter()
                .try_for_each(|item| check_value(item, depth + 1))
        }
        _ => Ok(()),
    }
}

fn depth_error() -> Invalid {
    Invalid::new("metadata may nest objects and arrays at most 8 levels deep")
}

fn check_key(key: &str) -> Result<()> {
    let problem = if key.is_empty() {
        "is empty"
    } else if key.starts_with('$') {
        "starts with '$'"
    } else if key.contains('.') {
        "contains '.'"
    } else if key.contains('\0') {
        "contains a NUL character"
    } else {
        return Ok(());
    };
    let shown: String = key.chars().take(64).filter(|c| !c.is_control()).collect();
    Err(Invalid::new(format!(
        "metadata key '{shown}' {problem}: keys must be non-empty, must not start with '$', \
         and must not contain '.' or NUL, so that query paths can address them"
    )))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn nested(levels: usize) -> Value {
        (1..levels).fold(json!({"leaf": 1}), |inner, _| json!({ "n": inner }))
    }

    #[test]
    fn accepts_objects_within_bounds() {
        let m = Metadata::new(json!({"team": "analytics", "tags": ["a", {"b": 1}]})).unwrap();
        assert_eq!(m.get("team"), Some(&json!("analytics")));
        Metadata::new(nested(MAX_METADATA_DEPTH)).unwrap();
        Metadata::new(json!({})).unwrap();
    }

    #[test]
    fn keeps_key_order() {
        let m: Metadata = serde_json::from_str(r#"{"z":1,"a":2}"#).unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"z":1,"a":2}"#);
    }

    #[test]
    fn rejects_non_objects() {
        for bad in [json!(null), json!([]), json!("x"), json!(1), json!(true)] {
            let err = Metadata::new(bad).unwrap_err().to_string();
            assert!(err.starts_with("metadata must be a JSON object"), "{err}");
        }
    }

    #[test]
    fn rejects_bad_keys_at_every_level() {
        for bad in [
            json!({"": 1}),
            json!({"$set": 1}),
            json!({"a.b": 1}),
            json!({"a\u{0}": 1}),
            json!({"ok": {"$where": 1}}),
            json!({"ok": [{"x.y": 1}]}),
        ] {
            let err = Metadata::new(bad).unwrap_err().to_string();
            assert!(err.starts_with("metadata key"), "{err}");
        }
    }

    #[test]
    fn rejects_too_deep_and_too_large() {
        let err = Metadata::new(nested(MAX_METADATA_DEPTH + 1)).unwrap_err();
        assert!(err.to_string().contains("8 levels"), "{err}");
        let mut deep_array = json!(1);
        for _ in 0..MAX_METADATA_DEPTH {
            deep_array = json!([deep_array]);
        }
        assert!(Metadata::new(json!({ "a": deep_array })).is_err());
        let big = json!({"blob": "x".repeat(MAX_METADATA_BYTES)});
        let err = Metadata::new(big).unwrap_err();
        assert!(err.to_string().contains("64 KiB"), "{err}");
    }
}
