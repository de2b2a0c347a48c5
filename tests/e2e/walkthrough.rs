//! The README's curl walk-through, step by step, against the embedded default exactly as
//! `framedb-server` builds it with no flags: the global service, a local config service
//! per simulated Kubernetes cluster, in-memory registries.

use std::time::Duration;

use clap::Parser;
use framedb_http::cli::{Cli, Role};
use framedb_http::{Adapters, App};
use reqwest::StatusCode;
use serde_json::json;

use super::{BASE, Server, call, ids};

#[tokio::test]
async fn the_readme_walkthrough_works_over_http() {
    use reqwest::Method;
    let state_dir =
        std::env::temp_dir().join(format!("framedb-walkthrough-{}", std::process::id()));
    let cli = Cli::parse_from([
        "framedb-server".as_ref(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--demo-ready-after-ms".as_ref(),
        "1500".as_ref(),
        "--state-dir".as_ref(),
        state_dir.as_os_str(),
    ]);
    let Role::Global(settings) = cli.into_role() else {
        panic!("no role named: the global one")
    };
    let server = Server::serve(App::global(&settings, Adapters::default()).await.unwrap());
    let client = super::http_client().build().unwrap();
    let url = |path: &str| format!("{}/{path}", server.url);

    let (status, body) = call(&client, Method::GET, url("healthz"), None).await;
    assert_eq!((status, &body["success"]), (StatusCode::OK, &json!(true)));

    let mut ports = Vec::new();
    let mut passwords = Vec::new();
    for (id, node, metadata) in [
        ("tidb-001", "node-a", json!({"team": "analytics"})),
        ("tidb-002", "node-b", json!({"team": "billing"})),
    ] {
        let create = json!({
            "framedb_id": id, "node_id": node, "metadata": metadata,
            "storage_size": "2Gi", "cluster_id": "cluster-01"
        });
        let (status, body) = call(&client, Method::POST, url(BASE), Some(create)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["success"], true);
        assert_eq!(body["message"], "Instance created in global registry");
        ports.push(body["port"].as_u64().unwrap());
        assert_eq!(body["credentials"]["user"], "root");
        passwords.push(body["credentials"]["password"].clone());
    }
    assert_eq!(ports, [30900, 30901]);

    // The owner gets the root password again with the API token (none here).
    let (status, body) = call(
        &client,
        Method::GET,
        url(&format!("{BASE}/tidb-001/credentials")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["password"], passwords[0]);
    assert_ne!(passwords[0], passwords[1]);

    let (status, body) = call(&client, Method::GET, url(&format!("{BASE}/tidb-001")), None).await;
    assert_eq!(status, StatusCode::OK);
    let instance = &body["data"];
    assert_eq!(instance["public_url"], "http://cluster-01:30900");
    assert_eq!(
        instance["local_url"],
        "mysql://tidb-001.framedb-storage.svc.cluster.local:4000"
    );
    assert_eq!(instance["status"], "Provisioning");
    assert_eq!(instance["metadata"], json!({"team": "analytics"}));

    // The status is read from the cluster each time: it moves on once the pod is ready.
    let mut status_seen = String::new();
    for _ in 0..100 {
        let (_, body) = call(&client, Method::GET, url(&format!("{BASE}/tidb-002")), None).await;
        status_seen = body["data"]["status"].as_str().unwrap().to_owned();
        if status_seen == "Running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status_seen, "Running");

    // `/metrics` counts instances by cluster and live status from the clusters' status
    // books (every status shown, 0 included, once a cluster's book is in step), and the
    // global's calls to the local services.
    let sample = |text: &str, series: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(series))
            .and_then(|value| value.trim().parse::<f64>().ok())
    };
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = client
            .get(url("metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let running = "framedb_instances{cluster_id=\"cluster-01\",status=\"Running\"}";
        if sample(&metrics, running).is_some_and(|count| count >= 1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (series, at_least) in [
        (
            "framedb_instances{cluster_id=\"cluster-01\",status=\"Running\"}",
            1.0,
        ),
        (
            "framedb_instances{cluster_id=\"cluster-01\",status=\"Failed\"}",
            0.0,
        ),
        (
            "framedb_cluster_calls_total{via=\"local_service\",operation=\"deploy\",outcome=\"ok\"}",
            2.0,
        ),
        ("framedb_free_node_ports{cluster_id=\"cluster-01\"}", 1.0),
    ] {
        let value = sample(&metrics, series).unwrap_or_else(|| panic!("no {series}: {metrics}"));
        assert!(value >= at_least, "{series} {value}: {metrics}");
    }

    // Its metadata merged and its volume grown (the demo clusters' class allows it).
    let change = json!({"metadata": {"owner": "ana"}, "storage_size": "4Gi"});
    let (status, body) = call(
        &client,
        Method::PATCH,
        url(&format!("{BASE}/tidb-001")),
        Some(change),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["metadata"],
        json!({"team": "analytics", "owner": "ana"})
    );
    assert_eq!(body["data"]["storage_size"], "4Gi");

    let (status, body) = call(
        &client,
        Method::GET,
        url(&format!("{BASE}/cluster/cluster-01")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&body), ["tidb-001", "tidb-002"]);
    let (_, body) = call(
        &client,
        Method::GET,
        url(&format!("{BASE}/cluster/cluster-01/node/node-b")),
        None,
    )
    .await;
    assert_eq!(ids(&body), ["tidb-002"]);

    let filter = json!({"cluster_id": "cluster-01", "metadata.team": "analytics"});
    let (status, body) = call(
        &client,
        Method::POST,
        url(&format!("{BASE}/query")),
        Some(filter),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), ["tidb-001"]);

    let (status, body) = call(
        &client,
        Method::DELETE,
        url(&format!("{BASE}/tidb-001")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["message"], "Removed from global registry");
    let (status, body) = call(&client, Method::GET, url(&format!("{BASE}/tidb-001")), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "instance_not_found");

    let again = json!({
        "framedb_id": "tidb-002", "node_id": "node-a", "storage_size": "2Gi",
        "cluster_id": "cluster-01"
    });
    let (status, body) = call(&client, Method::POST, url(BASE), Some(again)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "already_exists");

    server.stop().await;
    let _ = std::fs::remove_dir_all(&state_dir);
}
