//! An instance's volume on a cluster that stores as a real one does: the default class
//! binds a claim only once its pod is scheduled (on that pod's node), and, without a
//! provisioner, a `hostPath` volume on the instance's node whose directory the kubelet
//! makes, and which FrameDB empties through the instance's own claim when it is purged.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use framedb_core::{ClusterDeployer, FramedbId, InstanceStatus, Removal, Stamp};
use framedb_k8s::objects::{RETAINED, claim_name, wipe_pod_name};
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
    // The operator made the instance's directory on its node beforehand: the kubelet
    // finds it there, and the instance runs as on any node.
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

/// The instances' namespace of the default layout, where wipe pods run.
fn instances_namespace() -> String {
    Layout::default().namespace
}

/// Every version of every wipe pod from now on (a list, then a watch from its
/// resourceVersion, so that no pod made after this returns is missed).
async fn record_wipes(client: &kube::Client) -> Arc<Mutex<Vec<Pod>>> {
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
                && pod.name_any().ends_with("-volume-wipe")
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

/// Whether pod `name` of the instances' namespace is gone (within [`SETTLE`]).
async fn pod_gone(client: &kube::Client, name: &str) -> bool {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &instances_namespace());
    eventually(SETTLE, || async {
        pods.get_opt(name).await.unwrap().is_none()
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
async fn a_local_volume_s_directory_is_made_by_the_kubelet_on_its_node() {
    // Nobody prepared the node: the volume is a `hostPath` of type `DirectoryOrCreate`,
    // which the kubelet makes when it mounts it, on the node the volume names.
    let (cluster, fleet) =
        local_cluster(vec![SimNode::new("node-a"), SimNode::new("node-b")]).await;
    let seen = record_wipes(&cluster.client).await;
    running(&fleet, "tidb-local-2", 30912).await;
    let volume = Api::<PersistentVolume>::all(cluster.client.clone())
        .get(&claim_name("tidb-local-2"))
        .await
        .unwrap();
    let spec = volume.spec.as_ref().unwrap();
    let host_path = spec.host_path.clone().unwrap();
    assert_eq!(host_path.path, "/mnt/framedb/tidb-local-2");
    assert_eq!(host_path.type_.as_deref(), Some("DirectoryOrCreate"));
    let terms = &spec
        .node_affinity
        .as_ref()
        .unwrap()
        .required
        .as_ref()
        .unwrap()
        .node_selector_terms;
    assert_eq!(
        terms[0].match_expressions.as_ref().unwrap()[0]
            .values
            .as_deref(),
        Some(&["node-a".to_owned()][..])
    );
    // Mounted by the instance's pod: a purge empties it first.
    assert_eq!(
        volume.annotations()["framedb.io/directory-prepared"],
        "true"
    );
    assert!(
        volume
            .finalizers()
            .iter()
            .all(|f| f.starts_with("kubernetes.io/"))
    );
    // Nothing else ran: no helper pod, no namespace of its own.
    assert!(seen.lock().unwrap().is_empty());
    let namespaces = Api::<Namespace>::all(cluster.client.clone());
    assert!(
        namespaces
            .get_opt("framedb-storage-volumes")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_local_volume_runs_and_is_purged_in_a_namespace_enforcing_baseline() {
    let (cluster, fleet) = local_cluster_in(vec![SimNode::new("node-a")], "strict-db").await;
    // The operator made the instances' namespace, enforcing Pod Security `baseline`: the
    // instance's pod (its volume's `hostPath` is the PersistentVolume's, not its own)
    // and the wipe pod (which mounts the claim) both meet it.
    let namespace: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "strict-db", "labels": {
            "pod-security.kubernetes.io/enforce": "baseline" } },
    }))
    .unwrap();
    Api::<Namespace>::all(cluster.client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let id = running(&fleet, "tidb-local-3", 30913).await;
    cluster
        .sim
        .inject_container_fault(ContainerFault::completes("wipe").in_namespace("strict-db"));
    assert!(
        fleet
            .undeploy(&cluster_id(), &id, &Stamp::unstamped(), Removal::Purge)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_purge_empties_the_volume_through_its_claim_and_a_failed_wipe_keeps_it() {
    let (cluster, fleet) = local_cluster(vec![SimNode::new("node-a")]).await;
    let id = running(&fleet, "tidb-local-4", 30914).await;
    let volumes = Api::<PersistentVolume>::all(cluster.client.clone());
    let claims =
        Api::<PersistentVolumeClaim>::namespaced(cluster.client.clone(), &instances_namespace());
    let volume = claim_name("tidb-local-4");
    let seen = record_wipes(&cluster.client).await;

    // The wipe's command fails: the purge says so, and the claim and volume stay, not
    // being deleted (a purge run again wipes again).
    cluster.sim.inject_container_fault(
        ContainerFault::crash_loop("wipe").in_namespace(instances_namespace()),
    );
    let failed = fleet
        .undeploy(&cluster_id(), &id, &Stamp::unstamped(), Removal::Purge)
        .await
        .unwrap_err()
        .to_string();
    assert!(failed.contains("/mnt/framedb/tidb-local-4"), "{failed}");
    assert!(failed.contains("exited with code 1"), "{failed}");
    let kept = volumes.get(&volume).await.unwrap();
    assert!(kept.metadata.deletion_timestamp.is_none());
    let claim = claims.get(&volume).await.unwrap();
    assert!(claim.metadata.deletion_timestamp.is_none());
    let wipe = wipe_pod_name("tidb-local-4");
    assert!(pod_gone(&cluster.client, &wipe).await);

    // Run again once the command works: the volume is emptied, then goes.
    cluster.sim.clear_container_faults();
    cluster.sim.inject_container_fault(
        ContainerFault::completes("wipe").in_namespace(instances_namespace()),
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
    assert!(pod_gone(&cluster.client, &wipe).await);
    // The wipe pod: in the instances' namespace, the instance's claim only, its contents
    // removed, as root with no capability.
    let succeeded = seen_pod(&seen, &wipe, |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")
    })
    .await
    .expect("the second wipe ran to completion");
    assert_eq!(succeeded.namespace().as_deref(), Some("framedb-storage"));
    let spec = succeeded.spec.unwrap();
    assert_eq!(
        spec.node_name.as_deref(),
        Some("node-a"),
        "where the volume is"
    );
    let container = &spec.containers[0];
    assert_eq!(
        container.command.as_deref().unwrap(),
        ["find", "/volume", "-mindepth", "1", "-delete"]
    );
    let hardening = container.security_context.clone().unwrap();
    assert_eq!(hardening.capabilities.unwrap().drop.unwrap(), ["ALL"]);
    let volumes_of_pod = spec.volumes.unwrap();
    assert_eq!(volumes_of_pod.len(), 1);
    assert_eq!(
        volumes_of_pod[0]
            .persistent_volume_claim
            .as_ref()
            .unwrap()
            .claim_name,
        volume
    );
    assert!(volumes_of_pod[0].host_path.is_none());
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(spec.automount_service_account_token, Some(false));
}

#[tokio::test]
async fn a_purge_after_the_claim_was_deleted_by_hand_keeps_the_volume_and_says_where() {
    // `kubectl delete pvc` first: the claim waits for the instance's pod, then goes. A
    // purge can no longer mount the volume to empty it, so it does not delete it (its data
    // would greet the next instance of the id) and says where the data is.
    let (cluster, fleet) = local_cluster(vec![SimNode::new("node-a")]).await;
    let id = running(&fleet, "tidb-local-8", 30918).await;
    let name = claim_name("tidb-local-8");
    Api::<PersistentVolumeClaim>::namespaced(cluster.client.clone(), &instances_namespace())
        .delete(&name, &kube::api::DeleteParams::default())
        .await
        .unwrap();
    let failed = fleet
        .undeploy(&cluster_id(), &id, &Stamp::unstamped(), Removal::Purge)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        failed.contains("was deleted before FrameDB emptied"),
        "{failed}"
    );
    assert!(
        failed.contains("/mnt/framedb/tidb-local-8 on node 'node-a'"),
        "{failed}"
    );
    let volumes = Api::<PersistentVolume>::all(cluster.client.clone());
    assert!(volumes.get_opt(&name).await.unwrap().is_some(), "kept");
    // The operator empties the directory and deletes the volume: the purge finishes.
    volumes
        .delete(&name, &kube::api::DeleteParams::default())
        .await
        .unwrap();
    fleet
        .undeploy(&cluster_id(), &id, &Stamp::unstamped(), Removal::Purge)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_delete_that_retains_the_volume_leaves_its_data_alone() {
    let (cluster, fleet) = local_cluster(vec![SimNode::new("node-a")]).await;
    let id = running(&fleet, "tidb-local-5", 30915).await;
    let seen = record_wipes(&cluster.client).await;
    cluster.sim.inject_container_fault(
        ContainerFault::completes("wipe").in_namespace(instances_namespace()),
    );
    assert!(
        fleet
            .undeploy(&cluster_id(), &id, &Stamp::unstamped(), Removal::Retain)
            .await
            .unwrap()
    );
    // The volume stays, retained, not being deleted; no wipe pod ever ran.
    let volume = Api::<PersistentVolume>::all(cluster.client.clone())
        .get(&claim_name("tidb-local-5"))
        .await
        .unwrap();
    assert!(volume.metadata.deletion_timestamp.is_none());
    assert_eq!(volume.labels()[RETAINED], "true");
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_wipe_that_cannot_run_fails_the_purge_with_its_reason() {
    // The registry lacks the wipe's image: the purge says why, within its wait, and the
    // volume stays for a purge run again.
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
    let id = running(&fleet, "tidb-local-6", 30916).await;
    let error = fleet
        .undeploy(&cluster_id(), &id, &Stamp::unstamped(), Removal::Purge)
        .await
        .unwrap_err();
    assert!(
        matches!(error, framedb_core::Error::Timeout(_)),
        "{error:?}"
    );
    let error = error.to_string();
    assert!(error.contains("empty /mnt/framedb/tidb-local-6"), "{error}");
    assert!(
        error.contains("ErrImagePull") || error.contains("ImagePullBackOff"),
        "{error}"
    );
    assert!(
        Api::<PersistentVolume>::all(cluster.client.clone())
            .get_opt(&claim_name("tidb-local-6"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(pod_gone(&cluster.client, &wipe_pod_name("tidb-local-6")).await);
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
async fn a_purge_whose_wipe_failed_stays_deleting_until_it_is_done() {
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
        ContainerFault::crash_loop("wipe").in_namespace(instances_namespace()),
    );
    let failed = service.delete(&id, true).await.unwrap_err().to_string();
    assert!(failed.contains("/mnt/framedb/tidb-local-7"), "{failed}");
    // The record does not claim a purge that did not happen.
    let instance = service.get(&id).await.unwrap();
    assert_eq!(instance.status, InstanceStatus::Deleting);
    cluster.sim.clear_container_faults();
    cluster.sim.inject_container_fault(
        ContainerFault::completes("wipe").in_namespace(instances_namespace()),
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

/// A deployed instance's claim, once bound (the default class binds it when its pod is
/// scheduled).
async fn bound(cluster: &Cluster, id: &str) -> PersistentVolumeClaim {
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(cluster.client.clone(), &Layout::default().namespace);
    let name = claim_name(id);
    assert!(
        eventually(SETTLE, || async {
            claims
                .get(&name)
                .await
                .unwrap()
                .status
                .and_then(|s| s.phase)
                .as_deref()
                == Some("Bound")
        })
        .await
    );
    claims.get(&name).await.unwrap()
}

/// A cluster whose default class allows volume expansion.
async fn expandable_cluster() -> Cluster {
    Cluster::start_with(
        SimConfig::new("cluster-01")
            .with_images(framedb_k8s::default_images())
            .with_volume_expansion(true),
    )
    .await
}

fn requested(claim: &PersistentVolumeClaim) -> String {
    claim
        .spec
        .as_ref()
        .unwrap()
        .resources
        .as_ref()
        .unwrap()
        .requests
        .as_ref()
        .unwrap()["storage"]
        .0
        .clone()
}

#[tokio::test]
async fn an_amend_grows_the_claim_and_every_object_records_the_change() {
    let cluster = expandable_cluster().await;
    let mut grown = spec("tidb-amend", "node-a", 30911);
    // Stamped, as every create's objects are: the inventory rebuilds only those.
    grown.stamp = Stamp::generate().unwrap();
    cluster.fleet.deploy(&grown).await.unwrap();
    bound(&cluster, "tidb-amend").await;

    grown.storage_size = framedb_core::StorageSize::new("4Gi").unwrap();
    grown.metadata = framedb_core::Metadata::new(serde_json::json!({"team": "ops"})).unwrap();
    let size = cluster.fleet.amend(&grown).await.unwrap();
    assert_eq!(size.as_str(), "4Gi");
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(cluster.client.clone(), &Layout::default().namespace);
    assert!(
        eventually(SETTLE, || async {
            let claim = claims.get(&claim_name("tidb-amend")).await.unwrap();
            claim
                .status
                .and_then(|s| s.capacity)
                .map(|c| c["storage"].0.clone())
                == Some("4Gi".into())
        })
        .await
    );
    let claim = claims.get(&claim_name("tidb-amend")).await.unwrap();
    assert_eq!(requested(&claim), "4Gi");
    let volume = Api::<PersistentVolume>::all(cluster.client.clone())
        .get(claim.spec.as_ref().unwrap().volume_name.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(volume.spec.unwrap().capacity.unwrap()["storage"].0, "4Gi");
    let namespace = Layout::default().namespace;
    let size_of = |meta: &kube::api::ObjectMeta| {
        meta.annotations.as_ref().unwrap()["framedb.io/storage-size"].clone()
    };
    let secret =
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(cluster.client.clone(), &namespace)
            .get("tidb-amend-credentials")
            .await
            .unwrap();
    assert_eq!(
        size_of(&secret.metadata),
        "4Gi",
        "a retained volume comes back at its size"
    );
    assert_eq!(size_of(&claim.metadata), "4Gi");
    let config = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(
        cluster.client.clone(),
        &namespace,
    )
    .get("tidb-amend-config")
    .await
    .unwrap();
    assert!(config.data.unwrap()["tikv.toml"].contains("reserve-space"));
    // What a registry is rebuilt from says the same.
    let running = cluster.fleet.inventory(&cluster_id()).await.unwrap();
    let record = running
        .iter()
        .find(|r| r.framedb_id.as_str() == "tidb-amend")
        .unwrap();
    assert_eq!(record.storage_size.as_str(), "4Gi");
    assert_eq!(
        serde_json::Value::from(record.metadata.clone()),
        serde_json::json!({"team": "ops"})
    );

    // Never shrunk: a smaller size leaves the volume as it is, and says so.
    let mut smaller = grown.clone();
    smaller.storage_size = framedb_core::StorageSize::new("3Gi").unwrap();
    assert_eq!(cluster.fleet.amend(&smaller).await.unwrap().as_str(), "4Gi");
    assert_eq!(
        requested(&claims.get(&claim_name("tidb-amend")).await.unwrap()),
        "4Gi"
    );
    // Another create's objects are not touched.
    let mut other = grown.clone();
    other.stamp = Stamp::generate().unwrap();
    other.metadata = Default::default();
    let refused = cluster.fleet.amend(&other).await.unwrap_err();
    assert!(
        matches!(refused, framedb_core::Error::ObjectConflict { .. }),
        "{refused:?}"
    );
}

/// Where the class cannot be read (the local service's role lacks it), the API server's
/// own refusal (the `PersistentVolumeClaimResize` admission plugin's 403) is told as
/// `NotExpandable`, and nothing is changed.
#[tokio::test]
async fn the_api_server_s_refusal_to_expand_is_not_expandable() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let mut asked = spec("tidb-fixed", "node-a", 30912);
    cluster.fleet.deploy(&asked).await.unwrap();
    bound(&cluster, "tidb-fixed").await;
    cluster.sim.faults().fail(
        framedb_kube_sim::Verb::Get,
        Some("storageclasses"),
        403,
        1.0,
    );
    asked.storage_size = framedb_core::StorageSize::new("4Gi").unwrap();
    let refused = cluster.fleet.amend(&asked).await.unwrap_err();
    let framedb_core::Error::NotExpandable { sentence, .. } = &refused else {
        panic!("{refused:?}");
    };
    assert!(sentence.contains("forbids expanding"), "{sentence}");
    let claim = bound(&cluster, "tidb-fixed").await;
    assert_eq!(requested(&claim), "2Gi");
    let running = cluster.fleet.inventory(&cluster_id()).await.unwrap();
    assert!(running.iter().all(|r| r.storage_size.as_str() == "2Gi"));
}

/// An amend whose StatefulSet write failed (the claim grown, the other objects written)
/// left the inventory at the old size, and running it again finishes it.
#[tokio::test]
async fn an_amend_that_stopped_halfway_is_finished_by_running_it_again() {
    let cluster = expandable_cluster().await;
    let mut asked = spec("tidb-half", "node-a", 30913);
    asked.stamp = Stamp::generate().unwrap();
    cluster.fleet.deploy(&asked).await.unwrap();
    bound(&cluster, "tidb-half").await;
    asked.storage_size = framedb_core::StorageSize::new("5Gi").unwrap();
    cluster.sim.faults().fail(
        framedb_kube_sim::Verb::Patch,
        Some("statefulsets"),
        500,
        1.0,
    );
    let failed = cluster.fleet.amend(&asked).await.unwrap_err();
    assert!(failed.is_unreachable(), "{failed:?}");
    assert_eq!(requested(&bound(&cluster, "tidb-half").await), "5Gi");
    let size_in_inventory = || async {
        let running = cluster.fleet.inventory(&cluster_id()).await.unwrap();
        running[0].storage_size.as_str().to_owned()
    };
    assert_eq!(
        size_in_inventory().await,
        "2Gi",
        "never more than the claim holds"
    );

    cluster.sim.faults().clear();
    assert_eq!(cluster.fleet.amend(&asked).await.unwrap().as_str(), "5Gi");
    assert_eq!(size_in_inventory().await, "5Gi");
    assert_eq!(requested(&bound(&cluster, "tidb-half").await), "5Gi");
}

/// A claim that a concurrent change grew further is never lowered, and the size that goes
/// on is the claim's; an instance without its claim is changed nowhere.
#[tokio::test]
async fn an_amend_never_lowers_a_claim_grown_meanwhile_and_needs_its_claim() {
    let cluster = expandable_cluster().await;
    let mut asked = spec("tidb-race", "node-a", 30914);
    asked.stamp = Stamp::generate().unwrap();
    cluster.fleet.deploy(&asked).await.unwrap();
    bound(&cluster, "tidb-race").await;
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(cluster.client.clone(), &Layout::default().namespace);
    // Another PATCH's growth to 8Gi landed first.
    claims
        .patch(
            &claim_name("tidb-race"),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({
                "spec": {"resources": {"requests": {"storage": "8Gi"}}}
            })),
        )
        .await
        .unwrap();
    asked.storage_size = framedb_core::StorageSize::new("5Gi").unwrap();
    assert_eq!(cluster.fleet.amend(&asked).await.unwrap().as_str(), "8Gi");
    assert_eq!(requested(&bound(&cluster, "tidb-race").await), "8Gi");
    let running = cluster.fleet.inventory(&cluster_id()).await.unwrap();
    assert_eq!(running[0].storage_size.as_str(), "8Gi");

    // Its claim gone (deleted by hand): nothing is written, the change is refused.
    let workloads: Api<k8s_openapi::api::apps::v1::StatefulSet> =
        Api::namespaced(cluster.client.clone(), &Layout::default().namespace);
    let before = workloads.get("tidb-race").await.unwrap();
    claims
        .delete(&claim_name("tidb-race"), &Default::default())
        .await
        .unwrap();
    asked.storage_size = framedb_core::StorageSize::new("9Gi").unwrap();
    let refused = cluster.fleet.amend(&asked).await.unwrap_err();
    assert!(
        matches!(refused, framedb_core::Error::InstanceBusy { .. }),
        "{refused:?}"
    );
    let after = workloads.get("tidb-race").await.unwrap();
    assert_eq!(
        before.metadata.resource_version, after.metadata.resource_version,
        "the StatefulSet is untouched"
    );
}
