//! Storage as a real cluster does it: a default StorageClass that claims without a class
//! get at create, binding that waits for a claim's first consumer and then follows the
//! node the scheduler picked, a cluster without a default class, volume expansion only
//! where the class allows it, and `local` volumes that mount only where their directory
//! exists. Driven by kubectl wherever it can express the step, by kube-rs where answers
//! are checked field by field.

use std::time::Duration;

use framedb_kube_sim::{SimConfig, SimNode};
use k8s_openapi::api::core::v1::{Event, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::kubectl::Kubectl;
use super::{create_namespace, eventually, phase, start_with};

/// How long a test waits for the controllers to act on a write.
const SETTLE: Duration = Duration::from_secs(10);

fn claim_manifest(ns: &str, name: &str, class: Option<&str>) -> Value {
    let mut claim = json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": { "name": name, "namespace": ns },
        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } },
    });
    if let Some(class) = class {
        claim["spec"]["storageClassName"] = json!(class);
    }
    claim
}

/// A pod whose container mounts each of `volumes` at `/volumes/NAME` (the kubelet sets
/// up only the volumes a container uses).
fn pod_manifest(ns: &str, name: &str, volumes: Value, node: Option<&str>) -> Value {
    let mounts: Vec<Value> = volumes
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| json!({ "name": v["name"], "mountPath": format!("/volumes/{}", v["name"].as_str().unwrap()) }))
        .collect();
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "namespace": ns },
        "spec": {
            "containers": [{ "name": "main", "image": "registry.k8s.io/pause:3.10", "volumeMounts": mounts }],
            "volumes": volumes,
        },
    });
    if let Some(node) = node {
        pod["spec"]["nodeSelector"] = json!({ "kubernetes.io/hostname": node });
    }
    pod
}

fn claim_volume(claim: &str) -> Value {
    json!([{ "name": "data", "persistentVolumeClaim": { "claimName": claim } }])
}

/// The messages of the events of `reason` about object `name` in `ns`.
async fn event_messages(client: &Client, ns: &str, name: &str, reason: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let selector = format!("involvedObject.name={name},reason={reason}");
    events
        .list(&ListParams::default().fields(&selector))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.message)
        .collect()
}

async fn claim_phase(claims: &Api<PersistentVolumeClaim>, name: &str) -> String {
    claims
        .get(name)
        .await
        .unwrap()
        .status
        .and_then(|s| s.phase)
        .unwrap_or_default()
}

#[tokio::test]
async fn the_default_storage_class_is_served_and_marked() {
    let (sim, _client) = start_with(SimConfig::new("sim-sc")).await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "storage-sc") else {
        return;
    };
    let table = kubectl.ok(&["get", "sc"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "PROVISIONER",
            "RECLAIMPOLICY",
            "VOLUMEBINDINGMODE",
            "ALLOWVOLUMEEXPANSION",
            "AGE"
        ]
    );
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..6],
        [
            "standard",
            "(default)",
            "rancher.io/local-path",
            "Delete",
            "WaitForFirstConsumer",
            "false"
        ]
    );
    let class: Value = serde_json::from_str(
        &kubectl
            .ok(&[
                "get",
                "storageclass.storage.k8s.io",
                "standard",
                "-o",
                "json",
            ])
            .await,
    )
    .unwrap();
    assert_eq!(
        class["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
        "true"
    );
    // A class of one's own: `Immediate` and `Delete` by default; its provisioner and
    // binding mode are fixed once created.
    let fast = json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": { "name": "fast" }, "provisioner": "example.com/fast",
    });
    assert!(kubectl.with_manifest("create", &fast).await.success);
    let row = kubectl.ok(&["get", "sc", "fast", "--no-headers"]).await;
    let row: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &row[..5],
        ["fast", "example.com/fast", "Delete", "Immediate", "false"]
    );
    let refused = kubectl
        .refused(&[
            "patch",
            "sc",
            "fast",
            "--type=merge",
            "-p",
            r#"{"provisioner":"example.com/slow"}"#,
        ])
        .await;
    assert!(
        refused.contains("provisioner: Forbidden: updates to provisioner are forbidden."),
        "{refused}"
    );
}

