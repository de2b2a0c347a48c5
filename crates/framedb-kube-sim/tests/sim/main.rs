//! The Kubernetes API simulator, driven by the real kube-rs client (and `kubectl`): the
//! behaviour the deployer relies on, checked the way a real API server would answer.
//! Each test starts its own simulator, so they run in parallel.

mod apply;
mod deletion;
mod events;
mod faults;
mod images;
mod immutability;
mod kubectl;
mod lists;
mod node_ports;
mod nodes;
mod pod_security;
mod protobuf;
mod scheduling;
mod sidecars;
mod storage;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::http::{Method, Request};
use framedb_kube_sim::{SimConfig, SimNode, Simulator, Verb};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Service,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::Status;
use kube::{Client, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Simulated seconds per real second in these tests: a pod's default 30-second grace
/// period ends half a real second after its deletion.
const TIME_SCALE: f64 = 60.0;

/// Starts a simulator (nodes `node-a`, `node-b`, clock at [`TIME_SCALE`]) and a client
/// for it.
async fn start() -> (Simulator, Client) {
    start_with(SimConfig::new("sim-test").with_time_scale(TIME_SCALE)).await
}

/// Images these tests run beside the registry's defaults ([`framedb_kube_sim::DEFAULT_IMAGES`]).
const TEST_IMAGES: [&str; 4] = [
    "pingcap/tidb:v8.5.0",
    "pingcap/tidb:v8.5.1",
    "mongo:7",
    "mongo:8",
];

/// Starts a simulator from `config` (its registry holding [`TEST_IMAGES`] too) and a
/// client for it.
async fn start_with(config: SimConfig) -> (Simulator, Client) {
    let sim = Simulator::start(config.with_images(TEST_IMAGES))
        .await
        .expect("simulator starts");
    let client = sim.client().await;
    (sim, client)
}

/// Builds a typed object from JSON (shorter than nested k8s-openapi struct literals).
fn object<K: DeserializeOwned>(value: Value) -> K {
    serde_json::from_value(value).expect("a valid object")
}

/// The `Status` of a failed call; panics on success or on a transport error.
fn api_error<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn create_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &object(json!({ "metadata": { "name": name } })),
        )
        .await
        .expect("namespace created");
}

fn config_map(name: &str, labels: Value) -> ConfigMap {
    object(json!({ "metadata": { "name": name, "labels": labels }, "data": { "k": "v" } }))
}

fn node_port_service(name: &str, node_port: Option<i32>) -> Service {
    let mut port = json!({ "port": 4000, "targetPort": 4000 });
    if let Some(n) = node_port {
        port["nodePort"] = json!(n);
    }
    object(json!({
        "metadata": { "name": name, "labels": { "app": "tidb" } },
        "spec": { "type": "NodePort", "selector": { "app": "tidb" }, "ports": [port] },
    }))
}

fn node_ports(svc: &Service) -> Vec<i32> {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|p| p.node_port)
        .collect()
}

fn statefulset(name: &str, replicas: i32, node_selector: Value) -> StatefulSet {
    object(json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": {
                    "nodeSelector": node_selector,
                    // Ready once TiDB answers (`pod_ready_after`), not when it starts.
                    "containers": [{
                        "name": "tidb", "image": "pingcap/tidb:v8.5.0",
                        "readinessProbe": { "httpGet": { "path": "/status", "port": 10080 } },
                    }],
                },
            },
        },
    }))
}

/// A Deployment `name` of `replicas` pods running `image`, labelled `app: NAME`.
fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    object(json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "main", "image": image }] },
            },
        },
    }))
}

fn pod_condition(pod: &Pod, kind: &str) -> Option<(String, Option<String>, Option<String>)> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn is_ready(pod: &Pod) -> bool {
    pod_condition(pod, "Ready").is_some_and(|(s, _, _)| s == "True")
}

fn phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

/// Polls `check` every 20 ms until it holds or `limit` passes.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn resource_version_bumps_on_writes_and_stale_replace_conflicts() {
    let (_sim, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = cms
        .create(&PostParams::default(), &config_map("rv", json!({})))
        .await
        .unwrap();
    let rv1: u64 = created.resource_version().unwrap().parse().unwrap();
    assert!(created.uid().is_some());
    assert!(created.creation_timestamp().is_some());
    assert_eq!(created.metadata.generation, Some(1));

    let mut changed = created.clone();
    changed.data = Some(BTreeMap::from([("k".to_string(), "w".to_string())]));
    let replaced = cms
        .replace("rv", &PostParams::default(), &changed)
        .await
        .unwrap();
    let rv2: u64 = replaced.resource_version().unwrap().parse().unwrap();
    assert!(rv2 > rv1, "{rv2} > {rv1}");
    assert_eq!(replaced.metadata.generation, Some(2));
    assert_eq!(replaced.uid(), created.uid());

    // `changed` still carries the first resourceVersion.
    let err = api_error(cms.replace("rv", &PostParams::default(), &changed).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(
        err.message.contains("the object has been modified"),
        "{}",
        err.message
    );

    // A no-op write keeps the revision; without a resourceVersion a replace is unconditional.
    let same = cms
        .replace("rv", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(same.resource_version(), replaced.resource_version());
    let mut blind = changed.clone();
    blind.metadata.resource_version = None;
    blind.data = Some(BTreeMap::from([("k".to_string(), "x".to_string())]));
    let rv3: u64 = cms
        .replace("rv", &PostParams::default(), &blind)
        .await
        .unwrap()
        .resource_version()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv3 > rv2);

    // The list's resourceVersion is the global one, at least as new as every item.
    let list = cms.list(&ListParams::default()).await.unwrap();
    let list_rv: u64 = list.metadata.resource_version.unwrap().parse().unwrap();
    assert!(list_rv >= rv3);
}

#[tokio::test]
async fn create_get_list_with_selectors() {
    let (_sim, client) = start().await;
    create_namespace(&client, "sel").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "sel");
    for (name, labels) in [
        ("a", json!({ "app": "tidb", "tier": "db" })),
        ("b", json!({ "app": "tidb", "tier": "cache" })),
        ("c", json!({ "app": "mongo" })),
    ] {
        cms.create(&PostParams::default(), &config_map(name, labels))
            .await
            .unwrap();
    }
    let fetched = cms.get("a").await.unwrap();
    assert_eq!(fetched.data.unwrap()["k"], "v");
    assert_eq!(fetched.metadata.namespace.as_deref(), Some("sel"));

    let names = |selector: &'static str| {
        let cms = cms.clone();
        async move {
            let list = cms
                .list(&ListParams::default().labels(selector))
                .await
                .unwrap();
            list.items.iter().map(|c| c.name_any()).collect::<Vec<_>>()
        }
    };
    assert_eq!(names("").await, ["a", "b", "c"]);
    assert_eq!(names("app=tidb").await, ["a", "b"]);
    assert_eq!(names("app==tidb,tier=db").await, ["a"]);
    assert_eq!(names("app!=tidb").await, ["c"]);
    assert_eq!(names("tier in (db,cache)").await, ["a", "b"]);
    assert_eq!(names("tier notin (db)").await, ["b", "c"]);
    assert_eq!(names("tier").await, ["a", "b"]);
    assert_eq!(names("!tier").await, ["c"]);

    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
    let err = api_error(cms.list(&ListParams::default().labels("a in b")).await);
    assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"));

    // Across namespaces, items carry their kind.
    let all: Api<ConfigMap> = Api::all(client.clone());
    let everywhere = all
        .list(&ListParams::default().labels("app"))
        .await
        .unwrap();
    assert_eq!(everywhere.items.len(), 3);
    let raw: Value = client
        .request(http_get("/api/v1/namespaces/sel/configmaps"))
        .await
        .unwrap();
    assert_eq!(raw["kind"], "ConfigMapList");
    assert_eq!(raw["items"][0]["kind"], "ConfigMap");
    assert_eq!(raw["items"][0]["apiVersion"], "v1");

    // generateName.
    let generated = cms
        .create(
            &PostParams::default(),
            &object(json!({ "metadata": { "generateName": "gen-" } })),
        )
        .await
        .unwrap();
    assert!(generated.name_any().starts_with("gen-") && generated.name_any().len() == 9);

    // Pagination.
    let page = cms.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let token = page.metadata.continue_.clone().expect("a continue token");
    let rest = cms
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 2);
    assert!(rest.metadata.continue_.is_none());
}

