//! Handlers of `/framedb-config/...`: install, remove and inspect a cluster's config
//! service with the kubeconfig the caller sends. The kubeconfig is checked (inline data
//! only), used for this one request, and never stored or logged.

use axum::Json;
use axum::extract::State;
use framedb_core::{Chain, ClusterId, DirectoryEntry, StorageSize};
use framedb_k8s::config_service::{ConfigService, Install, Report};
use framedb_k8s::kubeconfig;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

use super::AppState;
use super::answer::{Done, data, done};
use crate::error::{ApiError, Result};
use crate::extract::JsonBody;
use crate::remote::ClusterDirectory;
use crate::remote::directory::{LocalToken, service_url};
use crate::wire::{Data, Failure};

/// `POST /framedb-config/setup`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetupRequest {
    /// The target cluster's kubeconfig, as a JSON object or a YAML string, with inline
    /// data only; used for this request, never stored or logged.
    #[schema(schema_with = kube_config)]
    kube_config: Value,
    storage_size: Option<StorageSize>,
    /// The id under which the global service reaches this cluster; when given, setup
    /// records the cluster's local config service in the cluster directory.
    cluster_id: Option<ClusterId>,
    /// Where that service answers (default: where the directory has it, else
    /// `http://{cluster_id}:32566`).
    local_url: Option<String>,
    /// Re-point a cluster that setup recorded with another `local_url`, API server or
    /// certificate authority (otherwise 409 `cluster_conflict`); a new token is drawn.
    #[serde(default)]
    replace: bool,
    /// For clusters without a dynamic provisioner: the node directory under which the
    /// installed service puts `local` volumes (and only then may it write PVs).
    local_volume_root: Option<String>,
}

/// The schema of a kubeconfig in a body: an object or a YAML string.
fn kube_config() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    let named_list = |what: &str| {
        ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(Type::Object))
            .min_items(Some(1))
            .description(Some(what))
    };
    let object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "A kubeconfig (`apiVersion: v1`, `kind: Config`) naming the target cluster, a \
             user and a context, with inline data only: no `exec`, `auth-provider`, file \
             paths or `proxy-url`.",
        ))
        .property(
            "clusters",
            named_list("The clusters; the context's one is used."),
        )
        .property("contexts", named_list("The contexts."))
        .property(
            "users",
            ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::Object)),
        )
        .property(
            "current-context",
            ObjectBuilder::new().schema_type(Type::String),
        )
        .required("clusters")
        .required("contexts");
    let text = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .description(Some("The same kubeconfig as YAML."));
    OneOfBuilder::new().item(object).item(text).into()
}

/// `POST /framedb-config/status`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterRequest {
    /// The target cluster's kubeconfig, as a JSON object or a YAML string, with inline
    /// data only; used for this request, never stored or logged.
    #[schema(schema_with = kube_config)]
    kube_config: Value,
}

/// `DELETE /framedb-config/remove`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RemoveRequest {
    /// The target cluster's kubeconfig, as a JSON object or a YAML string, with inline
    /// data only; used for this request, never stored or logged.
    #[schema(schema_with = kube_config)]
    kube_config: Value,
    /// The id the fleet knows the cluster by (default: the kubeconfig's cluster name).
    cluster_id: Option<ClusterId>,
    /// Remove even while instances of the cluster are registered.
    #[serde(default)]
    force: bool,
}

/// The id the fleet knows the kubeconfig's cluster by: `given`, else the kubeconfig's
/// cluster name when that is a valid cluster id.
fn cluster_of(given: Option<ClusterId>, parsed: &kube::config::Kubeconfig) -> Option<ClusterId> {
    given.or_else(|| kubeconfig::context_cluster(parsed).and_then(|name| ClusterId::new(name).ok()))
}

/// Names the target in logs without quoting the kubeconfig.
const TARGET: &str = "the requested cluster";

async fn connect(state: &AppState, kube_config: &Value) -> Result<kube::Client> {
    let parsed = kubeconfig::parse(kube_config).map_err(framedb_core::Error::from)?;
    client_of(state, parsed).await
}

