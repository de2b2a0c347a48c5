//! The core's typed filter and sort rendered to BSON for MongoDB (README, "The API").
//!
//! Only the typed [`Expr`] is rendered, never the caller's JSON: every operator in the
//! output is one this module writes itself, so nothing the core did not accept (`$where`,
//! `$function`, `$expr`, ...) can reach the server. Values are converted JSON → BSON (by
//! the crate's `document` module) and always sit under an explicit operator, `$eq`
//! included, so an object value is compared as a value and never read as operators.
//!
//! The shapes:
//! - a field: `{ "path": { "$op": value, ... } }`, `$regex` with `$options`, and
//!   `$not: { ... }` around negated operators;
//! - `And` / `Or` / `Nor`: `$and` / `$or` / `$nor` (an empty `And` is `{}`; a one-element
//!   `And` is its element);
//! - the sort: `{ field: ±1, framedb_id: 1 }`, or `{ framedb_id: 1 }` without a sort.
//!
//! Expressions that only code (not the parser) can build are rendered with the meaning the
//! in-memory evaluator gives them: an empty `Or` matches nothing, an empty `Nor` everything,
//! repeated operators on one field become a `$and`, and a negation that `$not` cannot hold
//! (an empty one, or one holding another `$not` or repeated operators) becomes a `$nor`.

use framedb_core::filter::{Condition, Expr, FieldPath};
use framedb_core::{Filter, Sort};
use mongodb::bson::{Bson, Document, doc};

use crate::document::json_to_bson;

/// The field every result order ends with, so that pages are stable.
const TIE_BREAK: &str = "framedb_id";

/// The BSON filter of `filter`.
pub fn filter(filter: &Filter) -> Document {
    expr(filter.expr())
}

/// The BSON filter of one expression.
pub fn expr(expr: &Expr) -> Document {
    match expr {
        Expr::And(parts) => match parts.as_slice() {
            [] => Document::new(),
            [only] => self::expr(only),
            parts => merged(parts).unwrap_or_else(|| doc! { "$and": list(parts) }),
        },
        Expr::Or(parts) if parts.is_empty() => nothing(),
        Expr::Or(parts) => doc! { "$or": list(parts) },
        Expr::Nor(parts) if parts.is_empty() => Document::new(),
        Expr::Nor(parts) => doc! { "$nor": list(parts) },
        Expr::Field(path, conditions) => field(path, conditions),
    }
}

/// The BSON sort of a query: the sort field (when there is one) and then `framedb_id`
/// ascending, as the in-memory registry orders.
pub fn sort(sort: Option<&Sort>) -> Document {
    let mut document = Document::new();
    if let Some(sort) = sort {
        let field = sort.field.dotted();
        let direction = if sort.descending { -1_i32 } else { 1_i32 };
        let is_tie_break = field == TIE_BREAK;
        document.insert(field, direction);
        if is_tie_break {
            // Sorting on the id itself: it is already total.
            return document;
        }
    }
    document.insert(TIE_BREAK, 1_i32);
    document
}

/// The parts of an `And` as one document (`{a: 1, b: 2}`), when no two of them share a
/// key: the same meaning as `$and`, in the shape query planners match against indexes.
fn merged(parts: &[Expr]) -> Option<Document> {
    let mut document = Document::new();
    for part in parts {
        for (key, value) in expr(part) {
            if key.starts_with('$') || document.contains_key(&key) {
                return None;
            }
            document.insert(key, value);
        }
    }
    Some(document)
}

fn list(parts: &[Expr]) -> Vec<Bson> {
    parts
        .iter()
        .map(|part| Bson::Document(expr(part)))
        .collect()
}

/// A filter that no record matches: every record has a `framedb_id`, and `$in: []` holds
/// for no value, present or missing.
fn nothing() -> Document {
    doc! { TIE_BREAK: { "$in": [] } }
}

