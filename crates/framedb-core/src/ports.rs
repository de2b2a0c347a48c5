//! The ports: what the provisioning service needs from the outside world. Adapters in
//! other crates implement them (MongoDB, Kubernetes, a remote local config service);
//! [`crate::memory`] implements them in-process. Every method returns domain errors only.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::directory::{DirectoryEntry, LocalToken, Recorded};
use crate::error::Result;
use crate::filter::Query;
use crate::live::StatusFeed;
use crate::types::{
    ClusterId, Credentials, DeletionPolicy, FramedbId, InstanceRecord, InstanceStatus, Metadata,
    NodeId, Removal, ResourceProfile, Stamp, StatusReport, StorageSize, Timestamp,
};

/// The registry of every persistent instance.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait InstanceRegistry: Send + Sync {
    /// Registers a new instance. The registry's uniqueness on `framedb_id` is what makes a
    /// create exclusive, across replicas of the service too.
    ///
    /// # Errors
    /// [`crate::Error::AlreadyExists`] when the id is taken; [`crate::Error::Unavailable`]
    /// or [`crate::Error::Timeout`] when the registry cannot be reached.
    async fn insert(&self, record: &InstanceRecord) -> Result<()>;

    /// Records the port and status of the record of `id` that the create stamped `stamp`
    /// made, and bumps `updated_at`, unless a delete of it has begun (it is `Deleting`):
    /// a create, or a reconcile pass completing one from what it read a while ago, must
    /// neither revive a record that a delete or a failed create's undo has marked nor
    /// write into the record of a newer create of the id.
    ///
    /// # Errors
    /// [`crate::Error::InstanceNotFound`] when no record has this id and stamp (it was
    /// deleted meanwhile), or it is `Deleting`; `Unavailable` / `Timeout` as for `insert`.
    async fn update_deployment(
        &self,
        id: &FramedbId,
        stamp: &Stamp,
        port: Option<u16>,
        status: InstanceStatus,
    ) -> Result<()>;

    /// Marks the record of `id` that the create stamped `stamp` made `Deleting`, with the
    /// removal its delete asked for ([`InstanceRecord::removal`]), and bumps
    /// `updated_at`; its port stays. A record of another stamp (a create of the id since
    /// this one's record went) is not touched.
    ///
    /// # Errors
    /// [`crate::Error::InstanceNotFound`] when no record has this id and stamp;
    /// `Unavailable` / `Timeout` as for `insert`.
    async fn mark_deleting(&self, id: &FramedbId, stamp: &Stamp, removal: Removal) -> Result<()>;

    /// Records the metadata and volume size of the record of `id` that the create stamped
    /// `stamp` made, and bumps `updated_at` (a `PATCH` of the instance, once its cluster
    /// holds the change). A record of another stamp is not touched.
    ///
    /// # Errors
    /// [`crate::Error::InstanceNotFound`] when no record has this id and stamp;
    /// `Unavailable` / `Timeout` as for `insert`.
    async fn amend(
        &self,
        id: &FramedbId,
        stamp: &Stamp,
        metadata: &Metadata,
        storage_size: &StorageSize,
    ) -> Result<()>;

    /// The record of one instance.
    ///
    /// # Errors
    /// [`crate::Error::InstanceNotFound`] when no record has this id; `Unavailable` /
    /// `Timeout` as for `insert`.
    async fn get(&self, id: &FramedbId) -> Result<InstanceRecord>;

    /// Removes a record; returns whether there was one. Removing an absent record is not
    /// an error, so compensation and retried deletes can call it freely.
    ///
    /// # Errors
    /// `Unavailable` / `Timeout` as for `insert`.
    async fn remove(&self, id: &FramedbId) -> Result<bool>;

    /// Removes the record of `id` if the create stamped `stamp` made it; returns whether
    /// there was one. A record of another stamp (a create of the id since) stays, so that
    /// a delete or an undo that finishes late never removes a newer create's record.
    ///
    /// # Errors
    /// `Unavailable` / `Timeout` as for `insert`.
    async fn remove_stamped(&self, id: &FramedbId, stamp: &Stamp) -> Result<bool>;

    /// The records matching `query`, in its order and window.
    ///
    /// # Errors
    /// `Unavailable` / `Timeout` as for `insert`.
    async fn find(&self, query: &Query) -> Result<Vec<InstanceRecord>>;

    /// Checks that the registry can serve now (what a readiness probe asks): one small
    /// round trip to its store, bounded by a short deadline of the adapter's. A registry
    /// without a store to reach is always ready.
    ///
    /// # Errors
    /// [`crate::Error::Unavailable`] or [`crate::Error::Timeout`] when the store cannot be
    /// reached or does not answer within the deadline; [`crate::Error::Internal`] when it
    /// answers with a refusal (credentials it does not accept, for instance).
    async fn ping(&self) -> Result<()>;
}

