//! Images and containers as a kubelet plays them, read with real kubectl: a pull of an
//! image the registry lacks (`ErrImagePull`, `ImagePullBackOff`, its events, and the
//! retry that pulls it once pushed), and the injected container faults: a crash loop
//! (`CrashLoopBackOff`, rising restarts), `OOMKilled`, a slow start.

use std::time::Duration;

use framedb_kube_sim::{ContainerFault, SimConfig, Simulator};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use super::kubectl::Kubectl;
use super::{TIME_SCALE, create_namespace, eventually, is_ready, pod_condition, start_with};

/// A simulator on the tests' clock, with namespace `ns`, and kubectl for it.
async fn cluster(name: &str, ns: &str) -> Option<(Simulator, kube::Client, Kubectl)> {
    let (sim, client) = start_with(SimConfig::new(name).with_time_scale(TIME_SCALE)).await;
    create_namespace(&client, ns).await;
    let kubectl = Kubectl::for_sim(&sim, name)?;
    Some((sim, client, kubectl))
}

/// A pod of one container `main` running `image`.
fn pod(name: &str, ns: &str, image: &str, restart_policy: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "namespace": ns },
        "spec": {
            "restartPolicy": restart_policy,
            "containers": [{ "name": "main", "image": image }],
        },
    })
}

/// The STATUS and RESTARTS columns of `kubectl get pod NAME`.
async fn status_column(kubectl: &Kubectl, ns: &str, name: &str) -> (String, String) {
    let out = kubectl
        .ok(&["get", "pod", name, "-n", ns, "--no-headers"])
        .await;
    let fields: Vec<&str> = out.split_whitespace().collect();
    (
        fields.get(2).copied().unwrap_or_default().to_string(),
        fields[3..fields.len().saturating_sub(1)].join(" "),
    )
}

/// Waits until `kubectl get pod` shows `want` as the pod's STATUS.
async fn shows(kubectl: &Kubectl, ns: &str, name: &str, want: &str) -> bool {
    eventually(Duration::from_secs(20), || async {
        status_column(kubectl, ns, name).await.0 == want
    })
    .await
}

/// `text` with each run of spaces made one: kubectl's columns are as wide as their
/// widest cell.
fn squeezed(text: &str) -> String {
    text.lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until `kubectl get pod` shows the pod's pull failing: `ErrImagePull` at a
/// retry, `ImagePullBackOff` between them.
async fn pull_fails(kubectl: &Kubectl, ns: &str, name: &str) -> bool {
    eventually(Duration::from_secs(10), || async {
        matches!(
            status_column(kubectl, ns, name).await.0.as_str(),
            "ErrImagePull" | "ImagePullBackOff"
        )
    })
    .await
}

/// Pod `name` read while its container waits for `reason` (the states alternate fast on
/// the tests' clock); the last read after 100 tries.
async fn waiting_in(pods: &Api<Pod>, name: &str, reason: &str) -> Pod {
    let mut pod = pods.get(name).await.unwrap();
    for _ in 0..100 {
        if container_status(&pod)["state"]["waiting"]["reason"] == reason {
            break;
        }
        pod = pods.get(name).await.unwrap();
    }
    pod
}

fn container_status(pod: &Pod) -> Value {
    serde_json::to_value(
        &pod.status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0],
    )
    .unwrap()
}

