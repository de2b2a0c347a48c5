//! An instance's volume on a cluster that stores as a real one does: the default class
//! binds a claim only once its pod is scheduled (on that pod's node), and a `local`
//! volume mounts only where its directory exists on the node, which FrameDB's helper pod
//! makes there, and empties when the instance is purged.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use framedb_core::{ClusterDeployer, FramedbId, InstanceStatus, Removal, Stamp};
use framedb_k8s::objects::{
    RETAINED, VOLUME_CLEANUP_FINALIZER, VolumeJob, claim_name, helper_name, volumes_namespace_name,
};
use framedb_k8s::{KubeFleet, Layout, Storage};
use framedb_kube_sim::{ContainerFault, SimConfig, SimNode};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
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
    local_cluster_in(nodes, &Layout::default().namespace).await
}

/// [`local_cluster`], its instances in `namespace`.
async fn local_cluster_in(nodes: Vec<SimNode>, namespace: &str) -> (Cluster, Arc<KubeFleet>) {
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
        namespace: namespace.to_owned(),
        ..Layout::default()
    };
    let fleet = Arc::new(KubeFleet::new(layout).with_cluster(cluster_id(), cluster.client.clone()));
    (cluster, fleet)
}

#[tokio::test]
async fn a_local_volume_runs_where_the_operator_prepared_its_directory() {
    // The operator made the instance's directory on its node beforehand: FrameDB's
    // helper pod finds it there, and the instance runs as on any node.
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

/// The helper pods' namespace of the default layout.
fn helpers_namespace() -> String {
    volumes_namespace_name(&Layout::default().namespace)
}

/// Every version of every helper pod from now on (a list, then a watch from its
/// resourceVersion, so that no pod made after this returns is missed; of every namespace,
/// since the helpers' may not exist yet).
async fn record_helpers(client: &kube::Client) -> Arc<Mutex<Vec<Pod>>> {
    let pods: Api<Pod> = Api::all(client.clone());
    let listed = pods.list(&ListParams::default()).await.unwrap();
    let version = listed.metadata.resource_version.unwrap_or_default();
    let seen: Arc<Mutex<Vec<Pod>>> = Arc::default();
    let mut stream = pods
        .watch(&WatchParams::default(), &version)
        .await
        .unwrap()
        .boxed();
    let recorded = seen.clone();
    tokio::spawn(async move {
        while let Some(Ok(event)) = stream.next().await {
            if let WatchEvent::Added(pod) | WatchEvent::Modified(pod) = event
                && pod.namespace().as_deref() == Some(helpers_namespace().as_str())
            {
                recorded.lock().unwrap().push(pod);
            }
        }
    });
    seen
}

/// The first version of pod `name` that `recorded` holds and `matching` accepts, once
/// the watch has delivered it (within [`SETTLE`]).
async fn seen_pod(
    recorded: &Mutex<Vec<Pod>>,
    name: &str,
    matching: impl Fn(&Pod) -> bool,
) -> Option<Pod> {
    let find = || {
        recorded
            .lock()
            .unwrap()
            .iter()
            .find(|p| p.name_any() == name && matching(p))
            .cloned()
    };
    eventually(SETTLE, || async { find().is_some() }).await;
    find()
}

/// Whether namespace `namespace` holds no pod.
async fn no_pods_in(client: &kube::Client, namespace: &str) -> bool {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    eventually(SETTLE, || async {
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    })
    .await
}

/// Deploys `id` on `node-a` of `fleet` and waits for it to run.
async fn running(fleet: &KubeFleet, id: &str, port: u16) -> FramedbId {
    fleet.deploy(&spec(id, "node-a", port)).await.unwrap();
    let framedb_id = FramedbId::new(id).unwrap();
    assert!(
        eventually(SETTLE, || async {
            status_of(fleet, &framedb_id).await == InstanceStatus::Running
        })
        .await,
        "{id} runs"
    );
    framedb_id
}

#[tokio::test]
async fn a_local_volume_s_directory_is_made_on_its_node_by_a_helper_pod() {
    // Nobody prepared the node: without the helper, the pod would wait in
    // ContainerCreating ("path ... does not exist") for good.
    let (cluster, fleet) =
        local_cluster(vec![SimNode::new("node-a"), SimNode::new("node-b")]).await;
    let seen = record_helpers(&cluster.client).await;
    running(&fleet, "tidb-local-2", 30912).await;
    // The helper ran on the instance's node, mounting that directory only, and is gone.
    let prepare = helper_name("tidb-local-2", VolumeJob::Prepare);
    let helper = seen_pod(&seen, &prepare, |_| true)
        .await
        .expect("the prepare helper ran");
    let spec = helper.spec.unwrap();
    assert_eq!(
        spec.node_selector.unwrap()["kubernetes.io/hostname"],
        "node-a"
    );
    let volumes = spec.volumes.unwrap();
    assert_eq!(volumes.len(), 1);
    let host_path = volumes[0].host_path.clone().unwrap();
    assert_eq!(host_path.path, "/mnt/framedb/tidb-local-2");
    assert_eq!(host_path.type_.as_deref(), Some("DirectoryOrCreate"));
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(spec.security_context.unwrap().run_as_non_root, Some(true));
    assert!(no_pods_in(&cluster.client, &helpers_namespace()).await);
    // The volume waits for its clean-up before it goes.
    let volume = Api::<PersistentVolume>::all(cluster.client.clone())
        .get(&claim_name("tidb-local-2"))
        .await
        .unwrap();
    assert!(
        volume
            .finalizers()
            .iter()
            .any(|f| f == VOLUME_CLEANUP_FINALIZER)
    );
    assert_eq!(
        volume.annotations()["framedb.io/directory-prepared"],
        "true"
    );
}

#[tokio::test]
async fn a_local_volume_runs_in_a_namespace_enforcing_baseline() {
    let (cluster, fleet) = local_cluster_in(vec![SimNode::new("node-a")], "strict-db").await;
    // The operator made the instances' namespace, enforcing Pod Security `baseline`.
    let namespace: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "strict-db", "labels": {
            "pod-security.kubernetes.io/enforce": "baseline" } },
    }))
    .unwrap();
    Api::<Namespace>::all(cluster.client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    running(&fleet, "tidb-local-3", 30913).await;
    // The helper could not have run there: its hostPath breaks `baseline`.
    let layout = Layout {
        storage: Storage::Local {
            root: "/mnt/framedb".into(),
        },
        namespace: "strict-db".into(),
        ..Layout::default()
    };
    let mut helper = layout
        .volume_helper(
            VolumeJob::Prepare,
            "tidb-local-3",
            "cluster-01",
            &Stamp::unstamped(),
            "node-a",
        )
        .unwrap();
    helper.metadata.namespace = Some("strict-db".into());
    let refused = Api::<Pod>::namespaced(cluster.client.clone(), "strict-db")
        .create(&PostParams::default(), &helper)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("hostPath"), "{refused}");
}

