//! The filter against MongoDB's documented and observed behaviour, and every refusal.

use chrono::DateTime;
use serde_json::{Value, json};

use super::*;
use crate::error::Error;
use crate::types::{FramedbId, InstanceStatus, Metadata, StorageSize, Timestamp};

fn at(seconds: i64) -> Timestamp {
    Timestamp::from(DateTime::from_timestamp(seconds, 0).unwrap())
}

fn record(id: &str, metadata: Value) -> InstanceRecord {
    InstanceRecord {
        framedb_id: FramedbId::new(id).unwrap(),
        cluster_id: ClusterId::new("cluster-01").unwrap(),
        node_id: NodeId::new("node-a").unwrap(),
        storage_size: StorageSize::new("1Gi").unwrap(),
        metadata: Metadata::new(metadata).unwrap(),
        deletion_policy: crate::types::DeletionPolicy::Delete,
        stamp: crate::types::Stamp::unstamped(),
        port: Some(30900),
        status: InstanceStatus::Running,
        removal: None,
        created_at: at(1_700_000_000),
        updated_at: at(1_700_000_000),
        resources: None,
    }
}

/// A record whose metadata is `metadata`.
fn doc(metadata: Value) -> InstanceRecord {
    record("tidb-001", metadata)
}

fn hit(filter: Value, record: &InstanceRecord) -> bool {
    Filter::parse(&filter)
        .unwrap_or_else(|err| panic!("{filter} should parse: {err}"))
        .matches(record)
}

#[track_caller]
fn assert_hit(filter: Value, record: &InstanceRecord) {
    assert!(
        hit(filter.clone(), record),
        "{filter} should match {:?}",
        record.metadata
    );
}

#[track_caller]
fn assert_miss(filter: Value, record: &InstanceRecord) {
    assert!(
        !hit(filter.clone(), record),
        "{filter} should not match {:?}",
        record.metadata
    );
}

#[track_caller]
fn assert_rejected(filter: Value, needle: &str) {
    match Filter::parse(&filter) {
        Ok(parsed) => panic!("{filter} should be rejected, parsed as {parsed:?}"),
        Err(Error::Invalid(message)) => {
            assert!(
                message.contains(needle),
                "{filter}: {message:?} lacks {needle:?}"
            );
            assert!(!message.contains('\n'), "{message:?} is not one sentence");
        }
        Err(other) => panic!("{filter} gave {other:?}, not Invalid"),
    }
}

// ---- parsing ----

#[test]
fn empty_filter_matches_everything() {
    let filter = Filter::parse(&json!({})).unwrap();
    assert_eq!(filter, Filter::all());
    assert!(filter.matches(&doc(json!({}))));
    assert!(Filter::all().matches(&doc(json!({"x": 1}))));
}

#[test]
fn parses_into_the_typed_expression() {
    let filter = Filter::parse(&json!({
        "cluster_id": "cluster-01",
        "metadata.size": {"$gt": 5, "$lte": 10},
        "$or": [{"status": "Running"}, {"port": {"$exists": false}}],
    }))
    .unwrap();
    let path = |text| FieldPath::parse(text).unwrap();
    assert_eq!(
        filter.expr(),
        &Expr::And(vec![
            Expr::Field(path("cluster_id"), vec![Condition::Eq(json!("cluster-01"))]),
            Expr::Field(
                path("metadata.size"),
                vec![Condition::Gt(json!(5)), Condition::Lte(json!(10))]
            ),
            Expr::Or(vec![
                Expr::And(vec![Expr::Field(
                    path("status"),
                    vec![Condition::Eq(json!("Running"))]
                )]),
                Expr::And(vec![Expr::Field(
                    path("port"),
                    vec![Condition::Exists(false)]
                )]),
            ]),
        ])
    );
    assert_eq!(path("metadata.a.b").segments(), ["metadata", "a", "b"]);
    assert_eq!(path("metadata.a.b").dotted(), "metadata.a.b");
}

#[test]
fn regex_keeps_source_and_options() {
    let filter = Filter::parse(&json!({"node_id": {"$regex": "^node-", "$options": "i"}})).unwrap();
    let Expr::And(parts) = filter.expr() else {
        panic!()
    };
    let Expr::Field(_, conditions) = &parts[0] else {
        panic!()
    };
    let [Condition::Regex(pattern)] = conditions.as_slice() else {
        panic!()
    };
    assert_eq!(pattern.source(), "^node-");
    assert_eq!(pattern.options(), "i");
    assert!(pattern.is_match("NODE-a"));
}

#[test]
fn cluster_filters_compare_ids() {
    let cluster = ClusterId::new("cluster-01").unwrap();
    let other = ClusterId::new("cluster-02").unwrap();
    let node = NodeId::new("node-a").unwrap();
    let record = doc(json!({}));
    assert!(Filter::cluster(&cluster).matches(&record));
    assert!(!Filter::cluster(&other).matches(&record));
    assert!(Filter::cluster_node(&cluster, &node).matches(&record));
    assert!(!Filter::cluster_node(&cluster, &NodeId::new("node-b").unwrap()).matches(&record));
    assert_eq!(
        Filter::cluster(&cluster),
        Filter::parse(&json!({"cluster_id": "cluster-01"})).unwrap()
    );
    assert_eq!(
        Filter::cluster_node(&cluster, &node),
        Filter::parse(&json!({"cluster_id": "cluster-01", "node_id": "node-a"})).unwrap()
    );
}

