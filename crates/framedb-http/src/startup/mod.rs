//! The composition root: the one place where the services are built from their
//! settings, and served. The binary, the tests and the benchmark all build a service
//! here, so what they run is what ships.
//!
//! - [`App::global`] builds the global service, [`App::local`] a cluster's local config
//!   service. Each resolves its adapters from its settings (MongoDB or memory, a
//!   kubeconfig file or the pod's service account, local services or direct clusters),
//!   unless [`Adapters`] supplies some; binds its address; and returns an [`App`]: its
//!   router, its bound address, and what it stops when it stops.
//! - [`App::run_until`] serves until a signal, [`App::spawn`] serves on a task and
//!   returns a [`Running`] handle that stops it.
//! - With no cluster named, [`App::global`] runs the embedded default (feature
//!   `simulator`): simulated clusters, and a local config service per cluster built by
//!   [`App::local`], each on its own loopback port, all in this process.

mod clients;
#[cfg(feature = "simulator")]
pub mod demo;
mod global;
mod local;
mod serve;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use framedb_core::{
    Chain, ClusterDeployer, ClusterDirectoryStore, ClusterId, InstanceRegistry, Lease,
    PortAllocator,
};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub use global::{GlobalParts, global_router};

use crate::settings::{Secret, ServeSettings};

/// Adapters that a caller supplies instead of those the settings name: a test's registry
/// that fails on purpose, a benchmark's in-memory clusters, an embedding program's own.
#[derive(Clone, Default)]
pub struct Adapters {
    /// The registry, instead of `--mongo-uri` or memory.
    pub registry: Option<Arc<dyn InstanceRegistry>>,
    /// The clusters (global role only), instead of local services or kubeconfigs.
    pub clusters: Option<Clusters>,
    /// Where the cluster directory keeps what setup records (global role, with local
    /// services only), instead of `--mongo-uri` or memory.
    pub directory_store: Option<Arc<dyn ClusterDirectoryStore>>,
    /// The lease that lets one global replica reconcile at a time, instead of the one
    /// in `--mongo-uri`'s database (a registry in memory, one replica's own, needs none).
    pub lease: Option<Arc<dyn Lease>>,
}

/// Clusters, as the provisioning service uses them.
#[derive(Clone)]
pub struct Clusters {
    /// Deploys instances and reads their status.
    pub deployer: Arc<dyn ClusterDeployer>,
    /// Finds free node ports.
    pub ports: Arc<dyn PortAllocator>,
}

