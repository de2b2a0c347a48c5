//! Checking a JSON filter, a sort and a query window against the API's rules (README, "The API"), and building
//! the typed expression. Everything a caller sends is refused here with a sentence, so the
//! evaluator and the renderers only ever see the operators they understand.

use std::io;

use serde_json::{Map, Value};

use super::{
    Condition, DEFAULT_LIMIT, Expr, FILTERABLE_FIELDS, FieldPath, MAX_FILTER_BYTES,
    MAX_FILTER_DEPTH, MAX_LIMIT, MAX_SKIP, Pattern, QueryOptions, Sort,
};
use crate::error::{Error, Result};

/// The operators a field may carry, for messages.
const FIELD_OPERATORS: &str =
    "$eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $exists, $regex (with $options) and $not";

/// Parses a whole filter: a JSON object within the size and depth bounds.
pub(super) fn filter(value: &Value) -> Result<Expr> {
    let Value::Object(map) = value else {
        return Err(Error::invalid(format!(
            "a filter must be a JSON object such as {{\"cluster_id\": \"cluster-01\"}} (got {})",
            kind(value)
        )));
    };
    if !fits(value, MAX_FILTER_BYTES) {
        return Err(Error::invalid(format!(
            "a filter may be at most {} KiB of JSON",
            MAX_FILTER_BYTES / 1024
        )));
    }
    if deeper_than(value, MAX_FILTER_DEPTH) {
        return Err(Error::invalid(format!(
            "filter nests deeper than {MAX_FILTER_DEPTH} levels"
        )));
    }
    object(map)
}

/// One filter object: every key must hold, so the object is an `And`.
fn object(map: &Map<String, Value>) -> Result<Expr> {
    map.iter()
        .map(|(key, value)| {
            if key.starts_with('$') {
                logical(key, value)
            } else {
                field(key, value)
            }
        })
        .collect::<Result<Vec<_>>>()
        .map(Expr::And)
}

fn logical(operator: &str, value: &Value) -> Result<Expr> {
    let build: fn(Vec<Expr>) -> Expr = match operator {
        "$and" => Expr::And,
        "$or" => Expr::Or,
        "$nor" => Expr::Nor,
        _ => {
            return Err(Error::invalid(format!(
                "operator {} is not allowed in a filter; allowed: $and, $or and $nor at the \
                 top level, and {FIELD_OPERATORS} on a field",
                shown(operator)
            )));
        }
    };
    let items = match value {
        Value::Array(items) if !items.is_empty() => items,
        other => {
            return Err(Error::invalid(format!(
                "'{operator}' must be a non-empty array of filter objects (got {})",
                kind(other)
            )));
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::Object(map) => object(map),
            other => Err(Error::invalid(format!(
                "entry {} of '{operator}' must be a filter object (got {})",
                index + 1,
                kind(other)
            ))),
        })
        .collect::<Result<Vec<_>>>()
        .map(build)
}

fn field(key: &str, value: &Value) -> Result<Expr> {
    let path = field_path(key, "filter field")?;
    let conditions = field_value(&path, value)?;
    Ok(Expr::Field(path, conditions))
}

/// The value of a field: an object of operators, or a plain value to equal.
fn field_value(path: &FieldPath, value: &Value) -> Result<Vec<Condition>> {
    if let Value::Object(map) = value {
        let mut keys = map.keys();
        let operator = keys.clone().find(|key| key.starts_with('$'));
        let plain = keys.find(|key| !key.starts_with('$'));
        match (operator, plain) {
            (Some(_), None) => return operators(path, map),
            (Some(operator), Some(plain)) => {
                return Err(Error::invalid(format!(
                    "the value of filter field {} mixes operators (such as {}) with plain \
                     keys (such as {}); use either an object of operators or a plain value",
                    shown(&path.dotted()),
                    shown(operator),
                    shown(plain)
                )));
            }
            // No `$` key at all (or no key): MongoDB compares the whole object.
            (None, _) => {}
        }
    }
    check_literal(path, value)?;
    Ok(vec![Condition::Eq(value.clone())])
}