#[test]
fn rejects_code_and_unknown_operators() {
    for operator in [
        "$where",
        "$function",
        "$expr",
        "$accumulator",
        "$jsonSchema",
        "$text",
        "$comment",
        "$foo",
    ] {
        assert_rejected(
            json!({ operator: "1 == 1" }),
            &format!("operator '{operator}' is not allowed in a filter"),
        );
        assert_rejected(
            json!({"metadata.x": { operator: 1 }}),
            &format!("operator '{operator}' is not allowed in a filter"),
        );
    }
    assert_rejected(
        json!({"$and": [{"$where": "sleep(1000)"}]}),
        "'$where' is not allowed",
    );
    assert_rejected(
        json!({"port": {"$not": {"$where": "x"}}}),
        "'$where' is not allowed",
    );
    for operator in ["$elemMatch", "$size", "$all", "$type", "$mod", "$and"] {
        assert_rejected(json!({"metadata.x": { operator: [] }}), "allowed: $eq, $ne");
    }
}

#[test]
fn rejects_fields_outside_the_record() {
    assert_rejected(
        json!({"public_url": "x"}),
        "filter field 'public_url' is not filterable; filterable fields are framedb_id, cluster_id",
    );
    assert_rejected(json!({"local_url": "x"}), "is not filterable");
    assert_rejected(json!({"_id": "x"}), "is not filterable");
    assert_rejected(json!({"": 1}), "must not be empty");
    assert_rejected(
        json!({"cluster_id.name": "x"}),
        "only metadata may be followed",
    );
    assert_rejected(json!({"metadata..a": 1}), "empty segment");
    assert_rejected(json!({"metadata.a.": 1}), "empty segment");
    assert_rejected(json!({"metadata.$where": 1}), "starting with '$'");
    assert_rejected(json!({"metadata.a.$ne": 1}), "starting with '$'");
    assert_rejected(json!({"metadata.a\u{0}": 1}), "NUL");
    let long = format!("x{}", "y".repeat(500));
    let message = Filter::parse(&json!({ long: 1 })).unwrap_err().to_string();
    assert!(message.contains("a name of 501 characters"), "{message}");
}

#[test]
fn rejects_filters_that_are_not_objects() {
    for bad in [json!([]), json!("x"), json!(1), json!(null), json!(true)] {
        assert_rejected(bad, "a filter must be a JSON object");
    }
    assert_rejected(json!({"$and": []}), "'$and' must be a non-empty array");
    assert_rejected(json!({"$or": {"a": 1}}), "'$or' must be a non-empty array");
    assert_rejected(
        json!({"$nor": [{"port": 1}, 5]}),
        "entry 2 of '$nor' must be a filter object",
    );
}

#[test]
fn rejects_filters_too_deep_or_too_large() {
    // Eight levels are fine: the filter object, then seven nested objects or arrays.
    let mut value = json!(1);
    for _ in 0..7 {
        value = json!({ "a": value });
    }
    let eight = json!({"metadata.x": value.clone()});
    Filter::parse(&eight).unwrap();
    let nine = json!({"metadata.x": { "a": value }});
    assert_rejected(nine, "filter nests deeper than 8 levels");
    let arrays = json!({"$or": [{"$or": [{"$or": [{"$or": [{"port": 1}]}]}]}]});
    assert_rejected(arrays, "deeper than 8 levels");

    let big = json!({"metadata.blob": "x".repeat(MAX_FILTER_BYTES)});
    assert_rejected(big, "at most 16 KiB");
    let just_fits = json!({"metadata.b": "x".repeat(MAX_FILTER_BYTES - 20)});
    Filter::parse(&just_fits).unwrap();
}

#[test]
fn rejects_malformed_operator_arguments() {
    assert_rejected(
        json!({"port": {"$in": 5}}),
        "'$in' on filter field 'port' must be an array",
    );
    assert_rejected(
        json!({"port": {"$nin": "x"}}),
        "'$nin' on filter field 'port' must be an array",
    );
    assert_rejected(json!({"port": {"$exists": 1}}), "must be true or false");
    assert_rejected(json!({"port": {"$exists": "yes"}}), "must be true or false");
    assert_rejected(
        json!({"node_id": {"$options": "i"}}),
        "'$options' on filter field 'node_id' needs a '$regex'",
    );
    assert_rejected(
        json!({"node_id": {"$regex": 5}}),
        "'$regex' on filter field 'node_id' must be a string",
    );
    assert_rejected(
        json!({"node_id": {"$regex": "a", "$options": 1}}),
        "must be a string of the letters",
    );
    assert_rejected(
        json!({"node_id": {"$regex": "a", "$options": "g"}}),
        "$options may only contain the letters i, m, s and x (got 'g')",
    );
    assert_rejected(
        json!({"node_id": {"$regex": "a", "$options": "u"}}),
        "only contain the letters",
    );
    assert_rejected(
        json!({"node_id": {"$not": "literal"}}),
        "'$not' on filter field 'node_id' needs an object of operators",
    );
    assert_rejected(
        json!({"node_id": {"$not": {"a": 1}}}),
        "needs an object of operators",
    );
    assert_rejected(
        json!({"node_id": {"$not": {}}}),
        "needs at least one operator",
    );
    assert_rejected(
        json!({"metadata.a": {"$gt": 1, "b": 2}}),
        "mixes operators (such as '$gt') with plain keys (such as 'b')",
    );
    assert_rejected(json!({"metadata.a": {"b": 2, "$gt": 1}}), "mixes operators");
    assert_rejected(
        json!({"metadata": {"team": {"$gt": "a"}}}),
        "holds the key '$gt'",
    );
    assert_rejected(
        json!({"metadata.a": {"$eq": {"$where": "x"}}}),
        "holds the key '$where'",
    );
    assert_rejected(
        json!({"metadata.a": {"$in": [{"$regex": "x"}]}}),
        "holds the key '$regex'",
    );
    assert_rejected(
        json!({"metadata.a": [{"b": {"$ne": 1}}]}),
        "holds the key '$ne'",
    );
}

