//! The global tier's view of its clusters: a directory from `cluster_id` to the URL of the
//! cluster's local config service ([`directory`]), and [`RemoteClusters`], the
//! `ClusterDeployer` and `PortAllocator` that call those services' internal API
//! ([`crate::wire`]) over HTTP with one shared client.
//!
//! Every call has a connect timeout and a request timeout. All calls of the internal API
//! are idempotent (a repeated deploy completes the same deployment), so a call that could
//! not be delivered, or that the service answered 503, is tried again a few times; a call
//! that timed out is not, since it may still be running. Answers are mapped back to the
//! domain: unreachable → `Unavailable` (503), timeout → `Timeout` (504), and the local
//! service's refusals keep their code and message; the cause ([`CallError`]) travels
//! with the domain error, for the log.
//!
//! Status reads are served from a per-cluster book ([`framedb_core::live`]) that a
//! background task keeps from the local service's status stream (`stream.rs`), so a read
//! of a known instance costs no call. While the stream is down, or says the local
//! service's own watch is not in step, or does not know an id yet, reads call
//! `POST /local/v1/statuses` as before.

pub mod directory;
mod errors;
mod stream;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use framedb_core::live::{LiveBook, StatusFeed, answer_from};
use framedb_core::{
    ClusterDeployer, ClusterId, Credentials, Deployed, DeploymentSpec, Error, Fault, FramedbId,
    PortAllocator, Removal, Result, Stamp, StatusReport, StorageSize,
};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

pub use directory::{ClusterDirectory, LOCAL_SERVICE_PORT};
pub use errors::CallError;

use crate::wire::{
    AmendRequest, Amended, Data, DeployRequest, Failure, FreePorts, HEARTBEAT, PortAnswer,
    StatusesRequest, paths,
};
use errors::domain_error;
use stream::StatusStream;

/// Extra attempts for a call that could not be delivered.
const RETRIES: u32 = 2;

/// The largest answer a local service may send to one call: a list of a full cluster's
/// instances, each with 64 KiB of metadata, fits.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// How many bytes of local answers all calls together may hold at once, in units of
/// [`BUDGET_UNIT`]: 32 MiB (about twice that resident at the peak, with the allocator's
/// copies as buffers grow). Each answer is capped at [`MAX_ANSWER`]; the budget caps their
/// sum, so that many concurrent calls to hostile peers cannot add up. A call that finds
/// it spent is 503: answers are kilobytes in normal work.
const ANSWER_BUDGET_UNITS: usize = 512;
/// The unit of [`ANSWER_BUDGET_UNITS`]: 64 KiB.
const BUDGET_UNIT: usize = 64 * 1024;

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
    directory: Arc<ClusterDirectory>,
    timeouts: RemoteTimeouts,
    books: RwLock<HashMap<ClusterId, Arc<LiveBook>>>,
    /// The bytes of answers being read, in units of [`BUDGET_UNIT`].
    budget: Arc<tokio::sync::Semaphore>,
}