async fn messages(client: &kube::Client, ns: &str, pod: &str, reason: &str) -> Vec<Event> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let fields = format!("involvedObject.name={pod},reason={reason}");
    events
        .list(&ListParams::default().fields(&fields))
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn an_image_the_registry_lacks_backs_off_until_it_is_pushed() {
    let Some((sim, client, kubectl)) = cluster("sim-images-pull", "img").await else {
        return;
    };
    let run = kubectl
        .run(&["run", "p", "-n", "img", "--image=nope/nope:1"])
        .await;
    if !run.success {
        // `kubectl run` may send protobuf, which this simulator may not read yet.
        assert!(
            run.stderr.contains("415") || run.stderr.contains("Unsupported"),
            "{}",
            run.stderr
        );
        let made = kubectl
            .with_manifest("create", &pod("p", "img", "nope/nope:1", "Always"))
            .await;
        assert!(made.success, "{}", made.stderr);
    }
    // ErrImagePull first, then ImagePullBackOff between the retries.
    assert!(pull_fails(&kubectl, "img", "p").await);
    assert!(shows(&kubectl, "img", "p", "ImagePullBackOff").await);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "img");
    // A read between two retries.
    let p = waiting_in(&pods, "p", "ImagePullBackOff").await;
    assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));
    assert!(!is_ready(&p));
    let waiting = container_status(&p)["state"]["waiting"].clone();
    assert_eq!(waiting["reason"], "ImagePullBackOff", "{waiting}");
    let not_found = "rpc error: code = NotFound desc = failed to pull and unpack image \
                     \"docker.io/nope/nope:1\": failed to resolve reference \
                     \"docker.io/nope/nope:1\": docker.io/nope/nope:1: not found";
    assert_eq!(
        waiting["message"],
        format!("Back-off pulling image \"nope/nope:1\": ErrImagePull: {not_found}")
    );

    let events = squeezed(&kubectl.ok(&["get", "events", "-n", "img"]).await);
    for line in [
        "Normal Pulling pod/p Pulling image \"nope/nope:1\"",
        &format!("Warning Failed pod/p Failed to pull image \"nope/nope:1\": {not_found}"),
        "Warning Failed pod/p Error: ErrImagePull",
        "Normal BackOff pod/p Back-off pulling image \"nope/nope:1\"",
        "Warning Failed pod/p Error: ImagePullBackOff",
    ] {
        assert!(events.contains(line), "{line:?} not in\n{events}");
    }
    let described = kubectl.ok(&["describe", "pod", "p", "-n", "img"]).await;
    // Between two retries it is back-off; at a retry, a failed pull again.
    assert!(
        described.contains("Reason:       ImagePullBackOff")
            || described.contains("Reason:       ErrImagePull"),
        "{described}"
    );
    assert!(
        described.contains("kubelet            Pulling image \"nope/nope:1\"")
            || described.contains("Pulling image \"nope/nope:1\""),
        "{described}"
    );
    assert!(
        described.contains("Back-off pulling image \"nope/nope:1\""),
        "{described}"
    );

    // The kubelet retries on its back-off: pulled once pushed, and the pod runs.
    assert!(
        eventually(Duration::from_secs(10), || async {
            messages(&client, "img", "p", "Pulling")
                .await
                .first()
                .and_then(|e| e.count)
                .unwrap_or(0)
                >= 2
        })
        .await,
        "the pull is retried"
    );
    sim.push_image("docker.io/nope/nope:1");
    assert!(shows(&kubectl, "img", "p", "Running").await);
    let p = pods.get("p").await.unwrap();
    assert!(is_ready(&p));
    let status = container_status(&p);
    assert_eq!(status["image"], "docker.io/nope/nope:1");
    assert!(
        status["imageID"]
            .as_str()
            .unwrap()
            .starts_with("docker.io/nope/nope@sha256:")
    );
    let pulled = messages(&client, "img", "p", "Pulled").await;
    assert!(
        pulled[0]
            .message
            .as_deref()
            .unwrap()
            .starts_with("Successfully pulled image \"nope/nope:1\" in "),
        "{pulled:?}"
    );
}

