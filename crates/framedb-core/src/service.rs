//! The provisioning service: the one place that turns API operations into steps on the
//! ports, in an order (docs/architecture.md, "Create and delete sagas") so that no failure leaves an orphan behind.
//!
//! A create inserts the registry record first (the registry's unique id makes the create
//! exclusive), then claims a port by deploying on it, then records the port; every failure
//! after the insert undoes what was done. Reads take the records from the registry and the
//! status from the clusters, falling back to `Unknown` when a cluster cannot be reached.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{Chain, Error, Result};
use crate::filter::{Filter, Query};
use crate::live::StatusFeed;
use crate::ports::{
    ClusterDeployer, Deployed, DeploymentSpec, Fence, InstanceRegistry, PortAllocator,
};
use crate::types::{
    ClusterId, Credentials, FramedbId, Instance, InstanceChange, InstanceRecord, InstanceStatus,
    Metadata, NewInstance, NodeId, PORT_RANGE, Removal, Stamp, StatusReport, StorageSize,
    Timestamp,
};

/// Creates, deletes and reads persistent instances through the ports.
///
/// Each operation is a sequence of awaits on several systems: run `create` and `delete` to
/// completion (the HTTP layer spawns them, so that a client hanging up does not cut a
/// create in half). Cheap to clone.
#[derive(Clone)]
pub struct ProvisioningService {
    registry: Arc<dyn InstanceRegistry>,
    deployer: Arc<dyn ClusterDeployer>,
    ports: Arc<dyn PortAllocator>,
    /// Which tier this service is, for logs ("global" unless told otherwise).
    tier: &'static str,
    /// Ports this service's creates are deploying on right now.
    claims: Arc<PortClaims>,
    /// The creates undone or deleted here, which may not deploy again (a local service's).
    fence: Option<Arc<dyn Fence>>,
}

impl ProvisioningService {
    /// A service on these adapters.
    pub fn new(
        registry: Arc<dyn InstanceRegistry>,
        deployer: Arc<dyn ClusterDeployer>,
        ports: Arc<dyn PortAllocator>,
    ) -> Self {
        Self {
            registry,
            deployer,
            ports,
            tier: "global",
            claims: Arc::default(),
            fence: None,
        }
    }

    /// Fences creates by stamp: a delete of a stamp (an undo among them) records it in
    /// `fence` first, and a create of a recorded stamp is refused, also when it was
    /// already deploying, so that a deploy arriving after its undo never lands. A local
    /// config service runs with one; its global service, which makes the stamps, needs
    /// none.
    #[must_use]
    pub fn with_fence(mut self, fence: Arc<dyn Fence>) -> Self {
        self.fence = Some(fence);
        self
    }

    /// Refuses the create `stamp` of `id` when the fence has it.
    async fn check_fence(&self, id: &FramedbId, cluster: &ClusterId, stamp: &Stamp) -> Result<()> {
        // What was made before stamps cannot be told apart, so it is not fenced.
        let Some(fence) = self.fence.as_ref().filter(|_| !stamp.is_unstamped()) else {
            return Ok(());
        };
        if fence.is_buried(id, stamp).await? {
            return Err(Error::ObjectConflict {
                cluster: cluster.clone(),
                object: format!("instance {id}"),
                sentence: format!(
                    "the create of '{id}' stamped {stamp} was undone or deleted on cluster \
                     '{cluster}'; a late deploy of it is refused"
                ),
            });
        }
        Ok(())
    }

    /// Names the tier this service runs in, in its log lines (a local config service and
    /// the global service log the same events).
    #[must_use]
    pub fn with_tier(mut self, tier: &'static str) -> Self {
        self.tier = tier;
        self
    }

