//! Each endpoint's success shape and codes, through `oneshot`.

use axum::http::StatusCode;
use serde_json::json;

use super::{BASE, TestApp, create_body, ids};

#[tokio::test]
async fn create_answers_201_with_the_port() {
    let app = TestApp::new();
    let (status, mut body) = app.create("tidb-001", "cluster-01", "node-a").await;
    assert_eq!(status, StatusCode::CREATED);
    let credentials = body.as_object_mut().unwrap().remove("credentials").unwrap();
    assert_eq!(credentials["user"], "root");
    assert!(credentials["password"].as_str().unwrap().len() >= 22);
    assert_eq!(
        body,
        json!({"success": true, "message": "Instance created in global registry", "port": 30900})
    );
    let (_, body) = app.create("tidb-002", "cluster-01", "node-b").await;
    assert_eq!(body["port"], 30901);
    // Ports are per cluster.
    let (_, body) = app.create("tidb-003", "cluster-02", "node-a").await;
    assert_eq!(body["port"], 30900);
}

#[tokio::test]
async fn metadata_is_optional() {
    let app = TestApp::new();
    let body = json!({"framedb_id": "bare", "node_id": "node-a", "cluster_id": "cluster-01", "storage_size": "1Gi"});
    let (status, _) = app.send("POST", BASE, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, body) = app.send("GET", &format!("{BASE}/bare"), None).await;
    assert_eq!(body["data"]["metadata"], json!({}));
}