#[test]
fn rejects_bad_and_unbounded_regexes() {
    assert_rejected(
        json!({"node_id": {"$regex": "(?=a)"}}),
        "not a supported regular expression",
    );
    assert_rejected(
        json!({"node_id": {"$regex": "(a)\\1"}}),
        "not a supported regular expression (backreferences are not supported)",
    );
    assert_rejected(
        json!({"node_id": {"$regex": "(unclosed"}}),
        "not a supported regular expression",
    );
    assert_rejected(json!({"node_id": {"$regex": "a\\u0041"}}), "\\u");
    assert_rejected(json!({"node_id": {"$regex": "a\u{0}"}}), "NUL");
    let long = "a".repeat(MAX_REGEX_LEN + 1);
    assert_rejected(
        json!({"node_id": {"$regex": long}}),
        "at most 256 characters",
    );
    Filter::parse(&json!({"node_id": {"$regex": "a".repeat(MAX_REGEX_LEN)}})).unwrap();
    // Short, but it would compile to an enormous automaton.
    assert_rejected(
        json!({"node_id": {"$regex": "((\\w{100}){100}){100}"}}),
        "too complex",
    );
    assert_rejected(
        json!({"node_id": {"$not": {"$regex": "(?<=a)b"}}}),
        "not a supported",
    );
}

/// Shapes on which MongoDB's backtracking engine can take exponential time are refused
/// (the rule and its cases are in `backtrack`), wherever a `$regex` appears.
#[test]
fn rejects_regexes_that_backtrack_exponentially() {
    assert!(matches!(
        Filter::parse(&json!({"metadata.x": {"$regex": "^(a+)+$"}})),
        Err(Error::Invalid(_))
    ));
    assert_rejected(
        json!({"metadata.x": {"$regex": "^(a+)+$"}}),
        "nested quantifiers: 'a+' inside the repeated '(a+)+'",
    );
    assert_rejected(
        json!({"node_id": {"$regex": "(X|x)*y", "$options": "i"}}),
        "overlapping alternatives: 'X' and 'x'",
    );
    assert_rejected(
        json!({"$or": [{"port": 1}, {"node_id": {"$not": {"$regex": "(a|)*"}}}]}),
        "can match the empty string",
    );
    Filter::parse(&json!({"node_id": {"$regex": "^(prod|staging)-\\d+$"}})).unwrap();
}

// ---- matching: fields of the record ----

#[test]
fn top_level_fields_are_strings_and_a_numeric_port() {
    let mut record = doc(json!({}));
    assert_hit(json!({"framedb_id": "tidb-001"}), &record);
    assert_hit(
        json!({"cluster_id": "cluster-01", "node_id": "node-a"}),
        &record,
    );
    assert_hit(json!({"storage_size": "1Gi", "status": "Running"}), &record);
    assert_hit(json!({"created_at": "2023-11-14T22:13:20.000Z"}), &record);
    assert_hit(
        json!({"updated_at": {"$gte": "2023-11-14T22:13:20.000Z"}}),
        &record,
    );
    assert_miss(
        json!({"created_at": {"$gt": "2023-11-14T22:13:20.000Z"}}),
        &record,
    );
    assert_hit(json!({"created_at": {"$lt": "2024"}}), &record);
    assert_hit(json!({"port": 30900}), &record);
    assert_hit(json!({"port": 30900.0}), &record);
    assert_miss(json!({"port": "30900"}), &record);
    assert_hit(json!({"port": {"$gte": 30900, "$lt": 31000}}), &record);
    assert_miss(json!({"port": null}), &record);
    assert_miss(json!({"framedb_id": "tidb-002"}), &record);
    assert_miss(json!({"status": "running"}), &record);

    record.port = None;
    assert_hit(json!({"port": null}), &record);
    assert_hit(json!({"port": {"$exists": true}}), &record);
    assert_miss(json!({"port": {"$exists": false}}), &record);
    assert_miss(json!({"port": {"$gt": 0}}), &record);
    assert_hit(json!({"port": {"$not": {"$gt": 0}}}), &record);
}

#[test]
fn metadata_is_an_object_field() {
    let record = doc(json!({"team": "analytics", "size": 3}));
    assert_hit(
        json!({"metadata": {"team": "analytics", "size": 3}}),
        &record,
    );
    assert_miss(
        json!({"metadata": {"size": 3, "team": "analytics"}}),
        &record,
    );
    assert_miss(json!({"metadata": {"team": "analytics"}}), &record);
    assert_hit(json!({"metadata": {"$exists": true}}), &record);
    assert_hit(
        json!({"metadata.team": "analytics", "metadata.size": 3}),
        &record,
    );
    assert_hit(json!({"metadata": {"$gt": {}}}), &record);
    assert_miss(json!({"metadata": {}}), &record);
    assert_hit(json!({"metadata": {}}), &doc(json!({})));
}

// ---- matching: equality, numbers, objects ----