#[tokio::test]
async fn a_purge_empties_the_directory_and_a_failed_clean_up_keeps_the_volume() {
    let (cluster, fleet) = local_cluster(vec![SimNode::new("node-a")]).await;
    let id = running(&fleet, "tidb-local-4", 30914).await;
    let volumes = Api::<PersistentVolume>::all(cluster.client.clone());
    let volume = claim_name("tidb-local-4");
    let seen = record_helpers(&cluster.client).await;

    // The clean-up's command fails: the purge says so, and the volume stays, being
    // deleted, with its finalizer (the record of the clean-up still owed).
    cluster.sim.inject_container_fault(
        ContainerFault::crash_loop("wipe").in_namespace(helpers_namespace()),
    );
    let failed = fleet
        .undeploy(&cluster_id(), &id, &Stamp::unstamped(), Removal::Purge)
        .await
        .unwrap_err()
        .to_string();
    assert!(failed.contains("/mnt/framedb/tidb-local-4"), "{failed}");
    assert!(failed.contains("exited with code 1"), "{failed}");
    let kept = volumes.get(&volume).await.unwrap();
    assert!(kept.metadata.deletion_timestamp.is_some());
    assert_eq!(kept.finalizers(), [VOLUME_CLEANUP_FINALIZER]);
    assert!(no_pods_in(&cluster.client, &helpers_namespace()).await);

    // Run again once the command works: the directory is emptied, the volume goes.
    cluster.sim.clear_container_faults();
    cluster.sim.inject_container_fault(
        ContainerFault::completes("wipe").in_namespace(helpers_namespace()),
    );
    assert!(
        fleet
            .undeploy(&cluster_id(), &id, &Stamp::unstamped(), Removal::Purge)
            .await
            .unwrap()
    );
    assert!(
        eventually(SETTLE, || async {
            volumes.get_opt(&volume).await.unwrap().is_none()
        })
        .await
    );
    assert!(no_pods_in(&cluster.client, &helpers_namespace()).await);
    // The clean-up pod: on the node, the instance's directory only, its contents removed.
    let wipe = helper_name("tidb-local-4", VolumeJob::Wipe);
    let succeeded = seen_pod(&seen, &wipe, |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")
    })
    .await
    .expect("the second clean-up ran to completion");
    let spec = succeeded.spec.unwrap();
    assert_eq!(
        spec.node_selector.unwrap()["kubernetes.io/hostname"],
        "node-a"
    );
    let container = &spec.containers[0];
    assert_eq!(
        container.command.as_deref().unwrap(),
        ["find", "/volume", "-mindepth", "1", "-delete"]
    );
    assert_eq!(
        container.volume_mounts.as_ref().unwrap()[0].mount_path,
        "/volume"
    );
    let volumes_of_pod = spec.volumes.unwrap();
    assert_eq!(volumes_of_pod.len(), 1);
    assert_eq!(
        volumes_of_pod[0].host_path.as_ref().unwrap().path,
        "/mnt/framedb/tidb-local-4"
    );
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
}

