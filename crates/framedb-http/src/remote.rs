//! The global tier's view of its clusters: a directory from `cluster_id` to the URL of the
//! cluster's local config service, and [`RemoteClusters`], the `ClusterDeployer` and
//! `PortAllocator` that call those services' internal API ([`crate::api::local`]) over
//! HTTP with one shared client.
//!
//! Every call has a connect timeout and a request timeout. All calls of the internal API
//! are idempotent (a repeated deploy completes the same deployment), so a call that could
//! not be delivered, or that the service answered 503, is tried again a few times; a call
//! that timed out is not, since it may still be running. Answers are mapped back to the
//! domain: unreachable → `Unavailable` (503), timeout → `Timeout` (504), and the local
//! service's refusals keep their code and message.
//!
//! Status reads are served from a per-cluster book ([`framedb_core::live`]) that a
//! background task keeps from the local service's status stream
//! (`GET /local/v1/statuses/watch`), so a read of a known instance costs no call. While
//! the stream is down, or says the local service's own watch is not in step, or does not
//! know an id yet, reads call `POST /local/v1/statuses` as before.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use framedb_core::live::{self, LiveBook, StatusBook, StatusFeed, answer_from};
use framedb_core::{
    ClusterDeployer, ClusterId, DeploymentSpec, Error, FramedbId, PortAllocator, Result,
    StatusReport,
};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::api::local::{BookLine, FreePorts, HEARTBEAT, PortAnswer};

/// The node port on which a cluster's config service answers (DESIGN.md §3).
pub const LOCAL_SERVICE_PORT: u16 = 32566;
/// Extra attempts for a call that could not be delivered.
const RETRIES: u32 = 2;

/// Where each known cluster's local config service answers.
#[derive(Debug, Default)]
pub struct ClusterDirectory {
    urls: RwLock<BTreeMap<ClusterId, String>>,
}

impl ClusterDirectory {
    /// An empty directory: every cluster is unknown.
    pub fn new() -> Self {
        Self::default()
    }

    /// The URL a cluster's service has unless configured otherwise:
    /// `http://{cluster_id}:32566`.
    pub fn default_url(cluster: &ClusterId) -> String {
        format!("http://{cluster}:{LOCAL_SERVICE_PORT}")
    }

    /// Records (or replaces) where `cluster`'s service answers.
    pub fn insert(&self, cluster: ClusterId, url: impl Into<String>) {
        let url = url.into().trim_end_matches('/').to_owned();
        tracing::info!(cluster_id = %cluster, %url, "local config service recorded");
        self.write().insert(cluster, url);
    }

    /// Whether `cluster` is known.
    pub fn contains(&self, cluster: &ClusterId) -> bool {
        self.urls
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(cluster)
    }

    /// Where `cluster`'s service answers, if the cluster is known.
    pub fn url(&self, cluster: &ClusterId) -> Option<String> {
        self.urls
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(cluster)
            .cloned()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<ClusterId, String>> {
        self.urls.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How long calls to local services may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteTimeouts {
    /// To open a connection.
    pub connect: Duration,
    /// For a whole call (a deploy does several Kubernetes requests).
    pub request: Duration,
}

impl Default for RemoteTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(30),
        }
    }
}

/// The clusters of the fleet, reached through their local config services.
pub struct RemoteClusters {
    http: reqwest::Client,
    /// For status streams: no limit on a whole call, but one on silence.
    streams: reqwest::Client,
    directory: std::sync::Arc<ClusterDirectory>,
    token: Option<String>,
    timeouts: RemoteTimeouts,
    books: RwLock<HashMap<ClusterId, Arc<LiveBook>>>,
}

/// The failure envelope of both APIs.
#[derive(Deserialize)]
struct Failure {
    message: String,
    error: String,
}

/// The success envelope with `data`.
#[derive(Deserialize)]
struct DataAnswer<T> {
    data: T,
}

