//! The `framedb-server` process: its configuration (flags with environment fallbacks), the
//! adapters it runs on, and serving with graceful shutdown. `main` only parses, sets up
//! logging and calls [`run`]; tests call the same pieces.
//!
//! Roles: `global` (the default) serves the public API on the registry and reaches each
//! cluster through its local config service (`--local-service`, `--known-cluster`, or
//! clusters recorded by setup), or drives clusters directly (`--cluster`, `--in-cluster`).
//! `local` serves one cluster's internal API. Without cluster flags the global role runs
//! the embedded default: a local service per simulated Kubernetes cluster, all in-process,
//! driven through the real kube-rs adapters and the real HTTP client adapter.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use framedb_core::memory::InMemoryRegistry;
use framedb_core::{ClusterId, InstanceRegistry, ProvisioningService};
use framedb_k8s::kubeconfig::{self, Timeouts};
use framedb_k8s::{KubeFleet, Layout, Storage};
use framedb_kube_sim::{SimConfig, Simulator};
use framedb_mongo::{MongoConfig, MongoRegistry, redact_uri};
use tokio::net::TcpListener;

use crate::api::local::{LocalState, Stopping, local_router};
use crate::api::{ApiToken, AppState, router};
use crate::remote::{ClusterDirectory, RemoteClusters, RemoteTimeouts};

/// The server's configuration.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "framedb-server",
    version,
    about = "FrameDB: persistent TiDB instances on Kubernetes"
)]
pub struct Config {
    /// The role: `global` (the default) or `local`.
    #[command(subcommand)]
    pub role: Option<Role>,

    /// Bearer token this server's API requires on every route but /healthz. Without it
    /// the API is open, and the log says so.
    #[arg(long, global = true, env = "FRAMEDB_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Global role: a cluster's local config service, as `CLUSTER_ID=URL` (repeatable;
    /// commas in the variable).
    #[arg(long = "local-service", global = true, env = "FRAMEDB_LOCAL_SERVICES", value_delimiter = ',', value_parser = parse_local_service)]
    pub local_services: Vec<(ClusterId, url::Url)>,

