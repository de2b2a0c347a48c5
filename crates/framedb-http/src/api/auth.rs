//! Bearer-token authentication of both APIs: when a token is configured, every route but
//! the probes' (`/healthz`, `/readyz`) requires `Authorization: Bearer <token>`, compared
//! in constant time so that the answer's timing does not reveal how much of a guess was
//! right.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The token an API requires, or none (an open API).
#[derive(Clone, Default)]
pub struct ApiToken(Option<Arc<str>>);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token itself.
        f.write_str(if self.0.is_some() {
            "ApiToken(set)"
        } else {
            "ApiToken(none)"
        })
    }
}

impl ApiToken {
    /// No token: every request is let through.
    pub fn none() -> Self {
        Self(None)
    }

    /// Requests must carry `token`; an empty string means no token.
    pub fn new(token: Option<String>) -> Self {
        Self(token.filter(|t| !t.is_empty()).map(Arc::from))
    }

    /// Requests must carry the configured `token`, if any (an empty one is none).
    pub fn of(token: Option<&crate::settings::Secret>) -> Self {
        Self::new(token.map(|token| token.expose().to_owned()))
    }

    /// Whether a token is required.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    fn admits(&self, header: Option<&str>) -> bool {
        let Some(expected) = &self.0 else {
            return true;
        };
        // The scheme is case-insensitive (RFC 9110 §11.1); the token is not.
        let Some((scheme, given)) = header.and_then(|h| h.split_once(' ')) else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return false;
        }
        given
            .trim_start_matches(' ')
            .as_bytes()
            .ct_eq(expected.as_bytes())
            .into()
    }
}

/// What `/metrics` takes: the API's token, or the scrape-only one (`--metrics-token`).
#[derive(Clone, Debug, Default)]
pub struct MetricsToken {
    /// The API's.
    pub api: ApiToken,
    /// The one that opens `/metrics` alone, if any.
    pub scrape: ApiToken,
}

/// Refuses a scrape with neither the API's token nor the scrape-only one with 401.
pub(crate) async fn require_metrics_token(
    State(tokens): State<MetricsToken>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if tokens.api.admits(header) || (tokens.scrape.is_set() && tokens.scrape.admits(header)) {
        Ok(next.run(request).await)
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Refuses a request without the configured token with 401.
pub(crate) async fn require_token(
    State(token): State<ApiToken>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if token.admits(header) {
        Ok(next.run(request).await)
    } else {
        Err(ApiError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_only_the_exact_bearer_token() {
        let token = ApiToken::new(Some("s3cret".into()));
        for right in [
            "Bearer s3cret",
            "bearer s3cret",
            "BEARER s3cret",
            "Bearer  s3cret",
        ] {
            assert!(token.admits(Some(right)), "{right}");
        }
        for wrong in [
            None,
            Some("s3cret"),
            Some("Bearer s3cre"),
            Some("Bearer s3crett"),
            Some("Basic s3cret"),
            Some("Bearer S3CRET"),
            Some("Bearers3cret"),
        ] {
            assert!(!token.admits(wrong), "{wrong:?}");
        }
        assert!(ApiToken::none().admits(None));
        assert!(!ApiToken::new(Some(String::new())).is_set());
        assert_eq!(format!("{token:?}"), "ApiToken(set)");
    }
}
