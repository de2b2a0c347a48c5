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
