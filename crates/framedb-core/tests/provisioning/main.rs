//! The provisioning service's guarantees (docs/architecture.md, "Create and delete sagas"), on mocked ports where a failure
//! must be injected and on the in-memory adapters where real contention is wanted.

mod compensation;
mod concurrency;
mod credentials;
mod ownership;
mod reads;

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
