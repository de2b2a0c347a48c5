//! Init containers as the kubelet runs them, read with real kubectl: one at a time, in
//! order; a native sidecar (`restartPolicy: Always`) lets the next start once its
//! startup probe passes and runs on beside the pod's containers, whose readiness it
//! shares; a plain init container runs to completion first; a sidecar that crashes
//! holds the pod in `Init:CrashLoopBackOff`.

use std::time::Duration;

use framedb_kube_sim::{ContainerFault, SimConfig, Simulator};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::{Value, json};

use super::kubectl::Kubectl;
use super::{TIME_SCALE, create_namespace, eventually, is_ready, pod_condition, start_with};

/// A simulator whose programs answer their probes `ready_after` after they start, with
/// namespace `ns`, and kubectl for it.
async fn cluster(
    name: &str,
    ns: &str,
    ready_after: Duration,
) -> Option<(Simulator, kube::Client, Kubectl)> {
    let config = SimConfig::new(name)
        .with_time_scale(TIME_SCALE)
        .with_pod_ready_after(ready_after)
        .with_images(
            ["pd", "tikv", "tidb", "prepare", "main"].map(|c| format!("example.com/{c}:1")),
        );
    let (sim, client) = start_with(config).await;
    create_namespace(&client, ns).await;
    let kubectl = Kubectl::for_sim(&sim, name)?;
    Some((sim, client, kubectl))
}

/// A container probed with an `exec` command.
fn probed(name: &str, probes: &[&str]) -> Value {
    let mut container = json!({ "name": name, "image": format!("example.com/{name}:1") });
    for probe in probes {
        container[*probe] = json!({ "exec": { "command": ["true"] }, "periodSeconds": 1 });
    }
    container
}

/// The pod of the TiDB shape: PD and TiKV as sidecars with startup and readiness
/// probes, TiDB with a readiness probe.
fn tidb_shaped(name: &str, ns: &str) -> Value {
    let sidecar = |name: &str| {
        let mut c = probed(name, &["startupProbe", "readinessProbe"]);
        c["restartPolicy"] = json!("Always");
        c
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "namespace": ns },
        "spec": {
            "initContainers": [sidecar("pd"), sidecar("tikv")],
            "containers": [probed("tidb", &["readinessProbe"])],
        },
    })
}

/// The READY and STATUS columns of `kubectl get pod NAME`.
async fn columns(kubectl: &Kubectl, ns: &str, name: &str) -> (String, String) {
    let out = kubectl
        .ok(&["get", "pod", name, "-n", ns, "--no-headers"])
        .await;
    let fields: Vec<&str> = out.split_whitespace().collect();
    (fields[1].to_string(), fields[2].to_string())
}

/// The state of a container (init or not) of `pod`, as JSON.
fn state_of(pod: &Pod, name: &str) -> Value {
    let status = pod.status.as_ref().unwrap();
    let all = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    let found = all.into_iter().find(|c| c.name == name).unwrap();
    serde_json::to_value(found).unwrap()
}

#[tokio::test]
async fn sidecars_start_in_order_and_the_pod_is_ready_once_all_are() {
    let ready_after = Duration::from_millis(600);
    let Some((_sim, client, kubectl)) = cluster("sim-sidecars-order", "side", ready_after).await
    else {
        return;
    };
    let made = kubectl
        .with_manifest("create", &tidb_shaped("db", "side"))
        .await;
    assert!(made.success, "{}", made.stderr);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "side");

    // PD runs, not started yet; TiKV and TiDB wait their turn.
    let pod = pods.get("db").await.unwrap();
    assert_eq!(
        pod.status.as_ref().unwrap().phase.as_deref(),
        Some("Pending")
    );
    let initialized = pod_condition(&pod, "Initialized").unwrap();
    assert_eq!(initialized.0, "False");
    assert_eq!(initialized.1.as_deref(), Some("ContainersNotInitialized"));
    assert_eq!(
        initialized.2.as_deref(),
        Some("containers with incomplete status: [pd tikv]")
    );
    let pd = state_of(&pod, "pd");
    assert!(pd["state"]["running"].is_object(), "{pd}");
    assert_eq!(pd["started"], false);
    for waiting in ["tikv", "tidb"] {
        let state = state_of(&pod, waiting);
        assert_eq!(state["state"]["waiting"]["reason"], "PodInitializing");
    }
    assert_eq!(
        columns(&kubectl, "side", "db").await,
        ("0/3".into(), "Init:0/2".into())
    );

    // Each starts once the one before has: PD, then TiKV, then TiDB, then all ready.
    let seen = std::sync::Mutex::new(Vec::<Vec<bool>>::new());
    let all_ready = eventually(Duration::from_secs(10), || {
        let (pods, seen) = (&pods, &seen);
        async move {
            let pod = pods.get("db").await.unwrap();
            let started: Vec<bool> = ["pd", "tikv", "tidb"]
                .iter()
                .map(|c| state_of(&pod, c)["state"]["running"].is_object())
                .collect();
            let mut seen = seen.lock().unwrap();
            if seen.last() != Some(&started) {
                seen.push(started);
            }
            is_ready(&pod)
        }
    })
    .await;
    let seen = seen.into_inner().unwrap();
    assert!(all_ready, "{seen:?}");
    assert!(seen.len() >= 3, "each step seen: {seen:?}");
    // Never a later one running before an earlier one.
    for started in &seen {
        assert!(started.windows(2).all(|w| w[0] || !w[1]), "{seen:?}");
    }
    let pod = pods.get("db").await.unwrap();
    assert_eq!(
        pod.status.as_ref().unwrap().phase.as_deref(),
        Some("Running")
    );
    assert_eq!(pod_condition(&pod, "Initialized").unwrap().0, "True");
    assert_eq!(
        columns(&kubectl, "side", "db").await,
        ("3/3".into(), "Running".into())
    );
}

