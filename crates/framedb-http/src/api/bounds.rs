//! Bounds on the work one service takes on: how many requests it serves at once (more
//! are refused at once with 503, rather than queued without end) and how long one may
//! take (504 after that; the work of a create or delete runs on its own task and
//! finishes anyway, so nothing is left half-made).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::Semaphore;

use crate::error::ApiError;
use crate::settings::ServeSettings;

/// A service's bounds, shared by its requests.
#[derive(Debug, Clone)]
pub(crate) struct Bounds {
    request_timeout: Duration,
    permits: Arc<Semaphore>,
    limit: u32,
}

impl Bounds {
    /// The bounds `serve` sets.
    pub fn of(serve: &ServeSettings) -> Self {
        Self {
            request_timeout: Duration::from_secs(serve.request_timeout_secs),
            permits: Arc::new(Semaphore::new(serve.max_requests as usize)),
            limit: serve.max_requests,
        }
    }
}

/// Serves a request within the bounds. A response's body (a status stream) is not timed:
/// the limit is on producing the answer.
pub(crate) async fn bounded(
    State(bounds): State<Bounds>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Ok(_permit) = bounds.permits.try_acquire() else {
        return Err(ApiError::Overloaded {
            what: "requests",
            limit: bounds.limit,
        });
    };
    tokio::time::timeout(bounds.request_timeout, next.run(request))
        .await
        .map_err(|_| ApiError::RequestTimeout {
            after: bounds.request_timeout,
        })
}
