//! Deletion as a real cluster does it: finalizers that hold an object, pods that
//! terminate over their grace period on the simulator's clock, claims and volumes kept
//! while in use, namespaces that terminate once their content is gone, and the garbage
//! collector's propagation policies. Driven by kubectl wherever it can express the step,
//! by kube-rs where fixtures are made (kubectl's `create` sends protobuf) or answers are
//! checked field by field.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolume, PersistentVolumeClaim, Pod,
};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchParams};
use serde_json::{Value, json};

use super::kubectl::Kubectl;
use super::{
    TIME_SCALE, api_error, create_namespace, eventually, object, start, statefulset, watched,
};

/// How long a test waits for what a few simulated grace periods take.
const SETTLE: Duration = Duration::from_secs(10);

/// A pod running `pause`, with a grace period of `grace` seconds (the default 30 when
/// `None`), mounting `claim` when given; pinned to `node` (a node that does not exist
/// keeps it unscheduled).
fn pod(name: &str, grace: Option<i64>, claim: Option<&str>, node: &str) -> Pod {
    let mut spec = json!({
        "nodeSelector": { "kubernetes.io/hostname": node },
        "containers": [{ "name": "main", "image": "registry.k8s.io/pause:3.10" }],
    });
    if let Some(grace) = grace {
        spec["terminationGracePeriodSeconds"] = json!(grace);
    }
    if let Some(claim) = claim {
        spec["volumes"] =
            json!([{ "name": "data", "persistentVolumeClaim": { "claimName": claim } }]);
    }
    object(json!({ "metadata": { "name": name, "labels": { "app": name } }, "spec": spec }))
}

fn claim(name: &str) -> PersistentVolumeClaim {
    object(json!({
        "metadata": { "name": name },
        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } },
    }))
}

/// Waits until `get` finds nothing.
async fn gone<K>(api: &Api<K>, name: &str) -> bool
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(SETTLE, || async {
        api.get_opt(name).await.unwrap().is_none()
    })
    .await
}

/// The STATUS column of `kubectl get KIND NAME` (the column after READY for pods).
async fn kubectl_status(kubectl: &Kubectl, args: &[&str], column: usize) -> String {
    let out = kubectl.ok(args).await;
    let row = out.lines().nth(1).unwrap_or_default();
    row.split_whitespace()
        .nth(column)
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_finalizer_keeps_a_deleted_object_until_the_last_one_is_removed() {
    let (sim, client) = start().await;
    create_namespace(&client, "del-fin").await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "del-fin");
    let held: ConfigMap = object(json!({
        "metadata": { "name": "held", "finalizers": ["example.com/hold"] },
        "data": { "k": "v" },
    }));
    let created = maps.create(&PostParams::default(), &held).await.unwrap();
    let version = created.resource_version().unwrap();
    let Some(kubectl) = Kubectl::for_sim(&sim, "del-fin") else {
        return;
    };

    let out = kubectl
        .ok(&[
            "delete",
            "configmap",
            "held",
            "-n",
            "del-fin",
            "--wait=false",
        ])
        .await;
    assert!(out.contains("configmap \"held\" deleted"), "{out}");
    let kept = maps.get("held").await.unwrap();
    assert!(kept.metadata.deletion_timestamp.is_some());
    assert_eq!(kept.metadata.deletion_grace_period_seconds, Some(0));
    assert_eq!(kept.finalizers(), ["example.com/hold"]);
    assert_eq!(
        kept.metadata.generation,
        created.metadata.generation.map(|g| g + 1)
    );

    // Another DELETE changes nothing and answers with the object (200).
    let again = maps
        .delete("held", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("the object, not a Status");
    assert_eq!(again.resource_version(), kept.resource_version());

    // No finalizer may be added to an object being deleted.
    let refused = kubectl
        .refused(&[
            "patch",
            "configmap",
            "held",
            "-n",
            "del-fin",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":["example.com/hold","example.com/more"]}}"#,
        ])
        .await;
    assert!(
        refused.contains(
            r#"ConfigMap "held" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{"example.com/more"}"#
        ),
        "{refused}"
    );
    // Other changes are fine, and the deletion stays.
    let labelled = maps
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "labels": { "a": "b" }, "deletionTimestamp": null } }),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        labelled.metadata.deletion_timestamp,
        kept.metadata.deletion_timestamp
    );

    // Removing the last finalizer completes the deletion.
    kubectl
        .ok(&[
            "patch",
            "configmap",
            "held",
            "-n",
            "del-fin",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ])
        .await;
    assert!(maps.get_opt("held").await.unwrap().is_none());
    let refused = kubectl
        .refused(&["get", "configmap", "held", "-n", "del-fin"])
        .await;
    assert!(refused.contains("NotFound"), "{refused}");

    let seen = watched(
        &maps,
        &WatchParams::default(),
        &version,
        Duration::from_millis(300),
    )
    .await;
    let kinds: Vec<&str> = seen.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["MODIFIED", "MODIFIED", "DELETED"], "{seen:?}");
}

