//! The order and window of query results, as MongoDB sorts: by BSON order on the sort
//! field, then by `framedb_id` so that pages are stable.
//!
//! MongoDB sorts a document by a key drawn from the values its path reaches (as index keys
//! are drawn): a missing value is `null`; an array contributes its elements, and an empty
//! one an `undefined` that sorts below `null`; an element that is not an object contributes
//! `null` where the path goes on. Ascending order uses the smallest such key and descending
//! the largest.

use std::cmp::Ordering;

use serde_json::Value;

use super::eval::{Json, array_offset, compare as compare_json};
use super::{Query, Sort};
use crate::types::{InstanceRecord, Timestamp};

/// A record's sort key. Top-level fields keep their own type; `metadata` paths hold JSON.
#[derive(Debug, Clone, Copy)]
enum Key<'a> {
    Text(&'a str),
    Port(Option<u16>),
    // The fixed-width RFC 3339 form makes time order and text order the same.
    Time(Timestamp),
    Json(JsonKey<'a>),
}

/// One of the keys a `metadata` path yields.
#[derive(Debug, Clone, Copy)]
enum JsonKey<'a> {
    /// An empty array, which MongoDB keys as `undefined`, below `null`.
    EmptyArray,
    Value(Json<'a>),
}

/// Orders two records as `sort` does, then by `framedb_id`.
pub(super) fn compare(sort: Option<&Sort>, a: &InstanceRecord, b: &InstanceRecord) -> Ordering {
    let by_field = match sort {
        None => Ordering::Equal,
        Some(sort) => {
            let (x, y) = (key(sort, a), key(sort, b));
            directed(sort, compare_keys(x, y))
        }
    };
    by_field.then_with(|| a.framedb_id.cmp(&b.framedb_id))
}

/// The whole query in memory: filter, then order only what matched, then window.
pub(super) fn run<'a>(
    query: &Query,
    records: impl IntoIterator<Item = &'a InstanceRecord>,
) -> Vec<InstanceRecord> {
    let skip = usize::try_from(query.skip).unwrap_or(usize::MAX);
    let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
    let end = skip.saturating_add(limit);
    let matched = records
        .into_iter()
        .filter(|record| query.filter.matches(record));
    // Keys are drawn once per record, not once per comparison.
    let mut keyed: Vec<(Option<Key<'a>>, &'a InstanceRecord)> = match &query.sort {
        None => matched.map(|record| (None, record)).collect(),
        Some(sort) => matched
            .map(|record| (Some(key(sort, record)), record))
            .collect(),
    };
    let order = |a: &(Option<Key<'a>>, &InstanceRecord), b: &(Option<Key<'a>>, &InstanceRecord)| {
        let by_field = match (&query.sort, a.0, b.0) {
            (Some(sort), Some(x), Some(y)) => directed(sort, compare_keys(x, y)),
            _ => Ordering::Equal,
        };
        by_field.then_with(|| a.1.framedb_id.cmp(&b.1.framedb_id))
    };
    if end == 0 || skip >= keyed.len() {
        return Vec::new();
    }
    // Only the first `end` records in order are returned, so when that is few of the
    // matches, partition around the cut and sort just the part before it.
    if end < keyed.len() {
        keyed.select_nth_unstable_by(end - 1, order);
        keyed.truncate(end);
    }
    // `framedb_id` is unique, so the order is total and an unstable sort is deterministic.
    keyed.sort_unstable_by(order);
    keyed
        .into_iter()
        .skip(skip)
        .map(|(_, record)| record.clone())
        .collect()
}

fn directed(sort: &Sort, order: Ordering) -> Ordering {
    if sort.descending {
        order.reverse()
    } else {
        order
    }
}

