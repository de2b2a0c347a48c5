//! The registry conformance suite, written once over `&dyn InstanceRegistry` and run with
//! the same cases against the in-memory registry and the MongoDB one: the port's error
//! contract, records kept unchanged, and identical answers to every query of the shared
//! data set.

use framedb_core::memory::InMemoryRegistry;
use framedb_core::{
    ClusterId, Error, Filter, FramedbId, InstanceRecord, InstanceRegistry, InstanceStatus,
    Metadata, NodeId, Query, Removal, Stamp, StorageSize, Timestamp,
};

use crate::dataset;
use crate::support::TestDb;

fn id(text: &str) -> FramedbId {
    FramedbId::new(text).unwrap()
}

fn ids(records: &[InstanceRecord]) -> Vec<String> {
    records
        .iter()
        .map(|record| record.framedb_id.to_string())
        .collect()
}

async fn load(registry: &dyn InstanceRegistry) -> Vec<InstanceRecord> {
    let records = dataset::records();
    for record in &records {
        registry.insert(record).await.unwrap();
    }
    records
}

/// A record reads back exactly as it was written, metadata key order and number kinds
/// included; `get` of an unknown id is `InstanceNotFound`.
pub async fn insert_and_get(registry: &dyn InstanceRegistry) {
    let records = load(registry).await;
    for record in &records {
        let read = registry.get(&record.framedb_id).await.unwrap();
        assert_eq!(&read, record);
        let keys: Vec<_> = read.metadata.as_map().keys().collect();
        let written: Vec<_> = record.metadata.as_map().keys().collect();
        assert_eq!(keys, written, "metadata key order of {}", record.framedb_id);
        assert_eq!(
            serde_json::to_string(&read).unwrap(),
            serde_json::to_string(record).unwrap()
        );
    }
    assert_eq!(
        registry.get(&id("nobody")).await,
        Err(Error::InstanceNotFound(id("nobody")))
    );
}

/// A registry that serves answers its readiness check, with records in it or not.
pub async fn ping(registry: &dyn InstanceRegistry) {
    assert_eq!(registry.ping().await, Ok(()));
    load(registry).await;
    assert_eq!(registry.ping().await, Ok(()));
}

/// A second record with a taken id is `AlreadyExists`, and the first stays as it was.
pub async fn duplicate_id_is_already_exists(registry: &dyn InstanceRegistry) {
    let records = dataset::records();
    registry.insert(&records[0]).await.unwrap();
    let mut again = records[1].clone();
    again.framedb_id = records[0].framedb_id.clone();
    assert_eq!(
        registry.insert(&again).await,
        Err(Error::AlreadyExists(records[0].framedb_id.clone()))
    );
    assert_eq!(
        registry.get(&records[0].framedb_id).await.unwrap(),
        records[0]
    );
    let all = registry
        .find(&Query::with_filter(Filter::all()))
        .await
        .unwrap();
    assert_eq!(ids(&all), ["db-01"]);
}

