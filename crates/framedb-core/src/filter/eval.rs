//! Matching a record against an [`Expr`] with MongoDB's semantics, so that the in-memory
//! registry answers as the MongoDB one does.
//!
//! A field path resolves to candidates as MongoDB's `BSONElementIterator` yields them:
//! - through objects, field by field; a scalar or a missing field part-way yields one
//!   *missing* candidate;
//! - through an array part-way, the rest of the path is applied to each element that is
//!   an object, and a numeric segment also picks the element at that index; other
//!   elements yield nothing;
//! - a leaf array yields each element and then the array itself.
//!
//! Every operator asks whether *some* candidate satisfies it; `$ne`, `$nin`, `$not` and
//! `$exists: false` negate that question, which is why they match missing fields.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

use super::{Condition, Expr};
use crate::types::InstanceRecord;

/// A number as BSON compares it: integers exactly, doubles as IEEE values.
#[derive(Debug, Clone, Copy)]
pub(super) enum Num {
    Int(i128),
    Float(f64),
}

/// A borrowed view of a JSON value, so record fields need not be copied into `Value`s.
#[derive(Debug, Clone, Copy)]
pub(super) enum Json<'a> {
    Null,
    Bool(bool),
    Num(Num),
    Str(&'a str),
    Arr(&'a [Value]),
    Obj(&'a Map<String, Value>),
}

impl<'a> From<&'a Value> for Json<'a> {
    fn from(value: &'a Value) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Bool(flag) => Self::Bool(*flag),
            Value::Number(number) => Self::Num(num(number)),
            Value::String(text) => Self::Str(text),
            Value::Array(items) => Self::Arr(items),
            Value::Object(map) => Self::Obj(map),
        }
    }
}

fn num(number: &Number) -> Num {
    if let Some(int) = number.as_i64() {
        Num::Int(int.into())
    } else if let Some(int) = number.as_u64() {
        Num::Int(int.into())
    } else {
        Num::Float(number.as_f64().unwrap_or(f64::NAN))
    }
}

/// The BSON type brackets, in BSON's order; only values in one bracket compare.
pub(super) fn bracket(value: Json<'_>) -> u8 {
    match value {
        Json::Null => 1,
        Json::Num(_) => 2,
        Json::Str(_) => 3,
        Json::Obj(_) => 4,
        Json::Arr(_) => 5,
        Json::Bool(_) => 6,
    }
}

