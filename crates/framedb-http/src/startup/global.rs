//! Building the global service.

use std::sync::Arc;

use axum::Router;
use framedb_core::{ClusterId, InstanceRegistry, ProvisioningService};
use framedb_k8s::KubeFleet;
use tokio::sync::watch;

use super::clients::{client_from_file, client_in_cluster, stores};
use super::{
    Adapters, App, Clusters, Fleet, Follower, Reconciler, StartError, bind, check_open, server_tls,
};
use crate::api::{ApiToken, AppState, Bounds, router};
use crate::metrics::{Metrics, Scrape};
use crate::remote::directory::LocalToken;
use crate::remote::{ClusterDirectory, RemoteClusters};
use crate::settings::GlobalSettings;

/// What the global API runs on.
pub struct GlobalParts {
    /// The registry.
    pub registry: Arc<dyn InstanceRegistry>,
    /// The clusters.
    pub clusters: Clusters,
    /// Where `/framedb-config/setup` records the local services it installs: the
    /// directory of the remote clusters, when the clusters are reached through them.
    pub directory: Option<Arc<ClusterDirectory>>,
}

/// The global API on `parts`, with the token and timeouts of `settings`, and metrics of
/// its own.
pub fn global_router(settings: &GlobalSettings, parts: GlobalParts) -> Router {
    let metrics = Metrics::new();
    let parts = GlobalParts {
        registry: metrics.measured_registry(parts.registry),
        clusters: metrics.measured_clusters(parts.clusters, "supplied"),
        directory: parts.directory,
    };
    measured_router(settings, parts, metrics)
}

/// The global API on `parts`, whose ports `metrics` measures already.
fn measured_router(settings: &GlobalSettings, parts: GlobalParts, metrics: Metrics) -> Router {
    let GlobalParts {
        registry,
        clusters,
        directory,
    } = parts;
    let fleet = Fleet::of(settings, directory.as_ref());
    let service = ProvisioningService::new(registry, clusters.deployer, clusters.ports);
    let bounds = Bounds::of(&settings.serve);
    let scrape = Scrape {
        metrics,
        service: service.clone(),
        fleet,
        token: ApiToken::of(settings.serve.metrics_token.as_ref()),
    };
    router(
        AppState {
            service,
            // Setup installs local services that lay instances out as this global does.
            config_service: Arc::new(framedb_k8s::config_service::Settings {
                instance_layout: settings.layout.layout(),
                status_limits: settings.kube.status_limits(),
                server_image: settings.fleet.server_image.clone(),
                mongo_image: settings.fleet.mongo_image.clone(),
                ..Default::default()
            }),
            kube_timeouts: settings.kube.timeouts(),
            directory,
            token: ApiToken::of(settings.serve.token.as_ref()),
            allow_insecure_clusters: settings.fleet.allow_insecure_clusters,
            allow_setup_replace: settings.fleet.allow_setup_replace,
            scrape,
        },
        bounds,
    )
}

