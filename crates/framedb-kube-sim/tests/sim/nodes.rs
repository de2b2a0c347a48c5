//! Node lifecycle as a real cluster plays it: a node's `Ready` condition written through
//! `nodes/status` sticks; the node lifecycle controller taints a node not ready for long
//! enough and marks its pods not ready; the taint-eviction controller deletes pods once
//! their tolerations (300 s by default, from `DefaultTolerationSeconds`) run out; a pod
//! deleted on a node that is down stays `Terminating` (no kubelet confirms it) and its
//! StatefulSet makes no replacement until the node is back. Also `kubectl cordon`,
//! `uncordon` and `drain`, and the `pods/eviction` subresource.

use std::time::Duration;

use framedb_kube_sim::{NodeReadiness, SimConfig, SimNode, Simulator};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, EvictParams, ListParams, PostParams};
use serde_json::{Value, json};

use super::kubectl::Kubectl;
use super::{api_error, create_namespace, eventually, is_ready, object, pod_condition, start_with};

/// Simulated seconds per real second here: the 50-second grace period takes under half
/// a real second, a 300-second toleration 2.5 seconds.
const SCALE: f64 = 120.0;
/// How long a test waits for what a few simulated minutes take.
const SETTLE: Duration = Duration::from_secs(15);

fn config(name: &str) -> SimConfig {
    SimConfig::new(name)
        .with_nodes([SimNode::new("node-a"), SimNode::new("node-b")])
        .with_time_scale(SCALE)
}

/// A simulator of [`config`] named `sim-{name}`, a client and kubectl for it; `None`
/// (with a note) without kubectl.
async fn cluster(name: &str) -> Option<(Simulator, kube::Client, Kubectl)> {
    let (sim, client) = start_with(config(&format!("sim-{name}"))).await;
    let kubectl = Kubectl::for_sim(&sim, name)?;
    Some((sim, client, kubectl))
}

/// A bare pod pinned to `node`, with `tolerations` (none when null).
fn pod_on(name: &str, node: &str, tolerations: Value) -> Pod {
    let mut spec = json!({
        "nodeSelector": { "kubernetes.io/hostname": node },
        "containers": [{ "name": "main", "image": "registry.k8s.io/pause:3.10" }],
    });
    if !tolerations.is_null() {
        spec["tolerations"] = tolerations;
    }
    object(json!({ "metadata": { "name": name }, "spec": spec }))
}

/// Makes namespace `ns` and in it a one-pod StatefulSet `name` of node selector
/// `selector`; returns the namespace's pods and the set's pod, once ready.
async fn ready_statefulset(
    client: &kube::Client,
    ns: &str,
    name: &str,
    selector: Value,
) -> (Api<Pod>, Pod) {
    create_namespace(client, ns).await;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let set = super::statefulset(name, 1, selector);
    sets.create(&PostParams::default(), &set).await.unwrap();
    let pod = format!("{name}-0");
    assert!(
        eventually(SETTLE, || async {
            pods.get_opt(&pod)
                .await
                .unwrap()
                .is_some_and(|p| is_ready(&p))
        })
        .await
    );
    let ready = pods.get(&pod).await.unwrap();
    (pods, ready)
}

/// Waits for pod `name` to be gone; whether it went.
async fn gone(pods: &Api<Pod>, name: &str) -> bool {
    eventually(SETTLE, || async {
        pods.get_opt(name).await.unwrap().is_none()
    })
    .await
}

/// Waits for pod `name`'s readiness to be `ready`; whether it came.
async fn readiness_becomes(pods: &Api<Pod>, name: &str, ready: bool) -> bool {
    eventually(SETTLE, || async {
        pods.get(name).await.is_ok_and(|p| is_ready(&p) == ready)
    })
    .await
}

/// Whether pod `name` is being deleted.
async fn deleting(pods: &Api<Pod>, name: &str) -> bool {
    pods.get(name)
        .await
        .unwrap()
        .metadata
        .deletion_timestamp
        .is_some()
}

/// What `kubectl get node NAME -o jsonpath=...` prints.
async fn node_field(kubectl: &Kubectl, node: &str, path: &str) -> String {
    kubectl
        .ok(&["get", "node", node, "-o", &format!("jsonpath={path}")])
        .await
}

