//! `PATCH` of an instance on simulated clusters: a metadata merge patch and a larger
//! volume reach the global record, the local record and the cluster's objects (the claim,
//! its volume, the workload that records them), through the local config service and
//! directly; what cannot be done (a shrink, a class without expansion, a local volume, a
//! bad body) changes nothing anywhere.

use std::sync::Arc;
use std::time::{Duration, Instant};

use framedb_core::memory::InMemoryRegistry;
use framedb_core::{FramedbId, InstanceRegistry};
use framedb_http::Adapters;
use framedb_http::settings::MongoSettings;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::Api;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use super::{BASE, LOCAL_TOKEN, Topology};
use crate::{Clusters, Server, call};

async fn in_memory(test: &str) -> Topology {
    let registries =
        |_: String| async { Arc::new(InMemoryRegistry::new()) as Arc<dyn InstanceRegistry> };
    Topology::start(test, Duration::ZERO, registries, Duration::from_secs(10)).await
}

/// Sends a `PATCH` of `id` with `body` as `application/merge-patch+json`.
async fn patch(client: &Client, base: &str, id: &str, body: &Value) -> (StatusCode, Value) {
    let response = client
        .patch(format!("{base}/{BASE}/{id}"))
        .header("content-type", "application/merge-patch+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// The claim of `id` on `cluster`, once it is bound (the demo's class binds a claim when
/// its pod is scheduled).
async fn bound_claim(cluster: &kube::Client, id: &str) -> PersistentVolumeClaim {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.clone(), "framedb-storage");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let claim = claims.get_opt(&format!("{id}-data")).await.unwrap();
        if let Some(claim) = claim.filter(|c| phase(c) == "Bound") {
            return claim;
        }
        assert!(Instant::now() < deadline, "the claim of {id} did not bind");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn phase(claim: &PersistentVolumeClaim) -> &str {
    claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// What the claim asks for, and what its status says it has.
fn claim_sizes(claim: &PersistentVolumeClaim) -> (String, Option<String>) {
    let request = claim.spec.as_ref().unwrap().resources.as_ref().unwrap();
    let capacity = claim
        .status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .map(|q| q.0.clone());
    (
        request.requests.as_ref().unwrap()["storage"].0.clone(),
        capacity,
    )
}

/// Reads the claim of `id` until its status says `size` (the resizer and the kubelet
/// act after the write), for at most ten seconds.
async fn claim_grown(cluster: &kube::Client, id: &str, size: &str) -> PersistentVolumeClaim {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.clone(), "framedb-storage");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let claim = claims.get(&format!("{id}-data")).await.unwrap();
        if claim_sizes(&claim).1.as_deref() == Some(size) {
            return claim;
        }
        assert!(
            Instant::now() < deadline,
            "{id}'s claim did not grow to {size}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn workload(cluster: &kube::Client, id: &str) -> StatefulSet {
    Api::<StatefulSet>::namespaced(cluster.clone(), "framedb-storage")
        .get(id)
        .await
        .unwrap()
}

/// The workload's annotation `key`.
fn noted(workload: &StatefulSet, key: &str) -> String {
    workload.metadata.annotations.as_ref().unwrap()[key].clone()
}

/// TiKV's `--capacity` flag in the workload's pod template.
fn tikv_capacity(workload: &StatefulSet) -> String {
    let pod = workload
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    let tikv = pod
        .init_containers
        .iter()
        .flatten()
        .find(|c| c.name == "tikv")
        .unwrap();
    tikv.args
        .iter()
        .flatten()
        .find(|a| a.starts_with("--capacity="))
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_merges_metadata_and_grows_the_volume_through_both_tiers() {
    let topology = in_memory("update").await;
    let (status, body) = topology.create("grown", "cluster-01", "node-a", "t").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let cluster = topology.clusters.fleet.clusters()[0].client().await;
    bound_claim(&cluster, "grown").await;
    let global = topology.global.url.clone();
    let change = async |body: Value| patch(&topology.client, &global, "grown", &body).await;

    // Metadata: set and replace, then remove with null.
    let (status, body) =
        change(json!({"metadata": {"team": "new", "owner": {"name": "ana", "desk": 4}}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(
        body["data"]["metadata"],
        json!({"team": "new", "owner": {"name": "ana", "desk": 4}})
    );
    let (status, body) = change(json!({"metadata": {"owner": {"desk": null}}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let wanted = json!({"team": "new", "owner": {"name": "ana"}});
    assert_eq!(body["data"]["metadata"], wanted);
    assert_eq!(body["data"]["storage_size"], "1Gi");
    let (_, got) = topology
        .send(Method::GET, &format!("{BASE}/grown"), None)
        .await;
    assert_eq!(got["data"]["metadata"], wanted, "{got}");
    let id = FramedbId::new("grown").unwrap();
    let local = topology.locals[0].registry.get(&id).await.unwrap();
    assert_eq!(Value::from(local.metadata), wanted);
    let recorded: Value = serde_json::from_str(&noted(
        &workload(&cluster, "grown").await,
        "framedb.io/metadata",
    ))
    .unwrap();
    assert_eq!(recorded, wanted, "the workload records it for a rebuild");

    // A larger volume: the claim, its volume, the workload, both records.
    let before = tikv_capacity(&workload(&cluster, "grown").await);
    assert_eq!(before, "--capacity=1024MiB");
    let (status, body) = change(json!({"storage_size": "3Gi"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["storage_size"], "3Gi");
    assert_eq!(body["data"]["metadata"], wanted, "metadata kept");
    let claim = claim_grown(&cluster, "grown", "3Gi").await;
    assert_eq!(claim_sizes(&claim).0, "3Gi");
    let volume = claim.spec.unwrap().volume_name.unwrap();
    let volume = Api::<PersistentVolume>::all(cluster.clone())
        .get(&volume)
        .await
        .unwrap();
    assert_eq!(volume.spec.unwrap().capacity.unwrap()["storage"].0, "3Gi");
    let set = workload(&cluster, "grown").await;
    assert_eq!(noted(&set, "framedb.io/storage-size"), "3Gi");
    assert_eq!(tikv_capacity(&set), "--capacity=3072MiB");
    for registry in [&topology.locals[0].registry, &topology.global_registry] {
        let record = registry.get(&id).await.unwrap();
        assert_eq!(record.storage_size.as_str(), "3Gi");
    }

    // The same size again changes nothing; a smaller one is refused, changing nothing.
    let (status, body) = change(json!({"storage_size": "3072Mi"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["storage_size"], "3Gi");
    let (status, body) =
        change(json!({"storage_size": "2Gi", "metadata": {"team": "shrunk"}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "shrink_refused", "{body}");

    // Bodies the API refuses change nothing either.
    for bad in [
        json!({}),
        json!({"metadata": null}),
        json!({"storage_size": "4Gi", "color": "red"}),
        json!({"storage_size": "lots"}),
        json!({"storage_size": "512Mi"}),
        json!({"metadata": {"$where": 1}}),
        json!({"metadata": {"a.b": 1}}),
        json!({"metadata": 5}),
        json!(["storage_size"]),
    ] {
        let (status, body) = change(bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["success"], false, "{body}");
    }
    let (_, got) = topology
        .send(Method::GET, &format!("{BASE}/grown"), None)
        .await;
    assert_eq!(got["data"]["metadata"], wanted, "{got}");
    assert_eq!(got["data"]["storage_size"], "3Gi", "{got}");
    assert_eq!(
        claim_sizes(&claim_grown(&cluster, "grown", "3Gi").await).0,
        "3Gi"
    );

    let (status, body) = patch(
        &topology.client,
        &global,
        "missing",
        &json!({"storage_size": "3Gi"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "instance_not_found", "{body}");

    // A registry rebuilt from the cluster gets the change: the local service's
    // inventory is what a reconcile pass records again.
    let local_url = &topology.locals[0].server.as_ref().unwrap().url;
    let inventory: Value = reqwest::Client::new()
        .get(format!("{local_url}/local/v1/inventory"))
        .bearer_auth(LOCAL_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rebuilt = inventory["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["framedb_id"] == "grown")
        .unwrap();
    assert_eq!(rebuilt["metadata"], wanted, "{rebuilt}");
    assert_eq!(rebuilt["storage_size"], "3Gi", "{rebuilt}");
    topology.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_without_expansion_is_409_not_expandable_and_nothing_changes() {
    let topology = in_memory("update-fixed").await;
    // This cluster's administrator does not allow expansion on the default class
    // (`allowVolumeExpansion` may change on a class that exists).
    let Some(output) = topology
        .kubectl(
            "cluster-02",
            &[
                "patch",
                "storageclass",
                "standard",
                "--type=merge",
                "-p",
                r#"{"allowVolumeExpansion":false}"#,
            ],
            "",
        )
        .await
    else {
        return;
    };
    assert!(output.status.success());
    let (status, body) = topology.create("fixed", "cluster-02", "node-b", "t").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let cluster = topology.clusters.fleet.clusters()[1].client().await;
    bound_claim(&cluster, "fixed").await;

    let (status, body) = patch(
        &topology.client,
        &topology.global.url,
        "fixed",
        &json!({"storage_size": "2Gi", "metadata": {"team": "other"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "not_expandable", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("StorageClass 'standard'"), "{message}");
    assert!(message.contains("allowVolumeExpansion"), "{message}");

    let claim = bound_claim(&cluster, "fixed").await;
    assert_eq!(claim_sizes(&claim), ("1Gi".into(), Some("1Gi".into())));
    let set = workload(&cluster, "fixed").await;
    assert_eq!(noted(&set, "framedb.io/storage-size"), "1Gi");
    assert_eq!(noted(&set, "framedb.io/metadata"), r#"{"team":"t"}"#);
    let (_, got) = topology
        .send(Method::GET, &format!("{BASE}/fixed"), None)
        .await;
    assert_eq!(got["data"]["storage_size"], "1Gi", "{got}");
    assert_eq!(got["data"]["metadata"], json!({"team": "t"}), "{got}");
    let id = FramedbId::new("fixed").unwrap();
    let local = topology.locals[1].registry.get(&id).await.unwrap();
    assert_eq!(local.storage_size.as_str(), "1Gi");
    assert_eq!(Value::from(local.metadata), json!({"team": "t"}));
}

/// A global service that drives the demo clusters itself (no local service), on an
/// in-memory registry, with `layout` applied to its settings.
async fn direct(
    clusters: &Clusters,
    layout: impl FnOnce(&mut framedb_http::settings::LayoutSettings),
) -> Server {
    let mut settings = clusters.direct(MongoSettings::default());
    layout(&mut settings.layout);
    let adapters = Adapters {
        registry: Some(Arc::new(InMemoryRegistry::new())),
        ..Adapters::default()
    };
    Server::global(&settings, adapters).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_tier_grows_a_dynamic_volume_and_refuses_a_local_one() {
    let clusters = Clusters::demo("update-direct", Duration::ZERO).await;
    let client = crate::http_client().build().unwrap();
    let create = |id: &str| {
        json!({"framedb_id": id, "cluster_id": "cluster-01", "node_id": "node-a",
               "storage_size": "1Gi", "metadata": {"team": "t"}})
    };
    let cluster = clusters.fleet.clusters()[0].client().await;

    let server = direct(&clusters, |_| {}).await;
    let (status, body) = call(&client, Method::POST, server.at(BASE), Some(create("solo"))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    bound_claim(&cluster, "solo").await;
    let (status, body) = patch(
        &client,
        &server.url,
        "solo",
        &json!({"storage_size": "2Gi", "metadata": {"team": null, "tier": "one"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["storage_size"], "2Gi");
    assert_eq!(body["data"]["metadata"], json!({"tier": "one"}));
    let claim = claim_grown(&cluster, "solo", "2Gi").await;
    assert_eq!(claim_sizes(&claim).0, "2Gi");
    server.stop().await;

    // FrameDB's local volumes are static hostPath volumes: they never grow.
    let server = direct(&clusters, |layout| {
        layout.local_volume_root = Some("/var/lib/framedb-volumes".into());
    })
    .await;
    let (status, body) = call(
        &client,
        Method::POST,
        server.at(BASE),
        Some(create("pinned")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    bound_claim(&cluster, "pinned").await;
    let (status, body) = patch(
        &client,
        &server.url,
        "pinned",
        &json!({"storage_size": "2Gi"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "not_expandable", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("static"),
        "{body}"
    );
    let claim = bound_claim(&cluster, "pinned").await;
    assert_eq!(claim_sizes(&claim).0, "1Gi");
    // Its metadata can change all the same.
    let (status, body) = patch(
        &client,
        &server.url,
        "pinned",
        &json!({"metadata": {"x": 1}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["metadata"], json!({"team": "t", "x": 1}));
    assert_eq!(body["data"]["storage_size"], "1Gi");
    server.stop().await;
}
