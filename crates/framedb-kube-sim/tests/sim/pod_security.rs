//! Pod Security Admission by namespace label, driven with kubectl: a pod that breaks the
//! enforced level is refused with the plugin's sentence, and a StatefulSet whose pods
//! are refused keeps none and says so in a `FailedCreate` event.

use framedb_kube_sim::SimConfig;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use super::kubectl::Kubectl;
use super::{api_error, create_namespace, object, start_with, statefulset};

#[tokio::test]
async fn a_namespace_s_enforced_level_refuses_pods_that_break_it() {
    let (sim, client) = start_with(SimConfig::new("sim-psa")).await;
    create_namespace(&client, "locked").await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "psa") else {
        return;
    };
    kubectl
        .ok(&[
            "label",
            "namespace",
            "locked",
            "pod-security.kubernetes.io/enforce=baseline",
        ])
        .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "locked");
    let host: Pod = object(json!({
        "metadata": { "name": "host" },
        "spec": {
            "containers": [{ "name": "main", "image": "busybox:1.36",
                             "securityContext": { "privileged": true } }],
            "volumes": [{ "name": "root", "hostPath": { "path": "/" } }],
        },
    }));
    let status = api_error(pods.create(&PostParams::default(), &host).await);
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "pods \"host\" is forbidden: violates PodSecurity \"baseline:latest\": privileged \
         (container \"main\" must not set securityContext.privileged=true), hostPath volumes \
         (volume \"root\")"
    );

    // A plain pod passes baseline; restricted asks for more, and kubectl says what.
    let plain: Pod = object(json!({
        "metadata": { "name": "plain" },
        "spec": { "containers": [{ "name": "main", "image": "busybox:1.36" }] },
    }));
    pods.create(&PostParams::default(), &plain).await.unwrap();
    kubectl
        .ok(&[
            "label",
            "namespace",
            "locked",
            "pod-security.kubernetes.io/enforce=restricted",
            "--overwrite",
        ])
        .await;
    let again = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "plain-2", "namespace": "locked"},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}});
    let ran = kubectl.with_manifest("create", &again).await;
    assert!(!ran.success);
    let refused = ran.stderr;
    assert!(
        refused.contains(
            "violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"
        ),
        "{refused}"
    );

    // A workload's pods are refused as they are made: none runs, an event says why.
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "locked");
    sets.create(
        &PostParams::default(),
        &statefulset("db", 2, json!({ "kubernetes.io/hostname": "node-a" })),
    )
    .await
    .unwrap();
    let none = pods
        .list(&ListParams::default().labels("app=db"))
        .await
        .unwrap()
        .items;
    assert!(none.is_empty(), "{none:?}");
    let described = kubectl
        .ok(&["describe", "statefulset", "db", "-n", "locked"])
        .await;
    assert!(
        described.contains("FailedCreate")
            && described.contains(
                "create Pod db-0 in StatefulSet db failed error: pods \"db-0\" is forbidden: \
                 violates PodSecurity \"restricted:latest\""
            ),
        "{described}"
    );
}
