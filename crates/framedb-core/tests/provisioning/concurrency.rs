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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_service_do_not_collide_on_ports() {
    let (_, registry, fleet) = in_memory();
    // Each deploy takes a moment, and is counted.
    let deploys = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut counting = super::Hooked::on(fleet.clone());
    let counter = deploys.clone();
    counting.before_deploy = Box::new(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        })
    });
    let service = framedb_core::ProvisioningService::new(
        registry,
        std::sync::Arc::new(counting),
        fleet.clone(),
    );
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
    assert_eq!(deploys.load(std::sync::atomic::Ordering::SeqCst), 40);
    assert_eq!(fleet.used_ports(&cluster()).unwrap().len(), 40);
}