/// `{path: {operators}}`, or a `$and` of one field filter per condition when the
/// conditions cannot share one operator document.
fn field(path: &FieldPath, conditions: &[Condition]) -> Document {
    let dotted = path.dotted();
    if conditions.is_empty() {
        return Document::new();
    }
    // Equality with a scalar is written bare (`{path: value}`), the form planners map to
    // an index most readily; documents and arrays keep `$eq`, which compares them as
    // values whatever keys they hold.
    if let [Condition::Eq(value)] = conditions
        && !value.is_object()
        && !value.is_array()
    {
        return doc! { dotted: json_to_bson(value) };
    }
    if let Some(operators) = operators(conditions) {
        return doc! { dotted: operators };
    }
    // A lone negation that `$not` cannot hold: the negation of the field filter.
    if let [Condition::Not(negated)] = conditions {
        return doc! { "$nor": [field(path, negated)] };
    }
    let parts: Vec<Bson> = conditions
        .iter()
        .map(|condition| Bson::Document(field(path, std::slice::from_ref(condition))))
        .collect();
    doc! { "$and": parts }
}

/// One operator document holding every condition, when no operator repeats and every
/// condition has an operator form.
fn operators(conditions: &[Condition]) -> Option<Document> {
    let mut document = Document::new();
    for condition in conditions {
        for (operator, value) in operator(condition)? {
            if document.contains_key(operator) {
                return None;
            }
            document.insert(operator, value);
        }
    }
    Some(document)
}

/// The operator entries of one condition; `None` for a negation with no `$not` form.
fn operator(condition: &Condition) -> Option<Vec<(&'static str, Bson)>> {
    let one = |operator, value: &serde_json::Value| Some(vec![(operator, json_to_bson(value))]);
    let many = |operator, values: &[serde_json::Value]| {
        let values = values.iter().map(json_to_bson).collect();
        Some(vec![(operator, Bson::Array(values))])
    };
    match condition {
        Condition::Eq(value) => one("$eq", value),
        Condition::Ne(value) => one("$ne", value),
        Condition::Gt(value) => one("$gt", value),
        Condition::Gte(value) => one("$gte", value),
        Condition::Lt(value) => one("$lt", value),
        Condition::Lte(value) => one("$lte", value),
        Condition::In(values) => many("$in", values),
        Condition::Nin(values) => many("$nin", values),
        Condition::Exists(exists) => Some(vec![("$exists", Bson::Boolean(*exists))]),
        Condition::Regex(pattern) => {
            let mut entries = vec![("$regex", Bson::String(pattern.source().to_owned()))];
            if !pattern.options().is_empty() {
                entries.push(("$options", Bson::String(pattern.options().to_owned())));
            }
            Some(entries)
        }
        // Not all of nothing: false, whatever the field holds.
        Condition::Not(negated) if negated.is_empty() => {
            Some(vec![("$in", Bson::Array(Vec::new()))])
        }
        Condition::Not(negated) => {
            if negated
                .iter()
                .any(|inner| matches!(inner, Condition::Not(_)))
            {
                return None;
            }
            operators(negated).map(|inner| vec![("$not", Bson::Document(inner))])
        }
    }
}

#[cfg(test)]
mod tests {
    use framedb_core::filter::Pattern;
    use framedb_core::{Query, QueryOptions};
    use serde_json::{Value, json};

    use super::*;

    fn render(value: Value) -> Document {
        filter(&Filter::parse(&value).unwrap())
    }

    fn path(text: &str) -> FieldPath {
        FieldPath::parse(text).unwrap()
    }

    /// Every key starting with `$` anywhere in `document`.
    fn operator_keys(document: &Document, out: &mut Vec<String>) {
        fn walk(value: &Bson, out: &mut Vec<String>) {
            match value {
                Bson::Document(document) => operator_keys(document, out),
                Bson::Array(items) => items.iter().for_each(|item| walk(item, out)),
                _ => {}
            }
        }
        for (key, value) in document {
            if key.starts_with('$') {
                out.push(key.clone());
            }
            walk(value, out);
        }
    }

