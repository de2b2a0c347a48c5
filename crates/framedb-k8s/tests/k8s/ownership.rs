//! Nothing lost, nothing taken over, on a simulated cluster: a create never adopts an
//! object it did not make (made by kubectl or by another create), a delete or an undo
//! removes its own stamp's objects only, and a retained volume keeps its uid across a
//! delete and a re-create.

use std::sync::Arc;
use std::time::Duration;

use framedb_core::memory::InMemoryRegistry;
use framedb_core::{
    ClusterDeployer, DeletionPolicy, Error, NewInstance, ProvisioningService, Removal, Stamp,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Secret, Service};
use kube::api::{Api, PostParams};
use serde_json::json;

use super::{Cluster, cluster_id};

const NS: &str = "framedb-storage";

fn request(id: &str, policy: &str) -> NewInstance {
    serde_json::from_value(json!({
        "framedb_id": id, "cluster_id": "cluster-01", "node_id": "node-a",
        "storage_size": "1Gi", "deletion_policy": policy
    }))
    .unwrap()
}

async fn claim_uid(cluster: &Cluster, name: &str) -> Option<String> {
    Api::<PersistentVolumeClaim>::namespaced(cluster.client.clone(), NS)
        .get_opt(name)
        .await
        .unwrap()
        .and_then(|claim| claim.metadata.uid)
}

async fn ensure_namespace(cluster: &Cluster) {
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    let _ = Api::<Namespace>::all(cluster.client.clone())
        .create(&PostParams::default(), &namespace)
        .await;
}

#[tokio::test]
async fn a_claim_someone_else_made_is_refused_and_left_as_it_was() {
    let cluster = Cluster::start(Duration::ZERO).await;
    ensure_namespace(&cluster).await;
    // A claim of the instance's volume name, made by someone else (as with kubectl).
    let foreign: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "victim-data", "labels": {"team": "theirs"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}
    }))
    .unwrap();
    Api::<PersistentVolumeClaim>::namespaced(cluster.client.clone(), NS)
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    let before = claim_uid(&cluster, "victim-data").await;

    let (service, registry) = cluster.service();
    let refused = service
        .create(request("victim", "Delete"))
        .await
        .unwrap_err();
    let Error::ObjectConflict {
        object, sentence, ..
    } = &refused
    else {
        panic!("{refused:?}");
    };
    assert_eq!(object, "PersistentVolumeClaim framedb-storage/victim-data");
    assert!(
        sentence.contains("was not made by this create"),
        "{sentence}"
    );
    // Nothing existing changed; nothing of the refused create is left.
    assert_eq!(claim_uid(&cluster, "victim-data").await, before);
    let claim = Api::<PersistentVolumeClaim>::namespaced(cluster.client.clone(), NS)
        .get("victim-data")
        .await
        .unwrap();
    assert_eq!(claim.metadata.labels.unwrap()["team"], "theirs");
    assert!(registry.is_empty());
    for gone in [
        Api::<Service>::namespaced(cluster.client.clone(), NS)
            .get_opt("victim")
            .await
            .unwrap()
            .is_none(),
        Api::<StatefulSet>::namespaced(cluster.client.clone(), NS)
            .get_opt("victim")
            .await
            .unwrap()
            .is_none(),
        Api::<Secret>::namespaced(cluster.client.clone(), NS)
            .get_opt("victim-credentials")
            .await
            .unwrap()
            .is_none(),
    ] {
        assert!(gone, "the refused create's own objects are undone");
    }
}