#[test]
fn numbers_compare_by_value() {
    let record = doc(json!({"n": 1, "f": 2.5, "big": 9_007_199_254_740_993_u64, "neg": -3}));
    assert_hit(json!({"metadata.n": 1.0}), &record);
    assert_hit(json!({"metadata.n": {"$eq": 1}}), &record);
    assert_hit(json!({"metadata.f": {"$gt": 2, "$lt": 3}}), &record);
    assert_miss(json!({"metadata.f": 2}), &record);
    assert_hit(json!({"metadata.neg": {"$lt": -2.5}}), &record);
    // 2^53 + 1 is not the double 2^53, even though casting would round it there.
    assert_miss(
        json!({"metadata.big": 9_007_199_254_740_992.0_f64}),
        &record,
    );
    assert_hit(
        json!({"metadata.big": {"$gt": 9_007_199_254_740_992.0_f64}}),
        &record,
    );
    assert_hit(json!({"metadata.big": 9_007_199_254_740_993_u64}), &record);
    assert_hit(json!({"metadata.n": {"$in": [5, 1.0]}}), &record);
}

#[test]
fn objects_compare_in_key_order_and_arrays_by_element() {
    let record = doc(json!({"o": {"a": 1, "b": {"c": 2}}, "arr": [1, "x", {"k": true}]}));
    assert_hit(json!({"metadata.o": {"a": 1.0, "b": {"c": 2}}}), &record);
    assert_miss(json!({"metadata.o": {"b": {"c": 2}, "a": 1}}), &record);
    assert_miss(json!({"metadata.o": {"a": 1}}), &record);
    assert_miss(
        json!({"metadata.o": {"a": 1, "b": {"c": 2}, "d": 3}}),
        &record,
    );
    assert_hit(json!({"metadata.arr": [1, "x", {"k": true}]}), &record);
    assert_miss(json!({"metadata.arr": ["x", 1, {"k": true}]}), &record);
    assert_miss(json!({"metadata.arr": [1, "x"]}), &record);
    // Ordering of objects: field by field, then length.
    assert_hit(json!({"metadata.o": {"$gt": {"a": 1}}}), &record);
    assert_hit(json!({"metadata.o": {"$lt": {"a": 2}}}), &record);
    assert_hit(
        json!({"metadata.o": {"$gt": {"a": 1, "b": {"c": 1}}}}),
        &record,
    );
    // A string value sorts before an object value in the same position.
    assert_hit(
        json!({"metadata.o": {"$gt": {"a": 1, "b": "zzz"}}}),
        &record,
    );
    // Types come first, then key names, then values.
    assert_hit(json!({"metadata.o": {"$lt": {"a": 1, "c": {}}}}), &record);
    assert_hit(json!({"metadata.o": {"$gt": {"a": 1, "c": 0}}}), &record);
}

#[test]
fn strings_compare_by_bytes() {
    let record = doc(json!({"s": "apple", "u": "é"}));
    assert_hit(json!({"metadata.s": {"$gt": "Zebra"}}), &record);
    assert_hit(json!({"metadata.s": {"$lt": "apples"}}), &record);
    assert_hit(
        json!({"metadata.s": {"$gte": "apple", "$lte": "apple"}}),
        &record,
    );
    assert_hit(json!({"metadata.u": {"$gt": "z"}}), &record);
    assert_miss(json!({"metadata.s": "Apple"}), &record);
}

#[test]
fn comparisons_never_cross_type_brackets() {
    let record = doc(json!({"n": 5, "s": "10", "b": true, "z": null}));
    assert_miss(json!({"metadata.n": {"$gt": "1"}}), &record);
    assert_miss(json!({"metadata.n": {"$lt": "1"}}), &record);
    assert_miss(json!({"metadata.s": {"$gt": 5}}), &record);
    assert_miss(json!({"metadata.s": {"$lt": 5}}), &record);
    assert_miss(json!({"metadata.b": {"$gt": 0}}), &record);
    assert_hit(json!({"metadata.b": {"$gt": false}}), &record);
    assert_miss(json!({"metadata.n": {"$lt": true}}), &record);
    assert_miss(json!({"metadata.z": {"$lt": 1}}), &record);
    assert_miss(json!({"metadata.n": {"$gt": null}}), &record);
    assert_hit(json!({"metadata.n": {"$ne": "5"}}), &record);
}

// ---- matching: null, missing, $exists ----

#[test]
fn null_matches_null_and_missing() {
    let record = doc(json!({"z": null, "n": 1, "sub": {}}));
    for path in [
        "metadata.z",
        "metadata.missing",
        "metadata.sub.x",
        "metadata.n.x",
        "metadata.z.x",
    ] {
        assert_hit(json!({ path: null }), &record);
        assert_hit(json!({ path: {"$eq": null} }), &record);
        assert_hit(json!({ path: {"$in": [null, 7]} }), &record);
        assert_hit(json!({ path: {"$gte": null} }), &record);
        assert_hit(json!({ path: {"$lte": null} }), &record);
        assert_miss(json!({ path: {"$gt": null} }), &record);
        assert_miss(json!({ path: {"$lt": null} }), &record);
        assert_miss(json!({ path: {"$ne": null} }), &record);
        assert_miss(json!({ path: {"$nin": [null]} }), &record);
    }
    assert_miss(json!({"metadata.n": null}), &record);
    assert_hit(json!({"metadata.n": {"$ne": null}}), &record);
    assert_hit(json!({"metadata.n": {"$nin": [null, 2]}}), &record);
    assert_miss(json!({"metadata.sub": null}), &record);
}