#[tokio::test]
async fn a_pod_terminates_over_its_grace_period_on_the_simulated_clock() {
    let (sim, client) = start().await;
    create_namespace(&client, "del-pod").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "del-pod");
    let post = PostParams::default();
    // An hour of grace is a minute here: long enough to look at it.
    pods.create(&post, &pod("slow", Some(3600), None, "node-a"))
        .await
        .unwrap();
    let version = pods.get("slow").await.unwrap().resource_version().unwrap();
    let Some(kubectl) = Kubectl::for_sim(&sim, "del-pod") else {
        return;
    };

    kubectl
        .ok(&["delete", "pod", "slow", "-n", "del-pod", "--wait=false"])
        .await;
    let going = pods.get("slow").await.unwrap();
    assert_eq!(going.metadata.deletion_grace_period_seconds, Some(3600));
    let at = going.metadata.deletion_timestamp.unwrap().0;
    let ahead = at.as_second() - k8s_openapi::jiff::Timestamp::now().as_second();
    assert!(
        (3590..=3601).contains(&ahead),
        "the deadline is {ahead} s away"
    );
    assert_eq!(
        kubectl_status(&kubectl, &["get", "pod", "slow", "-n", "del-pod"], 2).await,
        "Terminating"
    );
    // Its kubelet stops the container, and says so.
    let events = kubectl
        .ok(&[
            "get",
            "events",
            "-n",
            "del-pod",
            "--field-selector",
            "involvedObject.name=slow,reason=Killing",
        ])
        .await;
    assert!(events.contains("Stopping container main"), "{events}");
    // Another DELETE with a longer grace period changes nothing; a shorter one shortens it.
    kubectl
        .ok(&[
            "delete",
            "pod",
            "slow",
            "-n",
            "del-pod",
            "--wait=false",
            "--grace-period=7200",
        ])
        .await;
    assert_eq!(
        pods.get("slow")
            .await
            .unwrap()
            .metadata
            .deletion_grace_period_seconds,
        Some(3600)
    );
    kubectl
        .ok(&[
            "delete",
            "pod",
            "slow",
            "-n",
            "del-pod",
            "--wait=false",
            "--grace-period=1800",
        ])
        .await;
    let shortened = pods.get("slow").await.unwrap();
    assert_eq!(shortened.metadata.deletion_grace_period_seconds, Some(1800));
    assert_eq!(
        shortened.metadata.deletion_timestamp.unwrap().0.as_second(),
        at.as_second() - 1800
    );
    // `--force --grace-period=0` removes it at once.
    let out = kubectl
        .run(&[
            "delete",
            "pod",
            "slow",
            "-n",
            "del-pod",
            "--grace-period=0",
            "--force",
        ])
        .await;
    assert!(out.success, "{}", out.stderr);
    assert!(pods.get_opt("slow").await.unwrap().is_none());
    let seen = watched(
        &pods,
        &WatchParams::default().fields("metadata.name=slow"),
        &version,
        Duration::from_millis(300),
    )
    .await;
    let kinds: Vec<&str> = seen.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds.last(), Some(&"DELETED"), "{seen:?}");
    assert!(
        kinds[..kinds.len() - 1].iter().all(|k| *k == "MODIFIED"),
        "{seen:?}"
    );

    // The default 30 seconds pass in half a second here; kubectl waits for the pod to go.
    pods.create(&post, &pod("usual", None, None, "node-a"))
        .await
        .unwrap();
    let started = Instant::now();
    kubectl
        .ok(&["delete", "pod", "usual", "-n", "del-pod"])
        .await;
    let took = started.elapsed();
    assert!(pods.get_opt("usual").await.unwrap().is_none());
    let grace = Duration::from_secs_f64(30.0 / TIME_SCALE);
    assert!(
        took >= grace,
        "gone after {took:?}, before its grace period"
    );

    // `kubectl wait --for=delete` sees a pod go at the end of its grace period.
    pods.create(&post, &pod("waited", Some(60), None, "node-b"))
        .await
        .unwrap();
    kubectl
        .ok(&["delete", "pod", "waited", "-n", "del-pod", "--wait=false"])
        .await;
    assert!(pods.get_opt("waited").await.unwrap().is_some());
    kubectl
        .ok(&[
            "wait",
            "--for=delete",
            "pod/waited",
            "-n",
            "del-pod",
            "--timeout=10s",
        ])
        .await;
    assert!(pods.get_opt("waited").await.unwrap().is_none());

    // A pod no kubelet runs (no node fits it) goes at once, whatever its grace period.
    pods.create(&post, &pod("unplaced", Some(3600), None, "node-z"))
        .await
        .unwrap();
    kubectl
        .ok(&["delete", "pod", "unplaced", "-n", "del-pod", "--wait=false"])
        .await;
    assert!(pods.get_opt("unplaced").await.unwrap().is_none());
}