fn http_get(path: &str) -> Request<Vec<u8>> {
    Request::get(path).body(Vec::new()).unwrap()
}

fn raw(method: Method, path: &str, content_type: &str, body: &Value) -> Request<Vec<u8>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(serde_json::to_vec(body).unwrap())
        .unwrap()
}

#[tokio::test]
async fn replace_patch_apply_and_delete() {
    let (_sim, client) = start().await;
    create_namespace(&client, "rw").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "rw");
    cms.create(
        &PostParams::default(),
        &config_map("m", json!({ "a": "1" })),
    )
    .await
    .unwrap();

    let merged = cms
        .patch(
            "m",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "labels": { "b": "2", "a": null } }, "data": { "x": "y" } }),
            ),
        )
        .await
        .unwrap();
    assert_eq!(merged.labels().get("b").map(String::as_str), Some("2"));
    assert!(!merged.labels().contains_key("a"));
    assert_eq!(merged.data.as_ref().unwrap().len(), 2);

    let strategic = cms
        .patch(
            "m",
            &PatchParams::default(),
            &Patch::Strategic(json!({ "data": { "s": "t" } })),
        )
        .await
        .unwrap();
    assert_eq!(strategic.data.as_ref().unwrap()["s"], "t");

    // kube-rs needs its `jsonpatch` feature for `Patch::Json`; send the RFC 6902 body raw.
    let ops = json!([{ "op": "replace", "path": "/data/x", "value": "z" }]);
    let json_patched: ConfigMap = client
        .request(raw(
            Method::PATCH,
            "/api/v1/namespaces/rw/configmaps/m",
            "application/json-patch+json",
            &ops,
        ))
        .await
        .unwrap();
    assert_eq!(json_patched.data.as_ref().unwrap()["x"], "z");
    let failing = json!([{ "op": "test", "path": "/data/x", "value": "not z" }]);
    let err = api_error(
        client
            .request::<ConfigMap>(raw(
                Method::PATCH,
                "/api/v1/namespaces/rw/configmaps/m",
                "application/json-patch+json",
                &failing,
            ))
            .await,
    );
    assert_eq!(
        (err.code, err.reason.as_str()),
        (422, "Invalid"),
        "a failed JSON patch: {err:?}"
    );

    // Server-side apply: creates when missing, merges when present.
    let ssa = PatchParams::apply("framedb-test").force();
    let applied = cms
        .patch("applied", &ssa, &Patch::Apply(json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "applied" }, "data": { "one": "1" } })))
        .await
        .unwrap();
    assert_eq!(applied.data.as_ref().unwrap()["one"], "1");
    let reapplied = cms
        .patch("applied", &ssa, &Patch::Apply(json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "applied" }, "data": { "two": "2" } })))
        .await
        .unwrap();
    assert_eq!(reapplied.data.as_ref().unwrap()["two"], "2");
    assert_eq!(reapplied.uid(), applied.uid());
    let err = api_error(
        cms.patch(
            "applied",
            &PatchParams::default(),
            &Patch::Apply(json!({ "apiVersion": "v1", "kind": "ConfigMap" })),
        )
        .await,
    );
    assert_eq!(err.code, 422, "apply without a field manager: {err:?}");

    let deleted = cms.delete("m", &DeleteParams::default()).await.unwrap();
    assert_eq!(deleted.left().map(|c| c.name_any()).as_deref(), Some("m"));
    assert_eq!(api_error(cms.get("m").await).code, 404);
    assert_eq!(
        api_error(cms.delete("m", &DeleteParams::default()).await).code,
        404
    );
    assert_eq!(
        api_error(
            cms.patch("m", &PatchParams::default(), &Patch::Merge(json!({})))
                .await
        )
        .code,
        404
    );

    // Secrets fold stringData into base64 data.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "rw");
    let secret = secrets
        .create(
            &PostParams::default(),
            &object(json!({ "metadata": { "name": "s" }, "stringData": { "password": "foobar" } })),
        )
        .await
        .unwrap();
    assert_eq!(secret.data.unwrap()["password"].0, b"foobar");
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));

    // Delete a collection by label.
    cms.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("b=2"),
    )
    .await
    .unwrap();
    assert_eq!(
        cms.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
}

