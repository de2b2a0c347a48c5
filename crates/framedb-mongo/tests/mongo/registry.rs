//! What only the MongoDB registry has: its indexes, its documents, its errors when the
//! server is away, and what it sends to the server.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use framedb_core::{Error, Filter, FramedbId, InstanceRegistry, Query, QueryOptions};
use framedb_mongo::{
    CLUSTER_NODE_INDEX, ID_INDEX, MongoConfig, MongoRegistry, STATUS_PORT_INDEX,
    UNAVAILABLE_MESSAGE, redact_uri,
};
use mongodb::bson::{Bson, Document, doc};
use mongodb::event::EventHandler;
use mongodb::event::command::CommandEvent;
use serde_json::json;

use crate::dataset;
use crate::support::{TestDb, mongodb_uri, test_config};

#[tokio::test]
async fn connect_creates_every_index() {
    let Some(db) = TestDb::open("indexes").await else {
        return;
    };
    // Connecting again finds them in place.
    let again = MongoRegistry::connect(&db.config).await.unwrap();
    let mut cursor = again.collection().list_indexes().await.unwrap();
    let mut indexes = Vec::new();
    while cursor.advance().await.unwrap() {
        indexes.push(cursor.deserialize_current().unwrap());
    }
    let named = |name: &str| {
        indexes
            .iter()
            .find(|index| index.options.as_ref().and_then(|o| o.name.as_deref()) == Some(name))
            .unwrap_or_else(|| panic!("no index {name} in {indexes:?}"))
    };
    let id = named(ID_INDEX);
    assert_eq!(id.keys, doc! {"framedb_id": 1});
    assert_eq!(id.options.as_ref().and_then(|o| o.unique), Some(true));
    let cluster_node = named(CLUSTER_NODE_INDEX);
    assert_eq!(
        cluster_node.keys,
        doc! {"cluster_id": 1, "node_id": 1, "framedb_id": 1}
    );
    assert_ne!(
        cluster_node.options.as_ref().and_then(|o| o.unique),
        Some(true)
    );
    assert_eq!(named(STATUS_PORT_INDEX).keys, doc! {"status": 1, "port": 1});
    db.drop().await;
}

/// Nothing listens on port 1: the registry answers `Unavailable` once the server
/// selection timeout has passed, whether at start-up or on a call.
#[tokio::test]
async fn an_unreachable_server_is_unavailable_within_the_timeout() {
    let config = MongoConfig::new("mongodb://framedb:s3cret@127.0.0.1:1/?appName=test")
        .server_selection_timeout(Duration::from_secs(1))
        .connect_timeout(Duration::from_secs(1));

    let started = Instant::now();
    let error = MongoRegistry::connect(&config).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(!format!("{error} {error:?}").contains("s3cret"));
    assert_eq!(
        Error::from(error),
        Error::Unavailable(UNAVAILABLE_MESSAGE.into())
    );
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");

    let options = MongoRegistry::client_options(&config).await.unwrap();
    let registry = MongoRegistry::new(mongodb::Client::with_options(options).unwrap(), &config);
    let started = Instant::now();
    let id = FramedbId::new("tidb-001").unwrap();
    assert_eq!(
        registry.get(&id).await,
        Err(Error::Unavailable(UNAVAILABLE_MESSAGE.into()))
    );
    assert_eq!(
        registry.insert(&dataset::records()[0]).await,
        Err(Error::Unavailable(UNAVAILABLE_MESSAGE.into()))
    );
    let query = Query::with_filter(Filter::all());
    assert!(registry.find(&query).await.unwrap_err().is_unreachable());
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(8), "took {elapsed:?}");
}

/// A readiness check does not wait out a long server selection: it is bounded by
/// `PING_DEADLINE`, and an unreachable server is unreachable to it, without credentials.
#[tokio::test]
async fn a_readiness_check_of_an_unreachable_server_is_bounded_by_its_own_deadline() {
    let config = MongoConfig::new("mongodb://framedb:s3cret@127.0.0.1:1/")
        .server_selection_timeout(Duration::from_secs(60));
    let options = MongoRegistry::client_options(&config).await.unwrap();
    let registry = MongoRegistry::new(mongodb::Client::with_options(options).unwrap(), &config);
    let started = Instant::now();
    let error = registry.ping().await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(error.is_unreachable(), "{error:?}");
    assert!(!format!("{error} {error:?}").contains("s3cret"));
    assert!(
        elapsed < framedb_mongo::PING_DEADLINE + Duration::from_secs(5),
        "took {elapsed:?}"
    );
}