    /// Global role: a cluster whose local config service answers at its default
    /// address, http://CLUSTER_ID:32566 (repeatable).
    #[arg(
        long = "known-cluster",
        global = true,
        env = "FRAMEDB_KNOWN_CLUSTERS",
        value_delimiter = ','
    )]
    pub known_clusters: Vec<ClusterId>,

    /// Global role: the token local config services require (defaults to --token).
    #[arg(
        long,
        global = true,
        env = "FRAMEDB_LOCAL_TOKEN",
        hide_env_values = true
    )]
    pub local_token: Option<String>,

    /// Global role: milliseconds to wait for a local config service to accept a
    /// connection.
    #[arg(
        long,
        global = true,
        env = "FRAMEDB_LOCAL_CONNECT_TIMEOUT_MS",
        default_value_t = 2000
    )]
    pub local_connect_timeout_ms: u64,

    /// Global role: milliseconds a call to a local config service may take.
    #[arg(
        long,
        global = true,
        env = "FRAMEDB_LOCAL_TIMEOUT_MS",
        default_value_t = 30000
    )]
    pub local_timeout_ms: u64,

    /// Address and port to serve the API on (port 0 picks a free one).
    #[arg(
        long,
        global = true,
        env = "FRAMEDB_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,

    /// A real cluster to manage, as `CLUSTER_ID=KUBECONFIG_FILE` (repeat the flag, or
    /// separate with commas in the variable). Without this and `--in-cluster`, the server
    /// runs two simulated clusters.
    #[arg(long = "cluster", global = true, env = "FRAMEDB_CLUSTERS", value_delimiter = ',', value_parser = parse_cluster)]
    pub clusters: Vec<(ClusterId, PathBuf)>,

    /// Manage the cluster the server runs in, under this cluster id (service-account
    /// credentials).
    #[arg(long, global = true, env = "FRAMEDB_IN_CLUSTER_ID")]
    pub in_cluster: Option<ClusterId>,

    /// MongoDB connection string of the registry (credentials in it are never logged).
    /// Without it the registry is in memory.
    #[arg(long, global = true, env = "FRAMEDB_MONGO_URI", hide_env_values = true)]
    pub mongo_uri: Option<String>,

    /// MongoDB database of the registry.
    #[arg(
        long,
        global = true,
        env = "FRAMEDB_MONGO_DATABASE",
        default_value = "framedb"
    )]
    pub mongo_database: String,

    /// Milliseconds to wait for MongoDB to be reachable (server selection, connect).
    #[arg(
        long,
        global = true,
        env = "FRAMEDB_MONGO_TIMEOUT_MS",
        default_value_t = 5000
    )]
    pub mongo_timeout_ms: u64,

    /// Milliseconds a registry query may run on the server.
    #[arg(
        long,
        global = true,
        env = "FRAMEDB_MONGO_QUERY_TIMEOUT_MS",
        default_value_t = 10000
    )]
    pub mongo_query_timeout_ms: u64,

    /// Namespace of the instances' objects.
    #[arg(
        long,
        global = true,
        env = "FRAMEDB_NAMESPACE",
        default_value = "framedb-storage"
    )]
    pub namespace: String,

    /// TiDB release the PD, TiKV and TiDB images run.
    #[arg(
        long,
        global = true,
        env = "FRAMEDB_TIDB_VERSION",
        default_value = "v8.5.1"
    )]
    pub tidb_version: String,

    /// Image repository prefix of `pd`, `tikv` and `tidb`.
    #[arg(
        long,
        global = true,
        env = "FRAMEDB_IMAGE_PREFIX",
        default_value = "pingcap"
    )]
    pub image_prefix: String,

    /// Node label whose value is an instance's `node_id`.
    #[arg(
        long,
        env = "FRAMEDB_NODE_LABEL",
        default_value = "kubernetes.io/hostname"
    )]
    pub node_label: String,

    /// Storage class of the instances' volumes (the cluster's default when unset).
    #[arg(
        long,
        env = "FRAMEDB_STORAGE_CLASS",
        conflicts_with = "local_volume_root"
    )]
    pub storage_class: Option<String>,

    /// For clusters without a dynamic provisioner: put each volume in a `local` PV under
    /// this directory of the instance's node.
    #[arg(long, global = true, env = "FRAMEDB_LOCAL_VOLUME_ROOT")]
    pub local_volume_root: Option<String>,

    /// Seconds to wait for a cluster's API to accept a connection.
    #[arg(
        long,
        global = true,
        env = "FRAMEDB_KUBE_CONNECT_TIMEOUT_SECS",
        default_value_t = 5
    )]
    pub kube_connect_timeout_secs: u64,

    /// Seconds to wait for a cluster's API to answer a request.
    #[arg(
        long,
        global = true,
        env = "FRAMEDB_KUBE_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub kube_timeout_secs: u64,

    /// Embedded default only: where the simulated clusters' kubeconfigs are written.
    #[arg(long, global = true, env = "FRAMEDB_STATE_DIR", default_value_os_t = std::env::temp_dir().join("framedb"))]
    pub state_dir: PathBuf,

    /// Embedded default only: how long a new instance's pod takes to become ready, in
    /// milliseconds.
    #[arg(
        long,
        global = true,
        env = "FRAMEDB_DEMO_READY_AFTER_MS",
        default_value_t = 2000
    )]
    pub demo_ready_after_ms: u64,
}

/// The server's role.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Role {
    /// The global service: the registry and the public API (the default).
    Global,
    /// A cluster's local config service: the internal API that does the Kubernetes work
    /// for one cluster, with its own registry.
    Local(LocalArgs),
}