#[tokio::test]
async fn errors_carry_kubernetes_reasons() {
    let (_sim, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let missing = api_error(cms.get("nope").await);
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, "configmaps \"nope\" not found");
    assert_eq!(missing.details.as_ref().unwrap().name, "nope");

    cms.create(&PostParams::default(), &config_map("dup", json!({})))
        .await
        .unwrap();
    let dup = api_error(
        cms.create(&PostParams::default(), &config_map("dup", json!({})))
            .await,
    );
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(dup.message, "configmaps \"dup\" already exists");

    let invalid = api_error(
        cms.create(&PostParams::default(), &config_map("Bad_Name", json!({})))
            .await,
    );
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));
    assert!(
        invalid.message.starts_with(
            "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""
        ),
        "{}",
        invalid.message
    );
    let cause = &invalid.details.unwrap().causes[0];
    assert_eq!(
        (cause.reason.as_str(), cause.field.as_str()),
        ("FieldValueInvalid", "metadata.name")
    );

    // Services and namespaces use label rules: no dots; services must start with a letter.
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    assert_eq!(
        api_error(
            services
                .create(&PostParams::default(), &node_port_service("1db", None))
                .await
        )
        .code,
        422
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let bad_ns: Namespace = object(json!({ "metadata": { "name": "a.b" } }));
    assert_eq!(
        api_error(namespaces.create(&PostParams::default(), &bad_ns).await).code,
        422
    );

    // A StatefulSet whose selector misses its template's labels.
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let mut sts = statefulset("mismatch", 1, json!({}));
    sts.spec.as_mut().unwrap().selector.match_labels =
        Some(BTreeMap::from([("app".to_string(), "other".to_string())]));
    let err = api_error(sets.create(&PostParams::default(), &sts).await);
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .contains("`selector` does not match template `labels`"),
        "{}",
        err.message
    );

    // Unknown paths answer a 404 Status too.
    let raw = client
        .request::<Value>(http_get("/apis/batch/v1/jobs"))
        .await;
    assert_eq!(api_error(raw).code, 404);
}

#[tokio::test]
async fn namespaced_create_in_a_missing_namespace_is_not_found() {
    let (_sim, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "ghost");
    let err = api_error(
        cms.create(&PostParams::default(), &config_map("c", json!({})))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "namespaces \"ghost\" not found");
}

