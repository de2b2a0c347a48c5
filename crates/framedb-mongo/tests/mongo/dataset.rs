//! The shared data set of the conformance suite and the queries both registries must
//! answer alike: metadata with nested objects, arrays of scalars, of arrays and of
//! objects, missing fields, integers and doubles, booleans, nulls and strings.

use framedb_core::{Filter, InstanceRecord, Query, QueryOptions};
use serde_json::{Value, json};

/// The metadata of the records, one per record, in id order (`db-01`, `db-02`, ...).
fn metadata() -> Vec<Value> {
    vec![
        json!({"team": "analytics", "tier": "gold", "replicas": 3, "owner": "Alice",
               "tags": ["prod", "eu"], "limits": {"cpu": 2, "memory": "4Gi"}, "mixed": 5}),
        json!({"team": "analytics", "tier": "silver", "replicas": 1, "owner": "bob",
               "tags": ["dev"], "limits": {"cpu": 0.5}, "mixed": "5"}),
        json!({"team": "billing", "tier": null, "replicas": 2.5, "owner": "ALICE", "tags": [],
               "mixed": [5, "a"]}),
        json!({"team": "billing", "replicas": "3", "tags": "prod", "mixed": {"v": 5}}),
        json!({}),
        json!({"team": ["analytics", "billing"], "replicas": 5, "mixed": null,
               "shards": [{"name": "s1", "size": 10}, {"name": "s2", "size": 20}]}),
        json!({"shards": [{"name": "s3", "size": 5}], "enabled": true, "mixed": true}),
        json!({"enabled": false, "score": -1, "mixed": 4.5}),
        json!({"score": 1000.0, "nested": {"a": {"b": {"c": 1}}}, "mixed": []}),
        json!({"nested": {"a": {"b": {"c": "x"}}}, "score": 1000, "mixed": [[5]]}),
        json!({"nested": {"a": [{"b": 1}, {"b": 2}]}, "owner": "Bob", "mixed": "abc"}),
        json!({"nested": {"a": [1, 2, 3]}, "tier": "gold", "mixed": -7}),
        json!({"matrix": [[1, 2], [3, 4]], "tier": "bronze", "replicas": 3.0}),
        json!({"tags": ["prod", null], "owner": null, "team": "ops"}),
        json!({"owner": "carol\n", "team": "ops", "score": 0}),
        json!({"team": "Ops", "owner": "dave", "score": 0.1}),
        json!({"limits": {"memory": "4Gi", "cpu": 2}, "tier": "Gold"}),
        json!({"limits": {"cpu": 2, "memory": "4Gi"}, "team": "analytics", "replicas": 4}),
        json!({"replicas": 9_007_199_254_740_993_i64, "score": -0.5}),
        json!({"tags": [["prod"]], "team": "analytics", "tier": "gold"}),
        json!({"shards": [], "tags": ["eu", "us"], "owner": "alice smith"}),
        json!({"version": "8.1.0", "tier": "gold", "shards": [{"name": "s1"}, {"size": 30}]}),
        json!({"flags": [true, false], "tier": "bronze", "replicas": 0}),
        json!({"tier": "Gold", "replicas": 3.0, "version": "10.0.2", "owner": "Éloïse"}),
        json!({"nested": {"a": null}, "tags": ["us"], "score": 7}),
        json!({"nested": {"a": {"b": [1, 5]}}, "replicas": -3, "team": "billing"}),
        json!({"nested": "flat", "limits": {}, "tier": "silver"}),
        json!({"shards": [{"name": "s2", "size": 20.0}, {"name": "s9", "size": -1}], "replicas": [2, 8]}),
        json!({"mixed": {"v": 4}, "tags": ["eu"], "score": 12.75, "enabled": true}),
        json!({"owner": "zed", "team": "analytics", "tier": "platinum", "replicas": 2}),
    ]
}

