//! The allocator's view of a cluster's node ports, kept by a watch of its Services: free
//! ports cost no request once it is in step, it follows other clients' Services, the
//! API server's 422 stays the arbiter, and a broken or expired watch falls back to
//! reading the Services until it is in step again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use framedb_core::{ClusterDeployer, ClusterId, Error, NewInstance, PortAllocator};
use framedb_kube_sim::{RequestStats, SimConfig, Verb};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{Api, PostParams};
use serde_json::json;

use super::{Cluster, TIME_SCALE, cluster_id, eventually, spec};

const FOREIGN: &str = "tenants";

fn request(id: &str) -> NewInstance {
    serde_json::from_value(json!({
        "framedb_id": id, "cluster_id": "cluster-01", "node_id": "node-a", "storage_size": "1Gi"
    }))
    .unwrap()
}

/// Creates a Service of another tenant in namespace [`FOREIGN`], on `node_port` (a
/// ClusterIP Service without).
async fn foreign_service(client: &kube::Client, name: &str, node_port: Option<u16>) {
    let namespace: Namespace =
        serde_json::from_value(json!({ "metadata": { "name": FOREIGN } })).unwrap();
    // Made once per cluster; the later creates meet it.
    let _ = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await;
    let kind = if node_port.is_some() {
        "NodePort"
    } else {
        "ClusterIP"
    };
    let service: Service = serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": { "type": kind, "ports": [{ "port": 80, "nodePort": node_port }] },
    }))
    .unwrap();
    services(client)
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
}

fn services(client: &kube::Client) -> Api<Service> {
    Api::namespaced(client.clone(), FOREIGN)
}

/// The lowest free port and the requests its allocation made to the cluster.
async fn lowest(cluster: &Cluster) -> (u16, u64) {
    let before = cluster.sim.requests();
    let port = cluster.fleet.lowest_free(&cluster_id(), &[]).await.unwrap();
    (
        port,
        cluster.sim.requests().since(&before).count(Verb::Any, None),
    )
}

/// The Service lists made on the cluster since `before`.
fn service_lists(cluster: &Cluster, before: &RequestStats) -> u64 {
    cluster
        .sim
        .requests()
        .since(before)
        .count(Verb::List, Some("services"))
}

/// Waits until an allocation costs no request and finds `port` the lowest free one: the
/// view is in step and has seen what made `port` the lowest. Panics after ten seconds.
async fn until_the_view_answers(cluster: &Cluster, port: u16) {
    let answered = eventually(Duration::from_secs(10), || async {
        lowest(cluster).await == (port, 0)
    })
    .await;
    assert!(
        answered,
        "the view did not answer {port}: {:?}",
        lowest(cluster).await
    );
}

#[tokio::test]
async fn once_in_step_creates_read_no_services_and_take_distinct_ports() {
    let cluster = Cluster::start(Duration::ZERO).await;
    for n in 0..30 {
        foreign_service(&cluster.client, &format!("plain-{n}"), None).await;
    }
    until_the_view_answers(&cluster, 30900).await;

    let (service, _) = cluster.service();
    let create = |n: usize| service.create(request(&format!("viewed-{n}")));
    // The first create also makes the instances' namespace.
    assert_eq!(create(0).await.unwrap().record.port, Some(30900));
    let before = cluster.sim.requests();
    let mut ports = Vec::new();
    for n in 1..5 {
        ports.push(create(n).await.unwrap().record.port);
    }
    let during = cluster.sim.requests().since(&before);
    assert_eq!(ports, [30901, 30902, 30903, 30904].map(Some));
    assert_eq!(
        during.count(Verb::List, Some("services")),
        0,
        "no Service read"
    );
    // Each create's port was in the view before the next create chose: no 422 to retry.
    assert_eq!(during.count(Verb::Create, Some("services")), 4);
    until_the_view_answers(&cluster, 30905).await;
}

#[tokio::test]
async fn services_of_other_clients_come_and_go_in_the_view() {
    let cluster = Cluster::start(Duration::ZERO).await;
    until_the_view_answers(&cluster, 30900).await;
    foreign_service(&cluster.client, "theirs", Some(30900)).await;
    foreign_service(&cluster.client, "theirs-too", Some(30901)).await;
    until_the_view_answers(&cluster, 30902).await;
    services(&cluster.client)
        .delete("theirs", &Default::default())
        .await
        .unwrap();
    until_the_view_answers(&cluster, 30900).await;
}

/// An allocator that, on its first answer, lets another client take the lowest port it
/// offers before the create can: the view cannot have seen it.
struct Overtaken {
    fleet: Arc<framedb_k8s::KubeFleet>,
    client: kube::Client,
    done: AtomicBool,
}

