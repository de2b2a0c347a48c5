//! The adapters that settings name: the registry, and a kube-rs client per cluster.

use std::path::Path;
use std::sync::Arc;

use framedb_core::memory::InMemoryRegistry;
use framedb_core::{ClusterId, InstanceRegistry};
use framedb_k8s::kubeconfig::Timeouts;
use framedb_mongo::{MongoRegistry, redact_uri};

use super::StartError;
use crate::settings::MongoSettings;

/// The registry `settings` name: MongoDB with a URI, else in memory. `tier` names the
/// service in the log.
pub(super) async fn registry(
    settings: &MongoSettings,
    tier: &str,
) -> Result<Arc<dyn InstanceRegistry>, StartError> {
    let Some(config) = settings.config() else {
        tracing::warn!(
            "{tier} registry: in memory (no --mongo-uri); every record is lost when the \
             service stops"
        );
        return Ok(Arc::new(InMemoryRegistry::new()));
    };
    let uri = redact_uri(settings.uri.as_deref().unwrap_or_default());
    let registry =
        MongoRegistry::connect(&config)
            .await
            .map_err(|source| StartError::Registry {
                uri,
                source: Box::new(source),
            })?;
    Ok(Arc::new(registry))
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
