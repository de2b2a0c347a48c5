//! The HTTP API's behaviour: every endpoint and error code through `oneshot`, the same API
//! over a real socket, and the `framedb-server` binary as a user starts it.

mod binary;
mod config_service;
mod credentials;
mod deploy;
mod endpoints;
mod errors;
mod fleet;
mod least_privilege;
mod metrics;
mod openapi;
mod remote;
mod socket;
mod trust;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use framedb_core::memory::{InMemoryFleet, InMemoryRegistry};
use framedb_core::{ClusterDeployer, InstanceRegistry, PortAllocator};
use framedb_http::settings::{GlobalSettings, ServeSettings};
use framedb_http::startup::{GlobalParts, global_router};
use framedb_http::{Adapters, App, Clusters, Running};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Collects every log line written while it is installed on this thread.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// Installs it as this thread's subscriber, at TRACE, until the guard drops.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Where the instance endpoints live.
pub const BASE: &str = "/global/framedb/persistent-instances";

/// The token the test apps give local config services.
pub const LOCAL_TOKEN: &str = "test-local-token";

/// A router on a fresh in-memory registry and fleet (instances ready at once), with the
/// adapters returned so that tests can look behind the API.
pub struct TestApp {
    /// The router under test.
    pub router: Router,
    /// Its registry.
    pub registry: Arc<InMemoryRegistry>,
    /// Its clusters.
    pub fleet: Arc<InMemoryFleet>,
}

impl Default for TestApp {
    /// The in-memory adapters, as the embedded default runs them.
    fn default() -> Self {
        let registry = Arc::new(InMemoryRegistry::new());
        let fleet = Arc::new(InMemoryFleet::demo(Duration::ZERO));
        let router = app(registry.clone(), fleet.clone(), fleet.clone());
        Self {
            router,
            registry,
            fleet,
        }
    }
}

impl TestApp {
    /// The in-memory adapters, as the embedded default runs them.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates an instance from [`create_body`].
    pub async fn create(&self, id: &str, cluster: &str, node: &str) -> (StatusCode, Value) {
        self.send("POST", BASE, Some(create_body(id, cluster, node)))
            .await
    }

    /// Sends one request with an optional JSON body.
    pub async fn send(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map(|b| b.to_string());
        send_raw(
            &self.router,
            method,
            uri,
            body.as_deref(),
            Some("application/json"),
        )
        .await
    }
}

/// The global API's router on the given adapters, with the default settings.
pub fn app(
    registry: Arc<dyn InstanceRegistry>,
    deployer: Arc<dyn ClusterDeployer>,
    ports: Arc<dyn PortAllocator>,
) -> Router {
    let parts = GlobalParts {
        registry,
        clusters: Clusters { deployer, ports },
        directory: None,
    };
    // The tests' clusters are simulated on loopback, as the embedded default's are.
    let mut settings = GlobalSettings::default();
    settings.fleet.allow_insecure_clusters = true;
    global_router(&settings, parts)
}

/// The global API on the embedded default's in-memory adapters, requiring `token`.
pub fn app_with_token(token: &str) -> Router {
    let fleet = Arc::new(InMemoryFleet::demo(Duration::ZERO));
    let mut settings = GlobalSettings::default();
    settings.serve.token = Some(token.into());
    let parts = GlobalParts {
        registry: Arc::new(InMemoryRegistry::new()),
        clusters: Clusters::of(fleet),
        directory: None,
    };
    global_router(&settings, parts)
}

/// The global service on the given adapters, serving on a free loopback port until the
/// handle is stopped or dropped.
pub async fn serve(
    registry: Arc<dyn InstanceRegistry>,
    deployer: Arc<dyn ClusterDeployer>,
    ports: Arc<dyn PortAllocator>,
) -> Running {
    let settings = GlobalSettings {
        serve: ServeSettings::loopback(),
        ..GlobalSettings::default()
    };
    let adapters = Adapters {
        registry: Some(registry),
        clusters: Some(Clusters { deployer, ports }),
        directory_store: None,
        lease: None,
    };
    App::global(&settings, adapters).await.unwrap().spawn()
}

/// An HTTP client for the tests; rustls needs its provider installed first.
pub fn http_client() -> reqwest::ClientBuilder {
    framedb_http::tls::install_provider();
    reqwest::Client::builder()
}

/// Sends a request through `oneshot` and returns the status and the JSON body.
pub async fn send_raw(
    router: &Router,
    method: &str,
    uri: &str,
    body: Option<&str>,
    content_type: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{method} {uri}: body is not JSON ({e}): {bytes:?}"));
    (status, value)
}

/// A valid create body.
pub fn create_body(id: &str, cluster: &str, node: &str) -> Value {
    json!({
        "framedb_id": id, "node_id": node, "cluster_id": cluster,
        "storage_size": "2Gi", "metadata": {"team": "analytics"}
    })
}

/// The `framedb_id`s of a `{data: [Instance]}` answer, in order.
pub fn ids(body: &Value) -> Vec<String> {
    let data = body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no list: {body}"));
    data.iter()
        .map(|instance| instance["framedb_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Checks the failure envelope and returns its message.
pub fn assert_failure(body: &Value, code: &str) -> String {
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"], code, "{body}");
    let message = body["message"].as_str().expect("a message").to_owned();
    assert!(message.len() > 10, "the message says something: {body}");
    message
}
