//! Every failure path of a create or a delete leaves nothing behind.

use std::sync::Arc;

use framedb_core::memory::InMemoryRegistry;
use framedb_core::ports::{MockClusterDeployer, MockInstanceRegistry, MockPortAllocator};
use framedb_core::{
    ClusterDeployer, Error, InstanceRegistry, InstanceStatus, PortAllocator, ProvisioningService,
    Removal, Stamp,
};
use mockall::predicate::{always, eq};

use super::{cluster, id, in_memory, request};

fn allocator_offering(port: u16) -> MockPortAllocator {
    let mut ports = MockPortAllocator::new();
    ports
        .expect_free_ports()
        .returning(move |_, _| Ok(vec![port]));
    ports
}

#[tokio::test]
async fn a_deploy_failure_leaves_no_registry_record() {
    let registry = Arc::new(InMemoryRegistry::new());
    let mut deployer = MockClusterDeployer::new();
    deployer.expect_deploy().times(1).returning(|_| {
        Err(Error::Unavailable(
            "cluster-01's API cannot be reached".into(),
        ))
    });
    // The deploy may have created some objects before failing: they are removed.
    deployer
        .expect_undeploy()
        .withf(|cluster_id, framedb_id, _, removal| {
            *cluster_id == cluster() && *framedb_id == id("tidb-001") && *removal == Removal::Undo
        })
        .times(1)
        .returning(|_, _, _, _| Ok(true));
    let service = ProvisioningService::new(
        registry.clone(),
        Arc::new(deployer),
        Arc::new(allocator_offering(30900)),
    );

    let error = service.create(request("tidb-001")).await.unwrap_err();
    assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
    assert!(registry.is_empty());
}

#[tokio::test]
async fn a_registry_failure_after_the_deploy_undoes_the_deployment() {
    let (_, _, fleet) = in_memory();
    let mut registry = MockInstanceRegistry::new();
    let inserted = Arc::new(std::sync::Mutex::new(None));
    let keep = inserted.clone();
    registry.expect_insert().times(1).returning(move |record| {
        *keep.lock().unwrap() = Some(record.clone());
        Ok(())
    });
    registry
        .expect_update_deployment()
        .times(1)
        .returning(|_, _, _, _| Err(Error::Unavailable("the registry cannot be reached".into())));
    // The undo is recorded before it begins, so that one that cannot finish is finished
    // as an undo by a reconcile pass.
    let read = inserted.clone();
    registry
        .expect_get()
        .returning(move |_| Ok(read.lock().unwrap().clone().unwrap()));
    registry
        .expect_mark_deleting()
        .withf(|framedb_id, _, removal| *framedb_id == id("tidb-001") && *removal == Removal::Undo)
        .times(1)
        .returning(|_, _, _| Ok(()));
    registry
        .expect_remove_stamped()
        .with(eq(id("tidb-001")), always())
        .times(1)
        .returning(|_, _| Ok(true));
    let service = ProvisioningService::new(Arc::new(registry), fleet.clone(), fleet.clone());

    let error = service.create(request("tidb-001")).await.unwrap_err();
    assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
    assert!(fleet.workloads(&cluster()).unwrap().is_empty());
    assert!(fleet.used_ports(&cluster()).unwrap().is_empty());
}

#[tokio::test]
async fn a_port_taken_between_read_and_write_is_retried_with_the_next_one() {
    let registry = Arc::new(InMemoryRegistry::new());
    let mut ports = MockPortAllocator::new();
    ports
        .expect_free_ports()
        .withf(|_, skip| skip.is_empty())
        .times(1)
        .returning(|_, _| Ok(vec![30900, 30901]));
    ports
        .expect_free_ports()
        .withf(|_, skip| skip == [30900])
        .times(1)
        .returning(|_, _| Ok(vec![30901]));
    let mut deployer = MockClusterDeployer::new();
    deployer
        .expect_deploy()
        .withf(|spec| spec.port == 30900)
        .times(1)
        .returning(|spec| {
            Err(Error::PortTaken {
                cluster: spec.cluster_id.clone(),
                port: spec.port,
            })
        });
    deployer
        .expect_deploy()
        .withf(|spec| spec.port == 30901)
        .times(1)
        .returning(|_| {
            Ok(framedb_core::Deployed {
                credentials: framedb_core::Credentials::root("pw").unwrap(),
                reattached: false,
            })
        });
    let service = ProvisioningService::new(registry.clone(), Arc::new(deployer), Arc::new(ports));

    let record = service.create(request("tidb-001")).await.unwrap();
    assert_eq!(record.record.port, Some(30901));
    let stored = registry.get(&id("tidb-001")).await.unwrap();
    assert_eq!(
        (stored.port, stored.status),
        (Some(30901), InstanceStatus::Provisioning)
    );
}

#[tokio::test]
async fn an_unknown_cluster_is_not_found_and_leaves_no_record() {
    let (service, registry, _) = in_memory();
    let mut elsewhere = request("tidb-001");
    elsewhere.cluster_id = "cluster-99".parse().unwrap();
    let error = service.create(elsewhere).await.unwrap_err();
    assert!(matches!(error, Error::ClusterNotFound(_)), "{error:?}");
    assert!(registry.is_empty());
}