/// What a cluster needs to run an instance.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentSpec {
    /// The instance's id; it names its Kubernetes objects.
    pub framedb_id: FramedbId,
    /// The cluster to run it in.
    pub cluster_id: ClusterId,
    /// The node to pin it to.
    pub node_id: NodeId,
    /// Its volume's size.
    pub storage_size: StorageSize,
    /// The node port its Service claims.
    pub port: u16,
    /// The creation stamp every object made for it carries.
    pub stamp: Stamp,
    /// What deleting it does with its volume (recorded on its objects).
    pub deletion_policy: DeletionPolicy,
    /// The CPU and memory it asks for (none: the cluster's default; recorded on its
    /// objects).
    pub resources: Option<ResourceProfile>,
    /// When it was registered (recorded on its objects).
    pub created_at: Timestamp,
    /// The caller's data (recorded on its workload, so that its record can be rebuilt
    /// from the cluster, and kept in the local service's record).
    pub metadata: Metadata,
}

impl DeploymentSpec {
    /// The record this deployment stands for, as its objects record it: status
    /// `Provisioning`, its port, and its registration time as the last change.
    pub fn record(&self) -> InstanceRecord {
        InstanceRecord {
            framedb_id: self.framedb_id.clone(),
            cluster_id: self.cluster_id.clone(),
            node_id: self.node_id.clone(),
            storage_size: self.storage_size.clone(),
            metadata: self.metadata.clone(),
            deletion_policy: self.deletion_policy,
            resources: self.resources,
            stamp: self.stamp.clone(),
            port: Some(self.port),
            status: InstanceStatus::Provisioning,
            removal: None,
            created_at: self.created_at,
            updated_at: self.created_at,
        }
    }
}

/// What a deploy left on the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    /// The instance's database credentials.
    pub credentials: Credentials,
    /// Whether it took back a volume that a deleted instance of the same id retained.
    pub reattached: bool,
}

