//! The local config service's internal API, which the global service calls for the one
//! cluster this service runs in (the remote side of [`crate::remote::RemoteClusters`]):
//!
//! | method, path | answer |
//! |---|---|
//! | `GET /local/v1/ports/free?skip=30900,30901` | `{success, port}`: lowest free port not in `skip`; 409 `ports_exhausted` |
//! | `PUT /local/v1/instances/{id}` `{node_id, storage_size, port, metadata?}` | `{success, port}`: deploys on exactly `port` (409 `port_taken`); repeating it completes it |
//! | `DELETE /local/v1/instances/{id}` | `{success, message}`; 404 `instance_not_found` |
//! | `GET /local/v1/instances/{id}` | `{success, data: Instance}` with live status |
//! | `GET /local/v1/instances` | `{success, data: [Instance]}`: every instance of this cluster |
//! | `POST /local/v1/statuses` `{ids: [...]}` | `{success, data: {id: {status, reason?}}}` for the ids that have a workload |
//!
//! Errors use the same envelope and codes as the global API. The service keeps its own
//! record of each instance (in its own MongoDB) through the same provisioning logic.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use framedb_core::{
    ClusterDeployer, ClusterId, FramedbId, Instance, Metadata, NewInstance, NodeId, PortAllocator,
    PortChoice, ProvisioningService, StatusReport, StorageSize,
};
use serde::{Deserialize, Serialize};

use super::instances::{Data, Done, data, done, to_completion};
use super::{ApiToken, finish};
use crate::error::{ApiError, Result};
use crate::extract::{ApiPath, ApiQuery, JsonBody};

/// What the local API's handlers reach.
#[derive(Clone)]
pub struct LocalState {
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
}

/// The local API.
pub fn local_router(state: LocalState) -> Router {
    let token = state.token.clone();
    let api = Router::new()
        .route("/local/v1/ports/free", get(free_port))
        .route("/local/v1/instances", get(list))
        .route(
            "/local/v1/instances/{framedb_id}",
            get(get_one).put(deploy).delete(remove),
        )
        .route("/local/v1/statuses", post(statuses))
        .with_state(state);
    finish(api, token)
}

/// The query string of `/ports/free`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FreePortQuery {
    /// Comma-separated ports to pass over.
    #[serde(default)]
    skip: String,
}

/// `{success, port}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PortAnswer {
    /// Always true.
    pub success: bool,
    /// The port.
    pub port: u16,
}

async fn free_port(
    State(state): State<LocalState>,
    ApiQuery(query): ApiQuery<FreePortQuery>,
) -> Result<Json<PortAnswer>> {
    let skip = query
        .skip
        .split(',')
        .filter(|p| !p.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<u16>, _>>()
        .map_err(|_| {
            ApiError::InvalidRequest("skip must be a comma-separated list of ports".into())
        })?;
    let port = state.ports.lowest_free(&state.cluster_id, &skip).await?;
    Ok(Json(PortAnswer {
        success: true,
        port,
    }))
}

/// The body of `PUT /local/v1/instances/{id}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// The node to pin the instance to.
    pub node_id: NodeId,
    /// Its volume's size.
    pub storage_size: StorageSize,
    /// The node port to claim.
    pub port: u16,
    /// The caller's data, kept in the local record too.
    #[serde(default)]
    pub metadata: Metadata,
}

async fn deploy(
    State(state): State<LocalState>,
    ApiPath(id): ApiPath<String>,
    JsonBody(request): JsonBody<DeployRequest>,
) -> Result<Json<PortAnswer>> {
    let new = NewInstance {
        framedb_id: FramedbId::new(id)?,
        node_id: request.node_id,
        cluster_id: state.cluster_id.clone(),
        storage_size: request.storage_size,
        metadata: request.metadata,
    };
    let service = state.service.clone();
    let port = request.port;
    let record =
        to_completion(async move { service.create_on(new, PortChoice::Exactly(port)).await })
            .await?;
    Ok(Json(PortAnswer {
        success: true,
        port: record.port.unwrap_or(port),
    }))
}

async fn remove(
    State(state): State<LocalState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Done>> {
    let id = FramedbId::new(id)?;
    let service = state.service.clone();
    to_completion(async move { service.delete(&id).await }).await?;
    Ok(done("Removed from the cluster"))
}

async fn get_one(
    State(state): State<LocalState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Data<Instance>>> {
    let id = FramedbId::new(id)?;
    Ok(data(state.service.get(&id).await?))
}

async fn list(State(state): State<LocalState>) -> Result<Json<Data<Vec<Instance>>>> {
    Ok(data(state.service.list_cluster(&state.cluster_id).await?))
}

/// The body of `POST /local/v1/statuses`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusesRequest {
    /// The instances asked about.
    pub ids: Vec<FramedbId>,
}

async fn statuses(
    State(state): State<LocalState>,
    JsonBody(request): JsonBody<StatusesRequest>,
) -> Result<Json<Data<HashMap<FramedbId, StatusReport>>>> {
    Ok(data(
        state
            .deployer
            .statuses(&state.cluster_id, &request.ids)
            .await?,
    ))
}