#[tokio::test]
async fn a_second_registry_cannot_take_over_or_delete_what_another_create_runs() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let (first, _) = cluster.service();
    let running = first.create(request("tidb-001", "Delete")).await.unwrap();
    let uid = claim_uid(&cluster, "tidb-001-data").await;
    let port = running.record.port;

    // A service on an empty registry (a restart, a restored backup, a second global).
    let second = ProvisioningService::new(
        Arc::new(InMemoryRegistry::new()),
        cluster.fleet.clone(),
        cluster.fleet.clone(),
    );
    let refused = second
        .create(request("tidb-001", "Delete"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::ObjectConflict { .. }),
        "{refused:?}"
    );
    assert_eq!(claim_uid(&cluster, "tidb-001-data").await, uid);
    let service = Api::<Service>::namespaced(cluster.client.clone(), NS)
        .get("tidb-001")
        .await
        .unwrap();
    let node_port = service.spec.unwrap().ports.unwrap()[0].node_port;
    assert_eq!(
        node_port.map(|p| p as u16),
        port,
        "the Service kept its port"
    );
    assert_eq!(
        first.credentials(&running.record.framedb_id).await.unwrap(),
        running.credentials
    );
    // Another stamp's removal finds nothing of it.
    let other = Stamp::generate().unwrap();
    let found = cluster
        .fleet
        .undeploy(
            &cluster_id(),
            &running.record.framedb_id,
            &other,
            Removal::Purge,
        )
        .await
        .unwrap();
    assert!(!found);
    assert_eq!(claim_uid(&cluster, "tidb-001-data").await, uid);
}

#[tokio::test]
async fn a_retained_volume_keeps_its_uid_across_delete_and_re_create() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let (service, registry) = cluster.service();
    let first = service.create(request("keeper", "Retain")).await.unwrap();
    let uid = claim_uid(&cluster, "keeper-data").await;
    assert!(uid.is_some());
    service
        .delete(&first.record.framedb_id, false)
        .await
        .unwrap();
    assert!(registry.is_empty());
    assert!(
        Api::<StatefulSet>::namespaced(cluster.client.clone(), NS)
            .get_opt("keeper")
            .await
            .unwrap()
            .is_none(),
        "the workload went"
    );
    let claim = Api::<PersistentVolumeClaim>::namespaced(cluster.client.clone(), NS)
        .get("keeper-data")
        .await
        .unwrap();
    assert_eq!(
        claim.metadata.labels.unwrap()["framedb.io/retained"],
        "true"
    );
    assert_eq!(claim.metadata.uid, uid);

    // Elsewhere, it is not taken: the create says where it waits.
    let mut elsewhere = request("keeper", "Retain");
    elsewhere.node_id = "node-b".parse().unwrap();
    let refused = service.create(elsewhere).await.unwrap_err();
    assert!(
        refused.to_string().contains("retained") && refused.to_string().contains("node-a"),
        "{refused}"
    );
    assert_eq!(claim_uid(&cluster, "keeper-data").await, uid);

    let back = service.create(request("keeper", "Retain")).await.unwrap();
    assert!(back.reattached);
    assert_eq!(back.credentials, first.credentials);
    assert_eq!(
        claim_uid(&cluster, "keeper-data").await,
        uid,
        "the same volume"
    );

    // Purge removes it whatever the policy: it goes once its pod has terminated, and a
    // create of the id at once waits for that, then makes a volume of its own.
    service.delete(&back.record.framedb_id, true).await.unwrap();
    let claims = Api::<PersistentVolumeClaim>::namespaced(cluster.client.clone(), NS);
    let going = claims.get_opt("keeper-data").await.unwrap();
    assert!(going.is_none_or(|claim| claim.metadata.deletion_timestamp.is_some()));
    let fresh = service.create(request("keeper", "Delete")).await.unwrap();
    assert!(!fresh.reattached);
    assert_eq!(fresh.record.deletion_policy, DeletionPolicy::Delete);
    let new_uid = claim_uid(&cluster, "keeper-data").await;
    assert!(new_uid.is_some() && new_uid != uid, "a claim of its own");
}

#[tokio::test]
async fn a_create_waits_for_the_claim_of_a_deleted_instance_and_never_takes_it() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let (service, _) = cluster.service();
    let claims = Api::<PersistentVolumeClaim>::namespaced(cluster.client.clone(), NS);
    let first = service.create(request("again", "Delete")).await.unwrap();
    let old = claim_uid(&cluster, "again-data").await;
    service
        .delete(&first.record.framedb_id, false)
        .await
        .unwrap();
    // The claim stays while the pod that used it terminates (kubernetes.io/pvc-protection).
    let going = claims.get("again-data").await.unwrap();
    assert!(going.metadata.deletion_timestamp.is_some());

    // A create of the id at once waits for it, then makes its own.
    let second = service.create(request("again", "Delete")).await.unwrap();
    assert!(!second.reattached);
    let new = claim_uid(&cluster, "again-data").await;
    assert!(
        new.is_some() && new != old,
        "a claim of its own, not the one going"
    );
    let claim = claims.get("again-data").await.unwrap();
    assert!(claim.metadata.deletion_timestamp.is_none());
    assert_eq!(
        claim.metadata.annotations.unwrap()["framedb.io/stamp"],
        second.record.stamp.as_str()
    );
}