    /// Registers and deploys a new instance on the lowest free port; returns its record,
    /// port included, and its database credentials (which the registry never holds).
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] when the id is registered; [`Error::ClusterNotFound`];
    /// [`Error::PortsExhausted`] when the cluster has no free port; `Unavailable`,
    /// `Timeout` or `Internal` from the ports. On every error, nothing of this create is
    /// left in the registry or on the cluster (a compensation that itself fails is logged).
    pub async fn create(&self, request: NewInstance) -> Result<Created> {
        self.create_on(request, PortChoice::Lowest, Stamp::generate()?)
            .await
    }

    /// Registers and deploys a new instance on the port `choice` names, under `stamp`. A
    /// local config service uses [`PortChoice::Exactly`] with the port and the stamp its
    /// global service picked.
    ///
    /// Asking again for an instance that is registered under this same stamp, port and
    /// node (a retried request) completes its deployment instead of refusing it, so a
    /// retry never makes a second workload or takes a second port (and answers the same
    /// credentials).
    ///
    /// # Errors
    /// As [`Self::create`]; [`Error::ObjectConflict`] when an object of the instance's
    /// names exists on the cluster that this create did not make; with
    /// [`PortChoice::Exactly`], [`Error::Invalid`] for a port outside [`PORT_RANGE`], and
    /// [`Error::PortTaken`] when another Service holds it.
    pub async fn create_on(
        &self,
        request: NewInstance,
        choice: PortChoice,
        stamp: Stamp,
    ) -> Result<Created> {
        self.create_at(request, choice, stamp, Timestamp::now())
            .await
    }

    /// As [`Self::create_on`], for a create registered at `created_at` (a local config
    /// service records the time its global service registered the instance, so that
    /// both records and the objects say the same).
    ///
    /// # Errors
    /// As [`Self::create_on`].
    #[tracing::instrument(name = "create", skip_all, fields(
        tier = self.tier,
        framedb_id = %request.framedb_id,
        cluster_id = %request.cluster_id,
    ))]
    pub async fn create_at(
        &self,
        request: NewInstance,
        choice: PortChoice,
        stamp: Stamp,
        created_at: Timestamp,
    ) -> Result<Created> {
        if let PortChoice::Exactly(port) = choice
            && !PORT_RANGE.contains(&port)
        {
            return Err(Error::invalid(format!(
                "port must be one of the instance node ports {}-{} (got {port})",
                PORT_RANGE.start(),
                PORT_RANGE.end()
            )));
        }
        self.check_fence(&request.framedb_id, &request.cluster_id, &stamp)
            .await?;
        // The lowest free port is read before the instance is registered, so that a full
        // (or unknown) cluster is refused without a registry write and its undo; the read
        // is the first round of the allocation below.
        let first_read = match choice {
            PortChoice::Lowest => Some(self.read_free_ports(&request.cluster_id, &[]).await?),
            PortChoice::Exactly(_) => None,
        };
        let mut record = InstanceRecord::provisioning(request, stamp, created_at);
        if let Err(error) = self.registry.insert(&record).await {
            return match (error, choice) {
                // A repeated PUT of this create: its failure is its own (a cluster that
                // failed again is 503, not a conflict); only a record of another create,
                // or none any more, is the id's being taken.
                (Error::AlreadyExists(id), PortChoice::Exactly(port)) => self
                    .complete_retry(record, port)
                    .await
                    .map_err(|error| match error {
                        Error::InstanceNotFound(_) => Error::AlreadyExists(id),
                        error => error,
                    }),
                (error, _) => Err(error),
            };
        }
        tracing::debug!(framedb_id = %record.framedb_id, "registered; deploying");

        let deployed = match choice {
            PortChoice::Lowest => self.deploy_on_free_port(&record, first_read).await,
            PortChoice::Exactly(port) => self
                .deployer
                .deploy(&spec_of(&record, port))
                .await
                .map(|deployed| (port, deployed))
                .map_err(|error| DeployFailure {
                    // A taken port creates nothing; anything else may have created some.
                    deployed: !matches!(error, Error::PortTaken { .. }),
                    error,
                }),
        };
        // A create on a port of its caller's choosing may be repeated under its stamp
        // (`complete_retry`), and its caller undoes it by stamp when it gives up; any other
        // is never repeated, and its undo records itself (see `undo_create`).
        let undo = if matches!(choice, PortChoice::Exactly(_)) {
            Undo::KeepForRetry
        } else {
            Undo::Mark
        };
        let (port, deployed) = match deployed {
            Ok(deployed) => deployed,
            Err(failure) => {
                let undo = if failure.deployed {
                    undo
                } else {
                    Undo::NothingMade
                };
                self.undo_create(&record, undo).await;
                return Err(failure.error);
            }
        };
        // A delete of this stamp may have come while the deploy ran: it found nothing yet
        // to remove, so this create removes what it made.
        if let Err(error) = self
            .check_fence(&record.framedb_id, &record.cluster_id, &record.stamp)
            .await
        {
            self.undo_create(&record, undo).await;
            return Err(error);
        }
        if let Err(error) = self
            .registry
            .update_deployment(
                &record.framedb_id,
                &record.stamp,
                Some(port),
                InstanceStatus::Provisioning,
            )
            .await
        {
            self.undo_create(&record, undo).await;
            return Err(error);
        }
        record.port = Some(port);
        tracing::info!(
            tier = self.tier,
            framedb_id = %record.framedb_id,
            cluster_id = %record.cluster_id,
            node_id = %record.node_id,
            port,
            reattached = deployed.reattached,
            "instance created"
        );
        Ok(Created {
            record,
            credentials: deployed.credentials,
            reattached: deployed.reattached,
        })
    }

    /// A repeated [`PortChoice::Exactly`] create of the same instance: deploy again
    /// (idempotent) and record the port. Anything else registered under the id is refused.
    async fn complete_retry(&self, request: InstanceRecord, port: u16) -> Result<Created> {
        let mut existing = self.registry.get(&request.framedb_id).await?;
        let same = existing.stamp == request.stamp
            && existing.cluster_id == request.cluster_id
            && existing.node_id == request.node_id
            && existing.storage_size == request.storage_size
            && existing.port.is_none_or(|p| p == port)
            && existing.status != InstanceStatus::Deleting;
        if !same {
            return Err(Error::AlreadyExists(request.framedb_id));
        }
        let deployed = self.deployer.deploy(&spec_of(&existing, port)).await?;
        if existing.port.is_none() {
            self.registry
                .update_deployment(
                    &existing.framedb_id,
                    &existing.stamp,
                    Some(port),
                    InstanceStatus::Provisioning,
                )
                .await?;
            existing.port = Some(port);
        }
        Ok(Created {
            record: existing,
            credentials: deployed.credentials,
            reattached: deployed.reattached,
        })
    }

    /// Claims the lowest free port by deploying on it. Creating the Service is the
    /// reservation: when another Service got the port first, read again and move on.
    /// Ports that this service's other creates are deploying on are passed over without
    /// a new read, so concurrent creates on one cluster each read once.
    async fn deploy_on_free_port(
        &self,
        record: &InstanceRecord,
        mut first_read: Option<FreePorts>,
    ) -> Result<(u16, Deployed), DeployFailure> {
        let cluster = &record.cluster_id;
        let mut taken = Vec::new();
        let mut deployed = false;
        let fail = |error, deployed| DeployFailure { error, deployed };
        // Each round either succeeds, ends, adds a port to `taken` (which the allocator
        // skips), or reads again after this service's other creates took every port the
        // read offered. When every free port is held by creates in flight, the range is
        // exhausted.
        for _ in 0..=PORT_RANGE.len() {
            let FreePorts { free, read_at } = match first_read.take() {
                Some(read) => read,
                None => self
                    .read_free_ports(cluster, &taken)
                    .await
                    .map_err(|error| fail(error, deployed))?,
            };
            // The lowest port that none of this service's creates is deploying on.
            let mut stale = false;
            let picked =
                free.into_iter()
                    .find_map(|port| match self.claims.claim(cluster, port, read_at) {
                        Ok(claim) => Some((port, claim)),
                        Err(refused) => {
                            stale |= refused == Refused::Stale;
                            None
                        }
                    });
            let Some((port, claim)) = picked else {
                if stale {
                    continue;
                }
                break;
            };
            deployed = true;
            match self.deployer.deploy(&spec_of(record, port)).await {
                Ok(deployed) => {
                    claim.settle();
                    return Ok((port, deployed));
                }
                Err(Error::PortTaken { .. }) => {
                    tracing::debug!(framedb_id = %record.framedb_id, port, "port taken; retrying");
                    taken.push(port);
                }
                Err(error) => return Err(fail(error, deployed)),
            }
        }
        Err(fail(Error::PortsExhausted(cluster.clone()), deployed))
    }

    /// The free ports of `cluster`, but `taken` and those this service's creates are
    /// deploying on. Ports claimed before the read are skipped by the read itself: their
    /// Services may appear while it runs, and a port must not look free because its
    /// deploy finished in between.
    async fn read_free_ports(&self, cluster: &ClusterId, taken: &[u16]) -> Result<FreePorts> {
        let (held, read_at) = self.claims.before_read(cluster);
        let mut skip = taken.to_vec();
        skip.extend(held);
        let free = self.ports.free_ports(cluster, &skip).await?;
        if free.iter().any(|port| skip.contains(port)) {
            return Err(Error::Internal(
                "the port allocator offered a taken port".into(),
            ));
        }
        Ok(FreePorts { free, read_at })
    }

    /// Best-effort undo of a failed create: the cluster objects it made (its stamp's
    /// only: a volume it took back is retained again), then the record.
    ///
    /// With [`Undo::Mark`], the record is first marked `Deleting` with the removal `Undo`
    /// (unless a delete of it has begun already, whose removal stays), so that an undo
    /// that cannot finish leaves a delete under way, which a reconcile pass finishes as
    /// an undo. Left `Provisioning` without a port, it would look like a create that died
    /// before recording its port, which a pass completes when its objects run, from a
    /// read of the cluster that may precede this undo's removal of them (or, in two
    /// tiers, the cluster's config service's undo of its own half of the create): the
    /// registry would then keep, as live and with its port, an instance that does not
    /// exist.
    async fn undo_create(&self, record: &InstanceRecord, undo: Undo) {
        let id = &record.framedb_id;
        if undo == Undo::Mark {
            let marked = match self.registry.get(id).await {
                Ok(current)
                    if current.stamp == record.stamp
                        && current.status != InstanceStatus::Deleting =>
                {
                    self.registry
                        .mark_deleting(id, &record.stamp, Removal::Undo)
                        .await
                }
                Ok(_) => Ok(()),
                Err(error) => Err(error),
            };
            match marked {
                Ok(()) | Err(Error::InstanceNotFound(_)) => {}
                Err(error) => {
                    tracing::warn!(framedb_id = %id, error = %Chain(&error),
                        "create failed and its record could not be marked for its undo; \
                         undoing it anyway");
                }
            }
        }
        if undo != Undo::NothingMade {
            let undone = self
                .deployer
                .undeploy(&record.cluster_id, id, &record.stamp, Removal::Undo)
                .await;
            match undone {
                Ok(_) | Err(Error::ClusterNotFound(_)) => {}
                Err(error) => {
                    // The record stays so that the instance can still be found and deleted.
                    tracing::error!(framedb_id = %id, cluster_id = %record.cluster_id, error = %Chain(&error),
                        "create failed and its deployment could not be undone; the record is \
                         kept so that DELETE or a reconcile pass can finish the clean-up");
                    return;
                }
            }
        }
        if let Err(error) = self.registry.remove_stamped(id, &record.stamp).await {
            tracing::error!(framedb_id = %id, error = %Chain(&error),
                "create failed and its registry record could not be removed");
        }
    }

    /// Deletes an instance from its cluster (its volume as its deletion policy says,
    /// unless `purge`), then from the registry. Running it again after a failure finishes
    /// the job.
    ///
    /// # Errors
    /// [`Error::InstanceNotFound`] when the id is not registered; the deployer's and the
    /// registry's errors otherwise (the record then stays, marked `Deleting`).
    #[tracing::instrument(name = "delete", skip_all, fields(tier = self.tier, framedb_id = %id))]
    pub async fn delete(&self, id: &FramedbId, purge: bool) -> Result<()> {
        let record = self.registry.get(id).await?;
        let removal = Removal::of(record.deletion_policy, purge);
        self.delete_record(&record, removal).await
    }

    /// Deletes what the create stamped `stamp` made of instance `id`, as `removal` says:
    /// its objects on the cluster whether or not this service still has its record, and
    /// its record if this service has it under that stamp (a record of another stamp is
    /// another create's, and stays). A local config service deletes this way for its
    /// global service.
    ///
    /// # Errors
    /// [`Error::InstanceNotFound`] when there is neither a record of that stamp nor an
    /// object; the deployer's and the registry's errors otherwise.
    #[tracing::instrument(name = "delete", skip_all, fields(
        tier = self.tier,
        framedb_id = %id,
        cluster_id = %cluster,
    ))]
    pub async fn delete_stamped(
        &self,
        id: &FramedbId,
        cluster: &ClusterId,
        stamp: &Stamp,
        removal: Removal,
    ) -> Result<()> {
        // First, so that a deploy of this stamp that is still on its way never lands.
        if let Some(fence) = self.fence.as_ref().filter(|_| !stamp.is_unstamped()) {
            fence.bury(id, stamp).await?;
        }
        match self.registry.get(id).await {
            Ok(record) if record.stamp == *stamp => self.delete_record(&record, removal).await,
            Ok(_) | Err(Error::InstanceNotFound(_)) => {
                if self.deployer.undeploy(cluster, id, stamp, removal).await? {
                    tracing::info!(tier = self.tier, framedb_id = %id, cluster_id = %cluster,
                        %stamp, "objects of an unregistered instance deleted");
                    Ok(())
                } else {
                    Err(Error::InstanceNotFound(id.clone()))
                }
            }
            Err(error) => Err(error),
        }
    }

    async fn delete_record(&self, record: &InstanceRecord, removal: Removal) -> Result<()> {
        let id = &record.framedb_id;
        // The removal is recorded with the status, so that a delete finished later (by a
        // reconcile pass) removes what this one was asked to: a purge or an undo must not
        // become the policy's retention.
        // Both writes name the record's stamp: a delete that acts on a record read a while
        // ago (a reconcile pass, a delete racing another) must not mark or remove the
        // record of a create of the same id made since. The mark is written even when the
        // record read says `Deleting` already: it checks that the record is still there.
        self.registry
            .mark_deleting(id, &record.stamp, removal)
            .await?;
        self.deployer
            .undeploy(&record.cluster_id, id, &record.stamp, removal)
            .await?;
        self.registry.remove_stamped(id, &record.stamp).await?;
        tracing::info!(tier = self.tier, framedb_id = %id, cluster_id = %record.cluster_id,
            removal = removal.as_str(), "instance deleted");
        Ok(())
    }

    /// Changes an instance: `change.metadata` is merged into its metadata as an RFC 7386
    /// merge patch (the result is checked as a create's metadata is), and its volume
    /// grows to `change.storage_size`. The cluster's objects change first, then the
    /// record (docs/architecture.md, "Updates"): the record never says what the cluster
    /// does not hold, and a retry of the same change, computed again from the record,
    /// finishes it. Returns the instance as [`Self::get`] shows it.
    ///
    /// # Errors
    /// [`Error::InstanceNotFound`]; [`Error::Invalid`] when the merged metadata is not
    /// valid; [`Error::ShrinkRefused`] for a smaller size; [`Error::InstanceBusy`] while
    /// the instance is being deleted or created; [`Error::NotExpandable`] when its volume
    /// cannot grow; the deployer's and the registry's errors otherwise. Nothing is changed
    /// on a refusal.
    pub async fn update(&self, id: &FramedbId, change: &InstanceChange) -> Result<Instance> {
        let record = self.registry.get(id).await?;
        let metadata = match &change.metadata {
            Some(patch) => record.metadata.merged(patch)?,
            None => record.metadata.clone(),
        };
        let size = match &change.storage_size {
            Some(asked) if asked.bytes() < record.storage_size.bytes() => {
                return Err(Error::ShrinkRefused {
                    id: id.clone(),
                    current: record.storage_size.clone(),
                    asked: asked.clone(),
                });
            }
            Some(asked) => asked.clone(),
            None => record.storage_size.clone(),
        };
        self.change(&record, metadata, size).await?;
        self.get(id).await
    }

    /// Brings the instance that the create `stamp` of `id` made to `metadata` and a volume
    /// of at least `storage_size`, on its cluster and then in this service's record, and
    /// returns the size its volume now has. A local config service changes instances
    /// this way for its global service, which computed the change from its own record.
    /// A record this service lost is taken from the cluster's objects (a reconcile pass
    /// records it again).
    ///
    /// # Errors
    /// [`Error::InstanceNotFound`] when neither the record nor the cluster has that
    /// create; otherwise as [`Self::update`], but a size below the volume's is no error:
    /// the volume stays as large as it is.
    pub async fn amend_stamped(
        &self,
        id: &FramedbId,
        cluster: &ClusterId,
        stamp: &Stamp,
        metadata: Metadata,
        storage_size: StorageSize,
    ) -> Result<StorageSize> {
        match self.registry.get(id).await {
            Ok(record) if record.stamp == *stamp => {
                self.change(&record, metadata, storage_size).await
            }
            Ok(_) | Err(Error::InstanceNotFound(_)) => {
                let running = self.deployer.inventory(cluster).await?;
                let record = running
                    .into_iter()
                    .find(|found| found.framedb_id == *id && found.stamp == *stamp)
                    .ok_or_else(|| Error::InstanceNotFound(id.clone()))?;
                let port = record
                    .port
                    .ok_or_else(|| Error::InstanceNotFound(id.clone()))?;
                let changed = changed(&record, metadata, storage_size);
                self.deployer.amend(&spec_of(&changed, port)).await
            }
            Err(error) => Err(error),
        }
    }

    /// The cluster's objects, then the record (see [`Self::update`]); nothing when
    /// `record` says so already.
    async fn change(
        &self,
        record: &InstanceRecord,
        metadata: Metadata,
        storage_size: StorageSize,
    ) -> Result<StorageSize> {
        let id = &record.framedb_id;
        let busy = |doing: &str| Error::InstanceBusy {
            id: id.clone(),
            sentence: format!("instance '{id}' {doing}; it cannot be changed now"),
        };
        if record.status == InstanceStatus::Deleting {
            return Err(busy("is being deleted"));
        }
        let Some(port) = record.port else {
            return Err(busy(
                "is still being created (try again once it has its port)",
            ));
        };
        // The record's spelling of an equal size stays.
        let storage_size = if storage_size.bytes() == record.storage_size.bytes() {
            record.storage_size.clone()
        } else {
            storage_size
        };
        if metadata == record.metadata && storage_size == record.storage_size {
            return Ok(storage_size);
        }
        let target = changed(record, metadata, storage_size);
        let size = self.deployer.amend(&spec_of(&target, port)).await?;
        self.registry
            .amend(id, &record.stamp, &target.metadata, &size)
            .await?;
        tracing::info!(tier = self.tier, framedb_id = %id, cluster_id = %record.cluster_id,
            storage_size = %size, "instance changed");
        Ok(size)
    }

    /// Settles what a crash, a restart or a timeout left half done, and brings the
    /// registry in step with what runs on `clusters` (and on the clusters of the records
    /// it settles):
    /// - an instance whose objects run on a cluster but that the registry does not hold
    ///   (a registry restored from a backup, a service restarted on memory) is recorded
    ///   again, as its objects record it ([`ClusterDeployer::inventory`]);
    /// - a record still `Provisioning` without a port and older than `deadline` (its
    ///   create died between registering and recording its port) is completed when its
    ///   stamp's workload and Service run, and undone like a failed create otherwise;
    /// - a record left `Deleting` is deleted again, with the removal its delete recorded
    ///   (a purge, a retention, or a failed create's undo; records from before removals
    ///   were recorded: as their deletion policy says).
    /// - a live record whose cluster holds a larger volume for it (an update that died
    ///   between its cluster and its record) takes its size.
    /// - a live instance of `clusters` whose Service or workload was deleted from its
    ///   cluster (drift) is deployed again with its stamp, on its recorded port.
    ///
    /// Each step acts on its own stamp and is idempotent: passes may run beside creates
    /// and deletes, and on several replicas.
    ///
    /// # Errors
    /// The registry's, when the records cannot be read. A cluster that cannot be read, or
    /// a record that cannot be settled now, is counted in [`Repairs::failed`] and tried
    /// again at the next pass.
    pub async fn reconcile(
        &self,
        deadline: std::time::Duration,
        clusters: &[ClusterId],
    ) -> Result<Repairs> {
        // Only what may need settling: a live instance's record has its port. Two queries,
        // not one `$or`: each is an equality a registry's index answers (MongoDB's
        // `status_port`), where an `$or` may cost a scan of every record of the fleet.
        let mut records = Vec::new();
        for unsettled in [
            serde_json::json!({"status": "Deleting"}),
            serde_json::json!({"status": "Provisioning", "port": null}),
        ] {
            let mut query = Query::with_filter(Filter::parse(&unsettled)?);
            query.limit = crate::filter::MAX_LIMIT;
            records.extend(self.registry.find(&query).await?);
        }
        let mut repairs = Repairs::default();

        // The records of the clusters read, taken before what runs there: a create that
        // ends in between is then not taken for an instance that lost its objects.
        let mut recorded: HashMap<FramedbId, InstanceRecord> = HashMap::new();
        for (cluster, read) in each_cluster(clusters, RECORD_READS_AT_ONCE, |cluster| {
            self.cluster_records(cluster)
        })
        .await
        {
            match read {
                Ok(records) => {
                    recorded.extend(records.into_iter().map(|r| (r.framedb_id.clone(), r)));
                }
                Err(error) => {
                    repairs.failed += 1;
                    tracing::warn!(tier = self.tier, cluster_id = %cluster, error = %Chain(&error),
                        "reconcile: the cluster's records could not be read");
                }
            }
        }

        // What runs on each cluster concerned, by id.
        let mut concerned: BTreeSet<ClusterId> = clusters.iter().cloned().collect();
        concerned.extend(records.iter().map(|record| record.cluster_id.clone()));
        let mut running: HashMap<FramedbId, InstanceRecord> = HashMap::new();
        let mut unread: BTreeSet<ClusterId> = BTreeSet::new();
        for (cluster, read) in each_cluster(&concerned, INVENTORIES_AT_ONCE, |cluster| {
            self.deployer.inventory(cluster)
        })
        .await
        {
            match read {
                Ok(found) => {
                    running.extend(found.into_iter().map(|r| (r.framedb_id.clone(), r)));
                }
                Err(error) => {
                    repairs.failed += 1;
                    unread.insert(cluster.clone());
                    tracing::warn!(tier = self.tier, cluster_id = %cluster, error = %Chain(&error),
                        "reconcile: the cluster's instances could not be read");
                }
            }
        }

        for record in records {
            let outcome = self.settle(&record, deadline, &running, &unread).await;
            match outcome {
                Ok(Some(Settled::Deleted)) => repairs.deleted += 1,
                Ok(Some(Settled::Completed)) => repairs.completed += 1,
                Ok(Some(Settled::Undone)) => repairs.settled += 1,
                Ok(None) => {}
                Err(error) => {
                    repairs.failed += 1;
                    tracing::warn!(tier = self.tier, framedb_id = %record.framedb_id,
                        error = %Chain(&error), "reconcile: a record could not be settled yet");
                }
            }
        }

        for record in recorded
            .values()
            .filter(|r| is_live(r) && !unread.contains(&r.cluster_id))
        {
            self.catch_up(record, &running, &mut repairs).await;
            self.repair_drift(record, &running, &mut repairs).await;
        }

        let mut missing = Vec::new();
        for (id, found) in running {
            if !clusters.contains(&found.cluster_id) {
                continue;
            }
            // What runs is, nearly always, what a cluster's records said before it was
            // read; only the rest costs a read of its own (a record made since, or one of
            // another cluster under the same id), so that a pass over a fleet of thousands
            // of instances makes one registry query per cluster, not one read per
            // instance.
            let record = match recorded.get(&id) {
                Some(record) => Ok(record.clone()),
                None => self.registry.get(&id).await,
            };
            match record {
                Err(Error::InstanceNotFound(_)) => missing.push(found),
                Ok(record) if record.stamp != found.stamp => {
                    tracing::warn!(tier = self.tier, framedb_id = %id,
                        recorded = %record.stamp, running = %found.stamp,
                        "reconcile: the registry records another create of an instance that \
                         runs; nothing is changed");
                }
                Ok(_) => {}
                Err(error) => {
                    repairs.failed += 1;
                    tracing::warn!(tier = self.tier, framedb_id = %id, error = %Chain(&error),
                        "reconcile: a record could not be read");
                }
            }
        }
        let (rebuilt, failed) = self.rebuild(missing).await;
        repairs.rebuilt += rebuilt;
        repairs.failed += failed;
        Ok(repairs)
    }

    /// Every record of `cluster`.
    async fn cluster_records(&self, cluster: &ClusterId) -> Result<Vec<InstanceRecord>> {
        // A cluster holds at most one instance per port, far below the default limit.
        self.registry
            .find(&Query::with_filter(Filter::cluster(cluster)))
            .await
    }

    /// Records the larger volume size that `record`'s cluster holds for it: an update
    /// writes the cluster first, so a cluster ahead of its record is an update that died
    /// before recording its change (docs/architecture.md, "Updates"). Sizes only grow, so
    /// the larger one is the later; metadata has no such order (and a workload made before
    /// it was recorded there reads as `{}`), so a half-done metadata change waits for the
    /// update to be repeated. The record is read again first, and written only if it is
    /// still as the pass read it (an update or a delete since wins).
    async fn catch_up(
        &self,
        record: &InstanceRecord,
        running: &HashMap<FramedbId, InstanceRecord>,
        repairs: &mut Repairs,
    ) {
        let id = &record.framedb_id;
        let Some(found) = running.get(id).filter(|found| {
            found.stamp == record.stamp && found.storage_size.bytes() > record.storage_size.bytes()
        }) else {
            return;
        };
        let outcome = async {
            let current = self.registry.get(id).await?;
            let unchanged = current.stamp == record.stamp
                && current.status != InstanceStatus::Deleting
                && current.metadata == record.metadata
                && current.storage_size == record.storage_size;
            if !unchanged {
                return Ok(false);
            }
            self.registry
                .amend(id, &record.stamp, &record.metadata, &found.storage_size)
                .await
                .map(|()| true)
        };
        match outcome.await {
            Ok(true) => {
                repairs.caught_up += 1;
                tracing::info!(tier = self.tier, framedb_id = %id,
                    cluster_id = %record.cluster_id, storage_size = %found.storage_size,
                    "reconcile: the record took the larger volume its cluster holds (an \
                     update that died before recording it)");
            }
            Ok(false) | Err(Error::InstanceNotFound(_)) => {}
            Err(error) => {
                repairs.failed += 1;
                tracing::warn!(tier = self.tier, framedb_id = %id, error = %Chain(&error),
                    "reconcile: a record could not take the larger volume its cluster holds");
            }
        }
    }

    /// Re-deploys a live instance (see [`is_live`]) that does not run on its
    /// cluster as its record says: a Service or a workload of FrameDB's was deleted from
    /// under it. It comes back with its own stamp on its recorded port; what of it still
    /// exists is left as it is (a volume keeps its data).
    async fn repair_drift(
        &self,
        record: &InstanceRecord,
        running: &HashMap<FramedbId, InstanceRecord>,
        repairs: &mut Repairs,
    ) {
        let Some(port) = record.port else { return };
        let id = &record.framedb_id;
        // Another create's objects under this id are not this record's to touch.
        if running
            .get(id)
            .is_some_and(|found| found.stamp != record.stamp || found.port == Some(port))
        {
            return;
        }
        match self.restore(record, port).await {
            Ok(true) => {
                repairs.restored += 1;
                tracing::info!(tier = self.tier, framedb_id = %id,
                    cluster_id = %record.cluster_id, port,
                    "reconcile: objects of a live instance were missing; re-created");
            }
            Ok(false) => {}
            Err(error) => {
                repairs.failed += 1;
                tracing::warn!(tier = self.tier, framedb_id = %id,
                    cluster_id = %record.cluster_id, port, error = %Chain(&error),
                    "reconcile: a live instance's missing objects could not be re-created");
            }
        }
    }

    /// Deploys `record` again on `port`, unless a delete of it began since the pass read
    /// it; returns whether it did. A delete that begins while the deploy runs finds
    /// objects that may not all exist yet, so what this deploy made is removed again
    /// when the record has gone `Deleting` or away by the time it ends.
    async fn restore(&self, record: &InstanceRecord, port: u16) -> Result<bool> {
        let id = &record.framedb_id;
        // The record as it is now, if it is still this live instance's.
        let current = || async {
            match self.registry.get(id).await {
                Ok(current) if current.stamp == record.stamp => Ok(Some(current)),
                Ok(_) | Err(Error::InstanceNotFound(_)) => Ok(None),
                Err(error) => Err(error),
            }
        };
        let live = |current: &Option<InstanceRecord>| {
            current.as_ref().is_some_and(|current| {
                current.port == Some(port) && current.status != InstanceStatus::Deleting
            })
        };
        if !live(&current().await?) {
            return Ok(false);
        }
        self.check_fence(id, &record.cluster_id, &record.stamp)
            .await?;
        self.deployer.deploy(&spec_of(record, port)).await?;
        let fenced = self
            .check_fence(id, &record.cluster_id, &record.stamp)
            .await
            .is_err();
        let after = current().await?;
        if fenced || !live(&after) {
            // A delete overtook this repair: what it made goes as that delete asked when
            // its record still says so. Otherwise the volume stays (retained): this
            // repair did not make it, and a record gone for another reason (a registry
            // that lost it) must not cost the instance its data.
            let removal = after
                .and_then(|deleting| deleting.removal)
                .unwrap_or(Removal::Retain);
            self.deployer
                .undeploy(&record.cluster_id, id, &record.stamp, removal)
                .await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Records again the instances of `missing` (found running without a record), and
    /// returns how many it recorded and how many it could not check or record.
    ///
    /// `missing` comes from an inventory read at the start of the pass, and a delete (or a
    /// failed create's undo) that finished since removed the objects, then the record: its
    /// instance must not come back as a record without objects, which would also refuse
    /// a create of its id. So the cluster is read again just before the inserts (only what
    /// still runs is recorded), and once more after them, to withdraw a record whose
    /// objects a delete removed in between: such a delete removed them before the insert
    /// could succeed, so that read no longer sees them; a delete that begins after the
    /// insert finds the record and removes it as usual.
    async fn rebuild(&self, missing: Vec<InstanceRecord>) -> (usize, usize) {
        let mut by_cluster: BTreeMap<ClusterId, Vec<InstanceRecord>> = BTreeMap::new();
        for record in missing {
            by_cluster
                .entry(record.cluster_id.clone())
                .or_default()
                .push(record);
        }
        let (mut kept, mut failed) = (0, 0);
        for (cluster, records) in by_cluster {
            let runs = |found: &[InstanceRecord], record: &InstanceRecord| {
                found
                    .iter()
                    .any(|f| f.framedb_id == record.framedb_id && f.stamp == record.stamp)
            };
            let unread = |error: &Error| {
                tracing::warn!(tier = self.tier, cluster_id = %cluster, error = %Chain(error),
                    "reconcile: the cluster's instances could not be read again to record them");
            };
            let before = match self.deployer.inventory(&cluster).await {
                Ok(found) => found,
                Err(error) => {
                    unread(&error);
                    failed += 1;
                    continue;
                }
            };
            let mut inserted = Vec::new();
            for record in records.into_iter().filter(|r| runs(&before, r)) {
                match self.registry.insert(&record).await {
                    Ok(()) => inserted.push(record),
                    // Recorded meanwhile (a create of it, or another replica's pass).
                    Err(Error::AlreadyExists(_)) => {}
                    Err(error) => {
                        failed += 1;
                        tracing::warn!(tier = self.tier, framedb_id = %record.framedb_id,
                            error = %Chain(&error),
                            "reconcile: a running instance's record could not be rebuilt");
                    }
                }
            }
            if inserted.is_empty() {
                continue;
            }
            // Unread, nothing can be confirmed: the records are withdrawn, and a later pass
            // records again what still runs.
            let after = match self.deployer.inventory(&cluster).await {
                Ok(found) => found,
                Err(error) => {
                    unread(&error);
                    failed += 1;
                    Vec::new()
                }
            };
            for record in inserted {
                let id = &record.framedb_id;
                if runs(&after, &record) {
                    kept += 1;
                    tracing::info!(tier = self.tier, framedb_id = %id, cluster_id = %cluster,
                        port = ?record.port,
                        "reconcile: a running instance's record rebuilt from its cluster");
                    continue;
                }
                // The rebuilt record, unless a delete of it has begun meanwhile (it finishes).
                let withdrawn = match self.registry.get(id).await {
                    Ok(current)
                        if current.stamp == record.stamp
                            && current.status != InstanceStatus::Deleting =>
                    {
                        self.registry
                            .remove_stamped(id, &record.stamp)
                            .await
                            .map(drop)
                    }
                    Ok(_) | Err(Error::InstanceNotFound(_)) => Ok(()),
                    Err(error) => Err(error),
                };
                if let Err(error) = withdrawn {
                    failed += 1;
                    tracing::error!(tier = self.tier, framedb_id = %id, error = %Chain(&error),
                        "reconcile: a record rebuilt for an instance that no longer runs \
                         could not be withdrawn");
                }
            }
        }
        (kept, failed)
    }

    /// Settles one record a reconcile pass found unsettled, if it is due.
    async fn settle(
        &self,
        record: &InstanceRecord,
        deadline: std::time::Duration,
        running: &HashMap<FramedbId, InstanceRecord>,
        unread: &BTreeSet<ClusterId>,
    ) -> Result<Option<Settled>> {
        if record.status == InstanceStatus::Deleting {
            // As the delete asked; a record from before removals were recorded, as its
            // policy says.
            let removal = record
                .removal
                .unwrap_or_else(|| Removal::of(record.deletion_policy, false));
            // The record was read at the start of the pass: a delete that finished since
            // (and perhaps a new create of the id) leaves nothing of it to settle.
            return match self.delete_record(record, removal).await {
                Ok(()) => Ok(Some(Settled::Deleted)),
                Err(Error::InstanceNotFound(_)) => Ok(None),
                Err(error) => Err(error),
            };
        }
        let age =
            chrono::Utc::now().signed_duration_since(chrono::DateTime::from(record.created_at));
        if age.to_std().is_ok_and(|age| age <= deadline) || unread.contains(&record.cluster_id) {
            return Ok(None);
        }
        let id = &record.framedb_id;
        // The record was read at the start of the pass: a delete of it may have begun
        // since (its `Deleting` and its removal must stay), or finished.
        match self.registry.get(id).await {
            Ok(current)
                if current.stamp == record.stamp
                    && current.status == InstanceStatus::Provisioning
                    && current.port.is_none() => {}
            Ok(_) | Err(Error::InstanceNotFound(_)) => return Ok(None),
            Err(error) => return Err(error),
        }
        if let Some(found) = running.get(id).filter(|found| found.stamp == record.stamp) {
            // Refused when a delete or the create's own undo has marked the record since
            // the check above: that one finishes it.
            self.registry
                .update_deployment(id, &record.stamp, found.port, InstanceStatus::Provisioning)
                .await?;
            tracing::info!(tier = self.tier, framedb_id = %id, port = ?found.port,
                "reconcile: a create that died before recording its port completed");
            return Ok(Some(Settled::Completed));
        }
        // A local config service's global may still repeat the create, or undo it by stamp.
        let undo = if self.fence.is_some() {
            Undo::KeepForRetry
        } else {
            Undo::Mark
        };
        self.undo_create(record, undo).await;
        match self.registry.get(id).await {
            Ok(current) if current.stamp == record.stamp => Err(Error::Internal(
                "the undo of a dead create left its record".into(),
            )),
            // Gone, or a new create's record of the id.
            Ok(_) | Err(Error::InstanceNotFound(_)) => {
                tracing::info!(tier = self.tier, framedb_id = %id,
                    "reconcile: a create that died before deploying was undone");
                Ok(Some(Settled::Undone))
            }
            Err(error) => Err(error),
        }
    }

    /// The database credentials of a registered instance, read from its cluster.
    ///
    /// # Errors
    /// [`Error::InstanceNotFound`] when the id is not registered, or its cluster holds no
    /// credentials for it; the registry's and the deployer's errors otherwise.
    pub async fn credentials(&self, id: &FramedbId) -> Result<Credentials> {
        let record = self.registry.get(id).await?;
        self.deployer.credentials(&record.cluster_id, id).await
    }

    /// Whether this service can take requests now: its registry answers
    /// ([`InstanceRegistry::ping`]). Clusters are not asked: one cluster that is down
    /// leaves the service serving the others.
    ///
    /// # Errors
    /// The registry's, as [`InstanceRegistry::ping`] gives them.
    pub async fn ready(&self) -> Result<()> {
        self.registry.ping().await
    }

    /// One instance with its live status.
    ///
    /// # Errors
    /// [`Error::InstanceNotFound`]; the registry's errors. A cluster that cannot be
    /// reached is not an error: the status is then `Unknown`.
    pub async fn get(&self, id: &FramedbId) -> Result<Instance> {
        let record = self.registry.get(id).await?;
        let mut instances = self.with_live_status(vec![record]).await?;
        Ok(instances.remove(0))
    }

    /// Follows the live status of every instance on `cluster` (see
    /// [`ClusterDeployer::follow`]).
    ///
    /// # Errors
    /// [`Error::ClusterNotFound`] when the deployer does not know the cluster.
    pub async fn follow_statuses(&self, cluster: &ClusterId) -> Result<StatusFeed> {
        self.deployer.follow(cluster).await
    }

    /// The instances of one cluster.
    ///
    /// # Errors
    /// [`Error::ClusterNotFound`] when the cluster is unknown and holds no instance; the
    /// registry's errors.
    pub async fn list_cluster(&self, cluster: &ClusterId) -> Result<Vec<Instance>> {
        self.list_known_cluster(cluster, Filter::cluster(cluster))
            .await
    }

    /// The instances on one node of one cluster.
    ///
    /// # Errors
    /// As [`Self::list_cluster`].
    pub async fn list_node(&self, cluster: &ClusterId, node: &NodeId) -> Result<Vec<Instance>> {
        self.list_known_cluster(cluster, Filter::cluster_node(cluster, node))
            .await
    }

    async fn list_known_cluster(
        &self,
        cluster: &ClusterId,
        filter: Filter,
    ) -> Result<Vec<Instance>> {
        // A cluster holds at most one instance per port, far below the default limit.
        let records = self.registry.find(&Query::with_filter(filter)).await?;
        if records.is_empty() {
            // Tell an unknown cluster from an empty one.
            match self.deployer.statuses(cluster, &[]).await {
                Err(error @ Error::ClusterNotFound(_)) => return Err(error),
                Ok(_) | Err(_) => return Ok(Vec::new()),
            }
        }
        self.with_live_status(records).await
    }

    /// Refuses when `cluster` has registered instances: its config service must stay while
    /// they run.
    ///
    /// # Errors
    /// [`Error::ClusterInUse`] with their number; the registry's errors.
    pub async fn check_unused(&self, cluster: &ClusterId) -> Result<()> {
        // A cluster holds at most one instance per port, far below the default limit.
        let records = self
            .registry
            .find(&Query::with_filter(Filter::cluster(cluster)))
            .await?;
        if records.is_empty() {
            Ok(())
        } else {
            Err(Error::ClusterInUse {
                cluster: cluster.clone(),
                instances: records.len(),
            })
        }
    }

    /// The instances matching a query, with their live status.
    ///
    /// # Errors
    /// The registry's errors.
    pub async fn query(&self, query: &Query) -> Result<Vec<Instance>> {
        let records = self.registry.find(query).await?;
        self.with_live_status(records).await
    }

    /// Overlays each record with its cluster's live status: one status read per cluster,
    /// all clusters at once, so that a slow or unreachable cluster costs its own timeout
    /// once, not one after another.
    async fn with_live_status(&self, records: Vec<InstanceRecord>) -> Result<Vec<Instance>> {
        let mut by_cluster: BTreeMap<&ClusterId, Vec<FramedbId>> = BTreeMap::new();
        for record in &records {
            by_cluster
                .entry(&record.cluster_id)
                .or_default()
                .push(record.framedb_id.clone());
        }
        let reads = by_cluster.into_iter().map(|(cluster, ids)| async move {
            let reports = self.deployer.statuses(cluster, &ids).await;
            if let Err(error) = &reports {
                tracing::warn!(cluster_id = %cluster, error = %Chain(error), "live status not available");
            }
            (cluster.clone(), reports)
        });
        let live: HashMap<ClusterId, Result<HashMap<FramedbId, StatusReport>>> =
            futures_util::future::join_all(reads)
                .await
                .into_iter()
                .collect();
        Ok(records
            .into_iter()
            .map(|record| {
                let report = match &live[&record.cluster_id] {
                    Ok(reports) => overlay(&record, reports.get(&record.framedb_id).cloned()),
                    Err(error) => unknown(&record, error),
                };
                Instance::new(record, report)
            })
            .collect())
    }
}

/// How many clusters' inventories a reconcile pass reads at once. One after another, a
/// pass over a fleet took the sum of every cluster's round trips (5.9 s over 200 clusters
/// in the fleet benchmark), and each unreachable cluster added its whole timeout; all at
/// once, a fleet of thousands would open as many connections in a burst.
const INVENTORIES_AT_ONCE: usize = 16;

/// How many clusters' records a reconcile pass reads from the registry at once: fewer
/// than the inventories, as they share the registry client's pool with the requests the
/// service answers meanwhile (the MongoDB driver's default pool holds 10 connections).
const RECORD_READS_AT_ONCE: usize = 4;

/// `read` of every cluster of `clusters`, `at_once` at a time, each answer beside its
/// cluster, by cluster id (what a pass makes of them does not depend on which cluster
/// answered first).
async fn each_cluster<'a, C, F, T>(
    clusters: C,
    at_once: usize,
    read: impl Fn(&'a ClusterId) -> F,
) -> Vec<(&'a ClusterId, Result<T>)>
where
    C: IntoIterator<Item = &'a ClusterId>,
    F: std::future::Future<Output = Result<T>>,
{
    use futures_util::StreamExt as _;
    // The reads are made before the stream (not by a closure inside it), so that the pass
    // stays `Send` for `tokio::spawn`.
    let reads: Vec<_> = clusters
        .into_iter()
        .map(|cluster| {
            let answer = read(cluster);
            async move { (cluster, answer.await) }
        })
        .collect();
    let mut answers = futures_util::stream::iter(reads)
        .buffer_unordered(at_once)
        .collect::<Vec<_>>()
        .await;
    answers.sort_by_key(|(cluster, _)| *cluster);
    answers
}

/// Whether `record` is of a live instance: it has a port, no delete has begun on it,
/// and it was made with a stamp (what was made before stamps cannot be told from
/// someone else's objects).
fn is_live(record: &InstanceRecord) -> bool {
    record.port.is_some()
        && record.status != InstanceStatus::Deleting
        && !record.stamp.is_unstamped()
}

/// The ports that this service's creates are deploying on right now, per cluster, so
/// that concurrent creates pick different ports instead of colliding on the cluster and
/// retrying. It is not a record of used ports — the cluster's Services are that, and
/// are read (or mirrored by a watch) on every allocation; a port is held here only while
/// its deploy runs, and remembered for a while after a deploy on it succeeded, because a
/// read of the Services that began before that may not show it.
#[derive(Debug, Default)]
struct PortClaims(Mutex<Claims>);

#[derive(Debug, Default)]
struct Claims {
    held: HashMap<ClusterId, BTreeSet<u16>>,
    /// Ports deployed on, with the tick at which their deploy succeeded.
    settled: HashMap<ClusterId, BTreeMap<u16, u64>>,
    clock: u64,
}

/// How many settled ports a cluster remembers. A read older than that many deploys may
/// offer a port that is taken, which costs one retry, never a collision.
const SETTLED_KEPT: usize = 128;

impl PortClaims {
    fn lock(&self) -> std::sync::MutexGuard<'_, Claims> {
        // Each change is one map operation, so a poisoned lock is still consistent.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The ports held on `cluster` now, and the tick to pass to [`Self::claim`] for a
    /// read of the cluster that starts now.
    fn before_read(&self, cluster: &ClusterId) -> (Vec<u16>, u64) {
        let claims = self.lock();
        let held = claims
            .held
            .get(cluster)
            .map(|ports| ports.iter().copied().collect())
            .unwrap_or_default();
        (held, claims.clock)
    }

    /// Holds `port` until the returned guard drops. Refused when another create holds
    /// it, or deployed on it after the read made at tick `read_at` (which is stale then).
    fn claim<'a>(
        &'a self,
        cluster: &ClusterId,
        port: u16,
        read_at: u64,
    ) -> Result<PortClaim<'a>, Refused> {
        let mut claims = self.lock();
        let settled_since_read = claims
            .settled
            .get(cluster)
            .and_then(|ports| ports.get(&port))
            .is_some_and(|tick| *tick > read_at);
        if settled_since_read {
            return Err(Refused::Stale);
        }
        if !claims.held.entry(cluster.clone()).or_default().insert(port) {
            return Err(Refused::Held);
        }
        Ok(PortClaim {
            claims: self,
            cluster: cluster.clone(),
            port,
        })
    }
}

