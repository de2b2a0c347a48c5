//! The success answers the handlers of both APIs share, and running multi-step work to
//! completion.

use axum::Json;
use axum::http::HeaderValue;
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};
use framedb_core::Credentials;
use serde::Serialize;

use crate::error::{ApiError, Result};
use crate::wire::Data;

/// `{success: true, message, port, credentials}`: the answer to a create.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Created {
    pub success: bool,
    pub message: &'static str,
    pub port: u16,
    pub credentials: Credentials,
}

/// An answer that carries a password: no cache (a browser's, a proxy's) may keep it.
pub(crate) struct NoStore<T>(pub T);

impl<T: IntoResponse> IntoResponse for NoStore<T> {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// `{success: true, message}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Done {
    success: bool,
    message: &'static str,
}

/// `{success: true, message}`.
pub(crate) fn done(message: &'static str) -> Json<Done> {
    Json(Done {
        success: true,
        message,
    })
}

/// `{success: true, data}`.
pub(crate) fn data<T>(data: T) -> Json<Data<T>> {
    Json(Data {
        success: true,
        data,
    })
}

/// Runs a multi-step operation on its own task, so that a client that hangs up does not
/// cancel it halfway and leave an orphan behind. The task keeps the request's id and log
/// span.
pub(crate) async fn to_completion<T: Send + 'static>(
    work: impl Future<Output = framedb_core::Result<T>> + Send + 'static,
) -> Result<T> {
    use tracing::Instrument;
    tokio::spawn(super::request_id::carried(work).instrument(tracing::Span::current()))
        .await
        .map_err(|join_error| {
            let fault = framedb_core::Fault::new("provisioning task failed").because(join_error);
            ApiError::Domain(framedb_core::Error::Internal(fault))
        })?
        .map_err(ApiError::from)
}
