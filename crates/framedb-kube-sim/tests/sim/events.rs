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

/// `events.k8s.io/v1` serves the same Events in its own shape, read and written both ways.
#[tokio::test]
async fn the_events_api_group_is_a_second_view_of_the_same_events() {
    use futures_util::StreamExt;
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::api::events::v1::Event as EventV1;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use kube::api::{Patch, PatchParams, WatchEvent, WatchParams};

    let (sim, client) = start_with(SimConfig::new("sim-events-v1")).await;
    create_namespace(&client, "ev1").await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "events-v1") else {
        return;
    };
    let resources = kubectl
        .ok(&["api-resources", "--api-group=events.k8s.io"])
        .await;
    assert!(resources.contains("events.k8s.io/v1"), "{resources}");

    // Recorded through the newer API, as kube-rs's and client-go's new recorders do.
    let newer: Api<EventV1> = Api::namespaced(client.clone(), "ev1");
    let mut watch = newer
        .watch(&WatchParams::default().fields("regarding.name=web"), "0")
        .await
        .unwrap()
        .boxed();
    let recorded = newer
        .create(
            &PostParams::default(),
            &EventV1 {
                metadata: kube::api::ObjectMeta {
                    name: Some("web.1".into()),
                    ..Default::default()
                },
                event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
                regarding: Some(ObjectReference {
                    kind: Some("Deployment".into()),
                    name: Some("web".into()),
                    namespace: Some("ev1".into()),
                    ..Default::default()
                }),
                reason: Some("Scaled".into()),
                note: Some("scaled to 3".into()),
                type_: Some("Normal".into()),
                action: Some("Scale".into()),
                reporting_controller: Some("example.com/scaler".into()),
                reporting_instance: Some("scaler-1".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(recorded.note.as_deref(), Some("scaled to 3"));
    let Some(Ok(WatchEvent::Added(seen))) = watch.next().await else {
        panic!("the watch of the newer API saw the Event");
    };
    assert_eq!(seen.regarding.unwrap().name.as_deref(), Some("web"));

    // The core API sees the same object in its shape.
    let core: Api<Event> = Api::namespaced(client.clone(), "ev1");
    let same = core.get("web.1").await.unwrap();
    assert_eq!(same.message.as_deref(), Some("scaled to 3"));
    assert_eq!(same.involved_object.name.as_deref(), Some("web"));
    assert_eq!(
        same.reporting_component.as_deref(),
        Some("example.com/scaler")
    );

    // A patch in the newer shape changes the one object.
    newer
        .patch(
            "web.1",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "note": "scaled to 4" })),
        )
        .await
        .unwrap();
    assert_eq!(
        core.get("web.1").await.unwrap().message.as_deref(),
        Some("scaled to 4")
    );

    // What the simulator's components record through the core API reads in the newer one.
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "ev1");
    sets.create(
        &PostParams::default(),
        &super::statefulset("db", 1, json!({})),
    )
    .await
    .unwrap();
    let listed = newer
        .list(&ListParams::default().fields("regarding.kind=StatefulSet,reason=SuccessfulCreate"))
        .await
        .unwrap()
        .items;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].deprecated_count, Some(1));
    assert!(
        listed[0].note.as_deref().unwrap().contains("db-0"),
        "{listed:?}"
    );

    let json_out = kubectl
        .ok(&["get", "events.v1.events.k8s.io", "-n", "ev1", "-o", "json"])
        .await;
    assert!(
        json_out.contains("\"apiVersion\": \"events.k8s.io/v1\""),
        "{json_out}"
    );
    assert!(json_out.contains("\"note\": \"scaled to 4\""), "{json_out}");
    let table = kubectl
        .ok(&["get", "events.events.k8s.io", "-n", "ev1"])
        .await;
    assert!(
        table.contains("Scaled") && table.contains("deployment/web"),
        "{table}"
    );
    sim.shutdown().await;
}