/// Why a port could not be claimed.
/// One read of a cluster's free ports, and the claims' clock when it began.
struct FreePorts {
    free: Vec<u16>,
    read_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// Another create of this service is deploying on it.
    Held,
    /// A create of this service deployed on it after the read that offered it.
    Stale,
}

/// One held port; dropping it (on success, failure or cancellation) releases it.
struct PortClaim<'a> {
    claims: &'a PortClaims,
    cluster: ClusterId,
    port: u16,
}

impl PortClaim<'_> {
    /// The deploy on this port succeeded: reads that began before now may not show it.
    fn settle(self) {
        let mut claims = self.claims.lock();
        claims.clock += 1;
        let tick = claims.clock;
        let settled = claims.settled.entry(self.cluster.clone()).or_default();
        settled.insert(self.port, tick);
        if settled.len() > SETTLED_KEPT
            && let Some((&oldest, _)) = settled.iter().min_by_key(|(_, tick)| **tick)
        {
            settled.remove(&oldest);
        }
    }
}

impl Drop for PortClaim<'_> {
    fn drop(&mut self) {
        let mut claims = self.claims.lock();
        if let Some(ports) = claims.held.get_mut(&self.cluster) {
            ports.remove(&self.port);
            if ports.is_empty() {
                claims.held.remove(&self.cluster);
            }
        }
    }
}

