//! Handlers of `/global/framedb/persistent-instances...`: each reads and validates its
//! input, calls the provisioning service, and shapes the answer (README, "The API").

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use framedb_core::{
    ClusterId, Credentials, Filter, FramedbId, Instance, InstanceChange, NewInstance, NodeId,
    Query, QueryOptions,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

use super::AppState;
use super::answer::{Created, Done, NoStore, data, done, to_completion};
use crate::error::{ApiError, Result};
use crate::extract::{ApiPath, ApiQuery, JsonBody};
use crate::wire::{Data, Failure};

/// Creates an instance on the cluster and node the body names, on the lowest free node
/// port of 30900-30999.
#[utoipa::path(
    post, path = "/global/framedb/persistent-instances", tag = "instances",
    request_body(content = NewInstance, example = json!({
        "framedb_id": "tidb-001", "node_id": "node-a", "cluster_id": "cluster-01",
        "storage_size": "2Gi", "metadata": {"team": "analytics"}
    })),
    responses(
        (status = 201, description = "Created; the root password is in this answer only \
            (`Cache-Control: no-store`).", body = Created, example = json!({
            "success": true, "message": "Instance created in global registry", "port": 30900,
            "credentials": {"user": "root", "password": "q3V9Zt6sWm1xYb2cDe3fGh4iJk5lMn6o"}})),
        (status = 404, description = "`cluster_not_found`: no such cluster in the fleet.", body = Failure),
        (status = 409, description = "`already_exists`, `conflict`, `ports_exhausted`, \
            `port_out_of_range`.", body = Failure, example = json!({"success": false,
            "message": "a persistent instance named 'tidb-002' already exists",
            "error": "already_exists"})),
        (status = 502, description = "`bad_gateway`: the cluster's local service answered \
            what its API does not allow.", body = Failure),
    )
)]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<NewInstance>,
) -> Result<NoStore<(StatusCode, Json<Created>)>> {
    let service = state.service.clone();
    let metrics = state.scrape.metrics.clone();
    let created = to_completion(async move {
        let started = Instant::now();
        let created = service.create(request).await;
        metrics.operation("create", started, &created);
        created
    })
    .await?;
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
#[utoipa::path(
    get, path = "/global/framedb/persistent-instances/{framedb_id}/credentials",
    tag = "instances", params(("framedb_id" = FramedbId, Path, description = "The instance's id.")),
    responses(
        (status = 200, description = "The credentials (`Cache-Control: no-store`).",
            body = Data<Credentials>, example = json!({"success": true,
            "data": {"user": "root", "password": "q3V9Zt6sWm1xYb2cDe3fGh4iJk5lMn6o"}})),
        (status = 404, description = "`instance_not_found`.", body = Failure),
        (status = 502, description = "`bad_gateway`.", body = Failure),
    )
)]
pub(crate) async fn credentials(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
) -> Result<NoStore<Json<Data<Credentials>>>> {
    let id = FramedbId::new(id)?;
    Ok(NoStore(data(state.service.credentials(&id).await?)))
}

/// `DELETE .../{framedb_id}?purge=true`.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteOptions {
    /// Remove the volume whatever the instance's deletion policy.
    #[serde(default)]
    purge: bool,
}

/// Deletes an instance; its volume goes or stays as its deletion policy (or `purge`) says.
#[utoipa::path(
    delete, path = "/global/framedb/persistent-instances/{framedb_id}", tag = "instances",
    params(("framedb_id" = FramedbId, Path, description = "The instance's id."), DeleteOptions),
    responses(
        (status = 200, description = "Removed.", body = Done, example = json!({
            "success": true, "message": "Removed from global registry"})),
        (status = 404, description = "`instance_not_found`.", body = Failure, example = json!({
            "success": false, "message": "no persistent instance is registered as 'tidb-001'",
            "error": "instance_not_found"})),
        (status = 502, description = "`bad_gateway`.", body = Failure),
    )
)]
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(options): ApiQuery<DeleteOptions>,
) -> Result<Json<Done>> {
    let id = FramedbId::new(id)?;
    let service = state.service.clone();
    let metrics = state.scrape.metrics.clone();
    to_completion(async move {
        let started = Instant::now();
        let deleted = service.delete(&id, options.purge).await;
        metrics.operation("delete", started, &deleted);
        deleted
    })
    .await?;
    Ok(done("Removed from global registry"))
}

