//! Instance credentials: made at create, answered once by the create and again on
//! request, kept on the cluster and never in the registry.

use framedb_core::{Error, InstanceRegistry, PortChoice};

use super::{cluster, id, in_memory, request};

#[tokio::test]
async fn each_instance_gets_its_own_password_which_a_read_returns_again() {
    let (service, _, _) = in_memory();
    let one = service.create(request("tidb-001")).await.unwrap();
    let two = service.create(request("tidb-002")).await.unwrap();
    assert_eq!(one.credentials.user(), "root");
    assert!(one.credentials.password().len() >= 22, "at least 128 bits");
    assert_ne!(one.credentials.password(), two.credentials.password());
    assert_eq!(
        service.credentials(&id("tidb-001")).await.unwrap(),
        one.credentials
    );
    assert_eq!(
        service.credentials(&id("tidb-002")).await.unwrap(),
        two.credentials
    );
}

#[tokio::test]
async fn a_retried_create_keeps_the_password() {
    let (service, _, fleet) = in_memory();
    let stamp = framedb_core::Stamp::generate().unwrap();
    let first = service
        .create_on(
            request("tidb-001"),
            PortChoice::Exactly(30900),
            stamp.clone(),
        )
        .await
        .unwrap();
    let again = service
        .create_on(
            request("tidb-001"),
            PortChoice::Exactly(30900),
            stamp.clone(),
        )
        .await
        .unwrap();
    assert_eq!(first.credentials, again.credentials);
    let kept = framedb_core::ClusterDeployer::credentials(&*fleet, &cluster(), &id("tidb-001"))
        .await
        .unwrap();
    assert_eq!(kept, first.credentials);
}

#[tokio::test]
async fn the_registry_record_holds_no_password() {
    let (service, registry, _) = in_memory();
    let created = service.create(request("tidb-001")).await.unwrap();
    let stored = registry.get(&id("tidb-001")).await.unwrap();
    let document = serde_json::to_string(&stored).unwrap();
    assert!(
        !document.contains(created.credentials.password()),
        "{document}"
    );
    let listed = format!("{:?}", service.get(&id("tidb-001")).await.unwrap());
    assert!(!listed.contains(created.credentials.password()), "{listed}");
}

#[tokio::test]
async fn credentials_of_unknown_or_deleted_instances_are_not_found() {
    let (service, _, _) = in_memory();
    assert_eq!(
        service.credentials(&id("nobody")).await.unwrap_err(),
        Error::InstanceNotFound(id("nobody"))
    );
    service.create(request("tidb-001")).await.unwrap();
    service.delete(&id("tidb-001"), false).await.unwrap();
    assert_eq!(
        service.credentials(&id("tidb-001")).await.unwrap_err(),
        Error::InstanceNotFound(id("tidb-001"))
    );
}
