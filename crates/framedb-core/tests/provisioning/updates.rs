//! Updates (`PATCH`): a metadata merge patch and a larger volume, the cluster first and
//! then the record, so that a retry after a failure between the two finishes the change;
//! refusals change nothing.

use std::sync::{Arc, Mutex};

use framedb_core::ports::MockInstanceRegistry;
use framedb_core::{
    ClusterDeployer, Error, InstanceChange, InstanceRecord, InstanceRegistry, InstanceStatus,
    Removal, StorageSize,
};
use serde_json::{Value, json};

use super::{cluster, id, in_memory, request};

fn change(body: Value) -> InstanceChange {
    serde_json::from_value(body).unwrap()
}

#[tokio::test]
async fn metadata_merges_as_rfc_7386_and_the_volume_grows() {
    let (service, registry, fleet) = in_memory();
    service.create(request("merged")).await.unwrap();
    let patch = json!({"metadata": {"team": null, "owner": {"name": "ana"}, "tier": 2}});
    let updated = service.update(&id("merged"), &change(patch)).await.unwrap();
    let wanted = json!({"owner": {"name": "ana"}, "tier": 2});
    assert_eq!(Value::from(updated.metadata.clone()), wanted);
    assert_eq!(updated.storage_size.as_str(), "2Gi");

    let updated = service
        .update(&id("merged"), &change(json!({"storage_size": "5Gi"})))
        .await
        .unwrap();
    assert_eq!(updated.storage_size.as_str(), "5Gi");
    let record = registry.get(&id("merged")).await.unwrap();
    assert_eq!(Value::from(record.metadata), wanted);
    assert_eq!(record.storage_size.as_str(), "5Gi");
    // What the cluster's objects record, from which a registry is rebuilt, says the same.
    let running = fleet.inventory(&cluster()).await.unwrap();
    assert_eq!(running[0].storage_size.as_str(), "5Gi");
    assert_eq!(Value::from(running[0].metadata.clone()), wanted);
}

#[tokio::test]
async fn refusals_change_nothing() {
    let (service, registry, fleet) = in_memory();
    service.create(request("kept")).await.unwrap();
    let before = registry.get(&id("kept")).await.unwrap();

    let refused = service
        .update(
            &id("kept"),
            &change(json!({"storage_size": "1Gi", "metadata": {"x": 1}})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, Error::ShrinkRefused { current, asked, .. }
            if current.as_str() == "2Gi" && asked.as_str() == "1Gi"),
        "{refused:?}"
    );
    let refused = service
        .update(&id("kept"), &change(json!({"metadata": {"bad.key": 1}})))
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Invalid(_)), "{refused:?}");
    let refused = service
        .update(&id("absent"), &change(json!({"metadata": {}})))
        .await
        .unwrap_err();
    assert_eq!(refused, Error::InstanceNotFound(id("absent")));
    assert_eq!(registry.get(&id("kept")).await.unwrap(), before);
    assert_eq!(
        fleet.inventory(&cluster()).await.unwrap()[0].metadata,
        before.metadata
    );

    // An equal size in another spelling is no change at all.
    let same = service
        .update(&id("kept"), &change(json!({"storage_size": "2048Mi"})))
        .await
        .unwrap();
    assert_eq!(same.storage_size.as_str(), "2Gi");
    assert_eq!(registry.get(&id("kept")).await.unwrap(), before);

    // Being deleted: busy, whatever is asked.
    registry
        .mark_deleting(&id("kept"), &before.stamp, Removal::Purge)
        .await
        .unwrap();
    let refused = service
        .update(&id("kept"), &change(json!({"storage_size": "3Gi"})))
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::InstanceBusy { .. }), "{refused:?}");
}

#[test]
fn a_change_names_something_and_nothing_unknown() {
    for bad in [
        json!({}),
        json!({"metadata": null}),
        json!({"size": "2Gi"}),
        json!({"storage_size": "2Gi", "force": true}),
    ] {
        assert!(
            serde_json::from_value::<InstanceChange>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

/// The registry's write fails after the cluster took the change (a crash between the
/// two): the caller is told, the cluster is ahead of the record, and the same change
/// asked again, computed again from the unchanged record, finishes it.
#[tokio::test]
async fn a_retry_after_the_record_failed_finishes_the_change() {
    let (seed, seeded, fleet) = in_memory();
    seed.create(request("retried")).await.unwrap();
    let stored = Arc::new(Mutex::new(seeded.get(&id("retried")).await.unwrap()));

    let mut registry = MockInstanceRegistry::new();
    let read = stored.clone();
    registry
        .expect_get()
        .returning(move |_| Ok(read.lock().unwrap().clone()));
    let mut failures = 1;
    let written = stored.clone();
    registry
        .expect_amend()
        .returning(move |_, stamp, metadata, size| {
            if failures > 0 {
                failures -= 1;
                return Err(Error::Unavailable("the registry cannot be reached".into()));
            }
            let mut record = written.lock().unwrap();
            assert_eq!(record.stamp, *stamp);
            record.metadata = metadata.clone();
            record.storage_size = size.clone();
            Ok(())
        });
    let service =
        framedb_core::ProvisioningService::new(Arc::new(registry), fleet.clone(), fleet.clone());
    let asked = change(json!({"metadata": {"team": "ops"}, "storage_size": "4Gi"}));

    let failed = service.update(&id("retried"), &asked).await.unwrap_err();
    assert!(matches!(failed, Error::Unavailable(_)), "{failed:?}");
    let running = fleet.inventory(&cluster()).await.unwrap();
    assert_eq!(
        running[0].storage_size.as_str(),
        "4Gi",
        "the cluster took it"
    );
    let record: InstanceRecord = stored.lock().unwrap().clone();
    assert_eq!(record.storage_size.as_str(), "2Gi", "the record did not");

    let done = service.update(&id("retried"), &asked).await.unwrap();
    assert_eq!(done.storage_size, StorageSize::new("4Gi").unwrap());
    assert_eq!(Value::from(done.metadata), json!({"team": "ops"}));
    assert_eq!(done.status, InstanceStatus::Running);
}

/// The cluster took a larger volume and the record did not (an update that died between
/// the two): a reconcile pass records the size; metadata waits for the update's retry.
#[tokio::test]
async fn a_reconcile_pass_records_a_change_its_cluster_holds() {
    let (service, registry, fleet) = in_memory();
    service.create(request("ahead")).await.unwrap();
    let record = registry.get(&id("ahead")).await.unwrap();
    let spec = framedb_core::DeploymentSpec {
        framedb_id: record.framedb_id.clone(),
        cluster_id: record.cluster_id.clone(),
        node_id: record.node_id.clone(),
        storage_size: StorageSize::new("6Gi").unwrap(),
        port: record.port.unwrap(),
        stamp: record.stamp.clone(),
        deletion_policy: record.deletion_policy,
        resources: record.resources,
        created_at: record.created_at,
        metadata: serde_json::from_value(json!({"team": "ops"})).unwrap(),
    };
    fleet.amend(&spec).await.unwrap();

    let repairs = service
        .reconcile(std::time::Duration::from_secs(300), &[cluster()])
        .await
        .unwrap();
    assert_eq!(repairs.caught_up, 1, "{repairs:?}");
    let caught = registry.get(&id("ahead")).await.unwrap();
    assert_eq!(caught.storage_size.as_str(), "6Gi");
    assert_eq!(caught.metadata, record.metadata);
    // In step now: the next pass changes nothing.
    let repairs = service
        .reconcile(std::time::Duration::from_secs(300), &[cluster()])
        .await
        .unwrap();
    assert!(!repairs.any(), "{repairs:?}");
}
