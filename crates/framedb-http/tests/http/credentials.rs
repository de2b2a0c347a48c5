//! Instance credentials through the global API: once in the create answer, again from
//! `GET .../{framedb_id}/credentials` behind the API token, never cached, logged or kept
//! in the registry.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use framedb_core::InstanceRegistry;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{BASE, CapturedLogs, TestApp, app_with_token, assert_failure, create_body};

/// Sends a request to `router` with an optional bearer token; returns the status, the
/// `Cache-Control` header and the JSON body.
async fn call(
    router: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let response = router
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let cache = response
        .headers()
        .get(header::CACHE_CONTROL)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, cache, serde_json::from_slice(&bytes).unwrap())
}

fn credentials_uri(id: &str) -> String {
    format!("{BASE}/{id}/credentials")
}

/// Creates `id` on `cluster-01`; returns the status, `Cache-Control`, the answer and the
/// password it carries.
async fn create(router: &axum::Router, id: &str) -> (StatusCode, Option<String>, Value, String) {
    let body = create_body(id, "cluster-01", "node-a");
    let (status, cache, created) = call(router, "POST", BASE, Some(body), None).await;
    let password = created["credentials"]["password"]
        .as_str()
        .unwrap_or_else(|| panic!("no password: {created}"))
        .to_owned();
    (status, cache, created, password)
}

#[tokio::test]
async fn the_create_answer_and_get_credentials_carry_the_same_password_uncached() {
    let app = TestApp::new();
    let (status, cache, created, password) = create(&app.router, "tidb-001").await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(cache.as_deref(), Some("no-store"));
    assert_eq!(created["credentials"]["user"], "root");

    let (status, cache, body) =
        call(&app.router, "GET", &credentials_uri("tidb-001"), None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(cache.as_deref(), Some("no-store"));
    assert_eq!(
        body,
        json!({"success": true, "data": {"user": "root", "password": password}})
    );

    // Another instance has a password of its own.
    let (_, _, _, other) = create(&app.router, "tidb-002").await;
    assert_ne!(other, password);

    // Neither the registry's record nor the instance's answer holds it.
    let record = app
        .registry
        .get(&"tidb-001".parse().unwrap())
        .await
        .unwrap();
    assert!(!serde_json::to_string(&record).unwrap().contains(&password));
    let (_, instance) = app.send("GET", &format!("{BASE}/tidb-001"), None).await;
    assert!(!instance.to_string().contains(&password), "{instance}");
}

#[tokio::test]
async fn credentials_of_an_unknown_or_deleted_instance_are_404() {
    let app = TestApp::new();
    let (status, _, body) = call(&app.router, "GET", &credentials_uri("nobody"), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_failure(&body, "instance_not_found");
    app.create("tidb-001", "cluster-01", "node-a").await;
    app.send("DELETE", &format!("{BASE}/tidb-001"), None).await;
    let (status, _, body) =
        call(&app.router, "GET", &credentials_uri("tidb-001"), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_failure(&body, "instance_not_found");
    let (status, _, body) = call(&app.router, "GET", &credentials_uri("Bad_Id"), None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn credentials_need_the_api_token() {
    let router = app_with_token("api-t0ken");
    let body = create_body("tidb-001", "cluster-01", "node-a");
    let (status, _, _) = call(&router, "POST", BASE, Some(body), Some("api-t0ken")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, body) = call(&router, "GET", &credentials_uri("tidb-001"), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(!body.to_string().contains("password"), "{body}");
    let (status, _, body) = call(
        &router,
        "GET",
        &credentials_uri("tidb-001"),
        None,
        Some("api-t0ken"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn no_password_reaches_a_log_line() {
    let logs = CapturedLogs::default();
    let _guard = logs.install();
    let app = TestApp::new();
    let (_, _, _, password) = create(&app.router, "tidb-001").await;
    call(&app.router, "GET", &credentials_uri("tidb-001"), None, None).await;
    app.send("DELETE", &format!("{BASE}/tidb-001"), None).await;
    let logged = logs.text();
    assert!(logged.contains("instance created"), "the test saw the logs");
    assert!(
        !logged.contains(&password),
        "the password reached a log line"
    );
}