impl App {
    /// The global service: the public API on the registry, with clusters reached through
    /// their local config services (`--local-service`, `--known-cluster`, and those setup
    /// records, kept in the directory's store beside the registry: MongoDB with
    /// `--mongo-uri`, else memory), or driven directly (`--cluster`, `--in-cluster`), or, with none named,
    /// the embedded default. `adapters` replaces what the settings name.
    ///
    /// # Errors
    /// When the registry or a cluster cannot be configured, or an address not bound.
    pub async fn global(settings: &GlobalSettings, adapters: Adapters) -> Result<App, StartError> {
        crate::tls::install_provider();
        check_open(&settings.serve)?;
        super::check_placeholders(&[(
            "--local-token (FRAMEDB_LOCAL_TOKEN)",
            settings.fleet.local_token.as_ref(),
        )])?;
        // A fleet that setup records in memory is gone at the next restart (and differs
        // on every replica), while its instances run on.
        if settings.fleet.setup_only
            && settings.mongo.uri.is_none()
            && adapters.directory_store.is_none()
        {
            return Err(StartError::Settings(
                "--setup-only needs --mongo-uri: the clusters setup records must outlive a \
                 restart and be the same on every replica"
                    .into(),
            ));
        }
        let mut settings = settings.clone();
        if settings.fleet.runs_embedded() && adapters.clusters.is_none() {
            // The embedded default's clusters are simulated on loopback, over plain http.
            settings.fleet.allow_insecure_clusters = true;
        }
        let settings = &settings;
        let (registry, stored, lease) = match adapters.registry {
            Some(registry) => (registry, adapters.directory_store, adapters.lease),
            None => {
                let stores = stores(&settings.mongo, "global").await?;
                (
                    stores.registry,
                    Some(adapters.directory_store.unwrap_or(stores.directory)),
                    adapters.lease.or(stores.lease),
                )
            }
        };
        let mut beside = Vec::new();
        let mut keep: Option<Box<dyn Send>> = None;
        let configured_token = settings.local_token().and_then(LocalToken::new);
        let (clusters, directory) = match adapters.clusters {
            Some(clusters) => (clusters, None),
            None if settings.fleet.is_direct() => (direct_clusters(settings).await?, None),
            None => {
                let store = match stored {
                    Some(store) => store,
                    None => stores(&settings.mongo, "global").await?.directory,
                };
                let directory = Arc::new(ClusterDirectory::with_store(store));
                for (id, url) in &settings.fleet.local_services {
                    directory.insert(id.clone(), url.clone(), configured_token.clone());
                }
                for id in &settings.fleet.known_clusters {
                    let url = ClusterDirectory::default_url(id).map_err(|message| {
                        StartError::Cluster {
                            cluster: id.clone(),
                            message,
                        }
                    })?;
                    directory.insert(id.clone(), url, configured_token.clone());
                }
                if settings.fleet.runs_embedded() {
                    let demo = embedded(settings, &directory).await?;
                    beside = demo.locals;
                    keep = Some(demo.keep);
                }
                // After the flags' entries, which win over stored ones.
                directory.load().await?;
                if settings.fleet.directory_refresh_secs > 0 {
                    directory.keep_refreshed(std::time::Duration::from_secs(
                        settings.fleet.directory_refresh_secs,
                    ));
                }
                let roots = match &settings.fleet.local_ca_file {
                    Some(path) => crate::tls::certificates("the local services' CA file", path)?,
                    None => Vec::new(),
                };
                let remote = RemoteClusters::new(
                    directory.clone(),
                    settings.fleet.remote_timeouts(),
                    &roots,
                )?;
                (Clusters::of(Arc::new(remote)), Some(directory))
            }
        };
        let metrics = Metrics::new();
        let via = if directory.is_some() {
            "local_service"
        } else if settings.fleet.is_direct() {
            "kubernetes"
        } else {
            "supplied"
        };
        let clusters = metrics.measured_clusters(clusters, via);
        let registry = metrics.measured_registry(registry);
        let reconciled = ProvisioningService::new(
            registry.clone(),
            clusters.deployer.clone(),
            clusters.ports.clone(),
        );
        // The global records again what runs on every cluster it knows.
        let fleet = Fleet::of(settings, directory.as_ref());
        let parts = GlobalParts {
            registry,
            clusters,
            directory,
        };
        let listener = bind(settings.serve.listen).await?;
        Ok(App {
            name: "framedb-server".into(),
            listener,
            header_timeout: std::time::Duration::from_secs(settings.serve.header_timeout_secs),
            tls: server_tls(&settings.serve)?,
            router: measured_router(settings, parts, metrics.clone()),
            stopping: watch::channel(false).0,
            beside,
            keep,
            reconciler: Reconciler::of(
                &reconciled,
                &settings.serve,
                "global",
                fleet.clone(),
                lease,
                &metrics,
            ),
            reconciles: super::ReconcileCount::default(),
            follower: Some(Follower {
                service: reconciled.clone(),
                clusters: fleet,
            }),
        })
    }
}

impl Fleet {
    /// The global's clusters: those of its directory, or those it drives directly.
    fn of(settings: &GlobalSettings, directory: Option<&Arc<ClusterDirectory>>) -> Self {
        match directory {
            Some(directory) => Fleet::Directory(directory.clone()),
            None => {
                let mut known: Vec<ClusterId> = settings
                    .fleet
                    .clusters
                    .iter()
                    .map(|(id, _)| id.clone())
                    .collect();
                known.extend(settings.fleet.in_cluster.clone());
                Fleet::Fixed(known)
            }
        }
    }
}

/// The clusters of `--cluster` and `--in-cluster`, driven directly.
async fn direct_clusters(settings: &GlobalSettings) -> Result<Clusters, StartError> {
    let timeouts = settings.kube.timeouts();
    let mut fleet = KubeFleet::new(settings.layout.layout())
        .with_watch_window(timeouts.watch_window())
        .with_status_limits(settings.kube.status_limits());
    for (id, path) in &settings.fleet.clusters {
        let client = client_from_file(id, path, timeouts).await?;
        tracing::info!(cluster_id = %id, kubeconfig = %path.display(), "managing cluster");
        fleet = fleet.with_cluster(id.clone(), client);
    }
    if let Some(id) = &settings.fleet.in_cluster {
        let client = client_in_cluster(id, timeouts, "")?;
        tracing::info!(cluster_id = %id, "managing the cluster this server runs in");
        fleet = fleet.with_cluster(id.clone(), client);
    }
    Ok(Clusters::of(Arc::new(fleet)))
}

/// The embedded default's local services and what they run on.
struct Embedded {
    locals: Vec<super::Running>,
    keep: Box<dyn Send>,
}

#[cfg(feature = "simulator")]
async fn embedded(
    settings: &GlobalSettings,
    directory: &ClusterDirectory,
) -> Result<Embedded, StartError> {
    let (fleet, locals) = super::demo::start_embedded(settings, directory).await?;
    Ok(Embedded {
        locals,
        keep: Box::new(fleet),
    })
}

#[cfg(not(feature = "simulator"))]
async fn embedded(_: &GlobalSettings, _: &ClusterDirectory) -> Result<Embedded, StartError> {
    Err(StartError::Settings(
        "no cluster is named and this build has no simulator (cargo feature `simulator`): \
         name clusters with --local-service, --known-cluster, --cluster or --in-cluster"
            .into(),
    ))
}
