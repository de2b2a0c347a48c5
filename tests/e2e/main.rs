//! End-to-end tests: services built by the server's own start-up code (`App`) on real
//! sockets, driven by an HTTP client as users drive them, on simulated clusters and on
//! MongoDB.

mod mongo;
mod proxy;
mod two_tier;
mod walkthrough;

use std::path::PathBuf;
use std::time::Duration;

use framedb_core::ClusterId;
use framedb_http::settings::{GlobalSettings, LocalSettings, MongoSettings, ServeSettings};
use framedb_http::{Adapters, App, ReconcileCount, Running};
use framedb_kube_sim::{SimFleet, Simulator};
use reqwest::{Client, Method, StatusCode};
use serde_json::Value;

/// Where the instance endpoints live, relative to the server's URL.
pub const BASE: &str = "global/framedb/persistent-instances";

/// A FrameDB service serving on a loopback port, built by the server's own start-up code.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// `None` once stopped.
    running: Option<Running>,
    address: std::net::SocketAddr,
    /// The reconcile passes it has run.
    pub reconciles: ReconcileCount,
}

impl Server {
    /// Serves the global service that `settings` describe (on `adapters`).
    pub async fn global(settings: &GlobalSettings, adapters: Adapters) -> Self {
        Self::serve(App::global(settings, adapters).await.unwrap())
    }

    /// Serves the local config service that `settings` describe (on `adapters`).
    pub async fn local(settings: &LocalSettings, adapters: Adapters) -> Self {
        Self::serve(App::local(settings, adapters).await.unwrap())
    }

    /// Serves a built service.
    pub fn serve(app: App) -> Self {
        let reconciles = app.reconcile_count();
        let running = app.spawn();
        Self {
            url: running.url(),
            address: running.address(),
            running: Some(running),
            reconciles,
        }
    }

    /// The address it serves (or served) on.
    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }

    /// `{url}/{path}`.
    pub fn at(&self, path: &str) -> String {
        format!("{}/{path}", self.url)
    }

    /// Stops it gracefully and waits until it has.
    pub async fn stop(mut self) {
        self.halt().await;
    }

    /// Stops it gracefully, keeping the handle (to start another on its address).
    pub async fn halt(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.unwrap();
        }
    }
}

/// The demo fleet's simulated clusters (`cluster-01`, `cluster-02`, nodes `node-a` and
/// `node-b`), with their kubeconfigs in a directory of this test's own.
pub struct Clusters {
    /// The clusters, in order.
    pub fleet: SimFleet,
    dir: PathBuf,
}

impl Clusters {
    /// Starts them; pods become ready after `ready_after`, and their clocks run as the
    /// demo's do ([`SimFleet::DEMO_TIME_SCALE`]). `test` names the directory.
    pub async fn demo(test: &str, ready_after: Duration) -> Self {
        let images = framedb_k8s::deployed_images(
            &framedb_k8s::Layout::default(),
            &framedb_k8s::config_service::Settings::default(),
        );
        let fleet = SimFleet::demo(ready_after, SimFleet::DEMO_TIME_SCALE, images)
            .await
            .unwrap();
        let dir = std::env::temp_dir().join(format!("framedb-e2e-{test}-{}", std::process::id()));
        fleet.write_kubeconfigs(&dir).unwrap();
        Self { fleet, dir }
    }

    /// Each cluster's id and simulator.
    pub fn each(&self) -> impl Iterator<Item = (ClusterId, &Simulator)> {
        self.fleet
            .clusters()
            .iter()
            .map(|sim| (ClusterId::new(sim.name()).unwrap(), sim))
    }

    /// The kubeconfig file of `cluster`.
    pub fn kubeconfig(&self, cluster: &ClusterId) -> PathBuf {
        self.dir.join(format!("{cluster}.kubeconfig"))
    }

    /// A global service that drives these clusters directly (as with `--cluster`), on a
    /// free loopback port, with `mongo` as its registry.
    pub fn direct(&self, mongo: MongoSettings) -> GlobalSettings {
        let mut settings = GlobalSettings {
            serve: ServeSettings::loopback(),
            mongo,
            ..GlobalSettings::default()
        };
        for (id, _) in self.each() {
            let path = self.kubeconfig(&id);
            settings.fleet.clusters.push((id, path));
        }
        settings
    }
}

impl Drop for Clusters {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The registry on `database` of the MongoDB at `uri`, waiting `timeout` for it.
pub fn mongo_settings(uri: &str, database: &str, timeout: Duration) -> MongoSettings {
    MongoSettings {
        uri: Some(uri.into()),
        database: database.to_owned(),
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap(),
        ..MongoSettings::default()
    }
}

/// An HTTP client for the tests; rustls needs its provider installed first.
pub fn http_client() -> reqwest::ClientBuilder {
    framedb_http::tls::install_provider();
    Client::builder()
}

/// Sends a request and returns the status and the JSON body.
pub async fn call(
    client: &Client,
    method: Method,
    url: String,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
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

/// The MongoDB the tests use (`MONGODB_URI`, which `scripts/test.sh` sets). Without it a
/// test returns early with a note, except under CI (`CI=true`), where it fails: MongoDB
/// tests are never skipped silently there.
pub fn mongo_uri() -> Option<String> {
    match std::env::var("MONGODB_URI") {
        Ok(uri) if !uri.is_empty() => Some(uri),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "MONGODB_URI is not set; under CI the MongoDB tests must run (scripts/test.sh starts a server)"
            )
        }
        _ => {
            eprintln!(
                "note: MONGODB_URI is not set; skipping this MongoDB test (scripts/test.sh sets it)"
            );
            None
        }
    }
}
