//! A fleet of separate processes, as on a real fleet: `framedb-server simulate` serves the
//! clusters, a `framedb-server local` per cluster drives its cluster through the written
//! kubeconfig, and `framedb-server global` reaches them over HTTP; the README's
//! walk-through runs against it, kubectl watches, and every process stops on SIGTERM.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};

/// A `framedb-server` process and its log.
pub struct Process {
    child: Child,
    lines: Lines<BufReader<ChildStderr>>,
    /// Every line read so far.
    pub log: Vec<String>,
}

impl Process {
    /// Starts `framedb-server` with `args`, logging at INFO to a pipe.
    pub fn start<S: AsRef<str>>(args: &[S]) -> Self {
        Self::start_logging(args, "info")
    }

    /// Starts `framedb-server` with `args`, logging what `filter` (`RUST_LOG`) lets through
    /// to a pipe.
    pub fn start_logging<S: AsRef<str>>(args: &[S], filter: &str) -> Self {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let mut child = Command::new(env!("CARGO_BIN_EXE_framedb-server"))
            .args(&args)
            .env("RUST_LOG", filter)
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        Self {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Reads the log until a line contains `needle`; returns that line.
    pub async fn wait_for(&mut self, needle: &str) -> String {
        let found = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                self.log.push(line.clone());
                if line.contains(needle) {
                    return Some(line);
                }
            }
            None
        })
        .await
        .unwrap_or_else(|_| panic!("no '{needle}' in the log within 30 s: {:?}", self.log));
        found.unwrap_or_else(|| panic!("the process exited before '{needle}': {:?}", self.log))
    }

    /// Reads the log until the server says where it listens; returns `host:port`.
    pub async fn address(&mut self) -> String {
        let line = self.wait_for(" listening on http://").await;
        let (_, rest) = line.split_once(" listening on http://").unwrap();
        rest.split_whitespace().next().unwrap().to_owned()
    }

    /// Sends SIGTERM and waits for a clean exit; returns the rest of the log.
    pub async fn terminate(mut self) -> Vec<String> {
        let pid = self.child.id().unwrap().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(killed.success());
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("the process stops on SIGTERM")
            .unwrap();
        assert!(status.success(), "graceful shutdown exits 0: {status}");
        let mut rest = Vec::new();
        while let Some(line) = self.lines.next_line().await.unwrap() {
            rest.push(line);
        }
        rest
    }
}

