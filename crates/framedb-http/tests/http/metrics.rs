//! `/metrics`: what requests, creates, deletes and the ports' calls leave in the series,
//! labels that callers cannot multiply, and the token rule.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::{BASE, TestApp, app_with_token};

/// `GET /metrics` on `router`: its status, content type and text.
async fn scrape(router: &axum::Router, token: Option<&str>) -> (StatusCode, String, String) {
    let mut request = Request::builder().uri("/metrics");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

/// The value of the sample that `line_start` (name and labels) begins.
fn sample(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(line_start))
        .and_then(|rest| rest.trim().parse().ok())
}

#[tokio::test]
async fn a_create_and_a_delete_show_in_the_series() {
    let app = TestApp::new();
    let (status, _) = app.create("metrics-001", "cluster-01", "node-a").await;
    assert_eq!(status, StatusCode::CREATED);
    app.send("GET", &format!("{BASE}/metrics-001"), None).await;
    let (status, _) = app
        .send("DELETE", &format!("{BASE}/metrics-001"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    app.send("DELETE", &format!("{BASE}/metrics-001"), None)
        .await;

    let (status, content_type, text) = scrape(&app.router, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    let created =
        format!("framedb_http_requests_total{{route=\"{BASE}\",method=\"POST\",status=\"201\"}}");
    assert_eq!(sample(&text, &created), Some(1.0), "{text}");
    // The route is the pattern, never the id.
    let read = format!(
        "framedb_http_requests_total{{route=\"{BASE}/{{framedb_id}}\",method=\"GET\",status=\"200\"}}"
    );
    assert_eq!(sample(&text, &read), Some(1.0), "{text}");
    assert!(!text.contains("metrics-001"), "{text}");
    for (series, value) in [
        (
            "framedb_instance_operations_total{operation=\"create\",outcome=\"ok\"}",
            1.0,
        ),
        (
            "framedb_instance_operations_total{operation=\"delete\",outcome=\"ok\"}",
            1.0,
        ),
        (
            "framedb_instance_operations_total{operation=\"delete\",outcome=\"refused\"}",
            1.0,
        ),
        (
            "framedb_cluster_calls_total{via=\"supplied\",operation=\"deploy\",outcome=\"ok\"}",
            1.0,
        ),
        (
            "framedb_registry_operation_duration_seconds_count{operation=\"insert\",outcome=\"ok\"}",
            1.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series}: {text}");
    }
    let free = sample(&text, "framedb_free_node_ports{cluster_id=\"cluster-01\"}")
        .expect("free ports after an allocation");
    assert!((1.0..=100.0).contains(&free), "{free}");
}

#[tokio::test]
async fn callers_cannot_mint_series() {
    let app = TestApp::new();
    for i in 0..5 {
        let request = Request::builder()
            .method(format!("BREW{i}").as_str())
            .uri(format!("/no/such/path/{i}"))
            .body(Body::empty())
            .unwrap();
        app.router.clone().oneshot(request).await.unwrap();
    }
    let (_, _, text) = scrape(&app.router, None).await;
    assert_eq!(
        sample(
            &text,
            "framedb_http_requests_total{route=\"unmatched\",method=\"other\",status=\"404\"}"
        ),
        Some(5.0),
        "{text}"
    );
    assert!(
        !text.contains("BREW") && !text.contains("/no/such"),
        "{text}"
    );
}

#[tokio::test]
async fn the_metrics_need_the_api_token() {
    let router = app_with_token("metrics-t0ken");
    // A refused request, counted like any other (scrapes themselves are not).
    let request = Request::builder()
        .uri(format!("{BASE}/cluster/cluster-01"))
        .body(Body::empty())
        .unwrap();
    router.clone().oneshot(request).await.unwrap();
    let (status, _, text) = scrape(&router, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    let (status, _, text) = scrape(&router, Some("metrics-t0ken")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("framedb_http_requests_total"), "{text}");
}

#[tokio::test]
async fn a_cluster_out_of_ports_shows_none_free() {
    let app = TestApp::new();
    let mut created = 0;
    loop {
        let (status, body) = app
            .create(&format!("exhaust-{created}"), "cluster-02", "node-a")
            .await;
        if status == StatusCode::CONFLICT {
            assert_eq!(body["error"], "ports_exhausted", "{body}");
            break;
        }
        assert_eq!(status, StatusCode::CREATED, "{body}");
        created += 1;
        assert!(created <= 100, "more creates than ports");
    }
    let (_, _, text) = scrape(&app.router, None).await;
    assert_eq!(
        sample(&text, "framedb_free_node_ports{cluster_id=\"cluster-02\"}"),
        Some(0.0),
        "{text}"
    );
}

/// `--metrics-token`: a scraper's token opens `/metrics` and nothing else; the API's
/// token still opens it too.
#[tokio::test]
async fn a_scrape_only_token_opens_the_metrics_alone() {
    use framedb_core::memory::{InMemoryFleet, InMemoryRegistry};
    use framedb_http::Clusters;
    use framedb_http::settings::GlobalSettings;
    use framedb_http::startup::{GlobalParts, global_router};
    let mut settings = GlobalSettings::default();
    settings.serve.token = Some("api-t0ken".into());
    settings.serve.metrics_token = Some("scrape-t0ken".into());
    let router = global_router(
        &settings,
        GlobalParts {
            registry: std::sync::Arc::new(InMemoryRegistry::new()),
            clusters: Clusters::of(std::sync::Arc::new(InMemoryFleet::demo(
                std::time::Duration::ZERO,
            ))),
            directory: None,
        },
    );
    for token in ["scrape-t0ken", "api-t0ken"] {
        let (status, _, _) = scrape(&router, Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{token}");
    }
    let (status, _, _) = scrape(&router, Some("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let request = Request::builder()
        .uri(format!("{BASE}/cluster/cluster-01"))
        .header("authorization", "Bearer scrape-t0ken")
        .body(Body::empty())
        .unwrap();
    let answer = router.clone().oneshot(request).await.unwrap();
    assert_eq!(
        answer.status(),
        StatusCode::UNAUTHORIZED,
        "the API stays shut"
    );
}
