//! Handlers of `/framedb-config/...`: install, remove and inspect a cluster's config
//! service with the kubeconfig the caller sends. The kubeconfig is checked (inline data
//! only), used for this one request, and never stored or logged.

use axum::Json;
use axum::extract::State;
use framedb_core::{ClusterId, StorageSize};
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
use crate::remote::directory::service_url;
use crate::remote::directory::{Conflict, LocalToken};
use crate::wire::Data;

/// `POST /framedb-config/setup`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetupRequest {
    kube_config: Value,
    storage_size: Option<StorageSize>,
    /// The id under which the global service reaches this cluster; when given, setup
    /// records the cluster's local config service in the cluster directory.
    cluster_id: Option<ClusterId>,
    /// Where that service answers (default `http://{cluster_id}:32566`).
    local_url: Option<String>,
    /// For clusters without a dynamic provisioner: the node directory under which the
    /// installed service puts `local` volumes (and only then may it write PVs).
    local_volume_root: Option<String>,
}

/// `POST /framedb-config/status`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterRequest {
    kube_config: Value,
}

/// `DELETE /framedb-config/remove`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RemoveRequest {
    kube_config: Value,
    /// The id the fleet knows the cluster by (default: the kubeconfig's cluster name).
    cluster_id: Option<ClusterId>,
    /// Remove even while instances of the cluster are registered.
    #[serde(default)]
    force: bool,
}

/// The token to install with `cluster`'s local service: the one its running service
/// already has when the directory knows it there, a new one of its own otherwise (so no
/// cluster's service holds another's token, nor the global API's).
fn token_for(
    state: &AppState,
    cluster: &ClusterId,
    record: Option<&url::Url>,
) -> Result<LocalToken> {
    let Some(directory) = &state.directory else {
        // The global drives clusters directly and never calls this service.
        return Ok(state
            .local_token
            .clone()
            .and_then(LocalToken::new)
            .unwrap_or_else(LocalToken::generate));
    };
    match (directory.endpoint(cluster), record) {
        (Some((known, Some(token))), Some(url)) if known == *url => Ok(token),
        (_, Some(_)) => Ok(LocalToken::generate()),
        (Some((_, Some(token))), None) => Ok(token),
        // A service the operator configured without a token would be open once installed.
        (_, None) => Err(ApiError::InvalidRequest(format!(
            "cluster '{cluster}' is configured without a token for its local config service: \
             start the global service with --local-token so that the service installed is \
             not open"
        ))),
    }
}

/// The refusal of a setup that would re-point `cluster`.
fn conflict_of(cluster: &ClusterId, conflict: &Conflict) -> ApiError {
    let why = match conflict {
        Conflict::Configured => {
            "is configured by this service's operator; setup cannot re-point it"
        }
        Conflict::Elsewhere => {
            "was set up with another local_url; remove it first to install it elsewhere"
        }
    };
    ApiError::ClusterConflict(format!("cluster '{cluster}' {why}"))
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
    kubeconfig::check_server(&parsed, state.allow_insecure_clusters)
        .map_err(framedb_core::Error::from)?;
    Ok(kubeconfig::client(parsed, state.kube_timeouts)
        .await
        .map_err(framedb_core::Error::from)?)
}

fn failed(error: framedb_k8s::Error) -> ApiError {
    ApiError::Domain(error.into())
}

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
    // Where the directory will find the service, decided (and checked) before anything
    // is installed.
    let record = match (&state.directory, local_url) {
        (None, _) => None,
        (Some(directory), Some(url)) => {
            directory
                .may_record(&cluster, &url)
                .map_err(|conflict| conflict_of(&cluster, &conflict))?;
            Some(url)
        }
        // A cluster the directory already knows keeps its address (configured, or the
        // embedded default's loopback port).
        (Some(directory), None) if directory.contains(&cluster) => None,
        (Some(_), None) => Some(
            ClusterDirectory::default_url(&cluster)
                .map_err(|message| ApiError::InvalidRequest(format!("cluster_id: {message}")))?,
        ),
    };
    if let Some(root) = &request.local_volume_root {
        framedb_k8s::config_service::check_volume_root(root).map_err(ApiError::InvalidRequest)?;
    }
    let token = token_for(&state, &cluster, record.as_ref())?;
    let client = client_of(&state, parsed).await?;
    let install = Install {
        storage_size: match request.storage_size {
            Some(size) => size,
            None => StorageSize::new("1Gi")?,
        },
        cluster_id: cluster.clone(),
        token: Some(token.expose().to_owned()),
        local_volume_root: request.local_volume_root,
    };
    ConfigService::new(&client, &state.config_service, TARGET)
        .setup(&install)
        .await
        .map_err(failed)?;
    if let (Some(directory), Some(url)) = (&state.directory, record) {
        directory
            .record(cluster.clone(), url, token)
            .map_err(|conflict| conflict_of(&cluster, &conflict))?;
    }
    Ok(done("FrameDB config service is set up on the cluster"))
}

pub(crate) async fn remove(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<RemoveRequest>,
) -> Result<Json<Done>> {
    let parsed = kubeconfig::parse(&request.kube_config).map_err(framedb_core::Error::from)?;
    let cluster = cluster_of(request.cluster_id, &parsed);
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
        directory.forget(cluster);
    }
    Ok(done("FrameDB config service is removed from the cluster"))
}

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
