//! Statuses that tell the truth about what a real cluster does with an instance: causes
//! the kubelet retries read `Provisioning`, with the cause, until a limit
//! (`StatusLimits`, here [`test_limits`]), then `Failed`; a pod that waits for its volume says why; a pod the
//! API server refuses to the StatefulSet fails the instance with the refusal; and a
//! StatefulSet deleted behind FrameDB's back is not an instance being deleted.
//!
//! Each reads through the watch-kept book and through a direct read (a new fleet's first
//! read), which must agree.

use std::sync::Arc;
use std::time::Duration;

use framedb_core::{ClusterDeployer, FramedbId, InstanceStatus, StatusReport};
use framedb_k8s::{KubeFleet, Layout};
use framedb_kube_sim::{SimConfig, SimNode};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

use super::{Cluster, TIME_SCALE, cluster_id, spec, test_limits};

const SETTLE: Duration = Duration::from_secs(15);

/// A fleet on `cluster` that lays instances out as `layout` says, with [`test_limits`].
fn fleet(cluster: &Cluster, layout: Layout) -> Arc<KubeFleet> {
    Arc::new(
        KubeFleet::new(layout)
            .with_status_limits(test_limits())
            .with_cluster(cluster_id(), cluster.client.clone()),
    )
}

async fn report(fleet: &KubeFleet, id: &FramedbId) -> StatusReport {
    fleet
        .statuses(&cluster_id(), std::slice::from_ref(id))
        .await
        .unwrap()[id]
        .clone()
}

/// Instance `id`, deployed on node-a on port `port` of a simulated cluster, whose claim
/// binds [`lost_disk_volume`].
async fn on_a_lost_disk(id: &str, port: u16) -> (Cluster, Arc<KubeFleet>, FramedbId) {
    let cluster = Cluster::start_with(
        SimConfig::new("cluster-01")
            .with_images(framedb_k8s::default_images())
            .with_nodes([SimNode::new("node-a"), SimNode::new("node-b")])
            .with_time_scale(TIME_SCALE),
    )
    .await;
    lost_disk_volume(&cluster, id).await;
    let fleet = fleet(&cluster, Layout::default());
    fleet.deploy(&spec(id, "node-a", port)).await.unwrap();
    (cluster, fleet, FramedbId::new(id).unwrap())
}

/// A `local` PersistentVolume an operator made for instance `id`'s claim, on node-a at
/// `/mnt/gone/{id}`, a directory node-a does not have (its disk was replaced).
async fn lost_disk_volume(cluster: &Cluster, id: &str) {
    let volume: PersistentVolume = serde_json::from_value(serde_json::json!({
        "metadata": { "name": format!("{id}-lost") },
        "spec": {
            "capacity": { "storage": "2Gi" },
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "standard",
            "persistentVolumeReclaimPolicy": "Retain",
            "local": { "path": format!("/mnt/gone/{id}") },
            "claimRef": { "namespace": "framedb-storage", "name": format!("{id}-data") },
            "nodeAffinity": { "required": { "nodeSelectorTerms": [{ "matchExpressions": [{
                "key": "kubernetes.io/hostname", "operator": "In", "values": ["node-a"],
            }] }] } },
        },
    }))
    .unwrap();
    Api::<PersistentVolume>::all(cluster.client.clone())
        .create(&PostParams::default(), &volume)
        .await
        .unwrap();
}

/// Waits until `fleet` reads `id` as `status` with a reason that contains each of `said`;
/// returns that reason.
async fn reads(fleet: &KubeFleet, id: &FramedbId, status: InstanceStatus, said: &[&str]) -> String {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let report = report(fleet, id).await;
        let reason = report.reason.clone().unwrap_or_default();
        if report.status == status && said.iter().all(|part| reason.contains(part)) {
            return reason;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {status:?} saying {said:?}, read {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A direct read by a fleet that has no book yet reads the same as `fleet`'s book.
async fn a_direct_read_agrees(cluster: &Cluster, fleet: &KubeFleet, id: &FramedbId) {
    let booked = report(fleet, id).await;
    let fresh = KubeFleet::new(Layout::default())
        .with_status_limits(test_limits())
        .with_cluster(cluster_id(), cluster.client.clone());
    assert_eq!(report(&fresh, id).await.status, booked.status);
}

#[tokio::test]
async fn an_image_the_registry_lacks_is_provisioning_then_failed_with_the_pull_error() {
    let images = framedb_k8s::default_images()
        .into_iter()
        .filter(|image| !image.contains("/tidb:"));
    let cluster = Cluster::start_with(
        SimConfig::new("cluster-01")
            .without_images()
            .with_images(images)
            .with_time_scale(TIME_SCALE),
    )
    .await;
    let fleet = fleet(&cluster, Layout::default());
    let id = FramedbId::new("truth-pull").unwrap();
    fleet
        .deploy(&spec("truth-pull", "node-a", 30940))
        .await
        .unwrap();
    // A pull that failed may succeed on a retry (a registry's hiccup, an image pushed
    // late): the instance is still coming up, and says what holds it.
    let reason = reads(
        &fleet,
        &id,
        InstanceStatus::Provisioning,
        &["container tidb is waiting: ", "pingcap/tidb:"],
    )
    .await;
    assert!(
        reason.contains("ErrImagePull") || reason.contains("ImagePullBackOff"),
        "{reason}"
    );
    // Told by the kubelet for longer than the limit: it will not come up by itself.
    let reason = reads(
        &fleet,
        &id,
        InstanceStatus::Failed,
        &[
            "container tidb is waiting: ",
            "pingcap/tidb:",
            "; told for ",
        ],
    )
    .await;
    assert!(
        reason.contains("not found") || reason.contains("ImagePullBackOff"),
        "{reason}"
    );
    a_direct_read_agrees(&cluster, &fleet, &id).await;
}

#[tokio::test]
async fn a_volume_that_cannot_be_mounted_is_told_while_the_instance_is_provisioning() {
    // An operator's `local` volume, made for the instance's claim, whose directory is
    // gone from its node (the disk was replaced): the kubelet cannot mount it, keeps
    // trying, and says so in `FailedMount` events.
    let (cluster, fleet, id) = on_a_lost_disk("truth-mount", 30941).await;
    reads(
        &fleet,
        &id,
        InstanceStatus::Provisioning,
        &[
            "pod truth-mount-0 is not started yet: FailedMount: ",
            "/mnt/gone/truth-mount",
            "does not exist",
        ],
    )
    .await;
    a_direct_read_agrees(&cluster, &fleet, &id).await;
}

#[tokio::test]
async fn a_cluster_admin_s_huge_event_reaches_readers_cut_to_the_reason_s_bound() {
    // A cluster's admin may write any event about the instance's pod: its message is what
    // a pod being created shows as its reason, to every reader of the instance, so it is
    // cut to `MAX_REASON_BYTES`.
    let (cluster, fleet, id) = on_a_lost_disk("truth-huge", 30945).await;
    // Its pod cannot mount its volume: it reads its latest Warning.
    reads(&fleet, &id, InstanceStatus::Provisioning, &["FailedMount"]).await;
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), "framedb-storage");
    let pod = pods.get("truth-huge-0").await.unwrap();
    assert!(pod.metadata.deletion_timestamp.is_none());
    let now =
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
    let huge: k8s_openapi::api::core::v1::Event = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "truth-huge-0.admin", "namespace": "framedb-storage" },
        "involvedObject": {
            "kind": "Pod", "namespace": "framedb-storage", "name": "truth-huge-0",
            "uid": pod.metadata.uid,
        },
        "type": "Warning", "reason": "FailedMount", "message": "x".repeat(200_000),
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        "source": { "component": "kubelet", "host": "node-a" },
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::Event>::namespaced(cluster.client.clone(), "framedb-storage")
        .create(&PostParams::default(), &huge)
        .await
        .unwrap();
    let said = reads(&fleet, &id, InstanceStatus::Provisioning, &["xxxxxxxx…"]).await;
    assert!(
        said.len() <= framedb_core::MAX_REASON_BYTES,
        "{}",
        said.len()
    );
}