/// The local role's own flags.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalArgs {
    /// The id of the cluster this service runs in.
    #[arg(long, env = "FRAMEDB_CLUSTER_ID")]
    pub cluster_id: ClusterId,

    /// Reach the cluster through this kubeconfig file instead of the pod's service
    /// account.
    #[arg(long, env = "FRAMEDB_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

fn parse_local_service(text: &str) -> Result<(ClusterId, url::Url), String> {
    let (id, url) = text
        .split_once('=')
        .ok_or_else(|| "expected CLUSTER_ID=URL".to_owned())?;
    let id = ClusterId::new(id).map_err(|e| e.to_string())?;
    let url =
        crate::remote::directory::service_url(url).map_err(|e| format!("cluster '{id}': {e}"))?;
    Ok((id, url))
}

fn parse_cluster(text: &str) -> Result<(ClusterId, PathBuf), String> {
    let (id, path) = text
        .split_once('=')
        .ok_or_else(|| format!("expected CLUSTER_ID=KUBECONFIG_FILE, got '{text}'"))?;
    let id = ClusterId::new(id).map_err(|e| e.to_string())?;
    Ok((id, PathBuf::from(path)))
}

impl Config {
    fn layout(&self) -> Layout {
        Layout {
            namespace: self.namespace.clone(),
            image_prefix: self.image_prefix.clone(),
            tidb_version: self.tidb_version.clone(),
            node_label: self.node_label.clone(),
            storage: match &self.local_volume_root {
                Some(root) => Storage::Local { root: root.clone() },
                None => Storage::Dynamic {
                    storage_class: self.storage_class.clone(),
                },
            },
        }
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(self.kube_connect_timeout_secs),
            read: Duration::from_secs(self.kube_timeout_secs),
        }
    }

    fn embedded(&self) -> bool {
        self.clusters.is_empty()
            && self.in_cluster.is_none()
            && self.local_services.is_empty()
            && self.known_clusters.is_empty()
    }

    fn remote_timeouts(&self) -> RemoteTimeouts {
        RemoteTimeouts {
            connect: Duration::from_millis(self.local_connect_timeout_ms),
            request: Duration::from_millis(self.local_timeout_ms),
        }
    }

    /// The token local services require: `--local-token`, else this server's own.
    fn local_token(&self) -> Option<String> {
        self.local_token.clone().or_else(|| self.token.clone())
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The address could not be bound, or serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An adapter could not be built.
    #[error("{0}")]
    Domain(#[from] framedb_core::Error),
    /// The registry could not be reached or prepared.
    #[error("the registry cannot be used: {0}")]
    Registry(String),
    /// A cluster's configuration could not be loaded.
    #[error("cluster '{cluster}': {message}")]
    Cluster {
        /// The cluster.
        cluster: ClusterId,
        /// What went wrong.
        message: String,
    },
}

/// The embedded default's clusters: `cluster-01` and `cluster-02` (nodes `node-a` and
/// `node-b`) simulated on loopback and driven through the kube-rs adapters. Keep it alive
/// as long as services built on it are used.
pub struct Embedded {
    /// The adapters that reach the simulated clusters.
    pub fleet: Arc<KubeFleet>,
    /// The clusters, by id.
    pub clusters: Vec<(ClusterId, Simulator)>,
    layout: Layout,
    clients: Vec<(ClusterId, kube::Client)>,
}

impl Embedded {
    /// Starts the simulated clusters; pods become ready after `ready_after`.
    ///
    /// # Errors
    /// When a simulator cannot bind its port or its client cannot be built.
    pub async fn start(ready_after: Duration, layout: Layout) -> Result<Self, StartError> {
        let mut fleet = KubeFleet::new(layout.clone());
        let mut clusters = Vec::new();
        let mut clients = Vec::new();
        for name in ["cluster-01", "cluster-02"] {
            let id = ClusterId::new(name).expect("a valid cluster id");
            let simulator =
                Simulator::start(SimConfig::new(name).with_pod_ready_after(ready_after)).await?;
            let client = kubeconfig::client(simulator.kubeconfig(), Timeouts::default())
                .await
                .map_err(|error| StartError::Cluster {
                    cluster: id.clone(),
                    message: error.to_string(),
                })?;
            fleet = fleet.with_cluster(id.clone(), client.clone());
            clients.push((id.clone(), client));
            clusters.push((id, simulator));
        }
        Ok(Self {
            fleet: Arc::new(fleet),
            clusters,
            layout,
            clients,
        })
    }

    /// The adapters of one cluster alone, as that cluster's local service has them.
    pub fn fleet_of(&self, cluster: &ClusterId) -> Option<Arc<KubeFleet>> {
        let (id, client) = self.clients.iter().find(|(id, _)| id == cluster)?;
        let fleet = KubeFleet::new(self.layout.clone()).with_cluster(id.clone(), client.clone());
        Some(Arc::new(fleet))
    }

    /// A provisioning service on these clusters and `registry`.
    pub fn service(&self, registry: Arc<dyn InstanceRegistry>) -> ProvisioningService {
        ProvisioningService::new(registry, self.fleet.clone(), self.fleet.clone())
    }

    /// Writes each cluster's kubeconfig to `dir/{cluster_id}.kubeconfig`, for kubectl.
    ///
    /// # Errors
    /// When the files cannot be written.
    pub fn write_kubeconfigs(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        self.clusters
            .iter()
            .map(|(id, simulator)| {
                let path = dir.join(format!("{id}.kubeconfig"));
                simulator.write_kubeconfig(&path)?;
                Ok(path)
            })
            .collect()
    }
}

/// The client configuration of an operator's kubeconfig file. It may use any mechanism
/// kube-rs supports (exec plugins included); only kubeconfigs sent over the API are
/// restricted to inline data.
async fn kubeconfig_file(cluster: &ClusterId, path: &Path) -> Result<kube::Config, StartError> {
    let failed = |message: String| StartError::Cluster {
        cluster: cluster.clone(),
        message,
    };
    let file = kube::config::Kubeconfig::read_from(path)
        .map_err(|e| failed(format!("cannot read kubeconfig {}: {e}", path.display())))?;
    kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| failed(format!("kubeconfig {} is not usable: {e}", path.display())))
}

