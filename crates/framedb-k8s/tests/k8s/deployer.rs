//! The kube-rs deployer and port allocator against the simulator: the objects of
//! docs/architecture.md ("Kubernetes objects"), status read from pods, idempotent deploy
//! and delete.

use std::time::Duration;

use framedb_core::{ClusterDeployer, Error, FramedbId, InstanceStatus, PortAllocator};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::Api;

use super::{Cluster, cluster_id, spec};

const NS: &str = "framedb-storage";

#[tokio::test]
async fn deploy_creates_the_objects_of_the_design() {
    let cluster = Cluster::start(Duration::ZERO).await;
    cluster
        .fleet
        .deploy(&spec("tidb-001", "node-a", 30907))
        .await
        .unwrap();

    let labels = [
        ("app.kubernetes.io/name", "tidb"),
        ("app.kubernetes.io/instance", "tidb-001"),
        ("app.kubernetes.io/managed-by", "framedb"),
        ("framedb.io/cluster-id", "cluster-01"),
    ];
    let service = Api::<Service>::namespaced(cluster.client.clone(), NS)
        .get("tidb-001")
        .await
        .unwrap();
    let claim = Api::<PersistentVolumeClaim>::namespaced(cluster.client.clone(), NS)
        .get("tidb-001-data")
        .await
        .unwrap();
    let sts = Api::<StatefulSet>::namespaced(cluster.client.clone(), NS)
        .get("tidb-001")
        .await
        .unwrap();
    for meta in [&service.metadata, &claim.metadata, &sts.metadata] {
        let have = meta.labels.as_ref().unwrap();
        for (key, value) in labels {
            assert_eq!(
                have.get(key).map(String::as_str),
                Some(value),
                "{key} on {:?}",
                meta.name
            );
        }
    }

    let service_spec = service.spec.unwrap();
    assert_eq!(service_spec.type_.as_deref(), Some("NodePort"));
    let port = &service_spec.ports.unwrap()[0];
    assert_eq!((port.port, port.node_port), (4000, Some(30907)));

    let claim_spec = claim.spec.unwrap();
    assert_eq!(
        claim_spec.resources.unwrap().requests.unwrap()["storage"].0,
        "2Gi"
    );

    let sts_spec = sts.spec.unwrap();
    assert_eq!(sts_spec.replicas, Some(1));
    let pod = sts_spec.template.spec.unwrap();
    assert_eq!(
        pod.node_selector.unwrap()["kubernetes.io/hostname"],
        "node-a"
    );
    // PD and TiKV are native sidecars, TiDB the pod's container.
    let images: Vec<_> = pod
        .init_containers
        .iter()
        .flatten()
        .chain(&pod.containers)
        .map(|c| c.image.clone().unwrap())
        .collect();
    assert_eq!(
        images,
        [
            "docker.io/pingcap/pd:v8.5.1",
            "docker.io/pingcap/tikv:v8.5.1",
            "docker.io/pingcap/tidb:v8.5.1"
        ]
    );
    let tidb = pod.containers.iter().find(|c| c.name == "tidb").unwrap();
    let probe = tidb
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(probe.path.as_deref(), Some("/status"));
    assert_eq!(
        probe.port,
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(10080)
    );
    assert!(
        !tidb
            .args
            .as_ref()
            .unwrap()
            .iter()
            .any(|a| a.contains("unistore"))
    );
    let volume = &pod.volumes.unwrap()[0];
    assert_eq!(
        volume.persistent_volume_claim.as_ref().unwrap().claim_name,
        "tidb-001-data"
    );
}

#[tokio::test]
async fn status_moves_from_provisioning_to_running() {
    let cluster = Cluster::start(Duration::from_millis(600)).await;
    let id = FramedbId::new("tidb-001").unwrap();
    cluster
        .fleet
        .deploy(&spec("tidb-001", "node-a", 30900))
        .await
        .unwrap();
    let first = cluster
        .fleet
        .statuses(&cluster_id(), std::slice::from_ref(&id))
        .await
        .unwrap();
    assert_eq!(first[&id].status, InstanceStatus::Provisioning);
    let mut last = first[&id].status;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        last = cluster
            .fleet
            .statuses(&cluster_id(), std::slice::from_ref(&id))
            .await
            .unwrap()[&id]
            .status;
        if last == InstanceStatus::Running {
            break;
        }
    }
    assert_eq!(last, InstanceStatus::Running);
}