#[test]
fn exists_counts_null_as_present() {
    let record = doc(json!({"z": null, "n": 0, "arr": [], "objs": [{"b": 1}, {"c": 2}]}));
    for present in [
        "metadata.z",
        "metadata.n",
        "metadata.arr",
        "metadata.objs.b",
        "metadata.objs.c",
    ] {
        assert_hit(json!({ present: {"$exists": true} }), &record);
        assert_miss(json!({ present: {"$exists": false} }), &record);
    }
    for absent in [
        "metadata.missing",
        "metadata.z.x",
        "metadata.n.x",
        "metadata.arr.x",
        "metadata.objs.d",
    ] {
        assert_miss(json!({ absent: {"$exists": true} }), &record);
        assert_hit(json!({ absent: {"$exists": false} }), &record);
    }
}

#[test]
fn negations_match_missing_fields() {
    let record = doc(json!({"n": 5}));
    assert_hit(json!({"metadata.missing": {"$ne": 5}}), &record);
    assert_hit(json!({"metadata.missing": {"$nin": [5]}}), &record);
    assert_hit(json!({"metadata.missing": {"$not": {"$gt": 1}}}), &record);
    assert_hit(
        json!({"metadata.missing": {"$not": {"$regex": "x"}}}),
        &record,
    );
    assert_miss(json!({"metadata.n": {"$ne": 5.0}}), &record);
    assert_miss(json!({"metadata.n": {"$not": {"$gt": 1}}}), &record);
    assert_hit(
        json!({"metadata.n": {"$not": {"$gt": 1, "$lt": 3}}}),
        &record,
    );
    assert_miss(
        json!({"metadata.n": {"$not": {"$gt": 1, "$lt": 9}}}),
        &record,
    );
    assert_hit(json!({"metadata.n": {"$not": {"$eq": "5"}}}), &record);
}

// ---- matching: arrays and paths ----

#[test]
fn leaf_arrays_match_by_element_or_as_a_whole() {
    let record =
        doc(json!({"tags": ["a", "b"], "nums": [3, 12], "nested": [[1, 2], 3], "empty": []}));
    assert_hit(json!({"metadata.tags": "a"}), &record);
    assert_hit(json!({"metadata.tags": ["a", "b"]}), &record);
    assert_miss(json!({"metadata.tags": ["b", "a"]}), &record);
    assert_hit(json!({"metadata.tags": {"$in": ["z", "b"]}}), &record);
    assert_miss(json!({"metadata.tags": {"$nin": ["z", "b"]}}), &record);
    assert_miss(json!({"metadata.tags": {"$ne": "a"}}), &record);
    assert_hit(json!({"metadata.tags": {"$ne": "c"}}), &record);
    assert_hit(json!({"metadata.tags": {"$in": [["a", "b"]]}}), &record);
    // Each operator may be satisfied by a different element.
    assert_hit(json!({"metadata.nums": {"$gt": 10}}), &record);
    assert_hit(json!({"metadata.nums": {"$gt": 5, "$lt": 10}}), &record);
    assert_miss(json!({"metadata.nums": {"$gt": 12}}), &record);
    // A nested array is one element: matched whole, not expanded again.
    assert_hit(json!({"metadata.nested": [1, 2]}), &record);
    assert_hit(json!({"metadata.nested": 3}), &record);
    assert_miss(json!({"metadata.nested": 1}), &record);
    // The array itself is a candidate, in its own type bracket.
    assert_hit(json!({"metadata.nums": {"$gt": [3]}}), &record);
    assert_hit(json!({"metadata.empty": []}), &record);
    assert_miss(json!({"metadata.empty": null}), &record);
    assert_hit(json!({"metadata.empty": {"$exists": true}}), &record);
    assert_hit(json!({"metadata.empty": {"$ne": null}}), &record);
    assert_miss(json!({"metadata.tags": null}), &doc(json!({"tags": ["a"]})));
    assert_hit(
        json!({"metadata.tags": null}),
        &doc(json!({"tags": ["a", null]})),
    );
}

#[test]
fn paths_fan_out_over_arrays_of_objects() {
    let record = doc(json!({
        "items": [{"name": "x", "qty": 1}, {"name": "y", "qty": 5, "tags": ["p", "q"]}, 7],
    }));
    assert_hit(json!({"metadata.items.name": "y"}), &record);
    assert_hit(json!({"metadata.items.qty": {"$gt": 4}}), &record);
    assert_hit(json!({"metadata.items.tags": "q"}), &record);
    assert_miss(json!({"metadata.items.name": "z"}), &record);
    // The first element has no tags: that is a missing candidate.
    assert_hit(json!({"metadata.items.tags": null}), &record);
    assert_hit(json!({"metadata.items.tags": {"$exists": true}}), &record);
    assert_miss(json!({"metadata.items.nope": {"$exists": true}}), &record);
    assert_hit(json!({"metadata.items.nope": null}), &record);
}

#[test]
fn dotted_null_skips_scalar_array_elements() {
    // MongoDB (through 8.x) yields nothing for scalars inside an array part-way along a
    // path, so these arrays neither equal null nor "exist" at `a.b`.
    for value in [json!([1, 2]), json!([]), json!([[]]), json!([null, null])] {
        let record = doc(json!({ "a": value }));
        assert_miss(json!({"metadata.a.b": null}), &record);
        assert_hit(json!({"metadata.a.b": {"$ne": null}}), &record);
        assert_hit(json!({"metadata.a.b": {"$exists": false}}), &record);
    }
    let record = doc(json!({"a": [{"b": 3}, {}]}));
    assert_hit(json!({"metadata.a.b": null}), &record);
    assert_miss(json!({"metadata.a.b": {"$ne": null}}), &record);
}