#[tokio::test]
async fn a_create_refuses_a_claim_still_being_deleted_after_its_wait_and_says_why() {
    let mut cluster = Cluster::start(Duration::ZERO).await;
    let fleet = Arc::new(
        framedb_k8s::KubeFleet::new(framedb_k8s::Layout::default())
            .with_cluster(cluster_id(), cluster.client.clone())
            .with_deletion_wait(Duration::from_millis(300)),
    );
    cluster.fleet = fleet;
    let (service, registry) = cluster.service();
    let claims = Api::<PersistentVolumeClaim>::namespaced(cluster.client.clone(), NS);
    let first = service.create(request("stuck", "Delete")).await.unwrap();
    // A storage driver's finalizer holds the claim long after its pod has gone.
    let held = json!({ "metadata": { "finalizers": ["kubernetes.io/pvc-protection", "example.com/snapshot"] } });
    claims
        .patch(
            "stuck-data",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&held),
        )
        .await
        .unwrap();
    service
        .delete(&first.record.framedb_id, false)
        .await
        .unwrap();
    let uid = claim_uid(&cluster, "stuck-data").await;

    let refused = service
        .create(request("stuck", "Delete"))
        .await
        .unwrap_err();
    let Error::ObjectConflict {
        object, sentence, ..
    } = &refused
    else {
        panic!("{refused:?}");
    };
    assert_eq!(object, "PersistentVolumeClaim framedb-storage/stuck-data");
    assert!(
        sentence.contains("is still being deleted (Terminating, held by its finalizers")
            && sentence.contains("example.com/snapshot")
            && sentence.contains("retry the create once it is gone")
            && !sentence.contains("  "),
        "{sentence}"
    );
    // Nothing taken, and the refused create's own objects are undone.
    let claim = claims.get("stuck-data").await.unwrap();
    assert_eq!(claim.metadata.uid, uid);
    assert!(claim.metadata.deletion_timestamp.is_some());
    assert!(registry.is_empty());
    assert!(
        Api::<Service>::namespaced(cluster.client.clone(), NS)
            .get_opt("stuck")
            .await
            .unwrap()
            .is_none()
    );

    // Once the driver lets go, the create goes through.
    let released = json!({ "metadata": { "finalizers": null } });
    claims
        .patch(
            "stuck-data",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&released),
        )
        .await
        .unwrap();
    let created = service.create(request("stuck", "Delete")).await.unwrap();
    assert!(!created.reattached);
    assert_ne!(claim_uid(&cluster, "stuck-data").await, uid);
}

#[tokio::test]
async fn a_create_in_an_instance_namespace_being_deleted_is_a_conflict_saying_so() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let (service, registry) = cluster.service();
    service.create(request("early", "Delete")).await.unwrap();
    // An operator deletes the instances' namespace; something in it holds it a while.
    let held: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "held", "finalizers": ["example.com/hold"] },
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(cluster.client.clone(), NS)
        .create(&PostParams::default(), &held)
        .await
        .unwrap();
    Api::<Namespace>::all(cluster.client.clone())
        .delete(NS, &Default::default())
        .await
        .unwrap();

    let refused = service.create(request("late", "Delete")).await.unwrap_err();
    let Error::ObjectConflict {
        object, sentence, ..
    } = &refused
    else {
        panic!("{refused:?}");
    };
    assert_eq!(object, "Namespace framedb-storage");
    assert!(
        sentence.starts_with(
            "namespace framedb-storage on cluster 'cluster-01' is being deleted, so nothing can \
             be created in it"
        ) && sentence.ends_with("retry once it is gone"),
        "{sentence}"
    );
    let late = framedb_core::FramedbId::new("late").unwrap();
    assert!(matches!(
        framedb_core::InstanceRegistry::get(registry.as_ref(), &late).await,
        Err(Error::InstanceNotFound(_))
    ));
}

