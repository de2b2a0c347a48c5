//! An instance's volume on a cluster that stores as a real one does: the default class
//! binds a claim only once its pod is scheduled (on that pod's node), and a `local`
//! volume mounts only where its directory exists on the node.

use std::sync::Arc;
use std::time::Duration;

use framedb_core::{ClusterDeployer, FramedbId, InstanceStatus};
use framedb_k8s::objects::claim_name;
use framedb_k8s::{KubeFleet, Layout, Storage};
use framedb_kube_sim::{SimConfig, SimNode};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::{Api, ResourceExt};

use super::{Cluster, TIME_SCALE, cluster_id, eventually, spec, status_report};

const SETTLE: Duration = Duration::from_secs(10);

async fn status_of(fleet: &KubeFleet, id: &FramedbId) -> InstanceStatus {
    status_report(fleet, id).await.status
}

#[tokio::test]
async fn a_claim_of_the_default_class_binds_on_the_instance_s_node() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let id = FramedbId::new("tidb-wffc").unwrap();
    cluster
        .fleet
        .deploy(&spec("tidb-wffc", "node-b", 30910))
        .await
        .unwrap();
    assert!(
        eventually(SETTLE, || async {
            status_of(&cluster.fleet, &id).await == InstanceStatus::Running
        })
        .await
    );
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(cluster.client.clone(), &Layout::default().namespace);
    let claim = claims.get(&claim_name("tidb-wffc")).await.unwrap();
    assert_eq!(
        claim.annotations()["volume.kubernetes.io/selected-node"],
        "node-b"
    );
    assert_eq!(
        claim.spec.unwrap().storage_class_name.as_deref(),
        Some("standard")
    );
}

/// A cluster whose instances keep their data in `local` volumes under `/mnt/framedb`,
/// on nodes `nodes`.
async fn local_cluster(nodes: Vec<SimNode>) -> (Cluster, Arc<KubeFleet>) {
    let cluster = Cluster::start_with(
        SimConfig::new("cluster-01")
            .with_images(framedb_k8s::default_images())
            .with_nodes(nodes)
            .with_time_scale(TIME_SCALE),
    )
    .await;
    let layout = Layout {
        storage: Storage::Local {
            root: "/mnt/framedb".into(),
        },
        ..Layout::default()
    };
    let fleet = Arc::new(KubeFleet::new(layout).with_cluster(cluster_id(), cluster.client.clone()));
    (cluster, fleet)
}

#[tokio::test]
async fn a_local_volume_runs_where_the_operator_prepared_its_directory() {
    // The operator made the instance's directory on its node beforehand: FrameDB does
    // not create it (see the next test).
    let (cluster, fleet) = local_cluster(vec![
        SimNode::new("node-a").with_directory("/mnt/framedb/tidb-local-1"),
        SimNode::new("node-b"),
    ])
    .await;
    let id = FramedbId::new("tidb-local-1").unwrap();
    fleet
        .deploy(&spec("tidb-local-1", "node-a", 30911))
        .await
        .unwrap();
    assert!(
        eventually(SETTLE, || async {
            status_of(&fleet, &id).await == InstanceStatus::Running
        })
        .await
    );
    drop(cluster);
}

#[tokio::test]
async fn a_local_volume_without_its_directory_leaves_the_instance_provisioning() {
    // A product gap (issue 14, item 5): FrameDB makes a `local` PersistentVolume at
    // `{root}/{id}` but never the directory itself, so on a node nobody prepared the pod
    // waits in ContainerCreating for good. It reads as Provisioning, not Failed: the
    // kubelet keeps retrying, and the directory may yet appear.
    let (cluster, fleet) =
        local_cluster(vec![SimNode::new("node-a"), SimNode::new("node-b")]).await;
    let id = FramedbId::new("tidb-local-2").unwrap();
    fleet
        .deploy(&spec("tidb-local-2", "node-a", 30912))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &Layout::default().namespace);
    let waiting = eventually(SETTLE, || async {
        pods.list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .flat_map(|p| {
                p.status
                    .iter()
                    .flat_map(|s| s.container_statuses.iter().flatten())
            })
            .any(|c| {
                // `PodInitializing` in a pod with init containers (PD and TiKV).
                let reason = c.state.as_ref().and_then(|s| s.waiting.as_ref());
                matches!(
                    reason.and_then(|w| w.reason.as_deref()),
                    Some("ContainerCreating" | "PodInitializing")
                )
            })
    })
    .await;
    assert!(waiting);
    assert_eq!(status_of(&fleet, &id).await, InstanceStatus::Provisioning);
}