#[tokio::test]
async fn references_resolve_as_a_registry_reads_them_and_pull_policies_hold() {
    let Some((_sim, client, kubectl)) = cluster("sim-images-refs", "refs").await else {
        return;
    };
    // `busybox:1.36` is in the default registry, so is its full name; `busybox:1.37` is not.
    for (name, image) in [
        ("short", "busybox:1.36"),
        ("full", "docker.io/library/busybox:1.36"),
        ("latest", "busybox"),
        ("missing", "busybox:1.37"),
    ] {
        let made = kubectl
            .with_manifest("create", &pod(name, "refs", image, "Always"))
            .await;
        assert!(made.success, "{}", made.stderr);
    }
    for name in ["short", "full", "latest"] {
        assert!(shows(&kubectl, "refs", name, "Running").await, "{name}");
    }
    assert!(pull_fails(&kubectl, "refs", "missing").await);
    // `Never` with the image on no node: it never starts.
    let never = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "never", "namespace": "refs" },
        "spec": { "containers": [{ "name": "main", "image": "nginx:1.27", "imagePullPolicy": "Never" }] },
    });
    let made = kubectl.with_manifest("create", &never).await;
    assert!(made.success, "{}", made.stderr);
    assert!(shows(&kubectl, "refs", "never", "ErrImageNeverPull").await);
    let refused = messages(&client, "refs", "never", "ErrImageNeverPull").await;
    assert_eq!(
        refused[0].message.as_deref(),
        Some("Container image \"nginx:1.27\" is not present with pull policy of Never")
    );
    // `busybox` (no tag) defaults to `Always`: pulled every time, named as the pod
    // spells it.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "refs");
    let latest = pods.get("latest").await.unwrap();
    let policy = &latest.spec.as_ref().unwrap().containers[0].image_pull_policy;
    assert_eq!(policy.as_deref(), Some("Always"));
    let pulled = messages(&client, "refs", "latest", "Pulled").await;
    assert!(
        pulled[0]
            .message
            .as_deref()
            .unwrap()
            .starts_with("Successfully pulled image \"busybox\" in "),
        "{pulled:?}"
    );
    // The second pod of `busybox:1.36` (`IfNotPresent`) on a node that has it finds it
    // there.
    let made = kubectl
        .with_manifest(
            "create",
            &json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": { "name": "again", "namespace": "refs" },
                "spec": {
                    "nodeName": latest.spec.as_ref().unwrap().node_name,
                    "containers": [{ "name": "main", "image": "busybox:1.36" }],
                },
            }),
        )
        .await;
    assert!(made.success, "{}", made.stderr);
    let short_node = pods.get("short").await.unwrap().spec.unwrap().node_name;
    let full_node = pods.get("full").await.unwrap().spec.unwrap().node_name;
    if short_node == latest.spec.as_ref().unwrap().node_name
        || full_node == latest.spec.as_ref().unwrap().node_name
    {
        assert!(shows(&kubectl, "refs", "again", "Running").await);
        let pulled = messages(&client, "refs", "again", "Pulled").await;
        assert_eq!(
            pulled[0].message.as_deref(),
            Some("Container image \"busybox:1.36\" already present on machine")
        );
    }
    // Deleted, the kubelet stops what runs (`Killing`); a container that never started
    // has nothing to stop.
    kubectl
        .ok(&["delete", "pod", "short", "missing", "-n", "refs"])
        .await;
    assert_eq!(messages(&client, "refs", "short", "Killing").await.len(), 1);
    assert!(
        messages(&client, "refs", "missing", "Killing")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_crashing_container_backs_off_in_crash_loop_and_recovers_once_cleared() {
    let Some((sim, client, kubectl)) = cluster("sim-images-crash", "crash").await else {
        return;
    };
    sim.inject_container_fault(ContainerFault::crash_loop("main").in_namespace("crash"));
    let made = kubectl
        .with_manifest("create", &pod("c", "crash", "busybox:1.36", "Always"))
        .await;
    assert!(made.success, "{}", made.stderr);
    assert!(shows(&kubectl, "crash", "c", "CrashLoopBackOff").await);
    // Restarts rise, each after a longer back-off, shown with the last one's age.
    assert!(
        eventually(Duration::from_secs(20), || async {
            let (_, restarts) = status_column(&kubectl, "crash", "c").await;
            restarts
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n >= 3)
                && restarts.contains("ago)")
        })
        .await
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "crash");
    // A read while it waits to restart (each run is short, but runs).
    let c = waiting_in(&pods, "c", "CrashLoopBackOff").await;
    let uid = c.metadata.uid.clone().unwrap();
    assert_eq!(c.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
    let (ready, reason, _) = pod_condition(&c, "ContainersReady").unwrap();
    assert_eq!(
        (ready.as_str(), reason.as_deref()),
        ("False", Some("ContainersNotReady"))
    );
    let status = container_status(&c);
    let last = &status["lastState"]["terminated"];
    assert_eq!(
        (last["exitCode"].clone(), last["reason"].clone()),
        (json!(1), json!("Error")),
        "{status}"
    );
    {
        let message = status["state"]["waiting"]["message"].as_str().unwrap();
        let backoff = message
            .strip_prefix("back-off ")
            .and_then(|m| m.split_once(' '))
            .map(|(d, rest)| (d.to_string(), rest.to_string()))
            .unwrap();
        assert!(
            ["10s", "20s", "40s", "1m20s", "2m40s", "5m0s"].contains(&backoff.0.as_str()),
            "{message}"
        );
        assert_eq!(
            backoff.1,
            format!("restarting failed container=main pod=c_crash({uid})")
        );
    }
    let events = squeezed(&kubectl.ok(&["get", "events", "-n", "crash"]).await);
    assert!(
        events.contains(&format!(
            "Warning BackOff pod/c Back-off restarting failed container main in pod c_crash({uid})"
        )),
        "{events}"
    );
    let described = kubectl.ok(&["describe", "pod", "c", "-n", "crash"]).await;
    assert!(
        described.contains("Last State:     Terminated"),
        "{described}"
    );
    assert!(described.contains("Exit Code:    1"), "{described}");

    // Lifted, the next restart runs and stays up.
    sim.clear_container_faults();
    assert!(
        eventually(Duration::from_secs(20), || async {
            pods.get("c").await.is_ok_and(|c| is_ready(&c))
        })
        .await
    );
    assert_eq!(status_column(&kubectl, "crash", "c").await.0, "Running");
}

#[tokio::test]
async fn an_oom_killed_container_is_shown_and_restarted_with_back_off() {
    let Some((sim, client, kubectl)) = cluster("sim-images-oom", "oom").await else {
        return;
    };
    sim.inject_container_fault(ContainerFault::oom_killed("main").in_pods_named("once"));
    sim.inject_container_fault(ContainerFault::oom_killed("main").in_pods_named("loop"));
    for (name, policy) in [("once", "Never"), ("loop", "Always")] {
        let made = kubectl
            .with_manifest("create", &pod(name, "oom", "busybox:1.36", policy))
            .await;
        assert!(made.success, "{}", made.stderr);
    }
    // Never restarted: the pod fails, its container terminated `OOMKilled`, 137.
    assert!(shows(&kubectl, "oom", "once", "OOMKilled").await);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "oom");
    let once = pods.get("once").await.unwrap();
    assert_eq!(
        once.status.as_ref().unwrap().phase.as_deref(),
        Some("Failed")
    );
    let terminated = container_status(&once)["state"]["terminated"].clone();
    assert_eq!(terminated["exitCode"], 137);
    assert_eq!(terminated["reason"], "OOMKilled");
    // Restarted: in back-off, its last state tells the OOM kill.
    assert!(shows(&kubectl, "oom", "loop", "CrashLoopBackOff").await);
    let status = container_status(&pods.get("loop").await.unwrap());
    assert_eq!(
        status["lastState"]["terminated"]["reason"], "OOMKilled",
        "{status}"
    );
    assert!(status["restartCount"].as_u64().unwrap() >= 1, "{status}");
    let described = squeezed(&kubectl.ok(&["describe", "pod", "loop", "-n", "oom"]).await);
    assert!(described.contains("Reason: OOMKilled"), "{described}");
}

