//! The reconcile lease: on MongoDB as in memory, one holder at a time until its term
//! ends or it lets go, also when replicas on separate clients race for it.

use std::sync::Arc;
use std::time::Duration;

use framedb_core::Lease;
use framedb_core::memory::InMemoryLease;
use framedb_mongo::MongoLease;

use crate::support::TestDb;

/// The cases, on any lease; `other` is the same lease through another client (a
/// replica).
async fn conformance(lease: Arc<dyn Lease>, other: Arc<dyn Lease>) {
    let long = Duration::from_secs(60);
    assert!(lease.hold("replica-a", long).await.unwrap());
    assert!(!other.hold("replica-b", long).await.unwrap());
    assert!(lease.hold("replica-a", long).await.unwrap(), "renewed");
    assert!(
        other.hold("replica-a", long).await.unwrap(),
        "a holder keeps it from any client"
    );
    other.release("replica-b").await.unwrap();
    assert!(
        !lease.hold("replica-b", long).await.unwrap(),
        "only its holder lets go"
    );
    lease.release("replica-a").await.unwrap();

    // A term that ends: the holder died without letting go.
    assert!(
        other
            .hold("replica-b", Duration::from_millis(1))
            .await
            .unwrap()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !lease.hold("replica-a", long).await.unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "the ended term was kept"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!other.hold("replica-b", long).await.unwrap());

    // Replicas racing for a free lease: exactly one wins.
    lease.release("replica-a").await.unwrap();
    let racers: Vec<String> = (0..8).map(|n| format!("racer-{n}")).collect();
    let outcomes = futures_util::future::join_all(racers.iter().enumerate().map(|(n, holder)| {
        let lease = if n % 2 == 0 { &lease } else { &other };
        lease.hold(holder, long)
    }))
    .await;
    let winners = outcomes.iter().filter(|won| *won.as_ref().unwrap()).count();
    assert_eq!(winners, 1, "{outcomes:?}");
}

#[tokio::test]
async fn the_in_memory_lease_conforms() {
    let lease = Arc::new(InMemoryLease::new());
    conformance(lease.clone(), lease).await;
}

#[tokio::test]
async fn the_mongodb_lease_conforms_across_clients() {
    let Some(db) = TestDb::open("lease").await else {
        return;
    };
    let options = framedb_mongo::MongoRegistry::client_options(&db.config)
        .await
        .unwrap();
    let client = mongodb::Client::with_options(options).unwrap();
    let lease = MongoLease::new(db.registry.client(), &db.config, "reconciler");
    let other = MongoLease::new(&client, &db.config, "reconciler");
    conformance(Arc::new(lease), Arc::new(other)).await;
    db.drop().await;
}