#[tokio::test]
async fn a_claim_in_use_stays_terminating_until_its_pod_is_gone() {
    let (sim, client) = start().await;
    create_namespace(&client, "del-pvc").await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "del-pvc");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "del-pvc");
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let post = PostParams::default();
    let made = claims.create(&post, &claim("data")).await.unwrap();
    // The admission plugin protects every new claim.
    assert_eq!(made.finalizers(), ["kubernetes.io/pvc-protection"]);
    pods.create(&post, &pod("user", Some(600), Some("data"), "node-a"))
        .await
        .unwrap();
    let volume = claims
        .get("data")
        .await
        .unwrap()
        .spec
        .unwrap()
        .volume_name
        .unwrap();
    assert_eq!(
        volumes.get(&volume).await.unwrap().finalizers(),
        ["kubernetes.io/pv-protection"]
    );
    let Some(kubectl) = Kubectl::for_sim(&sim, "del-pvc") else {
        return;
    };

    kubectl
        .ok(&["delete", "pvc", "data", "-n", "del-pvc", "--wait=false"])
        .await;
    assert_eq!(
        kubectl_status(&kubectl, &["get", "pvc", "data", "-n", "del-pvc"], 1).await,
        "Terminating"
    );
    // A new pod cannot start on a claim being deleted: the scheduler says why.
    pods.create(&post, &pod("late", None, Some("data"), "node-a"))
        .await
        .unwrap();
    let late = pods.get("late").await.unwrap();
    let unschedulable = late
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")
        .and_then(|c| c.message)
        .unwrap_or_default();
    assert!(
        unschedulable.contains("persistentvolumeclaim \"data\" is being deleted"),
        "{unschedulable}"
    );
    pods.delete("late", &DeleteParams::default()).await.unwrap();
    // The pod's grace period (600 s: 10 s here) keeps the claim, and so its volume.
    kubectl
        .ok(&["delete", "pod", "user", "-n", "del-pvc", "--wait=false"])
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(claims.get_opt("data").await.unwrap().is_some());
    assert_eq!(
        kubectl_status(&kubectl, &["get", "pod", "user", "-n", "del-pvc"], 2).await,
        "Terminating"
    );
    // Once the pod is gone, the protection goes, then the claim and its provisioned volume.
    kubectl
        .ok(&["delete", "pod", "user", "-n", "del-pvc", "--grace-period=1"])
        .await;
    kubectl
        .ok(&[
            "wait",
            "--for=delete",
            "pvc/data",
            "-n",
            "del-pvc",
            "--timeout=10s",
        ])
        .await;
    assert!(gone(&volumes, &volume).await);

    // A pod that was never scheduled does not keep a claim.
    claims.create(&post, &claim("spare")).await.unwrap();
    pods.create(&post, &pod("waiting", None, Some("spare"), "node-z"))
        .await
        .unwrap();
    kubectl
        .ok(&["delete", "pvc", "spare", "-n", "del-pvc", "--timeout=10s"])
        .await;
    assert!(claims.get_opt("spare").await.unwrap().is_none());
    // The pod that names it now cannot be scheduled.
    let stuck = eventually(SETTLE, || async {
        let pod = pods.get("waiting").await.unwrap();
        pod.status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| {
                c.type_ == "PodScheduled"
                    && c.message
                        .as_deref()
                        .is_some_and(|m| m.contains("persistentvolumeclaim \"spare\" not found"))
            })
    })
    .await;
    assert!(stuck);
}