#[test]
fn numeric_segments_index_arrays() {
    let record = doc(json!({
        "tags": ["a", "b"],
        "items": [{"name": "x"}, {"name": "y"}],
        "grid": [[1, 2], [3, 4]],
        "odd": [{"0": "zero-key"}, "s"],
    }));
    assert_hit(json!({"metadata.tags.0": "a"}), &record);
    assert_miss(json!({"metadata.tags.0": "b"}), &record);
    assert_hit(json!({"metadata.tags.1": "b"}), &record);
    assert_miss(json!({"metadata.tags.01": "b"}), &record);
    // Past the end nothing is yielded, not even a missing value.
    assert_miss(json!({"metadata.tags.5": null}), &record);
    assert_hit(json!({"metadata.tags.5": {"$exists": false}}), &record);
    assert_hit(json!({"metadata.items.1.name": "y"}), &record);
    assert_miss(json!({"metadata.items.1.name": "x"}), &record);
    assert_hit(json!({"metadata.items.0": {"name": "x"}}), &record);
    // An element picked by index is not expanded again...
    assert_hit(json!({"metadata.grid.0": [1, 2]}), &record);
    assert_miss(json!({"metadata.grid.0": 1}), &record);
    // ...but a path may continue into it.
    assert_hit(json!({"metadata.grid.1.0": 3}), &record);
    assert_miss(json!({"metadata.grid.1.0": 4}), &record);
    // An object element is searched for the key "0" as well as picked by index.
    assert_hit(json!({"metadata.odd.0": "zero-key"}), &record);
    assert_hit(json!({"metadata.odd.0": {"0": "zero-key"}}), &record);
    assert_hit(json!({"metadata.odd.1": "s"}), &record);
}

// ---- matching: $regex ----

#[test]
fn regex_matches_strings_with_options() {
    let record = doc(
        json!({"name": "Analytics Team", "lines": "one\ntwo", "n": 5, "tags": ["red", "Blue"]}),
    );
    assert_hit(json!({"metadata.name": {"$regex": "^Analytics"}}), &record);
    assert_miss(json!({"metadata.name": {"$regex": "^analytics"}}), &record);
    assert_hit(
        json!({"metadata.name": {"$regex": "^analytics", "$options": "i"}}),
        &record,
    );
    assert_hit(json!({"metadata.name": {"$regex": "(?i)TEAM$"}}), &record);
    assert_miss(json!({"metadata.lines": {"$regex": "^two"}}), &record);
    assert_hit(
        json!({"metadata.lines": {"$regex": "^two", "$options": "m"}}),
        &record,
    );
    assert_miss(json!({"metadata.lines": {"$regex": "one.two"}}), &record);
    assert_hit(
        json!({"metadata.lines": {"$regex": "one.two", "$options": "s"}}),
        &record,
    );
    assert_hit(
        json!({"metadata.name": {"$regex": "ana lytics # comment", "$options": "xi"}}),
        &record,
    );
    assert_hit(
        json!({"metadata.tags": {"$regex": "^blu", "$options": "i"}}),
        &record,
    );
    assert_miss(json!({"metadata.n": {"$regex": "5"}}), &record);
    assert_miss(json!({"metadata.missing": {"$regex": ".*"}}), &record);
    assert_hit(json!({"metadata.n": {"$not": {"$regex": "5"}}}), &record);
    assert_hit(
        json!({"status": {"$regex": "^Run", "$ne": "Runner"}}),
        &record,
    );
}

#[test]
fn regex_follows_pcre_where_the_dialects_differ() {
    let pattern = |source: &str| Pattern::new(source, "").unwrap();
    // MongoDB's classes are ASCII.
    assert!(pattern(r"^\d+$").is_match("123"));
    assert!(!pattern(r"\d").is_match("٣"));
    assert!(!pattern(r"\w").is_match("é"));
    assert!(pattern(r"\W").is_match("é"));
    assert!(!pattern(r"\s").is_match("\u{a0}"));
    assert!(pattern(r"[\d_]").is_match("_"));
    assert!(!pattern(r"[\d_]").is_match("٣"));
    assert!(pattern(r"[^\D]").is_match("7"));
    assert!(!pattern(r"[^\D]").is_match("x"));
    assert!(pattern(r"\bcat\b").is_match("a cat!"));
    assert!(pattern(r"\v").is_match("a\rb"));
    // PCRE reads these as literal characters.
    assert!(pattern(r"[[]").is_match("["));
    assert!(pattern(r"[]a]").is_match("]"));
    assert!(pattern(r"[a&&b]").is_match("&"));
    assert!(pattern(r"\<tag\>").is_match("<tag>"));
    assert!(pattern(r"[#~]").is_match("#") && pattern(r"[#~]").is_match("~"));
    assert!(Pattern::new(r"^[#]$", "x").unwrap().is_match("#"));
    assert!(pattern(r"[+--]").is_match(","));
    assert!(pattern(r"[a-]").is_match("-"));
    assert!(pattern(r"[\--]").is_match("-"));
    assert!(pattern(r"[[:alpha:]]+").is_match("abc"));
    assert!(!pattern(r"^[[:digit:]]+$").is_match("12a"));
    let extended = Pattern::new(r"a[ ]b # spaced", "x").unwrap();
    assert!(extended.is_match("a b"));
    assert!(!extended.is_match("ab"));
    // PCRE's `$` also matches before a final newline, but `\z` does not.
    assert!(pattern("abc$").is_match("abc\n"));
    assert!(!pattern("abc$").is_match("abc\n\n"));
    assert!(!pattern(r"abc\z").is_match("abc\n"));
    assert!(pattern(r"^abc$").is_match("abc"));
}

// ---- matching: logical operators ----

