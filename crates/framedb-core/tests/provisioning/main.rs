//! The provisioning service's guarantees (docs/architecture.md, "Create and delete sagas"), on mocked ports where a failure
//! must be injected and on the in-memory adapters where real contention is wanted.

mod compensation;
mod concurrency;
mod credentials;
mod faults;
mod ownership;
mod reads;
mod scale;
mod updates;

use std::sync::Arc;
use std::time::Duration;

use framedb_core::memory::{InMemoryFleet, InMemoryRegistry};
use framedb_core::{ClusterId, FramedbId, NewInstance, ProvisioningService};
use serde_json::json;

/// A create request for `id` on `cluster-01`, node `node-a`.
pub fn request(id: &str) -> NewInstance {
    serde_json::from_value(json!({
        "framedb_id": id, "cluster_id": "cluster-01", "node_id": "node-a",
        "storage_size": "2Gi", "metadata": {"team": "analytics"}
    }))
    .unwrap()
}

/// A valid instance id.
pub fn id(id: &str) -> FramedbId {
    FramedbId::new(id).unwrap()
}

/// `cluster-01`, the cluster the requests target.
pub fn cluster() -> ClusterId {
    ClusterId::new("cluster-01").unwrap()
}

/// A service on a fresh in-memory registry and fleet, with both returned for inspection.
pub fn in_memory() -> (
    ProvisioningService,
    Arc<InMemoryRegistry>,
    Arc<InMemoryFleet>,
) {
    let registry = Arc::new(InMemoryRegistry::new());
    let fleet = Arc::new(InMemoryFleet::demo(Duration::ZERO));
    let service = ProvisioningService::new(registry.clone(), fleet.clone(), fleet.clone());
    (service, registry, fleet)
}

/// What a hook of [`Hooked`] runs: a future made afresh for each call.
pub type Hook = Box<dyn Fn() -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

/// A cluster that runs `before_deploy` before each deploy, `before_statuses` before each
/// status read and `before_inventory` before each inventory, and passes everything on to `inner`: a deploy that takes a moment, waits
/// for the test, or a read that waits for others.
pub struct Hooked {
    /// The cluster behind.
    pub inner: Arc<dyn framedb_core::ClusterDeployer>,
    /// Runs before each deploy.
    pub before_deploy: Hook,
    /// Runs before each status read.
    pub before_statuses: Hook,
    /// Runs before each inventory read.
    pub before_inventory: Hook,
}

impl Hooked {
    /// `inner` with no hooks yet.
    pub fn on(inner: Arc<dyn framedb_core::ClusterDeployer>) -> Self {
        let nothing = || -> Hook { Box::new(|| Box::pin(async {})) };
        Self {
            inner,
            before_deploy: nothing(),
            before_statuses: nothing(),
            before_inventory: nothing(),
        }
    }
}

#[async_trait::async_trait]
impl framedb_core::ClusterDeployer for Hooked {
    async fn deploy(
        &self,
        spec: &framedb_core::DeploymentSpec,
    ) -> framedb_core::Result<framedb_core::Deployed> {
        (self.before_deploy)().await;
        self.inner.deploy(spec).await
    }
    async fn undeploy(
        &self,
        cluster: &ClusterId,
        id: &FramedbId,
        stamp: &framedb_core::Stamp,
        removal: framedb_core::Removal,
    ) -> framedb_core::Result<bool> {
        self.inner.undeploy(cluster, id, stamp, removal).await
    }
    async fn amend(
        &self,
        spec: &framedb_core::DeploymentSpec,
    ) -> framedb_core::Result<framedb_core::StorageSize> {
        self.inner.amend(spec).await
    }
    async fn credentials(
        &self,
        cluster: &ClusterId,
        id: &FramedbId,
    ) -> framedb_core::Result<framedb_core::Credentials> {
        self.inner.credentials(cluster, id).await
    }
    async fn statuses(
        &self,
        cluster: &ClusterId,
        ids: &[FramedbId],
    ) -> framedb_core::Result<std::collections::HashMap<FramedbId, framedb_core::StatusReport>>
    {
        (self.before_statuses)().await;
        self.inner.statuses(cluster, ids).await
    }
    async fn inventory(
        &self,
        cluster: &ClusterId,
    ) -> framedb_core::Result<Vec<framedb_core::InstanceRecord>> {
        (self.before_inventory)().await;
        self.inner.inventory(cluster).await
    }
    async fn follow(
        &self,
        cluster: &ClusterId,
    ) -> framedb_core::Result<framedb_core::live::StatusFeed> {
        self.inner.follow(cluster).await
    }
}
