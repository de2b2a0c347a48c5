//! What the fleet benchmark (issue 16, `framedb-bench run --only fleet`) found, each case
//! on its own: costs that grew with the fleet's instances where they need not.

use std::sync::Arc;
use std::time::Duration;

use framedb_core::memory::{InMemoryFleet, InMemoryRegistry};
use framedb_core::ports::MockInstanceRegistry;
use serde_json::json;

use framedb_core::{ClusterId, Filter, InstanceRegistry, NodeId, ProvisioningService, Query};

use super::{Hooked, cluster, in_memory, request};

/// A pass reads each cluster's records with one query and what runs there with one
/// inventory, and never reads instances one by one: on a fleet of thousands, a read per
/// instance per pass would be the pass's whole cost.
#[tokio::test]
async fn a_reconcile_pass_reads_records_per_cluster_not_per_instance() {
    let (service, registry, fleet) = in_memory();
    for n in 0..20 {
        service
            .create(request(&format!("pass-{n:02}")))
            .await
            .unwrap();
    }
    let on_cluster = Filter::cluster(&cluster());
    let recorded = registry
        .find(&Query::with_filter(on_cluster.clone()))
        .await
        .unwrap();
    assert_eq!(recorded.len(), 20);
    let mut counted = MockInstanceRegistry::new();
    // The cluster's records once; the records that may need settling find none. They are
    // asked for by equalities that MongoDB's `status_port` index answers (an `$or` of them
    // was a scan of every record of the fleet, on each pass).
    counted
        .expect_find()
        .withf(move |query| query.filter == on_cluster)
        .times(1)
        .returning(move |_| Ok(recorded.clone()));
    for unsettled in [
        json!({"status": "Deleting"}),
        json!({"status": "Provisioning", "port": null}),
    ] {
        let unsettled = Filter::parse(&unsettled).unwrap();
        counted
            .expect_find()
            .withf(move |query| query.filter == unsettled)
            .times(1)
            .returning(|_| Ok(Vec::new()));
    }
    // No `get`: a mock without that expectation fails on one.
    let pass = ProvisioningService::new(Arc::new(counted), fleet.clone(), fleet.clone());

    let repairs = pass.reconcile(Duration::ZERO, &[cluster()]).await.unwrap();
    assert!(!repairs.any(), "{repairs:?}");
}

/// A pass reads its clusters side by side, not one after another: over 200 clusters one
/// after another it took 5 s at steady state, and each unreachable cluster would add its
/// whole timeout to every pass. Here each cluster's inventory waits until the other's has
/// begun, which one after another never happens.
#[tokio::test]
async fn a_reconcile_pass_reads_its_clusters_side_by_side() {
    let clusters: Vec<ClusterId> = ["side-a", "side-b"]
        .into_iter()
        .map(|name| ClusterId::new(name).unwrap())
        .collect();
    let fleet = clusters
        .iter()
        .fold(InMemoryFleet::new(), |fleet, cluster| {
            fleet.with_cluster(cluster.clone(), [NodeId::new("node-a").unwrap()])
        });
    let fleet = Arc::new(fleet);
    let mut both_read = Hooked::on(fleet.clone());
    let met = Arc::new(tokio::sync::Barrier::new(clusters.len()));
    both_read.before_inventory = Box::new(move || {
        let met = met.clone();
        Box::pin(async move {
            met.wait().await;
        })
    });
    let pass = ProvisioningService::new(
        Arc::new(InMemoryRegistry::new()),
        Arc::new(both_read),
        fleet,
    );

    // The bound only ends a test that would otherwise hang; it times nothing.
    let repairs = tokio::time::timeout(
        Duration::from_secs(30),
        pass.reconcile(Duration::ZERO, &clusters),
    )
    .await
    .expect("each cluster's inventory waited for the other's: the pass read one at a time")
    .unwrap();
    assert!(!repairs.any(), "{repairs:?}");
}