async fn client_of(state: &AppState, parsed: kube::config::Kubeconfig) -> Result<kube::Client> {
    let client =
        kubeconfig::caller_client(parsed, state.kube_timeouts, state.allow_insecure_clusters);
    Ok(client.await.map_err(framedb_core::Error::from)?)
}

fn failed(error: framedb_k8s::Error) -> ApiError {
    ApiError::Domain(error.into())
}

/// Installs the config service on the kubeconfig's cluster (idempotent).
#[utoipa::path(
    post, path = "/framedb-config/setup", tag = "config-service",
    request_body(content = SetupRequest, example = json!({
        "kube_config": {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [],
            "contexts": [], "current-context": ""},
        "cluster_id": "cluster-02"})),
    responses(
        (status = 200, description = "Installed.", body = Done, example = json!({"success": true,
            "message": "FrameDB config service is set up on the cluster"})),
        (status = 403, description = "`forbidden`: `replace` where the operator has not \
            allowed it.", body = Failure),
        (status = 409, description = "`cluster_conflict`, with `details: {cluster_id, differs}`.",
            body = Failure, example = json!({"success": false, "message": "cluster 'edge-7' is \
            already set up at another local_url", "error": "cluster_conflict",
            "details": {"cluster_id": "edge-7", "differs": "local_url"}})),
        (status = 502, description = "`bad_gateway`.", body = Failure),
    )
)]
pub(crate) async fn setup(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<SetupRequest>,
) -> Result<Json<Done>> {
    let local_url = match &request.local_url {
        None => None,
        Some(_) if request.cluster_id.is_none() => {
            return Err(ApiError::InvalidRequest(
                "local_url comes with cluster_id".into(),
            ));
        }
        Some(url) => Some(
            service_url(url)
                .map_err(|message| ApiError::InvalidRequest(format!("local_url: {message}")))?,
        ),
    };
    let parsed = kubeconfig::parse(&request.kube_config).map_err(framedb_core::Error::from)?;
    // Without a cluster_id, the cluster is known by the name its kubeconfig gives it.
    let cluster = cluster_of(request.cluster_id, &parsed).ok_or_else(|| {
        ApiError::InvalidRequest(
            "cluster_id is required: the kubeconfig's cluster name is not a valid cluster id"
                .into(),
        )
    })?;
    kubeconfig::check_server(&parsed, state.allow_insecure_clusters)
        .map_err(framedb_core::Error::from)?;
    if request.replace && !state.allow_setup_replace {
        return Err(ApiError::Forbidden(
            "\"replace\": true re-points a cluster, which this service's operator has not \
             allowed (--allow-setup-replace); remove the cluster with its own kubeconfig and \
             set it up again instead"
                .into(),
        ));
    }
    if let Some(root) = &request.local_volume_root {
        framedb_k8s::config_service::check_volume_root(root).map_err(ApiError::InvalidRequest)?;
    }
    // The directory is claimed (and checked) before anything is installed: a refused
    // setup sends nothing, and of concurrent setups of one cluster one wins.
    let claim = match &state.directory {
        None => None,
        Some(directory) => {
            directory.lookup(&cluster).await?;
            // An operator's cluster is claimed at its configured URL (another is 409), so
            // it too gets a token of its own rather than the operator's shared one.
            let url = match local_url.or_else(|| directory.url(&cluster)) {
                Some(url) => url,
                None => ClusterDirectory::default_url(&cluster).map_err(|message| {
                    ApiError::InvalidRequest(format!("cluster_id: {message}"))
                })?,
            };
            let wanted = DirectoryEntry {
                cluster_id: cluster.clone(),
                local_url: url.to_string(),
                token: LocalToken::generate(),
                identity: kubeconfig::identity(&parsed).map_err(framedb_core::Error::from)?,
            };
            Some((directory, directory.claim(wanted, request.replace).await?))
        }
    };
    let token = match &claim {
        Some((_, claim)) => claim.token.clone(),
        // The global drives clusters directly and never calls this service: no token of
        // this global's goes with it.
        None => LocalToken::generate(),
    };
    let installed = install(
        &state,
        parsed,
        cluster.clone(),
        request.storage_size,
        request.local_volume_root,
        &token,
    )
    .await;
    if let (Err(_), Some((directory, claim))) = (&installed, claim) {
        // The cluster has no service with this token: the directory must not say it has.
        if let Err(error) = directory.undo(claim).await {
            tracing::error!(cluster_id = %cluster, cause = %Chain(&error),
                "a failed setup's directory entry could not be undone");
        }
    }
    installed?;
    Ok(done("FrameDB config service is set up on the cluster"))
}

