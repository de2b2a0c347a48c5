//! The `framedb-server` process: its configuration (flags with environment fallbacks), the
//! adapters it runs on, and serving with graceful shutdown. `main` only parses, sets up
//! logging and calls [`run`]; tests call the same pieces.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use framedb_core::ProvisioningService;
use framedb_core::memory::{InMemoryFleet, InMemoryRegistry};
use tokio::net::TcpListener;

use crate::api::{AppState, router};

/// The server's configuration.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "framedb-server",
    version,
    about = "FrameDB: persistent TiDB instances on Kubernetes"
)]
pub struct Config {
    /// Address and port to serve the API on (port 0 picks a free one).
    #[arg(long, env = "FRAMEDB_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Embedded default only: how long a new instance stays Provisioning before it is
    /// Running, in milliseconds.
    #[arg(long, env = "FRAMEDB_DEMO_READY_AFTER_MS", default_value_t = 2000)]
    pub demo_ready_after_ms: u64,
}

/// The embedded default: an in-memory registry and the simulated clusters `cluster-01`
/// and `cluster-02` (nodes `node-a`, `node-b`). Needs nothing installed; keeps nothing.
pub fn embedded_default(ready_after: Duration) -> (ProvisioningService, Arc<InMemoryFleet>) {
    let fleet = Arc::new(InMemoryFleet::demo(ready_after));
    let service = ProvisioningService::new(
        Arc::new(InMemoryRegistry::new()),
        fleet.clone(),
        fleet.clone(),
    );
    (service, fleet)
}

/// Builds the adapters that `config` names, binds, and serves until `shutdown` resolves.
///
/// # Errors
/// When the address cannot be bound or the server fails.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (service, fleet) = embedded_default(Duration::from_millis(config.demo_ready_after_ms));
    let clusters: Vec<String> = fleet
        .cluster_ids()
        .iter()
        .map(ToString::to_string)
        .collect();
    tracing::info!(
        clusters = %clusters.join(", "),
        nodes = "node-a, node-b",
        "embedded default: in-memory registry and simulated clusters; nothing is persisted \
         and nothing outside this process is touched"
    );
    let listener = TcpListener::bind(config.listen).await?;
    serve(listener, router(AppState::new(service)), shutdown).await
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
    let address = listener.local_addr()?;
    tracing::info!(%address, "framedb-server listening on http://{address}");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("framedb-server stopped");
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