/// `update_deployment` sets the port and status and bumps `updated_at`; on an unknown id,
/// a record of another stamp, or a record a delete has marked, it is `InstanceNotFound`
/// and changes nothing.
pub async fn update_deployment(registry: &dyn InstanceRegistry) {
    let record = dataset::records().remove(3);
    assert_eq!(record.port, None);
    registry.insert(&record).await.unwrap();
    let before = Timestamp::now();
    registry
        .update_deployment(
            &record.framedb_id,
            &record.stamp,
            Some(30_999),
            InstanceStatus::Running,
        )
        .await
        .unwrap();
    let read = registry.get(&record.framedb_id).await.unwrap();
    assert_eq!(read.port, Some(30_999));
    assert_eq!(read.status, InstanceStatus::Running);
    assert!(read.updated_at >= before, "{} < {before}", read.updated_at);
    assert_eq!(read.created_at, record.created_at);
    assert_eq!(read.metadata, record.metadata);
    registry
        .update_deployment(
            &record.framedb_id,
            &record.stamp,
            None,
            InstanceStatus::Failed,
        )
        .await
        .unwrap();
    let read = registry.get(&record.framedb_id).await.unwrap();
    assert_eq!((read.port, read.status), (None, InstanceStatus::Failed));
    let found = registry
        .find(&Query::with_filter(
            Filter::parse(&serde_json::json!({"port": null, "status": "Failed"})).unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(ids(&found), [record.framedb_id.to_string()]);
    assert_eq!(
        registry
            .update_deployment(
                &id("nobody"),
                &record.stamp,
                Some(30_900),
                InstanceStatus::Running
            )
            .await,
        Err(Error::InstanceNotFound(id("nobody")))
    );
    let other = Stamp::generate().unwrap();
    assert_eq!(
        registry
            .update_deployment(
                &record.framedb_id,
                &other,
                Some(30_901),
                InstanceStatus::Provisioning
            )
            .await,
        Err(Error::InstanceNotFound(record.framedb_id.clone()))
    );
    // A delete (or a failed create's undo) has begun: it is not brought back.
    registry
        .mark_deleting(&record.framedb_id, &record.stamp, Removal::Undo)
        .await
        .unwrap();
    assert_eq!(
        registry
            .update_deployment(
                &record.framedb_id,
                &record.stamp,
                Some(30_901),
                InstanceStatus::Provisioning
            )
            .await,
        Err(Error::InstanceNotFound(record.framedb_id.clone()))
    );
    let read = registry.get(&record.framedb_id).await.unwrap();
    assert_eq!(
        (read.port, read.status, read.removal),
        (None, InstanceStatus::Deleting, Some(Removal::Undo))
    );
}

/// `remove` says whether there was a record; removing an unknown id is `Ok(false)`.
pub async fn remove(registry: &dyn InstanceRegistry) {
    let records = load(registry).await;
    let target = &records[7].framedb_id;
    assert_eq!(registry.remove(target).await, Ok(true));
    assert_eq!(registry.remove(target).await, Ok(false));
    assert_eq!(
        registry.get(target).await,
        Err(Error::InstanceNotFound(target.clone()))
    );
    assert_eq!(registry.remove(&id("nobody")).await, Ok(false));
    let all = registry
        .find(&Query::with_filter(Filter::all()))
        .await
        .unwrap();
    assert_eq!(all.len(), records.len() - 1);
    assert!(!ids(&all).contains(&target.to_string()));
}

/// `amend` replaces the metadata and size of the record of that stamp only, bumps
/// `updated_at`, keeps everything else, and reads back with the metadata's key order and
/// number kinds.
pub async fn amend(registry: &dyn InstanceRegistry) {
    let mut record = dataset::records().remove(2);
    record.stamp = Stamp::generate().unwrap();
    registry.insert(&record).await.unwrap();
    let id = &record.framedb_id;
    let metadata = Metadata::new(serde_json::json!(
        {"z": 1, "a": {"deep": [1.5, null, "x"]}, "big": 5_000_000_000_i64}
    ))
    .unwrap();
    let size = StorageSize::new("3Gi").unwrap();
    let other = Stamp::generate().unwrap();
    assert_eq!(
        registry.amend(id, &other, &metadata, &size).await,
        Err(Error::InstanceNotFound(id.clone()))
    );
    assert_eq!(registry.get(id).await.unwrap(), record);
    registry
        .amend(id, &record.stamp, &metadata, &size)
        .await
        .unwrap();
    let read = registry.get(id).await.unwrap();
    assert!(read.updated_at >= record.updated_at);
    let wanted = InstanceRecord {
        metadata,
        storage_size: size,
        updated_at: read.updated_at,
        ..record.clone()
    };
    assert_eq!(read, wanted);
    assert_eq!(
        registry
            .amend(
                &FramedbId::new("absent").unwrap(),
                &record.stamp,
                &wanted.metadata,
                &wanted.storage_size
            )
            .await,
        Err(Error::InstanceNotFound(FramedbId::new("absent").unwrap()))
    );
}

/// `mark_deleting` and `remove_stamped` act on the record of that stamp only (a create of
/// the id since keeps its record); the removal is kept with the status and read back.
pub async fn stamped_writes(registry: &dyn InstanceRegistry) {
    let mut record = dataset::records().remove(0);
    record.stamp = Stamp::generate().unwrap();
    registry.insert(&record).await.unwrap();
    let other = Stamp::generate().unwrap();
    let id = &record.framedb_id;
    assert_eq!(
        registry.mark_deleting(id, &other, Removal::Purge).await,
        Err(Error::InstanceNotFound(id.clone()))
    );
    assert_eq!(registry.remove_stamped(id, &other).await, Ok(false));
    assert_eq!(registry.get(id).await.unwrap(), record);

    registry
        .mark_deleting(id, &record.stamp, Removal::Undo)
        .await
        .unwrap();
    let read = registry.get(id).await.unwrap();
    assert_eq!(
        (read.status, read.removal, read.port),
        (InstanceStatus::Deleting, Some(Removal::Undo), record.port)
    );
    assert_eq!(registry.remove_stamped(id, &record.stamp).await, Ok(true));
    assert_eq!(registry.remove_stamped(id, &record.stamp).await, Ok(false));
    assert_eq!(
        registry
            .mark_deleting(id, &record.stamp, Removal::Purge)
            .await,
        Err(Error::InstanceNotFound(id.clone()))
    );

    // Records from before stamps have the empty one.
    let mut old = dataset::records().remove(1);
    old.stamp = Stamp::unstamped();
    registry.insert(&old).await.unwrap();
    assert_eq!(
        registry
            .remove_stamped(&old.framedb_id, &Stamp::unstamped())
            .await,
        Ok(true)
    );
}

/// The service's own filters (a cluster, a node of a cluster) and the default window.
pub async fn cluster_and_node_queries(registry: &dyn InstanceRegistry) {
    let records = load(registry).await;
    let cluster = ClusterId::new("cluster-02").unwrap();
    let node = NodeId::new("node-b").unwrap();
    let expected = |keep: &dyn Fn(&InstanceRecord) -> bool| {
        let mut kept: Vec<_> = records.iter().filter(|r| keep(r)).cloned().collect();
        kept.sort_by(|a, b| a.framedb_id.cmp(&b.framedb_id));
        kept
    };
    let in_cluster = registry
        .find(&Query::with_filter(Filter::cluster(&cluster)))
        .await
        .unwrap();
    assert_eq!(in_cluster, expected(&|r| r.cluster_id == cluster));
    assert!(!in_cluster.is_empty());
    let on_node = registry
        .find(&Query::with_filter(Filter::cluster_node(&cluster, &node)))
        .await
        .unwrap();
    assert_eq!(
        on_node,
        expected(&|r| r.cluster_id == cluster && r.node_id == node)
    );
    assert!(!on_node.is_empty());
    let all = registry
        .find(&Query::with_filter(Filter::all()))
        .await
        .unwrap();
    assert_eq!(all, expected(&|_| true));
}

/// The answers (ids, in order) of every query of the data set.
pub async fn answers(registry: &dyn InstanceRegistry) -> Vec<Vec<String>> {
    let mut answers = Vec::new();
    for case in dataset::cases() {
        let found = registry
            .find(&case.query())
            .await
            .unwrap_or_else(|error| panic!("{}: {error}", case.describe()));
        answers.push(ids(&found));
    }
    answers
}

/// Runs a case on a fresh in-memory registry and on a registry in a fresh MongoDB
/// database (when a server is configured).
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(&super::InMemoryRegistry::new()).await;
                }
            )*
        }
        mod mongo {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(db) = super::TestDb::open(stringify!($case)).await else {
                        return;
                    };
                    super::$case(&db.registry).await;
                    db.drop().await;
                }
            )*
        }
    };
}

