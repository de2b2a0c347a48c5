//! Request ids: every request carries one in `x-request-id`, the caller's when it sent a
//! usable one (at most 64 characters of letters, digits, `-`, `_`, `.`, `:`), a new one
//! otherwise; the answer returns it, the request's log span and its failure's log line
//! name it, and the calls it makes to local services send it on, so that one create can
//! be followed across both tiers. The id of the request being served is a task-local
//! ([`current`]); work spawned for a request carries it on ([`carried`]).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

tokio::task_local! {
    /// The id of the request this task serves.
    static REQUEST_ID: HeaderValue;
}

/// The header that carries a request's id.
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest id taken from a caller.
const MAX_LEN: usize = 64;

/// Whether a caller's id is one to keep: short, and of characters safe in any log.
fn usable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A new id: this process's random prefix and a counter, so unique across processes
/// and cheap (no system call per request).
fn new_id() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| {
        framedb_core::Stamp::generate()
            .map(|stamp| stamp.as_str()[..16].to_owned())
            .unwrap_or_else(|_| format!("{:016x}", std::process::id()))
    });
    format!("{prefix}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Sets the request's id (the caller's if usable) before the rest of the stack sees
/// the request, and returns it in the answer.
pub(crate) async fn tagged(mut request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| usable(id))
        .map(str::to_owned);
    let id = given.unwrap_or_else(new_id);
    // Only the characters `usable` admits, or hex and `-`: always a valid header value.
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("-"));
    request
        .headers_mut()
        .insert(X_REQUEST_ID.clone(), value.clone());
    let mut response = REQUEST_ID.scope(value.clone(), next.run(request)).await;
    response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    response
}

/// The id of the request this task serves, if it serves one.
pub(crate) fn current() -> Option<HeaderValue> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// `work` with the id of the request this task serves (if any), for another task.
pub(crate) fn carried<F: Future>(work: F) -> impl Future<Output = F::Output> {
    let id = current();
    async move {
        match id {
            Some(id) => REQUEST_ID.scope(id, work).await,
            None => work.await,
        }
    }
}

/// The id [`tagged`] set on `request`.
pub(crate) fn of(request: &Request) -> &str {
    request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_kept_and_new_ones_differ() {
        assert!(usable("3f2a-77:req.1_b"));
        for bad in ["", "a b", "x\\ny", &"a".repeat(65), "é"] {
            assert!(!usable(bad), "{bad:?}");
        }
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert!(usable(&a), "{a}");
    }
}