#[tokio::test]
async fn a_plain_init_container_completes_before_the_containers_start() {
    let Some((_sim, client, kubectl)) =
        cluster("sim-sidecars-plain", "plain", Duration::ZERO).await
    else {
        return;
    };
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "p", "namespace": "plain" },
        "spec": {
            "initContainers": [{ "name": "prepare", "image": "example.com/prepare:1" }],
            "containers": [{ "name": "main", "image": "example.com/main:1" }],
        },
    });
    let made = kubectl.with_manifest("create", &pod).await;
    assert!(made.success, "{}", made.stderr);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "plain");
    assert!(
        eventually(Duration::from_secs(5), || async {
            is_ready(&pods.get("p").await.unwrap())
        })
        .await
    );
    let pod = pods.get("p").await.unwrap();
    let prepare = state_of(&pod, "prepare");
    assert_eq!(prepare["state"]["terminated"]["reason"], "Completed");
    assert_eq!(prepare["state"]["terminated"]["exitCode"], 0);
    assert_eq!(prepare["ready"], false);
    // A completed init container is not among READY's containers.
    assert_eq!(
        columns(&kubectl, "plain", "p").await,
        ("1/1".into(), "Running".into())
    );
}

#[tokio::test]
async fn a_crashing_sidecar_holds_the_pod_in_init_crash_loop() {
    let Some((sim, client, kubectl)) =
        cluster("sim-sidecars-crash", "crash", Duration::from_millis(600)).await
    else {
        return;
    };
    // TiKV exits before its startup probe ever passes.
    sim.inject_container_fault(ContainerFault::crash_loop("tikv").in_namespace("crash"));
    let made = kubectl
        .with_manifest("create", &tidb_shaped("db", "crash"))
        .await;
    assert!(made.success, "{}", made.stderr);
    assert!(
        eventually(Duration::from_secs(20), || async {
            columns(&kubectl, "crash", "db").await.1 == "Init:CrashLoopBackOff"
        })
        .await
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "crash");
    let pod = pods.get("db").await.unwrap();
    // TiDB never started: its sidecars are not all up.
    let tidb = state_of(&pod, "tidb");
    assert_eq!(tidb["state"]["waiting"]["reason"], "PodInitializing");
    assert!(state_of(&pod, "tikv")["restartCount"].as_u64().unwrap() >= 1);
    assert!(!is_ready(&pod));

    // Once it no longer crashes, the pod comes up.
    sim.clear_container_faults();
    assert!(
        eventually(Duration::from_secs(30), || async {
            is_ready(&pods.get("db").await.unwrap())
        })
        .await
    );
}

#[tokio::test]
async fn a_failed_init_container_fails_a_pod_that_is_never_restarted() {
    let Some((sim, client, kubectl)) = cluster("sim-sidecars-never", "never", Duration::ZERO).await
    else {
        return;
    };
    sim.inject_container_fault(ContainerFault::crash_loop("prepare").in_namespace("never"));
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "p", "namespace": "never" },
        "spec": {
            "restartPolicy": "Never",
            "initContainers": [{ "name": "prepare", "image": "example.com/prepare:1" }],
            "containers": [{ "name": "main", "image": "example.com/main:1" }],
        },
    });
    let made = kubectl.with_manifest("create", &pod).await;
    assert!(made.success, "{}", made.stderr);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "never");
    assert!(
        eventually(Duration::from_secs(10), || async {
            let pod = pods.get("p").await.unwrap();
            pod.status.and_then(|s| s.phase).as_deref() == Some("Failed")
        })
        .await
    );
    let pod = pods.get("p").await.unwrap();
    assert_eq!(
        state_of(&pod, "prepare")["state"]["terminated"]["exitCode"],
        1
    );
    assert_eq!(
        state_of(&pod, "main")["state"]["waiting"]["reason"],
        "PodInitializing"
    );
    assert_eq!(columns(&kubectl, "never", "p").await.1, "Init:Error");
}