/// The records of the data set: ids `db-01` to `db-30` over three clusters and three
/// nodes, some without a port, with timestamps that repeat (so ties are broken by id).
pub fn records() -> Vec<InstanceRecord> {
    let statuses = [
        "Running",
        "Provisioning",
        "Pending",
        "Failed",
        "Running",
        "Unknown",
    ];
    let sizes = ["1Gi", "2Gi", "1536Mi", "1Ti", "10Gi"];
    metadata()
        .into_iter()
        .enumerate()
        .map(|(index, metadata)| {
            let n = index + 1;
            let node = ["node-a", "node-b", "node-c"][n % 3 / 2 + n % 2];
            let port = if n % 4 == 0 {
                Value::Null
            } else {
                json!(30900 + (n * 7) % 100)
            };
            serde_json::from_value(json!({
                "framedb_id": format!("db-{n:02}"),
                "cluster_id": format!("cluster-0{}", n % 3 + 1),
                "node_id": node,
                "storage_size": sizes[n % sizes.len()],
                "metadata": metadata,
                "port": port,
                "status": statuses[n % statuses.len()],
                "created_at": format!("2026-01-{:02}T08:00:00.000Z", 1 + n / 2),
                "updated_at": format!("2026-02-{:02}T09:30:00.{:03}Z", 1 + n % 5, n * 11),
            }))
            .unwrap_or_else(|error| panic!("record {n}: {error}"))
        })
        .collect()
}

/// A query: its filter and query-string options, as the API receives them.
pub struct Case {
    /// The JSON filter.
    pub filter: Value,
    /// `limit`, `skip` and `sort`.
    pub options: QueryOptions,
}

impl Case {
    /// The checked query.
    pub fn query(&self) -> Query {
        let filter = Filter::parse(&self.filter)
            .unwrap_or_else(|error| panic!("filter {} is refused: {error}", self.filter));
        Query::new(filter, self.options.clone())
            .unwrap_or_else(|error| panic!("options {:?} are refused: {error}", self.options))
    }

    /// How the case reads in a message.
    pub fn describe(&self) -> String {
        let QueryOptions { limit, skip, sort } = &self.options;
        let mut text = self.filter.to_string();
        if let Some(sort) = sort {
            text.push_str(&format!(" sort={sort}"));
        }
        if let Some(skip) = skip {
            text.push_str(&format!(" skip={skip}"));
        }
        if let Some(limit) = limit {
            text.push_str(&format!(" limit={limit}"));
        }
        text
    }
}

fn filter(filter: Value) -> Case {
    Case {
        filter,
        options: QueryOptions::default(),
    }
}

fn sorted(filter: Value, sort: &str, skip: Option<u64>, limit: Option<u64>) -> Case {
    Case {
        filter,
        options: QueryOptions {
            limit,
            skip,
            sort: Some(sort.to_owned()),
        },
    }
}

fn window(filter: Value, skip: Option<u64>, limit: Option<u64>) -> Case {
    Case {
        filter,
        options: QueryOptions {
            limit,
            skip,
            sort: None,
        },
    }
}

