//! An instance whose node goes down, on a cluster that plays the node lifecycle as a
//! real one does: while the node is unreachable the instance reads `Unknown` (its pod is
//! marked not ready, and whether TiDB still serves cannot be told), then `Pending` once
//! its pod's toleration runs out and the pod is stuck `Terminating`, and `Running` again
//! once the node is back and the StatefulSet has made the pod again.

use std::time::Duration;

use framedb_core::{FramedbId, StatusReport};
use framedb_kube_sim::NodeReadiness;

use super::{Cluster, eventually, status_report};

/// Long enough for the 50-second grace period, the 300-second toleration and a grace
/// period of the simulated clock ([`super::TIME_SCALE`]: about 6 real seconds).
const SETTLE: Duration = Duration::from_secs(20);

async fn report(cluster: &Cluster, id: &FramedbId) -> StatusReport {
    status_report(&cluster.fleet, id).await
}

#[tokio::test]
async fn an_instance_on_a_node_that_goes_down_is_never_reported_running() {
    use framedb_core::InstanceStatus as S;
    let cluster = Cluster::start(Duration::ZERO).await;
    let id = cluster.deployed("tidb-node-down", 30920).await;
    assert!(
        eventually(SETTLE, || async {
            report(&cluster, &id).await.status == S::Running
        })
        .await
    );

    cluster
        .sim
        .set_node_ready("node-a", NodeReadiness::Unreachable);
    assert!(
        eventually(SETTLE, || async {
            report(&cluster, &id).await
                == StatusReport::with_reason(
                    S::Unknown,
                    "pod tidb-node-down-0 was marked not ready because its node is not ready",
                )
        })
        .await
    );
    assert!(
        eventually(SETTLE, || async {
            let now = report(&cluster, &id).await;
            now.status == S::Pending
                && now.reason.as_deref().is_some_and(|r| {
                    r.starts_with("pod tidb-node-down-0 is being deleted (DeletionByTaintManager: ")
                })
        })
        .await
    );

    cluster.sim.set_node_ready("node-a", NodeReadiness::Ready);
    assert!(
        eventually(SETTLE, || async {
            report(&cluster, &id).await.status == S::Running
        })
        .await
    );
}

#[tokio::test]
async fn an_instance_deleted_while_its_node_is_down_is_made_again_once_the_node_is_back() {
    use framedb_core::Error;
    let mut cluster = Cluster::start(Duration::ZERO).await;
    cluster.fleet = std::sync::Arc::new(
        framedb_k8s::KubeFleet::new(framedb_k8s::Layout::default())
            .with_cluster(super::cluster_id(), cluster.client.clone())
            .with_deletion_wait(Duration::from_millis(300)),
    );
    let (service, _registry) = cluster.service();
    let request = || -> framedb_core::NewInstance {
        serde_json::from_value(serde_json::json!({
            "framedb_id": "gone-node", "cluster_id": "cluster-01", "node_id": "node-a",
            "storage_size": "1Gi", "deletion_policy": "Delete",
        }))
        .unwrap()
    };
    let first = service.create(request()).await.unwrap();
    let id = first.record.framedb_id.clone();
    assert!(
        eventually(SETTLE, || async {
            report(&cluster, &id).await.status == framedb_core::InstanceStatus::Running
        })
        .await
    );

    // The node goes; the instance is deleted meanwhile: the delete answers at once, but
    // the pod stays Terminating (no kubelet confirms it), and its claim with it.
    cluster
        .sim
        .set_node_ready("node-a", NodeReadiness::Unreachable);
    service.delete(&id, false).await.unwrap();
    let refused = service.create(request()).await.unwrap_err();
    let Error::ObjectConflict { sentence, .. } = &refused else {
        panic!("{refused:?}");
    };
    assert!(
        sentence.contains("is still being deleted (Terminating")
            && sentence.contains("retry the create once it is gone"),
        "{sentence}"
    );

    // The node is back: the pod and its claim go, and the create goes through.
    cluster.sim.set_node_ready("node-a", NodeReadiness::Ready);
    assert!(
        eventually(SETTLE, || async { service.create(request()).await.is_ok() }).await,
        "the create goes through once the node is back"
    );
    assert!(
        eventually(SETTLE, || async {
            report(&cluster, &id).await.status == framedb_core::InstanceStatus::Running
        })
        .await
    );
}
