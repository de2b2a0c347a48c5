//! The local config service's internal API, which the global service calls for the one
//! cluster this service runs in: the server side of [`crate::wire`] (its table lists the
//! routes), whose client is [`crate::remote::RemoteClusters`].
//!
//! Errors use the same envelope and codes as the global API. The service keeps its own
//! record of each instance (in its own MongoDB) through the same provisioning logic.

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use framedb_core::live::{Changes, Mark, StatusBook};
use framedb_core::{
    ClusterDeployer, ClusterId, Credentials, FramedbId, Instance, NewInstance, PortAllocator,
    PortChoice, ProvisioningService, Removal, StatusReport, Timestamp,
};

use super::answer::{Done, NoStore, data, done, to_completion};
use super::{ApiToken, finish};
use crate::error::{ApiError, Result};
use crate::extract::{ApiPath, ApiQuery, JsonBody};
use crate::wire::{
    AmendRequest, Amended, BookLine, Data, DeployRequest, FreePortQuery, FreePorts, HEARTBEAT,
    PortAnswer, RemoveQuery, StatusesRequest, WatchQuery, paths,
};

/// What the local API's handlers reach.
#[derive(Clone)]
pub(crate) struct LocalState {
    /// This cluster's id.
    pub cluster_id: ClusterId,
    /// Provisioning on this service's own registry and this cluster.
    pub service: ProvisioningService,
    /// This cluster, for status reads.
    pub deployer: Arc<dyn ClusterDeployer>,
    /// This cluster's ports.
    pub ports: Arc<dyn PortAllocator>,
    /// The bearer token the global service must send, if any.
    pub token: ApiToken,
    /// Turns true when the service shuts down: status streams then end, so that a
    /// graceful shutdown does not wait for them.
    pub stopping: Stopping,
    /// One permit per status stream that may be open at once.
    pub streams: Arc<tokio::sync::Semaphore>,
    /// How many that is.
    pub max_streams: u32,
    /// Its metrics, and its cluster for `/metrics`'s instance counts.
    pub scrape: crate::metrics::Scrape,
}

/// A flag that turns true when a service begins to shut down; the default never does.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stopping(Option<tokio::sync::watch::Receiver<bool>>);

impl Stopping {
    /// Follows `flag`.
    pub fn on(flag: tokio::sync::watch::Receiver<bool>) -> Self {
        Self(Some(flag))
    }

    /// Resolves once the flag is true; never when there is no flag or it was dropped.
    pub async fn wait(self) {
        if let Some(mut flag) = self.0
            && flag.wait_for(|stop| *stop).await.is_ok()
        {
            return;
        }
        std::future::pending::<()>().await;
    }
}

/// The local API.
pub(crate) fn local_router(state: LocalState, bounds: super::Bounds) -> Router {
    let token = state.token.clone();
    let scrape = state.scrape.clone();
    let api = Router::new()
        .route(paths::FREE_PORTS, get(free_port))
        .route(paths::INSTANCES, get(list))
        .route(
            paths::INSTANCE,
            get(get_one).put(deploy).patch(amend).delete(remove),
        )
        .route(paths::CREDENTIALS, get(credentials))
        .route(paths::STATUSES, post(statuses))
        .route(paths::STATUS_WATCH, get(watch_statuses))
        .route(paths::INVENTORY, get(inventory))
        .with_state(Arc::new(state));
    finish(api, Router::new(), token, bounds, scrape)
}