#[tokio::test]
async fn the_101st_instance_on_a_full_cluster_is_refused_and_leaves_nothing() {
    let (service, registry, fleet) = in_memory();
    for n in 0..100 {
        let record = service
            .create(request(&format!("tidb-{n:03}")))
            .await
            .unwrap();
        assert_eq!(record.record.port, Some(30900 + n));
    }
    let error = service.create(request("tidb-100")).await.unwrap_err();
    assert_eq!(error, Error::PortsExhausted(cluster()));
    assert_eq!(registry.len(), 100);
    assert!(registry.get(&id("tidb-100")).await.is_err());
    assert_eq!(fleet.workloads(&cluster()).unwrap().len(), 100);
    assert_eq!(fleet.used_ports(&cluster()).unwrap().len(), 100);
}

#[tokio::test]
async fn a_foreign_service_on_the_lowest_port_is_skipped() {
    let (service, _, fleet) = in_memory();
    fleet
        .occupy_port(&cluster(), 30900, "someone-elses")
        .unwrap();
    let record = service.create(request("tidb-001")).await.unwrap();
    assert_eq!(record.record.port, Some(30901));
    assert_eq!(fleet.lowest_free(&cluster(), &[]).await.unwrap(), 30902);
}

#[tokio::test]
async fn a_failed_delete_keeps_the_record_as_deleting_and_a_retry_finishes() {
    // Create on a working cluster, then delete through a deployer that times out once.
    let (seeded, registry, fleet) = in_memory();
    seeded.create(request("tidb-001")).await.unwrap();

    let mut flaky = MockClusterDeployer::new();
    flaky.expect_undeploy().times(1).returning(|_, _, _, _| {
        Err(Error::Timeout(
            "cluster-01's API did not answer in time".into(),
        ))
    });
    let service = ProvisioningService::new(registry.clone(), Arc::new(flaky), fleet.clone());
    let error = service.delete(&id("tidb-001"), false).await.unwrap_err();
    assert!(matches!(error, Error::Timeout(_)), "{error:?}");
    let kept = registry.get(&id("tidb-001")).await.unwrap();
    assert_eq!(kept.status, InstanceStatus::Deleting);

    seeded.delete(&id("tidb-001"), false).await.unwrap();
    assert!(registry.is_empty());
    assert!(fleet.workloads(&cluster()).unwrap().is_empty());
    let again = seeded.delete(&id("tidb-001"), false).await.unwrap_err();
    assert_eq!(again, Error::InstanceNotFound(id("tidb-001")));
}

#[tokio::test]
async fn delete_succeeds_when_the_objects_are_already_gone() {
    let (service, registry, fleet) = in_memory();
    service.create(request("tidb-001")).await.unwrap();
    let stamp = registry.get(&id("tidb-001")).await.unwrap().stamp;
    fleet
        .undeploy(&cluster(), &id("tidb-001"), &stamp, Removal::Purge)
        .await
        .unwrap();
    service.delete(&id("tidb-001"), false).await.unwrap();
    assert!(registry.is_empty());
}

#[tokio::test]
async fn a_create_on_a_chosen_port_is_exclusive_and_a_retry_completes_it() {
    use framedb_core::PortChoice;
    let (service, registry, fleet) = in_memory();
    let stamp = Stamp::generate().unwrap();
    fleet
        .occupy_port(&cluster(), 30905, "someone-elses")
        .unwrap();
    let error = service
        .create_on(
            request("tidb-001"),
            PortChoice::Exactly(30905),
            stamp.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error,
        Error::PortTaken {
            cluster: cluster(),
            port: 30905
        }
    );
    assert!(registry.is_empty());

    let first = service
        .create_on(
            request("tidb-001"),
            PortChoice::Exactly(30906),
            stamp.clone(),
        )
        .await
        .unwrap();
    let again = service
        .create_on(
            request("tidb-001"),
            PortChoice::Exactly(30906),
            stamp.clone(),
        )
        .await
        .unwrap();
    assert_eq!(
        (first.record.port, again.record.port),
        (Some(30906), Some(30906))
    );
    // The retry answers the credentials of the first deploy.
    assert_eq!(first.credentials, again.credentials);
    assert_eq!(fleet.workloads(&cluster()).unwrap().len(), 1);
    assert_eq!(fleet.used_ports(&cluster()).unwrap(), [30905, 30906]);

    let elsewhere = service
        .create_on(
            request("tidb-001"),
            PortChoice::Exactly(30907),
            stamp.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(elsewhere, Error::AlreadyExists(id("tidb-001")));
    let plain = service.create(request("tidb-001")).await.unwrap_err();
    assert_eq!(plain, Error::AlreadyExists(id("tidb-001")));
}

/// A full or unknown cluster is refused before the instance is registered: no registry
/// call at all (a mock without expectations fails on any), hence no undo that could fail
/// and leave a record behind.
#[tokio::test]
async fn a_full_or_unknown_cluster_is_refused_without_a_registry_write() {
    for full in [true, false] {
        let mut ports = MockPortAllocator::new();
        ports
            .expect_free_ports()
            .times(1)
            .returning(move |cluster, _| {
                Err(if full {
                    Error::PortsExhausted(cluster.clone())
                } else {
                    Error::ClusterNotFound(cluster.clone())
                })
            });
        let service = ProvisioningService::new(
            Arc::new(MockInstanceRegistry::new()),
            Arc::new(MockClusterDeployer::new()),
            Arc::new(ports),
        );

        let error = service.create(request("full-001")).await.unwrap_err();
        match &error {
            Error::PortsExhausted(on) | Error::ClusterNotFound(on) => assert_eq!(*on, cluster()),
            other => panic!("{other:?}"),
        }
        assert_eq!(matches!(error, Error::PortsExhausted(_)), full, "{error:?}");
    }
}