/// The STATUS column of `kubectl get node NAME`.
async fn node_status(kubectl: &Kubectl, node: &str) -> String {
    let out = kubectl.ok(&["get", "node", node]).await;
    let row = out.lines().nth(1).unwrap_or_default().to_string();
    row.split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// Sets node `node`'s `Ready` condition through the status subresource, as `kubectl
/// patch --subresource=status` (a strategic merge patch: the other fields of the
/// condition stay).
async fn set_ready(kubectl: &Kubectl, node: &str, status: &str) {
    let patch = json!({ "status": { "conditions": [{ "type": "Ready", "status": status }] } });
    kubectl
        .ok(&[
            "patch",
            "node",
            node,
            "--subresource=status",
            "-p",
            &patch.to_string(),
        ])
        .await;
}

/// Sets node `node` ready again; whether its taints then go.
async fn back(kubectl: &Kubectl, node: &str) -> bool {
    set_ready(kubectl, node, "True").await;
    field_becomes(kubectl, node, "{.spec.taints}", "").await
}

/// Waits for `kubectl get node NODE -o jsonpath=PATH` to print `want`; whether it did.
async fn field_becomes(kubectl: &Kubectl, node: &str, path: &str, want: &str) -> bool {
    eventually(SETTLE, || async {
        node_field(kubectl, node, path).await == want
    })
    .await
}

/// Whether kubectl's event list for namespace `ns` (`-A` when `None`) has a line with
/// all of `words`.
async fn has_event(kubectl: &Kubectl, ns: Option<&str>, words: &[&str]) -> bool {
    let out = match ns {
        Some(ns) => kubectl.ok(&["get", "events", "-n", ns]).await,
        None => kubectl.ok(&["get", "events", "-A"]).await,
    };
    out.lines().any(|l| words.iter().all(|w| l.contains(w)))
}

#[tokio::test]
async fn an_unreachable_node_s_pods_stay_terminating_until_it_is_back() {
    let Some((_sim, client, kubectl)) = cluster("node-down").await else {
        return;
    };
    let (pods, first) = ready_statefulset(
        &client,
        "down",
        "web",
        json!({ "kubernetes.io/hostname": "node-a" }),
    )
    .await;
    // `DefaultTolerationSeconds`: every pod tolerates the node lifecycle taints for 300 s.
    let tolerations =
        serde_json::to_value(first.spec.as_ref().unwrap().tolerations.clone()).unwrap();
    assert_eq!(
        tolerations,
        json!([
            { "key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300 },
            { "key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300 },
        ])
    );
    assert_eq!(node_status(&kubectl, "node-a").await, "Ready");

    // The kubelet stops posting: the condition sticks as written, kept fields included.
    set_ready(&kubectl, "node-a", "Unknown").await;
    assert_eq!(node_status(&kubectl, "node-a").await, "NotReady");
    let nodes: Api<Node> = Api::all(client.clone());
    let ready = |node: &Node| {
        let conditions = node.status.as_ref().unwrap().conditions.clone().unwrap();
        conditions.into_iter().find(|c| c.type_ == "Ready").unwrap()
    };
    let condition = ready(&nodes.get("node-a").await.unwrap());
    assert_eq!(condition.status, "Unknown");
    assert_eq!(condition.reason.as_deref(), Some("KubeletReady"));

    // After the grace period: unreachable taints, the pod not ready, the events.
    let taints = "{.spec.taints[*].key}/{.spec.taints[*].effect}";
    let unreachable =
        "node.kubernetes.io/unreachable node.kubernetes.io/unreachable/NoSchedule NoExecute";
    assert!(field_becomes(&kubectl, "node-a", taints, unreachable).await);
    let described = kubectl.ok(&["describe", "node", "node-a"]).await;
    for line in [
        "node.kubernetes.io/unreachable:NoExecute",
        "Kubelet stopped posting node status.",
        "Ready",
    ] {
        assert!(described.contains(line), "{line}: {described}");
    }
    assert!(readiness_becomes(&pods, "web-0", false).await);
    assert!(
        has_event(
            &kubectl,
            Some("down"),
            &["Warning", "NodeNotReady", "pod/web-0", "Node is not ready"]
        )
        .await
    );
    assert!(
        has_event(
            &kubectl,
            None,
            &[
                "NodeNotReady",
                "node/node-a",
                "Node node-a status is now: NodeNotReady"
            ]
        )
        .await
    );
    assert_eq!(ready(&nodes.get("node-a").await.unwrap()).status, "Unknown");
    // The controller sets the kubelet's other conditions `Unknown` too.
    let memory = "{.status.conditions[?(@.type==\"MemoryPressure\")].reason}";
    assert_eq!(
        node_field(&kubectl, "node-a", memory).await,
        "NodeStatusUnknown"
    );

    // After the 300-second toleration: deleted, and kept Terminating while the node is down.
    assert!(
        eventually(SETTLE, || async {
            pods.get("web-0")
                .await
                .is_ok_and(|p| p.metadata.deletion_timestamp.is_some())
        })
        .await
    );
    assert!(
        has_event(
            &kubectl,
            Some("down"),
            &[
                "TaintManagerEviction",
                "Marking for deletion Pod down/web-0"
            ]
        )
        .await
    );
    let evicted = pods.get("web-0").await.unwrap();
    let (status, reason, _) = pod_condition(&evicted, "DisruptionTarget").unwrap();
    assert_eq!(
        (status.as_str(), reason.as_deref()),
        ("True", Some("DeletionByTaintManager"))
    );
    // Several of its 30-second grace periods pass (a quarter of a real second each).
    assert!(
        !eventually(Duration::from_secs(2), || async {
            pods.get_opt("web-0").await.unwrap().is_none()
        })
        .await,
        "no kubelet confirms the deletion of a pod on a node that is down"
    );
    let listed = kubectl.ok(&["get", "pods", "-n", "down"]).await;
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("web-0") && l.contains("Terminating")),
        "{listed}"
    );
    assert_eq!(listed.lines().count(), 2, "no replacement: {listed}");
    assert_eq!(pods.get("web-0").await.unwrap().uid(), first.uid());

    // The node is back: its taints go, the kubelet finishes the deletion, the
    // StatefulSet makes web-0 again.
    assert!(back(&kubectl, "node-a").await);
    assert_eq!(node_status(&kubectl, "node-a").await, "Ready");
    assert_eq!(
        node_field(&kubectl, "node-a", memory).await,
        "KubeletHasSufficientMemory"
    );
    assert!(
        eventually(SETTLE, || async {
            pods.get_opt("web-0").await.unwrap().is_some_and(|p| {
                p.uid() != first.uid() && p.metadata.deletion_timestamp.is_none() && is_ready(&p)
            })
        })
        .await
    );
    assert!(
        has_event(
            &kubectl,
            None,
            &[
                "NodeReady",
                "node/node-a",
                "Node node-a status is now: NodeReady"
            ]
        )
        .await
    );
}

#[tokio::test]
async fn taints_evict_what_does_not_tolerate_them_and_a_not_ready_node_is_tainted() {
    let Some((_sim, client, kubectl)) = cluster("node-taints").await else {
        return;
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let patient = json!([{ "key": "evict", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300 }]);
    let forever = json!([{ "key": "evict", "operator": "Exists", "effect": "NoExecute" }]);
    let spared = json!([{ "key": "evict", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 3600 }]);
    for (name, tolerations) in [
        ("plain", Value::Null),
        ("patient", patient),
        ("forever", forever),
        ("spared", spared),
    ] {
        pods.create(&PostParams::default(), &pod_on(name, "node-b", tolerations))
            .await
            .unwrap();
    }
    assert!(
        eventually(SETTLE, || async {
            let list = pods.list(&ListParams::default()).await.unwrap();
            list.items.len() == 4 && list.items.iter().all(is_ready)
        })
        .await
    );

    // A NoExecute taint: what does not tolerate it goes at once, what tolerates it for a
    // while after that while, what tolerates it forever stays.
    kubectl
        .ok(&["taint", "nodes", "node-b", "evict=now:NoExecute"])
        .await;
    assert!(gone(&pods, "plain").await);
    assert!(!deleting(&pods, "patient").await);
    assert!(
        has_event(
            &kubectl,
            Some("default"),
            &[
                "TaintManagerEviction",
                "Marking for deletion Pod default/plain"
            ]
        )
        .await
    );
    assert!(gone(&pods, "patient").await);
    assert!(!deleting(&pods, "forever").await);
    // The taint goes before the hour `spared` tolerates it for: its deletion is cancelled.
    kubectl.ok(&["taint", "nodes", "node-b", "evict-"]).await;
    assert!(
        has_event(
            &kubectl,
            Some("default"),
            &[
                "TaintManagerEviction",
                "Cancelling deletion of Pod default/spared"
            ]
        )
        .await
    );
    assert!(!deleting(&pods, "spared").await);

    // A kubelet that posts `Ready=False` (a merge patch of the whole list here): the
    // node is tainted not-ready on the controller's next pass; ready again, untainted.
    let conditions = json!({ "status": { "conditions": [{
        "type": "Ready", "status": "False", "reason": "KubeletNotReady",
        "message": "container runtime is down", "lastHeartbeatTime": "2025-01-01T00:00:00Z",
        "lastTransitionTime": "2025-01-01T00:00:00Z",
    }] } });
    kubectl
        .ok(&[
            "patch",
            "node",
            "node-b",
            "--subresource=status",
            "--type=merge",
            "-p",
            &conditions.to_string(),
        ])
        .await;
    let not_ready = "node.kubernetes.io/not-ready node.kubernetes.io/not-ready";
    assert!(field_becomes(&kubectl, "node-b", "{.spec.taints[*].key}", not_ready).await);
    assert_eq!(
        node_field(&kubectl, "node-b", "{.status.conditions[0].message}").await,
        "container runtime is down"
    );
    assert!(readiness_becomes(&pods, "forever", false).await);
    // Not ready, not cordoned: no `SchedulingDisabled` (that is `kubectl cordon`'s).
    assert_eq!(node_status(&kubectl, "node-b").await, "NotReady");
    assert!(back(&kubectl, "node-b").await);
    assert!(readiness_becomes(&pods, "forever", true).await);
}

#[tokio::test]
async fn a_not_ready_node_refuses_new_pods_at_once() {
    // Real time: the `NoExecute` taint would take 50 seconds, the `NoSchedule` one does
    // not wait.
    let config = SimConfig::new("sim-node-noschedule")
        .with_nodes([SimNode::new("node-a"), SimNode::new("node-b")]);
    let (sim, client) = start_with(config).await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "node-noschedule") else {
        return;
    };
    sim.set_node_ready("node-a", NodeReadiness::Unreachable);
    assert_eq!(node_status(&kubectl, "node-a").await, "NotReady");
    assert_eq!(
        node_field(
            &kubectl,
            "node-a",
            "{.spec.taints[*].key}/{.spec.taints[*].effect}"
        )
        .await,
        "node.kubernetes.io/unreachable/NoSchedule"
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &pod_on("late", "node-a", Value::Null),
    )
    .await
    .unwrap();
    let (status, _, message) =
        pod_condition(&pods.get("late").await.unwrap(), "PodScheduled").unwrap();
    assert_eq!(status, "False");
    assert!(
        message
            .as_deref()
            .unwrap_or_default()
            .contains("1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }"),
        "{message:?}"
    );
    sim.set_node_ready("node-a", NodeReadiness::Ready);
    assert!(readiness_becomes(&pods, "late", true).await);
}

#[tokio::test]
async fn a_deployment_replaces_its_evicted_pod_elsewhere_and_a_stuck_pod_can_be_forced() {
    let Some((_sim, client, kubectl)) = cluster("node-deploy").await else {
        return;
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // Placed on node-a (node-b cordoned), free to go anywhere afterwards.
    kubectl.ok(&["cordon", "node-b"]).await;
    let deployment = super::deployment("api", 1, "registry.k8s.io/pause:3.10");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let running = || async {
        pods.list(&ListParams::default().labels("app=api"))
            .await
            .unwrap()
            .items
    };
    assert!(eventually(SETTLE, || async { running().await.iter().any(is_ready) }).await);
    let first = running().await.remove(0).name_any();
    kubectl.ok(&["uncordon", "node-b"]).await;

    set_ready(&kubectl, "node-a", "Unknown").await;
    // A ReplicaSet does not count a terminating pod: the replacement runs on node-b while
    // the evicted pod stays `Terminating` on node-a.
    assert!(
        eventually(SETTLE, || async {
            let pods = running().await;
            pods.len() == 2
                && pods
                    .iter()
                    .any(|p| p.name_any() == first && p.metadata.deletion_timestamp.is_some())
                && pods.iter().any(|p| {
                    p.name_any() != first
                        && is_ready(p)
                        && p.spec.as_ref().unwrap().node_name.as_deref() == Some("node-b")
                })
        })
        .await
    );
    // What an operator does about a pod stuck on a node that is gone for good.
    kubectl
        .ok(&["delete", "pod", &first, "--force", "--grace-period=0"])
        .await;
    assert!(pods.get_opt(&first).await.unwrap().is_none());
}

#[tokio::test]
async fn the_node_status_subresource_reads_and_writes_only_the_status() {
    let Some((_sim, _client, kubectl)) = cluster("node-status").await else {
        return;
    };
    let read = kubectl
        .ok(&[
            "get",
            "node",
            "node-a",
            "--subresource=status",
            "-o",
            "json",
        ])
        .await;
    let mut node: Value = serde_json::from_str(&read).unwrap();
    assert_eq!(node["kind"], "Node");
    // A PUT of the status: the conditions as written, the spec as it was.
    node["spec"]["unschedulable"] = json!(true);
    for condition in node["status"]["conditions"].as_array_mut().unwrap() {
        if condition["type"] == "Ready" {
            condition["status"] = json!("False");
            condition["reason"] = json!("KubeletNotReady");
        }
    }
    let file =
        std::env::temp_dir().join(format!("framedb-node-status-{}.json", std::process::id()));
    std::fs::write(&file, node.to_string()).unwrap();
    kubectl
        .ok(&[
            "replace",
            "--subresource=status",
            "-f",
            file.to_str().unwrap(),
        ])
        .await;
    let _ = std::fs::remove_file(&file);
    assert_eq!(node_status(&kubectl, "node-a").await, "NotReady");
    assert_eq!(
        node_field(&kubectl, "node-a", "{.spec.unschedulable}").await,
        ""
    );
    let ready = "{.status.conditions[?(@.type==\"Ready\")].reason}";
    assert_eq!(
        node_field(&kubectl, "node-a", ready).await,
        "KubeletNotReady"
    );
    // Ready again: the kubelet posts its own reason.
    assert!(back(&kubectl, "node-a").await);
    assert_eq!(node_field(&kubectl, "node-a", ready).await, "KubeletReady");
}

#[tokio::test]
async fn cordon_and_uncordon_show_in_kubectl_get_nodes() {
    let Some((_sim, _client, kubectl)) = cluster("cordon").await else {
        return;
    };
    let out = kubectl.ok(&["cordon", "node-a"]).await;
    assert!(out.contains("node/node-a cordoned"), "{out}");
    assert_eq!(
        node_status(&kubectl, "node-a").await,
        "Ready,SchedulingDisabled"
    );
    assert_eq!(
        node_field(&kubectl, "node-a", "{.spec.unschedulable}").await,
        "true"
    );
    let out = kubectl.ok(&["uncordon", "node-a"]).await;
    assert!(out.contains("node/node-a uncordoned"), "{out}");
    assert_eq!(node_status(&kubectl, "node-a").await, "Ready");
}

#[tokio::test]
async fn the_eviction_subresource_deletes_its_pod_gracefully() {
    let Some((_sim, client, kubectl)) = cluster("evict").await else {
        return;
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for name in ["by-kube", "by-kubectl"] {
        let mut pod = pod_on(name, "node-a", Value::Null);
        // Long enough (2.5 real seconds) to look at the pod being deleted.
        pod.spec.as_mut().unwrap().termination_grace_period_seconds = Some(300);
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    assert!(
        eventually(SETTLE, || async {
            pods.list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .filter(|p| is_ready(p))
                .count()
                == 2
        })
        .await
    );
    let discovery = kubectl.ok(&["get", "--raw", "/api/v1"]).await;
    let resources: Value = serde_json::from_str(&discovery).unwrap();
    let eviction = resources["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods/eviction")
        .unwrap();
    assert_eq!(
        (
            &eviction["group"],
            &eviction["version"],
            &eviction["kind"],
            &eviction["verbs"]
        ),
        (
            &json!("policy"),
            &json!("v1"),
            &json!("Eviction"),
            &json!(["create"])
        )
    );

    // kube-rs: the pod is marked and deleted over its grace period. (kube-rs 5 sends its
    // `EvictParams::delete_options` as `delete_options`, a field the API server does
    // not know and drops, so it could not shorten the period.)
    let status = pods
        .evict("by-kube", &EvictParams::default())
        .await
        .unwrap();
    assert_eq!(
        status.status,
        Some(kube::core::response::StatusSummary::Success)
    );
    let evicted = pods.get("by-kube").await.unwrap();
    assert!(evicted.metadata.deletion_timestamp.is_some());
    let (status, reason, message) = pod_condition(&evicted, "DisruptionTarget").unwrap();
    assert_eq!(
        (status.as_str(), reason.as_deref(), message.as_deref()),
        (
            "True",
            Some("EvictionByEvictionAPI"),
            Some("Eviction API: evicting")
        )
    );
    assert!(gone(&pods, "by-kube").await);

    // kubectl, raw: the answer is a `Success` Status.
    let body = json!({
        "apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": { "name": "by-kubectl", "namespace": "default" },
        "deleteOptions": { "gracePeriodSeconds": 0 },
    });
    let file = std::env::temp_dir().join(format!("framedb-evict-{}.json", std::process::id()));
    std::fs::write(&file, body.to_string()).unwrap();
    let path = "/api/v1/namespaces/default/pods/by-kubectl/eviction";
    let out = kubectl
        .ok(&["create", "--raw", path, "-f", file.to_str().unwrap()])
        .await;
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&answer["kind"], &answer["status"]),
        (&json!("Status"), &json!("Success"))
    );
    assert!(
        pods.get_opt("by-kubectl").await.unwrap().is_none(),
        "a zero grace period deletes at once"
    );

    // The name must match the URL's; a missing pod is 404.
    std::fs::write(
        &file,
        json!({ "apiVersion": "policy/v1", "kind": "Eviction", "metadata": { "name": "other" } })
            .to_string(),
    )
    .unwrap();
    let err = kubectl
        .refused(&["create", "--raw", path, "-f", file.to_str().unwrap()])
        .await;
    assert!(
        err.contains("name in URL does not match name in Eviction object"),
        "{err}"
    );
    let _ = std::fs::remove_file(&file);
    let err = api_error(pods.evict("nope", &EvictParams::default()).await);
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
}

#[tokio::test]
async fn kubectl_drain_cordons_and_evicts_a_node_s_pods() {
    let Some((_sim, client, kubectl)) = cluster("drain").await else {
        return;
    };
    let (pods, first) = ready_statefulset(&client, "drained", "db", json!({})).await;
    let node = first.spec.unwrap().node_name.unwrap();
    // kubectl's own checks: a pod without a controller needs `--force`.
    pods.create(&PostParams::default(), &pod_on("bare", &node, Value::Null))
        .await
        .unwrap();
    let err = kubectl.refused(&["drain", &node, "--timeout=30s"]).await;
    assert!(
        err.contains(
            "cannot delete Pods that declare no controller (use --force to override): drained/bare"
        ),
        "{err}"
    );
    let out = kubectl
        .ok(&["drain", &node, "--force", "--timeout=30s"])
        .await;
    assert!(
        out.contains(&format!("node/{node} already cordoned")),
        "{out}"
    );
    assert!(out.contains("pod/db-0 evicted"), "{out}");
    assert!(out.contains("pod/bare evicted"), "{out}");
    assert!(out.contains(&format!("node/{node} drained")), "{out}");
    assert_eq!(
        node_status(&kubectl, &node).await,
        "Ready,SchedulingDisabled"
    );
    // The StatefulSet makes db-0 again, on the other node.
    assert!(
        eventually(SETTLE, || async {
            pods.get_opt("db-0").await.unwrap().is_some_and(|p| {
                p.spec
                    .as_ref()
                    .unwrap()
                    .node_name
                    .as_deref()
                    .is_some_and(|n| n != node)
            })
        })
        .await
    );
}