/// A client with FrameDB's timeouts.
fn client_of(
    cluster: &ClusterId,
    mut client_config: kube::Config,
    timeouts: Timeouts,
) -> Result<kube::Client, StartError> {
    timeouts.apply(&mut client_config);
    kube::Client::try_from(client_config).map_err(|e| StartError::Cluster {
        cluster: cluster.clone(),
        message: e.to_string(),
    })
}

/// Clients for the real clusters that `config` names.
async fn real_fleet(config: &Config) -> Result<KubeFleet, StartError> {
    let timeouts = config.timeouts();
    let mut fleet = KubeFleet::new(config.layout()).with_watch_window(timeouts.watch_window());
    for (id, path) in &config.clusters {
        let client = client_of(id, kubeconfig_file(id, path).await?, timeouts)?;
        tracing::info!(cluster_id = %id, kubeconfig = %path.display(), "managing cluster");
        fleet = fleet.with_cluster(id.clone(), client);
    }
    if let Some(id) = &config.in_cluster {
        let failed = |message: String| StartError::Cluster {
            cluster: id.clone(),
            message,
        };
        let client_config = kube::Config::incluster()
            .map_err(|e| failed(format!("not running in a cluster: {e}")))?;
        let client = client_of(id, client_config, timeouts)?;
        tracing::info!(cluster_id = %id, "managing the cluster this server runs in");
        fleet = fleet.with_cluster(id.clone(), client);
    }
    Ok(fleet)
}