/// The queries: every allowed operator, dotted paths into metadata, arrays, missing fields,
/// `$exists`, `$not`, `$nor`, `$regex` with options, `$in`/`$nin` with null, and sorts on
/// top-level and metadata fields of mixed types (and missing ones) with skip and limit.
pub fn cases() -> Vec<Case> {
    vec![
        // Top-level fields.
        filter(json!({})),
        filter(json!({"cluster_id": "cluster-01"})),
        filter(json!({"cluster_id": "cluster-02", "node_id": "node-b"})),
        filter(json!({"status": {"$in": ["Running", "Pending"]}})),
        filter(json!({"status": {"$nin": ["Running"]}, "storage_size": {"$ne": "1Gi"}})),
        filter(json!({"port": null})),
        filter(json!({"port": {"$ne": null, "$lt": 30930}})),
        filter(json!({"port": {"$gte": 30950, "$lte": 30980}})),
        filter(json!({"port": {"$exists": true}})),
        filter(json!({"created_at": {"$gte": "2026-01-10T00:00:00.000Z"}})),
        filter(json!({"updated_at": {"$lt": "2026-02-03T00:00:00.000Z"}})),
        filter(json!({"storage_size": {"$gt": "1Gi"}})),
        filter(json!({"framedb_id": {"$regex": "^db-1\\d$"}})),
        // Equality on metadata: scalars, arrays, objects, null, missing.
        filter(json!({"metadata.team": "analytics"})),
        filter(json!({"metadata.team": ["analytics", "billing"]})),
        filter(json!({"metadata.team": {"$eq": "Ops"}})),
        filter(json!({"metadata.tags": "prod"})),
        filter(json!({"metadata.tags": ["prod"]})),
        filter(json!({"metadata.tags": []})),
        filter(json!({"metadata.tags": null})),
        filter(json!({"metadata.tags": {"$ne": null}})),
        filter(json!({"metadata.tags.0": "prod"})),
        filter(json!({"metadata.tier": null})),
        filter(json!({"metadata.replicas": 3})),
        filter(json!({"metadata.replicas": {"$ne": 3}})),
        filter(json!({"metadata.score": 0})),
        filter(json!({"metadata.limits": {"cpu": 2, "memory": "4Gi"}})),
        filter(json!({"metadata.limits": {"$eq": {"memory": "4Gi", "cpu": 2}}})),
        filter(json!({"metadata.limits": {}})),
        filter(json!({"metadata": {}})),
        filter(json!({"metadata.flags": false})),
        filter(json!({"metadata.enabled": true})),
        filter(json!({"metadata.mixed": {"v": 5}})),
        // Comparisons stay within a type bracket.
        filter(json!({"metadata.replicas": {"$gt": 2}})),
        filter(json!({"metadata.replicas": {"$gte": 3, "$lte": 5}})),
        filter(json!({"metadata.replicas": {"$lt": "4"}})),
        filter(json!({"metadata.replicas": {"$gt": 9_007_199_254_740_992_i64}})),
        filter(json!({"metadata.score": {"$gte": 1000}})),
        filter(json!({"metadata.score": {"$lt": 0.1}})),
        filter(json!({"metadata.score": {"$lte": null}})),
        filter(json!({"metadata.score": {"$gte": null}})),
        filter(json!({"metadata.mixed": {"$gt": 4}})),
        filter(json!({"metadata.mixed": {"$gte": "5"}})),
        filter(json!({"metadata.mixed": {"$lt": {"v": 5}}})),
        filter(json!({"metadata.mixed": {"$gt": [5]}})),
        filter(json!({"metadata.tags": {"$gte": ["eu"]}})),
        filter(json!({"metadata.enabled": {"$lt": true}})),
        // Dotted paths through objects and arrays.
        filter(json!({"metadata.nested.a.b.c": 1})),
        filter(json!({"metadata.nested.a.b": 2})),
        filter(json!({"metadata.nested.a.b": 5})),
        filter(json!({"metadata.nested.a": 2})),
        filter(json!({"metadata.nested.a": null})),
        filter(json!({"metadata.nested.a.1": 2})),
        filter(json!({"metadata.nested.a.0.b": 1})),
        filter(json!({"metadata.nested.a.b": {"$exists": true}})),
        filter(json!({"metadata.shards.name": "s1"})),
        filter(json!({"metadata.shards.size": {"$gt": 15}})),
        filter(json!({"metadata.shards.size": 20})),
        filter(json!({"metadata.shards.size": null})),
        filter(json!({"metadata.shards.size": {"$exists": false}})),
        filter(json!({"metadata.shards.0.name": "s2"})),
        filter(json!({"metadata.shards": {"name": "s3", "size": 5}})),
        filter(json!({"metadata.shards": {"size": 5, "name": "s3"}})),
        filter(json!({"metadata.limits.cpu": {"$in": [2, 0.5]}})),
        filter(json!({"metadata.matrix": [3, 4]})),
        filter(json!({"metadata.matrix": 3})),
        filter(json!({"metadata.matrix.0": [1, 2]})),
        filter(json!({"metadata.matrix.1.0": 3})),
        filter(json!({"metadata.replicas.1": 8})),
        // $exists.
        filter(json!({"metadata.tier": {"$exists": true}})),
        filter(json!({"metadata.tier": {"$exists": false}})),
        filter(
            json!({"metadata.nested": {"$exists": true}, "metadata.nested.a.b": {"$exists": false}}),
        ),
        // $in / $nin, with null.
        filter(json!({"metadata.tier": {"$in": ["gold", null]}})),
        filter(json!({"metadata.tier": {"$nin": ["gold", null]}})),
        filter(json!({"metadata.tier": {"$nin": ["gold"]}})),
        filter(json!({"metadata.tags": {"$in": [null, "us"]}})),
        filter(json!({"metadata.tags": {"$nin": [[], "eu"]}})),
        filter(json!({"metadata.team": {"$nin": [["analytics", "billing"]]}})),
        filter(json!({"metadata.score": {"$in": [0, 1000, -0.5]}})),
        filter(json!({"metadata.mixed": {"$in": [[5, "a"], 5]}})),
        // $regex, with options.
        filter(json!({"metadata.owner": {"$regex": "^alice$", "$options": "i"}})),
        filter(json!({"metadata.owner": {"$regex": "^alice"}})),
        filter(json!({"metadata.owner": {"$regex": "^carol$"}})),
        filter(json!({"metadata.owner": {"$regex": "^[a-c]", "$options": "i"}})),
        filter(json!({"metadata.owner": {"$regex": "\\w+\\s\\w+"}})),
        filter(json!({"metadata.owner": {"$regex": "^.loïse$"}})),
        filter(json!({"metadata.team": {"$regex": "^ana"}})),
        filter(json!({"metadata.version": {"$regex": "^ 8 \\. \\d+  # major", "$options": "x"}})),
        filter(json!({"metadata.owner": {"$regex": "^dave$", "$options": "m"}})),
        filter(json!({"metadata.owner": {"$regex": "carol.", "$options": "s"}})),
        // Repetitions the backtracking check accepts (registry.rs has refused ones).
        filter(json!({"metadata.owner": {"$regex": "^(a|l|i|c|e)+$", "$options": "i"}})),
        filter(json!({"metadata.version": {"$regex": "^\\d(\\.\\d){2}$"}})),
        filter(json!({"metadata.tier": {"$regex": "^(gold|silver)+$"}})),
        // $not.
        filter(json!({"metadata.owner": {"$not": {"$regex": "^a", "$options": "i"}}})),
        filter(json!({"metadata.replicas": {"$not": {"$gt": 2}}})),
        filter(json!({"metadata.replicas": {"$not": {"$not": {"$gt": 2}}}})),
        filter(json!({"metadata.tier": {"$not": {"$in": [null]}}})),
        filter(json!({"metadata.tags": {"$not": {"$exists": true}}})),
        filter(json!({"metadata.shards.size": {"$not": {"$gte": 10, "$lte": 20}}})),
        // $and, $or, $nor.
        filter(json!({"$or": [{"metadata.enabled": true}, {"metadata.score": {"$lt": 0}}]})),
        filter(json!({"$nor": [{"metadata.team": "analytics"}, {"metadata.tier": "gold"}]})),
        filter(json!({"$and": [{"port": {"$ne": null}}, {"port": {"$lt": 30950}}]})),
        filter(
            json!({"$and": [{"$or": [{"cluster_id": "cluster-01"}, {"node_id": "node-c"}]},
                               {"$nor": [{"status": "Running"}]}], "metadata.team": {"$exists": true}}),
        ),
        filter(
            json!({"metadata.team": "analytics", "$or": [{"metadata.tier": "gold"}, {"metadata.replicas": {"$lt": 2}}]}),
        ),
        // Sorts, skip and limit.
        window(json!({}), Some(25), None),
        window(json!({}), Some(100), None),
        window(json!({}), None, Some(1)),
        window(
            json!({"metadata.team": {"$exists": true}}),
            Some(3),
            Some(4),
        ),
        sorted(json!({}), "-created_at", None, None),
        sorted(json!({}), "created_at", Some(5), Some(10)),
        sorted(json!({}), "-framedb_id", None, Some(7)),
        sorted(json!({}), "port", None, None),
        sorted(json!({}), "-port", Some(3), Some(5)),
        sorted(json!({}), "status", Some(20), None),
        sorted(json!({}), "-storage_size", None, None),
        sorted(json!({}), "metadata.replicas", None, None),
        sorted(json!({}), "-metadata.replicas", None, None),
        sorted(json!({}), "metadata.mixed", None, None),
        sorted(json!({}), "-metadata.mixed", None, None),
        sorted(json!({}), "metadata.tags", None, None),
        sorted(json!({}), "-metadata.tags", None, None),
        sorted(json!({}), "metadata.shards.size", None, None),
        sorted(json!({}), "-metadata.shards.size", None, None),
        sorted(json!({}), "metadata.nested.a", None, None),
        sorted(json!({}), "-metadata.nested.a.b", None, None),
        sorted(json!({}), "metadata.limits", None, None),
        sorted(json!({}), "metadata.score", Some(2), Some(6)),
        sorted(json!({}), "-metadata.owner", None, None),
        sorted(json!({}), "metadata.absent", Some(4), Some(4)),
        sorted(json!({}), "metadata", None, None),
        sorted(
            json!({"metadata.team": {"$exists": true}}),
            "-metadata.team",
            None,
            Some(5),
        ),
        sorted(
            json!({"cluster_id": {"$ne": "cluster-03"}}),
            "-metadata.score",
            Some(1),
            Some(8),
        ),
    ]
}