/// What a create made: the registry's record and the instance's credentials, which the
/// caller hands to the instance's owner (the registry never holds them).
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    /// The record, port included.
    pub record: InstanceRecord,
    /// The instance's database user and password.
    pub credentials: Credentials,
    /// Whether it took back the volume a deleted instance of its id retained.
    pub reattached: bool,
}

/// What one [`ProvisioningService::reconcile`] pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Repairs {
    /// Records of running instances that the registry had lost, rebuilt.
    pub rebuilt: usize,
    /// Creates that died before recording their port, whose instance runs: completed.
    pub completed: usize,
    /// Creates that died before recording their port, whose instance does not run:
    /// undone.
    pub settled: usize,
    /// Deletes that died halfway, finished.
    pub deleted: usize,
    /// Live instances whose Service or workload had been deleted from their cluster,
    /// re-created on their recorded port.
    pub restored: usize,
    /// Records that took the larger volume size their cluster held (an update that died
    /// between its cluster and its record).
    pub caught_up: usize,
    /// Records or clusters that could not be handled in this pass.
    pub failed: usize,
}

impl Repairs {
    /// Whether the pass changed anything or met something it could not handle.
    pub fn any(&self) -> bool {
        self.rebuilt
            + self.completed
            + self.settled
            + self.deleted
            + self.restored
            + self.caught_up
            + self.failed
            > 0
    }
}

