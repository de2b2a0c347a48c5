//! What an instance's pod asks of a real node (issue 14): requests and memory limits per
//! container, so a node with 8 GiB allocatable runs two `small` instances and the third
//! waits with the scheduler's "Insufficient memory"; and TiKV's and PD's configuration
//! sized to the instance (its volume's reservations, one replica).

use std::time::Duration;

use framedb_core::InstanceStatus;
use framedb_kube_sim::{SimConfig, SimNode};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

use super::{Cluster, TIME_SCALE, eventually, status_report};

#[tokio::test]
async fn a_node_with_8_gib_runs_two_small_instances_and_tells_why_a_third_waits() {
    let node = SimNode::new("node-a").with_capacity("memory", "8Gi");
    let cluster = Cluster::start_with(
        SimConfig::new("cluster-01")
            .with_nodes([node, SimNode::new("node-b")])
            .with_images(framedb_k8s::default_images())
            .with_time_scale(TIME_SCALE),
    )
    .await;
    let mut ids = Vec::new();
    for (n, port) in [30931, 30932, 30933].into_iter().enumerate() {
        ids.push(cluster.deployed(&format!("sized-{n}"), port).await);
    }
    for id in &ids[..2] {
        assert!(
            eventually(Duration::from_secs(10), || async {
                status_report(&cluster.fleet, id).await.status == InstanceStatus::Running
            })
            .await,
            "{id} runs: {:?}",
            status_report(&cluster.fleet, id).await
        );
    }
    let third = status_report(&cluster.fleet, &ids[2]).await;
    assert_eq!(third.status, InstanceStatus::Pending, "{third:?}");
    let reason = third.reason.unwrap_or_default();
    assert!(reason.contains("Insufficient memory"), "{reason}");

    // Each instance's configuration: one replica, and TiKV's reservations within its
    // 2Gi volume rather than TiKV's 6 GiB of defaults.
    let configs: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), "framedb-storage");
    let config = configs.get("sized-0-config").await.unwrap().data.unwrap();
    assert!(config["pd.toml"].contains("max-replicas = 1"), "{config:?}");
    assert!(
        config["tikv.toml"].contains("reserve-space = \"102MiB\""),
        "{config:?}"
    );
    assert!(
        config["tikv.toml"].contains("reserve-raft-space = \"51MiB\""),
        "{config:?}"
    );
}