impl Clusters {
    /// Both ports from one adapter.
    pub fn of<A: ClusterDeployer + PortAllocator + 'static>(adapter: Arc<A>) -> Self {
        Self {
            deployer: adapter.clone(),
            ports: adapter,
        }
    }
}

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// An address could not be bound, a file not written, or serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An adapter could not be built.
    #[error("{0}")]
    Domain(#[from] framedb_core::Error),
    /// The registry could not be reached or prepared.
    #[error("the registry cannot be used (MongoDB at {uri})")]
    Registry {
        /// The connection string without its credentials.
        uri: String,
        /// Why.
        #[source]
        source: Box<framedb_mongo::Error>,
    },
    /// A cluster's configuration could not be loaded.
    #[error("cluster '{cluster}': {message}")]
    Cluster {
        /// The cluster.
        cluster: ClusterId,
        /// What went wrong.
        message: String,
    },
    /// The settings name nothing this build can run.
    #[error("{0}")]
    Settings(String),
    /// TLS could not be configured.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// A service, built and bound, not serving yet.
pub struct App {
    name: String,
    listener: TcpListener,
    router: Router,
    /// How long a client may take to send a request's headers.
    header_timeout: std::time::Duration,
    /// The TLS configuration, when it serves over TLS.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// Turns true when the service begins to shut down (its status streams end then).
    stopping: watch::Sender<bool>,
    /// Services that run beside this one and stop after it (the embedded default's local
    /// services), in order.
    beside: Vec<Running>,
    /// What must live as long as the service (the embedded default's clusters).
    keep: Option<Box<dyn Send>>,
    /// The reconcile passes it runs while it serves, and how often.
    reconciler: Option<Reconciler>,
    /// How many of them have run.
    reconciles: ReconcileCount,
    /// Follows every cluster's statuses while it serves (the global's).
    follower: Option<Follower>,
}

/// How many reconcile passes a service has finished (whatever they found), shared with
/// whoever wants to watch it: a test waiting for passes, a probe.
#[derive(Debug, Clone, Default)]
pub struct ReconcileCount(Arc<std::sync::atomic::AtomicU64>);

impl ReconcileCount {
    /// The passes finished so far.
    pub fn passes(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn finished_one(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Reconcile passes of one service's registry, every `every` and once at start-up.
struct Reconciler {
    service: framedb_core::ProvisioningService,
    every: std::time::Duration,
    /// How old a record without a port must be before a pass takes its create for dead.
    create_deadline: std::time::Duration,
    tier: &'static str,
    /// The clusters whose running instances it records again when the registry lost
    /// them.
    clusters: Fleet,
    /// Held before each pass, when replicas share the registry.
    lease: Option<Arc<dyn Lease>>,
    /// This replica's name on the lease.
    holder: String,
    /// Where its passes are counted.
    metrics: crate::metrics::Metrics,
}

/// Where the clusters a reconciler reads (and `/metrics` counts) come from.
#[derive(Clone)]
pub(crate) enum Fleet {
    /// These (a local service's own cluster, the global's `--cluster`s).
    Fixed(Vec<ClusterId>),
    /// The global's cluster directory, as it is at each pass.
    Directory(Arc<crate::remote::ClusterDirectory>),
}

impl Fleet {
    /// The clusters as they are now.
    pub(crate) fn clusters(&self) -> Vec<ClusterId> {
        match self {
            Self::Fixed(clusters) => clusters.clone(),
            Self::Directory(directory) => directory.clusters(),
        }
    }
}

/// How often the follower looks for clusters it does not follow yet (added to the
/// directory since): following a followed cluster is a map lookup.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Follows the statuses of every cluster of the fleet from start-up on, so that a
/// (re)started global has each cluster's status book in memory before the first read
/// asks for it, and a read across clusters (a query, a cluster's instances) costs no call
/// to any of them. Each book is then kept by its own stream for as long as the service
/// runs ([`framedb_core::live::LiveBook`]).
struct Follower {
    service: framedb_core::ProvisioningService,
    clusters: Fleet,
}

impl Follower {
    async fn run(self, mut stopping: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(FOLLOW_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stopping.wait_for(|stop| *stop) => break,
                _ = ticks.tick() => {}
            }
            for cluster in self.clusters.clusters() {
                // A cluster that cannot be followed now (gone from the directory since) is
                // tried again at the next tick; reads then go to it directly.
                if let Err(error) = self.service.follow_statuses(&cluster).await {
                    tracing::debug!(cluster_id = %cluster, cause = %Chain(&error),
                        "the cluster's statuses cannot be followed yet");
                }
            }
        }
    }
}

impl Reconciler {
    /// The reconciler `serve` asks for on `service` (none with an interval of 0).
    fn of(
        service: &framedb_core::ProvisioningService,
        serve: &ServeSettings,
        tier: &'static str,
        clusters: Fleet,
        lease: Option<Arc<dyn Lease>>,
        metrics: &crate::metrics::Metrics,
    ) -> Option<Self> {
        (serve.reconcile_interval_secs > 0).then(|| Self {
            service: service.clone(),
            every: std::time::Duration::from_secs(serve.reconcile_interval_secs),
            create_deadline: std::time::Duration::from_secs(serve.create_deadline_secs),
            tier,
            clusters,
            lease,
            metrics: metrics.clone(),
            // Unique per process: a restarted replica is a new holder, and waits for the
            // term of its former self to end (or finds it released).
            holder: framedb_core::Stamp::generate()
                .map_or_else(|_| format!("pid-{}", std::process::id()), |s| s.to_string()),
        })
    }

    /// Runs the passes until `stopping` turns true, counting them in `count`.
    async fn run(self, mut stopping: watch::Receiver<bool>, count: ReconcileCount) {
        let mut ticks = tokio::time::interval(self.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stopping.wait_for(|stop| *stop) => break,
                _ = ticks.tick() => {}
            }
            if self.holds_lease().await {
                self.pass().await;
                count.finished_one();
            }
        }
        if let Some(lease) = &self.lease
            && let Err(error) = lease.release(&self.holder).await
        {
            tracing::warn!(tier = self.tier, cause = %Chain(&error),
                "the reconcile lease could not be given up; another replica takes it when \
                 its term ends");
        }
    }

    /// Whether this replica may run a pass now: it has the lease (taken or renewed for
    /// three intervals, so that a replica that dies hands over within three), or there
    /// is none to share.
    async fn holds_lease(&self) -> bool {
        let Some(lease) = &self.lease else {
            return true;
        };
        match lease.hold(&self.holder, self.every.saturating_mul(3)).await {
            Ok(true) => true,
            Ok(false) => {
                tracing::debug!(
                    tier = self.tier,
                    "another replica holds the reconcile lease"
                );
                false
            }
            Err(error) => {
                tracing::warn!(tier = self.tier, cause = %Chain(&error),
                    "the reconcile lease could not be read; the next pass tries again");
                false
            }
        }
    }

    /// One pass, logged.
    async fn pass(&self) {
        let clusters = self.clusters.clusters();
        let started = std::time::Instant::now();
        let result = self
            .service
            .reconcile(self.create_deadline, &clusters)
            .await;
        self.metrics.reconciled(&result, started.elapsed());
        match result {
            Ok(repairs) if repairs.any() => tracing::info!(
                tier = self.tier,
                rebuilt = repairs.rebuilt,
                completed = repairs.completed,
                settled = repairs.settled,
                deleted = repairs.deleted,
                restored = repairs.restored,
                caught_up = repairs.caught_up,
                failed = repairs.failed,
                "reconcile pass repaired records"
            ),
            Ok(_) => tracing::debug!(tier = self.tier, "reconcile pass: nothing to repair"),
            Err(error) => tracing::warn!(tier = self.tier, cause = %Chain(&error),
                    "reconcile pass failed; the next one tries again"),
        }
    }
}

impl App {
    /// The address it is bound to.
    ///
    /// # Panics
    /// Never: the listener is bound.
    pub fn address(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// `http://{address}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address())
    }

    /// Its router (cheap to clone), to drive without a socket.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// How many reconcile passes it has run (none before it serves; always none with
    /// `--reconcile-interval-secs 0`).
    pub fn reconcile_count(&self) -> ReconcileCount {
        self.reconciles.clone()
    }

    /// Wraps its router, e.g. in a layer that counts requests.
    #[must_use]
    pub fn map_router(mut self, wrap: impl FnOnce(Router) -> Router) -> Self {
        self.router = wrap(self.router);
        self
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish (a create in
    /// progress completes rather than leaving an orphan), then stops what runs beside it.
    ///
    /// # Errors
    /// When the listener fails.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self {
            name,
            listener,
            router,
            header_timeout,
            tls,
            stopping,
            beside,
            keep,
            reconciler,
            reconciles,
            follower,
        } = self;
        let reconciling = reconciler
            .map(|reconciler| tokio::spawn(reconciler.run(stopping.subscribe(), reconciles)));
        if let Some(follower) = follower {
            tokio::spawn(follower.run(stopping.subscribe()));
        }
        let address = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(%address, "{name} listening on {scheme}://{address}");
        serve::serve(listener, router, header_timeout, tls, async move {
            shutdown.await;
            stopping.send_replace(true);
        })
        .await;
        if let Some(reconciling) = reconciling {
            // The flag is set: a pass under way finishes its record, then the loop ends.
            let _ = reconciling.await;
        }
        // After this service, so that its last calls to them were answered.
        for service in beside {
            if let Err(error) = service.stop().await {
                tracing::warn!(%error, "a service beside {name} failed");
            }
        }
        drop(keep);
        tracing::info!("{name} stopped");
        Ok(())
    }

    /// Serves on a task of the current runtime until [`Running::stop`].
    pub fn spawn(self) -> Running {
        let address = self.address();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.run_until(async {
            let _ = stopped.await;
        }));
        Running {
            address,
            stop,
            task,
        }
    }
}

/// A service serving on a task.
pub struct Running {
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// The address it serves on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://{address}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stops it gracefully and waits until it has.
    ///
    /// # Errors
    /// When serving failed.
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.stop.send(());
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Refuses an open API (no token) on an address other than loopback, unless the
/// operator said they mean it; warns about an open API on loopback.
fn check_open(serve: &ServeSettings) -> Result<(), StartError> {
    check_placeholders(&[
        ("--token (FRAMEDB_API_TOKEN)", serve.token.as_ref()),
        (
            "--metrics-token (FRAMEDB_METRICS_TOKEN)",
            serve.metrics_token.as_ref(),
        ),
    ])?;
    if serve
        .token
        .as_ref()
        .map(Secret::expose)
        .is_some_and(|token| !token.is_empty())
    {
        return Ok(());
    }
    if serve.listen.ip().is_loopback() {
        tracing::warn!("no --token: the API is open to anyone who can reach its loopback address");
        return Ok(());
    }
    if serve.allow_open_api {
        tracing::warn!(address = %serve.listen,
            "no --token and --allow-open-api: the API is open to anyone who can reach its address");
        return Ok(());
    }
    Err(StartError::Settings(format!(
        "refusing to serve an API without a token on {}, an address other than loopback: set \
         --token (FRAMEDB_API_TOKEN), or --allow-open-api if the API is meant to be open",
        serve.listen
    )))
}

/// Refuses a token still holding the placeholder of deploy/'s example Secret: a value
/// published in this repository opens nothing.
fn check_placeholders(tokens: &[(&str, Option<&Secret>)]) -> Result<(), StartError> {
    const PLACEHOLDER: &str = "REPLACE-ME";
    for (name, token) in tokens {
        if token.is_some_and(|token| token.expose().contains(PLACEHOLDER)) {
            return Err(StartError::Settings(format!(
                "refusing to start: {name} is still the example's placeholder ({PLACEHOLDER}...); \
                 set a random value (e.g. `openssl rand -base64 32`)"
            )));
        }
    }
    Ok(())
}

/// The server TLS configuration `serve` names, if any.
fn server_tls(serve: &ServeSettings) -> Result<Option<Arc<rustls::ServerConfig>>, StartError> {
    match (&serve.tls_cert, &serve.tls_key) {
        (Some(cert), Some(key)) => Ok(Some(crate::tls::server(cert, key)?)),
        (None, None) => Ok(None),
        // Serving plain HTTP when TLS was half asked for would be a silent downgrade.
        _ => Err(StartError::Settings(
            "--tls-cert and --tls-key go together: give both, or neither".into(),
        )),
    }
}

/// Binds `address`, naming the error after it.
async fn bind(address: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(address).await.map_err(|error| {
        StartError::Io(std::io::Error::new(
            error.kind(),
            format!("cannot listen on {address}: {error}"),
        ))
    })
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