#[tokio::test]
async fn an_unschedulable_pod_is_pending_with_the_reason() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let id = FramedbId::new("tidb-002").unwrap();
    cluster
        .fleet
        .deploy(&spec("tidb-002", "node-zz", 30900))
        .await
        .unwrap();
    let mut report = None;
    for _ in 0..40 {
        let reports = cluster
            .fleet
            .statuses(&cluster_id(), std::slice::from_ref(&id))
            .await
            .unwrap();
        if reports[&id].status == InstanceStatus::Pending {
            report = Some(reports[&id].clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let report = report.expect("the instance shows Pending");
    let reason = report.reason.unwrap();
    assert!(reason.contains("Unschedulable"), "{reason}");
    assert!(reason.contains("node affinity/selector"), "{reason}");
}

#[tokio::test]
async fn statuses_cover_many_instances_and_skip_those_without_workload() {
    let cluster = Cluster::start(Duration::ZERO).await;
    cluster
        .fleet
        .deploy(&spec("a", "node-a", 30900))
        .await
        .unwrap();
    cluster
        .fleet
        .deploy(&spec("b", "node-b", 30901))
        .await
        .unwrap();
    let ids = ["a", "b", "c"].map(|i| FramedbId::new(i).unwrap());
    let mut reports = cluster.fleet.statuses(&cluster_id(), &ids).await.unwrap();
    for _ in 0..40 {
        if reports
            .values()
            .all(|r| r.status == InstanceStatus::Running)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        reports = cluster.fleet.statuses(&cluster_id(), &ids).await.unwrap();
    }
    assert_eq!(reports.len(), 2);
    assert!(
        reports
            .values()
            .all(|r| r.status == InstanceStatus::Running),
        "{reports:?}"
    );
}

#[tokio::test]
async fn deploy_and_undeploy_are_idempotent() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let spec = spec("tidb-003", "node-a", 30900);
    cluster.fleet.deploy(&spec).await.unwrap();
    cluster.fleet.deploy(&spec).await.unwrap();
    let services = Api::<Service>::namespaced(cluster.client.clone(), NS)
        .list(&Default::default())
        .await
        .unwrap();
    assert_eq!(services.items.len(), 1);
    cluster
        .fleet
        .undeploy(
            &cluster_id(),
            &spec.framedb_id,
            &framedb_core::Stamp::unstamped(),
            framedb_core::Removal::Purge,
        )
        .await
        .unwrap();
    cluster
        .fleet
        .undeploy(
            &cluster_id(),
            &spec.framedb_id,
            &framedb_core::Stamp::unstamped(),
            framedb_core::Removal::Purge,
        )
        .await
        .unwrap();
    for kind_is_empty in [
        Api::<Service>::namespaced(cluster.client.clone(), NS)
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        Api::<StatefulSet>::namespaced(cluster.client.clone(), NS)
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty(),
    ] {
        assert!(kind_is_empty);
    }
    // The claim is deleted, and goes once its pod has terminated (pvc-protection).
    let claims = Api::<PersistentVolumeClaim>::namespaced(cluster.client.clone(), NS);
    assert!(
        claims
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .all(|claim| claim.metadata.deletion_timestamp.is_some())
    );
    let gone = super::eventually(Duration::from_secs(10), || async {
        claims
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    })
    .await;
    assert!(gone);
}

#[tokio::test]
async fn a_taken_port_is_port_taken_and_the_allocator_skips_it() {
    let cluster = Cluster::start(Duration::ZERO).await;
    cluster
        .fleet
        .deploy(&spec("first", "node-a", 30900))
        .await
        .unwrap();
    let error = cluster
        .fleet
        .deploy(&spec("second", "node-a", 30900))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        Error::PortTaken {
            cluster: cluster_id(),
            port: 30900
        }
    );
    assert_eq!(
        cluster.fleet.lowest_free(&cluster_id(), &[]).await.unwrap(),
        30901
    );
    assert_eq!(
        cluster
            .fleet
            .lowest_free(&cluster_id(), &[30901])
            .await
            .unwrap(),
        30902
    );
    // The refused deploy left nothing of its own behind.
    let second = Api::<StatefulSet>::namespaced(cluster.client.clone(), NS)
        .get_opt("second")
        .await
        .unwrap();
    assert!(second.is_none());
}