#[tokio::test]
async fn a_claim_waits_for_its_first_consumer_and_binds_on_its_node() {
    let (sim, client) = start_with(SimConfig::new("sim-wffc")).await;
    create_namespace(&client, "wffc").await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "storage-wffc") else {
        return;
    };
    // No class named: the default class's name is written in at create.
    let ran = kubectl
        .with_manifest("create", &claim_manifest("wffc", "data", None))
        .await;
    assert!(ran.success, "{}", ran.stderr);
    let row = kubectl
        .ok(&["get", "pvc", "data", "-n", "wffc", "--no-headers"])
        .await;
    let row: Vec<&str> = row.split_whitespace().collect();
    assert_eq!((row[1], row[2]), ("Pending", "standard"), "{row:?}");
    let described = kubectl.ok(&["describe", "pvc", "data", "-n", "wffc"]).await;
    assert!(
        described.contains("WaitForFirstConsumer")
            && described.contains("waiting for first consumer to be created before binding"),
        "{described}"
    );
    // Its consumer is scheduled (the volume-binding plugin does not refuse it); the
    // scheduler's node is where the volume is provisioned, and the claim binds.
    let ran = kubectl
        .with_manifest(
            "create",
            &pod_manifest("wffc", "user", claim_volume("data"), Some("node-b")),
        )
        .await;
    assert!(ran.success, "{}", ran.stderr);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "wffc");
    assert!(
        eventually(SETTLE, || async {
            phase(&pods.get("user").await.unwrap()) == "Running"
        })
        .await
    );
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "wffc");
    let claim = claims.get("data").await.unwrap();
    assert_eq!(
        claim.annotations()["volume.kubernetes.io/selected-node"],
        "node-b"
    );
    assert_eq!(claim.status.unwrap().phase.as_deref(), Some("Bound"));
    let volume_name = claim.spec.unwrap().volume_name.unwrap();
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let volume = serde_json::to_value(volumes.get(&volume_name).await.unwrap()).unwrap();
    assert_eq!(
        volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0],
        json!({ "key": "kubernetes.io/hostname", "operator": "In", "values": ["node-b"] })
    );
    assert_eq!(volume["spec"]["storageClassName"], "standard");
    assert_eq!(
        volume["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"],
        "rancher.io/local-path"
    );
    let row = kubectl
        .ok(&["get", "pvc", "data", "-n", "wffc", "--no-headers"])
        .await;
    assert!(row.contains("Bound") && row.contains(&volume_name), "{row}");
    assert_eq!(
        event_messages(&client, "wffc", "data", "ProvisioningSucceeded").await,
        [format!("Successfully provisioned volume {volume_name}")]
    );
}

#[tokio::test]
async fn a_claim_of_an_unscheduled_pod_says_it_waits_for_that_pod() {
    let (sim, client) = start_with(SimConfig::new("sim-wffc-wait")).await;
    create_namespace(&client, "wait").await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "storage-wffc-wait") else {
        return;
    };
    assert!(
        kubectl
            .with_manifest("create", &claim_manifest("wait", "data", None))
            .await
            .success
    );
    // Its pod goes to a node that does not exist: the claim waits for that pod.
    assert!(
        kubectl
            .with_manifest(
                "create",
                &pod_manifest("wait", "stuck", claim_volume("data"), Some("nowhere")),
            )
            .await
            .success
    );
    assert!(
        eventually(SETTLE, || async {
            event_messages(&client, "wait", "data", "WaitForPodScheduled")
                .await
                .contains(&"waiting for pod stuck to be scheduled".to_string())
        })
        .await
    );
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "wait");
    assert_eq!(claim_phase(&claims, "data").await, "Pending");
    let failed = event_messages(&client, "wait", "stuck", "FailedScheduling").await;
    assert!(
        failed
            .iter()
            .all(|m| !m.contains("unbound immediate PersistentVolumeClaims")),
        "{failed:?}"
    );
}