async fn free_port(
    State(state): State<Arc<LocalState>>,
    ApiQuery(query): ApiQuery<FreePortQuery>,
) -> Result<Json<FreePorts>> {
    let skip = query
        .skip
        .split(',')
        .filter(|p| !p.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<u16>, _>>()
        .map_err(|_| {
            ApiError::InvalidRequest("skip must be a comma-separated list of ports".into())
        })?;
    let free = state.ports.free_ports(&state.cluster_id, &skip).await?;
    Ok(Json(FreePorts {
        success: true,
        port: free[0],
        free,
    }))
}

async fn deploy(
    State(state): State<Arc<LocalState>>,
    ApiPath(id): ApiPath<String>,
    JsonBody(request): JsonBody<DeployRequest>,
) -> Result<NoStore<Json<PortAnswer>>> {
    let new = NewInstance {
        framedb_id: FramedbId::new(id)?,
        node_id: request.node_id,
        cluster_id: state.cluster_id.clone(),
        storage_size: request.storage_size,
        metadata: request.metadata,
        deletion_policy: request.deletion_policy,
        resources: request.resources,
    };
    let service = state.service.clone();
    let (port, stamp) = (request.port, request.stamp);
    let created_at = request.created_at.unwrap_or_else(Timestamp::now);
    let created = to_completion(async move {
        service
            .create_at(new, PortChoice::Exactly(port), stamp, created_at)
            .await
    })
    .await?;
    Ok(NoStore(Json(PortAnswer {
        success: true,
        port: created.record.port.unwrap_or(port),
        credentials: created.credentials,
        reattached: created.reattached,
    })))
}

/// Changes the instance of the body's stamp on this cluster, then in this service's
/// record; run to completion, as a deploy is.
async fn amend(
    State(state): State<Arc<LocalState>>,
    ApiPath(id): ApiPath<String>,
    JsonBody(request): JsonBody<AmendRequest>,
) -> Result<Json<Amended>> {
    let id = FramedbId::new(id)?;
    let service = state.service.clone();
    let cluster = state.cluster_id.clone();
    let storage_size = to_completion(async move {
        service
            .amend_stamped(
                &id,
                &cluster,
                &request.stamp,
                request.metadata,
                request.storage_size,
            )
            .await
    })
    .await?;
    Ok(Json(Amended {
        success: true,
        storage_size,
    }))
}

/// Read from the cluster (its Secret), not from this service's registry.
async fn credentials(
    State(state): State<Arc<LocalState>>,
    ApiPath(id): ApiPath<String>,
) -> Result<NoStore<Json<Data<Credentials>>>> {
    let id = FramedbId::new(id)?;
    Ok(NoStore(data(
        state.deployer.credentials(&state.cluster_id, &id).await?,
    )))
}

/// Removes the objects of the create the query's stamp names, whether or not this
/// service still has the record (404 when it has neither the record nor an object).
/// Without a stamp (a global older than stamps), the local record's.
async fn remove(
    State(state): State<Arc<LocalState>>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<RemoveQuery>,
) -> Result<Json<Done>> {
    let id = FramedbId::new(id)?;
    let removal = query.removal.as_deref().map(Removal::parse).transpose()?;
    let service = state.service.clone();
    let cluster = state.cluster_id.clone();
    to_completion(async move {
        match (query.stamp, removal) {
            (Some(stamp), Some(removal)) => {
                service.delete_stamped(&id, &cluster, &stamp, removal).await
            }
            (Some(_), None) => Err(framedb_core::Error::invalid(
                "a delete that names a stamp names its removal too (purge, retain or undo)",
            )),
            // As the record's policy says, unless purged.
            (None, removal) => service.delete(&id, removal == Some(Removal::Purge)).await,
        }
    })
    .await?;
    Ok(done("Removed from the cluster"))
}

async fn get_one(
    State(state): State<Arc<LocalState>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Data<Instance>>> {
    let id = FramedbId::new(id)?;
    Ok(data(state.service.get(&id).await?))
}

async fn list(State(state): State<Arc<LocalState>>) -> Result<Json<Data<Vec<Instance>>>> {
    Ok(data(state.service.list_cluster(&state.cluster_id).await?))
}

/// Read from the cluster's objects, not from this service's registry.
async fn inventory(
    State(state): State<Arc<LocalState>>,
) -> Result<Json<Data<Vec<framedb_core::InstanceRecord>>>> {
    Ok(data(state.deployer.inventory(&state.cluster_id).await?))
}

async fn statuses(
    State(state): State<Arc<LocalState>>,
    JsonBody(request): JsonBody<StatusesRequest>,
) -> Result<Json<Data<HashMap<FramedbId, StatusReport>>>> {
    Ok(data(
        state
            .deployer
            .statuses(&state.cluster_id, &request.ids)
            .await?,
    ))
}

/// What a status stream sends next: the whole book, unless the reader asked for
/// changes and `sent` (where it is) is in the same edition within reach of the book's
/// journal; the reader is then where the book is.
fn book_line(book: &StatusBook, sent: &mut Option<Mark>, changes: bool) -> Bytes {
    let since = sent.take().filter(|_| changes);
    let line = match book {
        None => BookLine {
            statuses: Some(None),
            ..BookLine::default()
        },
        Some(book) => {
            *sent = Some(book.mark());
            match since.and_then(|mark| book.changes_since(mark)) {
                Some(Changes { changed, gone }) => BookLine {
                    statuses: None,
                    changed,
                    gone,
                },
                None => BookLine {
                    statuses: Some(Some(Cow::Borrowed(book.statuses()))),
                    ..BookLine::default()
                },
            }
        }
    };
    Bytes::from(line.to_line())
}

async fn watch_statuses(
    State(state): State<Arc<LocalState>>,
    ApiQuery(query): ApiQuery<WatchQuery>,
) -> Result<Response> {
    // Held for as long as the stream is open.
    let Ok(slot) = state.streams.clone().try_acquire_owned() else {
        return Err(ApiError::Overloaded {
            what: "status streams",
            limit: state.max_streams,
        });
    };
    let feed = state.deployer.follow(&state.cluster_id).await?;
    let stopping = Box::pin(state.stopping.clone().wait());
    let start = (feed, stopping, slot, None, true);
    let lines = futures_util::stream::unfold(
        start,
        move |(mut feed, mut stopping, slot, mut sent, first)| async move {
            if !first {
                let next = async {
                    // A change, or the heartbeat's time; a deployer without a watch closes its
                    // feed at once, and then only the heartbeat is left.
                    if let Ok(Err(_)) = tokio::time::timeout(HEARTBEAT, feed.changed()).await {
                        tokio::time::sleep(HEARTBEAT).await;
                    }
                };
                tokio::select! {
                    () = &mut stopping => return None,
                    () = next => {}
                }
            }
            // A copy of the pointer, not of the book: the watch's lock is not held while
            // the line is written.
            let book = feed.borrow_and_update().clone();
            let line = book_line(&book, &mut sent, query.changes);
            Some((
                Ok::<_, Infallible>(line),
                (feed, stopping, slot, sent, false),
            ))
        },
    );
    Ok((
        [(CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}