#[tokio::test]
async fn an_unknown_cluster_is_not_found() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let mut elsewhere = spec("x", "node-a", 30900);
    elsewhere.cluster_id = "cluster-77".parse().unwrap();
    let error = cluster.fleet.deploy(&elsewhere).await.unwrap_err();
    assert!(matches!(error, Error::ClusterNotFound(_)), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_status_reads_share_cluster_reads_and_are_never_older_than_the_ask() {
    use framedb_kube_sim::{SimConfig, Verb};
    // Each API request takes a while, as a real one does, so that reads overlap.
    let cluster = Cluster::start_with(
        SimConfig::new("cluster-01")
            .with_images(framedb_k8s::default_images())
            .with_pod_ready_after(Duration::from_millis(300))
            .with_latency(Duration::from_millis(20)),
    )
    .await;
    cluster
        .fleet
        .deploy(&spec("shared", "node-a", 30900))
        .await
        .unwrap();
    let id = FramedbId::new("shared").unwrap();

    let before = cluster.sim.requests();
    let reads: Vec<_> = (0..50)
        .map(|_| {
            let (fleet, id) = (cluster.fleet.clone(), id.clone());
            tokio::spawn(async move { fleet.statuses(&cluster_id(), &[id]).await })
        })
        .collect();
    for read in reads {
        assert!(read.await.unwrap().unwrap().contains_key(&id));
    }
    let pod_lists = cluster
        .sim
        .requests()
        .since(&before)
        .count(Verb::List, Some("pods"));
    assert!(
        pod_lists < 10,
        "50 concurrent reads made {pod_lists} pod lists"
    );

    // Once the pod is ready, reads say so: a direct read asked for after it at once, the
    // status book (which answers once in step) as soon as its watch has heard of it.
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "framedb-storage");
    let ready = || async {
        pods.get("shared-0").await.ok().is_some_and(|pod| {
            pod.status
                .and_then(|s| s.conditions)
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    };
    assert!(super::eventually(Duration::from_secs(5), ready).await);
    let read = status_until(&cluster, &id, |s| s == Some(InstanceStatus::Running)).await;
    assert_eq!(read, Some(InstanceStatus::Running));
}

/// Polls `fleet.statuses` for `id` until `wanted` says yes, for at most five seconds.
async fn status_until(
    cluster: &Cluster,
    id: &FramedbId,
    wanted: impl Fn(Option<InstanceStatus>) -> bool,
) -> Option<InstanceStatus> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let status = cluster
            .fleet
            .statuses(&cluster_id(), std::slice::from_ref(id))
            .await
            .ok()
            .and_then(|reports| reports.get(id).map(|r| r.status));
        if wanted(status) || tokio::time::Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until a status read of `id` makes no request to the cluster: the status book
/// is in step and knows it. Panics after five seconds.
async fn until_reads_are_free(cluster: &Cluster, id: &FramedbId) {
    use framedb_kube_sim::Verb;
    for _ in 0..250 {
        let before = cluster.sim.requests();
        let read = cluster
            .fleet
            .statuses(&cluster_id(), std::slice::from_ref(id))
            .await;
        if read.is_ok() && cluster.sim.requests().since(&before).count(Verb::Any, None) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("status reads still go to the cluster");
}

#[tokio::test]
async fn once_the_watch_is_in_step_reads_cost_no_request_and_follow_the_pods() {
    use framedb_kube_sim::Verb;
    let cluster = Cluster::start(Duration::from_millis(600)).await;
    let id = cluster.deployed("watched", 30900).await;
    until_reads_are_free(&cluster, &id).await;

    // The pod turns ready with no request from FrameDB: the watch brings it.
    let before = cluster.sim.requests();
    let status = status_until(&cluster, &id, |s| s == Some(InstanceStatus::Running)).await;
    assert_eq!(status, Some(InstanceStatus::Running));
    let lists = cluster
        .sim
        .requests()
        .since(&before)
        .count(Verb::List, None);
    assert_eq!(lists, 0, "the change came by the watch, not by lists");

    // A workload deleted behind FrameDB's back leaves the book; the read that then
    // misses it asks the cluster, which says it is gone.
    let workloads: Api<StatefulSet> = Api::namespaced(cluster.client.clone(), NS);
    workloads
        .delete("watched", &Default::default())
        .await
        .unwrap();
    assert_eq!(status_until(&cluster, &id, |s| s.is_none()).await, None);
}

#[tokio::test]
async fn a_broken_watch_sends_reads_to_the_cluster_until_it_is_whole_again() {
    use framedb_kube_sim::Verb;
    let cluster = Cluster::start(Duration::ZERO).await;
    let id = cluster.deployed("broken", 30900).await;
    until_reads_are_free(&cluster, &id).await;

    // The API server drops its watches and refuses new ones: the book is no longer
    // trusted, and each read lists.
    cluster.sim.faults().fail(Verb::Watch, None, 503, 1.0);
    cluster.sim.end_watches();
    let mut listed = false;
    for _ in 0..100 {
        let before = cluster.sim.requests();
        let reports = cluster
            .fleet
            .statuses(&cluster_id(), std::slice::from_ref(&id))
            .await
            .unwrap();
        assert_eq!(reports[&id].status, InstanceStatus::Running);
        if cluster
            .sim
            .requests()
            .since(&before)
            .count(Verb::List, None)
            > 0
        {
            listed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(listed, "reads went on trusting a broken watch");

    // Lists failing too: the read fails, as a read of an unreachable cluster does.
    cluster.sim.faults().fail(Verb::List, None, 503, 1.0);
    let failed = cluster
        .fleet
        .statuses(&cluster_id(), std::slice::from_ref(&id))
        .await;
    assert!(matches!(failed, Err(Error::Unavailable(_))), "{failed:?}");

    // The watch comes back by itself once the cluster serves it again.
    cluster.sim.faults().clear();
    until_reads_are_free(&cluster, &id).await;
}

#[tokio::test]
async fn the_allocator_reads_every_page_of_services() {
    use framedb_kube_sim::Verb;
    let cluster = Cluster::start(Duration::ZERO).await;
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), "default");
    let service = |name: &str, node_port: Option<u16>| -> Service {
        let kind = if node_port.is_some() {
            "NodePort"
        } else {
            "ClusterIP"
        };
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": name },
            "spec": { "type": kind, "ports": [{ "port": 80, "nodePort": node_port }] },
        }))
        .unwrap()
    };
    for n in 0..1_100 {
        services
            .create(&Default::default(), &service(&format!("s-{n:04}"), None))
            .await
            .unwrap();
    }
    // Last in name order, so on the last page of the read.
    services
        .create(&Default::default(), &service("zzz", Some(30900)))
        .await
        .unwrap();
    // The first allocation starts the view and reads the Services in pages (the unit
    // tests count them); the view, once in step, finds the same.
    assert_eq!(
        cluster.fleet.lowest_free(&cluster_id(), &[]).await.unwrap(),
        30901
    );
    let in_step = super::eventually(Duration::from_secs(10), || async {
        let before = cluster.sim.requests();
        let port = cluster.fleet.lowest_free(&cluster_id(), &[]).await.unwrap();
        port == 30901 && cluster.sim.requests().since(&before).count(Verb::Any, None) == 0
    })
    .await;
    assert!(in_step, "the view did not come in step");
}

