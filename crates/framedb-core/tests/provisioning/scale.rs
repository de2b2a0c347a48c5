//! What the fleet benchmark (issue 16, `framedb-bench run --only fleet`) found, each case
//! on its own: costs that grew with the fleet's instances where they need not.

use std::sync::Arc;
use std::time::Duration;

use framedb_core::ports::MockInstanceRegistry;
use framedb_core::{Filter, InstanceRegistry, ProvisioningService, Query};

use super::{cluster, in_memory, request};

/// A pass reads each cluster's records with one query and what runs there with one
/// inventory, and never reads instances one by one: on a fleet of thousands, a read per
/// instance per pass would be the pass's whole cost.
#[tokio::test]
async fn a_reconcile_pass_reads_records_per_cluster_not_per_instance() {
    let (service, registry, fleet) = in_memory();
    for n in 0..20 {
        service
            .create(request(&format!("pass-{n:02}")))
            .await
            .unwrap();
    }
    let on_cluster = Filter::cluster(&cluster());
    let recorded = registry
        .find(&Query::with_filter(on_cluster.clone()))
        .await
        .unwrap();
    assert_eq!(recorded.len(), 20);
    let mut counted = MockInstanceRegistry::new();
    // The cluster's records once; the query for unsettled records finds none.
    counted
        .expect_find()
        .withf(move |query| query.filter == on_cluster)
        .times(1)
        .returning(move |_| Ok(recorded.clone()));
    counted.expect_find().times(1).returning(|_| Ok(Vec::new()));
    // No `get`: a mock without that expectation fails on one.
    let pass = ProvisioningService::new(Arc::new(counted), fleet.clone(), fleet.clone());

    let repairs = pass.reconcile(Duration::ZERO, &[cluster()]).await.unwrap();
    assert!(!repairs.any(), "{repairs:?}");
}