/// How a reconcile pass settled one record.
enum Settled {
    Deleted,
    Completed,
    Undone,
}

/// Which node port a create claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortChoice {
    /// The lowest free one of [`PORT_RANGE`], read from the cluster.
    Lowest,
    /// This one, chosen by the caller; taken means [`Error::PortTaken`].
    Exactly(u16),
}

/// What the cluster needs to run `record` on `port`.
fn spec_of(record: &InstanceRecord, port: u16) -> DeploymentSpec {
    DeploymentSpec {
        framedb_id: record.framedb_id.clone(),
        cluster_id: record.cluster_id.clone(),
        node_id: record.node_id.clone(),
        storage_size: record.storage_size.clone(),
        port,
        stamp: record.stamp.clone(),
        deletion_policy: record.deletion_policy,
        resources: record.resources,
        created_at: record.created_at,
        metadata: record.metadata.clone(),
    }
}

/// `record` with `metadata` and `storage_size` instead of its own.
fn changed(
    record: &InstanceRecord,
    metadata: Metadata,
    storage_size: StorageSize,
) -> InstanceRecord {
    InstanceRecord {
        metadata,
        storage_size,
        ..record.clone()
    }
}

/// How [`ProvisioningService::undo_create`] undoes a failed create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Undo {
    /// Nothing reached the cluster: the record alone goes.
    NothingMade,
    /// Its objects, then its record, which stays as it is when they cannot be removed
    /// (a repeated request, or a reconcile pass, finishes the create or its undo).
    KeepForRetry,
    /// The record is marked `Deleting` (removal `Undo`) first, then as `KeepForRetry`.
    Mark,
}

