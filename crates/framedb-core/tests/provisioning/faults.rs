//! What the fault soak of issue 12 (tests/e2e/two_tier/soak.rs) found, each case on its
//! own: a delete or an undo finished by a reconcile pass removes what it was asked to; a
//! pass acting on what it read at its start touches no newer create of the id and
//! records no instance deleted meanwhile; a repeated deploy that fails again is a
//! failure, not a conflict.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use framedb_core::memory::{InMemoryFleet, InMemoryRegistry};
use framedb_core::{
    ClusterDeployer, ClusterId, Credentials, Deployed, DeploymentSpec, Error, FramedbId,
    InstanceRecord, InstanceRegistry, InstanceStatus, Metadata, NewInstance, PortChoice,
    ProvisioningService, Query, Removal, Stamp, StatusReport, StorageSize,
};
use serde_json::json;

use super::{cluster, id};

/// The in-memory cluster, with faults on demand: the next deploys or undeploys fail
/// (deploys before or after they are applied), or the next inventory answers what the
/// cluster ran a while ago.
struct Flaky {
    inner: Arc<InMemoryFleet>,
    failing_deploys: AtomicUsize,
    /// Deploys applied whose answer is lost (a connection dropped after the request).
    unanswered_deploys: AtomicUsize,
    failing_undeploys: AtomicUsize,
    stale_inventory: Mutex<Option<Vec<InstanceRecord>>>,
}

impl Flaky {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: Arc::new(InMemoryFleet::demo(Duration::ZERO)),
            failing_deploys: AtomicUsize::new(0),
            unanswered_deploys: AtomicUsize::new(0),
            failing_undeploys: AtomicUsize::new(0),
            stale_inventory: Mutex::new(None),
        })
    }

    fn service(self: &Arc<Self>, registry: Arc<dyn InstanceRegistry>) -> ProvisioningService {
        ProvisioningService::new(registry, self.clone(), self.inner.clone())
    }
}

