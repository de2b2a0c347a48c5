//! Building a cluster's local config service.

use std::sync::Arc;

use framedb_core::memory::InMemoryFence;
use framedb_core::{Fence, ProvisioningService};
use framedb_k8s::KubeFleet;
use tokio::sync::watch;

use super::clients::{client_from_file, client_in_cluster, local_stores};
use super::{Adapters, App, Fleet, Reconciler, StartError, bind, check_open, server_tls};
use crate::api::local::{LocalState, Stopping, local_router};
use crate::api::{ApiToken, Bounds};
use crate::settings::LocalSettings;

impl App {
    /// The local config service of `settings.cluster`: its internal API on its own
    /// registry, doing the Kubernetes work through the cluster's kubeconfig file or,
    /// without one, the pod's service account. `adapters.registry` replaces the registry
    /// the settings name; `adapters.clusters` is not used (a local service drives its
    /// own cluster).
    ///
    /// # Errors
    /// When the registry or the cluster cannot be configured, or the address not bound.
    pub async fn local(settings: &LocalSettings, adapters: Adapters) -> Result<App, StartError> {
        let cluster = &settings.cluster.cluster_id;
        let timeouts = settings.kube.timeouts();
        let client = match &settings.cluster.kubeconfig {
            Some(path) => client_from_file(cluster, path, timeouts).await?,
            None => client_in_cluster(cluster, timeouts, " and no --kubeconfig given")?,
        };
        let fleet = KubeFleet::new(settings.layout.layout())
            .with_watch_window(timeouts.watch_window())
            .with_status_limits(settings.kube.status_limits())
            .with_cluster(cluster.clone(), client);
        let fleet = Arc::new(fleet);
        // The fence of undone creates lives beside the registry (a registry supplied by
        // the caller gets one in memory).
        let (registry, fence) = match adapters.registry {
            Some(registry) => (registry, Arc::new(InMemoryFence::new()) as Arc<dyn Fence>),
            None => local_stores(&settings.mongo).await?,
        };
        crate::tls::install_provider();
        check_open(&settings.serve)?;
        let token = ApiToken::of(settings.serve.token.as_ref());
        let (stopping, stop) = watch::channel(false);
        let metrics = crate::metrics::Metrics::new();
        let registry = metrics.measured_registry(registry);
        let clusters = metrics.measured_clusters(super::Clusters::of(fleet), "kubernetes");
        let service =
            ProvisioningService::new(registry, clusters.deployer.clone(), clusters.ports.clone())
                .with_tier("local")
                .with_fence(fence);
        let reconciler = Reconciler::of(
            &service,
            &settings.serve,
            "local",
            Fleet::Fixed(vec![cluster.clone()]),
            // One local service per cluster: nothing to share.
            None,
            &metrics,
        );
        let state = LocalState {
            cluster_id: cluster.clone(),
            service: service.clone(),
            deployer: clusters.deployer,
            ports: clusters.ports,
            token,
            stopping: Stopping::on(stop),
            streams: Arc::new(tokio::sync::Semaphore::new(
                settings.cluster.max_status_streams as usize,
            )),
            max_streams: settings.cluster.max_status_streams,
            scrape: crate::metrics::Scrape {
                metrics,
                service: service.clone(),
                fleet: Fleet::Fixed(vec![cluster.clone()]),
                token: ApiToken::of(settings.serve.metrics_token.as_ref()),
            },
        };
        let listener = bind(settings.serve.listen).await?;
        tracing::info!(cluster_id = %cluster, "local config service");
        Ok(App {
            name: format!("local config service of {cluster}"),
            listener,
            header_timeout: std::time::Duration::from_secs(settings.serve.header_timeout_secs),
            tls: server_tls(&settings.serve)?,
            router: local_router(state, Bounds::of(&settings.serve)),
            stopping,
            beside: Vec::new(),
            keep: None,
            reconciler,
            reconciles: super::ReconcileCount::default(),
            follower: None,
        })
    }
}
