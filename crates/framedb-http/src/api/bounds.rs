//! Bounds on the work one service takes on: how many requests it serves at once (more
//! are refused at once with 503, rather than queued without end) and how long one may
//! take (504 after that; the work of a create or delete runs on its own task and
//! finishes anyway, so nothing is left half-made).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ApiError;
use crate::settings::ServeSettings;

/// A service's bounds, shared by its requests.
#[derive(Debug, Clone)]
pub(crate) struct Bounds {
    request_timeout: Duration,
    /// Requests being served. A counter rather than a semaphore: refused requests never
    /// wait, and a semaphore's release takes a lock on every request.
    serving: Arc<AtomicU32>,
    limit: u32,
}

impl Bounds {
    /// The bounds `serve` sets.
    pub fn of(serve: &ServeSettings) -> Self {
        Self {
            request_timeout: Duration::from_secs(serve.request_timeout_secs),
            serving: Arc::default(),
            limit: serve.max_requests,
        }
    }

    /// A slot for one request, if fewer than the limit are being served.
    fn enter(&self) -> Option<Slot<'_>> {
        let before = self.serving.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(&self.serving);
        (before < self.limit).then_some(slot)
    }
}

/// One request being served; dropping it frees its slot.
struct Slot<'a>(&'a AtomicU32);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves a request within the bounds. A response's body (a status stream) is not timed:
/// the limit is on producing the answer.
pub(crate) async fn bounded(
    State(bounds): State<Bounds>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(_slot) = bounds.enter() else {
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