impl RemoteClusters {
    /// Clients for the services in `directory`, sending `token` (the local services'
    /// token) on every call.
    ///
    /// # Errors
    /// [`Error::Internal`] when the HTTP client cannot be built.
    pub fn new(
        directory: std::sync::Arc<ClusterDirectory>,
        token: Option<String>,
        timeouts: RemoteTimeouts,
    ) -> Result<Self> {
        let built = |builder: reqwest::ClientBuilder| {
            builder.build().map_err(|error| {
                tracing::error!(%error, "cannot build the HTTP client for local services");
                Error::Internal("cannot build the HTTP client for local services".into())
            })
        };
        let http = built(
            reqwest::Client::builder()
                .connect_timeout(timeouts.connect)
                .timeout(timeouts.request),
        )?;
        let streams = built(
            reqwest::Client::builder()
                .connect_timeout(timeouts.connect)
                .read_timeout(HEARTBEAT * 3),
        )?;
        Ok(Self {
            http,
            streams,
            directory,
            token: token.filter(|t| !t.is_empty()),
            timeouts,
            books: RwLock::default(),
        })
    }

    /// `cluster`'s status book; the first call starts following its stream.
    fn feed(&self, cluster: &ClusterId) -> Result<StatusFeed> {
        if !self.directory.contains(cluster) {
            return Err(Error::ClusterNotFound(cluster.clone()));
        }
        // Every status read passes here: the common case takes a read lock only.
        let known = self
            .books
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(cluster)
            .cloned();
        let book = known.unwrap_or_else(|| {
            self.books
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(cluster.clone())
                .or_default()
                .clone()
        });
        Ok(book.feed(|book| {
            let stream = StatusStream {
                http: self.streams.clone(),
                directory: self.directory.clone(),
                token: self.token.clone(),
                cluster: cluster.clone(),
            };
            stream.keep(book)
        }))
    }

    /// Calls `method path` on `cluster`'s service (about instance `id`, if any) and reads
    /// a JSON answer of type `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        cluster: &ClusterId,
        id: Option<&FramedbId>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T> {
        let base = self
            .directory
            .url(cluster)
            .ok_or_else(|| Error::ClusterNotFound(cluster.clone()))?;
        let url = format!("{base}{path}");
        let mut attempt = 0;
        loop {
            let mut request = self.http.request(method.clone(), &url);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let outcome = request.send().await;
            let retry = match &outcome {
                Err(error) => error.is_connect(),
                Ok(response) => response.status() == StatusCode::SERVICE_UNAVAILABLE,
            };
            if retry && attempt < RETRIES {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                continue;
            }
            return match outcome {
                Ok(response) => self.answer(cluster, id, response).await,
                Err(error) => Err(self.transport_error(cluster, &error)),
            };
        }
    }

    async fn answer<T: DeserializeOwned>(
        &self,
        cluster: &ClusterId,
        id: Option<&FramedbId>,
        response: reqwest::Response,
    ) -> Result<T> {
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| self.transport_error(cluster, &error))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|error| {
                tracing::error!(cluster_id = %cluster, %error, "unreadable answer from a local service");
                Error::Internal(format!("cluster '{cluster}''s config service gave an unreadable answer"))
            });
        }
        let failure: Failure = serde_json::from_slice(&bytes).unwrap_or(Failure {
            message: format!("cluster '{cluster}''s config service answered {status}"),
            error: String::new(),
        });
        Err(domain_error(cluster, id, status, failure))
    }

    fn transport_error(&self, cluster: &ClusterId, error: &reqwest::Error) -> Error {
        tracing::warn!(cluster_id = %cluster, %error, "local config service call failed");
        if error.is_timeout() {
            Error::Timeout(format!(
                "cluster '{cluster}''s config service did not answer within {} s",
                self.timeouts.request.as_secs_f32()
            ))
        } else {
            Error::Unavailable(format!(
                "cluster '{cluster}''s config service cannot be reached"
            ))
        }
    }
}

/// The domain error a local service's refusal stands for.
fn domain_error(
    cluster: &ClusterId,
    id: Option<&FramedbId>,
    status: StatusCode,
    failure: Failure,
) -> Error {
    let Failure { message, error } = failure;
    match (error.as_str(), id) {
        ("instance_not_found", Some(id)) => Error::InstanceNotFound(id.clone()),
        ("cluster_not_found", _) => Error::ClusterNotFound(cluster.clone()),
        ("invalid_input" | "malformed_json", _) => Error::Invalid(message),
        ("ports_exhausted", _) => Error::PortsExhausted(cluster.clone()),
        ("port_taken", _) => Error::PortTaken {
            cluster: cluster.clone(),
            port: port_in(&message).unwrap_or_default(),
        },
        ("already_exists", _) => Error::Internal(format!(
            "cluster '{cluster}''s config service holds a different instance under this id"
        )),
        ("unavailable", _) => Error::Unavailable(message),
        ("timeout", _) => Error::Timeout(message),
        _ if status == StatusCode::UNAUTHORIZED => {
            tracing::error!(cluster_id = %cluster, "a local config service refused the global service's token");
            Error::Internal(format!(
                "cluster '{cluster}''s config service refused FrameDB's token"
            ))
        }
        _ => {
            tracing::error!(cluster_id = %cluster, %status, code = %error, %message, "a local config service failed");
            Error::Internal(format!("cluster '{cluster}''s config service failed"))
        }
    }
}

