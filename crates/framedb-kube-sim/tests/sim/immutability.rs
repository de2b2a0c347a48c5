//! Fields a real API server keeps as they were created: a StatefulSet's spec but for the
//! fields its controller can roll, a claim's spec, a Service's cluster IP. Driven by
//! kubectl, and by kube-rs where the answer's fields are checked.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::kubectl::Kubectl;
use super::{api_error, create_namespace, node_port_service, object, start, statefulset};

const STS_RULE: &str = "spec: Forbidden: updates to statefulset spec for fields other than \
                        'replicas', 'ordinals', 'template', 'updateStrategy', \
                        'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and \
                        'minReadySeconds' are forbidden";

#[tokio::test]
async fn a_statefulset_s_spec_is_fixed_but_for_what_its_controller_rolls() {
    let (sim, client) = start().await;
    create_namespace(&client, "imm-sts").await;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "imm-sts");
    let set = statefulset("db", 1, json!({ "kubernetes.io/hostname": "node-a" }));
    sets.create(&PostParams::default(), &set).await.unwrap();

    // kube-rs sees the real Status: 422 Invalid, the field and the sentence.
    let patch = Patch::Merge(json!({ "spec": { "serviceName": "other" } }));
    let status = api_error(sets.patch("db", &PatchParams::default(), &patch).await);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        status.message,
        format!("StatefulSet.apps \"db\" is invalid: {STS_RULE}")
    );
    let changes_selector = Patch::Merge(
        json!({ "spec": { "selector": { "matchLabels": { "app": "db", "x": "y" } } } }),
    );
    let status = api_error(
        sets.patch("db", &PatchParams::default(), &changes_selector)
            .await,
    );
    assert!(status.message.contains(STS_RULE), "{}", status.message);

    // What the controller rolls may change.
    let rolled = Patch::Merge(json!({ "spec": {
        "replicas": 2, "minReadySeconds": 5, "revisionHistoryLimit": 3,
        "template": { "spec": { "containers": [{ "name": "tidb", "image": "pingcap/tidb:v8.5.1" }] } },
        "persistentVolumeClaimRetentionPolicy": { "whenDeleted": "Delete", "whenScaled": "Retain" },
    }}));
    sets.patch("db", &PatchParams::default(), &rolled)
        .await
        .unwrap();

    let Some(kubectl) = Kubectl::for_sim(&sim, "imm-sts") else {
        return;
    };
    let refused = kubectl
        .refused(&[
            "patch",
            "statefulset",
            "db",
            "-n",
            "imm-sts",
            "--type=merge",
            "-p",
            r#"{"spec":{"podManagementPolicy":"Parallel"}}"#,
        ])
        .await;
    assert!(refused.contains(STS_RULE), "{refused}");
    kubectl
        .ok(&[
            "scale",
            "statefulset",
            "db",
            "-n",
            "imm-sts",
            "--replicas=1",
        ])
        .await;
}

#[tokio::test]
async fn a_claim_s_spec_is_fixed_after_creation() {
    let (sim, client) = start().await;
    create_namespace(&client, "imm-pvc").await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "imm-pvc");
    let claim: PersistentVolumeClaim = object(json!({
        "metadata": { "name": "data" },
        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } },
    }));
    claims.create(&PostParams::default(), &claim).await.unwrap();
    let rule = "spec: Forbidden: spec is immutable after creation except resources.requests and \
                volumeAttributesClassName for bound claims";

    let patch = Patch::Merge(json!({ "spec": { "accessModes": ["ReadWriteMany"] } }));
    let status = api_error(claims.patch("data", &PatchParams::default(), &patch).await);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(status.message.contains(rule), "{}", status.message);
    // Labels and annotations are not the spec.
    let labelled = Patch::Merge(json!({ "metadata": { "labels": { "team": "a" } } }));
    claims
        .patch("data", &PatchParams::default(), &labelled)
        .await
        .unwrap();

    let Some(kubectl) = Kubectl::for_sim(&sim, "imm-pvc") else {
        return;
    };
    let refused = kubectl
        .refused(&[
            "patch",
            "pvc",
            "data",
            "-n",
            "imm-pvc",
            "--type=merge",
            "-p",
            r#"{"spec":{"storageClassName":"fast"}}"#,
        ])
        .await;
    assert!(refused.contains(rule), "{refused}");
}

#[tokio::test]
async fn a_service_keeps_its_cluster_ip() {
    let (sim, client) = start().await;
    create_namespace(&client, "imm-svc").await;
    let services: Api<Service> = Api::namespaced(client.clone(), "imm-svc");
    let created = services
        .create(&PostParams::default(), &node_port_service("db", None))
        .await
        .unwrap();
    let ip = created.spec.unwrap().cluster_ip.unwrap();
    let other = if ip == "10.96.0.250" {
        "10.96.0.251"
    } else {
        "10.96.0.250"
    };

    let patch = Patch::Merge(json!({ "spec": { "clusterIP": other } }));
    let status = api_error(services.patch("db", &PatchParams::default(), &patch).await);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status.message.contains(&format!(
            "spec.clusterIPs[0]: Invalid value: [\"{other}\"]: may not change once set"
        )),
        "{}",
        status.message
    );
    // Sending the same IP again is no change.
    let same = Patch::Merge(json!({ "spec": { "clusterIP": ip } }));
    services
        .patch("db", &PatchParams::default(), &same)
        .await
        .unwrap();

    let Some(kubectl) = Kubectl::for_sim(&sim, "imm-svc") else {
        return;
    };
    let patch = format!(r#"{{"spec":{{"clusterIP":"{other}"}}}}"#);
    let refused = kubectl
        .refused(&[
            "patch",
            "service",
            "db",
            "-n",
            "imm-svc",
            "--type=merge",
            "-p",
            &patch,
        ])
        .await;
    assert!(refused.contains("may not change once set"), "{refused}");
}