/// The statuses of `ids`, once every one of them reads as `check` says (within 10 s).
async fn statuses_until(
    cluster: &Cluster,
    ids: &[FramedbId],
    check: impl Fn(InstanceStatus) -> bool,
) -> Vec<InstanceStatus> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reports = cluster.fleet.statuses(&cluster_id(), ids).await.unwrap();
        let seen: Vec<InstanceStatus> = ids
            .iter()
            .map(|id| {
                reports
                    .get(id)
                    .map_or(InstanceStatus::Unknown, |r| r.status)
            })
            .collect();
        if seen.iter().all(|status| check(*status)) {
            return seen;
        }
        assert!(tokio::time::Instant::now() < deadline, "statuses {seen:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_pod_terminating_under_a_live_workload_reads_provisioning_not_deleting() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let id = cluster.deployed("restarted", 30905).await;
    let ids = [id.clone()];
    statuses_until(&cluster, &ids, |s| s == InstanceStatus::Running).await;

    // A restart (`kubectl delete pod`, an eviction): the pod terminates over its grace
    // period (30 s; half a second here) while its StatefulSet stays.
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(cluster.client.clone(), NS);
    let going = pods
        .delete("restarted-0", &Default::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert!(going.metadata.deletion_timestamp.is_some());
    let not_deleting = |s: InstanceStatus| {
        assert_ne!(
            s,
            InstanceStatus::Deleting,
            "the instance is not being deleted"
        );
        s
    };
    statuses_until(&cluster, &ids, |s| {
        not_deleting(s) == InstanceStatus::Provisioning
    })
    .await;
    // The StatefulSet starts it again once it is gone.
    statuses_until(&cluster, &ids, |s| {
        not_deleting(s) == InstanceStatus::Running
    })
    .await;
}

#[tokio::test]
async fn an_instance_made_again_at_once_is_not_read_from_its_predecessor_s_pod() {
    let cluster = Cluster::start(Duration::from_millis(300)).await;
    let first = spec("reborn", "node-a", 30906);
    cluster.fleet.deploy(&first).await.unwrap();
    let ids = [first.framedb_id.clone()];
    statuses_until(&cluster, &ids, |s| s == InstanceStatus::Running).await;
    cluster
        .fleet
        .undeploy(
            &cluster_id(),
            &first.framedb_id,
            &first.stamp,
            framedb_core::Removal::Retain,
        )
        .await
        .unwrap();
    // The old pod still terminates, ready, under the id's labels; made again with the
    // volume it retained, the instance's new workload waits for the pod's name.
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(cluster.client.clone(), NS);
    let old = pods.get("reborn-0").await.unwrap();
    assert!(old.metadata.deletion_timestamp.is_some());
    cluster.fleet.deploy(&first).await.unwrap();
    // Provisioning until its own pod runs: never the old pod's Deleting.
    statuses_until(&cluster, &ids, |s| {
        assert_ne!(s, InstanceStatus::Deleting);
        s == InstanceStatus::Running
    })
    .await;
    let pod = pods.get("reborn-0").await.unwrap();
    assert_ne!(pod.metadata.uid, old.metadata.uid, "its own pod");
}