#[tokio::test]
async fn a_pod_the_namespace_s_pod_security_refuses_fails_the_instance_with_the_refusal() {
    let cluster = Cluster::start(Duration::ZERO).await;
    // The operator made the instances' namespace `restricted`, which FrameDB's pods (whose
    // images run as root) cannot meet: the StatefulSet controller's creates are refused.
    let namespace: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": "framedb-storage",
            "labels": { "pod-security.kubernetes.io/enforce": "restricted" },
        },
    }))
    .unwrap();
    Api::<Namespace>::all(cluster.client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let fleet = fleet(&cluster, Layout::default());
    let id = FramedbId::new("truth-psa").unwrap();
    fleet
        .deploy(&spec("truth-psa", "node-a", 30942))
        .await
        .unwrap();
    reads(
        &fleet,
        &id,
        InstanceStatus::Failed,
        &[
            "FailedCreate: create Pod truth-psa-0 in StatefulSet truth-psa failed",
            "violates PodSecurity \"restricted:latest\"",
        ],
    )
    .await;
    a_direct_read_agrees(&cluster, &fleet, &id).await;
}

#[tokio::test]
async fn a_statefulset_deleted_outside_frame_db_is_failed_not_deleting() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let fleet = fleet(&cluster, Layout::default());
    let id = FramedbId::new("truth-gone").unwrap();
    fleet
        .deploy(&spec("truth-gone", "node-a", 30943))
        .await
        .unwrap();
    reads(&fleet, &id, InstanceStatus::Running, &[]).await;
    // `kubectl delete sts` by someone, while a finalizer of theirs holds it: it stays,
    // being deleted, with its pod.
    let workloads: Api<StatefulSet> = Api::namespaced(cluster.client.clone(), "framedb-storage");
    let held = serde_json::json!({ "metadata": { "finalizers": ["example.com/hold"] } });
    workloads
        .patch("truth-gone", &PatchParams::default(), &Patch::Merge(&held))
        .await
        .unwrap();
    workloads
        .delete("truth-gone", &Default::default())
        .await
        .unwrap();
    reads(
        &fleet,
        &id,
        InstanceStatus::Failed,
        &["its StatefulSet truth-gone is being deleted, not by a delete of the instance"],
    )
    .await;
    a_direct_read_agrees(&cluster, &fleet, &id).await;
    let released = serde_json::json!({ "metadata": { "finalizers": null } });
    workloads
        .patch(
            "truth-gone",
            &PatchParams::default(),
            &Patch::Merge(&released),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_crash_loop_is_provisioning_until_the_restart_limit_then_failed() {
    let cluster = Cluster::start(Duration::from_millis(600)).await;
    cluster.sim.inject_container_fault(
        framedb_kube_sim::ContainerFault::crash_loop("tidb").in_pods_named("truth-crash"),
    );
    let fleet = fleet(&cluster, Layout::default());
    let id = FramedbId::new("truth-crash").unwrap();
    fleet
        .deploy(&spec("truth-crash", "node-a", 30944))
        .await
        .unwrap();
    reads(
        &fleet,
        &id,
        InstanceStatus::Provisioning,
        &["container tidb", "Error (exit code 1)", "restarted 1 times"],
    )
    .await;
    reads(
        &fleet,
        &id,
        InstanceStatus::Failed,
        &["container tidb", "Error (exit code 1)", "restarted 3 times"],
    )
    .await;
}