/// Takes one of `count`'s failures, if any are left.
fn fails(count: &AtomicUsize) -> bool {
    count
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

fn unavailable() -> Error {
    Error::Unavailable("the cluster's API answered 503".into())
}

#[async_trait]
impl ClusterDeployer for Flaky {
    async fn deploy(&self, spec: &DeploymentSpec) -> framedb_core::Result<Deployed> {
        if fails(&self.failing_deploys) {
            return Err(unavailable());
        }
        let deployed = self.inner.deploy(spec).await?;
        if fails(&self.unanswered_deploys) {
            return Err(unavailable());
        }
        Ok(deployed)
    }
    async fn undeploy(
        &self,
        cluster: &ClusterId,
        id: &FramedbId,
        stamp: &Stamp,
        removal: Removal,
    ) -> framedb_core::Result<bool> {
        if fails(&self.failing_undeploys) {
            return Err(unavailable());
        }
        self.inner.undeploy(cluster, id, stamp, removal).await
    }
    async fn amend(&self, spec: &DeploymentSpec) -> framedb_core::Result<StorageSize> {
        self.inner.amend(spec).await
    }
    async fn credentials(
        &self,
        cluster: &ClusterId,
        id: &FramedbId,
    ) -> framedb_core::Result<Credentials> {
        self.inner.credentials(cluster, id).await
    }
    async fn statuses(
        &self,
        cluster: &ClusterId,
        ids: &[FramedbId],
    ) -> framedb_core::Result<std::collections::HashMap<FramedbId, StatusReport>> {
        self.inner.statuses(cluster, ids).await
    }
    async fn inventory(&self, cluster: &ClusterId) -> framedb_core::Result<Vec<InstanceRecord>> {
        if let Some(stale) = self.stale_inventory.lock().unwrap().take() {
            return Ok(stale);
        }
        self.inner.inventory(cluster).await
    }
    async fn follow(
        &self,
        cluster: &ClusterId,
    ) -> framedb_core::Result<framedb_core::live::StatusFeed> {
        self.inner.follow(cluster).await
    }
}

/// A create request of policy `Retain`.
fn retained(id: &str) -> NewInstance {
    serde_json::from_value(json!({
        "framedb_id": id, "cluster_id": "cluster-01", "node_id": "node-a",
        "storage_size": "2Gi", "deletion_policy": "Retain"
    }))
    .unwrap()
}

/// A pass that settles every record at once.
async fn reconcile(service: &ProvisioningService) -> framedb_core::Repairs {
    service
        .reconcile(Duration::ZERO, &[cluster()])
        .await
        .unwrap()
}

#[tokio::test]
async fn a_purge_that_failed_halfway_is_finished_by_a_pass_as_a_purge() {
    let fleet = Flaky::new();
    let registry = Arc::new(InMemoryRegistry::new());
    let service = fleet.service(registry.clone());
    service.create(retained("keeper")).await.unwrap();

    fleet.failing_undeploys.store(1, Ordering::SeqCst);
    let failed = service.delete(&id("keeper"), true).await.unwrap_err();
    assert_eq!(failed, unavailable());
    let left = registry.get(&id("keeper")).await.unwrap();
    assert_eq!(
        (left.status, left.removal),
        (InstanceStatus::Deleting, Some(Removal::Purge))
    );

    assert_eq!(reconcile(&service).await.deleted, 1);
    assert!(registry.is_empty());
    // Purged, not retained: a new create of the id makes a new volume.
    let again = service.create(retained("keeper")).await.unwrap();
    assert!(!again.reattached, "the purged volume was retained");
}

#[tokio::test]
async fn an_undo_that_failed_halfway_is_finished_by_a_pass_as_an_undo() {
    // A local service: the global undoes its failed create by stamp, and that fails.
    let fleet = Flaky::new();
    let registry = Arc::new(InMemoryRegistry::new());
    let local = fleet.service(registry.clone());
    let stamp = Stamp::generate().unwrap();
    local
        .create_on(
            retained("undone"),
            PortChoice::Exactly(30900),
            stamp.clone(),
        )
        .await
        .unwrap();
    fleet.failing_undeploys.store(1, Ordering::SeqCst);
    let failed = local
        .delete_stamped(&id("undone"), &cluster(), &stamp, Removal::Undo)
        .await
        .unwrap_err();
    assert_eq!(failed, unavailable());

    assert_eq!(reconcile(&local).await.deleted, 1);
    assert!(registry.is_empty());
    // The create made its volume: its undo removes it, whatever the policy.
    let again = local.create(retained("undone")).await.unwrap();
    assert!(!again.reattached, "the undone create's volume was retained");
}

/// A registry whose queries answer what it held a while ago (what a reconcile pass read
/// at its start), and whose other calls reach the registry as it is.
struct ReadEarlier {
    now: Arc<InMemoryRegistry>,
    earlier: Vec<InstanceRecord>,
    /// Whether the next read of a record is followed at once by the undo of its create
    /// being recorded (a failed create's own undo, racing the pass).
    undo_after_get: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl InstanceRegistry for ReadEarlier {
    async fn insert(&self, record: &InstanceRecord) -> framedb_core::Result<()> {
        self.now.insert(record).await
    }
    async fn update_deployment(
        &self,
        id: &FramedbId,
        stamp: &Stamp,
        port: Option<u16>,
        status: InstanceStatus,
    ) -> framedb_core::Result<()> {
        self.now.update_deployment(id, stamp, port, status).await
    }
    async fn mark_deleting(
        &self,
        id: &FramedbId,
        stamp: &Stamp,
        removal: Removal,
    ) -> framedb_core::Result<()> {
        self.now.mark_deleting(id, stamp, removal).await
    }
    async fn amend(
        &self,
        id: &FramedbId,
        stamp: &Stamp,
        metadata: &Metadata,
        storage_size: &StorageSize,
    ) -> framedb_core::Result<()> {
        self.now.amend(id, stamp, metadata, storage_size).await
    }
    async fn get(&self, id: &FramedbId) -> framedb_core::Result<InstanceRecord> {
        let record = self.now.get(id).await?;
        if self.undo_after_get.swap(false, Ordering::SeqCst) {
            self.now
                .mark_deleting(id, &record.stamp, Removal::Undo)
                .await?;
        }
        Ok(record)
    }
    async fn remove(&self, id: &FramedbId) -> framedb_core::Result<bool> {
        self.now.remove(id).await
    }
    async fn remove_stamped(&self, id: &FramedbId, stamp: &Stamp) -> framedb_core::Result<bool> {
        self.now.remove_stamped(id, stamp).await
    }
    async fn find(&self, _: &Query) -> framedb_core::Result<Vec<InstanceRecord>> {
        Ok(self.earlier.clone())
    }
    async fn ping(&self) -> framedb_core::Result<()> {
        self.now.ping().await
    }
}

#[tokio::test]
async fn a_pass_that_read_a_delete_under_way_leaves_a_new_create_of_the_id_alone() {
    let fleet = Flaky::new();
    let registry = Arc::new(InMemoryRegistry::new());
    let service = fleet.service(registry.clone());
    let first = service.create(retained("reborn")).await.unwrap();
    service.delete(&id("reborn"), true).await.unwrap();
    service.create(retained("reborn")).await.unwrap();
    // As stored (the create's answer has the time of its insert, not of its last write).
    let second = registry.get(&id("reborn")).await.unwrap();

    // The pass read the first create's record while its delete was under way.
    let mut earlier = first.record.clone();
    earlier.status = InstanceStatus::Deleting;
    earlier.removal = Some(Removal::Purge);
    let pass = fleet.service(Arc::new(ReadEarlier {
        now: registry.clone(),
        earlier: vec![earlier],
        undo_after_get: false.into(),
    }));
    let repairs = reconcile(&pass).await;
    assert_eq!((repairs.deleted, repairs.failed), (0, 0), "{repairs:?}");

    let now = registry.get(&id("reborn")).await.unwrap();
    assert_eq!(now, second, "the new create's record is untouched");
    assert_eq!(fleet.inner.workloads(&cluster()).unwrap(), [id("reborn")]);
}

#[tokio::test]
async fn a_pass_does_not_record_again_an_instance_deleted_while_it_ran() {
    let fleet = Flaky::new();
    let registry = Arc::new(InMemoryRegistry::new());
    let service = fleet.service(registry.clone());
    service.create(retained("late")).await.unwrap();
    // The pass's first read of the cluster saw it running; its delete finished next.
    let seen = fleet.inner.inventory(&cluster()).await.unwrap();
    service.delete(&id("late"), false).await.unwrap();
    *fleet.stale_inventory.lock().unwrap() = Some(seen);

    let repairs = reconcile(&service).await;
    assert_eq!(repairs.rebuilt, 0, "{repairs:?}");
    assert!(registry.is_empty(), "a deleted instance was recorded again");
}

#[tokio::test]
async fn a_repeated_deploy_that_fails_again_is_a_failure_not_a_conflict() {
    // A local service: the global repeats a PUT that the cluster failed (503), and the
    // first attempt's undo failed too, so its record is still there.
    let fleet = Flaky::new();
    let registry = Arc::new(InMemoryRegistry::new());
    let local = fleet.service(registry.clone());
    let stamp = Stamp::generate().unwrap();
    let put = || local.create_on(retained("twice"), PortChoice::Exactly(30900), stamp.clone());
    fleet.failing_deploys.store(1, Ordering::SeqCst);
    fleet.failing_undeploys.store(1, Ordering::SeqCst);
    assert_eq!(put().await.unwrap_err(), unavailable());
    assert!(
        registry.get(&id("twice")).await.is_ok(),
        "kept for the retry"
    );

    fleet.failing_deploys.store(1, Ordering::SeqCst);
    assert_eq!(put().await.unwrap_err(), unavailable());
    let created = put().await.unwrap();
    assert_eq!(created.record.port, Some(30900));
}

/// What the soak found as "global records soak-053 and soak-110 share port 30901;
/// soak-053 has no local record": a create whose deploy was applied but not answered,
/// and whose undo failed too, was left `Provisioning` without a port, and a reconcile pass
/// completed it from its running objects. The client had been told that the create
/// failed; in two tiers, the cluster's config service then removed those objects (its
/// own undo, or the global's undo by stamp, fenced), and the global registry kept a live
/// record, with its port, of an instance that no longer existed.
#[tokio::test]
async fn a_failed_create_whose_undo_failed_is_undone_by_a_pass_never_completed() {
    let fleet = Flaky::new();
    let registry = Arc::new(InMemoryRegistry::new());
    let service = fleet.service(registry.clone());
    fleet.unanswered_deploys.store(1, Ordering::SeqCst);
    fleet.failing_undeploys.store(1, Ordering::SeqCst);
    assert_eq!(
        service.create(retained("unanswered")).await.unwrap_err(),
        unavailable()
    );
    let left = registry.get(&id("unanswered")).await.unwrap();
    assert_eq!(
        (left.status, left.removal, left.port),
        (InstanceStatus::Deleting, Some(Removal::Undo), None)
    );
    assert_eq!(
        fleet.inner.workloads(&cluster()).unwrap(),
        [id("unanswered")]
    );

    let repairs = reconcile(&service).await;
    assert_eq!((repairs.deleted, repairs.completed), (1, 0), "{repairs:?}");
    assert!(registry.is_empty(), "a failed create was completed");
    assert!(fleet.inner.workloads(&cluster()).unwrap().is_empty());
    assert!(fleet.inner.used_ports(&cluster()).unwrap().is_empty());
    // Undone, not retained: the volume it made went with it.
    let again = service.create(retained("unanswered")).await.unwrap();
    assert!(!again.reattached, "the undone create's volume was retained");
}

/// A pass completes a create that looks dead (no port past the deadline, its objects
/// running), and the create's own undo records itself between the pass's check of the
/// record and its write of the port: the write is refused, and the undo stays recorded
/// for a pass to finish, rather than the record going back to a live `Provisioning` with
/// a port.
#[tokio::test]
async fn a_pass_does_not_complete_a_create_whose_undo_began_after_its_check() {
    let fleet = Flaky::new();
    let registry = Arc::new(InMemoryRegistry::new());
    let service = fleet.service(registry.clone());
    // A create whose record lost its port (as one that died before recording it).
    let created = service.create(retained("raced")).await.unwrap();
    let mut dead = registry.get(&id("raced")).await.unwrap();
    registry.remove(&id("raced")).await.unwrap();
    dead.port = None;
    dead.status = InstanceStatus::Provisioning;
    registry.insert(&dead).await.unwrap();

    let pass = fleet.service(Arc::new(ReadEarlier {
        now: registry.clone(),
        earlier: vec![dead.clone()],
        undo_after_get: true.into(),
    }));
    let repairs = pass.reconcile(Duration::ZERO, &[cluster()]).await.unwrap();
    assert_eq!(repairs.completed, 0, "{repairs:?}");
    let left = registry.get(&id("raced")).await.unwrap();
    assert_eq!(
        (left.status, left.removal, left.port),
        (InstanceStatus::Deleting, Some(Removal::Undo), None)
    );

    // The next pass finishes the undo.
    assert_eq!(reconcile(&service).await.deleted, 1);
    assert!(registry.is_empty());
    assert!(fleet.inner.workloads(&cluster()).unwrap().is_empty());
    assert_eq!(created.record.stamp, dead.stamp);
}