/// The key `record` sorts by: the value of a top-level field, or for a `metadata` path the
/// smallest (ascending) or largest (descending) of the keys the path yields.
fn key<'a>(sort: &Sort, record: &'a InstanceRecord) -> Key<'a> {
    let segments = sort.field.segments();
    match segments[0].as_str() {
        "framedb_id" => Key::Text(record.framedb_id.as_str()),
        "cluster_id" => Key::Text(record.cluster_id.as_str()),
        "node_id" => Key::Text(record.node_id.as_str()),
        "storage_size" => Key::Text(record.storage_size.as_str()),
        "status" => Key::Text(record.status.as_str()),
        "deletion_policy" => Key::Text(record.deletion_policy.as_str()),
        "port" => Key::Port(record.port),
        "created_at" => Key::Time(record.created_at),
        "updated_at" => Key::Time(record.updated_at),
        _ => {
            let mut best: Option<JsonKey<'a>> = None;
            let root = Some(Json::Obj(record.metadata.as_map()));
            json_keys(root, &segments[1..], &mut |candidate| {
                let better = best.is_none_or(|current| {
                    let order = compare_json_keys(candidate, current);
                    if sort.descending {
                        order.is_gt()
                    } else {
                        order.is_lt()
                    }
                });
                if better {
                    best = Some(candidate);
                }
            });
            Key::Json(best.unwrap_or(JsonKey::Value(Json::Null)))
        }
    }
}

/// Feeds `out` every key that `rest` yields below `value`, as MongoDB's index keys.
fn json_keys<'a>(value: Option<Json<'a>>, rest: &[String], out: &mut dyn FnMut(JsonKey<'a>)) {
    let Some((head, tail)) = rest.split_first() else {
        match value {
            None => out(JsonKey::Value(Json::Null)),
            Some(Json::Arr([])) => out(JsonKey::EmptyArray),
            Some(Json::Arr(items)) => items
                .iter()
                .for_each(|item| out(JsonKey::Value(item.into()))),
            Some(value) => out(JsonKey::Value(value)),
        }
        return;
    };
    match value {
        Some(Json::Obj(map)) => json_keys(map.get(head).map(Json::from), tail, out),
        Some(Json::Arr(items)) => match array_offset(head) {
            // A numeric segment picks one element rather than fanning out.
            Some(index) if index < items.len() => {
                json_keys(items.get(index).map(Json::from), tail, out)
            }
            _ if items.is_empty() => out(JsonKey::Value(Json::Null)),
            _ => items.iter().for_each(|item| match item {
                Value::Object(_) => json_keys(Some(item.into()), rest, out),
                _ => out(JsonKey::Value(Json::Null)),
            }),
        },
        _ => out(JsonKey::Value(Json::Null)),
    }
}

fn compare_keys(a: Key<'_>, b: Key<'_>) -> Ordering {
    match (a, b) {
        (Key::Text(a), Key::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
        // `None` is `null`, which sorts before every number.
        (Key::Port(a), Key::Port(b)) => a.cmp(&b),
        (Key::Time(a), Key::Time(b)) => a.cmp(&b),
        (Key::Json(a), Key::Json(b)) => compare_json_keys(a, b),
        // Every record is keyed by the same field, so kinds never mix.
        (a, b) => rank(a).cmp(&rank(b)),
    }
}

fn rank(key: Key<'_>) -> u8 {
    match key {
        Key::Text(_) => 0,
        Key::Port(_) => 1,
        Key::Time(_) => 2,
        Key::Json(_) => 3,
    }
}

fn compare_json_keys(a: JsonKey<'_>, b: JsonKey<'_>) -> Ordering {
    match (a, b) {
        (JsonKey::EmptyArray, JsonKey::EmptyArray) => Ordering::Equal,
        (JsonKey::EmptyArray, JsonKey::Value(_)) => Ordering::Less,
        (JsonKey::Value(_), JsonKey::EmptyArray) => Ordering::Greater,
        (JsonKey::Value(a), JsonKey::Value(b)) => compare_json(a, b),
    }
}