#[test]
fn redact_uri_removes_credentials() {
    assert_eq!(
        redact_uri("mongodb://framedb:s3cret@mongo-0:27017,mongo-1:27017/admin?replicaSet=rs0"),
        "mongodb://mongo-0:27017,mongo-1:27017/admin?replicaSet=rs0"
    );
    assert_eq!(
        redact_uri("mongodb://127.0.0.1:27017"),
        "mongodb://127.0.0.1:27017"
    );
    let config = MongoConfig::new("mongodb://framedb:s3cret@mongo-0:27017");
    assert!(!format!("{config:?}").contains("s3cret"));
}

/// The unique index makes a create exclusive: of many concurrent inserts of one id,
/// exactly one succeeds and the others are `AlreadyExists`.
#[tokio::test]
async fn concurrent_inserts_of_one_id_store_one_record() {
    let Some(db) = TestDb::open("concurrent").await else {
        return;
    };
    let record = dataset::records().remove(0);
    let attempts: Vec<_> = (0..16)
        .map(|_| {
            let registry = db.registry.clone();
            let record = record.clone();
            tokio::spawn(async move { registry.insert(&record).await })
        })
        .collect();
    let mut created = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(()) => created += 1,
            Err(error) => assert_eq!(error, Error::AlreadyExists(record.framedb_id.clone())),
        }
    }
    assert_eq!(created, 1);
    let count = db
        .registry
        .collection()
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(count, 1);
    db.drop().await;
}

/// Documents hold the record's fields with the types the filters expect, and MongoDB's
/// `_id` stays inside.
#[tokio::test]
async fn documents_hold_the_record_fields() {
    let Some(db) = TestDb::open("documents").await else {
        return;
    };
    let records = dataset::records();
    db.registry.insert(&records[0]).await.unwrap();
    db.registry.insert(&records[3]).await.unwrap();
    let stored = db
        .registry
        .collection()
        .find_one(doc! {"framedb_id": "db-01"})
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(stored.get("_id"), Some(Bson::ObjectId(_))));
    let fields: Vec<_> = stored.keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        [
            "_id",
            "framedb_id",
            "cluster_id",
            "node_id",
            "storage_size",
            "metadata",
            "deletion_policy",
            "stamp",
            "port",
            "status",
            "created_at",
            "updated_at"
        ]
    );
    assert!(matches!(stored.get("port"), Some(Bson::Int32(_))));
    assert!(matches!(stored.get("created_at"), Some(Bson::String(_))));
    assert_eq!(
        stored.get_document("metadata").unwrap().get("limits"),
        Some(&Bson::Document(doc! {"cpu": 2, "memory": "4Gi"}))
    );
    let without_port = db
        .registry
        .collection()
        .find_one(doc! {"framedb_id": "db-04"})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(without_port.get("port"), Some(&Bson::Null));
    db.drop().await;
}

/// A document that is not a record (written by something else) is an internal error
/// with a sentence of the registry's own, not the reader's panic or a parse message.
#[tokio::test]
async fn foreign_documents_are_internal_errors() {
    let Some(db) = TestDb::open("foreign").await else {
        return;
    };
    db.registry
        .collection()
        .insert_one(doc! {"framedb_id": "intruder", "cluster_id": "cluster-01", "shell": true})
        .await
        .unwrap();
    let id = FramedbId::new("intruder").unwrap();
    match db.registry.get(&id).await {
        Err(Error::Internal(fault)) => assert!(!fault.message().contains("shell"), "{fault}"),
        other => panic!("{other:?}"),
    }
    let query = Query::with_filter(Filter::all());
    assert!(matches!(
        db.registry.find(&query).await,
        Err(Error::Internal(_))
    ));
    db.drop().await;
}

