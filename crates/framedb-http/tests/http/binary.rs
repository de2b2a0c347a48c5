//! The `framedb-server` binary as the README starts it: flags, log, the embedded default's
//! simulated clusters seen through kubectl, serving, SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn the_server_binary_serves_the_embedded_default_and_stops_on_sigterm() {
    let state_dir =
        std::env::temp_dir().join(format!("framedb-binary-test-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_framedb-server"))
        .args(["--listen", "127.0.0.1:0", "--demo-ready-after-ms", "0"])
        .arg("--state-dir")
        .arg(&state_dir)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    let address = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            log.push(line.clone());
            if let Some((_, rest)) = line.split_once("framedb-server listening on http://") {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("the server exited before listening: {log:?}");
    })
    .await
    .expect("the server logs its address");
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

    let client = reqwest::Client::new();
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
    let listed = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "sts,svc,pvc", "-n", "framedb-storage", "-o", "name"])
        .output()
        .await
        .expect("kubectl runs");
    let out = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&listed.stderr)
    );
    for object in [
        "statefulset.apps/kubectl-sees-me",
        "service/kubectl-sees-me",
        "persistentvolumeclaim/kubectl-sees-me-data",
    ] {
        assert!(out.contains(object), "kubectl lists {object}: {out}");
    }

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the server stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "graceful shutdown exits 0: {status}");
    let mut rest = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        rest.push(line);
    }
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