/// An object whose keys all start with `$`: each operator must hold.
fn operators(path: &FieldPath, map: &Map<String, Value>) -> Result<Vec<Condition>> {
    let options = map.get("$options");
    if options.is_some() && !map.contains_key("$regex") {
        return Err(Error::invalid(format!(
            "'$options' on filter field {} needs a '$regex' beside it",
            shown(&path.dotted())
        )));
    }
    let mut conditions = Vec::with_capacity(map.len());
    for (operator, argument) in map {
        let literal = || check_literal(path, argument).map(|()| argument.clone());
        let condition = match operator.as_str() {
            "$eq" => Condition::Eq(literal()?),
            "$ne" => Condition::Ne(literal()?),
            "$gt" => Condition::Gt(literal()?),
            "$gte" => Condition::Gte(literal()?),
            "$lt" => Condition::Lt(literal()?),
            "$lte" => Condition::Lte(literal()?),
            "$in" => Condition::In(list(path, operator, argument)?),
            "$nin" => Condition::Nin(list(path, operator, argument)?),
            "$exists" => match argument {
                Value::Bool(exists) => Condition::Exists(*exists),
                other => {
                    return Err(Error::invalid(format!(
                        "'$exists' on filter field {} must be true or false (got {})",
                        shown(&path.dotted()),
                        kind(other)
                    )));
                }
            },
            "$regex" => Condition::Regex(regex(path, argument, options)?),
            // Read together with `$regex` above.
            "$options" => continue,
            "$not" => Condition::Not(negated(path, argument)?),
            other => {
                return Err(Error::invalid(format!(
                    "operator {} is not allowed in a filter; allowed: {FIELD_OPERATORS} on a \
                     field, and $and, $or and $nor at the top level",
                    shown(other)
                )));
            }
        };
        conditions.push(condition);
    }
    Ok(conditions)
}

fn list(path: &FieldPath, operator: &str, argument: &Value) -> Result<Vec<Value>> {
    let Value::Array(items) = argument else {
        return Err(Error::invalid(format!(
            "'{operator}' on filter field {} must be an array of values (got {})",
            shown(&path.dotted()),
            kind(argument)
        )));
    };
    items
        .iter()
        .try_for_each(|item| check_literal(path, item))?;
    Ok(items.clone())
}

fn regex(path: &FieldPath, argument: &Value, options: Option<&Value>) -> Result<Pattern> {
    let Value::String(source) = argument else {
        return Err(Error::invalid(format!(
            "'$regex' on filter field {} must be a string (got {})",
            shown(&path.dotted()),
            kind(argument)
        )));
    };
    let options = match options {
        None => "",
        Some(Value::String(options)) => options,
        Some(other) => {
            return Err(Error::invalid(format!(
                "'$options' on filter field {} must be a string of the letters i, m, s and x \
                 (got {})",
                shown(&path.dotted()),
                kind(other)
            )));
        }
    };
    Pattern::new(source, options)
}

fn negated(path: &FieldPath, argument: &Value) -> Result<Vec<Condition>> {
    match argument {
        Value::Object(map) if map.is_empty() => Err(Error::invalid(format!(
            "'$not' on filter field {} needs at least one operator",
            shown(&path.dotted())
        ))),
        Value::Object(map) if map.keys().all(|key| key.starts_with('$')) => operators(path, map),
        other => Err(Error::invalid(format!(
            "'$not' on filter field {} needs an object of operators such as {{\"$gt\": 5}} \
             (got {})",
            shown(&path.dotted()),
            if other.is_object() {
                "an object with plain keys"
            } else {
                kind(other)
            }
        ))),
    }
}

/// A value compared as data. No key in it may start with `$` (MongoDB would read some of
/// them as operators, and stored keys never do) or hold NUL (BSON keys cannot).
fn check_literal(path: &FieldPath, value: &Value) -> Result<()> {
    match value {
        Value::Object(map) => map.iter().try_for_each(|(key, inner)| {
            if key.starts_with('$') || key.contains('\0') {
                Err(Error::invalid(format!(
                    "the value given for filter field {} holds the key {}; keys inside values \
                     may not start with '$' or contain NUL (operators go right after the \
                     field name, as in {{\"metadata.size\": {{\"$gt\": 5}}}})",
                    shown(&path.dotted()),
                    shown(key)
                )))
            } else {
                check_literal(path, inner)
            }
        }),
        Value::Array(items) => items.iter().try_for_each(|item| check_literal(path, item)),
        _ => Ok(()),
    }
}