    #[test]
    fn fields_render_as_planners_expect_them() {
        assert_eq!(render(json!({})), doc! {});
        // Scalar equality is bare, and fields on different paths share one document.
        assert_eq!(
            render(json!({"cluster_id": "cluster-01"})),
            doc! {"cluster_id": "cluster-01"}
        );
        assert_eq!(
            render(json!({"cluster_id": "c", "metadata.team": "a"})),
            doc! {"cluster_id": "c", "metadata.team": "a"}
        );
        assert_eq!(
            render(json!({"$and": [{"port": {"$gt": 1}}, {"port": {"$lt": 9}}]})),
            doc! {"$and": [{"port": {"$gt": 1_i32}}, {"port": {"$lt": 9_i32}}]}
        );
        assert_eq!(
            render(json!({"port": {"$gte": 30900, "$lt": 30950, "$ne": null}})),
            doc! {"port": {"$gte": 30900_i32, "$lt": 30950_i32, "$ne": null}}
        );
        assert_eq!(
            render(json!({"metadata.tier": {"$in": ["gold", null], "$nin": [[1, 2]]}})),
            doc! {"metadata.tier": {"$in": ["gold", null], "$nin": [[1_i32, 2_i32]]}}
        );
        assert_eq!(
            render(json!({"metadata.x": {"$exists": false}})),
            doc! {"metadata.x": {"$exists": false}}
        );
    }

    #[test]
    fn object_values_are_compared_as_values() {
        // A literal object under `$eq`, and a plain object, both render under `$eq` with
        // their key order kept; neither can be read as operators.
        assert_eq!(
            render(json!({"metadata.spec": {"$eq": {"b": 1, "a": {"c": [true]}}}})),
            doc! {"metadata.spec": {"$eq": {"b": 1_i32, "a": {"c": [true]}}}}
        );
        assert_eq!(
            render(json!({"metadata.spec": {"b": 1, "a": 2}})),
            doc! {"metadata.spec": {"$eq": {"b": 1_i32, "a": 2_i32}}}
        );
        assert_eq!(
            render(json!({"metadata": {}})),
            doc! {"metadata": {"$eq": {}}}
        );
    }

    #[test]
    fn numbers_keep_their_kind() {
        assert_eq!(
            render(
                json!({"metadata.n": {"$in": [1, -2_147_483_649_i64, 5_000_000_000_i64, 1.5, 18_446_744_073_709_551_615_u64]}})
            ),
            doc! {"metadata.n": {"$in": [1_i32, -2_147_483_649_i64, 5_000_000_000_i64, 1.5_f64, 18_446_744_073_709_551_615_f64]}}
        );
    }

    #[test]
    fn regex_not_and_logical_operators() {
        assert_eq!(
            render(json!({"metadata.owner": {"$regex": "^ali", "$options": "im"}})),
            doc! {"metadata.owner": {"$regex": "^ali", "$options": "im"}}
        );
        assert_eq!(
            render(json!({"node_id": {"$regex": "b$"}})),
            doc! {"node_id": {"$regex": "b$"}}
        );
        assert_eq!(
            render(json!({"metadata.size": {"$not": {"$gt": 5, "$lt": 9}}})),
            doc! {"metadata.size": {"$not": {"$gt": 5_i32, "$lt": 9_i32}}}
        );
        assert_eq!(
            render(json!({"metadata.name": {"$not": {"$regex": "x", "$options": "i"}}})),
            doc! {"metadata.name": {"$not": {"$regex": "x", "$options": "i"}}}
        );
        assert_eq!(
            render(
                json!({"$or": [{"status": "Running"}, {"port": null}], "$nor": [{"node_id": "n"}]})
            ),
            doc! {"$and": [
                {"$or": [{"status": "Running"}, {"port": null}]},
                {"$nor": [{"node_id": "n"}]},
            ]}
        );
        assert_eq!(
            render(json!({"$and": [{"status": "Running"}]})),
            doc! {"status": "Running"}
        );
    }

    #[test]
    fn a_negated_negation_becomes_nor() {
        assert_eq!(
            render(json!({"metadata.n": {"$not": {"$not": {"$gt": 1}}}})),
            doc! {"$nor": [{"metadata.n": {"$not": {"$gt": 1_i32}}}]}
        );
    }