#[tokio::test]
async fn without_a_default_class_a_claim_stays_pending_and_its_pod_unschedulable() {
    let config = SimConfig::new("sim-no-sc").without_default_storage_class();
    let (sim, client) = start_with(config).await;
    create_namespace(&client, "nosc").await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "storage-no-sc") else {
        return;
    };
    let ran = kubectl.run(&["get", "sc"]).await;
    assert!(ran.success && ran.stdout.is_empty(), "{}", ran.stdout);
    assert!(ran.stderr.contains("No resources found"), "{}", ran.stderr);
    assert!(
        kubectl
            .with_manifest("create", &claim_manifest("nosc", "data", None))
            .await
            .success
    );
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "nosc");
    let claim = claims.get("data").await.unwrap();
    assert_eq!(claim.spec.unwrap().storage_class_name, None);
    let described = kubectl.ok(&["describe", "pvc", "data", "-n", "nosc"]).await;
    assert!(
        described.contains("FailedBinding")
            && described.contains(
                "no persistent volumes available for this claim and no storage class is set"
            ),
        "{described}"
    );
    assert!(
        kubectl
            .with_manifest(
                "create",
                &pod_manifest("nosc", "user", claim_volume("data"), None)
            )
            .await
            .success
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "nosc");
    assert!(
        eventually(SETTLE, || async {
            event_messages(&client, "nosc", "user", "FailedScheduling")
                .await
                .iter()
                .any(|m| {
                    m.starts_with(
                    "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims."
                )
                })
        })
        .await
    );
    assert_eq!(phase(&pods.get("user").await.unwrap()), "Pending");
    assert_eq!(claim_phase(&claims, "data").await, "Pending");
    // A matching volume of no class, made by hand, is what such a claim binds to.
    let volume = json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": { "name": "manual-nosc" },
        "spec": {
            "capacity": { "storage": "2Gi" }, "accessModes": ["ReadWriteOnce"],
            "hostPath": { "path": "/srv/manual", "type": "DirectoryOrCreate" },
        },
    });
    assert!(kubectl.with_manifest("create", &volume).await.success);
    assert!(
        eventually(SETTLE, || async {
            phase(&pods.get("user").await.unwrap()) == "Running"
        })
        .await
    );
    assert_eq!(claim_phase(&claims, "data").await, "Bound");
}

#[tokio::test]
async fn an_immediate_class_binds_claims_at_once_and_a_missing_class_is_told() {
    let config = SimConfig::new("sim-immediate").with_immediate_binding();
    let (sim, client) = start_with(config).await;
    create_namespace(&client, "imm").await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "storage-immediate") else {
        return;
    };
    assert!(
        kubectl
            .with_manifest("create", &claim_manifest("imm", "data", None))
            .await
            .success
    );
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "imm");
    assert_eq!(claim_phase(&claims, "data").await, "Bound");
    let claim = claims.get("data").await.unwrap();
    assert!(
        !claim
            .annotations()
            .contains_key("volume.kubernetes.io/selected-node")
    );
    // A class that does not exist: the claim stays pending, and says why.
    assert!(
        kubectl
            .with_manifest("create", &claim_manifest("imm", "lost", Some("gold")))
            .await
            .success
    );
    let described = kubectl.ok(&["describe", "pvc", "lost", "-n", "imm"]).await;
    assert!(
        described.contains("ProvisioningFailed")
            && described.contains(r#"storageclass.storage.k8s.io "gold" not found"#),
        "{described}"
    );
    assert_eq!(claim_phase(&claims, "lost").await, "Pending");
}

