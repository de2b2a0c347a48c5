//! An instance's status tells the truth about its containers, as the simulator's kubelet
//! plays them: an image the cluster's registry lacks, a crash loop, OOM kills. None of
//! them may read `Running`, nor `Provisioning` without a word; past the fleet's limits
//! ([`super::test_limits`]) they read `Failed` (`status_truth` shows the way there).

use std::time::Duration;

use framedb_core::{ClusterDeployer, FramedbId, InstanceStatus, StatusReport};
use framedb_kube_sim::{ContainerFault, SimConfig};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use super::{Cluster, TIME_SCALE, cluster_id, eventually, spec};

async fn report(cluster: &Cluster, id: &FramedbId) -> StatusReport {
    cluster
        .fleet
        .statuses(&cluster_id(), std::slice::from_ref(id))
        .await
        .unwrap()[id]
        .clone()
}

/// The restart count of the instance pod's `tidb` container.
async fn tidb_restarts(cluster: &Cluster, id: &FramedbId) -> i32 {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "framedb-storage");
    let Ok(pod) = pods.get(&format!("{id}-0")).await else {
        return 0;
    };
    pod.status
        .and_then(|s| s.container_statuses)
        .into_iter()
        .flatten()
        .find(|c| c.name == "tidb")
        .map_or(0, |c| c.restart_count)
}

/// Reads the status of `id` `times` times, 20 ms apart: each must be `Failed` with a
/// reason that contains every one of `said`.
async fn fails_throughout(cluster: &Cluster, id: &FramedbId, times: usize, said: &[&str]) {
    for _ in 0..times {
        let report = report(cluster, id).await;
        assert_eq!(report.status, InstanceStatus::Failed, "{report:?}");
        let reason = report.reason.unwrap_or_default();
        for part in said {
            assert!(reason.contains(part), "{part:?} not in {reason:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_image_the_registry_lacks_fails_the_instance_until_it_is_pushed() {
    // The cluster's registry has everything FrameDB deploys but TiDB.
    let images = framedb_k8s::default_images()
        .into_iter()
        .filter(|image| !image.contains("/tidb:"));
    let cluster = Cluster::start_with(
        SimConfig::new("cluster-01")
            .without_images()
            .with_images(images)
            .with_time_scale(TIME_SCALE),
    )
    .await;
    let id = FramedbId::new("tidb-pull").unwrap();
    cluster
        .fleet
        .deploy(&spec("tidb-pull", "node-a", 30900))
        .await
        .unwrap();
    // Failed once the kubelet has told the failed pull for the limit (2 s here).
    assert!(
        eventually(Duration::from_secs(10), || async {
            report(&cluster, &id).await.status == InstanceStatus::Failed
        })
        .await
    );
    let reason = report(&cluster, &id).await.reason.unwrap();
    assert!(
        reason.starts_with("container tidb is waiting: "),
        "{reason}"
    );
    assert!(
        reason.contains("ErrImagePull") || reason.contains("ImagePullBackOff"),
        "{reason}"
    );
    assert!(reason.contains("pingcap/tidb:v8.5.1"), "{reason}");
    fails_throughout(&cluster, &id, 30, &["container tidb", "pingcap/tidb"]).await;

    cluster.sim.push_image("pingcap/tidb:v8.5.1");
    assert!(
        eventually(Duration::from_secs(10), || async {
            report(&cluster, &id).await.status == InstanceStatus::Running
        })
        .await
    );
}

/// Deploys `id` under `fault` (of its `tidb` container) on a cluster whose pods are
/// ready only 600 ms after each start, so every run ends before it would be; waits for
/// `restarts` restarts (at least the limit's 3), then reads the status: `Failed` saying
/// `said`, at every step of the loop (waiting in back-off, terminated, running again).
async fn fails_under(
    fault: ContainerFault,
    id: &str,
    port: u16,
    restarts: i32,
    said: &str,
) -> Cluster {
    let cluster = Cluster::start(Duration::from_millis(600)).await;
    cluster.sim.inject_container_fault(fault.in_pods_named(id));
    let id = cluster.deployed(id, port).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            tidb_restarts(&cluster, &id).await >= restarts
        })
        .await
    );
    fails_throughout(&cluster, &id, 60, &["container tidb", said]).await;
    cluster
}

#[tokio::test]
async fn a_crash_looping_instance_reads_failed_between_crashes_too() {
    let cluster = fails_under(
        ContainerFault::crash_loop("tidb"),
        "tidb-crash",
        30901,
        3,
        "Error (exit code 1)",
    )
    .await;
    let id = FramedbId::new("tidb-crash").unwrap();
    cluster.sim.clear_container_faults();
    assert!(
        eventually(Duration::from_secs(20), || async {
            report(&cluster, &id).await.status == InstanceStatus::Running
        })
        .await
    );
}

#[tokio::test]
async fn an_oom_killed_instance_says_so() {
    fails_under(
        ContainerFault::oom_killed("tidb"),
        "tidb-oom",
        30902,
        3,
        "OOMKilled (exit code 137)",
    )
    .await;
}

/// Which of PD, TiKV and TiDB run in the instance's pod (none before it exists).
async fn running_components(cluster: &Cluster, id: &FramedbId) -> [bool; 3] {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "framedb-storage");
    let Ok(pod) = pods.get(&format!("{id}-0")).await else {
        return [false; 3];
    };
    let status = pod.status.unwrap_or_default();
    let all: Vec<_> = status
        .init_container_statuses
        .into_iter()
        .flatten()
        .chain(status.container_statuses.into_iter().flatten())
        .collect();
    ["pd", "tikv", "tidb"].map(|name| {
        all.iter()
            .find(|c| c.name == name)
            .and_then(|c| c.state.as_ref())
            .is_some_and(|s| s.running.is_some())
    })
}

#[tokio::test]
async fn a_cold_start_runs_pd_then_tikv_then_tidb_and_never_reads_failed() {
    // Each program answers its probes a while after it starts: without start ordering,
    // TiDB would start beside a PD that does not answer yet, exit, and crash-loop.
    let cluster = Cluster::start_with(
        SimConfig::new("cluster-01")
            .with_images(framedb_k8s::default_images())
            .with_pod_ready_after(Duration::from_millis(200)),
    )
    .await;
    let id = FramedbId::new("cold-start").unwrap();
    cluster
        .fleet
        .deploy(&spec("cold-start", "node-a", 30907))
        .await
        .unwrap();
    let mut seen: Vec<[bool; 3]> = Vec::new();
    let mut statuses = Vec::new();
    // Read until it runs (at most 4 s), noting each step.
    for _ in 0..400 {
        let components = running_components(&cluster, &id).await;
        let report = report(&cluster, &id).await;
        if seen.last() != Some(&components) {
            seen.push(components);
        }
        statuses.push(report.status);
        if report.status == InstanceStatus::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        statuses.last(),
        Some(&InstanceStatus::Running),
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| matches!(s, InstanceStatus::Provisioning | InstanceStatus::Running)),
        "{statuses:?}"
    );
    // Seen one by one, and never a later one before an earlier one.
    assert!(seen.len() >= 3, "{seen:?}");
    for components in &seen {
        assert!(components.windows(2).all(|w| w[0] || !w[1]), "{seen:?}");
    }
    assert_eq!(tidb_restarts(&cluster, &id).await, 0);
}