#[tokio::test]
async fn namespace_deletion_cascades() {
    let (_sim, client) = start().await;
    create_namespace(&client, "doomed").await;
    let services: Api<Service> = Api::namespaced(client.clone(), "doomed");
    services
        .create(
            &PostParams::default(),
            &node_port_service("db", Some(30901)),
        )
        .await
        .unwrap();
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "doomed");
    sets.create(&PostParams::default(), &statefulset("db", 1, json!({})))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "doomed");
    assert_eq!(
        pods.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let going = namespaces
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(going.status.unwrap().phase.as_deref(), Some("Terminating"));
    // The namespace stays until its pod's grace period is over.
    let gone = eventually(Duration::from_secs(5), || async {
        namespaces.get_opt("doomed").await.unwrap().is_none()
    })
    .await;
    assert!(gone);
    let all_pods: Api<Pod> = Api::all(client.clone());
    assert!(
        all_pods
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .all(|p| p.namespace().as_deref() != Some("doomed"))
    );
    let all_services: Api<Service> = Api::all(client.clone());
    assert!(
        all_services
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .all(|s| s.namespace().as_deref() != Some("doomed"))
    );

    // The namespace's node port is free again.
    create_namespace(&client, "reborn").await;
    let services: Api<Service> = Api::namespaced(client.clone(), "reborn");
    services
        .create(
            &PostParams::default(),
            &node_port_service("db", Some(30901)),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_taken_node_port_is_invalid_across_namespaces() {
    let (_sim, client) = start().await;
    create_namespace(&client, "np-one").await;
    create_namespace(&client, "np-two").await;
    let one: Api<Service> = Api::namespaced(client.clone(), "np-one");
    let two: Api<Service> = Api::namespaced(client.clone(), "np-two");
    let first = one
        .create(
            &PostParams::default(),
            &node_port_service("first", Some(30900)),
        )
        .await
        .unwrap();
    assert_eq!(node_ports(&first), [30900]);
    assert!(
        first
            .spec
            .as_ref()
            .unwrap()
            .cluster_ip
            .as_deref()
            .unwrap()
            .starts_with("10.96.")
    );

    let err = api_error(
        two.create(
            &PostParams::default(),
            &node_port_service("second", Some(30900)),
        )
        .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        "Service \"second\" is invalid: spec.ports[0].nodePort: Invalid value: 30900: provided port is already allocated"
    );
    let details = err.details.unwrap();
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("second", "Service")
    );
    let cause = &details.causes[0];
    assert_eq!(cause.reason, "FieldValueInvalid");
    assert_eq!(
        cause.message,
        "Invalid value: 30900: provided port is already allocated"
    );
    assert_eq!(cause.field, "spec.ports[0].nodePort");

    // Patching another Service onto the port is refused too; its own port stays its own.
    two.create(
        &PostParams::default(),
        &node_port_service("second", Some(30901)),
    )
    .await
    .unwrap();
    let err = api_error(
        two.patch(
            "second",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "ports": [{ "port": 4000, "nodePort": 30900 }] } })),
        )
        .await,
    );
    assert_eq!(err.code, 422);
    let relabelled = one
        .patch(
            "first",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "x": "y" } } })),
        )
        .await
        .unwrap();
    assert_eq!(node_ports(&relabelled), [30900]);

    // Deleting frees the port.
    one.delete("first", &DeleteParams::default()).await.unwrap();
    two.create(
        &PostParams::default(),
        &node_port_service("third", Some(30900)),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_node_port_outside_the_range_is_invalid() {
    let (_sim, client) = start().await;
    let services: Api<Service> = Api::namespaced(client, "default");
    for port in [80, 29999, 32768] {
        let err = api_error(
            services
                .create(
                    &PostParams::default(),
                    &node_port_service("out", Some(port)),
                )
                .await,
        );
        assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
        assert_eq!(
            err.details.unwrap().causes[0].message,
            format!(
                "Invalid value: {port}: provided port is not in the valid range. The range of valid ports is 30000-32767"
            )
        );
    }
}

#[tokio::test]
async fn a_node_port_service_without_a_port_gets_one_in_range() {
    let (_sim, client) = start().await;
    let services: Api<Service> = Api::namespaced(client, "default");
    let mut seen = Vec::new();
    for i in 0..5 {
        let svc = services
            .create(
                &PostParams::default(),
                &node_port_service(&format!("auto-{i}"), None),
            )
            .await
            .unwrap();
        let port = node_ports(&svc)[0];
        assert!((30000..=32767).contains(&port), "{port}");
        assert!(!seen.contains(&port));
        seen.push(port);
        // A replace without the port keeps it, as Kubernetes does.
        let mut again = svc.clone();
        again.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = None;
        let replaced = services
            .replace(&svc.name_any(), &PostParams::default(), &again)
            .await
            .unwrap();
        assert_eq!(node_ports(&replaced), [port]);
    }
    // A ClusterIP Service gets a cluster IP but no node port.
    let plain: Service =
        object(json!({ "metadata": { "name": "plain" }, "spec": { "ports": [{ "port": 80 }] } }));
    let plain = services
        .create(&PostParams::default(), &plain)
        .await
        .unwrap();
    assert!(node_ports(&plain).is_empty());
    assert!(plain.spec.unwrap().cluster_ip.is_some());
}

#[tokio::test]
async fn concurrent_creates_on_one_node_port_admit_exactly_one() {
    let (_sim, client) = start().await;
    create_namespace(&client, "race").await;
    let attempts = (0..50).map(|i| {
        let services: Api<Service> = Api::namespaced(client.clone(), "race");
        tokio::spawn(async move {
            services
                .create(
                    &PostParams::default(),
                    &node_port_service(&format!("racer-{i}"), Some(30950)),
                )
                .await
        })
    });
    let mut won = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => won += 1,
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 422);
                assert!(
                    status
                        .message
                        .ends_with("provided port is already allocated"),
                    "{}",
                    status.message
                );
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test]
async fn a_statefulset_makes_an_ordinal_held_by_a_pod_it_does_not_own_once_that_pod_is_gone() {
    let (_sim, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    // A pod of the ordinal's name that the set's selector does not match: not adoptable.
    let squatter: Pod = object(json!({
        "metadata": { "name": "held-0", "labels": { "app": "other" } },
        "spec": { "containers": [{ "name": "main", "image": "pingcap/tidb:v8.5.0" }] },
    }));
    pods.create(&PostParams::default(), &squatter)
        .await
        .unwrap();
    sets.create(&PostParams::default(), &statefulset("held", 1, json!({})))
        .await
        .unwrap();
    let pod = pods.get("held-0").await.unwrap();
    assert!(
        pod.owner_references().is_empty(),
        "the squatter is left alone"
    );
    // Its going is no event of the set's: the set makes its pod all the same.
    pods.delete("held-0", &DeleteParams::default())
        .await
        .unwrap();
    let made = eventually(Duration::from_secs(5), || async {
        pods.get_opt("held-0").await.unwrap().is_some_and(|pod| {
            pod.owner_references()
                .iter()
                .any(|owner| owner.kind == "StatefulSet" && owner.name == "held")
        })
    })
    .await;
    assert!(
        made,
        "held-0 was made by its StatefulSet once the name was free"
    );
}

#[tokio::test]
async fn statefulset_pods_are_scheduled_by_node_selector_and_become_ready_after_the_delay() {
    let ready_after = Duration::from_millis(400);
    let (_sim, client) = start_with(
        SimConfig::new("sts")
            .with_pod_ready_after(ready_after)
            .with_time_scale(TIME_SCALE)
            .with_nodes([
                SimNode::new("node-a").with_label("disk", "ssd"),
                SimNode::new("node-b"),
            ]),
    )
    .await;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let started = Instant::now();
    sets.create(
        &PostParams::default(),
        &statefulset("tidb", 2, json!({ "kubernetes.io/hostname": "node-b" })),
    )
    .await
    .unwrap();

    let pod = pods.get("tidb-0").await.unwrap();
    assert_eq!(
        pod.spec.as_ref().unwrap().node_name.as_deref(),
        Some("node-b")
    );
    assert_eq!(phase(&pod), "Running");
    assert_eq!(pod_condition(&pod, "PodScheduled").unwrap().0, "True");
    assert_eq!(pod.labels()["app"], "tidb");
    let owner = &pod.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("StatefulSet", "tidb", Some(true))
    );
    let statuses = pod
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap();
    assert!(statuses[0].state.as_ref().unwrap().running.is_some());
    assert!(!statuses[0].ready);
    assert!(!is_ready(&pod));
    assert!(pods.get("tidb-1").await.is_ok());

    let ready = eventually(Duration::from_secs(3), || async {
        pods.list(&ListParams::default().labels("app=tidb"))
            .await
            .unwrap()
            .items
            .iter()
            .all(is_ready)
    })
    .await;
    assert!(ready);
    assert!(started.elapsed() >= ready_after);
    let pod = pods.get("tidb-0").await.unwrap();
    assert!(pod.status.unwrap().container_statuses.unwrap()[0].ready);
    let sts_status = sets.get("tidb").await.unwrap().status.unwrap();
    assert_eq!(
        (sts_status.replicas, sts_status.ready_replicas),
        (2, Some(2))
    );

    // Selecting by another label reaches the other node.
    sets.create(
        &PostParams::default(),
        &statefulset("fast", 1, json!({ "disk": "ssd" })),
    )
    .await
    .unwrap();
    let fast = pods.get("fast-0").await.unwrap();
    assert_eq!(fast.spec.unwrap().node_name.as_deref(), Some("node-a"));

    // Scaling down and deleting remove pods, each over its grace period.
    sets.patch(
        "tidb",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "replicas": 1 } })),
    )
    .await
    .unwrap();
    let going = pods.get("tidb-1").await.unwrap();
    assert!(going.metadata.deletion_timestamp.is_some());
    assert_eq!(going.metadata.deletion_grace_period_seconds, Some(30));
    let gone = |name: &'static str| {
        let pods = pods.clone();
        async move {
            eventually(Duration::from_secs(5), || async {
                pods.get_opt(name).await.unwrap().is_none()
            })
            .await
        }
    };
    assert!(gone("tidb-1").await);
    sets.delete("tidb", &DeleteParams::default()).await.unwrap();
    assert!(gone("tidb-0").await);
}