#[tokio::test]
async fn a_slow_container_runs_unready_until_it_has_started() {
    let Some((sim, client, kubectl)) = cluster("sim-images-slow", "slow").await else {
        return;
    };
    // Two simulated minutes: two real seconds on the tests' clock.
    sim.inject_container_fault(ContainerFault::slow_start("main", Duration::from_secs(120)));
    let made = kubectl
        .with_manifest("create", &pod("s", "slow", "busybox:1.36", "Always"))
        .await;
    assert!(made.success, "{}", made.stderr);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "slow");
    let s = pods.get("s").await.unwrap();
    assert_eq!(s.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
    assert!(!is_ready(&s));
    assert_eq!(container_status(&s)["started"], false);
    let table = squeezed(
        &kubectl
            .ok(&["get", "pod", "s", "-n", "slow", "--no-headers"])
            .await,
    );
    assert!(table.starts_with("s 0/1 Running 0"), "{table}");
    let waited = kubectl
        .run(&[
            "wait",
            "--for=condition=Ready",
            "pod/s",
            "-n",
            "slow",
            "--timeout=20s",
        ])
        .await;
    assert!(waited.success, "{}", waited.stderr);
    let s = pods.get("s").await.unwrap();
    assert_eq!(container_status(&s)["started"], true);
}

#[tokio::test]
async fn a_completing_container_of_a_never_restarted_pod_succeeds() {
    let (sim, client) =
        start_with(SimConfig::new("sim-images-completes").with_time_scale(TIME_SCALE)).await;
    create_namespace(&client, "done").await;
    sim.inject_container_fault(ContainerFault::completes("main").in_pods_named("once"));
    sim.inject_container_fault(ContainerFault::completes("main").in_pods_named("again"));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "done");
    for (name, policy) in [("once", "Never"), ("again", "Always")] {
        let pod: Pod = serde_json::from_value(pod(name, "done", "busybox:1.36", policy)).unwrap();
        pods.create(&Default::default(), &pod).await.unwrap();
    }
    // Never restarted: terminated `Completed` with code 0, and the pod `Succeeded`.
    assert!(
        eventually(Duration::from_secs(20), || async {
            let once = pods.get("once").await.unwrap();
            once.status.and_then(|s| s.phase).as_deref() == Some("Succeeded")
        })
        .await
    );
    let once = pods.get("once").await.unwrap();
    let status = container_status(&once);
    assert_eq!(status["state"]["terminated"]["exitCode"], 0, "{status}");
    assert_eq!(status["state"]["terminated"]["reason"], "Completed");
    assert_eq!(status["restartCount"], 0);
    assert!(!is_ready(&once));
    // Under `Always` a finished command is started again, as a real kubelet does.
    assert!(
        eventually(Duration::from_secs(20), || async {
            let again = pods.get("again").await.unwrap();
            container_status(&again)["restartCount"].as_u64() >= Some(1)
        })
        .await
    );
    let again = pods.get("again").await.unwrap();
    assert_eq!(
        again.status.unwrap().phase.as_deref(),
        Some("Running"),
        "a restarted pod stays Running"
    );
}