/// Runs kubectl with `kubeconfig` and `args`; returns its output.
pub async fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let output = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .await
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn call(
    client: &Client,
    method: Method,
    url: String,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_local_and_global_run_as_separate_processes() {
    let dir = std::env::temp_dir().join(format!("framedb-fleet-test-{}", std::process::id()));
    let state_dir = dir.display().to_string();
    let mut simulate = Process::start(&[
        "simulate",
        "--demo-ready-after-ms",
        "300",
        "--state-dir",
        &state_dir,
    ]);
    for cluster in ["cluster-01", "cluster-02"] {
        let line = simulate.wait_for("simulated cluster serving").await;
        assert!(
            line.contains(&*dir.join(format!("{cluster}.kubeconfig")).to_string_lossy()),
            "{line}"
        );
        assert!(line.contains("api=http://127.0.0.1:"), "{line}");
    }
    let nodes = kubectl(
        &dir.join("cluster-01.kubeconfig"),
        &["get", "nodes", "-o", "name"],
    )
    .await;
    assert_eq!(
        nodes.lines().collect::<Vec<_>>(),
        ["node/node-a", "node/node-b"]
    );

    let mut locals = Vec::new();
    let mut services = Vec::new();
    for cluster in ["cluster-01", "cluster-02"] {
        let kubeconfig = dir
            .join(format!("{cluster}.kubeconfig"))
            .display()
            .to_string();
        let mut local = Process::start(&[
            "local",
            "--cluster-id",
            cluster,
            "--kubeconfig",
            &kubeconfig,
            "--listen",
            "127.0.0.1:0",
            "--token",
            "fleet-local-token",
        ]);
        let address = local.address().await;
        services.push(format!("--local-service={cluster}=http://{address}"));
        locals.push(local);
    }
    let mut args = [
        "global",
        "--listen",
        "127.0.0.1:0",
        "--local-token",
        "fleet-local-token",
    ]
    .map(String::from)
    .to_vec();
    args.extend(services);
    let mut global = Process::start(&args);
    let api = format!(
        "http://{}/global/framedb/persistent-instances",
        global.address().await
    );
    let client = super::http_client().build().unwrap();

    // The README's walk-through.
    let mut passwords = Vec::new();
    for (id, node, port) in [("tidb-001", "node-a", 30900), ("tidb-002", "node-b", 30901)] {
        let body = json!({"framedb_id": id, "node_id": node, "cluster_id": "cluster-01", "storage_size": "2Gi", "metadata": {"team": "analytics"}});
        let (status, answer) = call(&client, Method::POST, api.clone(), Some(body)).await;
        assert_eq!(
            (status, &answer["port"]),
            (StatusCode::CREATED, &json!(port)),
            "{answer}"
        );
        passwords.push(
            answer["credentials"]["password"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (status, credentials) = call(
        &client,
        Method::GET,
        format!("{api}/tidb-002/credentials"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{credentials}");
    assert_eq!(credentials["data"]["password"], passwords[1].as_str());
    let mut instance = Value::Null;
    for _ in 0..200 {
        (_, instance) = call(&client, Method::GET, format!("{api}/tidb-001"), None).await;
        if instance["data"]["status"] == "Running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(instance["data"]["status"], "Running", "{instance}");
    assert_eq!(instance["data"]["public_url"], "http://cluster-01:30900");
    let (_, listed) = call(
        &client,
        Method::GET,
        format!("{api}/cluster/cluster-01/node/node-b"),
        None,
    )
    .await;
    assert_eq!(listed["data"][0]["framedb_id"], "tidb-002", "{listed}");
    let filter = json!({"cluster_id": "cluster-01", "metadata.team": "analytics"});
    let (status, found) = call(
        &client,
        Method::POST,
        format!("{api}/query?sort=-created_at&limit=10"),
        Some(filter),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["data"].as_array().unwrap().len(), 2, "{found}");
    let (status, _) = call(&client, Method::DELETE, format!("{api}/tidb-001"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, gone) = call(&client, Method::GET, format!("{api}/tidb-001"), None).await;
    assert_eq!(
        (status, &gone["error"]),
        (StatusCode::NOT_FOUND, &json!("instance_not_found"))
    );
    let again = json!({"framedb_id": "tidb-002", "node_id": "node-a", "cluster_id": "cluster-01", "storage_size": "2Gi"});
    let (status, refused) = call(&client, Method::POST, api.clone(), Some(again)).await;
    assert_eq!(
        (status, &refused["error"]),
        (StatusCode::CONFLICT, &json!("already_exists"))
    );
    // The deleted instance's claim goes once its pod has terminated (a 30-second grace
    // period, 3 s on the demo's clock), as on a real cluster.
    let kubeconfig = dir.join("cluster-01.kubeconfig");
    kubectl(
        &kubeconfig,
        &[
            "wait",
            "--for=delete",
            "pvc/tidb-001-data",
            "-n",
            "framedb-storage",
            "--timeout=30s",
        ],
    )
    .await;
    let objects = kubectl(
        &dir.join("cluster-01.kubeconfig"),
        &[
            "get",
            "sts,svc,pvc,secret,netpol",
            "-n",
            "framedb-storage",
            "-o",
            "name",
        ],
    )
    .await;
    assert_eq!(
        objects.lines().collect::<Vec<_>>(),
        [
            "statefulset.apps/tidb-002",
            "service/tidb-002",
            "persistentvolumeclaim/tidb-002-data",
            "secret/tidb-002-credentials",
            "networkpolicy.networking.k8s.io/tidb-002"
        ]
    );

    let mut logged = global.log.clone();
    let rest = global.terminate().await;
    logged.extend(rest.iter().cloned());
    assert!(
        rest.iter()
            .any(|line| line.contains("framedb-server stopped")),
        "{rest:?}"
    );
    for local in locals {
        logged.extend(local.log.iter().cloned());
        logged.extend(local.terminate().await);
    }
    // Both tiers logged the creates, and no process logged a password.
    let created = logged
        .iter()
        .filter(|line| line.contains("instance created"))
        .count();
    assert_eq!(created, 4, "{logged:?}");
    for password in &passwords {
        assert!(
            logged.iter().all(|line| !line.contains(password.as_str())),
            "a password reached a log line"
        );
    }
    let rest = simulate.terminate().await;
    assert!(
        rest.iter()
            .any(|line| line.contains("simulated clusters stopped")),
        "{rest:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