#[tokio::test]
async fn pods_without_a_matching_node_stay_pending_until_one_is_added() {
    let (sim, client) = start().await;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    sets.create(
        &PostParams::default(),
        &statefulset("lost", 1, json!({ "kubernetes.io/hostname": "node-z" })),
    )
    .await
    .unwrap();
    let pod = pods.get("lost-0").await.unwrap();
    assert_eq!(phase(&pod), "Pending");
    assert!(pod.spec.as_ref().unwrap().node_name.is_none());
    let (scheduled, reason, message) = pod_condition(&pod, "PodScheduled").unwrap();
    assert_eq!(
        (scheduled.as_str(), reason.as_deref()),
        ("False", Some("Unschedulable"))
    );
    assert!(message.unwrap().starts_with(
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
    ),);
    assert_eq!(
        sets.get("lost")
            .await
            .unwrap()
            .status
            .unwrap()
            .ready_replicas
            .unwrap_or(0),
        0
    );

    // A cordoned node does not count.
    let nodes: Api<Node> = Api::all(client.clone());
    sim.add_node(SimNode::new("node-z"));
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    let pod = pods.get("lost-0").await.unwrap();
    assert_eq!(
        pod.spec.as_ref().unwrap().node_name.as_deref(),
        Some("node-z")
    );
    assert_eq!(phase(&pod), "Running");
    assert!(is_ready(&pod));

    nodes
        .patch(
            "node-a",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "unschedulable": true } })),
        )
        .await
        .unwrap();
    sets.create(
        &PostParams::default(),
        &statefulset("cordoned", 1, json!({ "kubernetes.io/hostname": "node-a" })),
    )
    .await
    .unwrap();
    let message = pod_condition(&pods.get("cordoned-0").await.unwrap(), "PodScheduled")
        .unwrap()
        .2
        .unwrap();
    assert!(
        message.contains("1 node(s) were unschedulable"),
        "{message}"
    );
}

#[tokio::test]
async fn deployment_pods_follow_replicas_and_template() {
    let (_sim, client) = start().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let deployment: Deployment = object(json!({
        "metadata": { "name": "mongodb" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "mongodb" } },
            "template": {
                "metadata": { "labels": { "app": "mongodb" } },
                "spec": { "containers": [{ "name": "mongo", "image": "mongo:7" }] },
            },
        },
    }));
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let listed = pods
        .list(&ListParams::default().labels("app=mongodb"))
        .await
        .unwrap()
        .items;
    assert_eq!(listed.len(), 2);
    for pod in &listed {
        let name = pod.name_any();
        let parts: Vec<&str> = name.split('-').collect();
        assert_eq!(
            (parts.len(), parts[0], parts[2].len()),
            (3, "mongodb", 5),
            "{name}"
        );
        assert_eq!(pod.owner_references()[0].kind, "Deployment");
        assert!(is_ready(pod));
    }
    let status = deployments.get("mongodb").await.unwrap().status.unwrap();
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.available_replicas
        ),
        (Some(2), Some(2), Some(2))
    );
    let available = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Available")
        .unwrap();
    assert_eq!(available.status, "True");

    // A template change replaces the pods; scaling to zero removes them.
    deployments
        .patch(
            "mongodb",
            &PatchParams::default(),
            &Patch::Strategic(json!({ "spec": { "template": { "spec": { "containers": [{ "name": "mongo", "image": "mongo:8" }] } } } })),
        )
        .await
        .unwrap();
    // The new pods start at once; the old ones terminate over their grace period.
    let live = || async {
        pods.list(&ListParams::default().labels("app=mongodb"))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect::<Vec<_>>()
    };
    let replaced = live().await;
    assert_eq!(replaced.len(), 2);
    assert!(
        replaced
            .iter()
            .all(|p| listed.iter().all(|old| old.name_any() != p.name_any()))
    );
    let old_gone = eventually(Duration::from_secs(5), || async {
        pods.list(&ListParams::default().labels("app=mongodb"))
            .await
            .unwrap()
            .items
            .len()
            == 2
    })
    .await;
    assert!(old_gone);
    assert_eq!(
        deployments
            .get("mongodb")
            .await
            .unwrap()
            .metadata
            .generation,
        Some(2)
    );
    deployments
        .patch(
            "mongodb",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 0 } })),
        )
        .await
        .unwrap();
    assert!(live().await.is_empty());
    let none_left = eventually(Duration::from_secs(5), || async {
        pods.list(&ListParams::default().labels("app=mongodb"))
            .await
            .unwrap()
            .items
            .is_empty()
    })
    .await;
    assert!(none_left);

    // Orphaning keeps the pods, without the owner reference.
    deployments
        .patch(
            "mongodb",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 1 } })),
        )
        .await
        .unwrap();
    deployments
        .delete("mongodb", &DeleteParams::orphan())
        .await
        .unwrap();
    let orphaned = eventually(Duration::from_secs(5), || async {
        deployments.get_opt("mongodb").await.unwrap().is_none()
    })
    .await;
    assert!(
        orphaned,
        "the orphan finalizer goes once the pods are orphaned"
    );
    let orphans = live().await;
    assert_eq!(orphans.len(), 1);
    assert!(orphans[0].owner_references().is_empty());
}