#[tokio::test]
async fn a_bound_claim_grows_only_if_its_class_allows_expansion() {
    let config = SimConfig::new("sim-expand")
        .with_immediate_binding()
        .with_volume_expansion(true);
    let (sim, client) = start_with(config).await;
    create_namespace(&client, "grow").await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "storage-expand") else {
        return;
    };
    assert!(
        kubectl
            .with_manifest("create", &claim_manifest("grow", "data", None))
            .await
            .success
    );
    let grow = r#"{"spec":{"resources":{"requests":{"storage":"3Gi"}}}}"#;
    kubectl
        .ok(&[
            "patch",
            "pvc",
            "data",
            "-n",
            "grow",
            "--type=merge",
            "-p",
            grow,
        ])
        .await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "grow");
    assert!(
        eventually(SETTLE, || async {
            let claim = claims.get("data").await.unwrap();
            claim.status.unwrap().capacity.unwrap()["storage"].0 == "3Gi"
        })
        .await
    );
    let volume_name = claims.get("data").await.unwrap().spec.unwrap().volume_name;
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let volume = volumes.get(&volume_name.unwrap()).await.unwrap();
    assert_eq!(volume.spec.unwrap().capacity.unwrap()["storage"].0, "3Gi");
    // Shrinking below what the volume has is refused.
    let shrink = r#"{"spec":{"resources":{"requests":{"storage":"1Gi"}}}}"#;
    let refused = kubectl
        .refused(&[
            "patch",
            "pvc",
            "data",
            "-n",
            "grow",
            "--type=merge",
            "-p",
            shrink,
        ])
        .await;
    assert!(
        refused.contains(
            "spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"
        ),
        "{refused}"
    );
    // A claim not bound yet may not change its spec at all.
    let own = json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": { "name": "later" }, "provisioner": "example.com/later",
        "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": true,
    });
    assert!(kubectl.with_manifest("create", &own).await.success);
    assert!(
        kubectl
            .with_manifest("create", &claim_manifest("grow", "waiting", Some("later")))
            .await
            .success
    );
    let refused = kubectl
        .refused(&[
            "patch",
            "pvc",
            "waiting",
            "-n",
            "grow",
            "--type=merge",
            "-p",
            grow,
        ])
        .await;
    assert!(
        refused.contains("spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_class_without_expansion_refuses_a_bigger_claim() {
    let config = SimConfig::new("sim-no-expand").with_immediate_binding();
    let (sim, client) = start_with(config).await;
    create_namespace(&client, "fixed").await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "storage-no-expand") else {
        return;
    };
    assert!(
        kubectl
            .with_manifest("create", &claim_manifest("fixed", "data", None))
            .await
            .success
    );
    refuses_to_grow(&kubectl, "fixed").await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "fixed");
    assert_eq!(requested(&claims.get("data").await.unwrap()), "1Gi");
}

/// Asks kubectl to grow claim `data` of `ns` to 3Gi, and checks that the
/// `PersistentVolumeClaimResize` admission plugin refuses it (403, its own sentence).
async fn refuses_to_grow(kubectl: &Kubectl, ns: &str) {
    let grow = r#"{"spec":{"resources":{"requests":{"storage":"3Gi"}}}}"#;
    let refused = kubectl
        .refused(&["patch", "pvc", "data", "-n", ns, "--type=merge", "-p", grow])
        .await;
    assert!(
        refused.contains(
            r#"persistentvolumeclaims "data" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"#
        ),
        "{refused}"
    );
}

/// The storage a claim requests.
fn requested(claim: &PersistentVolumeClaim) -> String {
    let spec = claim.spec.as_ref().unwrap();
    spec.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"]
        .0
        .clone()
}

/// A claim bound to a static volume (no class, as `local` and `hostPath` volumes an
/// administrator makes) is not dynamically provisioned, so it may not grow, even where
/// the default class allows expansion; its metadata may still change.
#[tokio::test]
async fn a_claim_of_a_static_volume_cannot_grow() {
    let config = SimConfig::new("sim-static-grow").with_volume_expansion(true);
    let (sim, client) = start_with(config).await;
    create_namespace(&client, "static").await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "storage-static-grow") else {
        return;
    };
    local_volume_and_claim(
        &kubectl,
        "static",
        "static-a",
        "data",
        "/mnt/disks/s",
        "node-a",
    )
    .await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "static");
    assert!(
        eventually(SETTLE, || async {
            claim_phase(&claims, "data").await == "Bound"
        })
        .await
    );
    refuses_to_grow(&kubectl, "static").await;
    kubectl
        .ok(&[
            "annotate",
            "pvc",
            "data",
            "-n",
            "static",
            "example.com/note=kept",
        ])
        .await;
    let claim = claims.get("data").await.unwrap();
    assert_eq!(claim.annotations()["example.com/note"], "kept");
    assert_eq!(requested(&claim), "1Gi");
}

/// A `local` volume at `path` on `node`, and a claim `claim` in `ns` naming it.
async fn local_volume_and_claim(
    kubectl: &Kubectl,
    ns: &str,
    volume: &str,
    claim: &str,
    path: &str,
    node: &str,
) {
    let pv = json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": { "name": volume },
        "spec": {
            "capacity": { "storage": "1Gi" }, "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "local": { "path": path },
            "nodeAffinity": { "required": { "nodeSelectorTerms": [{ "matchExpressions": [
                { "key": "kubernetes.io/hostname", "operator": "In", "values": [node] }
            ] }] } },
        },
    });
    assert!(kubectl.with_manifest("create", &pv).await.success);
    let mut pvc = claim_manifest(ns, claim, Some(""));
    pvc["spec"]["volumeName"] = json!(volume);
    assert!(kubectl.with_manifest("create", &pvc).await.success);
}