/// Parses a dotted field path for a filter or a sort (`what` names which, for messages).
pub(super) fn field_path(text: &str, what: &str) -> Result<FieldPath> {
    if text.is_empty() {
        return Err(Error::invalid(format!("a {what} name must not be empty")));
    }
    let segments: Vec<&str> = text.split('.').collect();
    if !FILTERABLE_FIELDS.contains(&segments[0]) {
        return Err(Error::invalid(format!(
            "{what} {} is not filterable; filterable fields are {}, with a dotted path after \
             metadata (such as metadata.team)",
            shown(text),
            FILTERABLE_FIELDS.join(", ")
        )));
    }
    if segments.len() > 1 && segments[0] != "metadata" {
        return Err(Error::invalid(format!(
            "{what} {} goes inside {}, which has no fields; only metadata may be followed \
             by a dotted path",
            shown(text),
            segments[0]
        )));
    }
    let problem = if segments.iter().any(|segment| segment.is_empty()) {
        Some("has an empty segment between dots")
    } else if segments.iter().any(|segment| segment.starts_with('$')) {
        Some("has a segment starting with '$', which no field name may do")
    } else if text.contains('\0') {
        Some("contains a NUL character")
    } else {
        None
    };
    if let Some(problem) = problem {
        return Err(Error::invalid(format!("{what} {} {problem}", shown(text))));
    }
    Ok(FieldPath {
        segments: segments.into_iter().map(str::to_owned).collect(),
    })
}

/// Parses the `sort` parameter: a field path, with `-` in front for descending.
pub(super) fn sort(text: &str) -> Result<Sort> {
    let (descending, field) = match text.strip_prefix('-') {
        Some(field) => (true, field),
        None => (false, text),
    };
    if field.is_empty() {
        return Err(Error::invalid(
            "sort must name a field, with '-' in front for descending order (such as -created_at)",
        ));
    }
    Ok(Sort {
        field: field_path(field, "sort field")?,
        descending,
    })
}

/// Checks the query string's window and order.
pub(super) fn window(options: QueryOptions) -> Result<(Option<Sort>, u64, u64)> {
    let limit = options.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::invalid(format!(
            "limit must be between 1 and {MAX_LIMIT} (got {limit})"
        )));
    }
    let skip = options.skip.unwrap_or(0);
    if skip > MAX_SKIP {
        return Err(Error::invalid(format!(
            "skip must be at most {MAX_SKIP} (got {skip}); narrow the filter instead of paging \
             that far"
        )));
    }
    let sort = options.sort.as_deref().map(sort).transpose()?;
    Ok((sort, skip, limit))
}

/// Whether `value` serializes to at most `limit` bytes, without building the text.
fn fits(value: &Value, limit: usize) -> bool {
    struct Budget(usize);
    impl io::Write for Budget {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0 = self
                .0
                .checked_sub(bytes.len())
                .ok_or_else(|| io::Error::other("over budget"))?;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(Budget(limit), value).is_ok()
}

/// Whether objects and arrays nest more than `limit` levels (the outermost is level 1).
/// Stops looking once past the limit, so a hostile value cannot make it recurse deeply.
fn deeper_than(value: &Value, limit: usize) -> bool {
    fn level(value: &Value, depth: usize, limit: usize) -> bool {
        let deeper = |inner: &Value| level(inner, depth + 1, limit);
        match value {
            Value::Object(map) => depth > limit || map.values().any(deeper),
            Value::Array(items) => depth > limit || items.iter().any(deeper),
            _ => false,
        }
    }
    level(value, 1, limit)
}

/// The name of a JSON value's type, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(items) if items.is_empty() => "an empty array",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A caller's name quoted for a message; long or unprintable names are described instead,
/// so that an error never echoes kilobytes or control characters back.
pub(super) fn shown(name: &str) -> String {
    const MAX_ECHO: usize = 64;
    let length = name.chars().count();
    if length <= MAX_ECHO && !name.chars().any(char::is_control) {
        format!("'{name}'")
    } else {
        format!("(a name of {length} characters)")
    }
}
