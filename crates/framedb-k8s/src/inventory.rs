//! The instances a cluster's objects describe, read back from them: every workload that
//! carries a create's stamp records its instance's id, node, size, policy, creation time
//! and metadata (`objects::annotations`), and its Service holds the port. A registry that
//! lost records rebuilds them from this, so nothing that runs stays invisible.

use std::collections::HashMap;

use framedb_core::{
    ClusterId, DeletionPolicy, DeploymentSpec, FramedbId, Metadata, NodeId, ResourceProfile, Stamp,
    StorageSize, Timestamp,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;

use crate::objects::{RETAINED, annotations};

/// The deployment a workload records, with the port its Service holds (from `ports`, by
/// the workload's name); `None` for a workload without a stamp, a port, or readable
/// annotations, and for one being deleted (kept a while by a finalizer, as with
/// `kubectl delete --cascade=foreground`): recorded again, it would come back.
pub(crate) fn deployment_of(
    cluster: &ClusterId,
    workload: &StatefulSet,
    ports: &HashMap<String, u16>,
) -> Option<DeploymentSpec> {
    let meta = &workload.metadata;
    if meta.deletion_timestamp.is_some() {
        return None;
    }
    if meta
        .labels
        .as_ref()
        .is_some_and(|labels| labels.get(RETAINED).is_some_and(|v| v == "true"))
    {
        return None;
    }
    let name = meta.name.as_deref()?;
    let noted = meta.annotations.as_ref()?;
    let note = |key: &str| noted.get(key).map(String::as_str);
    let stamp = Stamp::new(note(annotations::STAMP)?).ok()?;
    if stamp.is_unstamped() {
        return None;
    }
    let metadata: Metadata = match note(annotations::METADATA) {
        Some(json) => serde_json::from_str(json).ok()?,
        None => Metadata::default(),
    };
    let deletion_policy = match note(annotations::DELETION_POLICY)? {
        "Retain" => DeletionPolicy::Retain,
        "Delete" => DeletionPolicy::Delete,
        _ => return None,
    };
    // A profile this version does not know (a newer one's, a hand edit) must not hide
    // the instance: its record takes the layout's default, as the pod keeps what it has.
    let resources = note(annotations::RESOURCES).and_then(|profile| {
        let parsed = ResourceProfile::parse(profile).ok();
        if parsed.is_none() {
            tracing::warn!(
                instance = name,
                "unknown resources profile on the workload; the record takes the default"
            );
        }
        parsed
    });
    let created_at: Timestamp =
        serde_json::from_value(serde_json::Value::from(note(annotations::CREATED_AT)?)).ok()?;
    Some(DeploymentSpec {
        framedb_id: FramedbId::new(name).ok()?,
        cluster_id: cluster.clone(),
        node_id: NodeId::new(note(annotations::NODE)?).ok()?,
        storage_size: StorageSize::new(note(annotations::STORAGE_SIZE)?).ok()?,
        port: *ports.get(name)?,
        stamp,
        deletion_policy,
        resources,
        created_at,
        metadata,
    })
}

/// The node port each Service of `services` holds, by name.
pub(crate) fn node_ports(services: &[Service]) -> HashMap<String, u16> {
    services
        .iter()
        .filter_map(|service| {
            let name = service.metadata.name.clone()?;
            let port = service.spec.as_ref()?.ports.as_ref()?.first()?.node_port?;
            Some((name, u16::try_from(port).ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn workload(deleting: bool) -> StatefulSet {
        let mut workload = json!({
            "metadata": {
                "name": "db",
                "annotations": {
                    annotations::STAMP: "0123456789abcdef0123456789abcdef",
                    annotations::NODE: "node-a",
                    annotations::STORAGE_SIZE: "1Gi",
                    annotations::DELETION_POLICY: "Delete",
                    annotations::CREATED_AT: "2025-01-01T00:00:00Z",
                },
            },
        });
        if deleting {
            workload["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:01:00Z");
            workload["metadata"]["finalizers"] = json!(["foregroundDeletion"]);
        }
        serde_json::from_value(workload).unwrap()
    }

    #[test]
    fn a_workload_being_deleted_records_no_instance() {
        let cluster = ClusterId::new("c1").unwrap();
        let ports = HashMap::from([("db".to_owned(), 30900)]);
        let running = deployment_of(&cluster, &workload(false), &ports).expect("recorded");
        assert_eq!((running.framedb_id.as_str(), running.port), ("db", 30900));
        assert!(deployment_of(&cluster, &workload(true), &ports).is_none());
    }

    #[test]
    fn a_profile_rebuilds_and_an_unknown_one_falls_back_to_the_default() {
        let cluster = ClusterId::new("c1").unwrap();
        let ports = HashMap::from([("db".to_owned(), 30900)]);
        let with = |profile: &str| {
            let mut workload = workload(false);
            workload
                .metadata
                .annotations
                .as_mut()
                .unwrap()
                .insert(annotations::RESOURCES.to_owned(), profile.to_owned());
            deployment_of(&cluster, &workload, &ports).expect("recorded")
        };
        assert_eq!(with("large").resources, Some(ResourceProfile::Large));
        assert_eq!(with("gigantic").resources, None, "still recorded");
        let plain = deployment_of(&cluster, &workload(false), &ports).unwrap();
        assert_eq!(plain.resources, None);
    }
}