#[async_trait]
impl PortAllocator for Overtaken {
    async fn free_ports(
        &self,
        cluster: &ClusterId,
        skip: &[u16],
    ) -> framedb_core::Result<Vec<u16>> {
        let free = self.fleet.free_ports(cluster, skip).await?;
        if !self.done.swap(true, Ordering::SeqCst) {
            foreign_service(&self.client, "overtaker", Some(free[0])).await;
        }
        Ok(free)
    }
}

#[tokio::test]
async fn a_port_taken_behind_the_view_s_back_is_refused_and_the_create_moves_on() {
    let cluster = Cluster::start(Duration::ZERO).await;
    until_the_view_answers(&cluster, 30900).await;

    // The deployer reports the API server's 422 as a taken port.
    foreign_service(&cluster.client, "first", Some(30900)).await;
    let refused = cluster.fleet.deploy(&spec("late", "node-a", 30900)).await;
    assert!(
        matches!(refused, Err(Error::PortTaken { port: 30900, .. })),
        "{refused:?}"
    );

    // The service then tries the next free port.
    until_the_view_answers(&cluster, 30901).await;
    let overtaken = Arc::new(Overtaken {
        fleet: cluster.fleet.clone(),
        client: cluster.client.clone(),
        done: AtomicBool::new(false),
    });
    let service = framedb_core::ProvisioningService::new(
        Arc::new(framedb_core::memory::InMemoryRegistry::new()),
        cluster.fleet.clone(),
        overtaken,
    );
    let created = service.create(request("moved-on")).await.unwrap();
    assert_eq!(created.record.port, Some(30902));
    until_the_view_answers(&cluster, 30903).await;
}

#[tokio::test]
async fn a_broken_watch_sends_allocations_to_the_services_until_it_is_in_step_again() {
    let cluster = Cluster::start(Duration::ZERO).await;
    until_the_view_answers(&cluster, 30900).await;

    // The API server drops its watches and refuses new ones: the view is not trusted,
    // and each allocation reads the Services, which tell of a Service made meanwhile.
    cluster
        .sim
        .faults()
        .fail(Verb::Watch, Some("services"), 503, 1.0);
    cluster.sim.end_watches();
    let read = eventually(Duration::from_secs(10), || async {
        let before = cluster.sim.requests();
        let answer = cluster.fleet.lowest_free(&cluster_id(), &[]).await.unwrap();
        answer == 30900 && service_lists(&cluster, &before) > 0
    })
    .await;
    assert!(read, "allocations went on trusting a broken watch");
    // (Between a relist's end and the failure of the watch that follows it, the view is
    // in step again for a moment: as current as that list.)
    foreign_service(&cluster.client, "while-broken", Some(30900)).await;
    let seen = eventually(Duration::from_secs(10), || async {
        lowest(&cluster).await.0 == 30901
    })
    .await;
    assert!(seen, "the Service made meanwhile was not seen");

    // Lists failing too: the allocation fails, as on an unreachable cluster.
    cluster
        .sim
        .faults()
        .fail(Verb::List, Some("services"), 503, 1.0);
    let failed = eventually(Duration::from_secs(10), || async {
        let failed = cluster.fleet.lowest_free(&cluster_id(), &[]).await;
        matches!(failed, Err(Error::Unavailable(_)))
    })
    .await;
    assert!(failed, "allocations answered without the cluster");

    // The watch comes back by itself once the cluster serves it again.
    cluster.sim.faults().clear();
    until_the_view_answers(&cluster, 30901).await;
}

#[tokio::test]
async fn a_watch_resumed_past_the_history_lists_again_and_is_in_step_after() {
    let cluster = Cluster::start_with(
        SimConfig::new("cluster-01")
            .with_images(framedb_k8s::default_images())
            .with_time_scale(TIME_SCALE)
            .with_history(8),
    )
    .await;
    until_the_view_answers(&cluster, 30900).await;

    // The watch is ended and its resumption held back while the history moves past its
    // version (and a node port is taken): the server answers it with a 410.
    cluster.sim.faults().delay(
        Verb::Watch,
        Some("services"),
        Duration::from_millis(500),
        1.0,
    );
    let before = cluster.sim.requests();
    cluster.sim.end_watches();
    foreign_service(&cluster.client, "while-away", Some(30900)).await;
    let maps: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), FOREIGN);
    for n in 0..20 {
        let map: ConfigMap =
            serde_json::from_value(json!({ "metadata": { "name": format!("churn-{n}") } }))
                .unwrap();
        maps.create(&PostParams::default(), &map).await.unwrap();
    }
    let relisted = eventually(Duration::from_secs(10), || async {
        service_lists(&cluster, &before) > 0
    })
    .await;
    assert!(relisted, "the watcher did not list again");
    until_the_view_answers(&cluster, 30901).await;
}
