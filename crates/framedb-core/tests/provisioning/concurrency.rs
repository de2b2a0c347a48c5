//! Creates racing each other: the registry's unique id decides, and losers leave nothing.

use std::collections::BTreeSet;

use framedb_core::Error;

use super::{cluster, in_memory, request};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_50_concurrent_creates_of_one_id_exactly_one_succeeds() {
    let (service, registry, fleet) = in_memory();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move { service.create(request("tidb-001")).await })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(record) => {
                created += 1;
                assert_eq!(record.record.port, Some(30900));
            }
            Err(error) => assert!(matches!(error, Error::AlreadyExists(_)), "{error:?}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(registry.len(), 1);
    assert_eq!(fleet.workloads(&cluster()).unwrap().len(), 1);
    assert_eq!(fleet.used_ports(&cluster()).unwrap(), [30900]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_distinct_ids_get_distinct_ports() {
    let (service, _, fleet) = in_memory();
    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let service = service.clone();
            tokio::spawn(async move { service.create(request(&format!("db-{n}"))).await })
        })
        .collect();
    let mut ports = BTreeSet::new();
    for task in tasks {
        ports.insert(task.await.unwrap().unwrap().record.port.unwrap());
    }
    assert_eq!(ports, (30900..30950).collect());
    assert_eq!(fleet.used_ports(&cluster()).unwrap().len(), 50);
}

/// A cluster whose deploys take a moment and that counts them.
struct Counting {
    inner: std::sync::Arc<framedb_core::memory::InMemoryFleet>,
    deploys: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl framedb_core::ClusterDeployer for Counting {
    async fn deploy(
        &self,
        spec: &framedb_core::DeploymentSpec,
    ) -> framedb_core::Result<framedb_core::Deployed> {
        self.deploys
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        self.inner.deploy(spec).await
    }
    async fn undeploy(
        &self,
        cluster: &framedb_core::ClusterId,
        id: &framedb_core::FramedbId,
        stamp: &framedb_core::Stamp,
        removal: framedb_core::Removal,
    ) -> framedb_core::Result<bool> {
        self.inner.undeploy(cluster, id, stamp, removal).await
    }
    async fn credentials(
        &self,
        cluster: &framedb_core::ClusterId,
        id: &framedb_core::FramedbId,
    ) -> framedb_core::Result<framedb_core::Credentials> {
        self.inner.credentials(cluster, id).await
    }
    async fn statuses(
        &self,
        cluster: &framedb_core::ClusterId,
        ids: &[framedb_core::FramedbId],
    ) -> framedb_core::Result<
        std::collections::HashMap<framedb_core::FramedbId, framedb_core::StatusReport>,
    > {
        self.inner.statuses(cluster, ids).await
    }
    async fn inventory(
        &self,
        cluster: &framedb_core::ClusterId,
    ) -> framedb_core::Result<Vec<framedb_core::InstanceRecord>> {
        self.inner.inventory(cluster).await
    }
    async fn follow(
        &self,
        cluster: &framedb_core::ClusterId,
    ) -> framedb_core::Result<framedb_core::live::StatusFeed> {
        self.inner.follow(cluster).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_service_do_not_collide_on_ports() {
    let (_, registry, fleet) = in_memory();
    let counting = std::sync::Arc::new(Counting {
        inner: fleet.clone(),
        deploys: Default::default(),
    });
    let service = framedb_core::ProvisioningService::new(registry, counting.clone(), fleet.clone());
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let service = service.clone();
            tokio::spawn(async move { service.create(request(&format!("db-{n}"))).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    // One deploy per create: no create tried a port another one was deploying on.
    assert_eq!(
        counting.deploys.load(std::sync::atomic::Ordering::SeqCst),
        40
    );
    assert_eq!(fleet.used_ports(&cluster()).unwrap().len(), 40);
}
