//! The provisioning service on the kube-rs adapters and a simulated cluster: concurrent
//! creates, foreign Services, a full cluster, and injected faults leave no orphan.

use std::collections::BTreeSet;
use std::time::Duration;

use framedb_core::{Error, Filter, FramedbId, InstanceRegistry, NewInstance, Query};
use framedb_kube_sim::Verb;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    Namespace, PersistentVolumeClaim, Service, ServicePort, ServiceSpec,
};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use serde_json::json;

use super::{Cluster, cluster_id};

const NS: &str = "framedb-storage";

fn request(id: &str) -> NewInstance {
    serde_json::from_value(json!({
        "framedb_id": id, "cluster_id": "cluster-01", "node_id": "node-a", "storage_size": "1Gi"
    }))
    .unwrap()
}

/// Creates a NodePort Service that FrameDB does not own, in its own namespace.
async fn foreign_service(client: &kube::Client, namespace: &str, name: &str, node_port: i32) {
    let namespaces = Api::<Namespace>::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(namespace.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    let _ = namespaces.create(&PostParams::default(), &ns).await;
    let service = Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("NodePort".into()),
            ports: Some(vec![ServicePort {
                port: 80,
                node_port: Some(node_port),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    };
    Api::<Service>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
}

/// Names of FrameDB's objects of one kind on the cluster.
async fn names<K>(client: &kube::Client) -> BTreeSet<String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=framedb"))
        .await
        .map(|list| {
            list.items
                .iter()
                .filter_map(|o| o.meta().name.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Every registry record has its three objects and no object lacks a record, once the
/// objects that undone creates deleted have gone (claims wait for their pods' grace
/// periods).
async fn assert_consistent(cluster: &Cluster, registry: &dyn InstanceRegistry) -> BTreeSet<String> {
    let settled = super::eventually(Duration::from_secs(10), || async {
        Api::<PersistentVolumeClaim>::namespaced(cluster.client.clone(), NS)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .all(|claim| claim.metadata.deletion_timestamp.is_none())
    })
    .await;
    assert!(settled, "claims still being deleted");
    let records: BTreeSet<String> = registry
        .find(&Query::with_filter(Filter::all()))
        .await
        .unwrap()
        .iter()
        .map(|r| r.framedb_id.to_string())
        .collect();
    let claims: BTreeSet<String> = names::<PersistentVolumeClaim>(&cluster.client)
        .await
        .iter()
        .map(|n| n.trim_end_matches("-data").to_owned())
        .collect();
    assert_eq!(names::<Service>(&cluster.client).await, records, "Services");
    assert_eq!(
        names::<StatefulSet>(&cluster.client).await,
        records,
        "StatefulSets"
    );
    assert_eq!(claims, records, "PVCs");
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_creates_get_fifty_distinct_ports() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let (service, registry) = cluster.service();
    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let service = service.clone();
            tokio::spawn(async move { service.create(request(&format!("db-{n:02}"))).await })
        })
        .collect();
    let mut ports = BTreeSet::new();
    for task in tasks {
        let record = task.await.unwrap().expect("every create succeeds");
        ports.insert(record.record.port.unwrap());
    }
    assert_eq!(ports, (30900..30950).collect());
    assert_eq!(
        assert_consistent(&cluster, registry.as_ref()).await.len(),
        50
    );
}

#[tokio::test]
async fn a_foreign_service_on_30900_makes_the_first_instance_get_30901() {
    let cluster = Cluster::start(Duration::ZERO).await;
    foreign_service(&cluster.client, "other-team", "their-db", 30900).await;
    let (service, _) = cluster.service();
    let record = service.create(request("tidb-001")).await.unwrap();
    assert_eq!(record.record.port, Some(30901));
}

#[tokio::test]
async fn a_full_range_is_ports_exhausted_and_leaves_nothing() {
    let cluster = Cluster::start(Duration::ZERO).await;
    for port in 30900..=30999 {
        foreign_service(&cluster.client, "filler", &format!("svc-{port}"), port).await;
    }
    let (service, registry) = cluster.service();
    let error = service.create(request("tidb-001")).await.unwrap_err();
    assert_eq!(error, Error::PortsExhausted(cluster_id()));
    assert!(registry.is_empty());
    assert!(
        assert_consistent(&cluster, registry.as_ref())
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_fifth_of_service_writes_failing_every_create_succeeds_or_fails_cleanly() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let (service, registry) = cluster.service();
    // The namespace exists first, so that the faults fall on the Services themselves.
    service.create(request("warm-up")).await.unwrap();
    service
        .delete(&FramedbId::new("warm-up").unwrap(), false)
        .await
        .unwrap();
    cluster
        .sim
        .faults()
        .fail(Verb::Patch, Some("services"), 500, 0.2);
    cluster
        .sim
        .faults()
        .fail(Verb::Create, Some("services"), 500, 0.2);

    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let service = service.clone();
            tokio::spawn(async move { service.create(request(&format!("db-{n:02}"))).await })
        })
        .collect();
    let (mut created, mut failed) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(error) => {
                assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
                failed += 1;
            }
        }
    }
    assert!(
        failed > 0 && created > 0,
        "created {created}, failed {failed}"
    );
    cluster.sim.faults().clear();
    assert_eq!(
        assert_consistent(&cluster, registry.as_ref()).await.len(),
        created
    );
}

#[tokio::test]
async fn a_deploy_that_failed_halfway_completes_when_run_again() {
    use framedb_core::ClusterDeployer;
    let cluster = Cluster::start(Duration::ZERO).await;
    let spec = super::spec("tidb-004", "node-a", 30900);
    cluster
        .sim
        .faults()
        .fail(Verb::Create, Some("statefulsets"), 503, 1.0);
    let error = cluster.fleet.deploy(&spec).await.unwrap_err();
    assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
    cluster.sim.faults().clear();
    cluster.fleet.deploy(&spec).await.unwrap();
    let services = Api::<Service>::namespaced(cluster.client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(services.items.len(), 1);
    assert!(
        Api::<StatefulSet>::namespaced(cluster.client.clone(), NS)
            .get_opt("tidb-004")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_cluster_whose_node_port_range_leaves_out_the_instance_ports_says_so() {
    // An API server started with --service-node-port-range=30000-30901.
    let cluster = Cluster::start_with(
        framedb_kube_sim::SimConfig::new("cluster-01")
            .with_images(framedb_k8s::default_images())
            .with_node_port_range(30000..=30901),
    )
    .await;
    let (service, registry) = cluster.service();
    for id in ["in-range-1", "in-range-2"] {
        service.create(request(id)).await.unwrap();
    }
    // The next port lowest first, 30902, lies outside: the create says why, at once,
    // instead of trying the rest of the range or calling it exhausted.
    let error = service.create(request("outside")).await.unwrap_err();
    assert_eq!(
        error,
        Error::PortOutOfRange {
            cluster: cluster_id(),
            port: 30902,
            valid: "30000-30901".into(),
        }
    );
    assert!(
        error.to_string().contains("--service-node-port-range"),
        "{error}"
    );
    assert!(
        registry
            .get(&FramedbId::new("outside").unwrap())
            .await
            .is_err()
    );
    let outside = Api::<StatefulSet>::namespaced(cluster.client.clone(), NS)
        .get_opt("outside")
        .await
        .unwrap();
    assert!(outside.is_none());
}