/// Installs the config service on the kubeconfig's cluster, with `token`.
async fn install(
    state: &AppState,
    parsed: kube::config::Kubeconfig,
    cluster: ClusterId,
    storage_size: Option<StorageSize>,
    local_volume_root: Option<String>,
    token: &LocalToken,
) -> Result<()> {
    let client = client_of(state, parsed).await?;
    let install = Install {
        storage_size: match storage_size {
            Some(size) => size,
            None => StorageSize::new("1Gi")?,
        },
        cluster_id: cluster,
        token: Some(token.expose().to_owned()),
        local_volume_root,
    };
    ConfigService::new(&client, &state.config_service, TARGET)
        .setup(&install)
        .await
        .map_err(failed)?;
    Ok(())
}

/// Removes the config service from the kubeconfig's cluster.
#[utoipa::path(
    delete, path = "/framedb-config/remove", tag = "config-service",
    request_body(content = RemoveRequest),
    responses(
        (status = 200, description = "Removed (also when already gone).", body = Done,
            example = json!({"success": true,
            "message": "FrameDB config service is removed from the cluster"})),
        (status = 409, description = "`cluster_in_use` (with `details.instances`), \
            `cluster_conflict`.", body = Failure, example = json!({"success": false,
            "message": "cluster 'cluster-02' still has 3 registered instances",
            "error": "cluster_in_use", "details": {"instances": 3}})),
    )
)]
pub(crate) async fn remove(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<RemoveRequest>,
) -> Result<Json<Done>> {
    let parsed = kubeconfig::parse(&request.kube_config).map_err(framedb_core::Error::from)?;
    let cluster = cluster_of(request.cluster_id, &parsed);
    // Only the cluster setup recorded may remove its entry: another kubeconfig (another
    // API server or certificate authority) naming its id is refused.
    if let (Some(directory), Some(cluster)) = (&state.directory, &cluster)
        && let Some(recorded) = directory.stored(cluster).await?
    {
        let asked = DirectoryEntry {
            identity: kubeconfig::identity(&parsed).map_err(framedb_core::Error::from)?,
            ..recorded.clone()
        };
        if let Some(conflict) = recorded.conflict_with(&asked) {
            return Err(framedb_core::Error::ClusterConflict {
                cluster: cluster.clone(),
                conflict,
            }
            .into());
        }
    }
    // The instances of a cluster run through its config service: removing it would leave
    // them without anyone to manage or delete them.
    if let Some(cluster) = &cluster
        && !request.force
    {
        state.service.check_unused(cluster).await?;
    }
    let client = client_of(&state, parsed).await?;
    ConfigService::new(&client, &state.config_service, TARGET)
        .remove()
        .await
        .map_err(failed)?;
    if let (Some(directory), Some(cluster)) = (&state.directory, &cluster) {
        directory.forget(cluster).await?;
    }
    Ok(done("FrameDB config service is removed from the cluster"))
}

/// The state of the kubeconfig's cluster's config service.
#[utoipa::path(
    post, path = "/framedb-config/status", tag = "config-service",
    request_body(content = ClusterRequest),
    responses((status = 200, description = "Its components and layout.", body = Data<Report>))
)]
pub(crate) async fn status(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<ClusterRequest>,
) -> Result<Json<Data<Report>>> {
    let client = connect(&state, &request.kube_config).await?;
    let report = ConfigService::new(&client, &state.config_service, TARGET)
        .status()
        .await
        .map_err(failed)?;
    Ok(data(report))
}
