//! The same lifecycle against a real cluster, for whoever has one: run with
//! `KUBECONFIG=~/.kube/config FRAMEDB_TEST_NODE=<node name> cargo test -p framedb-k8s
//! --test k8s real_cluster -- --ignored`. It creates one instance in `framedb-storage`,
//! waits for TiDB to be ready, and deletes it.

use std::sync::Arc;
use std::time::Duration;

use framedb_core::memory::InMemoryRegistry;
use framedb_core::{ClusterId, InstanceStatus, NewInstance, ProvisioningService};
use framedb_k8s::{KubeFleet, Layout};
use serde_json::json;

#[tokio::test]
#[ignore = "needs a real cluster: KUBECONFIG and FRAMEDB_TEST_NODE"]
async fn real_cluster_lifecycle() {
    let node = std::env::var("FRAMEDB_TEST_NODE").expect("FRAMEDB_TEST_NODE names a node");
    let client = kube::Client::try_default()
        .await
        .expect("KUBECONFIG reaches a cluster");
    let cluster = ClusterId::new("real").unwrap();
    let fleet = Arc::new(KubeFleet::new(Layout::default()).with_cluster(cluster.clone(), client));
    let service = ProvisioningService::new(Arc::new(InMemoryRegistry::new()), fleet.clone(), fleet);
    let request: NewInstance = serde_json::from_value(json!({
        "framedb_id": format!("framedb-it-{}", std::process::id()),
        "cluster_id": "real", "node_id": node, "storage_size": "1Gi"
    }))
    .unwrap();
    let record = service.create(request).await.unwrap();
    let id = record.record.framedb_id.clone();
    let mut status = InstanceStatus::Provisioning;
    for _ in 0..120 {
        status = service.get(&id).await.unwrap().status;
        if status == InstanceStatus::Running {
            break;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    service.delete(&id, false).await.unwrap();
    assert_eq!(status, InstanceStatus::Running);
}
