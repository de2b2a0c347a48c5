//! Reads overlay the registry's records with the status read from the clusters.

use std::sync::Arc;

use framedb_core::ports::MockClusterDeployer;
use framedb_core::{
    ClusterDeployer, ClusterId, Error, InstanceStatus, NodeId, ProvisioningService,
};

use super::{cluster, id, in_memory, request};

#[tokio::test]
async fn get_shows_the_live_status_and_pending_with_a_reason() {
    let (service, _, _) = in_memory();
    service.create(request("tidb-001")).await.unwrap();
    let mut elsewhere = request("tidb-002");
    elsewhere.node_id = NodeId::new("node-z").unwrap();
    service.create(elsewhere).await.unwrap();

    let running = service.get(&id("tidb-001")).await.unwrap();
    assert_eq!(running.status, InstanceStatus::Running);
    assert_eq!(
        running.public_url.as_deref(),
        Some("http://cluster-01:30900")
    );
    let pending = service.get(&id("tidb-002")).await.unwrap();
    assert_eq!(pending.status, InstanceStatus::Pending);
    assert!(pending.status_reason.unwrap().contains("node-z"));
}

#[tokio::test]
async fn an_unreachable_cluster_shows_unknown_instead_of_failing() {
    let (seed, registry, _) = in_memory();
    seed.create(request("tidb-001")).await.unwrap();
    let mut down = MockClusterDeployer::new();
    down.expect_statuses()
        .returning(|_, _| Err(Error::Unavailable("cluster-01 cannot be reached".into())));
    let (_, _, fleet) = in_memory();
    let service = ProvisioningService::new(registry, Arc::new(down), fleet);

    let instance = service.get(&id("tidb-001")).await.unwrap();
    assert_eq!(instance.status, InstanceStatus::Unknown);
    assert!(
        instance
            .status_reason
            .unwrap()
            .contains("cannot be reached")
    );
    let listed = service.list_cluster(&cluster()).await.unwrap();
    assert_eq!(listed[0].status, InstanceStatus::Unknown);
}

#[tokio::test]
async fn a_missing_workload_is_failed_not_running() {
    let (service, _, fleet) = in_memory();
    let created = service.create(request("tidb-001")).await.unwrap();
    fleet
        .undeploy(
            &cluster(),
            &id("tidb-001"),
            &created.record.stamp,
            framedb_core::Removal::Purge,
        )
        .await
        .unwrap();
    let instance = service.get(&id("tidb-001")).await.unwrap();
    assert_eq!(instance.status, InstanceStatus::Failed);
}

#[tokio::test]
async fn listing_an_unknown_cluster_is_not_found_and_an_empty_one_is_empty() {
    let (service, _, _) = in_memory();
    let nowhere = ClusterId::new("cluster-99").unwrap();
    assert_eq!(
        service.list_cluster(&nowhere).await.unwrap_err(),
        Error::ClusterNotFound(nowhere)
    );
    assert!(service.list_cluster(&cluster()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_query_reads_the_statuses_of_its_clusters_at_once() {
    let (seed, registry, fleet) = in_memory();
    seed.create(request("tidb-001")).await.unwrap();
    let mut other = request("tidb-002");
    other.cluster_id = ClusterId::new("cluster-02").unwrap();
    seed.create(other).await.unwrap();
    // Each status read waits until a read of every other cluster has begun too: reads
    // made one cluster after another never finish.
    let all_clusters = Arc::new(tokio::sync::Barrier::new(2));
    let mut deployer = super::Hooked::on(fleet.clone());
    deployer.before_statuses = Box::new(move || {
        let all_clusters = all_clusters.clone();
        Box::pin(async move {
            all_clusters.wait().await;
        })
    });
    let service = ProvisioningService::new(registry, Arc::new(deployer), fleet);
    let everything = framedb_core::Query::with_filter(framedb_core::Filter::all());
    let found = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        service.query(&everything),
    )
    .await
    .expect("the two clusters' reads ran together")
    .unwrap();
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|i| i.status == InstanceStatus::Running));
}