#[tokio::test]
async fn claims_bind_to_provisioned_or_named_volumes() {
    // A default class of `Immediate` binding: claims bind as soon as they are made (the
    // default `WaitForFirstConsumer` is in `storage`).
    let config = SimConfig::new("sim-test").with_immediate_binding();
    let (_sim, client) = start_with(config).await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let volumes: Api<PersistentVolume> = Api::all(client.clone());

    let claim: PersistentVolumeClaim = object(json!({
        "metadata": { "name": "db-data" },
        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "2Gi" } } },
    }));
    let created = claims.create(&PostParams::default(), &claim).await.unwrap();
    let bound = claims.get("db-data").await.unwrap();
    let status = bound.status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Bound"));
    assert_eq!(status.capacity.as_ref().unwrap()["storage"].0, "2Gi");
    let pv_name = bound.spec.as_ref().unwrap().volume_name.clone().unwrap();
    assert_eq!(pv_name, format!("pvc-{}", created.uid().unwrap()));
    let pv = volumes.get(&pv_name).await.unwrap();
    assert_eq!(
        pv.spec.as_ref().unwrap().capacity.as_ref().unwrap()["storage"].0,
        "2Gi"
    );
    let claim_ref = pv.spec.as_ref().unwrap().claim_ref.as_ref().unwrap();
    assert_eq!(
        (claim_ref.namespace.as_deref(), claim_ref.name.as_deref()),
        (Some("default"), Some("db-data"))
    );
    assert_eq!(pv.status.unwrap().phase.as_deref(), Some("Bound"));

    // A local volume pinned to a node, and a claim that names it.
    let local: PersistentVolume = object(json!({
        "metadata": { "name": "local-pv" },
        "spec": {
            "capacity": { "storage": "1Gi" },
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "local-storage",
            "local": { "path": "/mnt/data" },
            "nodeAffinity": { "required": { "nodeSelectorTerms": [{ "matchExpressions": [
                { "key": "kubernetes.io/hostname", "operator": "In", "values": ["node-b"] }
            ] }] } },
        },
    }));
    volumes
        .create(&PostParams::default(), &local)
        .await
        .unwrap();
    let named: PersistentVolumeClaim = object(json!({
        "metadata": { "name": "pinned" },
        "spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": "local-storage", "volumeName": "local-pv",
            "resources": { "requests": { "storage": "1Gi" } },
        },
    }));
    claims.create(&PostParams::default(), &named).await.unwrap();
    assert_eq!(
        claims
            .get("pinned")
            .await
            .unwrap()
            .status
            .unwrap()
            .phase
            .as_deref(),
        Some("Bound")
    );
    let local = volumes.get("local-pv").await.unwrap();
    assert_eq!(
        local.spec.unwrap().claim_ref.unwrap().name.as_deref(),
        Some("pinned")
    );

    // A pod using the claim lands on the volume's node.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = object(json!({
        "metadata": { "name": "user" },
        "spec": {
            "containers": [{ "name": "c", "image": "busybox:1" }],
            "volumes": [{ "name": "data", "persistentVolumeClaim": { "claimName": "pinned" } }],
        },
    }));
    pods.create(&PostParams::default(), &pod).await.unwrap();
    assert_eq!(
        pods.get("user")
            .await
            .unwrap()
            .spec
            .unwrap()
            .node_name
            .as_deref(),
        Some("node-b")
    );

    // A local volume without node affinity is invalid; deleting a dynamic claim deletes its volume.
    let mut bad = local_without_affinity();
    bad.metadata.name = Some("bad-local".into());
    assert_eq!(
        api_error(volumes.create(&PostParams::default(), &bad).await).code,
        422
    );
    claims
        .delete("db-data", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_error(volumes.get(&pv_name).await).code, 404);
}

fn local_without_affinity() -> PersistentVolume {
    object(json!({
        "metadata": { "name": "x" },
        "spec": { "capacity": { "storage": "1Gi" }, "accessModes": ["ReadWriteOnce"], "local": { "path": "/mnt" } },
    }))
}

#[tokio::test]
async fn status_is_written_through_its_subresource_only() {
    let (_sim, client) = start().await;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    sets.create(&PostParams::default(), &statefulset("st", 1, json!({})))
        .await
        .unwrap();
    let current = sets.get("st").await.unwrap();
    assert_eq!(current.status.as_ref().unwrap().ready_replicas, Some(1));

    // A replace of the main resource cannot change status...
    let mut forged = current.clone();
    forged.status.as_mut().unwrap().ready_replicas = Some(7);
    let replaced = sets
        .replace("st", &PostParams::default(), &forged)
        .await
        .unwrap();
    assert_eq!(replaced.status.unwrap().ready_replicas, Some(1));
    // ...the status subresource can (and the controller then writes the truth back).
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let patched = pods
        .patch_status(
            "st-0",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "podIP": "10.0.0.9" } })),
        )
        .await
        .unwrap();
    assert_eq!(patched.status.unwrap().pod_ip.as_deref(), Some("10.0.0.9"));
    assert_eq!(
        pods.get_status("st-0")
            .await
            .unwrap()
            .spec
            .unwrap()
            .containers[0]
            .name,
        "tidb"
    );
}

/// The events a watch sends within `wait`, as `(type, name)`; stops at the first gap.
async fn watched<K>(
    api: &Api<K>,
    params: &WatchParams,
    version: &str,
    wait: Duration,
) -> Vec<(String, String)>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + 'static,
{
    let mut stream = api.watch(params, version).await.unwrap().boxed();
    let mut seen = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout(wait, stream.next()).await {
        let seen_as =
            |kind: &str, object: &K| (kind.to_string(), object.meta().name.clone().unwrap());
        seen.push(match event.unwrap() {
            WatchEvent::Added(o) => seen_as("ADDED", &o),
            WatchEvent::Modified(o) => seen_as("MODIFIED", &o),
            WatchEvent::Deleted(o) => seen_as("DELETED", &o),
            WatchEvent::Bookmark(b) => ("BOOKMARK".into(), b.metadata.resource_version),
            WatchEvent::Error(status) => ("ERROR".into(), status.code.to_string()),
        });
    }
    seen
}

