//! Nothing lost, nothing orphaned, over both tiers: a registry that lost a record cannot
//! delete what runs under it, a local service that lost a record still deletes what runs,
//! and a retained volume comes back to its id with its uid.

use std::sync::Arc;
use std::time::Duration;

use framedb_core::memory::InMemoryRegistry;
use framedb_core::{FramedbId, InstanceRegistry};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{BASE, Topology, names};

async fn in_memory(test: &str) -> Topology {
    let registries =
        |_: String| async { Arc::new(InMemoryRegistry::new()) as Arc<dyn InstanceRegistry> };
    Topology::start(test, Duration::ZERO, registries, Duration::from_secs(10)).await
}

impl Topology {
    /// The uid of `claim` on cluster-01, if it exists.
    async fn claim_uid(&self, claim: &str) -> Option<String> {
        let client = self.clusters.fleet.clusters()[0].client().await;
        kube::Api::<PersistentVolumeClaim>::namespaced(client, "framedb-storage")
            .get_opt(claim)
            .await
            .unwrap()
            .and_then(|claim| claim.metadata.uid)
    }

    /// Whether `claim` on cluster-01 is gone once its pod's grace period is over (it is
    /// deleted at once, and goes when its pod has terminated).
    async fn claim_gone(&self, claim: &str) -> bool {
        let client = self.clusters.fleet.clusters()[0].client().await;
        super::claims_settled(&client).await && self.claim_uid(claim).await.is_none()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_that_lost_a_record_cannot_take_over_or_delete_what_runs() {
    let topology = in_memory("lost-global").await;
    let (status, body) = topology.create("victim", "cluster-01", "node-a", "t").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let uid = topology.claim_uid("victim-data").await;
    assert!(uid.is_some());

    // The global forgets it (a restart on an in-memory registry, a restored backup).
    let id = FramedbId::new("victim").unwrap();
    topology.global_registry.remove(&id).await.unwrap();
    let (status, body) = topology.create("victim", "cluster-01", "node-a", "t").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "conflict", "{body}");
    assert_eq!(body["details"]["cluster_id"], "cluster-01", "{body}");

    // The victim runs on, untouched: its volume, its workload, its local record.
    assert_eq!(topology.claim_uid("victim-data").await, uid);
    let client = topology.clusters.fleet.clusters()[0].client().await;
    assert!(names::<StatefulSet>(&client).await.contains("victim"));
    assert!(names::<Service>(&client).await.contains("victim"));
    assert!(topology.locals[0].registry.get(&id).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_removes_what_runs_when_the_local_service_lost_its_record() {
    let topology = in_memory("lost-local").await;
    let (status, body) = topology.create("orphan", "cluster-01", "node-a", "t").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The local service forgets it (a restart on an in-memory registry, a lost MongoDB).
    let id = FramedbId::new("orphan").unwrap();
    topology.locals[0].registry.remove(&id).await.unwrap();

    let (status, body) = topology
        .send(Method::DELETE, &format!("{BASE}/orphan"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let client = topology.clusters.fleet.clusters()[0].client().await;
    assert!(!names::<StatefulSet>(&client).await.contains("orphan"));
    assert!(!names::<Service>(&client).await.contains("orphan"));
    assert!(topology.claim_gone("orphan-data").await);
    assert!(topology.assert_consistent().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_volume_keeps_its_uid_across_delete_and_re_create() {
    let topology = in_memory("retain").await;
    let body = json!({"framedb_id": "keeper", "cluster_id": "cluster-01", "node_id": "node-a",
                      "storage_size": "1Gi", "deletion_policy": "Retain"});
    let (status, created) = topology.send(Method::POST, BASE, Some(body.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, read) = topology
        .send(Method::GET, &format!("{BASE}/keeper"), None)
        .await;
    assert_eq!(read["data"]["deletion_policy"], "Retain", "{read}");
    let (_, found) = topology
        .send(
            Method::POST,
            &format!("{BASE}/query"),
            Some(json!({"deletion_policy": "Retain"})),
        )
        .await;
    assert_eq!(found["data"].as_array().unwrap().len(), 1, "{found}");
    let uid = topology.claim_uid("keeper-data").await;

    let (status, _) = topology
        .send(Method::DELETE, &format!("{BASE}/keeper"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(topology.claim_uid("keeper-data").await, uid, "retained");

    let (status, again) = topology.send(Method::POST, BASE, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert!(
        again["message"].as_str().unwrap().contains("took back"),
        "{again}"
    );
    assert_eq!(again["credentials"], created["credentials"]);
    assert_eq!(
        topology.claim_uid("keeper-data").await,
        uid,
        "the same volume"
    );

    let (status, _) = topology
        .send(Method::DELETE, &format!("{BASE}/keeper?purge=true"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(topology.claim_gone("keeper-data").await, "purged");
    let (status, body) = topology
        .send(Method::DELETE, &format!("{BASE}/keeper?purge=maybe"), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_after_its_undo_is_refused_even_after_a_restart() {
    use framedb_http::settings::{LocalSettings, ServeSettings};
    use framedb_http::{Adapters, App};
    use reqwest::header::AUTHORIZATION;

    let Some(uri) = crate::mongo_uri() else {
        return;
    };
    let database = format!("framedb_e2e_fence_{}", std::process::id());
    let clusters = crate::Clusters::demo("fence", Duration::ZERO).await;
    let (cluster, _) = clusters.each().next().unwrap();
    let settings = LocalSettings {
        serve: ServeSettings {
            token: Some(super::LOCAL_TOKEN.into()),
            ..ServeSettings::loopback()
        },
        mongo: crate::mongo_settings(&uri, &database, Duration::from_secs(5)),
        ..LocalSettings::new(cluster.clone(), Some(clusters.kubeconfig(&cluster)))
    };
    let client = crate::http_client().build().unwrap();
    let stamp = "0123456789abcdef0123456789abcdef";
    let deploy = json!({"node_id": "node-a", "storage_size": "1Gi", "port": 30950,
                        "stamp": stamp});

    // The global gave up on the create and undid it before its deploy arrived.
    let first = crate::Server::serve(App::local(&settings, Adapters::default()).await.unwrap());
    let undo = client
        .delete(first.at(&format!(
            "local/v1/instances/late?stamp={stamp}&removal=undo"
        )))
        .header(AUTHORIZATION, format!("Bearer {}", super::LOCAL_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(
        undo.status(),
        StatusCode::NOT_FOUND,
        "nothing of it existed"
    );
    first.stop().await;

    // The late deploy reaches a restarted service: it is refused, and nothing runs.
    let second = crate::Server::serve(App::local(&settings, Adapters::default()).await.unwrap());
    let late = client
        .put(second.at("local/v1/instances/late"))
        .header(AUTHORIZATION, format!("Bearer {}", super::LOCAL_TOKEN))
        .json(&deploy)
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), StatusCode::CONFLICT);
    let body: serde_json::Value = late.json().await.unwrap();
    assert_eq!(body["error"], "conflict", "{body}");
    let kube = clusters.fleet.clusters()[0].client().await;
    assert!(!names::<StatefulSet>(&kube).await.contains("late"));
    assert!(!names::<Service>(&kube).await.contains("late"));
    second.stop().await;
    mongodb::Client::with_uri_str(&uri)
        .await
        .unwrap()
        .database(&database)
        .drop()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_killed_creates_left_without_a_port_are_settled_at_start_up() {
    use framedb_core::{ClusterDeployer, InstanceRecord, Stamp, Timestamp};
    use framedb_http::settings::{LocalSettings, ServeSettings};
    use framedb_http::{Adapters, App};

    let clusters = crate::Clusters::demo("settle", Duration::ZERO).await;
    let (cluster, sim) = clusters.each().next().unwrap();
    // What a create killed between its deploy and its port's record leaves: a record
    // `Provisioning` without a port, long ago, and its stamp's objects on the cluster.
    let registry = Arc::new(InMemoryRegistry::new());
    let stamp = Stamp::generate().unwrap();
    let request: framedb_core::NewInstance = serde_json::from_value(json!({
        "framedb_id": "killed", "cluster_id": cluster.as_str(), "node_id": "node-a",
        "storage_size": "1Gi"
    }))
    .unwrap();
    let long_ago: Timestamp = serde_json::from_value(json!("2026-01-01T00:00:00.000Z")).unwrap();
    let record = InstanceRecord::provisioning(request, stamp.clone(), long_ago);
    registry.insert(&record).await.unwrap();
    // And one killed before its deploy: nothing of it runs.
    let never: framedb_core::NewInstance = serde_json::from_value(json!({
        "framedb_id": "never", "cluster_id": cluster.as_str(), "node_id": "node-a",
        "storage_size": "1Gi"
    }))
    .unwrap();
    let never = InstanceRecord::provisioning(never, Stamp::generate().unwrap(), long_ago);
    registry.insert(&never).await.unwrap();
    let client = framedb_k8s::kubeconfig::client(sim.kubeconfig(), Default::default())
        .await
        .unwrap();
    let fleet = framedb_k8s::KubeFleet::new(framedb_k8s::Layout::default())
        .with_cluster(cluster.clone(), client);
    let spec = framedb_core::DeploymentSpec {
        framedb_id: record.framedb_id.clone(),
        cluster_id: cluster.clone(),
        node_id: record.node_id.clone(),
        storage_size: record.storage_size.clone(),
        port: 30960,
        stamp,
        deletion_policy: record.deletion_policy,
        created_at: record.created_at,
        metadata: Default::default(),
        resources: None,
    };
    fleet.deploy(&spec).await.unwrap();
    let kube = sim.client().await;
    assert!(names::<StatefulSet>(&kube).await.contains("killed"));

    let settings = LocalSettings {
        serve: ServeSettings::loopback(),
        ..LocalSettings::new(cluster.clone(), Some(clusters.kubeconfig(&cluster)))
    };
    let adapters = Adapters {
        registry: Some(registry.clone()),
        ..Adapters::default()
    };
    let local = crate::Server::serve(App::local(&settings, adapters).await.unwrap());
    // The one whose objects run is completed with its port; the other is removed.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let killed = FramedbId::new("killed").unwrap();
    while registry
        .get(&FramedbId::new("never").unwrap())
        .await
        .is_ok()
        || registry.get(&killed).await.unwrap().port.is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the start-up pass did not settle them"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(registry.get(&killed).await.unwrap().port, Some(30960));
    assert!(names::<StatefulSet>(&kube).await.contains("killed"));
    local.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_object_says_which_create_made_it_and_the_workload_holds_the_record() {
    let topology = in_memory("annotations").await;
    let (status, body) = topology
        .create("marked", "cluster-01", "node-a", "blue")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = FramedbId::new("marked").unwrap();
    let global = topology.global_registry.get(&id).await.unwrap();
    let local = topology.locals[0].registry.get(&id).await.unwrap();
    assert_eq!(
        local.stamp, global.stamp,
        "both tiers keep the create's stamp"
    );
    assert_eq!(
        local.metadata, global.metadata,
        "the local record has the caller's data"
    );

    let client = topology.clusters.fleet.clusters()[0].client().await;
    let workload = kube::Api::<StatefulSet>::namespaced(client.clone(), "framedb-storage")
        .get("marked")
        .await
        .unwrap();
    let annotations = workload.metadata.annotations.unwrap();
    assert_eq!(annotations["framedb.io/stamp"], global.stamp.as_str());
    assert_eq!(annotations["framedb.io/node-id"], "node-a");
    assert_eq!(annotations["framedb.io/storage-size"], "1Gi");
    assert_eq!(annotations["framedb.io/deletion-policy"], "Delete");
    assert_eq!(
        annotations["framedb.io/created-at"],
        global.created_at.to_string()
    );
    let data: serde_json::Value =
        serde_json::from_str(&annotations["framedb.io/metadata"]).unwrap();
    assert_eq!(data, json!({"team": "blue"}));
    for claim in kube::Api::<PersistentVolumeClaim>::namespaced(client, "framedb-storage")
        .list(&Default::default())
        .await
        .unwrap()
        .items
    {
        let annotations = claim.metadata.annotations.unwrap();
        assert_eq!(annotations["framedb.io/stamp"], global.stamp.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_service_restarted_on_an_empty_registry_records_what_runs_again() {
    let mut topology = in_memory("rebuild-local").await;
    let (status, body) = topology
        .create("survivor", "cluster-01", "node-a", "kept")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = FramedbId::new("survivor").unwrap();
    let global = topology.global_registry.get(&id).await.unwrap();

    // The local service comes back on an empty registry (memory, or a lost MongoDB).
    topology.stop_local(0).await;
    topology.locals[0].registry = Arc::new(InMemoryRegistry::new());
    topology.restart_local(0).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let rebuilt = loop {
        if let Ok(record) = topology.locals[0].registry.get(&id).await {
            break record;
        }
        assert!(std::time::Instant::now() < deadline, "not rebuilt");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(rebuilt.stamp, global.stamp);
    assert_eq!(rebuilt.port, global.port);
    assert_eq!(rebuilt.metadata, global.metadata);
    assert_eq!(rebuilt.created_at, global.created_at);
    // And the instance is managed again: its delete goes through both tiers.
    let (status, body) = topology
        .send(Method::DELETE, &format!("{BASE}/survivor"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(topology.assert_consistent().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_restarted_on_an_empty_registry_records_what_runs_again() {
    use framedb_http::Adapters;

    let topology = in_memory("rebuild-global").await;
    let (status, body) = topology
        .create("phoenix", "cluster-02", "node-b", "kept")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = FramedbId::new("phoenix").unwrap();
    let before = topology.global_registry.get(&id).await.unwrap();

    // Another global on the same fleet and an empty registry (a restart on memory, a
    // lost MongoDB): its start-up pass reads every known cluster's local service.
    let fresh = Arc::new(InMemoryRegistry::new());
    let adapters = Adapters {
        registry: Some(fresh.clone()),
        ..Adapters::default()
    };
    let second = crate::Server::global(&topology.global_settings, adapters).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let rebuilt = loop {
        if let Ok(record) = fresh.get(&id).await {
            break record;
        }
        assert!(std::time::Instant::now() < deadline, "not rebuilt");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(rebuilt.stamp, before.stamp);
    assert_eq!(rebuilt.port, before.port);
    assert_eq!(rebuilt.node_id, before.node_id);
    assert_eq!(rebuilt.metadata, before.metadata);
    assert_eq!(rebuilt.created_at, before.created_at);
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_service_or_workload_comes_back_on_its_port_with_its_volume() {
    let mut topology = in_memory("drift").await;
    let (status, body) = topology
        .create("drifter", "cluster-01", "node-a", "ops")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let port = body["port"].as_u64().expect("the create answers its port");
    let claim_uid = topology.claim_uid("drifter-data").await.unwrap();
    // The local service reconciles every second from now on.
    topology.stop_local(0).await;
    topology.locals[0].settings.serve.reconcile_interval_secs = 1;
    topology.restart_local(0).await;

    let client = topology.clusters.fleet.clusters()[0].client().await;
    let services = kube::Api::<Service>::namespaced(client.clone(), "framedb-storage");
    let workloads = kube::Api::<StatefulSet>::namespaced(client, "framedb-storage");
    let stamp_of = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.annotations.as_ref().unwrap()["framedb.io/stamp"].clone()
    };
    let stamp = stamp_of(&services.get("drifter").await.unwrap().metadata);
    // Someone deletes the Service, then the workload, with kubectl.
    for deleted in ["service", "statefulset"] {
        let old_uid = if deleted == "service" {
            let uid = services.get("drifter").await.unwrap().metadata.uid;
            services
                .delete("drifter", &Default::default())
                .await
                .unwrap();
            uid
        } else {
            let uid = workloads.get("drifter").await.unwrap().metadata.uid;
            workloads
                .delete("drifter", &Default::default())
                .await
                .unwrap();
            uid
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let back = if deleted == "service" {
                services.get_opt("drifter").await.unwrap().map(|s| {
                    let port = s.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].node_port;
                    (s.metadata, port.map(|p| p as u64))
                })
            } else {
                workloads
                    .get_opt("drifter")
                    .await
                    .unwrap()
                    .map(|s| (s.metadata, Some(port)))
            };
            if let Some((meta, found_port)) = back.filter(|(meta, _)| meta.uid != old_uid) {
                assert_eq!(
                    stamp_of(&meta),
                    stamp,
                    "{deleted} re-created with its stamp"
                );
                assert_eq!(found_port, Some(port), "{deleted} on its recorded port");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{deleted} not re-created"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The volume was never touched, and everything agrees.
    assert_eq!(topology.claim_uid("drifter-data").await, Some(claim_uid));
    assert_eq!(topology.status_until("drifter", "Running").await, "Running");
    topology.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_made_with_kubectl_is_never_taken_by_a_create_of_its_name() {
    let topology = in_memory("kubectl-claim").await;
    // Someone makes `intruder-data` with kubectl, before FrameDB ever created anything
    // there. (`kubectl create namespace` sends protobuf, which is not served yet: a
    // manifest is.)
    let manifests = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: framedb-storage\n---\n\
                     apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: intruder-data\n\
                     \x20 namespace: framedb-storage\n  labels:\n    team: theirs\nspec:\n\
                     \x20 accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n\
                     \x20     storage: 5Gi\n";
    let Some(made) = topology
        .kubectl("cluster-01", &["create", "-f", "-"], manifests)
        .await
    else {
        return;
    };
    assert!(made.status.success());
    let uid = topology.claim_uid("intruder-data").await.unwrap();

    let (status, body) = topology
        .create("intruder", "cluster-01", "node-a", "ours")
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "conflict", "{body}");
    assert_eq!(
        body["details"]["object"], "PersistentVolumeClaim framedb-storage/intruder-data",
        "{body}"
    );
    // Their claim is as it was, and nothing of the refused create is left anywhere.
    assert_eq!(topology.claim_uid("intruder-data").await, Some(uid));
    let shown = topology
        .kubectl(
            "cluster-01",
            &[
                "-n",
                "framedb-storage",
                "get",
                "pvc",
                "intruder-data",
                "-o",
                "json",
            ],
            "",
        )
        .await
        .unwrap();
    let claim: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(claim["metadata"]["labels"], json!({"team": "theirs"}));
    assert!(
        claim["metadata"]["annotations"]
            .get("framedb.io/stamp")
            .is_none()
    );
    let client = topology.clusters.fleet.clusters()[0].client().await;
    assert!(names::<Service>(&client).await.is_empty());
    assert!(names::<StatefulSet>(&client).await.is_empty());
    assert!(
        topology
            .global_registry
            .find(&framedb_core::Query::with_filter(
                framedb_core::Filter::all()
            ))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        topology.locals[0]
            .registry
            .get(&FramedbId::new("intruder").unwrap())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_delayed_past_the_global_s_timeout_ends_in_neither_tier_nor_cluster() {
    let registries =
        |_: String| async { Arc::new(InMemoryRegistry::new()) as Arc<dyn InstanceRegistry> };
    // The global waits one second for a local service.
    let mut topology = Topology::start(
        "late-put",
        Duration::ZERO,
        registries,
        Duration::from_secs(1),
    )
    .await;
    // cluster-01's service gets each deploy three seconds late.
    topology.stop_local(0).await;
    topology.locals[0].put_delay = Duration::from_secs(3);
    topology.restart_local(0).await;

    let (status, body) = topology.create("late", "cluster-01", "node-a", "t").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["error"], "timeout", "{body}");
    // The global undid the create at once; the deploy lands after that, and is refused.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while topology.locals[0]
        .puts_done
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the late deploy never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing of it is anywhere (and a reconcile pass has nothing to rebuild from).
    assert!(topology.assert_consistent().await.is_empty(), "in neither");
    let client = topology.clusters.fleet.clusters()[0].client().await;
    assert!(names::<StatefulSet>(&client).await.is_empty());
    assert!(names::<Service>(&client).await.is_empty());
    assert!(topology.claim_uid("late-data").await.is_none());

    // The id is free again: a create without delays makes it, on both tiers.
    topology.stop_local(0).await;
    topology.locals[0].put_delay = Duration::ZERO;
    topology.restart_local(0).await;
    let (status, body) = topology.create("late", "cluster-01", "node-a", "t").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(topology.assert_consistent().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_s_resource_profile_reaches_the_pod_through_both_tiers() {
    let topology = in_memory("profile").await;
    let body = json!({"framedb_id": "sized", "cluster_id": "cluster-01", "node_id": "node-a",
                      "storage_size": "1Gi", "resources": "medium"});
    let (status, created) = topology.send(Method::POST, BASE, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, read) = topology
        .send(Method::GET, &format!("{BASE}/sized"), None)
        .await;
    assert_eq!(read["data"]["resources"], "medium", "{read}");
    // The local record keeps it, and the pod asks for the medium sizes.
    let id = FramedbId::new("sized").unwrap();
    let local = topology.locals[0].registry.get(&id).await.unwrap();
    assert_eq!(local.resources, Some(framedb_core::ResourceProfile::Medium));
    let client = topology.clusters.fleet.clusters()[0].client().await;
    let sts = kube::Api::<StatefulSet>::namespaced(client, "framedb-storage")
        .get("sized")
        .await
        .unwrap();
    let pod = sts.spec.unwrap().template.spec.unwrap();
    let tikv = pod.init_containers.unwrap().remove(1);
    let limits = tikv.resources.unwrap().limits.unwrap();
    assert_eq!(limits["memory"].0, "4096Mi");

    // One without a profile reads `null`: its cluster's default.
    let (status, _) = topology.create("plain", "cluster-01", "node-a", "p").await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, read) = topology
        .send(Method::GET, &format!("{BASE}/plain"), None)
        .await;
    assert!(read["data"]["resources"].is_null(), "{read}");

    // An unknown profile is refused with a sentence, and nothing is made.
    let body = json!({"framedb_id": "huge", "cluster_id": "cluster-01", "node_id": "node-a",
                      "storage_size": "1Gi", "resources": "huge"});
    let (status, refused) = topology.send(Method::POST, BASE, Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains("resources"), "{refused}");
    assert!(message.contains("small"), "{refused}");
    let (status, _) = topology
        .send(Method::GET, &format!("{BASE}/huge"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