/// Runs instances on clusters and reads their state back.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait ClusterDeployer: Send + Sync {
    /// Creates (or completes, when run again after a failure) the instance's workload,
    /// storage and Service on `spec.port`, each stamped with `spec.stamp`, and returns its
    /// database credentials: a password generated at the first deploy and kept on the
    /// cluster, so that running the deploy again returns the same one. The password is
    /// never logged. It takes over no object it did not make: an object of the instance's
    /// names with another stamp is refused, except a volume (and its credentials) that a
    /// deleted instance of the same id retained on the same node, which it takes back.
    ///
    /// # Errors
    /// [`crate::Error::PortTaken`] when another Service holds the port (nothing of this
    /// deployment is left behind then); [`crate::Error::ObjectConflict`] when an object of
    /// its names exists that it did not make (nothing existing is changed);
    /// [`crate::Error::ClusterNotFound`] for an unknown cluster;
    /// [`crate::Error::Unavailable`] / [`crate::Error::Timeout`] when the cluster cannot be
    /// reached; [`crate::Error::Internal`] when it refuses the objects.
    async fn deploy(&self, spec: &DeploymentSpec) -> Result<Deployed>;

    /// Removes the objects of instance `id` that carry `stamp`, as `removal` says (objects
    /// of another stamp are left alone), and returns whether there were any. Objects
    /// already gone are not an error.
    ///
    /// # Errors
    /// `ClusterNotFound`, `Unavailable` / `Timeout`, `Internal` as for `deploy`.
    async fn undeploy(
        &self,
        cluster: &ClusterId,
        id: &FramedbId,
        stamp: &Stamp,
        removal: Removal,
    ) -> Result<bool>;

    /// Brings the objects of the create `spec.stamp` of instance `spec.framedb_id` to
    /// `spec`'s metadata and volume size: the volume grows to `spec.storage_size` (it is
    /// never shrunk: a volume larger already stays so), the workload and what the
    /// objects record (from which [`Self::inventory`] rebuilds records) say the same, and
    /// the size the volume now asks for is returned. Objects missing are not made again
    /// (a reconcile pass restores them from the record); running it again changes
    /// nothing more.
    ///
    /// # Errors
    /// [`crate::Error::NotExpandable`] when the volume must grow and cannot (its class
    /// does not allow expansion, or it is a static volume); nothing is changed then.
    /// [`crate::Error::ObjectConflict`] when an object of the instance's names carries
    /// another stamp; `ClusterNotFound`, `Unavailable` / `Timeout`, `Internal` as for
    /// `deploy`.
    async fn amend(&self, spec: &DeploymentSpec) -> Result<StorageSize>;

    /// The database credentials [`Self::deploy`] made for the instance, read from where
    /// the cluster keeps them.
    ///
    /// # Errors
    /// [`crate::Error::InstanceNotFound`] when the cluster holds no credentials for `id`;
    /// `ClusterNotFound`, `Unavailable` / `Timeout`, `Internal` as for `deploy`.
    async fn credentials(&self, cluster: &ClusterId, id: &FramedbId) -> Result<Credentials>;

    /// The live status of each of `ids` on `cluster` that has a workload there; an id
    /// without one is absent from the map.
    ///
    /// # Errors
    /// `ClusterNotFound`, `Unavailable` / `Timeout`, `Internal` as for `deploy`.
    async fn statuses(
        &self,
        cluster: &ClusterId,
        ids: &[FramedbId],
    ) -> Result<HashMap<FramedbId, StatusReport>>;

    /// Follows the status of every instance on `cluster`: a feed of the cluster's
    /// [`crate::live::StatusBook`], kept current by a watch where the deployer has one
    /// (its first call starts it). A deployer without a watch returns
    /// [`crate::live::no_feed`], and readers read [`Self::statuses`] instead.
    ///
    /// # Errors
    /// `ClusterNotFound` for an unknown cluster. Failures to reach the cluster are not
    /// errors here: the feed holds `None` until the watch is in step.
    async fn follow(&self, cluster: &ClusterId) -> Result<StatusFeed>;

    /// The instances FrameDB's objects on `cluster` describe: a record per workload that
    /// carries a stamp and whose Service holds its port, rebuilt from what the objects
    /// record (id, node, size, policy, stamp, creation time, metadata, port), with status
    /// `Provisioning`. Objects without a stamp or a Service are left out.
    ///
    /// # Errors
    /// `ClusterNotFound`, `Unavailable` / `Timeout`, `Internal` as for `deploy`.
    async fn inventory(&self, cluster: &ClusterId) -> Result<Vec<InstanceRecord>>;
}

/// Where a local config service remembers the creates that were undone or deleted (by
/// stamp), so that a deploy of one that arrives late (the global gave up on it, undid it,
/// and the request was still on its way) never lands after its undo. An entry is kept for
/// a day at least: far longer than any retry of the global service.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Fence: Send + Sync {
    /// Records that the create `stamp` of instance `id` is over.
    ///
    /// # Errors
    /// [`crate::Error::Unavailable`] / [`crate::Error::Timeout`] when the store cannot be
    /// reached.
    async fn bury(&self, id: &FramedbId, stamp: &Stamp) -> Result<()>;

    /// Whether the create `stamp` of instance `id` is over.
    ///
    /// # Errors
    /// As [`Self::bury`].
    async fn is_buried(&self, id: &FramedbId, stamp: &Stamp) -> Result<bool>;
}