#[tokio::test]
async fn watches_send_the_changes_after_a_version_that_match_their_selector() {
    let (sim, client) = start().await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let labelled = |name: &str, app: &str| {
        serde_json::from_value::<ConfigMap>(json!({
            "metadata": { "name": name, "labels": { "app": app } }, "data": {}
        }))
        .unwrap()
    };
    maps.create(&PostParams::default(), &labelled("before", "w"))
        .await
        .unwrap();
    let version = maps
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let params = WatchParams::default().labels("app=w").timeout(5);
    let events = {
        let maps = maps.clone();
        let params = params.clone();
        let version = version.clone();
        tokio::spawn(
            async move { watched(&maps, &params, &version, Duration::from_millis(500)).await },
        )
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    maps.create(&PostParams::default(), &labelled("a", "w"))
        .await
        .unwrap();
    maps.create(&PostParams::default(), &labelled("b", "other"))
        .await
        .unwrap();
    let patch = json!({ "data": { "k": "v" } });
    maps.patch("a", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    maps.delete("a", &DeleteParams::default()).await.unwrap();
    let kinds = |events: Vec<(String, String)>| -> Vec<String> {
        events
            .into_iter()
            .filter(|(kind, _)| kind != "BOOKMARK")
            .map(|(kind, name)| format!("{kind} {name}"))
            .collect()
    };
    assert_eq!(
        kinds(events.await.unwrap()),
        ["ADDED a", "MODIFIED a", "DELETED a"]
    );
    // Resuming from the same version replays the history; version 0 starts with what is.
    let replayed = watched(&maps, &params, &version, Duration::from_millis(200)).await;
    assert_eq!(kinds(replayed), ["ADDED a", "MODIFIED a", "DELETED a"]);
    let current = watched(&maps, &params, "0", Duration::from_millis(200)).await;
    assert_eq!(kinds(current), ["ADDED before"]);
    // A watch ends when its timeout is up, and watches can be failed like other verbs.
    let short = WatchParams::default().timeout(1);
    let stream = maps.watch(&short, &version).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(3), stream.collect::<Vec<_>>())
        .await
        .expect("the watch ends with its timeout");
    let changes = ended
        .iter()
        .filter(|e| !matches!(e, Ok(WatchEvent::Bookmark(_))))
        .count();
    assert_eq!(changes, 4, "three changes of a, one of b, then the end");
    assert!(
        matches!(ended.last(), Some(Ok(WatchEvent::Bookmark(_)))),
        "a bookmark as the timeout runs out: {ended:?}"
    );
    sim.faults().fail(Verb::Watch, Some("configmaps"), 503, 1.0);
    let refused = maps.watch(&params, &version).await;
    assert!(matches!(refused, Err(kube::Error::Api(s)) if s.code == 503));
    assert_eq!(sim.requests().count(Verb::Watch, Some("configmaps")), 5);
}

#[tokio::test]
async fn injected_failures_answer_with_a_status() {
    let (sim, client) = start().await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    sim.faults().fail(Verb::Create, Some("services"), 503, 1.0);
    for i in 0..3 {
        let err = api_error(
            services
                .create(
                    &PostParams::default(),
                    &node_port_service(&format!("f{i}"), None),
                )
                .await,
        );
        assert_eq!((err.code, err.reason.as_str()), (503, "ServiceUnavailable"));
    }
    // Only creates of services fail, and the failed creates left nothing behind.
    assert!(
        services
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .all(|s| !s.name_any().starts_with('f'))
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &config_map("ok", json!({})))
        .await
        .unwrap();

    sim.faults().fail(Verb::Any, Some("configmaps"), 500, 1.0);
    let err = api_error(cms.get("ok").await);
    assert_eq!((err.code, err.reason.as_str()), (500, "InternalError"));
    sim.faults().fail(Verb::Get, None, 429, 1.0);
    sim.faults().clear();
    services
        .create(&PostParams::default(), &node_port_service("after", None))
        .await
        .unwrap();
    cms.get("ok").await.unwrap();
}

/// The failure pattern of 200 GETs with half of them failing.
async fn failure_pattern() -> Vec<bool> {
    let (sim, client) = start_with(SimConfig::new("faulty")).await;
    let namespaces: Api<Namespace> = Api::all(client);
    sim.faults().fail(Verb::Get, None, 500, 0.5);
    let mut pattern = Vec::new();
    for _ in 0..200 {
        pattern.push(namespaces.get("default").await.is_err());
    }
    pattern
}

#[tokio::test]
async fn failure_shares_are_respected_and_reproducible() {
    let first = failure_pattern().await;
    let failed = first.iter().filter(|f| **f).count();
    assert!((70..=130).contains(&failed), "{failed} of 200 failed");
    assert_eq!(first, failure_pattern().await);
}

#[tokio::test]
async fn latency_is_added_to_every_request() {
    let (sim, client) =
        start_with(SimConfig::new("slow").with_latency(Duration::from_millis(150))).await;
    let namespaces: Api<Namespace> = Api::all(client);
    let t = Instant::now();
    namespaces.get("default").await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(150));
    sim.faults().set_latency(Duration::from_millis(300));
    let t = Instant::now();
    namespaces.get("default").await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));
    sim.faults().set_latency(Duration::ZERO);
    let t = Instant::now();
    namespaces.get("default").await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(150));
}

#[tokio::test]
async fn requests_are_counted_by_verb_and_resource() {
    let (sim, client) = start().await;
    let before = sim.requests();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    services
        .create(&PostParams::default(), &node_port_service("counted", None))
        .await
        .unwrap();
    services.get("counted").await.unwrap();
    services.list(&ListParams::default()).await.unwrap();
    let _ = services.get("missing").await;
    let delta = sim.requests().since(&before);
    assert_eq!(delta.count(Verb::Create, Some("services")), 1);
    assert_eq!(delta.count(Verb::Get, Some("services")), 2);
    assert_eq!(delta.count(Verb::List, None), 1);
    assert_eq!(delta.total(), 4);
    assert_eq!(delta.count(Verb::Any, Some("pods")), 0);
}

#[tokio::test]
async fn kubeconfig_names_the_cluster_and_shutdown_stops_serving() {
    let (sim, client) = start_with(SimConfig::new("cluster-07")).await;
    let config = sim.kubeconfig();
    assert_eq!(config.current_context.as_deref(), Some("cluster-07"));
    assert_eq!(
        config.clusters[0]
            .cluster
            .as_ref()
            .unwrap()
            .server
            .as_deref(),
        Some(sim.url().as_str())
    );
    assert_eq!(sim.kubeconfig_json()["users"][0]["name"], "cluster-07");
    let nodes: Api<Node> = Api::all(client.clone());
    let node = nodes.get("node-a").await.unwrap();
    assert_eq!(node.labels()["kubernetes.io/hostname"], "node-a");
    let ready = node
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
    sim.shutdown().await;
    assert!(nodes.get("node-a").await.is_err());
}

fn mysql_only_policy(name: &str) -> NetworkPolicy {
    object(json!({
        "metadata": { "name": name, "labels": { "app": "tidb" } },
        "spec": {
            "podSelector": { "matchLabels": { "app": "tidb", "instance": name } },
            "policyTypes": ["Ingress"],
            "ingress": [{ "ports": [{ "port": 4000 }] }],
        },
    }))
}

