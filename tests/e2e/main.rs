//! End-to-end tests: the server's own `serve` on a real socket, driven by an HTTP client
//! as users drive it, on simulated clusters and on MongoDB.

mod mongo;
mod proxy;
mod two_tier;
mod walkthrough;

use framedb_core::ProvisioningService;
use framedb_http::server::serve;
use framedb_http::{AppState, router};
use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Where the instance endpoints live, relative to the server's URL.
pub const BASE: &str = "global/framedb/persistent-instances";

/// A FrameDB API server on a free loopback port.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Serves the global API on `service`.
    pub async fn start(service: ProvisioningService) -> Self {
        Self::serve(router(AppState::new(service)), "127.0.0.1:0").await
    }

    /// Serves `app` on `address` (port 0 for a free one).
    pub async fn serve(app: axum::Router, address: &str) -> Self {
        let listener = TcpListener::bind(address).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, app, async {
            let _ = stopped.await;
        }));
        Self {
            url,
            stop: Some(stop),
            task,
        }
    }

    /// `{url}/{path}`.
    pub fn at(&self, path: &str) -> String {
        format!("{}/{path}", self.url)
    }

    /// Stops it gracefully and waits until it has.
    pub async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
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