#[tokio::test]
async fn a_volume_stays_terminating_while_a_claim_is_bound_to_it() {
    let (sim, client) = start().await;
    create_namespace(&client, "del-pv").await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "del-pv");
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let post = PostParams::default();
    let volume: PersistentVolume = object(json!({
        "metadata": { "name": "del-pv-disk" },
        "spec": {
            "capacity": { "storage": "1Gi" }, "accessModes": ["ReadWriteOnce"],
            "hostPath": { "path": "/srv/disk" },
            "claimRef": { "namespace": "del-pv", "name": "data" },
        },
    }));
    volumes.create(&post, &volume).await.unwrap();
    let mut bound = claim("data");
    bound.spec.as_mut().unwrap().volume_name = Some("del-pv-disk".into());
    // The volume has no class: so must the claim (`""`, not absent, which the default
    // class's admission fills in), or the binder refuses the pair.
    bound.spec.as_mut().unwrap().storage_class_name = Some(String::new());
    claims.create(&post, &bound).await.unwrap();
    let Some(kubectl) = Kubectl::for_sim(&sim, "del-pv") else {
        return;
    };
    assert_eq!(
        kubectl_status(&kubectl, &["get", "pv", "del-pv-disk"], 4).await,
        "Bound"
    );

    kubectl
        .ok(&["delete", "pv", "del-pv-disk", "--wait=false"])
        .await;
    assert_eq!(
        kubectl_status(&kubectl, &["get", "pv", "del-pv-disk"], 4).await,
        "Terminating"
    );
    // Its claim still reads from it.
    let claimed = claims.get("data").await.unwrap();
    assert_eq!(claimed.status.unwrap().phase.as_deref(), Some("Bound"));
    // The claim goes (no pod uses it), which releases the volume, which then goes.
    kubectl.ok(&["delete", "pvc", "data", "-n", "del-pv"]).await;
    kubectl
        .ok(&["wait", "--for=delete", "pv/del-pv-disk", "--timeout=10s"])
        .await;
}

