//! The synthetic fleet the scenarios load: instance `i` lives on one of 10 clusters and
//! one of 50 nodes (5 per cluster), belongs to one of 20 teams, and carries a small
//! metadata object, as a dashboard's fleet would.

use framedb_core::{InstanceRecord, InstanceStatus, NewInstance, Stamp, Timestamp};
use mongodb::bson::{Document, doc};
use serde_json::json;

/// Clusters of the synthetic fleet.
pub const CLUSTERS: usize = 10;
/// Nodes of the synthetic fleet (spread evenly over the clusters).
pub const NODES: usize = 50;
/// Teams in `metadata.team`.
pub const TEAMS: usize = 20;

/// The cluster, node and team of instance `i`.
pub fn placement(i: usize) -> (String, String, String) {
    let node = i % NODES;
    let cluster = node / (NODES / CLUSTERS);
    (
        format!("cluster-{:02}", cluster + 1),
        format!("node-{:02}", node + 1),
        format!("team-{:02}", (i / NODES) % TEAMS + 1),
    )
}

/// The id of synthetic instance `i`.
pub fn id(i: usize) -> String {
    format!("fleet-{i:07}")
}

/// The registry record of synthetic instance `i` (deployed on a port, `Running`).
pub fn record(i: usize) -> InstanceRecord {
    let (cluster, node, team) = placement(i);
    let request: NewInstance = serde_json::from_value(json!({
        "framedb_id": id(i), "cluster_id": cluster, "node_id": node, "storage_size": "2Gi",
        "metadata": {"team": team, "env": "prod"}
    }))
    .expect("a valid synthetic instance");
    let mut record = InstanceRecord::provisioning(request, Stamp::unstamped(), Timestamp::now());
    record.port = Some(30900 + (i % 100) as u16);
    record.status = InstanceStatus::Running;
    record
}

/// The document the MongoDB registry stores for synthetic instance `i`: the same fields
/// and types as `framedb-mongo`'s `record_to_document` (the benchmark checks that the
/// registry reads it back).
pub fn document(i: usize) -> Document {
    let (cluster, node, team) = placement(i);
    let now = Timestamp::now().to_string();
    doc! {
        "framedb_id": id(i),
        "cluster_id": cluster,
        "node_id": node,
        "storage_size": "2Gi",
        "metadata": {"team": team, "env": "prod"},
        "port": 30900 + (i % 100) as i32,
        "status": "Running",
        "created_at": now.clone(),
        "updated_at": now,
    }
}

/// A create's body (`POST /global/framedb/persistent-instances`) for `id` on `cluster`,
/// on node `node-a` for an even `n`, `node-b` for an odd one.
pub fn create_body(id: &str, cluster: &str, n: usize) -> String {
    let node = if n.is_multiple_of(2) {
        "node-a"
    } else {
        "node-b"
    };
    json!({"framedb_id": id, "cluster_id": cluster, "node_id": node, "storage_size": "1Gi"})
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_spreads_nodes_over_clusters() {
        assert_eq!(placement(0).0, "cluster-01");
        assert_eq!(placement(4).0, "cluster-01");
        assert_eq!(placement(5).0, "cluster-02");
        assert_eq!(
            placement(49),
            ("cluster-10".into(), "node-50".into(), "team-01".into())
        );
        assert_eq!(placement(50).2, "team-02");
        assert_eq!(record(7).framedb_id.as_str(), "fleet-0000007");
    }
}
