//! The servers under test, assembled from FrameDB's public pieces the way
//! `framedb-server` assembles them: simulated clusters, a local config service per
//! cluster, and the global API on top (the embedded default), or a shorter stack for
//! the breakdowns. Also the trivial axum handler that serves as the HTTP ceiling.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::Router;
use axum::routing::get;
use framedb_core::memory::{InMemoryFleet, InMemoryRegistry};
use framedb_core::{ClusterId, InstanceRegistry, NodeId, ProvisioningService};
use framedb_http::remote::{ClusterDirectory, RemoteClusters, RemoteTimeouts};
use framedb_http::{ApiToken, AppState, LocalState, Stopping, local_router, router};
use framedb_k8s::{KubeFleet, Layout};
use framedb_kube_sim::{SimConfig, Simulator};
use tokio::net::TcpListener;

/// How the global API reaches its clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// The embedded default: global API → local config service (HTTP) → simulated
    /// Kubernetes API (HTTP), as `framedb-server` runs with no flags.
    TwoTier,
    /// Single tier: the global API drives the simulated clusters through kube-rs
    /// directly (as with `--cluster`).
    Direct,
    /// No cluster at all: the in-memory fleet answers statuses in-process; what is left
    /// is the HTTP layer and the registry.
    NoCluster,
}

/// Servers and clusters that must live as long as the API is used.
pub struct Stack {
    /// The global API.
    pub app: Router,
    /// The simulated clusters, by id.
    pub clusters: Vec<(ClusterId, Simulator)>,
    _local_services: Vec<tokio::task::JoinHandle<()>>,
}

/// The ids `cluster-01`, `cluster-02`, ... (`count` of them).
pub fn cluster_ids(count: usize) -> Vec<ClusterId> {
    (1..=count)
        .map(|n| ClusterId::new(format!("cluster-{n:02}")).expect("a valid cluster id"))
        .collect()
}

/// Serves `app` on a free loopback port until the runtime stops; returns the address.
///
/// # Errors
/// When no port can be bound.
pub async fn spawn_server(app: Router) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = framedb_http::server::serve(listener, app, std::future::pending()).await;
    });
    Ok(addr)
}

/// Builds the global API of `shape` on `registry`, over `clusters` simulated clusters
/// whose API answers each request after `latency`.
///
/// # Errors
/// When a simulator or a server cannot start.
pub async fn build(
    shape: Shape,
    registry: Arc<dyn InstanceRegistry>,
    clusters: usize,
    latency: Duration,
) -> Result<Stack> {
    let ids = cluster_ids(clusters);
    if shape == Shape::NoCluster {
        let mut fleet = InMemoryFleet::new();
        for id in &ids {
            let nodes = ["node-a", "node-b"].map(|n| NodeId::new(n).expect("a node id"));
            fleet = fleet.with_cluster(id.clone(), nodes);
        }
        let fleet = Arc::new(fleet);
        let service = ProvisioningService::new(registry, fleet.clone(), fleet);
        return Ok(Stack {
            app: router(AppState::new(service)),
            clusters: Vec::new(),
            _local_services: Vec::new(),
        });
    }
    let mut sims = Vec::new();
    for id in &ids {
        let config = SimConfig::new(id.as_str()).with_latency(latency);
        sims.push((id.clone(), Simulator::start(config).await?));
    }
    let mut direct = KubeFleet::new(Layout::default());
    let directory = Arc::new(ClusterDirectory::new());
    let mut local_services = Vec::new();
    for (id, sim) in &sims {
        let client = sim.client().await;
        direct = direct.with_cluster(id.clone(), client.clone());
        if shape == Shape::TwoTier {
            let fleet =
                Arc::new(KubeFleet::new(Layout::default()).with_cluster(id.clone(), client));
            let state = LocalState {
                cluster_id: id.clone(),
                service: ProvisioningService::new(
                    Arc::new(InMemoryRegistry::new()),
                    fleet.clone(),
                    fleet.clone(),
                )
                .with_tier("local"),
                deployer: fleet.clone(),
                ports: fleet,
                token: ApiToken::none(),
                stopping: Stopping::default(),
            };
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}", listener.local_addr()?);
            directory.insert(id.clone(), url.parse()?);
            local_services.push(tokio::spawn(async move {
                let app = local_router(state);
                let _ = framedb_http::server::serve(listener, app, std::future::pending()).await;
            }));
        }
    }
    let service = match shape {
        Shape::TwoTier => {
            let remote = Arc::new(RemoteClusters::new(
                directory,
                None,
                RemoteTimeouts::default(),
            )?);
            ProvisioningService::new(registry, remote.clone(), remote)
        }
        _ => {
            let direct = Arc::new(direct);
            ProvisioningService::new(registry, direct.clone(), direct)
        }
    };
    Ok(Stack {
        app: router(AppState::new(service)),
        clusters: sims,
        _local_services: local_services,
    })
}

/// The HTTP ceiling: one route that answers `body` (a JSON object) as axum's `Json`
/// does, serializing it on every request.
pub fn ceiling(body: serde_json::Value) -> Router {
    let body = Arc::new(body);
    Router::new().route(
        "/global/framedb/persistent-instances/{id}",
        get(move || {
            let body = body.clone();
            async move { axum::Json(body.as_ref().clone()) }
        }),
    )
}