#[tokio::test]
async fn a_namespace_terminates_once_its_content_is_gone() {
    let (sim, client) = start().await;
    create_namespace(&client, "del-ns").await;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "del-ns");
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "del-ns");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let post = PostParams::default();
    sets.create(&post, &statefulset("db", 1, json!({})))
        .await
        .unwrap();
    let held: ConfigMap = object(json!({
        "metadata": { "name": "held", "finalizers": ["example.com/hold"] },
    }));
    maps.create(&post, &held).await.unwrap();
    let Some(kubectl) = Kubectl::for_sim(&sim, "del-ns") else {
        return;
    };

    let refused = kubectl.refused(&["delete", "namespace", "default"]).await;
    assert!(
        refused.contains(
            r#"Error from server (Forbidden): namespaces "default" is forbidden: this namespace may not be deleted"#
        ),
        "{refused}"
    );

    kubectl
        .ok(&["delete", "namespace", "del-ns", "--wait=false"])
        .await;
    assert_eq!(
        kubectl_status(&kubectl, &["get", "namespace", "del-ns"], 1).await,
        "Terminating"
    );
    let terminating = namespaces.get("del-ns").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(
        terminating.spec.unwrap().finalizers,
        Some(vec!["kubernetes".to_string()])
    );

    // Nothing new goes in while it terminates: 403, with the admission plugin's cause.
    let status = api_error(
        maps.create(&post, &object(json!({ "metadata": { "name": "late" } })))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "configmaps \"late\" is forbidden: unable to create new content in namespace del-ns \
         because it is being terminated"
    );
    let details = status.details.unwrap();
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("late", "configmaps")
    );
    let cause = &details.causes[0];
    assert_eq!(
        (
            cause.reason.as_str(),
            cause.message.as_str(),
            cause.field.as_str()
        ),
        (
            "NamespaceTerminating",
            "namespace del-ns is being terminated",
            "metadata.namespace"
        )
    );
    // Another DELETE changes nothing.
    kubectl
        .ok(&["delete", "namespace", "del-ns", "--wait=false"])
        .await;

    // The pod goes with its grace period; the finalizer holds the config map, and so the
    // namespace, which says why.
    let waiting = eventually(SETTLE, || async {
        let conditions = namespaces
            .get("del-ns")
            .await
            .unwrap()
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default();
        let message = |kind: &str| {
            conditions
                .iter()
                .find(|c| c.type_ == kind && c.status == "True")
                .and_then(|c| c.message.clone())
        };
        message("NamespaceContentRemaining").as_deref()
            == Some("Some resources are remaining: configmaps. has 1 resource instances")
            && message("NamespaceFinalizersRemaining").as_deref()
                == Some(
                    "Some content in the namespace has finalizers remaining: example.com/hold \
                     in 1 resource instances",
                )
    })
    .await;
    assert!(
        waiting,
        "{:?}",
        namespaces.get("del-ns").await.unwrap().status
    );
    assert!(sets.get_opt("db").await.unwrap().is_none());

    kubectl
        .ok(&[
            "patch",
            "configmap",
            "held",
            "-n",
            "del-ns",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ])
        .await;
    kubectl
        .ok(&["wait", "--for=delete", "namespace/del-ns", "--timeout=10s"])
        .await;
    // The name is free again.
    create_namespace(&client, "del-ns").await;
}

#[tokio::test]
async fn background_deletion_removes_the_owner_first_and_its_dependents_after() {
    let (sim, client) = start().await;
    create_namespace(&client, "del-bg").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "del-bg");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "del-bg");
    let deployment: Deployment = object(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": {
                    "terminationGracePeriodSeconds": 120,
                    "containers": [{ "name": "web", "image": "nginx:1.27" }],
                },
            },
        },
    }));
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let Some(kubectl) = Kubectl::for_sim(&sim, "del-bg") else {
        return;
    };

    kubectl
        .ok(&[
            "delete",
            "deployment",
            "web",
            "-n",
            "del-bg",
            "--wait=false",
        ])
        .await;
    assert!(deployments.get_opt("web").await.unwrap().is_none());
    let listed = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .all(|p| p.metadata.deletion_timestamp.is_some())
    );
    let out = kubectl.ok(&["get", "pods", "-n", "del-bg"]).await;
    assert_eq!(out.matches("Terminating").count(), 2, "{out}");
    let none = eventually(SETTLE, || async {
        pods.list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .is_empty()
    })
    .await;
    assert!(none);
}