/// Which one of several replicas on one store does a task that one at a time should do
/// (the global service's reconcile passes): a lease with an expiry, renewed by its holder
/// before each run. A holder that dies loses it when its term ends.
///
/// Holders compare their own clocks with the expiry: replicas whose clocks disagree by
/// more than a term may both run for a while, so what runs under a lease must stay safe
/// when run twice (a reconcile pass is).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Lease: Send + Sync {
    /// Takes the lease for `holder` until `term` from now, or extends it when `holder`
    /// has it already; returns whether `holder` has it. Another holder's lease that has
    /// not expired is left alone (`false`).
    ///
    /// # Errors
    /// [`crate::Error::Unavailable`] / [`crate::Error::Timeout`] when the store cannot be
    /// reached.
    async fn hold(&self, holder: &str, term: std::time::Duration) -> Result<bool>;

    /// Gives the lease up when `holder` has it (a replica that stops), so that another
    /// takes it at its next try rather than when the term ends.
    ///
    /// # Errors
    /// As [`Self::hold`].
    async fn release(&self, holder: &str) -> Result<()>;
}

/// Finds free node ports on a cluster, from what the cluster holds (read, or mirrored by
/// a watch; nothing of the allocator's own is tracked, so several services can allocate
/// on one cluster, and the cluster refuses a port that is taken after all).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait PortAllocator: Send + Sync {
    /// The ports of [`crate::PORT_RANGE`] that no Service on `cluster` uses and that are
    /// not in `skip` (ports that were taken when tried a moment ago), lowest first: one
    /// read gives every concurrent create of a service a port of its own.
    ///
    /// # Errors
    /// [`crate::Error::PortsExhausted`] when no such port is left;
    /// [`crate::Error::ClusterNotFound`], `Unavailable` / `Timeout` as for the deployer.
    async fn free_ports(&self, cluster: &ClusterId, skip: &[u16]) -> Result<Vec<u16>>;

    /// The lowest of [`Self::free_ports`].
    ///
    /// # Errors
    /// As [`Self::free_ports`].
    async fn lowest_free(&self, cluster: &ClusterId, skip: &[u16]) -> Result<u16> {
        let free = self.free_ports(cluster, skip).await?;
        free.first()
            .copied()
            .ok_or_else(|| crate::Error::PortsExhausted(cluster.clone()))
    }
}

/// Where the global service keeps the clusters that setup recorded (its cluster
/// directory), so that every replica and every restart knows the same fleet. Entries of
/// the operator's flags are not kept here: they come from the flags at every start.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait ClusterDirectoryStore: Send + Sync {
    /// Every recorded entry, in `cluster_id` order.
    ///
    /// # Errors
    /// [`crate::Error::Unavailable`] or [`crate::Error::Timeout`] when the store cannot be
    /// reached; [`crate::Error::Internal`] when an entry cannot be read.
    async fn load(&self) -> Result<Vec<DirectoryEntry>>;

    /// The entry of `cluster`, if one is recorded.
    ///
    /// # Errors
    /// As [`Self::load`].
    async fn get(&self, cluster: &ClusterId) -> Result<Option<DirectoryEntry>>;

    /// Records `entry` unless its cluster is recorded already, in one conditional write:
    /// of concurrent records of one cluster (from any replica), exactly one is
    /// [`Recorded::New`], and the others get the winner's entry back.
    ///
    /// # Errors
    /// As [`Self::load`].
    async fn record(&self, entry: &DirectoryEntry) -> Result<Recorded>;

    /// Records `entry` whether or not its cluster is recorded (the operator's explicit
    /// override), and returns the entry it replaced.
    ///
    /// # Errors
    /// As [`Self::load`].
    async fn replace(&self, entry: &DirectoryEntry) -> Result<Option<DirectoryEntry>>;

    /// Removes `cluster`'s entry (only if it holds `token`, when one is given: a setup
    /// that undoes its own record must not remove another's); returns whether one was
    /// removed. Removing an absent entry is not an error.
    ///
    /// # Errors
    /// As [`Self::load`].
    async fn remove<'a>(&self, cluster: &ClusterId, token: Option<&'a LocalToken>) -> Result<bool>;
}
