//! Records as MongoDB documents, and JSON values as BSON values.
//!
//! A record is stored field by field as the in-memory registry sees it: the ids, the
//! storage size, the status and both timestamps as strings (the timestamps' fixed-width
//! RFC 3339 form makes string order time order, in filters and sorts alike), the port as
//! an integer or `null`, and `metadata` as a BSON document that keeps the caller's key
//! order. MongoDB's own `_id` stays inside the database: it is never read back.
//!
//! JSON numbers become the BSON numbers MongoDB compares by value: integers that fit 32
//! bits as `Int32`, other integers that fit 64 bits as `Int64`, everything else as
//! `Double`.

use framedb_core::InstanceRecord;
use mongodb::bson::{Bson, Document};
use serde_json::{Map, Number, Value};

use crate::error::Error;

/// The BSON form of a JSON value: objects keep their key order.
pub(crate) fn json_to_bson(value: &Value) -> Bson {
    match value {
        Value::Null => Bson::Null,
        Value::Bool(flag) => Bson::Boolean(*flag),
        Value::Number(number) => number_to_bson(number),
        Value::String(text) => Bson::String(text.clone()),
        Value::Array(items) => Bson::Array(items.iter().map(json_to_bson).collect()),
        Value::Object(map) => Bson::Document(object_to_document(map)),
    }
}

/// The BSON document of a JSON object, in the object's key order.
pub(crate) fn object_to_document(map: &Map<String, Value>) -> Document {
    map.iter()
        .map(|(key, value)| (key.clone(), json_to_bson(value)))
        .collect()
}

fn number_to_bson(number: &Number) -> Bson {
    match number.as_i64() {
        Some(int) => i32::try_from(int).map_or(Bson::Int64(int), Bson::Int32),
        // Integers beyond i64 (which BSON lacks) and every fraction become doubles.
        None => Bson::Double(number.as_f64().unwrap_or(f64::NAN)),
    }
}

/// The JSON form of a BSON value this crate wrote; other BSON types are refused, naming
/// the `field` they were found in.
pub(crate) fn bson_to_json(value: &Bson, field: &str) -> Result<Value, String> {
    Ok(match value {
        Bson::Null => Value::Null,
        Bson::Boolean(flag) => Value::Bool(*flag),
        Bson::Int32(int) => Value::from(*int),
        Bson::Int64(int) => Value::from(*int),
        Bson::Double(float) => Number::from_f64(*float)
            .map(Value::Number)
            .ok_or_else(|| format!("field {field} holds a number JSON cannot carry"))?,
        Bson::String(text) => Value::String(text.clone()),
        Bson::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| bson_to_json(item, &format!("{field}.{index}")))
                .collect::<Result<_, _>>()?,
        ),
        Bson::Document(document) => Value::Object(document_to_object(document, field)?),
        other => {
            return Err(format!(
                "field {field} holds a BSON {:?}, which FrameDB never writes",
                other.element_type()
            ));
        }
    })
}

fn document_to_object(document: &Document, field: &str) -> Result<Map<String, Value>, String> {
    document
        .iter()
        .map(|(key, value)| {
            let path = if field.is_empty() {
                key.clone()
            } else {
                format!("{field}.{key}")
            };
            Ok((key.clone(), bson_to_json(value, &path)?))
        })
        .collect()
}

/// The document stored for `record`.
pub(crate) fn record_to_document(record: &InstanceRecord) -> Document {
    let mut document = Document::new();
    document.insert("framedb_id", record.framedb_id.as_str());
    document.insert("cluster_id", record.cluster_id.as_str());
    document.insert("node_id", record.node_id.as_str());
    document.insert("storage_size", record.storage_size.as_str());
    document.insert(
        "metadata",
        Bson::Document(object_to_document(record.metadata.as_map())),
    );
    document.insert("deletion_policy", record.deletion_policy.as_str());
    if let Some(profile) = record.resources {
        document.insert("resources", profile.as_str());
    }
    document.insert("stamp", record.stamp.as_str());
    document.insert("port", port_to_bson(record.port));
    document.insert("status", record.status.as_str());
    if let Some(removal) = record.removal {
        document.insert("removal", removal.as_str());
    }
    document.insert("created_at", record.created_at.to_string());
    document.insert("updated_at", record.updated_at.to_string());
    document
}

/// The port as stored: an integer, or `null` before the instance has one.
pub(crate) fn port_to_bson(port: Option<u16>) -> Bson {
    port.map_or(Bson::Null, |port| Bson::Int32(i32::from(port)))
}