/// The registry `config` names: MongoDB with `--mongo-uri`, else in memory.
async fn registry(config: &Config) -> Result<Arc<dyn InstanceRegistry>, StartError> {
    let Some(uri) = &config.mongo_uri else {
        tracing::warn!(
            "registry: in memory (no --mongo-uri); every record is lost when the server stops"
        );
        return Ok(Arc::new(InMemoryRegistry::new()));
    };
    let timeout = Duration::from_millis(config.mongo_timeout_ms);
    let mongo = MongoConfig::new(uri.clone())
        .database(config.mongo_database.clone())
        .server_selection_timeout(timeout)
        .connect_timeout(timeout)
        .query_timeout(Duration::from_millis(config.mongo_query_timeout_ms));
    let registry = MongoRegistry::connect(&mongo).await.map_err(|error| {
        StartError::Registry(format!("{error} (MongoDB at {})", redact_uri(uri)))
    })?;
    Ok(Arc::new(registry))
}

/// Builds the adapters that `config` names, binds, and serves until `shutdown` resolves.
///
/// # Errors
/// When an address cannot be bound, the registry or a cluster cannot be configured, or
/// serving fails.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let token = ApiToken::new(config.token.clone());
    if !token.is_set() {
        tracing::warn!("no --token: the API is open to anyone who can reach its address");
    }
    match &config.role {
        Some(Role::Local(local)) => run_local(&config, local, token, shutdown).await,
        Some(Role::Global) | None => run_global(&config, token, shutdown).await,
    }
}

/// The local role: the internal API for one cluster, on its own registry.
async fn run_local(
    config: &Config,
    local: &LocalArgs,
    token: ApiToken,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let cluster = &local.cluster_id;
    let client_config = match &local.kubeconfig {
        Some(path) => kubeconfig_file(cluster, path).await?,
        None => kube::Config::incluster().map_err(|e| StartError::Cluster {
            cluster: cluster.clone(),
            message: format!("not running in a cluster and no --kubeconfig given: {e}"),
        })?,
    };
    let timeouts = config.timeouts();
    let client = client_of(cluster, client_config, timeouts)?;
    let fleet = KubeFleet::new(config.layout())
        .with_watch_window(timeouts.watch_window())
        .with_cluster(cluster.clone(), client);
    let fleet = Arc::new(fleet);
    let registry = registry(config).await?;
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let state = local_state(
        cluster.clone(),
        registry,
        fleet,
        token,
        Stopping::on(stopping),
    );
    tracing::info!(cluster_id = %cluster, "local config service");
    let listener = TcpListener::bind(config.listen).await?;
    let shutdown = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    serve(listener, local_router(state), shutdown).await?;
    Ok(())
}

fn local_state(
    cluster_id: ClusterId,
    registry: Arc<dyn InstanceRegistry>,
    fleet: Arc<KubeFleet>,
    token: ApiToken,
    stopping: Stopping,
) -> LocalState {
    LocalState {
        cluster_id,
        service: ProvisioningService::new(registry, fleet.clone(), fleet.clone())
            .with_tier("local"),
        deployer: fleet.clone(),
        ports: fleet,
        token,
        stopping,
    }
}

/// The global role: the public API on the registry, with clusters reached through their
/// local services (or directly with `--cluster` / `--in-cluster`, or, by default, the
/// embedded two-tier topology on simulated clusters).
async fn run_global(
    config: &Config,
    token: ApiToken,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let global = Global::build(config, token).await?;
    let listener = TcpListener::bind(config.listen).await?;
    let served = serve(listener, router(global.state.clone()), shutdown).await;
    global.stop().await;
    served?;
    Ok(())
}

/// The global role, built and ready to serve: its API state, and what runs beside it (the
/// embedded default's simulated clusters and local services).
pub struct Global {
    /// The state of the global API; serve it with [`router`].
    pub state: AppState,
    stop: tokio::sync::watch::Sender<bool>,
    local_servers: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
    embedded: Option<Embedded>,
}

