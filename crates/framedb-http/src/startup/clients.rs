//! The adapters that settings name: the registry (and beside it the global's cluster
//! directory store and reconcile lease, or a local service's fence), and a kube-rs client per cluster.

use std::path::Path;
use std::sync::Arc;

use framedb_core::memory::{InMemoryDirectoryStore, InMemoryFence, InMemoryRegistry};
use framedb_core::{ClusterDirectoryStore, ClusterId, Fence, InstanceRegistry, Lease};
use framedb_k8s::kubeconfig::Timeouts;
use framedb_mongo::{
    MongoConfig, MongoDirectoryStore, MongoFence, MongoLease, MongoRegistry, redact_uri,
};

use super::StartError;
use crate::settings::{MongoSettings, Secret};

/// The global service's stores: the registry, the cluster directory's, and the lease of
/// its reconcile passes.
pub(super) struct GlobalStores {
    pub registry: Arc<dyn InstanceRegistry>,
    pub directory: Arc<dyn ClusterDirectoryStore>,
    /// `None` in memory: a registry in memory is one replica's own.
    pub lease: Option<Arc<dyn Lease>>,
}

/// The stores `settings` name: all in MongoDB (on one client, in one database) with a
/// URI, else in memory.
pub(super) async fn stores(
    settings: &MongoSettings,
    tier: &str,
) -> Result<GlobalStores, StartError> {
    let Some((registry, config)) = mongo(settings, tier).await? else {
        return Ok(GlobalStores {
            registry: Arc::new(InMemoryRegistry::new()),
            directory: Arc::new(InMemoryDirectoryStore::new()),
            lease: None,
        });
    };
    let directory = MongoDirectoryStore::new(registry.client(), &config);
    directory
        .ensure_indexes()
        .await
        .map_err(|source| registry_error(settings, source))?;
    let lease = MongoLease::new(registry.client(), &config, RECONCILE_LEASE);
    Ok(GlobalStores {
        registry: Arc::new(registry),
        directory: Arc::new(directory),
        lease: Some(Arc::new(lease)),
    })
}

/// The name of the global's reconcile lease in [`framedb_mongo::LEASE_COLLECTION`].
const RECONCILE_LEASE: &str = "global-reconciler";

/// The registry and the fence of undone creates `settings` name, for a local service:
/// both in MongoDB (on one client, in one database) with a URI, else both in memory.
pub(super) async fn local_stores(
    settings: &MongoSettings,
) -> Result<(Arc<dyn InstanceRegistry>, Arc<dyn Fence>), StartError> {
    let Some((registry, config)) = mongo(settings, "local").await? else {
        return Ok((
            Arc::new(InMemoryRegistry::new()),
            Arc::new(InMemoryFence::new()),
        ));
    };
    let fence = MongoFence::new(registry.client(), &config);
    fence
        .ensure_indexes()
        .await
        .map_err(|source| registry_error(settings, source))?;
    Ok((Arc::new(registry), Arc::new(fence)))
}

/// The MongoDB registry `settings` name, connected, with its configuration; `None` (and
/// a warning) without a URI.
async fn mongo(
    settings: &MongoSettings,
    tier: &str,
) -> Result<Option<(MongoRegistry, MongoConfig)>, StartError> {
    let Some(config) = settings.config() else {
        tracing::warn!(
            "{tier} registry: in memory (no --mongo-uri); every record is lost when the \
             service stops"
        );
        return Ok(None);
    };
    let registry = MongoRegistry::connect(&config)
        .await
        .map_err(|source| registry_error(settings, source))?;
    Ok(Some((registry, config)))
}

fn registry_error(settings: &MongoSettings, source: framedb_mongo::Error) -> StartError {
    StartError::Registry {
        uri: redact_uri(settings.uri.as_ref().map_or("", Secret::expose)),
        source: Box::new(source),
    }
}

/// A client for `cluster` through an operator's kubeconfig file. The file may use any
/// mechanism kube-rs supports (exec plugins included); only kubeconfigs sent over the API
/// are restricted to inline data.
pub(super) async fn client_from_file(
    cluster: &ClusterId,
    path: &Path,
    timeouts: Timeouts,
) -> Result<kube::Client, StartError> {
    let failed = |message: String| StartError::Cluster {
        cluster: cluster.clone(),
        message,
    };
    let file = kube::config::Kubeconfig::read_from(path)
        .map_err(|e| failed(format!("cannot read kubeconfig {}: {e}", path.display())))?;
    let config =
        kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| failed(format!("kubeconfig {} is not usable: {e}", path.display())))?;
    client_of(cluster, config, timeouts)
}

/// A client for the cluster this process runs in, with its service account; `instead`
/// names what the operator could have given instead, for the message.
pub(super) fn client_in_cluster(
    cluster: &ClusterId,
    timeouts: Timeouts,
    instead: &str,
) -> Result<kube::Client, StartError> {
    let config = kube::Config::incluster().map_err(|e| StartError::Cluster {
        cluster: cluster.clone(),
        message: format!("not running in a cluster{instead}: {e}"),
    })?;
    client_of(cluster, config, timeouts)
}

/// A client with FrameDB's timeouts.
fn client_of(
    cluster: &ClusterId,
    mut config: kube::Config,
    timeouts: Timeouts,
) -> Result<kube::Client, StartError> {
    timeouts.apply(&mut config);
    kube::Client::try_from(config).map_err(|e| StartError::Cluster {
        cluster: cluster.clone(),
        message: e.to_string(),
    })
}
