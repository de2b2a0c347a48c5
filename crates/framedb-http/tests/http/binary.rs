//! The `framedb-server` binary as the README starts it: flags, log, the embedded default's
//! simulated clusters seen through kubectl, serving, SIGTERM.

use serde_json::json;
use tokio::process::Command;

use super::fleet::{Process, kubectl};

#[tokio::test]
async fn the_server_binary_serves_the_embedded_default_and_stops_on_sigterm() {
    let state_dir =
        std::env::temp_dir().join(format!("framedb-binary-test-{}", std::process::id()));
    let state = state_dir.display().to_string();
    let mut server = Process::start(&[
        "--listen",
        "127.0.0.1:0",
        "--demo-ready-after-ms",
        "0",
        "--state-dir",
        &state,
    ]);
    let line = server.wait_for("framedb-server listening on http://").await;
    let (_, rest) = line
        .split_once("framedb-server listening on http://")
        .unwrap();
    let address = rest.split_whitespace().next().unwrap().to_owned();
    let log = &server.log;
    assert!(
        log.iter().any(|l| l.contains("embedded default")),
        "the log says what it runs on: {log:?}"
    );
    assert!(
        !log.iter().any(|l| l.contains('\u{1b}')),
        "no colour codes when not on a terminal"
    );
    let kubeconfig = state_dir.join("cluster-01.kubeconfig");
    assert!(
        log.iter()
            .any(|l| l.contains(&*kubeconfig.to_string_lossy())),
        "the log says where the kubeconfigs are: {log:?}"
    );

    let client = super::http_client().build().unwrap();
    let health: serde_json::Value = client
        .get(format!("http://{address}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["success"], true);
    let created = client
        .post(format!("http://{address}/global/framedb/persistent-instances"))
        .json(&json!({"framedb_id": "kubectl-sees-me", "node_id": "node-a", "cluster_id": "cluster-01", "storage_size": "2Gi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);

    // kubectl, a client nobody here wrote, sees the instance's objects.
    let out = kubectl(
        &kubeconfig,
        &["get", "sts,svc,pvc", "-n", "framedb-storage", "-o", "name"],
    )
    .await;
    for object in [
        "statefulset.apps/kubectl-sees-me",
        "service/kubectl-sees-me",
        "persistentvolumeclaim/kubectl-sees-me-data",
    ] {
        assert!(out.contains(object), "kubectl lists {object}: {out}");
    }

    // The walk-through's setup of a simulated cluster through its own kubeconfig keeps
    // the cluster's running local service reachable (the token it has is installed).
    let cluster_02: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(state_dir.join("cluster-02.kubeconfig")).unwrap(),
    )
    .unwrap();
    let setup = client
        .post(format!("http://{address}/framedb-config/setup"))
        .json(&json!({"kube_config": cluster_02, "storage_size": "2Gi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(setup.status(), reqwest::StatusCode::OK);
    let after = client
        .post(format!("http://{address}/global/framedb/persistent-instances"))
        .json(&json!({"framedb_id": "after-setup", "node_id": "node-a", "cluster_id": "cluster-02", "storage_size": "2Gi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), reqwest::StatusCode::CREATED);
    // Through another cluster's API server, the same cluster id is refused.
    let cluster_01: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&kubeconfig).unwrap()).unwrap();
    let impostor = client
        .post(format!("http://{address}/framedb-config/setup"))
        .json(&json!({"kube_config": cluster_01, "cluster_id": "cluster-02"}))
        .send()
        .await
        .unwrap();
    assert_eq!(impostor.status(), reqwest::StatusCode::CONFLICT);

    let rest = server.terminate().await;
    assert!(rest.iter().any(|l| l.contains("SIGTERM")), "{rest:?}");
    let _ = std::fs::remove_dir_all(&state_dir);
}

#[tokio::test]
async fn an_unreachable_registry_stops_the_start_with_a_message_and_no_credentials() {
    let output = Command::new(env!("CARGO_BIN_EXE_framedb-server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--mongo-uri",
            "mongodb://framedb:pa55-s3cret@127.0.0.1:1/?authSource=admin",
            "--mongo-timeout-ms",
            "300",
        ])
        .env("RUST_LOG", "debug")
        .output()
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the server does not start without its registry"
    );
    assert!(log.contains("registry"), "{log}");
    assert!(
        !log.contains("pa55-s3cret"),
        "credentials reached the log: {log}"
    );
}