#[tokio::test]
async fn foreground_deletion_keeps_the_owner_until_its_blocking_dependents_are_gone() {
    let (sim, client) = start().await;
    create_namespace(&client, "del-fg").await;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "del-fg");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "del-fg");
    let mut set = statefulset("db", 2, json!({}));
    let template = set.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
    template.termination_grace_period_seconds = Some(120);
    sets.create(&PostParams::default(), &set).await.unwrap();
    let Some(kubectl) = Kubectl::for_sim(&sim, "del-fg") else {
        return;
    };

    kubectl
        .ok(&[
            "delete",
            "statefulset",
            "db",
            "-n",
            "del-fg",
            "--cascade=foreground",
            "--wait=false",
        ])
        .await;
    let owner = sets.get("db").await.unwrap();
    assert!(owner.metadata.deletion_timestamp.is_some());
    assert_eq!(owner.finalizers(), ["foregroundDeletion"]);
    for name in ["db-0", "db-1"] {
        let dependent = pods.get(name).await.unwrap();
        assert!(dependent.metadata.deletion_timestamp.is_some(), "{name}");
        assert_eq!(
            dependent.owner_references()[0].block_owner_deletion,
            Some(true)
        );
    }
    // The StatefulSet makes no pods while it goes, and goes once its pods have.
    kubectl
        .ok(&[
            "wait",
            "--for=delete",
            "statefulset/db",
            "-n",
            "del-fg",
            "--timeout=10s",
        ])
        .await;
    assert!(
        pods.list(&ListParams::default().labels("app=db"))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn orphan_deletion_leaves_the_dependents_running_without_their_owner() {
    let (sim, client) = start().await;
    create_namespace(&client, "del-or").await;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "del-or");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "del-or");
    sets.create(&PostParams::default(), &statefulset("db", 2, json!({})))
        .await
        .unwrap();
    let before: Vec<String> = ["db-0", "db-1"].iter().map(|s| s.to_string()).collect();
    let Some(kubectl) = Kubectl::for_sim(&sim, "del-or") else {
        return;
    };

    kubectl
        .ok(&[
            "delete",
            "statefulset",
            "db",
            "-n",
            "del-or",
            "--cascade=orphan",
        ])
        .await;
    assert!(sets.get_opt("db").await.unwrap().is_none());
    let mut uids = Vec::new();
    for name in &before {
        let orphan = pods.get(name).await.unwrap();
        assert!(orphan.metadata.deletion_timestamp.is_none(), "{name}");
        assert!(orphan.owner_references().is_empty(), "{name}");
        uids.push(orphan.uid());
    }
    // A StatefulSet of that name adopts them instead of making new ones.
    let created = sets
        .create(&PostParams::default(), &statefulset("db", 2, json!({})))
        .await
        .unwrap();
    for (name, uid) in before.iter().zip(&uids) {
        let adopted = pods.get(name).await.unwrap();
        assert_eq!(&adopted.uid(), uid, "{name}");
        assert_eq!(adopted.owner_references()[0].uid, created.uid().unwrap());
    }
}

/// A StatefulSet of two replicas with a `data` claim template, and its retention policy.
fn set_with_claims(name: &str, when_deleted: &str, when_scaled: &str) -> StatefulSet {
    let mut set: Value = serde_json::to_value(statefulset(name, 2, json!({}))).unwrap();
    set["spec"]["volumeClaimTemplates"] = json!([{
        "metadata": { "name": "data" },
        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } },
    }]);
    set["spec"]["persistentVolumeClaimRetentionPolicy"] =
        json!({ "whenDeleted": when_deleted, "whenScaled": when_scaled });
    object(set)
}

