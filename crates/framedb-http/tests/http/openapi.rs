//! The OpenAPI document: what `/openapi.json` serves is the committed `docs/openapi.json`,
//! needs no token, and names only routes the API serves.

use axum::http::StatusCode;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::{TestApp, app_with_token, send_raw};

/// Where the committed copy lives, from this crate's directory.
const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

#[tokio::test]
async fn the_served_document_is_the_committed_one() {
    let served = framedb_http::api::openapi_document();
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    if std::env::var_os("FRAMEDB_BLESS").is_some() {
        std::fs::write(COMMITTED, format!("{served}\n")).unwrap();
        return;
    }
    assert!(
        committed.trim_end() == served,
        "docs/openapi.json differs from the document the code makes; after checking the \
         change, rewrite it with `FRAMEDB_BLESS=1 cargo test -p framedb-http --test http \
         openapi::the_served_document_is_the_committed_one`"
    );
    let document: Value = serde_json::from_str(served).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
}

#[tokio::test]
async fn the_document_is_served_without_a_token() {
    let router = app_with_token("s3cret-openapi-token");
    let (status, document) = send_raw(&router, "GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    assert!(document["paths"]["/global/framedb/persistent-instances"]["post"].is_object());
    let (status, _) = send_raw(
        &router,
        "GET",
        "/global/framedb/persistent-instances/cluster/cluster-01",
        None,
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the API itself still needs it"
    );
}

/// Every path and method of the document reaches a handler: none is answered
/// `route_not_found` or `method_not_allowed`.
#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = TestApp::new();
    let document: Value = serde_json::from_str(framedb_http::api::openapi_document()).unwrap();
    let paths = document["paths"].as_object().unwrap();
    let mut seen = 0;
    for (path, item) in paths {
        let uri = path
            .replace("{framedb_id}", "no-such-instance")
            .replace("{cluster_id}", "no-such-cluster")
            .replace("{node_id}", "no-such-node");
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            seen += 1;
            let request = axum::http::Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .header("content-type", "application/json")
                .body(axum::body::Body::from("{}"))
                .unwrap();
            let response = app.router.clone().oneshot(request).await.unwrap();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            // Answers that are not JSON (the metrics, say) are no routing failure either.
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            for code in ["route_not_found", "method_not_allowed"] {
                assert_ne!(body["error"], code, "{method} {path}: {body}");
            }
        }
    }
    assert!(seen >= 12, "only {seen} operations documented");
}

/// The attacker's view of the document: every operation it does not mark open
/// (`security: [{}]` alone) refuses a request without the token, or with a wrong one,
/// with 401 before anything runs; the open ones (probes, the document) answer without.
#[tokio::test]
async fn every_operation_but_the_open_ones_needs_the_token() {
    let router = app_with_token("openapi-attacker-t0ken");
    let document: Value = serde_json::from_str(framedb_http::api::openapi_document()).unwrap();
    let mut guarded = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        let uri = path
            .replace("{framedb_id}", "tidb-001")
            .replace("{cluster_id}", "cluster-01")
            .replace("{node_id}", "node-a");
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let open = operation["security"].as_array().is_some_and(|all| {
                all.iter()
                    .all(|s| s.as_object().is_some_and(|s| s.is_empty()))
            });
            for authorization in [None, Some("Bearer wrong-t0ken")] {
                let mut request = axum::http::Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(&uri)
                    .header("content-type", "application/json");
                if let Some(authorization) = authorization {
                    request = request.header("authorization", authorization);
                }
                let request = request.body(axum::body::Body::from("{}")).unwrap();
                let status = router.clone().oneshot(request).await.unwrap().status();
                if open {
                    assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
                } else {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
                }
            }
            guarded += usize::from(!open);
        }
    }
    assert!(guarded >= 10, "only {guarded} guarded operations");
}
