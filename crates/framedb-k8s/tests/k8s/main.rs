//! framedb-k8s against the Kubernetes API simulator, over real HTTP with kube-rs.

mod config_mongodb;
mod containers;
mod deployer;
mod lockdown;
mod node_ports;
mod nodes;
mod ownership;
mod provisioning;
mod real_cluster;
mod resources;
mod status_truth;
mod storage;

use std::sync::Arc;
use std::time::Duration;

use framedb_core::memory::InMemoryRegistry;
use framedb_core::{
    ClusterId, DeploymentSpec, FramedbId, NodeId, ProvisioningService, StorageSize,
};
use framedb_k8s::kubeconfig::{self, Timeouts};
use framedb_k8s::{KubeFleet, Layout, StatusLimits};
use framedb_kube_sim::{SimConfig, Simulator};

/// A simulated cluster named `cluster-01` (nodes `node-a`, `node-b`) and a fleet that
/// reaches it through a client built from its kubeconfig, as the server builds it.
pub struct Cluster {
    /// The simulator.
    pub sim: Simulator,
    /// A client for looking behind the adapters.
    pub client: kube::Client,
    /// The adapters under test.
    pub fleet: Arc<KubeFleet>,
}

/// Simulated seconds per real second on the test clusters' clocks: a pod's 30-second
/// grace period (and so its claim's deletion) takes half a second.
pub const TIME_SCALE: f64 = 60.0;

impl Cluster {
    /// Starts a cluster whose pods become ready after `ready_after`, its clock at
    /// [`TIME_SCALE`].
    pub async fn start(ready_after: Duration) -> Self {
        Self::start_with(
            SimConfig::new("cluster-01")
                .with_images(framedb_k8s::default_images())
                .with_pod_ready_after(ready_after)
                .with_time_scale(TIME_SCALE),
        )
        .await
    }

    /// Starts a cluster from a simulator configuration.
    pub async fn start_with(config: SimConfig) -> Self {
        let sim = Simulator::start(config).await.unwrap();
        let client = kubeconfig::client(sim.kubeconfig(), Timeouts::default())
            .await
            .unwrap();
        let fleet = Arc::new(
            KubeFleet::new(Layout::default())
                .with_status_limits(test_limits())
                .with_cluster(cluster_id(), client.clone()),
        );
        Self { sim, client, fleet }
    }

    /// Deploys `id` on `node-a` and `port`; returns its id.
    pub async fn deployed(&self, id: &str, port: u16) -> FramedbId {
        framedb_core::ClusterDeployer::deploy(self.fleet.as_ref(), &spec(id, "node-a", port))
            .await
            .unwrap();
        FramedbId::new(id).unwrap()
    }

    /// A provisioning service on this cluster and a fresh in-memory registry.
    pub fn service(&self) -> (ProvisioningService, Arc<InMemoryRegistry>) {
        let registry = Arc::new(InMemoryRegistry::new());
        let service =
            ProvisioningService::new(registry.clone(), self.fleet.clone(), self.fleet.clone());
        (service, registry)
    }
}

/// Status limits for tests: the default restart limit, and causes the kubelet retries
/// failing once told for 2 s (the default's 2 minutes is real time on the simulator too:
/// its events carry wall-clock timestamps).
pub fn test_limits() -> StatusLimits {
    StatusLimits {
        stuck_after: Duration::from_secs(2),
        ..StatusLimits::default()
    }
}

/// Polls `check` every 20 ms until it holds or `limit` passes; whether it held.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The status `fleet` reads for instance `id` of `cluster-01`.
pub async fn status_report(fleet: &KubeFleet, id: &FramedbId) -> framedb_core::StatusReport {
    framedb_core::ClusterDeployer::statuses(fleet, &cluster_id(), std::slice::from_ref(id))
        .await
        .unwrap()[id]
        .clone()
}

/// `cluster-01`.
pub fn cluster_id() -> ClusterId {
    ClusterId::new("cluster-01").unwrap()
}

/// A deployment of `id` on `node` with port `port`.
pub fn spec(id: &str, node: &str, port: u16) -> DeploymentSpec {
    DeploymentSpec {
        framedb_id: FramedbId::new(id).unwrap(),
        cluster_id: cluster_id(),
        node_id: NodeId::new(node).unwrap(),
        storage_size: StorageSize::new("2Gi").unwrap(),
        port,
        stamp: framedb_core::Stamp::unstamped(),
        deletion_policy: framedb_core::DeletionPolicy::Delete,
        created_at: framedb_core::Timestamp::now(),
        metadata: Default::default(),
        resources: None,
    }
}