/// The stamp a volume's claim carries, and whether it is retained.
async fn claim_owner(cluster: &Cluster, name: &str) -> Option<(String, bool)> {
    let claim = Api::<PersistentVolumeClaim>::namespaced(cluster.client.clone(), NS)
        .get_opt(name)
        .await
        .unwrap()?;
    let stamp = claim.metadata.annotations.unwrap_or_default()["framedb.io/stamp"].clone();
    let retained = claim
        .metadata
        .labels
        .unwrap_or_default()
        .get("framedb.io/retained")
        .is_some_and(|v| v == "true");
    Some((stamp, retained))
}

#[tokio::test]
async fn an_undone_take_back_returns_the_volume_to_the_stamp_that_retained_it() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let (first, second) = (Stamp::generate().unwrap(), Stamp::generate().unwrap());
    let spec = |stamp: &Stamp, port| framedb_core::DeploymentSpec {
        stamp: stamp.clone(),
        deletion_policy: DeletionPolicy::Retain,
        ..super::spec("kept", "node-a", port)
    };
    let id = framedb_core::FramedbId::new("kept").unwrap();
    cluster.fleet.deploy(&spec(&first, 30900)).await.unwrap();
    let uid = claim_uid(&cluster, "kept-data").await;
    let undeploy = |stamp: &Stamp, removal| {
        let (fleet, id, stamp) = (cluster.fleet.clone(), id.clone(), stamp.clone());
        async move {
            fleet
                .undeploy(&cluster_id(), &id, &stamp, removal)
                .await
                .unwrap()
        }
    };
    assert!(undeploy(&first, Removal::Retain).await);
    let retained = Some((first.as_str().to_owned(), true));
    assert_eq!(claim_owner(&cluster, "kept-data").await, retained);

    // A second create takes it back, fails, and its undo gives it back as it was.
    let back = cluster.fleet.deploy(&spec(&second, 30901)).await.unwrap();
    assert!(back.reattached);
    assert_eq!(
        claim_owner(&cluster, "kept-data").await,
        Some((second.as_str().to_owned(), false))
    );
    assert!(undeploy(&second, Removal::Undo).await);
    assert_eq!(claim_owner(&cluster, "kept-data").await, retained);

    // Not the failed create's: neither its purge nor a second undo touches it.
    assert!(!undeploy(&second, Removal::Purge).await);
    assert!(!undeploy(&second, Removal::Undo).await);
    assert!(!undeploy(&first, Removal::Retain).await, "retained already");
    assert_eq!(claim_uid(&cluster, "kept-data").await, uid);

    // The first stamp's purge (its delete asked to purge, after retaining halfway)
    // removes the volume (once the undone create's pod has terminated) and its
    // credentials.
    assert!(undeploy(&first, Removal::Purge).await);
    let claims = Api::<PersistentVolumeClaim>::namespaced(cluster.client.clone(), NS);
    let gone = super::eventually(Duration::from_secs(10), || async {
        claims.get_opt("kept-data").await.unwrap().is_none()
    })
    .await;
    assert!(gone);
    assert!(
        Api::<Secret>::namespaced(cluster.client.clone(), NS)
            .get_opt("kept-credentials")
            .await
            .unwrap()
            .is_none()
    );
}

/// A retained volume is taken back by its size in bytes (any spelling), as its claim
/// tells it: a Secret whose size annotation a stopped PATCH left behind does not lock it
/// out.
#[tokio::test]
async fn a_retained_volume_is_taken_back_by_its_claim_s_size_in_any_spelling() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let (service, _) = cluster.service();
    let first = service.create(request("spelled", "Retain")).await.unwrap();
    service
        .delete(&first.record.framedb_id, false)
        .await
        .unwrap();
    // As a PATCH that stopped after the claim would leave it: the Secret says less.
    Api::<Secret>::namespaced(cluster.client.clone(), NS)
        .patch(
            "spelled-credentials",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({
                "metadata": {"annotations": {"framedb.io/storage-size": "512Mi"}}
            })),
        )
        .await
        .unwrap();
    let mut again = request("spelled", "Retain");
    again.storage_size = framedb_core::StorageSize::new("1024Mi").unwrap();
    let back = service.create(again).await.unwrap();
    assert!(back.reattached, "taken back");
    assert_eq!(back.credentials, first.credentials, "with its password");
}