#[test]
fn logical_operators_combine_filters() {
    let record = doc(json!({"team": "analytics", "size": 3}));
    assert_hit(
        json!({"$and": [{"metadata.team": "analytics"}, {"metadata.size": 3}]}),
        &record,
    );
    assert_miss(
        json!({"$and": [{"metadata.team": "analytics"}, {"metadata.size": 4}]}),
        &record,
    );
    assert_hit(
        json!({"$or": [{"metadata.team": "ops"}, {"metadata.size": 3}]}),
        &record,
    );
    assert_miss(
        json!({"$or": [{"metadata.team": "ops"}, {"metadata.size": 4}]}),
        &record,
    );
    assert_hit(
        json!({"$nor": [{"metadata.team": "ops"}, {"metadata.size": 4}]}),
        &record,
    );
    assert_miss(
        json!({"$nor": [{"metadata.team": "ops"}, {"metadata.size": 3}]}),
        &record,
    );
    assert_hit(json!({"$or": [{}]}), &record);
    assert_miss(json!({"$nor": [{}]}), &record);
    assert_hit(
        json!({
            "status": "Running",
            "$or": [{"metadata.size": {"$gt": 10}}, {"$and": [{"metadata.team": {"$in": ["analytics"]}}]}],
            "$nor": [{"port": null}],
        }),
        &record,
    );
}

// ---- sorting and the window ----

fn fleet() -> Vec<InstanceRecord> {
    let mut records = vec![
        record("tidb-c", json!({"rank": 2, "team": "b"})),
        record("tidb-a", json!({"rank": 10, "team": "a"})),
        record("tidb-e", json!({"team": "c"})),
        record("tidb-b", json!({"rank": 2})),
        record("tidb-d", json!({"rank": "x", "team": "a"})),
        record("tidb-f", json!({"rank": null})),
    ];
    for (index, record) in records.iter_mut().enumerate() {
        record.created_at = at(1_700_000_000 + 60 * (6 - index as i64));
        record.port = Some(30900 + index as u16);
    }
    records[2].port = None;
    records
}

fn ids(records: &[InstanceRecord]) -> Vec<&str> {
    records
        .iter()
        .map(|record| record.framedb_id.as_str())
        .collect()
}

fn query(filter: Value, limit: Option<u64>, skip: Option<u64>, sort: Option<&str>) -> Query {
    Query::new(
        Filter::parse(&filter).unwrap(),
        QueryOptions {
            limit,
            skip,
            sort: sort.map(str::to_owned),
        },
    )
    .unwrap()
}

#[test]
fn query_defaults_and_bounds() {
    let plain = query(json!({}), None, None, None);
    assert_eq!(
        (plain.limit, plain.skip, plain.sort.clone()),
        (DEFAULT_LIMIT, 0, None)
    );
    assert_eq!(plain, Query::with_filter(Filter::all()));
    let checked = |limit, skip, sort: Option<&str>| {
        Query::new(
            Filter::all(),
            QueryOptions {
                limit,
                skip,
                sort: sort.map(str::to_owned),
            },
        )
    };
    for limit in [0, MAX_LIMIT + 1] {
        let err = checked(Some(limit), None, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("limit must be between 1 and 10000 (got {limit})")
        );
    }
    checked(Some(MAX_LIMIT), Some(MAX_SKIP), None).unwrap();
    let err = checked(None, Some(MAX_SKIP + 1), None).unwrap_err();
    assert!(
        err.to_string().starts_with("skip must be at most 1000000"),
        "{err}"
    );
    for bad in [
        "public_url",
        "-public_url",
        "",
        "-",
        "metadata..a",
        "cluster_id.x",
        "$natural",
    ] {
        let err = checked(None, None, Some(bad)).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{bad}: {err:?}");
        assert!(err.to_string().contains("sort"), "{bad}: {err}");
    }
}

#[test]
fn sort_parses_direction_and_path() {
    let sort = Sort::parse("-created_at").unwrap();
    assert!(sort.descending);
    assert_eq!(sort.field.dotted(), "created_at");
    let sort = Sort::parse("metadata.team").unwrap();
    assert!(!sort.descending);
    assert_eq!(sort.field.segments(), ["metadata", "team"]);
}

#[test]
fn without_sort_results_follow_framedb_id() {
    let records = fleet();
    let all = query(json!({}), None, None, None).run(&records);
    assert_eq!(
        ids(&all),
        ["tidb-a", "tidb-b", "tidb-c", "tidb-d", "tidb-e", "tidb-f"]
    );
}

#[test]
fn sorts_top_level_fields_both_ways() {
    let records = fleet();
    let newest = query(json!({}), None, None, Some("-created_at")).run(&records);
    assert_eq!(
        ids(&newest),
        ["tidb-c", "tidb-a", "tidb-e", "tidb-b", "tidb-d", "tidb-f"]
    );
    let oldest = query(json!({}), None, None, Some("created_at")).run(&records);
    assert_eq!(
        ids(&oldest),
        ["tidb-f", "tidb-d", "tidb-b", "tidb-e", "tidb-a", "tidb-c"]
    );
    // A missing port is null, which sorts first.
    let by_port = query(json!({}), None, None, Some("port")).run(&records);
    assert_eq!(
        ids(&by_port),
        ["tidb-e", "tidb-c", "tidb-a", "tidb-b", "tidb-d", "tidb-f"]
    );
    // Equal statuses fall back to framedb_id, ascending even when descending.
    let by_status = query(json!({}), None, None, Some("-status")).run(&records);
    assert_eq!(
        ids(&by_status),
        ["tidb-a", "tidb-b", "tidb-c", "tidb-d", "tidb-e", "tidb-f"]
    );
}