/// The record a stored document holds. `_id` is ignored; anything else that is not a
/// record field, or a field that breaks the record's rules, is an [`Error::Corrupt`].
pub(crate) fn document_to_record(document: &Document) -> Result<InstanceRecord, Error> {
    let id = document
        .get_str("framedb_id")
        .unwrap_or("(no framedb_id)")
        .to_owned();
    let corrupt = |reason: String| Error::Corrupt {
        framedb_id: id.clone(),
        reason,
    };
    let mut object = Map::new();
    for (key, value) in document {
        if key == "_id" {
            continue;
        }
        object.insert(key.clone(), bson_to_json(value, key).map_err(corrupt)?);
    }
    serde_json::from_value(Value::Object(object)).map_err(|error| corrupt(error.to_string()))
}

#[cfg(test)]
mod tests {
    use framedb_core::InstanceStatus;
    use mongodb::bson::{doc, oid::ObjectId};
    use serde_json::json;

    use super::*;

    fn record() -> InstanceRecord {
        serde_json::from_value(json!({
            "framedb_id": "tidb-001", "cluster_id": "cluster-01", "node_id": "node-a",
            "storage_size": "2Gi",
            "metadata": {"team": "analytics", "z": 1, "a": [1.5, {"b": null}], "big": 5_000_000_000_i64,
                         "huge": 18_446_744_073_709_551_615_u64, "ok": true},
            "deletion_policy": "Retain", "stamp": "0123456789abcdef0123456789abcdef",
            "port": 30901, "status": "Running",
            "created_at": "2026-01-02T03:04:05.006Z", "updated_at": "2026-01-02T03:04:05.007Z"
        }))
        .unwrap()
    }

    #[test]
    fn a_resource_profile_is_stored_only_when_asked_for() {
        assert!(!record_to_document(&record()).contains_key("resources"));
        let sized = InstanceRecord {
            resources: Some(framedb_core::ResourceProfile::Medium),
            ..record()
        };
        let document = record_to_document(&sized);
        assert_eq!(document.get_str("resources").ok(), Some("medium"));
        assert_eq!(
            document_to_record(&document).unwrap().resources,
            sized.resources
        );
    }

    #[test]
    fn records_become_documents_field_by_field() {
        let document = record_to_document(&record());
        let expected = doc! {
            "framedb_id": "tidb-001", "cluster_id": "cluster-01", "node_id": "node-a",
            "storage_size": "2Gi",
            "metadata": {"team": "analytics", "z": 1_i32, "a": [1.5, {"b": null}],
                         "big": 5_000_000_000_i64, "huge": 18_446_744_073_709_551_615_f64, "ok": true},
            "deletion_policy": "Retain", "stamp": "0123456789abcdef0123456789abcdef",
            "port": 30901_i32, "status": "Running",
            "created_at": "2026-01-02T03:04:05.006Z", "updated_at": "2026-01-02T03:04:05.007Z"
        };
        assert_eq!(document, expected);
        let keys: Vec<_> = document.get_document("metadata").unwrap().keys().collect();
        assert_eq!(keys, ["team", "z", "a", "big", "huge", "ok"]);
    }

    #[test]
    fn documents_read_back_without_their_id() {
        let mut original = record();
        original.metadata =
            serde_json::from_value(json!({"n": -3, "f": 0.25, "s": ["x"]})).unwrap();
        original.port = None;
        original.status = InstanceStatus::Provisioning;
        let mut document = record_to_document(&original);
        assert_eq!(document.get("port"), Some(&Bson::Null));
        document.insert("_id", ObjectId::new());
        assert_eq!(document_to_record(&document).unwrap(), original);
    }

    #[test]
    fn records_from_before_stamps_read_as_unstamped_and_deleted_with_their_volume() {
        let mut document = record_to_document(&record());
        document.remove("stamp");
        document.remove("deletion_policy");
        let old = document_to_record(&document).unwrap();
        assert_eq!(old.stamp, framedb_core::Stamp::unstamped());
        assert_eq!(old.deletion_policy, framedb_core::DeletionPolicy::Delete);
    }

    #[test]
    fn foreign_documents_are_corrupt() {
        let mut document = record_to_document(&record());
        document.insert("extra", 1);
        let error = document_to_record(&document).unwrap_err();
        assert!(matches!(&error, Error::Corrupt { framedb_id, .. } if framedb_id == "tidb-001"));
        let mut document = record_to_document(&record());
        document.insert("metadata", doc! {"when": mongodb::bson::DateTime::now()});
        let error = document_to_record(&document).unwrap_err().to_string();
        assert!(error.contains("metadata.when"), "{error}");
    }
}