impl Global {
    /// Builds what `config` describes for the global role (`token` guards its API).
    ///
    /// # Errors
    /// When the registry or a cluster cannot be configured, or a local service cannot bind.
    pub async fn build(config: &Config, token: ApiToken) -> Result<Self, StartError> {
        let registry = registry(config).await?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut embedded = None;
        let mut local_servers = Vec::new();
        let mut directory = None;
        let service = if !config.clusters.is_empty() || config.in_cluster.is_some() {
            let fleet = Arc::new(real_fleet(config).await?);
            ProvisioningService::new(registry, fleet.clone(), fleet)
        } else {
            let clusters = Arc::new(ClusterDirectory::new());
            for (id, url) in &config.local_services {
                clusters.insert(id.clone(), url.clone());
            }
            for id in &config.known_clusters {
                let url =
                    ClusterDirectory::default_url(id).map_err(|message| StartError::Cluster {
                        cluster: id.clone(),
                        message,
                    })?;
                clusters.insert(id.clone(), url);
            }
            if config.embedded() {
                let ready_after = Duration::from_millis(config.demo_ready_after_ms);
                let started = Embedded::start(ready_after, config.layout()).await?;
                let paths = started.write_kubeconfigs(&config.state_dir)?;
                for ((id, simulator), path) in started.clusters.iter().zip(&paths) {
                    let fleet = started.fleet_of(id).expect("an embedded cluster");
                    let state = local_state(
                        id.clone(),
                        Arc::new(InMemoryRegistry::new()),
                        fleet,
                        ApiToken::new(config.local_token()),
                        Stopping::on(stopped.clone()),
                    );
                    let listener = TcpListener::bind("127.0.0.1:0").await?;
                    let url = crate::remote::directory::service_url(&format!(
                        "http://{}",
                        listener.local_addr()?
                    ))
                    .expect("a loopback URL");
                    let mut stopped = stopped.clone();
                    let name = format!("local config service of {id}");
                    local_servers.push(tokio::spawn(async move {
                        let until_stopped = async move {
                            let _ = stopped.wait_for(|stop| *stop).await;
                        };
                        serve_as(&name, listener, local_router(state), until_stopped).await
                    }));
                    tracing::info!(cluster_id = %id, api = %simulator.url(), local_service = %url,
                    kubeconfig = %path.display(),
                    "simulated cluster (nodes node-a, node-b) with its local config service; watch it with: kubectl --kubeconfig {} get sts,svc,pvc,pods -A",
                    path.display());
                    clusters.insert(id.clone(), url);
                }
                tracing::info!(
                    "embedded default: the global service, and a local config service per \
                 simulated Kubernetes cluster, all in this process; nothing outside it is touched"
                );
                embedded = Some(started);
            }
            let remote = Arc::new(RemoteClusters::new(
                clusters.clone(),
                config.local_token(),
                config.remote_timeouts(),
            )?);
            directory = Some(clusters);
            ProvisioningService::new(registry, remote.clone(), remote)
        };
        let mut state = AppState::new(service);
        state.kube_timeouts = config.timeouts();
        state.token = token;
        state.directory = directory;
        state.local_token = config.local_token();
        Ok(Self {
            state,
            stop,
            local_servers,
            embedded,
        })
    }

    /// Stops the local services (after the global API, so that its last calls were
    /// answered) and the simulated clusters.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for server in self.local_servers {
            let _ = server.await;
        }
        drop(self.embedded);
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests in flight
/// finish (a create in progress completes rather than leaving an orphan).
///
/// # Errors
/// When the listener fails.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_as("framedb-server", listener, app, shutdown).await
}

/// [`serve`], naming the server `name` in its log lines.
async fn serve_as(
    name: &str,
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(%address, "{name} listening on http://{address}");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("{name} stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}
