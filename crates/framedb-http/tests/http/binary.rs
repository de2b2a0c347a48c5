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

/// `framedb-server manifests` prints what a create makes; kubectl, applying them to a
/// cluster FrameDB never spoke to, runs the instance from them alone.
#[tokio::test]
async fn the_printed_manifests_apply_with_kubectl_and_the_instance_runs() {
    use framedb_kube_sim::{SimConfig, Simulator};
    use k8s_openapi::api::core::v1::Pod;
    let output = Command::new(env!("CARGO_BIN_EXE_framedb-server"))
        .args([
            "manifests",
            "--framedb-id",
            "by-hand",
            "--node-id",
            "node-a",
            "--resources",
            "medium",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "Service",
            "Secret",
            "ConfigMap",
            "NetworkPolicy",
            "PersistentVolumeClaim",
            "StatefulSet"
        ]
    );

    let sim =
        Simulator::start(SimConfig::new("by-hand").with_images(framedb_k8s::default_images()))
            .await
            .unwrap();
    let dir = std::env::temp_dir().join(format!("framedb-manifests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig.json");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let manifests = dir.join("manifests.json");
    std::fs::write(&manifests, &output.stdout).unwrap();
    // kubectl validates a `List` against `/openapi/v2`, which the simulator does not
    // serve (framedb-kube-sim's "Knowingly not modelled"); the API server still checks
    // every object it is sent.
    let applied = kubectl(
        &kubeconfig,
        &[
            "apply",
            "--server-side",
            "--validate=false",
            "-f",
            &manifests.display().to_string(),
        ],
    )
    .await;
    assert!(
        applied.contains("statefulset.apps/by-hand serverside-applied"),
        "{applied}"
    );

    let pods: kube::Api<Pod> = kube::Api::namespaced(sim.client().await, "framedb-storage");
    let mut ready = false;
    for _ in 0..200 {
        let pod = pods.get_opt("by-hand-0").await.unwrap();
        ready = pod
            .and_then(|p| p.status)
            .and_then(|s| s.conditions)
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if ready {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        ready,
        "the instance's pod runs from the printed objects alone"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--log-format json`: one JSON object per log line; every answer carries the request's
/// id, the caller's when usable, a new one otherwise.
#[tokio::test]
async fn json_logs_and_request_ids() {
    let state_dir = std::env::temp_dir().join(format!("framedb-json-test-{}", std::process::id()));
    let state = state_dir.display().to_string();
    let mut server = Process::start(&[
        "--log-format",
        "json",
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        &state,
    ]);
    // The global's line: the embedded local services listen (and log it) before the
    // global is ready, and only the global stops on SIGTERM once it serves.
    let line = server.wait_for("framedb-server listening on http://").await;
    let logged: serde_json::Value = serde_json::from_str(&line).expect("a JSON object per line");
    let message = logged["fields"]["message"].as_str().unwrap();
    let (_, rest) = message.split_once("listening on http://").unwrap();
    let address = rest.split_whitespace().next().unwrap().to_owned();
    for earlier in &server.log {
        assert!(
            serde_json::from_str::<serde_json::Value>(earlier).is_ok(),
            "{earlier}"
        );
    }

    let client = super::http_client().build().unwrap();
    let id_of = |response: &reqwest::Response| {
        response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let given = client
        .get(format!("http://{address}/healthz"))
        .header("x-request-id", "caller-42")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&given), "caller-42");
    // A hostile id (too long, or not plain) is replaced, and so is none.
    let hostile = client
        .get(format!("http://{address}/no-such-route"))
        .header("x-request-id", "x".repeat(500))
        .send()
        .await
        .unwrap();
    // Refused or not, an answer names its request.
    assert!(hostile.status().is_client_error());
    let (a, b) = (
        id_of(&hostile),
        id_of(
            &client
                .get(format!("http://{address}/healthz"))
                .send()
                .await
                .unwrap(),
        ),
    );
    assert!(!a.is_empty() && a.len() <= 64, "{a}");
    assert_ne!(a, b);
    server.terminate().await;
    let _ = std::fs::remove_dir_all(&state_dir);
}