#[tokio::test]
async fn a_delete_that_retains_the_volume_leaves_its_directory_alone() {
    let (cluster, fleet) = local_cluster(vec![SimNode::new("node-a")]).await;
    let id = running(&fleet, "tidb-local-5", 30915).await;
    let seen = record_helpers(&cluster.client).await;
    cluster.sim.inject_container_fault(
        ContainerFault::completes("wipe").in_namespace(helpers_namespace()),
    );
    assert!(
        fleet
            .undeploy(&cluster_id(), &id, &Stamp::unstamped(), Removal::Retain)
            .await
            .unwrap()
    );
    // The volume stays, retained, not being deleted; no clean-up pod ever ran.
    let volume = Api::<PersistentVolume>::all(cluster.client.clone())
        .get(&claim_name("tidb-local-5"))
        .await
        .unwrap();
    assert!(volume.metadata.deletion_timestamp.is_none());
    assert_eq!(volume.labels()[RETAINED], "true");
    let wipe = helper_name("tidb-local-5", VolumeJob::Wipe);
    assert!(!seen.lock().unwrap().iter().any(|p| p.name_any() == wipe));
    assert!(no_pods_in(&cluster.client, &helpers_namespace()).await);
}

#[tokio::test]
async fn a_volume_deleted_by_hand_keeps_its_data_when_the_instance_is_retained() {
    // `kubectl delete pv` first: the volume waits on FrameDB's finalizer. A delete of the
    // instance that keeps its volume then drops that finalizer and never empties it; the
    // volume goes once its retained claim does (`kubernetes.io/pv-protection`).
    let (cluster, fleet) = local_cluster(vec![SimNode::new("node-a")]).await;
    let id = running(&fleet, "tidb-local-8", 30918).await;
    let seen = record_helpers(&cluster.client).await;
    cluster.sim.inject_container_fault(
        ContainerFault::completes("wipe").in_namespace(helpers_namespace()),
    );
    let volumes = Api::<PersistentVolume>::all(cluster.client.clone());
    let name = claim_name("tidb-local-8");
    volumes
        .delete(&name, &kube::api::DeleteParams::default())
        .await
        .unwrap();
    fleet
        .undeploy(&cluster_id(), &id, &Stamp::unstamped(), Removal::Retain)
        .await
        .unwrap();
    let wipe = helper_name("tidb-local-8", VolumeJob::Wipe);
    assert!(!seen.lock().unwrap().iter().any(|p| p.name_any() == wipe));
    let volume = volumes.get(&name).await.unwrap();
    assert!(
        !volume
            .finalizers()
            .iter()
            .any(|f| f == "framedb.io/volume-cleanup"),
        "{:?}",
        volume.finalizers()
    );
}