/// What reaches the server: every `find` carries a filter made only of the operators the
/// filter allows (README, "The API"), the configured `maxTimeMS`, and the query's sort, skip and limit; a filter
/// with server-side code, or a `$regex` on which the server's backtracking engine could take
/// exponential time, is refused before anything is sent.
#[tokio::test]
async fn only_rendered_filters_reach_the_server() {
    let Some(uri) = mongodb_uri("only_rendered_filters_reach_the_server") else {
        return;
    };
    let config = test_config(&uri, "sent").query_timeout(Duration::from_millis(7_500));
    let seen: Arc<Mutex<Vec<Document>>> = Arc::default();
    let mut options = MongoRegistry::client_options(&config).await.unwrap();
    let sink = Arc::clone(&seen);
    options.command_event_handler = Some(EventHandler::callback(move |event| {
        if let CommandEvent::Started(started) = event {
            sink.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(started.command);
        }
    }));
    let client = mongodb::Client::with_options(options).unwrap();
    client.database(&config.database).drop().await.unwrap();
    let registry = MongoRegistry::new(client, &config);
    registry.ensure_indexes().await.unwrap();
    for record in dataset::records() {
        registry.insert(&record).await.unwrap();
    }

    let take = || std::mem::take(&mut *seen.lock().unwrap_or_else(PoisonError::into_inner));
    take();
    for forbidden in [
        json!({"$where": "sleep(100) || true"}),
        json!({"metadata.x": {"$function": {"body": "return true", "args": [], "lang": "js"}}}),
        json!({"$expr": {"$gt": ["$port", 0]}}),
        json!({"metadata.x": {"$accumulator": {}}}),
        json!({"metadata.x": {"$eq": {"$where": "1"}}}),
        json!({"metadata.x": {"$regex": "^(a+)+$"}}),
        json!({"metadata.x": {"$regex": "(\\w+\\s?)*$"}}),
        json!({"metadata.x": {"$regex": "(x|x)*y"}}),
        json!({"metadata.x": {"$regex": "(a|ab)*c", "$options": "i"}}),
        json!({"metadata.x": {"$not": {"$regex": "(a|a?)+$"}}}),
        json!({"metadata.x": {"$regex": "(a)\\1"}}),
    ] {
        assert!(
            matches!(Filter::parse(&forbidden), Err(Error::Invalid(_))),
            "{forbidden}"
        );
    }
    assert!(take().is_empty(), "a refused filter reached the server");

    let cases = dataset::cases();
    for case in &cases {
        registry.find(&case.query()).await.unwrap();
    }
    let finds: Vec<Document> = take()
        .into_iter()
        .filter(|command| command.contains_key("find"))
        .collect();
    assert_eq!(finds.len(), cases.len());
    let allowed = [
        "$and", "$or", "$nor", "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin",
        "$exists", "$regex", "$options", "$not",
    ];
    for find in &finds {
        let filter = find.get_document("filter").unwrap();
        let mut operators = Vec::new();
        operator_keys(&Bson::Document(filter.clone()), &mut operators);
        for operator in operators {
            assert!(
                allowed.contains(&operator.as_str()),
                "{operator} sent in {find}"
            );
        }
        assert_eq!(
            find.get("maxTimeMS")
                .and_then(Bson::as_i64)
                .or_else(|| { find.get("maxTimeMS").and_then(Bson::as_i32).map(i64::from) }),
            Some(7_500),
            "{find}"
        );
        assert!(find.contains_key("sort"), "{find}");
    }

    // Sort, skip and limit are the server's work, not the registry's.
    let options = QueryOptions {
        limit: Some(3),
        skip: Some(2),
        sort: Some("-metadata.score".to_owned()),
    };
    let query = Query::new(
        Filter::parse(&json!({"metadata.score": {"$exists": true}})).unwrap(),
        options,
    )
    .unwrap();
    let found = registry.find(&query).await.unwrap();
    assert_eq!(found.len(), 3);
    let find = take()
        .into_iter()
        .find(|command| command.contains_key("find"))
        .unwrap();
    assert_eq!(
        find.get_document("sort").unwrap(),
        &doc! {"metadata.score": -1, "framedb_id": 1}
    );
    assert_eq!(find.get("skip").and_then(Bson::as_i64), Some(2), "{find}");
    assert_eq!(find.get("limit").and_then(Bson::as_i64), Some(3), "{find}");
    assert_eq!(
        find.get_document("filter").unwrap(),
        &doc! {"metadata.score": {"$exists": true}}
    );

    registry
        .client()
        .database(&config.database)
        .drop()
        .await
        .unwrap();
}

fn operator_keys(value: &Bson, out: &mut Vec<String>) {
    match value {
        Bson::Document(document) => {
            for (key, inner) in document {
                if key.starts_with('$') {
                    out.push(key.clone());
                }
                operator_keys(inner, out);
            }
        }
        Bson::Array(items) => items.iter().for_each(|item| operator_keys(item, out)),
        _ => {}
    }
}

/// A bulk load records what single inserts would, in one write.
#[tokio::test]
async fn a_bulk_load_records_what_single_inserts_would() {
    let Some(db) = TestDb::open("bulk").await else {
        return;
    };
    let records = dataset::records();
    db.registry.insert_all(&records).await.unwrap();
    db.registry.insert_all(&[]).await.unwrap();
    for record in &records {
        assert_eq!(&db.registry.get(&record.framedb_id).await.unwrap(), record);
    }
    // The unique index holds: a taken id is refused.
    assert!(db.registry.insert_all(&records[..1]).await.is_err());
    db.drop().await;
}