/// The port a `port_taken` message names.
fn port_in(message: &str) -> Option<u16> {
    message
        .split(|c: char| !c.is_ascii_digit())
        .find_map(|word| word.parse::<u16>().ok().filter(|p| *p >= 30000))
}

#[async_trait]
impl PortAllocator for RemoteClusters {
    async fn free_ports(&self, cluster: &ClusterId, skip: &[u16]) -> Result<Vec<u16>> {
        let skip: Vec<String> = skip.iter().map(u16::to_string).collect();
        let path = format!("/local/v1/ports/free?skip={}", skip.join(","));
        let answer: FreePorts = self.call(cluster, None, Method::GET, &path, None).await?;
        if answer.free.is_empty() {
            return Err(Error::PortsExhausted(cluster.clone()));
        }
        Ok(answer.free)
    }
}

#[async_trait]
impl ClusterDeployer for RemoteClusters {
    async fn deploy(&self, spec: &DeploymentSpec) -> Result<()> {
        let body = json!({
            "node_id": spec.node_id,
            "storage_size": spec.storage_size,
            "port": spec.port,
        });
        let path = format!("/local/v1/instances/{}", spec.framedb_id);
        let _: PortAnswer = self
            .call(
                &spec.cluster_id,
                Some(&spec.framedb_id),
                Method::PUT,
                &path,
                Some(&body),
            )
            .await?;
        Ok(())
    }

    async fn undeploy(&self, cluster: &ClusterId, id: &FramedbId) -> Result<()> {
        let path = format!("/local/v1/instances/{id}");
        match self
            .call::<Value>(cluster, Some(id), Method::DELETE, &path, None)
            .await
        {
            // Already gone from the cluster: the delete is done.
            Ok(_) | Err(Error::InstanceNotFound(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn statuses(
        &self,
        cluster: &ClusterId,
        ids: &[FramedbId],
    ) -> Result<HashMap<FramedbId, StatusReport>> {
        if let Some(answer) = answer_from(&self.feed(cluster)?.borrow(), ids) {
            return Ok(answer);
        }
        let body = json!({ "ids": ids });
        let answer: DataAnswer<HashMap<FramedbId, StatusReport>> = self
            .call(
                cluster,
                None,
                Method::POST,
                "/local/v1/statuses",
                Some(&body),
            )
            .await?;
        Ok(answer.data)
    }

    async fn follow(&self, cluster: &ClusterId) -> Result<StatusFeed> {
        self.feed(cluster)
    }
}

/// A cluster's status stream, followed into its book.
struct StatusStream {
    http: reqwest::Client,
    directory: Arc<ClusterDirectory>,
    token: Option<String>,
    cluster: ClusterId,
}

impl StatusStream {
    /// Keeps `book` current until every reader is gone.
    async fn keep(self, book: tokio::sync::watch::Sender<StatusBook>) {
        let stream = Arc::new(self);
        live::keep(book, stream.cluster.clone(), "status stream", |book| {
            let stream = stream.clone();
            async move { stream.follow(&book).await }
        })
        .await;
    }

    /// Opens the stream and copies each line into `book`; returns why it stopped.
    async fn follow(&self, book: &tokio::sync::watch::Sender<StatusBook>) -> String {
        let Some(base) = self.directory.url(&self.cluster) else {
            return "the cluster is no longer in the directory".into();
        };
        let mut request = self.http.get(format!("{base}/local/v1/statuses/watch"));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let mut response = match request.send().await {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => return format!("the local service answered {}", response.status()),
            Err(error) => return error.to_string(),
        };
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return "the local service closed it".into(),
                Err(error) => return error.to_string(),
            };
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let statuses = match serde_json::from_slice::<BookLine>(&line) {
                    Ok(line) => line.statuses,
                    Err(error) => return format!("an unreadable line: {error}"),
                };
                live::publish(book, statuses);
            }
        }
    }
}
