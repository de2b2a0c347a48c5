//! The global API's router: the persistent-instance endpoints of DESIGN.md §3 and
//! `/healthz`, on an [`AppState`]. Separate from `main` so that tests can drive it with
//! `tower::ServiceExt::oneshot` as well as over a socket.

mod config_service;
mod instances;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use framedb_core::ProvisioningService;
use framedb_k8s::config_service::Settings;
use framedb_k8s::kubeconfig::Timeouts;
use serde_json::{Value, json};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::error::ApiError;
use crate::extract::BODY_LIMIT;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The provisioning logic, on whichever adapters the server was built with.
    pub service: ProvisioningService,
    /// What `/framedb-config/setup` installs.
    pub config_service: Arc<Settings>,
    /// How long calls to a caller's cluster may take.
    pub kube_timeouts: Timeouts,
}

impl AppState {
    /// State around a provisioning service, with the default config-service settings.
    pub fn new(service: ProvisioningService) -> Self {
        Self {
            service,
            config_service: Arc::new(Settings::default()),
            kube_timeouts: Timeouts::default(),
        }
    }
}

/// The whole HTTP API.
pub fn router(state: AppState) -> Router {
    const BASE: &str = "/global/framedb/persistent-instances";
    Router::new()
        .route("/healthz", get(healthz))
        .route("/framedb-config/setup", post(config_service::setup))
        .route("/framedb-config/remove", delete(config_service::remove))
        .route("/framedb-config/status", post(config_service::status))
        .route(BASE, post(instances::create))
        .route(&format!("{BASE}/query"), post(instances::query))
        .route(
            &format!("{BASE}/cluster/{{cluster_id}}"),
            get(instances::list_cluster),
        )
        .route(
            &format!("{BASE}/cluster/{{cluster_id}}/node/{{node_id}}"),
            get(instances::list_node),
        )
        .route(
            &format!("{BASE}/{{framedb_id}}"),
            get(instances::get).delete(instances::delete),
        )
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // One INFO line per request: method, path, status, latency. Bodies are never logged.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

async fn healthz() -> Json<Value> {
    Json(json!({"success": true, "status": "ok"}))
}
