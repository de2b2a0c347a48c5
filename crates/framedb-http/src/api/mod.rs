//! The routers: the global API (the persistent-instance and config-service endpoints,
//! README "The API") on an `AppState`, and the local config service's internal API
//! (`local`, listed in [`crate::wire`]). Only the start-up code
//! ([`crate::startup`]) builds them, so every service runs with the same middleware.

mod answer;
mod auth;
mod bounds;
mod config_service;
mod instances;
pub(crate) mod local;
mod openapi;
pub(crate) mod request_id;

pub use auth::ApiToken;
pub(crate) use bounds::Bounds;
pub use openapi::document_json as openapi_document;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use framedb_core::ProvisioningService;
use framedb_k8s::config_service::Settings;
use framedb_k8s::kubeconfig::Timeouts;
use serde_json::{Value, json};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::error::ApiError;
use crate::extract::BODY_LIMIT;
use crate::metrics::Scrape;

/// What every handler of the global API can reach.
#[derive(Clone)]
pub(crate) struct AppState {
    /// The provisioning logic, on whichever adapters the server was built with.
    pub service: ProvisioningService,
    /// What `/framedb-config/setup` installs.
    pub config_service: Arc<Settings>,
    /// How long calls to a caller's cluster may take.
    pub kube_timeouts: Timeouts,
    /// Where setup records the local config service of a cluster it installs (global
    /// tier with remote clusters only).
    pub directory: Option<Arc<crate::remote::ClusterDirectory>>,
    /// The bearer token every route but `/healthz` and `/readyz` requires, if any.
    pub token: ApiToken,
    /// Whether `/framedb-config/*` may call API servers on private addresses, over plain
    /// http, or without TLS verification.
    pub allow_insecure_clusters: bool,
    /// Whether setup may re-point a recorded cluster (`"replace": true`).
    pub allow_setup_replace: bool,
    /// Its metrics, and the clusters `/metrics` counts instances of.
    pub scrape: Scrape,
}

/// The global API.
pub(crate) fn router(state: AppState, bounds: Bounds) -> Router {
    const BASE: &str = "/global/framedb/persistent-instances";
    let token = state.token.clone();
    let scrape = state.scrape.clone();
    let api = Router::new()
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
            get(instances::get)
                .patch(instances::update)
                .delete(instances::delete),
        )
        .route(
            &format!("{BASE}/{{framedb_id}}/credentials"),
            get(instances::credentials),
        )
        // Behind an `Arc`, so that each request's handler gets it for one reference count.
        .with_state(Arc::new(state));
    let open = Router::new().route("/openapi.json", get(openapi::document));
    finish(api, open, token, bounds, scrape)
}

/// What both APIs share: `/healthz`, `/readyz` (the service's registry answers it) and
/// the routes of `open` without a token, `/metrics` and everything else behind the
/// token, the JSON answers for unknown routes and methods, the body limit, the bounds
/// on requests, request metrics and logs.
pub(crate) fn finish(
    api: Router,
    open: Router,
    token: ApiToken,
    bounds: Bounds,
    scrape: Scrape,
) -> Router {
    let metrics = scrape.metrics.clone();
    let service = scrape.service.clone();
    let scrape_tokens = auth::MetricsToken {
        api: token.clone(),
        scrape: scrape.token.clone(),
    };
    // Outside the bounds: a server serving its limit of requests still answers its
    // liveness probe (rather than be restarted for being busy) and its scrapes (whose
    // figures matter most then). Neither is counted in the request series.
    // `/readyz` too: a server at its limit of requests is busy, not unready (two
    // replicas that both fail readiness under load would take the Service down); its
    // answer is kept a second, so that however often it is asked, the registry is pinged
    // at most once a second.
    let unbounded = Router::new()
        .route(
            "/metrics",
            get(crate::metrics::scrape).with_state(Arc::new(scrape)),
        )
        .layer(axum::middleware::from_fn_with_state(
            scrape_tokens,
            auth::require_metrics_token,
        ))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz).with_state(Readiness::of(service)));
    api.fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            token,
            auth::require_token,
        ))
        .merge(open)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            bounds,
            bounds::bounded,
        ))
        // Outside the bounds, so that refused requests (503 `overloaded`) count too.
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::metrics::track,
        ))
        .merge(unbounded)
        // A DEBUG line per request (method, path, status, latency; `RUST_LOG=tower_http=debug`
        // turns them on): at INFO, formatting and writing them cost a third of a read's
        // time. Server errors are logged at ERROR regardless. Bodies are never logged.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &axum::extract::Request| {
                    tracing::debug_span!(
                        "request",
                        method = %request.method(),
                        uri = %request.uri(),
                        request_id = request_id::of(request),
                    )
                })
                .on_response(DefaultOnResponse::new().level(Level::DEBUG)),
        )
        // Outermost: every request, refused or not, carries its id into the span above
        // and back in its answer.
        .layer(axum::middleware::from_fn(request_id::tagged))
}

/// Liveness: the process serves.
#[utoipa::path(
    get, path = "/healthz", tag = "service", security(()),
    responses((status = 200, description = "Liveness: the process serves.", body = Object,
        example = json!({"success": true, "status": "ok"})))
)]
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"success": true, "status": "ok"}))
}

/// Readiness: the registry answers, so requests can be served (503 `not_ready` when not).
#[utoipa::path(
    get, path = "/readyz", tag = "service", security(()),
    responses(
        (status = 200, description = "Readiness: the registry answers.", body = Object,
            example = json!({"success": true, "status": "ready"})),
        (status = 503, description = "`not_ready`: the registry does not answer; the \
            sentence names neither its address nor its credentials.", body = crate::wire::Failure),
    )
)]
pub(crate) async fn readyz(
    axum::extract::State(readiness): axum::extract::State<Readiness>,
) -> Result<Json<Value>, ApiError> {
    readiness.check().await.map_err(ApiError::NotReady)?;
    Ok(Json(json!({"success": true, "status": "ready"})))
}

/// A readiness answer and when it was given.
type Answered = (std::time::Instant, framedb_core::Result<()>);

/// `/readyz`'s state: the service whose registry answers it, and its last answer.
#[derive(Clone)]
pub(crate) struct Readiness {
    service: ProvisioningService,
    last: Arc<tokio::sync::Mutex<Option<Answered>>>,
}

impl Readiness {
    /// How long an answer is given again rather than asked anew.
    const KEPT: std::time::Duration = std::time::Duration::from_secs(1);

    fn of(service: ProvisioningService) -> Self {
        Self {
            service,
            last: Arc::default(),
        }
    }

    /// The registry's answer, at most [`Self::KEPT`] old; one check at a time.
    async fn check(&self) -> framedb_core::Result<()> {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = last.as_ref()
            && at.elapsed() < Self::KEPT
        {
            return answer.clone();
        }
        let answer = self.service.ready().await;
        *last = Some((std::time::Instant::now(), answer.clone()));
        answer
    }
}