#[test]
fn sorts_metadata_in_bson_order() {
    let records = fleet();
    // null and missing first (tied, so by id), then numbers, then strings.
    let ascending = query(json!({}), None, None, Some("metadata.rank")).run(&records);
    assert_eq!(
        ids(&ascending),
        ["tidb-e", "tidb-f", "tidb-b", "tidb-c", "tidb-a", "tidb-d"]
    );
    let descending = query(json!({}), None, None, Some("-metadata.rank")).run(&records);
    assert_eq!(
        ids(&descending),
        ["tidb-d", "tidb-a", "tidb-b", "tidb-c", "tidb-e", "tidb-f"]
    );
    let by_team = query(json!({}), None, None, Some("metadata.team")).run(&records);
    assert_eq!(
        ids(&by_team),
        ["tidb-b", "tidb-f", "tidb-a", "tidb-d", "tidb-c", "tidb-e"]
    );
}

#[test]
fn array_fields_sort_by_their_smallest_or_largest_element() {
    let records = vec![
        record("tidb-a", json!({"v": [5, 1]})),
        record("tidb-b", json!({"v": 3})),
        record("tidb-c", json!({"v": [2, 9]})),
        record("tidb-d", json!({"v": []})),
        record("tidb-e", json!({})),
        record("tidb-f", json!({"v": [{"x": 1}, "s"]})),
    ];
    let ascending = query(json!({}), None, None, Some("metadata.v")).run(&records);
    // [] sorts below null; then 1 (a), 2 (c), 3 (b), then "s" (f).
    assert_eq!(
        ids(&ascending),
        ["tidb-d", "tidb-e", "tidb-a", "tidb-c", "tidb-b", "tidb-f"]
    );
    let descending = query(json!({}), None, None, Some("-metadata.v")).run(&records);
    // The object (f) is largest; then 9 (c), 5 (a), 3 (b), null, [].
    assert_eq!(
        ids(&descending),
        ["tidb-f", "tidb-c", "tidb-a", "tidb-b", "tidb-e", "tidb-d"]
    );

    let nested = vec![
        record("tidb-a", json!({"items": [{"n": 4}, {"n": 8}]})),
        record("tidb-b", json!({"items": [{"n": 6}]})),
        record("tidb-c", json!({"items": [{"m": 1}, {"n": 5}]})),
    ];
    let ascending = query(json!({}), None, None, Some("metadata.items.n")).run(&nested);
    assert_eq!(ids(&ascending), ["tidb-c", "tidb-a", "tidb-b"]);
    let descending = query(json!({}), None, None, Some("-metadata.items.n")).run(&nested);
    assert_eq!(ids(&descending), ["tidb-a", "tidb-b", "tidb-c"]);
    let first = query(json!({}), None, None, Some("metadata.items.0.n")).run(&nested);
    assert_eq!(ids(&first), ["tidb-c", "tidb-a", "tidb-b"]);
}

#[test]
fn compare_matches_the_order_of_run() {
    let records = fleet();
    for sort in [
        None,
        Some("metadata.rank"),
        Some("-metadata.rank"),
        Some("-port"),
        Some("node_id"),
    ] {
        let q = query(json!({}), None, None, sort);
        let ran = q.run(&records);
        let mut sorted = records.clone();
        sorted.sort_by(|a, b| q.compare(a, b));
        assert_eq!(ids(&ran), ids(&sorted), "{sort:?}");
    }
}

#[test]
fn filters_then_windows() {
    let records = fleet();
    let page = query(
        json!({"metadata.team": {"$exists": true}}),
        Some(2),
        Some(1),
        Some("-metadata.team"),
    )
    .run(&records);
    // Teams: c (e), b (c), a (a), a (d).
    assert_eq!(ids(&page), ["tidb-c", "tidb-a"]);
    let beyond = query(json!({}), Some(5), Some(6), None).run(&records);
    assert!(beyond.is_empty());
    let tail = query(json!({}), Some(5), Some(4), None).run(&records);
    assert_eq!(ids(&tail), ["tidb-e", "tidb-f"]);
    let none = query(json!({"cluster_id": "elsewhere"}), None, None, Some("port")).run(&records);
    assert!(none.is_empty());
}

#[test]
fn partial_selection_agrees_with_a_full_sort() {
    let records: Vec<InstanceRecord> = (0..3000)
        .map(|i| {
            let mut record = record(
                &format!("tidb-{i:05}"),
                json!({"score": (i * 7919) % 1000, "g": i % 3}),
            );
            record.created_at = at(1_700_000_000 + (i * 31 % 977) as i64);
            record
        })
        .collect();
    for (sort, skip, limit) in [
        (Some("metadata.score"), 10, 25),
        (Some("-metadata.score"), 0, 1),
        (Some("-created_at"), 2990, 50),
        (None, 100, 10),
    ] {
        let q = query(
            json!({"metadata.g": {"$ne": 1}}),
            Some(limit),
            Some(skip),
            sort,
        );
        let mut expected: Vec<&InstanceRecord> =
            records.iter().filter(|r| q.filter.matches(r)).collect();
        expected.sort_by(|a, b| q.compare(a, b));
        let expected: Vec<&str> = expected
            .iter()
            .skip(skip as usize)
            .take(limit as usize)
            .map(|r| r.framedb_id.as_str())
            .collect();
        assert_eq!(ids(&q.run(&records)), expected, "{sort:?} {skip} {limit}");
    }
}