#[tokio::test]
async fn a_local_volume_without_its_directory_leaves_the_pod_container_creating() {
    let (sim, client) = start_with(SimConfig::new("sim-local")).await;
    create_namespace(&client, "local").await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "storage-local") else {
        return;
    };
    local_volume_and_claim(
        &kubectl,
        "local",
        "local-a",
        "data",
        "/mnt/disks/a",
        "node-a",
    )
    .await;
    assert!(
        kubectl
            .with_manifest(
                "create",
                &pod_manifest("local", "db", claim_volume("data"), None)
            )
            .await
            .success
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "local");
    assert!(
        eventually(SETTLE, || async {
            pods.get("db")
                .await
                .unwrap()
                .spec
                .unwrap()
                .node_name
                .as_deref()
                == Some("node-a")
        })
        .await
    );
    let pod = pods.get("db").await.unwrap();
    assert_eq!(phase(&pod), "Pending");
    let status = pod.status.unwrap();
    let waiting = status.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("ContainerCreating"));
    let row = kubectl
        .ok(&["get", "pod", "db", "-n", "local", "--no-headers"])
        .await;
    assert!(row.contains("ContainerCreating"), "{row}");
    let events = kubectl
        .ok(&[
            "get",
            "events",
            "-n",
            "local",
            "--field-selector",
            "reason=FailedMount",
        ])
        .await;
    assert!(
        events.contains(
            r#"MountVolume.NewMounter initialization failed for volume "local-a" : path "/mnt/disks/a" does not exist"#
        ),
        "{events}"
    );
    // A pod on that node that declares a `hostPath` volume of that directory but mounts
    // it in no container: the kubelet skips the unused volume, and makes nothing.
    let mut unused = pod_manifest(
        "local",
        "unused",
        json!([{ "name": "disk", "hostPath": { "path": "/mnt/disks/a", "type": "DirectoryOrCreate" } }]),
        Some("node-a"),
    );
    unused["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("volumeMounts");
    assert!(kubectl.with_manifest("create", &unused).await.success);
    assert!(
        eventually(SETTLE, || async {
            phase(&pods.get("unused").await.unwrap()) == "Running"
        })
        .await
    );
    assert_eq!(phase(&pods.get("db").await.unwrap()), "Pending");
    // One whose container mounts it: the kubelet makes the directory, its next try mounts
    // the local volume, and the first pod starts.
    let maker = pod_manifest(
        "local",
        "mkdir",
        json!([{ "name": "disk", "hostPath": { "path": "/mnt/disks/a", "type": "DirectoryOrCreate" } }]),
        Some("node-a"),
    );
    assert!(kubectl.with_manifest("create", &maker).await.success);
    assert!(
        eventually(SETTLE, || async {
            phase(&pods.get("db").await.unwrap()) == "Running"
        })
        .await
    );
}

#[tokio::test]
async fn a_local_volume_on_a_prepared_node_mounts_at_once() {
    let config = SimConfig::new("sim-local-ready").with_nodes([
        SimNode::new("node-a").with_directory("/mnt/disks/ready"),
        SimNode::new("node-b"),
    ]);
    let (sim, client) = start_with(config).await;
    create_namespace(&client, "ready").await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "storage-local-ready") else {
        return;
    };
    local_volume_and_claim(
        &kubectl,
        "ready",
        "local-ready",
        "data",
        "/mnt/disks/ready",
        "node-a",
    )
    .await;
    assert!(
        kubectl
            .with_manifest(
                "create",
                &pod_manifest("ready", "db", claim_volume("data"), None)
            )
            .await
            .success
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "ready");
    assert!(
        eventually(SETTLE, || async {
            phase(&pods.get("db").await.unwrap()) == "Running"
        })
        .await
    );
    assert_eq!(
        pods.get("db")
            .await
            .unwrap()
            .spec
            .unwrap()
            .node_name
            .as_deref(),
        Some("node-a")
    );
}
