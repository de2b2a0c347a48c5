//! An in-memory fleet of clusters that behaves, where FrameDB depends on it, like
//! Kubernetes: node ports are unique per cluster and a taken one is refused; a workload
//! whose node does not exist stays `Pending` with the scheduler's reason; a new workload
//! is `Provisioning` until its readiness delay has passed, then `Running`; each instance
//! gets a generated password at its first deploy, kept (like the Kubernetes adapter's
//! Secret) with its volume; every object carries its create's stamp, a create takes over
//! nothing of another stamp but a volume retained for its id on its node, and an undeploy
//! removes its own stamp's objects only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::live::{StatusFeed, no_feed};
use crate::ports::{ClusterDeployer, Deployed, DeploymentSpec, PortAllocator};
use crate::types::{
    ClusterId, Credentials, FramedbId, InstanceRecord, InstanceStatus, NodeId, PORT_RANGE, Removal,
    Stamp, StatusReport, StorageSize,
};

/// The node label that pins an instance to its node, as the Kubernetes adapter uses it.
const NODE_LABEL: &str = "kubernetes.io/hostname";

/// Simulated clusters, each with nodes, Services (by node port) and instance workloads.
#[derive(Debug, Default)]
pub struct InMemoryFleet {
    clusters: HashMap<ClusterId, Mutex<Cluster>>,
    ready_after: Duration,
}

#[derive(Debug, Default)]
struct Cluster {
    nodes: BTreeSet<NodeId>,
    /// Node port → the Service that holds it.
    services: BTreeMap<u16, ServiceOwner>,
    workloads: HashMap<FramedbId, Workload>,
    /// Each instance's volume and the credentials that open its data, from its first
    /// deploy until it is purged.
    volumes: HashMap<FramedbId, Volume>,
}

#[derive(Debug)]
struct Volume {
    stamp: Stamp,
    node: NodeId,
    credentials: Credentials,
    /// Kept by a deleted instance's `Retain` policy, for a create of the same id.
    retained: bool,
    /// Taken back by its current stamp from the one that retained it.
    reattached_from: Option<Stamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ServiceOwner {
    Instance(FramedbId),
    Foreign(String),
}

#[derive(Debug)]
struct Workload {
    /// What it was deployed as: its stamp, node and port, and what its objects record
    /// for [`ClusterDeployer::inventory`].
    spec: DeploymentSpec,
    started: Instant,
}

impl InMemoryFleet {
    /// A fleet without clusters; add them with [`Self::with_cluster`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The embedded default: `cluster-01` and `cluster-02`, each with nodes `node-a` and
    /// `node-b`, and instances that become ready after `ready_after`.
    pub fn demo(ready_after: Duration) -> Self {
        let nodes = || ["node-a", "node-b"].map(|n| NodeId::new(n).expect("valid node id"));
        Self::new()
            .with_cluster(ClusterId::new("cluster-01").expect("valid"), nodes())
            .with_cluster(ClusterId::new("cluster-02").expect("valid"), nodes())
            .with_ready_after(ready_after)
    }

    /// Adds a cluster with these nodes.
    pub fn with_cluster(mut self, id: ClusterId, nodes: impl IntoIterator<Item = NodeId>) -> Self {
        let cluster = Cluster {
            nodes: nodes.into_iter().collect(),
            ..Cluster::default()
        };
        self.clusters.insert(id, Mutex::new(cluster));
        self
    }

    /// How long a new instance stays `Provisioning` before it is `Running`.
    pub fn with_ready_after(mut self, delay: Duration) -> Self {
        self.ready_after = delay;
        self
    }

    /// Makes a Service that FrameDB does not own hold `port`, as another team's would.
    ///
    /// # Errors
    /// [`Error::ClusterNotFound`]; [`Error::PortTaken`] when a Service holds it already.
    pub fn occupy_port(&self, cluster: &ClusterId, port: u16, service: &str) -> Result<()> {
        let mut state = self.cluster(cluster)?;
        if state.services.contains_key(&port) {
            return Err(port_taken(cluster, port));
        }
        state
            .services
            .insert(port, ServiceOwner::Foreign(service.to_owned()));
        Ok(())
    }