#[tokio::test]
async fn get_returns_the_whole_instance() {
    let app = TestApp::new();
    app.create("tidb-001", "cluster-01", "node-a").await;
    let (status, body) = app.send("GET", &format!("{BASE}/tidb-001"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], true);
    let data = &body["data"];
    for (field, value) in [
        ("framedb_id", json!("tidb-001")),
        ("node_id", json!("node-a")),
        ("cluster_id", json!("cluster-01")),
        ("port", json!(30900)),
        ("public_url", json!("http://cluster-01:30900")),
        (
            "local_url",
            json!("mysql://tidb-001.framedb-storage.svc.cluster.local:4000"),
        ),
        ("metadata", json!({"team": "analytics"})),
        ("storage_size", json!("2Gi")),
        ("status", json!("Running")),
    ] {
        assert_eq!(data[field], value, "{field}");
    }
    assert!(data["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(data["updated_at"].is_string());
}

#[tokio::test]
async fn lists_by_cluster_and_by_node() {
    let app = TestApp::new();
    for (id, cluster, node) in [
        ("a1", "cluster-01", "node-a"),
        ("b1", "cluster-01", "node-b"),
        ("a2", "cluster-01", "node-a"),
        ("c1", "cluster-02", "node-a"),
    ] {
        app.create(id, cluster, node).await;
    }
    let (status, body) = app
        .send("GET", &format!("{BASE}/cluster/cluster-01"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&body), ["a1", "a2", "b1"]);
    let (_, body) = app
        .send(
            "GET",
            &format!("{BASE}/cluster/cluster-01/node/node-a"),
            None,
        )
        .await;
    assert_eq!(ids(&body), ["a1", "a2"]);
    let (_, body) = app
        .send(
            "GET",
            &format!("{BASE}/cluster/cluster-02/node/node-b"),
            None,
        )
        .await;
    assert_eq!(ids(&body), Vec::<String>::new());
}

#[tokio::test]
async fn query_filters_sorts_and_windows() {
    let app = TestApp::new();
    for (n, team) in [
        (1, "analytics"),
        (2, "billing"),
        (3, "analytics"),
        (4, "analytics"),
    ] {
        let mut body = create_body(&format!("db-{n}"), "cluster-01", "node-a");
        body["metadata"] = json!({"team": team, "n": n});
        app.send("POST", BASE, Some(body)).await;
    }
    let filter = json!({"cluster_id": "cluster-01", "metadata.team": "analytics"});
    let (status, body) = app
        .send("POST", &format!("{BASE}/query"), Some(filter.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), ["db-1", "db-3", "db-4"]);
    let (_, body) = app
        .send(
            "POST",
            &format!("{BASE}/query?sort=-metadata.n&limit=2"),
            Some(filter.clone()),
        )
        .await;
    assert_eq!(ids(&body), ["db-4", "db-3"]);
    let (_, body) = app
        .send(
            "POST",
            &format!("{BASE}/query?sort=port&skip=1&limit=1"),
            Some(filter),
        )
        .await;
    assert_eq!(ids(&body), ["db-3"]);
    let (_, body) = app
        .send(
            "POST",
            &format!("{BASE}/query"),
            Some(json!({"$or": [{"metadata.n": {"$gte": 4}}, {"metadata.team": "billing"}]})),
        )
        .await;
    assert_eq!(ids(&body), ["db-2", "db-4"]);
}

#[tokio::test]
async fn delete_removes_from_cluster_and_registry() {
    let app = TestApp::new();
    app.create("tidb-001", "cluster-01", "node-a").await;
    let (status, body) = app.send("DELETE", &format!("{BASE}/tidb-001"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"success": true, "message": "Removed from global registry"})
    );
    assert!(app.registry.is_empty());
    let cluster = "cluster-01".parse().unwrap();
    assert!(app.fleet.used_ports(&cluster).unwrap().is_empty());
    let (status, _) = app.send("GET", &format!("{BASE}/tidb-001"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The freed port is handed out again.
    let (_, body) = app.create("tidb-009", "cluster-01", "node-a").await;
    assert_eq!(body["port"], 30900);
}

#[tokio::test]
async fn healthz_answers() {
    let app = TestApp::new();
    let (status, body) = app.send("GET", "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], true);
}

#[tokio::test]
async fn readyz_answers_ready_on_the_in_memory_registry() {
    let app = TestApp::new();
    let (status, body) = app.send("GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"success": true, "status": "ready"}));
}

/// `PATCH`: the instance as `GET` shows it after the change, in either JSON content type;
/// an instance being deleted is 409 `instance_busy`, text is 415, and nothing changes.
#[tokio::test]
async fn patch_answers_the_changed_instance() {
    use framedb_core::InstanceRegistry;
    let app = TestApp::new();
    app.create("patched", "cluster-01", "node-a").await;
    let uri = format!("{BASE}/patched");
    let (status, body) = super::send_raw(
        &app.router,
        "PATCH",
        &uri,
        Some(r#"{"metadata": {"team": null, "tier": "gold"}, "storage_size": "3Gi"}"#),
        Some("application/merge-patch+json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, got) = app.send("GET", &uri, None).await;
    assert_eq!(body, got, "the answer is what GET shows");
    assert_eq!(body["data"]["metadata"], json!({"tier": "gold"}));
    assert_eq!(body["data"]["storage_size"], "3Gi");

    let (status, body) = super::send_raw(
        &app.router,
        "PATCH",
        &uri,
        Some(r#"{"storage_size": "4Gi"}"#),
        Some("text/plain"),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");

    let id = framedb_core::FramedbId::new("patched").unwrap();
    let record = app.registry.get(&id).await.unwrap();
    app.registry
        .mark_deleting(&id, &record.stamp, framedb_core::Removal::Purge)
        .await
        .unwrap();
    let (status, body) = app
        .send("PATCH", &uri, Some(json!({"storage_size": "4Gi"})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "instance_busy", "{body}");
    assert_eq!(
        app.registry.get(&id).await.unwrap().storage_size.as_str(),
        "3Gi"
    );
}

/// `--setup-only`: no cluster named and no embedded demo; the fleet is what setup records
/// in its store (none yet), so the demo's clusters are unknown. Without a store that
/// outlives a restart (`--mongo-uri`), it is refused with a sentence.
#[tokio::test]
async fn a_setup_only_global_starts_with_no_cluster_of_its_own() {
    use framedb_http::settings::{GlobalSettings, ServeSettings};
    use std::sync::Arc;
    let mut settings = GlobalSettings {
        serve: ServeSettings::loopback(),
        ..GlobalSettings::default()
    };
    settings.fleet.setup_only = true;
    let Err(refused) =
        framedb_http::App::global(&settings, framedb_http::Adapters::default()).await
    else {
        panic!("a setup-only global on memory started");
    };
    assert!(refused.to_string().contains("--mongo-uri"), "{refused}");

    let adapters = framedb_http::Adapters {
        registry: Some(Arc::new(framedb_core::memory::InMemoryRegistry::new())),
        directory_store: Some(Arc::new(framedb_core::memory::InMemoryDirectoryStore::new())),
        ..framedb_http::Adapters::default()
    };
    let running = framedb_http::App::global(&settings, adapters)
        .await
        .unwrap()
        .spawn();
    let client = super::http_client().build().unwrap();
    let answer = client
        .get(format!("{}{BASE}/cluster/cluster-01", running.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "cluster_not_found", "{body}");
    running.stop().await.unwrap();
}
