//! The servers under test, built by FrameDB's own start-up code (`framedb_http::App`) the
//! way `framedb-server` builds them: simulated clusters, a local config service per
//! cluster, and the global API on top (the embedded default), or a shorter stack for
//! the breakdowns. Also the trivial axum handler that serves as the HTTP ceiling.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::Router;
use axum::routing::get;
use framedb_core::memory::InMemoryFleet;
use framedb_core::{ClusterId, InstanceRegistry, NodeId};
use framedb_http::settings::{GlobalSettings, LocalSettings, ServeSettings};
use framedb_http::{Adapters, App, Clusters, Running};
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
    /// Where the global API serves.
    pub address: SocketAddr,
    /// The simulated clusters, by id.
    pub clusters: Vec<(ClusterId, Simulator)>,
    _global: Running,
    _locals: Vec<Running>,
    _kubeconfigs: KubeconfigDir,
}

/// A directory of kubeconfig files, removed when dropped.
struct KubeconfigDir(Option<PathBuf>);

impl Drop for KubeconfigDir {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The ids `cluster-01`, `cluster-02`, ... (`count` of them).
pub fn cluster_ids(count: usize) -> Vec<ClusterId> {
    (1..=count)
        .map(|n| ClusterId::new(format!("cluster-{n:02}")).expect("a valid cluster id"))
        .collect()
}

/// Serves `app` (the ceiling, not FrameDB) on a free loopback port until the runtime
/// stops; returns the address.
///
/// # Errors
/// When no port can be bound.
pub async fn spawn_server(app: Router) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// Builds and serves the global API of `shape` on `registry`, over `clusters` simulated
/// clusters whose API answers each request after `latency`.
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
    let mut settings = GlobalSettings {
        serve: ServeSettings::loopback(),
        ..GlobalSettings::default()
    };
    let mut adapters = Adapters {
        registry: Some(registry),
        ..Adapters::default()
    };
    let mut sims = Vec::new();
    let mut locals = Vec::new();
    let mut dir = KubeconfigDir(None);
    if shape == Shape::NoCluster {
        let mut fleet = InMemoryFleet::new();
        for id in &ids {
            let nodes = ["node-a", "node-b"].map(|n| NodeId::new(n).expect("a node id"));
            fleet = fleet.with_cluster(id.clone(), nodes);
        }
        adapters.clusters = Some(Clusters::of(Arc::new(fleet)));
    } else {
        let path = std::env::temp_dir().join(format!(
            "framedb-bench-{}-{}",
            std::process::id(),
            STACKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)?;
        dir.0 = Some(path.clone());
        for id in &ids {
            let sim = Simulator::start(
                SimConfig::new(id.as_str())
                    .with_images(framedb_k8s::default_images())
                    .with_latency(latency),
            )
            .await?;
            let kubeconfig = path.join(format!("{id}.kubeconfig"));
            sim.write_kubeconfig(&kubeconfig)?;
            if shape == Shape::TwoTier {
                let local = LocalSettings {
                    serve: ServeSettings::loopback(),
                    ..LocalSettings::new(id.clone(), Some(kubeconfig))
                };
                let running = App::local(&local, Adapters::default()).await?.spawn();
                let url = running.url().parse()?;
                settings.fleet.local_services.push((id.clone(), url));
                locals.push(running);
            } else {
                settings.fleet.clusters.push((id.clone(), kubeconfig));
            }
            sims.push((id.clone(), sim));
        }
    }
    let global = App::global(&settings, adapters).await?.spawn();
    Ok(Stack {
        address: global.address(),
        clusters: sims,
        _global: global,
        _locals: locals,
        _kubeconfigs: dir,
    })
}

/// Numbers the stacks of this process, for their kubeconfig directories.
static STACKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

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
