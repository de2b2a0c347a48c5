//! The cluster directory's store, the same cases on the in-memory store and on MongoDB:
//! a record is conditional (of concurrent records of one cluster exactly one wins, the
//! others read the winner's entry), a replace re-points, a remove forgets (only the
//! holder of the token, when one is named), and a new store on the same database (a
//! restarted or another replica) reads what was recorded.

use std::sync::Arc;

use framedb_core::memory::InMemoryDirectoryStore;
use framedb_core::{
    ClusterDirectoryStore, ClusterId, ClusterIdentity, DirectoryEntry, LocalToken, Recorded,
};
use framedb_mongo::{DIRECTORY_INDEX, MongoDirectoryStore};

use crate::support::TestDb;

fn entry(cluster: &str, url: &str) -> DirectoryEntry {
    DirectoryEntry {
        cluster_id: ClusterId::new(cluster).unwrap(),
        local_url: url.into(),
        token: LocalToken::generate(),
        identity: ClusterIdentity {
            api_server: "https://10.0.0.7:6443".into(),
            ca_sha256: Some("ab".repeat(32)),
        },
    }
}

/// The cases, on any store.
async fn conformance(store: Arc<dyn ClusterDirectoryStore>) {
    let first = entry("edge-1", "http://10.1.0.1:32566/");
    assert_eq!(store.record(&first).await.unwrap(), Recorded::New);
    let other = entry("edge-1", "http://10.6.6.6:32566/");
    assert_eq!(
        store.record(&other).await.unwrap(),
        Recorded::Existing(first.clone()),
        "a record never overwrites"
    );
    let cluster = first.cluster_id.clone();
    assert_eq!(store.get(&cluster).await.unwrap(), Some(first.clone()));

    // Concurrent records of one cluster at different addresses: exactly one winner.
    let racers: Vec<_> = (0..8)
        .map(|n| entry("edge-race", &format!("http://10.2.0.{n}:32566/")))
        .collect();
    let outcomes = futures_util::future::join_all(racers.iter().map(|e| store.record(e))).await;
    let winners: Vec<_> = racers
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| *outcome.as_ref().unwrap() == Recorded::New)
        .map(|(racer, _)| racer.clone())
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    for outcome in &outcomes {
        match outcome.as_ref().unwrap() {
            Recorded::New => {}
            Recorded::Existing(existing) => assert_eq!(*existing, winners[0]),
        }
    }

    // A replace re-points and gives back what it replaced.
    let replaced = store.replace(&other).await.unwrap();
    assert_eq!(replaced, Some(first.clone()));
    assert_eq!(store.get(&cluster).await.unwrap(), Some(other.clone()));
    let fresh = entry("edge-new", "http://10.3.0.1:32566/");
    assert_eq!(store.replace(&fresh).await.unwrap(), None);

    let listed: Vec<_> = store
        .load()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.cluster_id.to_string())
        .collect();
    assert_eq!(listed, ["edge-1", "edge-new", "edge-race"]);

    // Only the holder of the token removes it when a token is named.
    assert!(!store.remove(&cluster, Some(&first.token)).await.unwrap());
    assert!(store.remove(&cluster, Some(&other.token)).await.unwrap());
    assert_eq!(store.get(&cluster).await.unwrap(), None);
    assert!(store.remove(&fresh.cluster_id, None).await.unwrap());
    assert!(!store.remove(&fresh.cluster_id, None).await.unwrap());
}

#[tokio::test]
async fn the_in_memory_directory_store_conforms() {
    conformance(Arc::new(InMemoryDirectoryStore::new())).await;
}

#[tokio::test]
async fn the_mongodb_directory_store_conforms_and_outlives_its_client() {
    let Some(db) = TestDb::open("directory").await else {
        return;
    };
    let open = || async {
        let store = MongoDirectoryStore::new(db.registry.client(), &db.config);
        store.ensure_indexes().await.unwrap();
        store
    };
    let store = open().await;
    conformance(Arc::new(store.clone())).await;

    let kept = entry("edge-kept", "https://edge.example/");
    assert_eq!(store.record(&kept).await.unwrap(), Recorded::New);
    // Another client (a restarted global, or another replica) on the same database.
    let options = framedb_mongo::MongoRegistry::client_options(&db.config)
        .await
        .unwrap();
    let client = mongodb::Client::with_options(options).unwrap();
    let again = MongoDirectoryStore::new(&client, &db.config);
    again.ensure_indexes().await.unwrap();
    assert_eq!(
        again.get(&kept.cluster_id).await.unwrap(),
        Some(kept.clone())
    );

    let mut cursor = again.collection().list_indexes().await.unwrap();
    let mut unique = false;
    while cursor.advance().await.unwrap() {
        let index = cursor.deserialize_current().unwrap();
        let options = index.options.unwrap_or_default();
        unique |= options.name.as_deref() == Some(DIRECTORY_INDEX) && options.unique == Some(true);
    }
    assert!(unique, "the unique index on cluster_id");
    db.drop().await;
}
