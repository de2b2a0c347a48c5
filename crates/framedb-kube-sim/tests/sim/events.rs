//! Events as the components record them, read with `kubectl get events` and `kubectl
//! describe`: the scheduler's `FailedScheduling` (once per reason) and `Scheduled`, the
//! kubelet's container starts, the StatefulSet controller's `SuccessfulCreate`.

use framedb_kube_sim::SimConfig;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use super::kubectl::Kubectl;
use super::{create_namespace, start_with, statefulset};

#[tokio::test]
async fn what_the_scheduler_and_the_controllers_did_is_in_the_events() {
    let (sim, client) = start_with(SimConfig::new("sim-events")).await;
    create_namespace(&client, "ev").await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "events") else {
        return;
    };
    kubectl.ok(&["cordon", "node-a"]).await;
    kubectl.ok(&["cordon", "node-b"]).await;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "ev");
    sets.create(
        &PostParams::default(),
        &statefulset("db", 1, json!({ "kubernetes.io/hostname": "node-a" })),
    )
    .await
    .unwrap();
    // Writes elsewhere run the scheduler again; the same reason is not told twice.
    for n in 0..3 {
        create_namespace(&client, &format!("ev-other-{n}")).await;
    }
    let events: Api<Event> = Api::namespaced(client.clone(), "ev");
    let failed = events
        .list(&ListParams::default().fields("involvedObject.name=db-0,reason=FailedScheduling"))
        .await
        .unwrap()
        .items;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].type_.as_deref(), Some("Warning"));
    assert_eq!(failed[0].count, Some(1));
    assert!(
        failed[0]
            .message
            .as_deref()
            .unwrap()
            .starts_with("0/2 nodes are available: 2 node(s) were unschedulable."),
        "{failed:?}"
    );

    let table = kubectl.ok(&["get", "events", "-n", "ev"]).await;
    assert!(table.contains("LAST SEEN"), "{table}");
    assert!(
        table.contains("Warning   FailedScheduling   pod/db-0"),
        "{table}"
    );
    assert!(
        table.contains("Normal    SuccessfulCreate   statefulset/db"),
        "{table}"
    );

    kubectl.ok(&["uncordon", "node-a"]).await;
    let described = kubectl.ok(&["describe", "pod", "db-0", "-n", "ev"]).await;
    let events_part = described.split("Events:").nth(1).unwrap_or_default();
    for line in [
        "Warning  FailedScheduling",
        "Normal   Scheduled",
        "Successfully assigned ev/db-0 to node-a",
        "Normal   Pulled",
        "Normal   Started",
    ] {
        assert!(events_part.contains(line), "{line}: {described}");
    }
    let described = kubectl
        .ok(&["describe", "statefulset", "db", "-n", "ev"])
        .await;
    assert!(
        described.contains("create Pod db-0 in StatefulSet db successful"),
        "{described}"
    );
}