/// A deploy that failed, and whether anything may have reached the cluster.
struct DeployFailure {
    error: Error,
    deployed: bool,
}

/// The status to show for a record, given what its cluster reports (`None`: no workload).
fn overlay(record: &InstanceRecord, live: Option<StatusReport>) -> StatusReport {
    match (record.status, live) {
        // A delete under way wins over whatever is left running.
        (InstanceStatus::Deleting, _) => StatusReport::new(InstanceStatus::Deleting),
        // Registered, not deployed yet: a create is in progress. What the cluster shows
        // under the id may be an earlier instance's workload, still being deleted, that
        // the deploy waits for (and the deploy's own objects are seconds old).
        (InstanceStatus::Provisioning, _) if record.port.is_none() => {
            StatusReport::new(InstanceStatus::Provisioning)
        }
        (_, Some(report)) => report,
        (_, None) => StatusReport::with_reason(
            InstanceStatus::Failed,
            format!(
                "the instance's workload is missing from cluster '{}'",
                record.cluster_id
            ),
        ),
    }
}

fn unknown(record: &InstanceRecord, error: &Error) -> StatusReport {
    if record.status == InstanceStatus::Deleting {
        return StatusReport::new(InstanceStatus::Deleting);
    }
    let reason = match error {
        Error::ClusterNotFound(_) => format!("cluster '{}' is not known", record.cluster_id),
        _ => format!("cluster '{}' cannot be reached", record.cluster_id),
    };
    StatusReport::with_reason(InstanceStatus::Unknown, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record of instance `db`, deployed on port 30900, with `status`.
    fn record(status: InstanceStatus) -> InstanceRecord {
        let spec = DeploymentSpec {
            framedb_id: FramedbId::new("db").unwrap(),
            cluster_id: ClusterId::new("cluster-01").unwrap(),
            node_id: crate::NodeId::new("node-a").unwrap(),
            storage_size: crate::StorageSize::new("2Gi").unwrap(),
            port: 30900,
            stamp: Stamp::unstamped(),
            deletion_policy: crate::DeletionPolicy::Delete,
            created_at: crate::Timestamp::now(),
            metadata: Default::default(),
            resources: None,
        };
        InstanceRecord {
            status,
            ..spec.record()
        }
    }

    #[test]
    fn deleting_comes_from_the_record_alone() {
        // The cluster says its StatefulSet is being deleted: through FrameDB, the record
        // says Deleting and wins; outside FrameDB, the cluster's Failed is shown.
        let going = StatusReport::with_reason(
            InstanceStatus::Failed,
            "its StatefulSet db is being deleted, not by a delete of the instance through \
             FrameDB",
        );
        assert_eq!(
            overlay(&record(InstanceStatus::Deleting), Some(going.clone())),
            StatusReport::new(InstanceStatus::Deleting)
        );
        assert_eq!(
            overlay(&record(InstanceStatus::Provisioning), Some(going.clone())),
            going
        );
        // An instance created again at once: its deploy waits for the workload of the
        // one deleted before it to go.
        let mut creating = record(InstanceStatus::Provisioning);
        creating.port = None;
        assert_eq!(
            overlay(&creating, Some(going.clone())),
            StatusReport::new(InstanceStatus::Provisioning)
        );
        // Whatever the cluster says of a pod terminating while its workload stays.
        let replaced = StatusReport::new(InstanceStatus::Provisioning);
        assert_eq!(
            overlay(
                &record(InstanceStatus::Provisioning),
                Some(replaced.clone())
            ),
            replaced
        );
    }

    #[test]
    fn a_port_deployed_on_after_a_read_is_refused_to_that_read_only() {
        let claims = PortClaims::default();
        let cluster = ClusterId::new("cluster-01").unwrap();
        let (_, early_read) = claims.before_read(&cluster);
        let held = claims.claim(&cluster, 30900, early_read).unwrap();
        assert_eq!(
            claims.claim(&cluster, 30900, early_read).err(),
            Some(Refused::Held)
        );
        held.settle();
        // The early read may not show the new Service: it must not offer its port.
        assert_eq!(
            claims.claim(&cluster, 30900, early_read).err(),
            Some(Refused::Stale)
        );
        let (held_now, late_read) = claims.before_read(&cluster);
        assert!(held_now.is_empty());
        // A read begun after the deploy shows the Service itself; a port it offers is free.
        assert!(claims.claim(&cluster, 30900, late_read).is_ok());
        // Other clusters are not concerned.
        let other = ClusterId::new("cluster-02").unwrap();
        assert!(claims.claim(&other, 30900, early_read).is_ok());
    }
}