impl RemoteClusters {
    /// Clients for the services in `directory`, sending each service the token the
    /// directory holds for its cluster, and no other. Services on `https://` URLs must
    /// show a certificate of the public web roots or of `extra_roots`.
    ///
    /// # Errors
    /// [`Error::Internal`] when the HTTP client cannot be built.
    pub fn new(
        directory: Arc<ClusterDirectory>,
        timeouts: RemoteTimeouts,
        extra_roots: &[rustls::pki_types::CertificateDer<'static>],
    ) -> Result<Self> {
        crate::tls::install_provider();
        let tls = crate::tls::client(extra_roots).map_err(|error| {
            let fault = Fault::new("the TLS configuration for local services is refused");
            Error::Internal(fault.because(error))
        })?;
        let built = |builder: reqwest::ClientBuilder| {
            builder
                .use_preconfigured_tls(tls.clone())
                .build()
                .map_err(|error| {
                    let cause = CallError::Client(error);
                    Error::Internal(
                        Fault::new("the HTTP client for local services cannot be built")
                            .because(cause),
                    )
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
            timeouts,
            books: RwLock::default(),
            budget: Arc::new(tokio::sync::Semaphore::new(ANSWER_BUDGET_UNITS)),
        })
    }

    /// Fails with `ClusterNotFound` unless the directory knows `cluster`, in its view or
    /// in its store (where another replica may have recorded it since this one loaded).
    async fn known(&self, cluster: &ClusterId) -> Result<()> {
        if self.directory.lookup(cluster).await? {
            Ok(())
        } else {
            Err(Error::ClusterNotFound(cluster.clone()))
        }
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
                cluster: cluster.clone(),
            };
            stream.keep(book)
        }))
    }

    /// The URL of `path` (with `query`) on `cluster`'s service.
    fn url(&self, cluster: &ClusterId, path: &str, query: Option<(&str, &str)>) -> Result<Url> {
        let base = self
            .directory
            .url(cluster)
            .ok_or_else(|| Error::ClusterNotFound(cluster.clone()))?;
        let mut url = base.join(path.trim_start_matches('/')).map_err(|error| {
            Error::Internal(
                Fault::new(format!(
                    "the URL of cluster '{cluster}''s config service is unusable"
                ))
                .because(CallError::Url(error)),
            )
        })?;
        if let Some((key, value)) = query {
            url.query_pairs_mut().append_pair(key, value);
        }
        Ok(url)
    }

    /// Calls `method url` on `cluster`'s service (about instance `id`, if any) and reads
    /// a JSON answer of type `T`.
    async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        cluster: &ClusterId,
        id: Option<&FramedbId>,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<T> {
        // This cluster's own token: no other cluster's service ever sees it.
        let token = self.directory.token(cluster);
        let mut attempt = 0;
        loop {
            let mut request = self.http.request(method.clone(), url.clone());
            if let Some(token) = &token {
                request = request.bearer_auth(token.expose());
            }
            // The caller's request id goes on, so that its work can be followed in the
            // local service's log too.
            if let Some(id) = crate::api::request_id::current() {
                request = request.header(&crate::api::request_id::X_REQUEST_ID, id);
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
                Ok(response) => self.answer(cluster, id, &method, &url, response).await,
                Err(source) => Err(self.transport_error(cluster, &method, &url, source)),
            };
        }
    }

    async fn answer<T: DeserializeOwned>(
        &self,
        cluster: &ClusterId,
        id: Option<&FramedbId>,
        method: &Method,
        url: &Url,
        mut response: reqwest::Response,
    ) -> Result<T> {
        let status = response.status();
        let mut bytes = Vec::new();
        // Held until the answer is parsed: the budget counts what this call holds.
        let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if bytes.len() + chunk.len() <= MAX_ANSWER => {
                    // What the buffer will hold once the chunk is in: its capacity, which
                    // grows by doubling, is what the memory is.
                    let need = bytes.len() + chunk.len();
                    let capacity = bytes
                        .capacity()
                        .max(need.next_power_of_two().min(MAX_ANSWER));
                    bytes.reserve_exact(capacity - bytes.len());
                    let wanted = bytes.capacity().div_ceil(BUDGET_UNIT);
                    let have = held.as_ref().map_or(0, |permit| permit.num_permits());
                    if wanted > have {
                        let more = u32::try_from(wanted - have).unwrap_or(u32::MAX);
                        let Ok(permit) = self.budget.clone().try_acquire_many_owned(more) else {
                            return Err(Error::Unavailable(Fault::new(format!(
                                "answers of local services in flight fill the global service's \
                                 memory budget; cluster '{cluster}''s was not read"
                            ))));
                        };
                        match &mut held {
                            Some(held) => held.merge(permit),
                            None => held = Some(permit),
                        }
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(Some(_)) => {
                    let cause = CallError::TooLarge { url: url.clone() };
                    let message =
                        format!("cluster '{cluster}''s config service gave an oversized answer");
                    return Err(Error::BadGateway(Fault::new(message).because(cause)));
                }
                Ok(None) => break,
                Err(source) => {
                    return Err(self.transport_error(cluster, method, url, source));
                }
            }
        }
        let unreadable = |source| {
            let cause = CallError::Unreadable {
                url: url.clone(),
                status,
                source,
            };
            let message = format!("cluster '{cluster}''s config service gave an unreadable answer");
            Error::BadGateway(Fault::new(message).because(cause))
        };
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(unreadable);
        }
        let failure: Failure = serde_json::from_slice(&bytes).map_err(unreadable)?;
        Err(domain_error(cluster, id, url, status, failure))
    }

    fn transport_error(
        &self,
        cluster: &ClusterId,
        method: &Method,
        url: &Url,
        source: reqwest::Error,
    ) -> Error {
        let timed_out = source.is_timeout();
        let cause = CallError::Transport {
            method: method.clone(),
            url: url.clone(),
            source,
        };
        if timed_out {
            Error::Timeout(
                Fault::new(format!(
                    "cluster '{cluster}''s config service did not answer within {} s",
                    self.timeouts.request.as_secs_f32()
                ))
                .because(cause),
            )
        } else {
            Error::Unavailable(
                Fault::new(format!(
                    "cluster '{cluster}''s config service cannot be reached"
                ))
                .because(cause),
            )
        }
    }
}