/// BSON's total order: type bracket first, then the value. Objects compare pair by pair
/// (type, then key bytes, then value), so key order matters, as it does in BSON.
pub(super) fn compare(a: Json<'_>, b: Json<'_>) -> Ordering {
    match (a, b) {
        (Json::Null, Json::Null) => Ordering::Equal,
        (Json::Bool(a), Json::Bool(b)) => a.cmp(&b),
        (Json::Num(a), Json::Num(b)) => compare_numbers(a, b),
        (Json::Str(a), Json::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
        (Json::Arr(a), Json::Arr(b)) => a
            .iter()
            .zip(b)
            .map(|(x, y)| compare(x.into(), y.into()))
            .find(|order| order.is_ne())
            .unwrap_or_else(|| a.len().cmp(&b.len())),
        (Json::Obj(a), Json::Obj(b)) => a
            .iter()
            .zip(b)
            .map(|((key_a, x), (key_b, y))| {
                let (x, y) = (Json::from(x), Json::from(y));
                bracket(x)
                    .cmp(&bracket(y))
                    .then_with(|| key_a.as_bytes().cmp(key_b.as_bytes()))
                    .then_with(|| compare(x, y))
            })
            .find(|order| order.is_ne())
            .unwrap_or_else(|| a.len().cmp(&b.len())),
        _ => bracket(a).cmp(&bracket(b)),
    }
}

/// Numbers compare by value whatever their JSON form (`1 == 1.0`); NaN, which JSON cannot
/// carry but a `Number` might, sorts below every number as in BSON.
fn compare_numbers(a: Num, b: Num) -> Ordering {
    match (a, b) {
        (Num::Int(a), Num::Int(b)) => a.cmp(&b),
        (Num::Float(a), Num::Float(b)) => match (a.is_nan(), b.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        },
        (Num::Int(a), Num::Float(b)) => compare_int_float(a, b),
        (Num::Float(a), Num::Int(b)) => compare_int_float(b, a).reverse(),
    }
}

/// Compares an integer with a double exactly, where casting either way could round.
fn compare_int_float(int: i128, float: f64) -> Ordering {
    if float.is_nan() {
        return Ordering::Greater;
    }
    // Rounding is monotonic, so a strict difference after rounding is the true order.
    #[allow(clippy::cast_precision_loss)]
    match (int as f64).partial_cmp(&float) {
        Some(Ordering::Equal) => {
            // `float` equals a rounded integer of at most 64 bits, so it is integral and
            // converts to i128 exactly.
            #[allow(clippy::cast_possible_truncation)]
            let float = float as i128;
            int.cmp(&float)
        }
        Some(order) => order,
        None => Ordering::Equal,
    }
}

/// Whether `record` satisfies `expr`.
pub(super) fn matches(expr: &Expr, record: &InstanceRecord) -> bool {
    match expr {
        Expr::And(parts) => parts.iter().all(|part| matches(part, record)),
        Expr::Or(parts) => parts.iter().any(|part| matches(part, record)),
        Expr::Nor(parts) => !parts.iter().any(|part| matches(part, record)),
        Expr::Field(path, conditions) => {
            let (field, rest) = path
                .segments()
                .split_first()
                .expect("a parsed path has a first segment");
            with_field(record, field, |root| {
                conditions
                    .iter()
                    .all(|condition| holds(condition, root, rest))
            })
        }
    }
}

/// Calls `f` with a top-level field of the record as a document would hold it: strings,
/// the port as a number or `null`, and metadata as its object. Only the timestamps are
/// formatted; everything else is borrowed.
pub(super) fn with_field<R>(
    record: &InstanceRecord,
    field: &str,
    f: impl FnOnce(Option<Json<'_>>) -> R,
) -> R {
    let text = |text| Some(Json::Str(text));
    match field {
        "framedb_id" => f(text(record.framedb_id.as_str())),
        "cluster_id" => f(text(record.cluster_id.as_str())),
        "node_id" => f(text(record.node_id.as_str())),
        "storage_size" => f(text(record.storage_size.as_str())),
        "status" => f(text(record.status.as_str())),
        "deletion_policy" => f(text(record.deletion_policy.as_str())),
        "port" => {
            f(Some(record.port.map_or(Json::Null, |port| {
                Json::Num(Num::Int(port.into()))
            })))
        }
        "created_at" => f(text(&record.created_at.to_string())),
        "updated_at" => f(text(&record.updated_at.to_string())),
        "metadata" => f(Some(Json::Obj(record.metadata.as_map()))),
        _ => f(None),
    }
}

/// Whether one condition holds on the candidates of `rest` below `root`.
fn holds(condition: &Condition, root: Option<Json<'_>>, rest: &[String]) -> bool {
    let any = |test: &dyn Fn(Option<Json<'_>>) -> bool| any_candidate(root, rest, &mut |c| test(c));
    match condition {
        Condition::Eq(value) => any(&|c| equals(c, value)),
        Condition::Ne(value) => !any(&|c| equals(c, value)),
        Condition::Gt(value) => any(&|c| within(c, value, Ordering::is_gt)),
        Condition::Gte(value) => any(&|c| within(c, value, Ordering::is_ge)),
        Condition::Lt(value) => any(&|c| within(c, value, Ordering::is_lt)),
        Condition::Lte(value) => any(&|c| within(c, value, Ordering::is_le)),
        Condition::In(values) => any(&|c| values.iter().any(|value| equals(c, value))),
        Condition::Nin(values) => !any(&|c| values.iter().any(|value| equals(c, value))),
        Condition::Exists(exists) => any(&|c| c.is_some()) == *exists,
        Condition::Regex(pattern) => {
            any(&|c| matches!(c, Some(Json::Str(text)) if pattern.is_match(text)))
        }
        Condition::Not(conditions) => !conditions
            .iter()
            .all(|condition| holds(condition, root, rest)),
    }
}

/// MongoDB's equality on one candidate: `null` also matches a missing value.
fn equals(candidate: Option<Json<'_>>, value: &Value) -> bool {
    match candidate {
        None => value.is_null(),
        Some(candidate) => compare(candidate, value.into()).is_eq(),
    }
}

/// `$gt`-style comparison on one candidate: only within one type bracket, and a missing
/// value counts as `null` for `$gte: null` and `$lte: null` alone.
fn within(candidate: Option<Json<'_>>, value: &Value, accepts: fn(Ordering) -> bool) -> bool {
    let value = Json::from(value);
    match candidate {
        None => matches!(value, Json::Null) && accepts(Ordering::Equal),
        Some(candidate) => {
            bracket(candidate) == bracket(value) && accepts(compare(candidate, value))
        }
    }
}

/// Whether `visit` accepts some candidate that `rest` reaches below `value` (`None` is a
/// missing value). Stops at the first accepted one.
fn any_candidate<'a>(
    value: Option<Json<'a>>,
    rest: &[String],
    visit: &mut dyn FnMut(Option<Json<'a>>) -> bool,
) -> bool {
    let Some((head, tail)) = rest.split_first() else {
        if let Some(Json::Arr(items)) = value {
            return items.iter().any(|item| visit(Some(item.into()))) || visit(value);
        }
        return visit(value);
    };
    match value {
        Some(Json::Obj(map)) => any_candidate(map.get(head).map(Json::from), tail, visit),
        Some(Json::Arr(items)) => any_in_array(items, head, tail, visit),
        _ => visit(None),
    }
}

/// The candidates of `head.tail` inside an array met part-way along a path.
fn any_in_array<'a>(
    items: &'a [Value],
    head: &String,
    tail: &[String],
    visit: &mut dyn FnMut(Option<Json<'a>>) -> bool,
) -> bool {
    let offset = array_offset(head);
    items.iter().enumerate().any(|(index, item)| {
        let at_offset = offset == Some(index);
        match item {
            Value::Object(map) => {
                let as_field = map.get(head).map(Json::from);
                any_candidate(as_field, tail, visit)
                    || (at_offset && {
                        if tail.is_empty() {
                            visit(Some(item.into()))
                        } else {
                            any_candidate(Some(item.into()), tail, visit)
                        }
                    })
            }
            _ if at_offset && tail.is_empty() => visit(Some(item.into())),
            Value::Array(inner) if at_offset => match tail.split_first() {
                Some((next, after)) => any_in_array(inner, next, after, visit),
                None => false,
            },
            _ => false,
        }
    })
}

/// The index a path segment names when it is all digits, written as MongoDB writes array
/// field names (no leading zeros).
pub(super) fn array_offset(segment: &str) -> Option<usize> {
    let digits = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
    if digits && (segment == "0" || !segment.starts_with('0')) {
        segment.parse().ok()
    } else {
        None
    }
}
