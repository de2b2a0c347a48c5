//! The HTTP layer's error: a domain error or a request the API cannot read, and the one
//! place where errors become status codes and the `{success, message, error, details?}`
//! envelope ([`crate::wire::Failure`]). It is also the edge where a failed request is
//! logged, once, with its whole cause chain: server errors at ERROR, refusals at DEBUG.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use framedb_core::Chain;
use serde_json::{Value, json};

use crate::wire::Failure;

/// `Result` with the HTTP layer's [`ApiError`] as its default error.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The domain refused or failed the operation.
    #[error(transparent)]
    Domain(#[from] framedb_core::Error),

    /// The body is not JSON at all.
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),

    /// The body or the query string is JSON of the wrong shape or with invalid values.
    #[error("{0}")]
    InvalidRequest(String),

    /// The caller asked for what only the service's operator may allow.
    #[error("{0}")]
    Forbidden(String),

    /// The body is not sent as JSON.
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,

    /// The body is larger than the API accepts.
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },

    /// The request lacks the configured bearer token, or carries a wrong one.
    #[error("this API requires a valid bearer token (Authorization: Bearer <token>)")]
    Unauthorized,

    /// No route has this path.
    #[error("no such endpoint; see the README for the API's paths")]
    RouteNotFound,

    /// The path exists but not with this method.
    #[error("this endpoint does not accept that method")]
    MethodNotAllowed,

    /// The server is serving as many requests (or status streams) as it may at once.
    #[error("the server is serving its limit of {limit} {what} at once; try again shortly")]
    Overloaded {
        /// What is limited: "requests" or "status streams".
        what: &'static str,
        /// The limit.
        limit: u32,
    },

    /// `/readyz`: the server cannot take requests now, because its registry does not
    /// answer (the domain's error says why).
    #[error("this server is not ready: {0}")]
    NotReady(#[source] framedb_core::Error),

    /// The request took longer than the server's per-request limit.
    #[error(
        "the request did not finish within {} s; a create or delete under way goes on, and \
         its outcome can be read back",
        after.as_secs()
    )]
    RequestTimeout {
        /// The limit that passed.
        after: std::time::Duration,
    },
}

impl ApiError {
    /// The status, the stable code, and the sentence for the caller.
    fn parts(&self) -> (StatusCode, &'static str, String) {
        use framedb_core::Error as E;
        let own = || self.to_string();
        match self {
            Self::Domain(error) => match error {
                E::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_input", own()),
                E::InstanceNotFound(_) => (StatusCode::NOT_FOUND, "instance_not_found", own()),
                E::ClusterNotFound(_) => (StatusCode::NOT_FOUND, "cluster_not_found", own()),
                E::AlreadyExists(_) => (StatusCode::CONFLICT, "already_exists", own()),
                E::PortsExhausted(_) => (StatusCode::CONFLICT, "ports_exhausted", own()),
                E::ClusterInUse { .. } => (StatusCode::CONFLICT, "cluster_in_use", own()),
                E::ClusterConflict { .. } => (StatusCode::CONFLICT, "cluster_conflict", own()),
                E::PortTaken { .. } => (StatusCode::CONFLICT, "port_taken", own()),
                E::PortOutOfRange { .. } => (StatusCode::CONFLICT, "port_out_of_range", own()),
                E::ObjectConflict { .. } => (StatusCode::CONFLICT, "conflict", own()),
                E::ShrinkRefused { .. } => (StatusCode::BAD_REQUEST, "shrink_refused", own()),
                E::NotExpandable { .. } => (StatusCode::CONFLICT, "not_expandable", own()),
                E::InstanceBusy { .. } => (StatusCode::CONFLICT, "instance_busy", own()),
                E::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", own()),
                E::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout", own()),
                E::BadGateway(_) => (StatusCode::BAD_GATEWAY, "bad_gateway", own()),
                // The caller gets no internals; the log has them.
                E::Internal(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "an internal error occurred; the server log has the details".to_owned(),
                ),
            },
            Self::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json", own()),
            Self::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_input", own()),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", own()),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                own(),
            ),
            Self::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", own())
            }
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", own()),
            Self::RouteNotFound => (StatusCode::NOT_FOUND, "route_not_found", own()),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", own()),
            Self::Overloaded { .. } => (StatusCode::SERVICE_UNAVAILABLE, "overloaded", own()),
            Self::RequestTimeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "timeout", own()),
            Self::NotReady(cause) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                // The domain's sentences of an unreachable or slow registry name no
                // address; any other cause is for the log only, as in `Internal`.
                if cause.is_unreachable() {
                    own()
                } else {
                    "this server is not ready: its registry refused the check; the server log \
                     has the details"
                        .to_owned()
                },
            ),
        }
    }

    /// Data a client needs to act on the failure.
    fn details(&self) -> Option<Value> {
        match self {
            Self::Domain(framedb_core::Error::PortTaken { port, .. }) => {
                Some(json!({ "port": port }))
            }
            Self::Domain(framedb_core::Error::PortOutOfRange {
                cluster,
                port,
                valid,
            }) => Some(json!({ "cluster_id": cluster, "port": port, "valid_ports": valid })),
            Self::Domain(framedb_core::Error::ClusterInUse { instances, .. }) => {
                Some(json!({ "instances": instances }))
            }
            Self::Domain(framedb_core::Error::ClusterConflict { cluster, conflict }) => {
                Some(json!({ "cluster_id": cluster, "differs": conflict.as_str() }))
            }
            Self::Domain(framedb_core::Error::ObjectConflict {
                cluster, object, ..
            }) => Some(json!({ "cluster_id": cluster, "object": object })),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        // The request's span is DEBUG (off at the default level): the id goes on the line.
        let request_id = crate::api::request_id::current();
        let request_id = request_id
            .as_ref()
            .and_then(|id| id.to_str().ok())
            .unwrap_or_default();
        if status.is_server_error() {
            tracing::error!(error = code, request_id, cause = %Chain(&self), "request failed");
        } else {
            tracing::debug!(error = code, request_id, %message, "request refused");
        }
        let body = Failure {
            success: false,
            message,
            error: code.to_owned(),
            details: self.details(),
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            // RFC 9110 §11.6.1: a 401 names the scheme the client must use.
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<framedb_core::Invalid> for ApiError {
    fn from(invalid: framedb_core::Invalid) -> Self {
        Self::Domain(invalid.into())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::InvalidRequest(format!(
            "the request path is invalid: {}",
            rejection.body_text()
        ))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        let text = rejection.body_text();
        let detail = text
            .strip_prefix("Failed to deserialize query string: ")
            .unwrap_or(&text);
        Self::InvalidRequest(format!("the query string is invalid: {detail}"))
    }
}