/// `PATCH .../{framedb_id}`: a metadata merge patch and/or a larger volume; answers the
/// instance as `GET` shows it. Run to completion, as a create is.
#[utoipa::path(
    patch, path = "/global/framedb/persistent-instances/{framedb_id}", tag = "instances",
    params(("framedb_id" = FramedbId, Path, description = "The instance's id.")),
    request_body(description = "`metadata` (an RFC 7386 merge patch: `null` removes a key) \
        and/or `storage_size` (grow only); at least one.", content(
        (InstanceChange = "application/json",
            example = json!({"metadata": {"owner": "ana"}, "storage_size": "4Gi"})),
        (InstanceChange = "application/merge-patch+json"),
    )),
    responses(
        (status = 200, description = "The instance as `GET` shows it after the change.",
            body = Data<Instance>),
        (status = 400, description = "`shrink_refused` (a smaller `storage_size`), \
            `invalid_input`, `malformed_json`.", body = Failure),
        (status = 404, description = "`instance_not_found`.", body = Failure),
        (status = 409, description = "`not_expandable` (the volume's class or kind cannot \
            grow), `instance_busy` (being created or deleted).", body = Failure),
        (status = 502, description = "`bad_gateway`.", body = Failure),
    )
)]
pub(crate) async fn update(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
    JsonBody(change): JsonBody<InstanceChange>,
) -> Result<Json<Data<Instance>>> {
    let id = FramedbId::new(id)?;
    let service = state.service.clone();
    let metrics = state.scrape.metrics.clone();
    Ok(data(
        to_completion(async move {
            let started = Instant::now();
            let updated = service.update(&id, &change).await;
            metrics.operation("update", started, &updated);
            updated
        })
        .await?,
    ))
}

/// One instance, with its URLs and live status.
#[utoipa::path(
    get, path = "/global/framedb/persistent-instances/{framedb_id}", tag = "instances",
    params(("framedb_id" = FramedbId, Path, description = "The instance's id.")),
    responses(
        (status = 200, description = "The instance.", body = Data<Instance>, example = json!({
            "success": true, "data": instance_example()})),
        (status = 404, description = "`instance_not_found`.", body = Failure),
    )
)]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Data<Instance>>> {
    let id = FramedbId::new(id)?;
    Ok(data(state.service.get(&id).await?))
}

/// Every instance of a cluster.
#[utoipa::path(
    get, path = "/global/framedb/persistent-instances/cluster/{cluster_id}", tag = "instances",
    params(("cluster_id" = ClusterId, Path, description = "The cluster's id.")),
    responses(
        (status = 200, description = "Its instances, by `framedb_id`.", body = Data<Vec<Instance>>),
        (status = 404, description = "`cluster_not_found`: no such cluster in the fleet.", body = Failure),
    )
)]
pub(crate) async fn list_cluster(
    State(state): State<Arc<AppState>>,
    ApiPath(cluster): ApiPath<String>,
) -> Result<Json<Data<Vec<Instance>>>> {
    let cluster = ClusterId::new(cluster)?;
    Ok(data(state.service.list_cluster(&cluster).await?))
}

/// Every instance of one node of a cluster.
#[utoipa::path(
    get, path = "/global/framedb/persistent-instances/cluster/{cluster_id}/node/{node_id}",
    tag = "instances",
    params(
        ("cluster_id" = ClusterId, Path, description = "The cluster's id."),
        ("node_id" = NodeId, Path, description = "The node's id."),
    ),
    responses(
        (status = 200, description = "Its instances, by `framedb_id`.", body = Data<Vec<Instance>>),
        (status = 404, description = "`cluster_not_found`: no such cluster in the fleet.", body = Failure),
    )
)]
pub(crate) async fn list_node(
    State(state): State<Arc<AppState>>,
    ApiPath((cluster, node)): ApiPath<(String, String)>,
) -> Result<Json<Data<Vec<Instance>>>> {
    let cluster = ClusterId::new(cluster)?;
    let node = NodeId::new(node)?;
    Ok(data(state.service.list_node(&cluster, &node).await?))
}

/// The instances a MongoDB-style filter selects (README, "The query filter").
#[utoipa::path(
    post, path = "/global/framedb/persistent-instances/query", tag = "instances",
    params(QueryOptions),
    request_body(content = Object, description = "The filter: field equality, dotted paths \
        into `metadata`, `$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or $nor $not` and \
        `$regex`; at most 8 levels and 16 KiB.",
        example = json!({"metadata.team": "analytics", "status": {"$in": ["Running", "Provisioning"]}})),
    responses(
        (status = 200, description = "The instances, by `framedb_id` unless `sort` says \
            otherwise.", body = Data<Vec<Instance>>),
    )
)]
pub(crate) async fn query(
    State(state): State<Arc<AppState>>,
    ApiQuery(options): ApiQuery<QueryOptions>,
    JsonBody(filter): JsonBody<Value>,
) -> Result<Json<Data<Vec<Instance>>>> {
    let query = Query::new(Filter::parse(&filter)?, options)?;
    Ok(data(state.service.query(&query).await?))
}

/// An instance as the API shows it, for the OpenAPI document's examples.
fn instance_example() -> Value {
    json!({
        "framedb_id": "tidb-001", "node_id": "node-a", "cluster_id": "cluster-01",
        "port": 30900, "public_url": "http://cluster-01:30900",
        "local_url": "mysql://tidb-001.framedb-storage.svc.cluster.local:4000",
        "metadata": {"team": "analytics"}, "storage_size": "2Gi", "deletion_policy": "Delete",
        "resources": null, "status": "Running",
        "created_at": "2026-11-25T19:00:00.000Z", "updated_at": "2026-11-25T19:00:00.001Z"
    })
}
