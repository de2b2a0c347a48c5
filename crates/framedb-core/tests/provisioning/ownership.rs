//! Nothing lost, nothing taken over: each create acts on the objects it stamped, a
//! retained volume outlives its instance and comes back to its id, and a delete removes
//! what runs whether or not the record survived.

use std::sync::Arc;

use framedb_core::memory::InMemoryRegistry;
use framedb_core::{
    ClusterDeployer, DeletionPolicy, Error, InstanceRegistry, PortChoice, ProvisioningService,
    Removal, Stamp,
};

use super::{Hooked, cluster, id, in_memory, request};

/// A deployer on `fleet` whose deploys each signal the returned `Notify`, then wait for a
/// permit of the returned semaphore: a deploy delayed on the network, which the test lets
/// go on.
fn held_deploys(
    fleet: Arc<framedb_core::memory::InMemoryFleet>,
) -> (
    Hooked,
    Arc<tokio::sync::Semaphore>,
    Arc<tokio::sync::Notify>,
) {
    let go = Arc::new(tokio::sync::Semaphore::new(0));
    let arrived = Arc::new(tokio::sync::Notify::new());
    let mut delayed = Hooked::on(fleet);
    let (gate, signal) = (go.clone(), arrived.clone());
    delayed.before_deploy = Box::new(move || {
        signal.notify_one();
        let gate = gate.clone();
        Box::pin(async move {
            gate.acquire().await.unwrap().forget();
        })
    });
    (delayed, go, arrived)
}

/// Creates `name`, then removes its objects from the cluster behind FrameDB's back (as
/// `kubectl delete` would), keeping or removing the volume as `removal` says.
async fn created_then_deleted_behind(
    service: &ProvisioningService,
    fleet: &framedb_core::memory::InMemoryFleet,
    name: &str,
    removal: Removal,
) -> framedb_core::Created {
    let created = service.create(request(name)).await.unwrap();
    fleet
        .undeploy(&cluster(), &id(name), &created.record.stamp, removal)
        .await
        .unwrap();
    created
}

