//! The scheduler's filters beyond node selectors: taints and tolerations (`kubectl
//! taint`), cordons (`kubectl cordon`), and requests against a node's allocatable CPU,
//! memory and pods, each refusing with the scheduler's own explanation.

use framedb_kube_sim::{SimConfig, SimNode};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use super::kubectl::Kubectl;
use super::{object, phase, pod_condition, start_with};

/// A bare pod with `extra` merged into its spec.
fn pod(name: &str, extra: Value) -> Pod {
    let mut spec = json!({ "containers": [{ "name": "main", "image": "pingcap/tidb:v8.5.1" }] });
    for (key, value) in extra.as_object().unwrap() {
        spec[key] = value.clone();
    }
    object(json!({ "metadata": { "name": name }, "spec": spec }))
}

/// Where `name` runs, or why it does not.
async fn placement(pods: &Api<Pod>, name: &str) -> Result<String, String> {
    let pod = pods.get(name).await.unwrap();
    match pod.spec.as_ref().unwrap().node_name.clone() {
        Some(node) => Ok(node),
        None => {
            assert_eq!(phase(&pod), "Pending");
            let (status, reason, message) = pod_condition(&pod, "PodScheduled").unwrap();
            assert_eq!(
                (status.as_str(), reason.as_deref()),
                ("False", Some("Unschedulable"))
            );
            Err(message.unwrap())
        }
    }
}

#[tokio::test]
async fn taints_refuse_pods_that_do_not_tolerate_them_until_they_go() {
    let (sim, client) = start_with(SimConfig::new("sim-taints")).await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "taints") else {
        return;
    };
    kubectl
        .ok(&["taint", "nodes", "node-a", "dedicated=db:NoSchedule"])
        .await;
    kubectl.ok(&["cordon", "node-b"]).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("plain", json!({})))
        .await
        .unwrap();
    assert_eq!(
        placement(&pods, "plain").await,
        Err(
            "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, 1 \
             node(s) were unschedulable. preemption: 0/2 nodes are available: 2 Preemption is \
             not helpful for scheduling."
                .into()
        )
    );
    let shown = kubectl
        .ok(&[
            "get",
            "pod",
            "plain",
            "-o",
            "jsonpath={.status.conditions[0].message}",
        ])
        .await;
    assert!(
        shown.contains("untolerated taint {dedicated: db}"),
        "{shown}"
    );

    // A pod that tolerates the taint goes there; a cordon is not a taint it tolerates.
    let tolerant = json!({ "tolerations": [
        { "key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule" }
    ]});
    pods.create(&PostParams::default(), &pod("tolerant", tolerant))
        .await
        .unwrap();
    assert_eq!(placement(&pods, "tolerant").await, Ok("node-a".into()));

    // Untainted, the node takes the waiting pod.
    kubectl
        .ok(&["taint", "nodes", "node-a", "dedicated=db:NoSchedule-"])
        .await;
    assert_eq!(placement(&pods, "plain").await, Ok("node-a".into()));
    kubectl.ok(&["uncordon", "node-b"]).await;
}

#[tokio::test]
async fn requests_beyond_what_a_node_has_left_wait_with_insufficient_memory() {
    let small = SimNode::new("node-s")
        .with_capacity("memory", "4Gi")
        .with_capacity("cpu", "2")
        .with_capacity("pods", "2");
    let (sim, client) = start_with(SimConfig::new("sim-fit").with_nodes([small])).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let asking = |memory: &str, cpu: &str| {
        json!({ "containers": [{ "name": "main", "image": "pingcap/tidb:v8.5.1",
            "resources": { "requests": { "memory": memory, "cpu": cpu } } }] })
    };
    pods.create(&PostParams::default(), &pod("big", asking("3Gi", "500m")))
        .await
        .unwrap();
    assert_eq!(placement(&pods, "big").await, Ok("node-s".into()));
    pods.create(&PostParams::default(), &pod("more", asking("2Gi", "2")))
        .await
        .unwrap();
    assert_eq!(
        placement(&pods, "more").await,
        Err(
            "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. preemption: \
             0/1 nodes are available: 1 No preemption victims found for incoming pod."
                .into()
        )
    );
    // A pod without requests fits until the node's pod count is reached.
    for name in ["free-1", "free-2"] {
        pods.create(&PostParams::default(), &pod(name, json!({})))
            .await
            .unwrap();
    }
    assert_eq!(placement(&pods, "free-1").await, Ok("node-s".into()));
    let message = placement(&pods, "free-2").await.unwrap_err();
    assert!(message.contains("1 Too many pods"), "{message}");

    // Once the big pod is gone (and the other waiting one, which could take its place
    // first), the waiting one fits.
    let Some(kubectl) = Kubectl::for_sim(&sim, "fit") else {
        return;
    };
    let described = kubectl.ok(&["describe", "node", "node-s"]).await;
    assert!(described.contains("memory:             4Gi"), "{described}");
    kubectl.ok(&["delete", "pod", "free-2"]).await;
    kubectl
        .ok(&["delete", "pod", "big", "--grace-period=0", "--force"])
        .await;
    assert_eq!(placement(&pods, "more").await, Ok("node-s".into()));
}

#[tokio::test]
async fn a_node_capacity_that_is_not_a_quantity_of_cpu_memory_or_pods_is_refused() {
    for (resource, amount, said) in [
        ("cpu", "lots", "capacity cpu=\"lots\" is not a quantity"),
        ("gpu", "1", "unknown capacity \"gpu\""),
    ] {
        let node = SimNode::new("node-a").with_capacity(resource, amount);
        let config = SimConfig::new("sim-bad-capacity").with_nodes([node]);
        let Err(e) = framedb_kube_sim::Simulator::start(config).await else {
            panic!("{resource}={amount} was taken as a capacity")
        };
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains(said), "{e}");
    }
}
