//! Handlers of `/global/framedb/persistent-instances...`: each reads and validates its
//! input, calls the provisioning service, and shapes the answer (README, "The API").

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use framedb_core::{
    ClusterId, Credentials, Filter, FramedbId, Instance, InstanceChange, NewInstance, NodeId,
    Query, QueryOptions,
};
use serde_json::Value;
use std::sync::Arc;

use super::AppState;
use super::answer::{Created, Done, NoStore, data, done, to_completion};
use crate::error::{ApiError, Result};
use crate::extract::{ApiPath, ApiQuery, JsonBody};
use crate::wire::Data;

pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<NewInstance>,
) -> Result<NoStore<(StatusCode, Json<Created>)>> {
    let service = state.service.clone();
    let created = to_completion(async move { service.create(request).await }).await?;
    let port = created.record.port.ok_or_else(|| {
        ApiError::Domain(framedb_core::Error::Internal(
            "create returned no port".into(),
        ))
    })?;
    Ok(NoStore((
        StatusCode::CREATED,
        Json(Created {
            success: true,
            message: if created.reattached {
                "Instance created in global registry; it took back the volume retained for its \
                 id (with that volume's data and password)"
            } else {
                "Instance created in global registry"
            },
            port,
            credentials: created.credentials,
        }),
    )))
}

/// The instance's root credentials, read from its cluster each time (never from the
/// registry, which does not hold them).
pub(crate) async fn credentials(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
) -> Result<NoStore<Json<Data<Credentials>>>> {
    let id = FramedbId::new(id)?;
    Ok(NoStore(data(state.service.credentials(&id).await?)))
}

/// `DELETE .../{framedb_id}?purge=true`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteOptions {
    /// Remove the volume whatever the instance's deletion policy.
    #[serde(default)]
    purge: bool,
}

pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(options): ApiQuery<DeleteOptions>,
) -> Result<Json<Done>> {
    let id = FramedbId::new(id)?;
    let service = state.service.clone();
    to_completion(async move { service.delete(&id, options.purge).await }).await?;
    Ok(done("Removed from global registry"))
}

/// `PATCH .../{framedb_id}`: a metadata merge patch and/or a larger volume; answers the
/// instance as `GET` shows it. Run to completion, as a create is.
pub(crate) async fn update(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
    JsonBody(change): JsonBody<InstanceChange>,
) -> Result<Json<Data<Instance>>> {
    let id = FramedbId::new(id)?;
    let service = state.service.clone();
    Ok(data(
        to_completion(async move { service.update(&id, &change).await }).await?,
    ))
}

pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Data<Instance>>> {
    let id = FramedbId::new(id)?;
    Ok(data(state.service.get(&id).await?))
}

pub(crate) async fn list_cluster(
    State(state): State<Arc<AppState>>,
    ApiPath(cluster): ApiPath<String>,
) -> Result<Json<Data<Vec<Instance>>>> {
    let cluster = ClusterId::new(cluster)?;
    Ok(data(state.service.list_cluster(&cluster).await?))
}

pub(crate) async fn list_node(
    State(state): State<Arc<AppState>>,
    ApiPath((cluster, node)): ApiPath<(String, String)>,
) -> Result<Json<Data<Vec<Instance>>>> {
    let cluster = ClusterId::new(cluster)?;
    let node = NodeId::new(node)?;
    Ok(data(state.service.list_node(&cluster, &node).await?))
}

pub(crate) async fn query(
    State(state): State<Arc<AppState>>,
    ApiQuery(options): ApiQuery<QueryOptions>,
    JsonBody(filter): JsonBody<Value>,
) -> Result<Json<Data<Vec<Instance>>>> {
    let query = Query::new(Filter::parse(&filter)?, options)?;
    Ok(data(state.service.query(&query).await?))
}