    #[test]
    fn expressions_only_code_can_build() {
        let ge = |n: i64| Condition::Gte(json!(n));
        assert_eq!(expr(&Expr::Or(vec![])), doc! {"framedb_id": {"$in": []}});
        assert_eq!(expr(&Expr::Nor(vec![])), doc! {});
        assert_eq!(expr(&Expr::Field(path("port"), vec![])), doc! {});
        assert_eq!(
            expr(&Expr::Field(path("port"), vec![ge(1), ge(2)])),
            doc! {"$and": [{"port": {"$gte": 1_i32}}, {"port": {"$gte": 2_i32}}]}
        );
        assert_eq!(
            expr(&Expr::Field(path("port"), vec![Condition::Not(vec![])])),
            doc! {"port": {"$in": []}}
        );
        assert_eq!(
            expr(&Expr::Field(
                path("port"),
                vec![Condition::Not(vec![ge(1), ge(2)])]
            )),
            doc! {"$nor": [{"$and": [{"port": {"$gte": 1_i32}}, {"port": {"$gte": 2_i32}}]}]}
        );
        let pattern = Pattern::new("a", "").unwrap();
        assert_eq!(
            expr(&Expr::Field(
                path("node_id"),
                vec![Condition::Regex(pattern.clone()), Condition::Regex(pattern)]
            )),
            doc! {"$and": [{"node_id": {"$regex": "a"}}, {"node_id": {"$regex": "a"}}]}
        );
    }

    #[test]
    fn server_side_code_can_never_be_rendered() {
        // The core refuses these before there is anything to render...
        for forbidden in [
            json!({"$where": "sleep(1000)"}),
            json!({"$expr": {"$eq": ["$port", 1]}}),
            json!({"metadata.x": {"$function": {"body": "1", "args": [], "lang": "js"}}}),
            json!({"$jsonSchema": {}}),
            json!({"metadata.x": {"$accumulator": {}}}),
            json!({"metadata.x": {"$eq": {"$where": "1"}}}),
            json!({"metadata.x": {"$in": [{"$expr": 1}]}}),
            json!({"metadata.$where": 1}),
            json!({"$text": {"$search": "x"}}),
            json!({"metadata.x": {"$elemMatch": {"a": 1}}}),
        ] {
            assert!(Filter::parse(&forbidden).is_err(), "{forbidden}");
        }
        // ...and whatever it accepts renders to the operators the filter allows alone.
        let allowed = [
            "$and", "$or", "$nor", "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin",
            "$exists", "$regex", "$options", "$not",
        ];
        for accepted in [
            json!({"metadata.a.b": {"$eq": {"k": [{"v": 1}]}}, "$or": [{"port": {"$in": [1, null]}}]}),
            json!({"$nor": [{"metadata.x": {"$not": {"$not": {"$regex": "y", "$options": "s"}}}}]}),
            json!({"metadata.where": "$where", "metadata.s": {"$eq": "$function"}}),
        ] {
            let mut keys = Vec::new();
            operator_keys(&render(accepted.clone()), &mut keys);
            for key in keys {
                assert!(allowed.contains(&key.as_str()), "{key} in {accepted}");
            }
        }
    }

    #[test]
    fn sorts_end_with_the_id() {
        let query = |sort: Option<&str>| {
            Query::new(
                Filter::all(),
                QueryOptions {
                    sort: sort.map(str::to_owned),
                    ..QueryOptions::default()
                },
            )
            .unwrap()
        };
        assert_eq!(sort(query(None).sort.as_ref()), doc! {"framedb_id": 1_i32});
        assert_eq!(
            sort(query(Some("-metadata.rank")).sort.as_ref()),
            doc! {"metadata.rank": -1_i32, "framedb_id": 1_i32}
        );
        assert_eq!(
            sort(query(Some("created_at")).sort.as_ref()),
            doc! {"created_at": 1_i32, "framedb_id": 1_i32}
        );
        assert_eq!(
            sort(query(Some("-framedb_id")).sort.as_ref()),
            doc! {"framedb_id": -1_i32}
        );
    }
}