#[tokio::test]
async fn a_helper_that_cannot_run_fails_the_create_with_its_reason() {
    // The registry lacks the helper image: the helper never mounts, and the create says
    // why, within its wait, instead of leaving a pod that can never mount its volume.
    let images = framedb_k8s::default_images()
        .into_iter()
        .filter(|image| !image.contains("busybox"));
    let cluster = Cluster::start_with(
        SimConfig::new("cluster-01")
            .without_images()
            .with_images(images)
            .with_nodes([SimNode::new("node-a")])
            .with_time_scale(TIME_SCALE),
    )
    .await;
    let layout = Layout {
        storage: Storage::Local {
            root: "/mnt/framedb".into(),
        },
        ..Layout::default()
    };
    let fleet = Arc::new(
        KubeFleet::new(layout)
            .with_helper_wait(Duration::from_secs(1))
            .with_cluster(cluster_id(), cluster.client.clone()),
    );
    let registry = Arc::new(framedb_core::memory::InMemoryRegistry::new());
    let service =
        framedb_core::ProvisioningService::new(registry.clone(), fleet.clone(), fleet.clone());
    let error = service
        .create(new_instance("tidb-local-6"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, framedb_core::Error::Timeout(_)),
        "{error:?}"
    );
    let error = error.to_string();
    assert!(error.contains("make /mnt/framedb/tidb-local-6"), "{error}");
    assert!(error.contains("on node 'node-a'"), "{error}");
    assert!(
        error.contains("ErrImagePull") || error.contains("ImagePullBackOff"),
        "{error}"
    );
    // The create was undone at once: its volume was never prepared, so never mounted, and
    // goes without a clean-up (which could not run either).
    assert!(registry.is_empty());
    assert!(
        Api::<PersistentVolume>::all(cluster.client.clone())
            .get_opt(&claim_name("tidb-local-6"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(no_pods_in(&cluster.client, &helpers_namespace()).await);
}

/// A create of `id` on `node-a` with a `Retain` policy.
fn new_instance(id: &str) -> framedb_core::NewInstance {
    serde_json::from_value(serde_json::json!({
        "framedb_id": id, "cluster_id": "cluster-01", "node_id": "node-a",
        "storage_size": "1Gi", "deletion_policy": "Retain"
    }))
    .unwrap()
}

#[tokio::test]
async fn a_purge_whose_clean_up_failed_stays_deleting_until_it_is_done() {
    let (cluster, fleet) = local_cluster(vec![SimNode::new("node-a")]).await;
    let registry = Arc::new(framedb_core::memory::InMemoryRegistry::new());
    let service = framedb_core::ProvisioningService::new(registry, fleet.clone(), fleet.clone());
    let id = service
        .create(new_instance("tidb-local-7"))
        .await
        .unwrap()
        .record
        .framedb_id;
    cluster.sim.inject_container_fault(
        ContainerFault::crash_loop("wipe").in_namespace(helpers_namespace()),
    );
    let failed = service.delete(&id, true).await.unwrap_err().to_string();
    assert!(failed.contains("/mnt/framedb/tidb-local-7"), "{failed}");
    // The record does not claim a purge that did not happen.
    let instance = service.get(&id).await.unwrap();
    assert_eq!(instance.status, InstanceStatus::Deleting);
    cluster.sim.clear_container_faults();
    cluster.sim.inject_container_fault(
        ContainerFault::completes("wipe").in_namespace(helpers_namespace()),
    );
    service.delete(&id, true).await.unwrap();
    assert!(matches!(
        service.get(&id).await,
        Err(framedb_core::Error::InstanceNotFound(_))
    ));
    let volumes = Api::<PersistentVolume>::all(cluster.client.clone());
    assert!(
        eventually(SETTLE, || async {
            volumes
                .get_opt(&claim_name("tidb-local-7"))
                .await
                .unwrap()
                .is_none()
        })
        .await
    );
}