#[async_trait]
impl PortAllocator for RemoteClusters {
    async fn free_ports(&self, cluster: &ClusterId, skip: &[u16]) -> Result<Vec<u16>> {
        self.known(cluster).await?;
        let skip: Vec<String> = skip.iter().map(u16::to_string).collect();
        let url = self.url(cluster, paths::FREE_PORTS, Some(("skip", &skip.join(","))))?;
        let answer: FreePorts = self
            .call(cluster, None, Method::GET, url, None::<&()>)
            .await?;
        if answer.free.is_empty() {
            return Err(Error::PortsExhausted(cluster.clone()));
        }
        Ok(answer.free)
    }
}

#[async_trait]
impl ClusterDeployer for RemoteClusters {
    async fn deploy(&self, spec: &DeploymentSpec) -> Result<Deployed> {
        self.known(&spec.cluster_id).await?;
        let body = DeployRequest {
            node_id: spec.node_id.clone(),
            storage_size: spec.storage_size.clone(),
            port: spec.port,
            metadata: spec.metadata.clone(),
            stamp: spec.stamp.clone(),
            deletion_policy: spec.deletion_policy,
            created_at: Some(spec.created_at),
            resources: spec.resources,
        };
        let url = self.url(&spec.cluster_id, &instance_path(&spec.framedb_id), None)?;
        let answer: PortAnswer = self
            .call(
                &spec.cluster_id,
                Some(&spec.framedb_id),
                Method::PUT,
                url,
                Some(&body),
            )
            .await?;
        Ok(Deployed {
            credentials: answer.credentials,
            reattached: answer.reattached,
        })
    }

    async fn undeploy(
        &self,
        cluster: &ClusterId,
        id: &FramedbId,
        stamp: &Stamp,
        removal: Removal,
    ) -> Result<bool> {
        self.known(cluster).await?;
        let mut url = self.url(cluster, &instance_path(id), None)?;
        url.query_pairs_mut()
            .append_pair("stamp", stamp.as_str())
            .append_pair("removal", removal.as_str());
        match self
            .call::<serde::de::IgnoredAny, ()>(cluster, Some(id), Method::DELETE, url, None)
            .await
        {
            Ok(_) => Ok(true),
            // Nothing of that stamp on the cluster: the delete is done.
            Err(Error::InstanceNotFound(_)) => Ok(false),
            Err(error) => Err(error),
        }
    }

    async fn amend(&self, spec: &DeploymentSpec) -> Result<StorageSize> {
        self.known(&spec.cluster_id).await?;
        let body = AmendRequest {
            stamp: spec.stamp.clone(),
            metadata: spec.metadata.clone(),
            storage_size: spec.storage_size.clone(),
        };
        let url = self.url(&spec.cluster_id, &instance_path(&spec.framedb_id), None)?;
        let answer: Amended = self
            .call(
                &spec.cluster_id,
                Some(&spec.framedb_id),
                Method::PATCH,
                url,
                Some(&body),
            )
            .await?;
        Ok(answer.storage_size)
    }

    async fn credentials(&self, cluster: &ClusterId, id: &FramedbId) -> Result<Credentials> {
        let path = paths::CREDENTIALS.replace("{framedb_id}", id.as_str());
        let url = self.url(cluster, &path, None)?;
        let answer: Data<Credentials> = self
            .call(cluster, Some(id), Method::GET, url, None::<&()>)
            .await?;
        Ok(answer.data)
    }

    async fn statuses(
        &self,
        cluster: &ClusterId,
        ids: &[FramedbId],
    ) -> Result<HashMap<FramedbId, StatusReport>> {
        self.known(cluster).await?;
        if let Some(answer) = answer_from(&self.feed(cluster)?.borrow(), ids) {
            return Ok(answer);
        }
        let body = StatusesRequest { ids: ids.to_vec() };
        let url = self.url(cluster, paths::STATUSES, None)?;
        let answer: Data<HashMap<FramedbId, StatusReport>> = self
            .call(cluster, None, Method::POST, url, Some(&body))
            .await?;
        Ok(answer.data)
    }

    async fn inventory(&self, cluster: &ClusterId) -> Result<Vec<framedb_core::InstanceRecord>> {
        self.known(cluster).await?;
        let url = self.url(cluster, paths::INVENTORY, None)?;
        let answer: Data<Vec<framedb_core::InstanceRecord>> = self
            .call(cluster, None, Method::GET, url, None::<&()>)
            .await?;
        Ok(answer.data)
    }

    async fn follow(&self, cluster: &ClusterId) -> Result<StatusFeed> {
        self.known(cluster).await?;
        self.feed(cluster)
    }
}

/// `/local/v1/instances/{id}`.
fn instance_path(id: &FramedbId) -> String {
    paths::INSTANCE.replace("{framedb_id}", id.as_str())
}