#[tokio::test]
async fn network_policies_are_served_defaulted_validated_and_watched() {
    let (_sim, client) = start().await;
    create_namespace(&client, "np").await;
    let discovery: Value = client
        .request(http_get("/apis/networking.k8s.io/v1"))
        .await
        .unwrap();
    let names: Vec<&str> = discovery["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["networkpolicies"]);

    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), "np");
    let mut stream = policies
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let created = policies
        .create(&PostParams::default(), &mysql_only_policy("inst-1"))
        .await
        .unwrap();
    let spec = created.spec.unwrap();
    let port = &spec.ingress.unwrap()[0].ports.clone().unwrap()[0];
    // The API server's defaults.
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    assert_eq!(spec.policy_types.unwrap(), ["Ingress"]);
    let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a watch event")
        .unwrap()
        .unwrap();
    assert!(
        matches!(&event, WatchEvent::Added(p) if p.name_any() == "inst-1"),
        "{event:?}"
    );

    // Server-side apply creates and updates like any other type.
    let applied = policies
        .patch(
            "inst-2",
            &PatchParams::apply("framedb").force(),
            &Patch::Apply(mysql_only_policy("inst-2")),
        )
        .await
        .unwrap();
    assert_eq!(applied.metadata.labels.unwrap()["app"], "tidb");
    // A policy without a pod selector selects every pod of its namespace.
    let everything: NetworkPolicy = object(json!({ "metadata": { "name": "all" }, "spec": {} }));
    let everything = policies
        .create(&PostParams::default(), &everything)
        .await
        .unwrap();
    assert_eq!(
        everything.spec.unwrap().pod_selector.unwrap(),
        Default::default()
    );
    let listed = policies
        .list(&ListParams::default().labels("app=tidb"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);

    let bad: NetworkPolicy = object(json!({
        "metadata": { "name": "bad" },
        "spec": {
            "podSelector": { "matchExpressions": [{ "key": "a", "operator": "Near" }] },
            "policyTypes": ["Sideways"],
            "ingress": [{
                "ports": [{ "protocol": "ICMP", "port": 70000 }],
                "from": [{}],
            }],
        },
    }));
    let status = api_error(policies.create(&PostParams::default(), &bad).await);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    let fields: Vec<String> = status
        .details
        .unwrap()
        .causes
        .into_iter()
        .map(|c| c.field)
        .collect();
    for field in [
        "spec.podSelector.matchExpressions[0].operator",
        "spec.policyTypes[0]",
        "spec.ingress[0].ports[0].protocol",
        "spec.ingress[0].ports[0].port",
        "spec.ingress[0].from[0]",
    ] {
        assert!(
            fields.iter().any(|f| f == field),
            "{field} not in {fields:?}"
        );
    }

    policies
        .delete("inst-1", &DeleteParams::default())
        .await
        .unwrap();
    let gone = api_error(policies.get("inst-1").await);
    assert_eq!(gone.code, 404);
    assert!(
        gone.message.contains("networkpolicies.networking.k8s.io"),
        "{}",
        gone.message
    );
}

#[tokio::test]
async fn kubectl_lists_the_objects() {
    let kubectl = std::path::Path::new("/usr/bin/kubectl");
    if !kubectl.exists() {
        println!("kubectl is not installed at /usr/bin/kubectl: skipping");
        return;
    }
    let (sim, client) = start().await;
    create_namespace(&client, "framedb-storage").await;
    let services: Api<Service> = Api::namespaced(client.clone(), "framedb-storage");
    services
        .create(
            &PostParams::default(),
            &node_port_service("inst-1", Some(30900)),
        )
        .await
        .unwrap();
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "framedb-storage");
    sets.create(
        &PostParams::default(),
        &statefulset("inst-1", 1, json!({ "kubernetes.io/hostname": "node-a" })),
    )
    .await
    .unwrap();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "framedb-storage");
    let claim: PersistentVolumeClaim = object(json!({
        "metadata": { "name": "inst-1-data" },
        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } },
    }));
    claims.create(&PostParams::default(), &claim).await.unwrap();
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), "framedb-storage");
    policies
        .create(&PostParams::default(), &mysql_only_policy("inst-1"))
        .await
        .unwrap();

    let dir = std::env::temp_dir().join(format!("framedb-sim-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig.json");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let run = |args: &'static [&'static str]| {
        let mut command = tokio::process::Command::new(kubectl);
        command
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .args(args);
        async move {
            let out = command.output().await.expect("kubectl runs");
            let stdout = String::from_utf8_lossy(&out.stdout).to_string();
            let stderr = String::from_utf8_lossy(&out.stderr).to_string();
            println!("$ kubectl {}\n{stdout}{stderr}", args.join(" "));
            assert!(out.status.success(), "kubectl {args:?} failed: {stderr}");
            stdout
        }
    };

    let listing = run(&["get", "ns,svc,sts,pvc,pods", "-A"]).await;
    for name in [
        "framedb-storage",
        "kube-system",
        "service/inst-1",
        "statefulset.apps/inst-1",
        "inst-1-data",
        "pod/inst-1-0",
        "30900",
    ] {
        assert!(listing.contains(name), "{name} missing from:\n{listing}");
    }
    let policies = run(&["get", "networkpolicies", "-n", "framedb-storage"]).await;
    assert!(
        policies.contains("POD-SELECTOR")
            && policies.contains("inst-1")
            && policies.contains("app=tidb,instance=inst-1"),
        "{policies}"
    );
    let short = run(&["get", "netpol", "-A"]).await;
    assert!(short.contains("framedb-storage"), "{short}");
    let nodes = run(&["get", "nodes"]).await;
    assert!(
        nodes.contains("node-a") && nodes.contains("node-b") && nodes.contains("Ready"),
        "{nodes}"
    );
    let pods = run(&["get", "pods", "-n", "framedb-storage", "-o", "wide"]).await;
    assert!(
        pods.contains("inst-1-0")
            && pods.contains("1/1")
            && pods.contains("Running")
            && pods.contains("node-a"),
        "{pods}"
    );
    let json_out = run(&[
        "get",
        "svc",
        "inst-1",
        "-n",
        "framedb-storage",
        "-o",
        "json",
    ])
    .await;
    let svc: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(svc["spec"]["ports"][0]["nodePort"], 30900);
    let _ = std::fs::remove_dir_all(&dir);
}