#[tokio::test]
async fn statefulset_claims_follow_their_retention_policy() {
    let (sim, client) = start().await;
    create_namespace(&client, "del-rp").await;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "del-rp");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "del-rp");
    let post = PostParams::default();
    sets.create(&post, &set_with_claims("kept", "Retain", "Retain"))
        .await
        .unwrap();
    let dropped = sets
        .create(&post, &set_with_claims("dropped", "Delete", "Delete"))
        .await
        .unwrap();
    let Some(kubectl) = Kubectl::for_sim(&sim, "del-rp") else {
        return;
    };
    // Claims of `Delete` belong to their StatefulSet; those of `Retain` to no one.
    let owner = claims
        .get("data-dropped-0")
        .await
        .unwrap()
        .owner_references()[0]
        .clone();
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.uid.as_str(),
            owner.block_owner_deletion
        ),
        ("StatefulSet", dropped.uid().unwrap().as_str(), Some(true))
    );
    assert!(
        claims
            .get("data-kept-0")
            .await
            .unwrap()
            .owner_references()
            .is_empty()
    );

    // Scaled down: the claim of the pod that goes belongs to it, and goes after it.
    kubectl
        .ok(&[
            "scale",
            "statefulset",
            "dropped",
            "-n",
            "del-rp",
            "--replicas=1",
        ])
        .await;
    kubectl
        .ok(&[
            "scale",
            "statefulset",
            "kept",
            "-n",
            "del-rp",
            "--replicas=1",
        ])
        .await;
    assert!(gone(&claims, "data-dropped-1").await);
    assert!(claims.get_opt("data-kept-1").await.unwrap().is_some());

    // Deleted: the claims of `Delete` go with the StatefulSet's pods, the others stay.
    kubectl
        .ok(&["delete", "statefulset", "dropped", "kept", "-n", "del-rp"])
        .await;
    assert!(gone(&claims, "data-dropped-0").await);
    for name in ["data-kept-0", "data-kept-1"] {
        let kept = claims.get(name).await.unwrap();
        assert!(kept.metadata.deletion_timestamp.is_none(), "{name}");
        assert_eq!(kept.status.unwrap().phase.as_deref(), Some("Bound"));
    }
}

#[tokio::test]
async fn delete_options_and_preconditions_are_checked() {
    let (_sim, client) = start().await;
    create_namespace(&client, "del-opt").await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "del-opt");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let made = maps
        .create(
            &PostParams::default(),
            &object(json!({ "metadata": { "name": "m" } })),
        )
        .await
        .unwrap();

    let raw = |body: Value| {
        axum::http::Request::builder()
            .method("DELETE")
            .uri("/api/v1/namespaces/del-opt/configmaps/m")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap()
    };
    let status = api_error(
        client
            .request::<Value>(raw(json!({ "propagationPolicy": "Sometimes" })))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        status.message,
        r#"DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "Sometimes": supported values: "Foreground", "Background", "Orphan", "nil""#
    );
    let status = api_error(
        client
            .request::<Value>(raw(
                json!({ "propagationPolicy": "Orphan", "orphanDependents": true }),
            ))
            .await,
    );
    assert!(
        status
            .message
            .ends_with("orphanDependents and deletionPropagation cannot be both set"),
        "{}",
        status.message
    );

    let stale = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("not-its-uid".into()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let status = api_error(maps.delete("m", &stale).await);
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        format!(
            "Operation cannot be fulfilled on ConfigMap \"m\": the UID in the precondition \
             (not-its-uid) does not match the UID in record ({}). The object might have been \
             deleted and then recreated",
            made.uid().unwrap()
        )
    );
    assert!(maps.get_opt("m").await.unwrap().is_some());
    let status = api_error(namespaces.delete("del-opt", &stale).await);
    assert_eq!(status.code, 409);
    assert!(
        status
            .message
            .starts_with("Operation cannot be fulfilled on namespaces \"del-opt\": Precondition failed: UID in precondition: not-its-uid"),
        "{}",
        status.message
    );
}
