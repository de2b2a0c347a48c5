//! Every refusal answers with the failure envelope, the right code and a sentence, and
//! changes nothing.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use framedb_core::memory::{InMemoryFleet, InMemoryRegistry};
use framedb_core::ports::{MockClusterDeployer, MockInstanceRegistry};
use framedb_core::{Error, PORT_RANGE};
use serde_json::{Value, json};

use super::{BASE, TestApp, app, assert_failure, create_body, send_raw};

/// Posts `body` as a create and expects a 400 that writes nothing.
async fn refused_create(app: &TestApp, body: Value, code: &str) -> String {
    let (status, answer) = app.send("POST", BASE, Some(body.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {answer}");
    assert!(app.registry.is_empty(), "{body} wrote a record");
    assert!(
        app.fleet
            .workloads(&"cluster-01".parse().unwrap())
            .unwrap()
            .is_empty()
    );
    assert_failure(&answer, code)
}

#[tokio::test]
async fn bad_ids_are_400() {
    let app = TestApp::new();
    for bad in [
        "TIDB-001",
        &"a".repeat(41),
        "query",
        "cluster",
        "1abc",
        "a_b",
        "",
    ] {
        let message = refused_create(
            &app,
            create_body(bad, "cluster-01", "node-a"),
            "invalid_input",
        )
        .await;
        assert!(message.contains("framedb_id"), "{message}");
    }
    for bad in ["-x", "a b", &"c".repeat(64)] {
        let message = refused_create(&app, create_body("ok", bad, "node-a"), "invalid_input").await;
        assert!(message.contains("cluster_id"), "{message}");
        let message =
            refused_create(&app, create_body("ok", "cluster-01", bad), "invalid_input").await;
        assert!(message.contains("node_id"), "{message}");
    }
}

#[tokio::test]
async fn bad_quantities_are_400() {
    let app = TestApp::new();
    for bad in [
        json!("2GB"),
        json!("lots"),
        json!("512Mi"),
        json!(""),
        json!(2),
        json!("-1Gi"),
    ] {
        let mut body = create_body("tidb-001", "cluster-01", "node-a");
        body["storage_size"] = bad;
        let message = refused_create(&app, body, "invalid_input").await;
        assert!(message.contains("storage_size"), "{message}");
    }
}

#[tokio::test]
async fn bad_metadata_is_400() {
    let app = TestApp::new();
    for bad in [
        json!("team=analytics"),
        json!(["a"]),
        json!(null),
        json!(42),
        json!({"$set": 1}),
        json!({"a.b": 1}),
        json!({"blob": "x".repeat(70 * 1024)}),
    ] {
        let mut body = create_body("tidb-001", "cluster-01", "node-a");
        body["metadata"] = bad;
        let message = refused_create(&app, body, "invalid_input").await;
        assert!(message.contains("metadata"), "{message}");
    }
}

#[tokio::test]
async fn malformed_json_unknown_and_missing_fields_are_400() {
    let app = TestApp::new();
    let trailing = format!("{} {{}}", create_body("tidb-001", "cluster-01", "node-a"));
    for (raw, code, says) in [
        ("{\"framedb_id\": ", "malformed_json", "not valid JSON"),
        ("not json", "malformed_json", "not valid JSON"),
        ("", "malformed_json", "empty"),
        ("[]", "invalid_input", "expected struct"),
        (&trailing, "malformed_json", "trailing"),
    ] {
        let (status, body) = send_raw(
            &app.router,
            "POST",
            BASE,
            Some(raw),
            Some("application/json"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{raw:?}");
        let message = assert_failure(&body, code);
        assert!(message.contains(says), "{raw:?}: {message}");
    }
    let mut extra = create_body("tidb-001", "cluster-01", "node-a");
    extra["replicas"] = json!(3);
    let message = refused_create(&app, extra, "invalid_input").await;
    assert!(message.contains("unknown field `replicas`"), "{message}");
    let mut missing = create_body("tidb-001", "cluster-01", "node-a");
    missing.as_object_mut().unwrap().remove("storage_size");
    let message = refused_create(&app, missing, "invalid_input").await;
    assert!(
        message.contains("missing field `storage_size`"),
        "{message}"
    );
    let mut wrong_type = create_body("tidb-001", "cluster-01", "node-a");
    wrong_type["node_id"] = json!(7);
    let message = refused_create(&app, wrong_type, "invalid_input").await;
    assert!(message.starts_with("node_id: invalid type"), "{message}");
}

#[tokio::test]
async fn bad_filters_are_400() {
    let app = TestApp::new();
    app.create("tidb-001", "cluster-01", "node-a").await;
    let mut deep = json!({"metadata.a": 1});
    for _ in 0..8 {
        deep = json!({"$and": [deep]});
    }
    for (filter, says) in [
        (json!({"$where": "this.port > 0"}), "$where"),
        (
            json!({"$function": {"body": "x", "args": [], "lang": "js"}}),
            "$function",
        ),
        (json!({"$expr": {"$gt": ["$port", 1]}}), "$expr"),
        (json!({"port": {"$accumulator": {}}}), "$accumulator"),
        (json!({"port": {"$foo": 1}}), "$foo"),
        (json!({"$jsonSchema": {}}), "$jsonSchema"),
        (json!({"public_url": "x"}), "public_url"),
        (
            json!({"metadata.team": {"$regex": "(a)\\1"}}),
            "backreferences",
        ),
        (
            json!({"metadata.team": {"$regex": "^(a+)+$"}}),
            "nested quantifiers",
        ),
        (
            json!({"metadata.team": {"$regex": "(x|x)*y"}}),
            "overlapping alternatives",
        ),
        (json!(["cluster_id"]), "object"),
        (deep, "deep"),
        (json!({"metadata.blob": "x".repeat(17 * 1024)}), "16 KiB"),
    ] {
        let (status, body) = app
            .send("POST", &format!("{BASE}/query"), Some(filter.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{filter}");
        let message = assert_failure(&body, "invalid_input");
        assert!(message.contains(says), "{filter}: {message}");
    }
    for bad in [
        "limit=0",
        "limit=10001",
        "limit=abc",
        "skip=-1",
        "sort=public_url",
        "page=2",
    ] {
        let (status, body) = app
            .send("POST", &format!("{BASE}/query?{bad}"), Some(json!({})))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_failure(&body, "invalid_input");
    }
    // Nothing above changed the one record.
    assert_eq!(app.registry.len(), 1);
}

#[tokio::test]
async fn bad_path_ids_are_400() {
    let app = TestApp::new();
    for (method, path, field) in [
        ("GET", format!("{BASE}/TIDB-001"), "framedb_id"),
        ("DELETE", format!("{BASE}/Bad_Id"), "framedb_id"),
        ("DELETE", format!("{BASE}/cluster"), "reserved"),
        ("GET", format!("{BASE}/cluster/-bad-"), "cluster_id"),
        (
            "GET",
            format!("{BASE}/cluster/cluster-01/node/no%20de"),
            "node_id",
        ),
    ] {
        let (status, body) = app.send(method, &path, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {body}");
        let message = assert_failure(&body, "invalid_input");
        assert!(message.contains(field), "{message}");
    }
}

#[tokio::test]
async fn unknown_instances_and_clusters_are_404() {
    let app = TestApp::new();
    let (status, body) = app.send("GET", &format!("{BASE}/nobody"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_failure(&body, "instance_not_found");
    let (status, body) = app.send("DELETE", &format!("{BASE}/nobody"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_failure(&body, "instance_not_found");
    let (status, body) = app
        .send("GET", &format!("{BASE}/cluster/cluster-99"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_failure(&body, "cluster_not_found");
    let (status, body) = app.create("x", "cluster-99", "node-a").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_failure(&body, "cluster_not_found");
    assert!(app.registry.is_empty());
}

#[tokio::test]
async fn duplicate_ids_and_full_clusters_are_409() {
    let app = TestApp::new();
    let (status, _) = app.create("tidb-002", "cluster-01", "node-a").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app.create("tidb-002", "cluster-02", "node-b").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_failure(&body, "already_exists");
    // The losing create touched neither cluster.
    assert!(
        app.fleet
            .workloads(&"cluster-02".parse().unwrap())
            .unwrap()
            .is_empty()
    );

    let cluster = "cluster-02".parse().unwrap();
    for port in PORT_RANGE {
        app.fleet.occupy_port(&cluster, port, "filler").unwrap();
    }
    let (status, body) = app.create("tidb-003", "cluster-02", "node-a").await;
    assert_eq!(status, StatusCode::CONFLICT);
    let message = assert_failure(&body, "ports_exhausted");
    assert!(message.contains("cluster-02"), "{message}");
    assert_eq!(app.registry.len(), 1);
}

#[tokio::test]
async fn unreachable_and_slow_backends_are_503_and_504_and_internals_stay_inside() {
    let fleet = Arc::new(InMemoryFleet::demo(Duration::ZERO));
    for (error, status, code) in [
        (
            Error::Unavailable("cluster-01's API cannot be reached".into()),
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
        ),
        (
            Error::Timeout("cluster-01's API did not answer in time".into()),
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
        ),
        (
            Error::Internal("secret driver detail at 10.0.0.7".into()),
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
        ),
    ] {
        let registry = Arc::new(InMemoryRegistry::new());
        let mut deployer = MockClusterDeployer::new();
        let failure = error.clone();
        deployer
            .expect_deploy()
            .returning(move |_| Err(failure.clone()));
        deployer.expect_undeploy().returning(|_, _, _, _| Ok(true));
        let router = app(registry.clone(), Arc::new(deployer), fleet.clone());
        let body = create_body("tidb-001", "cluster-01", "node-a").to_string();
        let (got, answer) =
            send_raw(&router, "POST", BASE, Some(&body), Some("application/json")).await;
        assert_eq!(got, status, "{answer}");
        let message = assert_failure(&answer, code);
        assert!(
            !message.contains("10.0.0.7"),
            "internal detail leaked: {message}"
        );
        assert!(registry.is_empty());
    }

    let mut registry = MockInstanceRegistry::new();
    registry
        .expect_get()
        .returning(|_| Err(Error::Unavailable("the registry cannot be reached".into())));
    let router = app(Arc::new(registry), fleet.clone(), fleet);
    let (status, body) = send_raw(&router, "GET", &format!("{BASE}/tidb-001"), None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_failure(&body, "unavailable");
}

#[tokio::test]
async fn wrong_media_type_size_route_and_method_keep_the_envelope() {
    let app = TestApp::new();
    let body = create_body("tidb-001", "cluster-01", "node-a").to_string();
    let (status, answer) =
        send_raw(&app.router, "POST", BASE, Some(&body), Some("text/plain")).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_failure(&answer, "unsupported_media_type");
    // No content type at all is read as JSON, as curl users expect.
    let (status, _) = send_raw(&app.router, "POST", BASE, Some(&body), None).await;
    assert_eq!(status, StatusCode::CREATED);

    let huge = format!(
        "{{\"metadata\": {{\"x\": \"{}\"}}}}",
        "y".repeat(2 * 1024 * 1024)
    );
    let (status, answer) = send_raw(
        &app.router,
        "POST",
        BASE,
        Some(&huge),
        Some("application/json"),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_failure(&answer, "payload_too_large");

    let (status, answer) = app.send("GET", "/global/framedb/nothing-here", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_failure(&answer, "route_not_found");
    let (status, answer) = app.send("PUT", &format!("{BASE}/tidb-001"), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_failure(&answer, "method_not_allowed");
    let (status, answer) = app.send("GET", &format!("{BASE}/query"), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_failure(&answer, "method_not_allowed");
    assert_eq!(app.registry.len(), 1);
}

/// `/readyz` asks the registry; a registry that cannot answer makes it 503 `not_ready`
/// with the registry's own sentence, and one that refuses gives away nothing of why.
#[tokio::test]
async fn readyz_is_503_not_ready_while_the_registry_fails_its_check() {
    let fleet = Arc::new(InMemoryFleet::demo(Duration::ZERO));
    let mut down = MockInstanceRegistry::new();
    down.expect_ping().times(1).returning(|| {
        Err(Error::Unavailable(
            "the registry (MongoDB) cannot be reached".into(),
        ))
    });
    let router = app(Arc::new(down), fleet.clone(), fleet.clone());
    let (status, body) = send_raw(&router, "GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let message = assert_failure(&body, "not_ready");
    assert!(
        message.contains("the registry (MongoDB) cannot be reached"),
        "{message}"
    );

    let mut refusing = MockInstanceRegistry::new();
    refusing.expect_ping().times(1).returning(|| {
        Err(Error::Internal(
            "authentication failed for framedb:hunter2@10.0.0.7".into(),
        ))
    });
    let router = app(Arc::new(refusing), fleet.clone(), fleet);
    let (status, body) = send_raw(&router, "GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let message = assert_failure(&body, "not_ready");
    assert!(
        !message.contains("hunter2") && !message.contains("10.0.0.7"),
        "internal detail leaked: {message}"
    );
}