#[tokio::test]
async fn a_create_of_an_id_another_create_runs_deletes_nothing_of_it() {
    // The local tier holds the id under the first create's stamp; a second create of the
    // id (a global that lost its record) is refused and undoes only its own stamp.
    let (local, registry, fleet) = in_memory();
    let first = Stamp::generate().unwrap();
    let running = local
        .create_on(
            request("tidb-001"),
            PortChoice::Exactly(30900),
            first.clone(),
        )
        .await
        .unwrap();
    let second = Stamp::generate().unwrap();
    let refused = local
        .create_on(
            request("tidb-001"),
            PortChoice::Exactly(30901),
            second.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(refused, Error::AlreadyExists(id("tidb-001")));
    // The second create's undo, as the global sends it, finds nothing of its stamp.
    let undo = local
        .delete_stamped(&id("tidb-001"), &cluster(), &second, Removal::Undo)
        .await
        .unwrap_err();
    assert_eq!(undo, Error::InstanceNotFound(id("tidb-001")));
    assert_eq!(registry.get(&id("tidb-001")).await.unwrap().stamp, first);
    assert_eq!(fleet.workloads(&cluster()).unwrap(), [id("tidb-001")]);
    let kept = fleet
        .credentials(&cluster(), &id("tidb-001"))
        .await
        .unwrap();
    assert_eq!(kept, running.credentials);
}

#[tokio::test]
async fn a_fresh_registry_cannot_take_over_objects_another_create_made() {
    // A second service on an empty registry and the same cluster (a restart on an
    // in-memory registry): its create of a running id is refused, and nothing changes.
    let (first, _, fleet) = in_memory();
    first.create(request("tidb-001")).await.unwrap();
    let fresh = ProvisioningService::new(
        Arc::new(InMemoryRegistry::new()),
        fleet.clone(),
        fleet.clone(),
    );
    let refused = fresh.create(request("tidb-001")).await.unwrap_err();
    assert!(
        matches!(refused, Error::ObjectConflict { .. }),
        "{refused:?}"
    );
    assert_eq!(fleet.workloads(&cluster()).unwrap(), [id("tidb-001")]);
    assert!(first.get(&id("tidb-001")).await.is_ok());
}

#[tokio::test]
async fn a_delete_without_a_record_removes_the_objects_of_its_stamp() {
    let (local, registry, fleet) = in_memory();
    let stamp = Stamp::generate().unwrap();
    local
        .create_on(
            request("tidb-001"),
            PortChoice::Exactly(30900),
            stamp.clone(),
        )
        .await
        .unwrap();
    // The local service lost its record (a restart on an in-memory registry).
    registry.remove(&id("tidb-001")).await.unwrap();
    local
        .delete_stamped(&id("tidb-001"), &cluster(), &stamp, Removal::Purge)
        .await
        .unwrap();
    assert!(fleet.workloads(&cluster()).unwrap().is_empty());
    assert!(fleet.used_ports(&cluster()).unwrap().is_empty());
    let again = local
        .delete_stamped(&id("tidb-001"), &cluster(), &stamp, Removal::Purge)
        .await
        .unwrap_err();
    assert_eq!(again, Error::InstanceNotFound(id("tidb-001")));
}

#[tokio::test]
async fn a_retained_volume_outlives_its_instance_and_comes_back_to_its_id() {
    let (service, registry, fleet) = in_memory();
    let mut keep = request("tidb-001");
    keep.deletion_policy = DeletionPolicy::Retain;
    let first = service.create(keep.clone()).await.unwrap();
    assert_eq!(first.record.deletion_policy, DeletionPolicy::Retain);
    assert!(!first.reattached);
    service.delete(&id("tidb-001"), false).await.unwrap();
    assert!(registry.is_empty());
    assert!(fleet.workloads(&cluster()).unwrap().is_empty());

    let back = service.create(keep.clone()).await.unwrap();
    assert!(back.reattached, "the retained volume is taken back");
    assert_eq!(
        back.credentials, first.credentials,
        "with its data's password"
    );

    // Purging removes it whatever the policy: the next create starts empty.
    service.delete(&id("tidb-001"), true).await.unwrap();
    let fresh = service.create(keep).await.unwrap();
    assert!(!fresh.reattached);
    assert_ne!(fresh.credentials, first.credentials);
}

#[tokio::test]
async fn a_failed_create_that_took_a_retained_volume_back_retains_it_again() {
    let (service, _, fleet) = in_memory();
    let mut keep = request("tidb-001");
    keep.deletion_policy = DeletionPolicy::Retain;
    let first = service.create(keep.clone()).await.unwrap();
    service.delete(&id("tidb-001"), false).await.unwrap();
    // A create that takes the volume back and is then undone (its registry update
    // failed, say) gives it back to the retained state, not to the void.
    let stamp = Stamp::generate().unwrap();
    let spec = framedb_core::DeploymentSpec {
        framedb_id: id("tidb-001"),
        cluster_id: cluster(),
        node_id: "node-a".parse().unwrap(),
        storage_size: framedb_core::StorageSize::new("2Gi").unwrap(),
        port: 30900,
        stamp: stamp.clone(),
        deletion_policy: DeletionPolicy::Retain,
        created_at: framedb_core::Timestamp::now(),
        metadata: Default::default(),
        resources: None,
    };
    assert!(fleet.deploy(&spec).await.unwrap().reattached);
    fleet
        .undeploy(&cluster(), &id("tidb-001"), &stamp, Removal::Undo)
        .await
        .unwrap();
    let back = service.create(keep).await.unwrap();
    assert!(back.reattached);
    assert_eq!(back.credentials, first.credentials);
}

#[tokio::test]
async fn a_deploy_that_arrives_after_its_undo_never_lands() {
    let (_, registry, fleet) = in_memory();
    // Deploys wait until the test lets them go on, as a deploy delayed on the network.
    let (delayed, go, arrived) = held_deploys(fleet.clone());
    let local = ProvisioningService::new(registry.clone(), Arc::new(delayed), fleet.clone())
        .with_fence(Arc::new(framedb_core::memory::InMemoryFence::new()));
    let stamp = Stamp::generate().unwrap();

    // The undo comes first (the global gave up): nothing of the stamp exists yet, and a
    // deploy of it that arrives later is refused before it starts.
    let early = local
        .delete_stamped(&id("late-1"), &cluster(), &stamp, Removal::Undo)
        .await
        .unwrap_err();
    assert_eq!(early, Error::InstanceNotFound(id("late-1")));
    let late = local
        .create_on(request("late-1"), PortChoice::Exactly(30900), stamp.clone())
        .await
        .unwrap_err();
    assert!(matches!(late, Error::ObjectConflict { .. }), "{late:?}");
    assert!(fleet.workloads(&cluster()).unwrap().is_empty());

    // The undo comes while the deploy is on its way: the deploy lands, sees the fence,
    // and removes what it made.
    let other = Stamp::generate().unwrap();
    let creating = tokio::spawn({
        let local = local.clone();
        let stamp = other.clone();
        async move {
            local
                .create_on(request("late-2"), PortChoice::Exactly(30901), stamp)
                .await
        }
    });
    arrived.notified().await;
    local
        .delete_stamped(&id("late-2"), &cluster(), &other, Removal::Undo)
        .await
        .unwrap();
    go.add_permits(1);
    let landed = creating.await.unwrap().unwrap_err();
    assert!(matches!(landed, Error::ObjectConflict { .. }), "{landed:?}");
    assert!(fleet.workloads(&cluster()).unwrap().is_empty());
    assert!(fleet.used_ports(&cluster()).unwrap().is_empty());
    assert!(registry.is_empty());
}

#[tokio::test]
async fn a_reconcile_pass_settles_what_died_halfway_and_records_what_runs() {
    let (service, registry, fleet) = in_memory();
    let old: framedb_core::Timestamp =
        serde_json::from_value(serde_json::json!("2026-01-01T00:00:00.000Z")).unwrap();
    // A create that died after its deploy, before recording its port (a kill -9), and
    // one that died before its deploy.
    let stamp = Stamp::generate().unwrap();
    let deployed = framedb_core::InstanceRecord::provisioning(
        request("deployed-then-killed"),
        stamp.clone(),
        old,
    );
    registry.insert(&deployed).await.unwrap();
    let spec = framedb_core::DeploymentSpec {
        port: 30950,
        ..framedb_core::DeploymentSpec {
            framedb_id: id("deployed-then-killed"),
            cluster_id: cluster(),
            node_id: "node-a".parse().unwrap(),
            storage_size: framedb_core::StorageSize::new("2Gi").unwrap(),
            port: 0,
            stamp,
            deletion_policy: DeletionPolicy::Delete,
            created_at: old,
            metadata: Default::default(),
            resources: None,
        }
    };
    fleet.deploy(&spec).await.unwrap();
    let never = framedb_core::InstanceRecord::provisioning(
        request("killed-before-deploy"),
        Stamp::generate().unwrap(),
        old,
    );
    registry.insert(&never).await.unwrap();
    // A delete that died halfway, a live instance, and one whose record was lost.
    let live = service.create(request("live")).await.unwrap();
    let half = service.create(request("half-deleted")).await.unwrap();
    registry
        .update_deployment(
            &id("half-deleted"),
            &half.record.stamp,
            half.record.port,
            framedb_core::InstanceStatus::Deleting,
        )
        .await
        .unwrap();
    let lost = service.create(request("lost-record")).await.unwrap();
    registry.remove(&id("lost-record")).await.unwrap();

    // Young records without a port may be creates still running: they are left alone;
    // and without its cluster named, nothing is rebuilt.
    let young = service
        .reconcile(std::time::Duration::from_secs(1_000_000_000), &[])
        .await
        .unwrap();
    assert_eq!(
        (young.deleted, young.completed, young.settled, young.rebuilt),
        (1, 0, 0, 0)
    );

    let pass = service
        .reconcile(std::time::Duration::ZERO, &[cluster()])
        .await
        .unwrap();
    assert_eq!(
        (pass.completed, pass.settled, pass.rebuilt, pass.failed),
        (1, 1, 1, 0)
    );
    let completed = registry.get(&id("deployed-then-killed")).await.unwrap();
    assert_eq!(completed.port, Some(30950));
    assert!(registry.get(&id("killed-before-deploy")).await.is_err());
    let rebuilt = registry.get(&id("lost-record")).await.unwrap();
    assert_eq!(rebuilt.stamp, lost.record.stamp);
    assert_eq!(rebuilt.port, lost.record.port);
    assert_eq!(rebuilt.metadata, lost.record.metadata);
    assert_eq!(rebuilt.created_at, lost.record.created_at);
    let mut running = fleet.workloads(&cluster()).unwrap();
    running.sort();
    assert_eq!(
        running,
        [id("deployed-then-killed"), id("live"), id("lost-record")]
    );
    assert!(registry.get(&id("live")).await.unwrap().port == live.record.port);
    // Nothing is left to settle.
    let again = service
        .reconcile(std::time::Duration::ZERO, &[cluster()])
        .await
        .unwrap();
    assert!(!again.any(), "{again:?}");
}

#[tokio::test]
async fn a_reconcile_pass_brings_back_what_was_deleted_from_under_a_live_instance() {
    let (service, registry, fleet) = in_memory();
    let created = created_then_deleted_behind(&service, &fleet, "drifted", Removal::Retain).await;
    assert!(fleet.workloads(&cluster()).unwrap().is_empty());

    let pass = service
        .reconcile(std::time::Duration::ZERO, &[cluster()])
        .await
        .unwrap();
    assert_eq!((pass.restored, pass.failed), (1, 0), "{pass:?}");
    assert_eq!(fleet.workloads(&cluster()).unwrap(), [id("drifted")]);
    assert_eq!(
        fleet.used_ports(&cluster()).unwrap(),
        [created.record.port.unwrap()]
    );
    let again = service
        .reconcile(std::time::Duration::ZERO, &[cluster()])
        .await
        .unwrap();
    assert!(!again.any(), "{again:?}");
    assert_eq!(
        registry.get(&id("drifted")).await.unwrap().stamp,
        created.record.stamp
    );
}

#[tokio::test]
async fn a_repair_overtaken_by_a_delete_takes_back_what_it_made() {
    let (service, registry, fleet) = in_memory();
    created_then_deleted_behind(&service, &fleet, "overtaken", Removal::Purge).await;
    // The repair's deploy waits until the test lets it go on; the delete runs meanwhile.
    let (delayed, go, arrived) = held_deploys(fleet.clone());
    let reconciler = ProvisioningService::new(registry.clone(), Arc::new(delayed), fleet.clone());
    let pass = tokio::spawn(async move {
        reconciler
            .reconcile(std::time::Duration::ZERO, &[cluster()])
            .await
    });
    arrived.notified().await;
    service.delete(&id("overtaken"), false).await.unwrap();
    go.add_permits(1);
    let pass = pass.await.unwrap().unwrap();
    assert_eq!(pass.restored, 0, "{pass:?}");
    assert!(fleet.workloads(&cluster()).unwrap().is_empty());
    assert!(fleet.used_ports(&cluster()).unwrap().is_empty());
    assert!(registry.is_empty());
}
