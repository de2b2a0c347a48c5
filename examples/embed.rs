//! Embeds FrameDB in a Rust program: builds the provisioning service on in-memory
//! adapters, creates an instance, queries for it, reads its status and deletes it, all
//! in-process and without HTTP. Run with `cargo run -p framedb-examples --example embed`.
//!
//! A real service would pass the MongoDB registry and the Kubernetes adapters to
//! `ProvisioningService::new` instead; nothing else changes.

use std::sync::Arc;
use std::time::Duration;

use framedb_core::memory::{InMemoryFleet, InMemoryRegistry};
use framedb_core::{Filter, NewInstance, ProvisioningService, Query, QueryOptions};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let fleet = Arc::new(InMemoryFleet::demo(Duration::from_millis(200)));
    let service = ProvisioningService::new(Arc::new(InMemoryRegistry::new()), fleet.clone(), fleet);

    let request: NewInstance = serde_json::from_value(json!({
        "framedb_id": "orders-db",
        "cluster_id": "cluster-01",
        "node_id": "node-a",
        "storage_size": "2Gi",
        "metadata": {"team": "payments", "tier": "gold"}
    }))?;
    // The create hands back the instance's root credentials once; print the user only.
    let created = service.create(request).await?;
    let record = created.record;
    println!(
        "created {} on port {} (user {})",
        record.framedb_id,
        record.port.unwrap_or_default(),
        created.credentials.user()
    );

    let filter = Filter::parse(&json!({"metadata.team": "payments", "cluster_id": "cluster-01"}))?;
    let found = service
        .query(&Query::new(filter, QueryOptions::default())?)
        .await?;
    println!("query found {} instance(s)", found.len());

    let id = record.framedb_id.clone();
    println!("status now: {}", service.get(&id).await?.status);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let instance = service.get(&id).await?;
    println!(
        "status after readiness: {} ({})",
        instance.status,
        instance.public_url.unwrap_or_default()
    );

    // `purge: false`: the volume goes or stays as the instance's deletion policy says.
    service.delete(&id, false).await?;
    println!(
        "deleted; get now answers: {}",
        service.get(&id).await.unwrap_err()
    );
    Ok(())
}