    /// The node ports in use on a cluster, by anyone.
    ///
    /// # Errors
    /// [`Error::ClusterNotFound`].
    pub fn used_ports(&self, cluster: &ClusterId) -> Result<Vec<u16>> {
        Ok(self.cluster(cluster)?.services.keys().copied().collect())
    }

    /// The instances that have a workload on a cluster, sorted.
    ///
    /// # Errors
    /// [`Error::ClusterNotFound`].
    pub fn workloads(&self, cluster: &ClusterId) -> Result<Vec<FramedbId>> {
        let mut ids: Vec<_> = self.cluster(cluster)?.workloads.keys().cloned().collect();
        ids.sort();
        Ok(ids)
    }

    fn cluster(&self, id: &ClusterId) -> Result<MutexGuard<'_, Cluster>> {
        let cluster = self
            .clusters
            .get(id)
            .ok_or_else(|| Error::ClusterNotFound(id.clone()))?;
        // Every change is made in one critical section, so a poisoned lock is consistent.
        Ok(cluster.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The refusal to touch the `object` of `spec`'s instance that another create made.
fn made_by_another(spec: &DeploymentSpec, object: &str) -> Error {
    let id = &spec.framedb_id;
    Error::ObjectConflict {
        cluster: spec.cluster_id.clone(),
        object: format!("{object} {id}"),
        sentence: format!(
            "the {object} of '{id}' on cluster '{}' was made by another create; FrameDB \
             takes nothing over",
            spec.cluster_id
        ),
    }
}

fn port_taken(cluster: &ClusterId, port: u16) -> Error {
    Error::PortTaken {
        cluster: cluster.clone(),
        port,
    }
}

#[async_trait]
impl ClusterDeployer for InMemoryFleet {
    async fn deploy(&self, spec: &DeploymentSpec) -> Result<Deployed> {
        let mut state = self.cluster(&spec.cluster_id)?;
        if !PORT_RANGE.contains(&spec.port) {
            return Err(Error::Internal(
                format!("node port {} is outside the instance range", spec.port).into(),
            ));
        }
        let id = &spec.framedb_id;
        let conflict = |object: &str| made_by_another(spec, object);
        if state
            .workloads
            .get(id)
            .is_some_and(|workload| workload.spec.stamp != spec.stamp)
        {
            return Err(conflict("workload"));
        }
        let reattach = match state.volumes.get(id) {
            Some(volume) if volume.stamp == spec.stamp => false,
            Some(volume) if volume.retained && volume.node == spec.node_id => true,
            Some(_) => return Err(conflict("volume")),
            None => false,
        };
        let owner = ServiceOwner::Instance(id.clone());
        match state.services.get(&spec.port) {
            Some(holder) if *holder != owner => {
                return Err(port_taken(&spec.cluster_id, spec.port));
            }
            _ => {}
        }
        // Deploying again completes or moves the instance; it never duplicates it.
        if let Some(previous) = state.workloads.get(id)
            && previous.spec.port != spec.port
        {
            let old = previous.spec.port;
            state.services.remove(&old);
        }
        state.services.insert(spec.port, owner);
        let started = state
            .workloads
            .get(id)
            .map_or_else(Instant::now, |w| w.started);
        state.workloads.insert(
            id.clone(),
            Workload {
                spec: spec.clone(),
                started,
            },
        );
        // A deploy run again keeps the password the first one made; a volume taken back
        // keeps the password its data was made with.
        if let Some(volume) = state.volumes.get_mut(id) {
            if reattach {
                let from = std::mem::replace(&mut volume.stamp, spec.stamp.clone());
                volume.retained = false;
                volume.reattached_from = Some(from);
            }
            return Ok(Deployed {
                credentials: volume.credentials.clone(),
                reattached: volume.reattached_from.is_some(),
            });
        }
        let credentials = Credentials::generate()?;
        state.volumes.insert(
            id.clone(),
            Volume {
                stamp: spec.stamp.clone(),
                node: spec.node_id.clone(),
                credentials: credentials.clone(),
                retained: false,
                reattached_from: None,
            },
        );
        Ok(Deployed {
            credentials,
            reattached: false,
        })
    }

    async fn undeploy(
        &self,
        cluster: &ClusterId,
        id: &FramedbId,
        stamp: &Stamp,
        removal: Removal,
    ) -> Result<bool> {
        let mut state = self.cluster(cluster)?;
        let mut found = false;
        if state
            .workloads
            .get(id)
            .is_some_and(|workload| workload.spec.stamp == *stamp)
            && let Some(workload) = state.workloads.remove(id)
        {
            state.services.remove(&workload.spec.port);
            found = true;
        }
        // A volume of the stamp retained already stays so, but for a purge (as the
        // Kubernetes deployer does).
        if let Some(volume) = state.volumes.get_mut(id)
            && volume.stamp == *stamp
            && (!volume.retained || removal == Removal::Purge)
        {
            found = true;
            let keep = match removal {
                Removal::Purge => false,
                Removal::Retain => true,
                Removal::Undo => volume.reattached_from.is_some(),
            };
            if keep {
                volume.retained = true;
                // An undo gives the volume back under the stamp that retained it.
                if let (Removal::Undo, Some(from)) = (removal, volume.reattached_from.take()) {
                    volume.stamp = from;
                }
                volume.reattached_from = None;
            } else {
                state.volumes.remove(id);
            }
        }
        Ok(found)
    }

    /// Volumes here grow as a CSI driver's with `allowVolumeExpansion` do.
    async fn amend(&self, spec: &DeploymentSpec) -> Result<StorageSize> {
        let mut state = self.cluster(&spec.cluster_id)?;
        let Some(workload) = state.workloads.get_mut(&spec.framedb_id) else {
            return Ok(spec.storage_size.clone());
        };
        if workload.spec.stamp != spec.stamp {
            return Err(made_by_another(spec, "workload"));
        }
        workload.spec.metadata = spec.metadata.clone();
        if spec.storage_size.bytes() > workload.spec.storage_size.bytes() {
            workload.spec.storage_size = spec.storage_size.clone();
        }
        Ok(workload.spec.storage_size.clone())
    }

    async fn credentials(&self, cluster: &ClusterId, id: &FramedbId) -> Result<Credentials> {
        self.cluster(cluster)?
            .volumes
            .get(id)
            .filter(|volume| !volume.retained)
            .map(|volume| volume.credentials.clone())
            .ok_or_else(|| Error::InstanceNotFound(id.clone()))
    }

    async fn statuses(
        &self,
        cluster: &ClusterId,
        ids: &[FramedbId],
    ) -> Result<HashMap<FramedbId, StatusReport>> {
        let state = self.cluster(cluster)?;
        let now = Instant::now();
        Ok(ids
            .iter()
            .filter_map(|id| {
                let workload = state.workloads.get(id)?;
                let report = if !state.nodes.contains(&workload.spec.node_id) {
                    StatusReport::with_reason(
                        InstanceStatus::Pending,
                        format!(
                            "Unschedulable: 0/{} nodes are available: {} node(s) didn't match \
                             Pod's node affinity/selector ({NODE_LABEL}={})",
                            state.nodes.len(),
                            state.nodes.len(),
                            workload.spec.node_id
                        ),
                    )
                } else if now.duration_since(workload.started) < self.ready_after {
                    StatusReport::new(InstanceStatus::Provisioning)
                } else {
                    StatusReport::new(InstanceStatus::Running)
                };
                Some((id.clone(), report))
            })
            .collect())
    }

    async fn inventory(&self, cluster: &ClusterId) -> Result<Vec<InstanceRecord>> {
        let state = self.cluster(cluster)?;
        let mut records: Vec<InstanceRecord> = state
            .workloads
            .values()
            .filter(|workload| !workload.spec.stamp.is_unstamped())
            .map(|workload| workload.spec.record())
            .collect();
        records.sort_by(|a, b| a.framedb_id.cmp(&b.framedb_id));
        Ok(records)
    }

    /// Reads here cost no round-trip, so there is nothing to watch.
    async fn follow(&self, cluster: &ClusterId) -> Result<StatusFeed> {
        drop(self.cluster(cluster)?);
        Ok(no_feed())
    }
}

#[async_trait]
impl PortAllocator for InMemoryFleet {
    async fn free_ports(&self, cluster: &ClusterId, skip: &[u16]) -> Result<Vec<u16>> {
        let state = self.cluster(cluster)?;
        let free: Vec<u16> = PORT_RANGE
            .filter(|port| !state.services.contains_key(port) && !skip.contains(port))
            .collect();
        if free.is_empty() {
            return Err(Error::PortsExhausted(cluster.clone()));
        }
        Ok(free)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, node: &str, port: u16) -> DeploymentSpec {
        DeploymentSpec {
            framedb_id: FramedbId::new(id).unwrap(),
            cluster_id: ClusterId::new("cluster-01").unwrap(),
            node_id: NodeId::new(node).unwrap(),
            storage_size: StorageSize::new("1Gi").unwrap(),
            port,
            stamp: Stamp::unstamped(),
            deletion_policy: crate::types::DeletionPolicy::Delete,
            created_at: crate::types::Timestamp::now(),
            metadata: Default::default(),
            resources: None,
        }
    }

    fn stamped(id: &str, node: &str, port: u16, stamp: &Stamp) -> DeploymentSpec {
        DeploymentSpec {
            stamp: stamp.clone(),
            ..spec(id, node, port)
        }
    }

    fn c1() -> ClusterId {
        ClusterId::new("cluster-01").unwrap()
    }

    #[tokio::test]
    async fn allocates_the_lowest_free_port_and_refuses_a_taken_one() {
        let fleet = InMemoryFleet::demo(Duration::ZERO);
        fleet.occupy_port(&c1(), 30900, "other-team").unwrap();
        assert_eq!(fleet.lowest_free(&c1(), &[]).await.unwrap(), 30901);
        assert_eq!(fleet.lowest_free(&c1(), &[30901]).await.unwrap(), 30902);
        let err = fleet.deploy(&spec("a", "node-a", 30900)).await.unwrap_err();
        assert_eq!(err, port_taken(&c1(), 30900));
        let first = fleet.deploy(&spec("a", "node-a", 30901)).await.unwrap();
        // Deploying the same instance again is a no-op, not a conflict, and keeps the
        // password.
        let again = fleet.deploy(&spec("a", "node-a", 30901)).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(fleet.used_ports(&c1()).unwrap(), [30900, 30901]);
    }

    #[tokio::test]
    async fn reports_pending_for_an_unknown_node_and_running_when_ready() {
        let fleet = InMemoryFleet::demo(Duration::ZERO);
        fleet.deploy(&spec("a", "node-a", 30900)).await.unwrap();
        fleet.deploy(&spec("b", "node-z", 30901)).await.unwrap();
        let ids = [
            FramedbId::new("a").unwrap(),
            FramedbId::new("b").unwrap(),
            FramedbId::new("c").unwrap(),
        ];
        let reports = fleet.statuses(&c1(), &ids).await.unwrap();
        assert_eq!(reports[&ids[0]].status, InstanceStatus::Running);
        assert_eq!(reports[&ids[1]].status, InstanceStatus::Pending);
        assert!(reports[&ids[1]].reason.as_ref().unwrap().contains("node-z"));
        assert!(!reports.contains_key(&ids[2]));

        let slow = InMemoryFleet::demo(Duration::from_secs(3600));
        slow.deploy(&spec("a", "node-a", 30900)).await.unwrap();
        let reports = slow.statuses(&c1(), &ids[..1]).await.unwrap();
        assert_eq!(reports[&ids[0]].status, InstanceStatus::Provisioning);
    }

    #[tokio::test]
    async fn undeploy_frees_the_port_and_is_idempotent() {
        let fleet = InMemoryFleet::demo(Duration::ZERO);
        fleet.deploy(&spec("a", "node-a", 30900)).await.unwrap();
        let id = FramedbId::new("a").unwrap();
        assert!(fleet.credentials(&c1(), &id).await.is_ok());
        let unstamped = Stamp::unstamped();
        assert!(
            fleet
                .undeploy(&c1(), &id, &unstamped, Removal::Purge)
                .await
                .unwrap()
        );
        assert!(
            !fleet
                .undeploy(&c1(), &id, &unstamped, Removal::Purge)
                .await
                .unwrap()
        );
        assert_eq!(
            fleet.credentials(&c1(), &id).await.unwrap_err(),
            Error::InstanceNotFound(id.clone())
        );
        assert!(fleet.used_ports(&c1()).unwrap().is_empty());
        assert!(fleet.workloads(&c1()).unwrap().is_empty());
    }

    #[tokio::test]
    async fn objects_belong_to_their_stamp_and_a_retained_volume_is_taken_back() {
        let fleet = InMemoryFleet::demo(Duration::ZERO);
        let (first, second) = (Stamp::generate().unwrap(), Stamp::generate().unwrap());
        let id = FramedbId::new("a").unwrap();
        let made = fleet
            .deploy(&stamped("a", "node-a", 30900, &first))
            .await
            .unwrap();
        // Another create of the id takes nothing over, and deletes nothing of the first.
        let refused = fleet.deploy(&stamped("a", "node-a", 30901, &second)).await;
        assert!(
            matches!(refused, Err(Error::ObjectConflict { .. })),
            "{refused:?}"
        );
        assert!(
            !fleet
                .undeploy(&c1(), &id, &second, Removal::Purge)
                .await
                .unwrap()
        );
        assert_eq!(fleet.workloads(&c1()).unwrap(), std::slice::from_ref(&id));

        // Retained, the volume waits for the id on its node, with its password.
        assert!(
            fleet
                .undeploy(&c1(), &id, &first, Removal::Retain)
                .await
                .unwrap()
        );
        assert!(fleet.workloads(&c1()).unwrap().is_empty());
        let elsewhere = fleet.deploy(&stamped("a", "node-b", 30900, &second)).await;
        assert!(matches!(elsewhere, Err(Error::ObjectConflict { .. })));
        fleet
            .undeploy(&c1(), &id, &second, Removal::Undo)
            .await
            .unwrap();
        let back = fleet
            .deploy(&stamped("a", "node-a", 30900, &second))
            .await
            .unwrap();
        assert!(back.reattached);
        assert_eq!(back.credentials, made.credentials);
        // Undoing the create that took it back retains it again; purging removes it.
        assert!(
            fleet
                .undeploy(&c1(), &id, &second, Removal::Undo)
                .await
                .unwrap()
        );
        let third = Stamp::generate().unwrap();
        let again = fleet
            .deploy(&stamped("a", "node-a", 30900, &third))
            .await
            .unwrap();
        assert!(again.reattached);
        assert!(
            fleet
                .undeploy(&c1(), &id, &third, Removal::Purge)
                .await
                .unwrap()
        );
        let fresh = fleet
            .deploy(&stamped("a", "node-a", 30900, &first))
            .await
            .unwrap();
        assert!(!fresh.reattached);
        assert_ne!(fresh.credentials, made.credentials);
    }

    #[tokio::test]
    async fn unknown_clusters_are_not_found() {
        let fleet = InMemoryFleet::demo(Duration::ZERO);
        let nowhere = ClusterId::new("nowhere").unwrap();
        assert_eq!(
            fleet.lowest_free(&nowhere, &[]).await.unwrap_err(),
            Error::ClusterNotFound(nowhere)
        );
    }

    #[tokio::test]
    async fn a_full_cluster_is_exhausted() {
        let fleet = InMemoryFleet::demo(Duration::ZERO);
        for port in PORT_RANGE {
            fleet.occupy_port(&c1(), port, "filler").unwrap();
        }
        assert_eq!(
            fleet.lowest_free(&c1(), &[]).await.unwrap_err(),
            Error::PortsExhausted(c1())
        );
    }
}