conformance!(
    insert_and_get,
    duplicate_id_is_already_exists,
    update_deployment,
    remove,
    stamped_writes,
    amend,
    cluster_and_node_queries,
    ping,
);

/// Queries on which a particular MongoDB-compatible server is known to answer differently
/// from MongoDB itself (and so from the in-memory registry, which follows MongoDB): the
/// `buildInfo` field that identifies the server, the query, and why. On any other server,
/// MongoDB included, these queries must match like every other.
const KNOWN_SERVER_DIVERGENCES: [(&str, &str, &str); 1] = [(
    "secantusVersion",
    "{} sort=metadata.shards.size",
    "SecantusDB keys db-22 (shards [{name: s1}, {size: 30}]) by 30 in an ascending sort; \
     MongoDB keys an array element without the field as null (as its multikey indexes do), \
     and an ascending sort uses the smallest key, so db-22 sorts among the nulls",
)];

/// The `buildInfo` fields of the server, to recognise it.
async fn build_info(db: &TestDb) -> mongodb::bson::Document {
    db.registry
        .client()
        .database("admin")
        .run_command(mongodb::bson::doc! {"buildInfo": 1})
        .await
        .unwrap()
}

/// Both registries give the same ids in the same order for every query of the data set.
#[tokio::test]
async fn same_answers_on_both_registries() {
    let Some(db) = TestDb::open("same_answers").await else {
        return;
    };
    let memory = InMemoryRegistry::new();
    load(&memory).await;
    load(&db.registry).await;
    let cases = dataset::cases();
    let expected = answers(&memory).await;
    let actual = answers(&db.registry).await;
    let server = build_info(&db).await;
    db.drop().await;

    let total = dataset::records().len();
    let mut mismatches = Vec::new();
    for ((case, memory), mongo) in cases.iter().zip(&expected).zip(&actual) {
        if memory == mongo {
            continue;
        }
        let report = format!(
            "filter {}\n  in-memory: {memory:?}\n  MongoDB:   {mongo:?}",
            case.describe()
        );
        let known = KNOWN_SERVER_DIVERGENCES
            .iter()
            .find(|(marker, query, _)| server.contains_key(marker) && *query == case.describe());
        match known {
            Some((_, _, why)) => eprintln!("known divergence of this server: {report}\n  ({why})"),
            None => mismatches.push(report),
        }
    }
    // The data set must discriminate: most filters select some records but not all.
    let selective = expected
        .iter()
        .filter(|ids| !ids.is_empty() && ids.len() < total)
        .count();
    eprintln!(
        "{} queries compared, {selective} selective, {} mismatches",
        cases.len(),
        mismatches.len()
    );
    assert!(
        cases.len() >= 40 && selective >= 40,
        "{selective} selective queries"
    );
    assert!(
        mismatches.is_empty(),
        "{} of {} queries answered differently:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
}
