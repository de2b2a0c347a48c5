//! Slim reads of the kinds that FrameDB reads often — the status watches and direct
//! status reads (StatefulSets, pods, events), the inventory (StatefulSets, Services) and
//! the node-port view (Services): [`Slim`] reads an object from the API server's JSON
//! into its k8s-openapi type with only the fields those readers use, and never builds
//! `metadata.managedFields`.
//!
//! Why: the API server sends `managedFields` with every object, and a StatefulSet's
//! entries describe its whole pod template as JSON trees; building them was about a
//! quarter of a local service's CPU in the fleet benchmark (`perf`: 23.5 % of its
//! samples, nearly all under the StatefulSet watch). The fields left out are still
//! scanned by the parser (they must be, to find the next field), but not allocated.
//!
//! A slim object is only ever read; nothing here is written back to a cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    Container, Event, EventSeries, ObjectReference, Pod, PodSpec, PodStatus, Service, ServicePort,
    ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use serde::{Deserialize, Deserializer};

/// `K` as far as statuses and the watcher need it (see the module's documentation).
#[derive(Debug, Clone)]
pub(crate) struct Slim<K>(pub K);

/// The metadata that FrameDB reads: names, uid, labels and annotations, owners, the
/// deletion mark, and the resourceVersion that a watch resumes from.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerReference>>,
    deletion_timestamp: Option<Time>,
}

impl From<Meta> for ObjectMeta {
    fn from(meta: Meta) -> Self {
        Self {
            name: meta.name,
            namespace: meta.namespace,
            uid: meta.uid,
            resource_version: meta.resource_version,
            labels: meta.labels,
            annotations: meta.annotations,
            owner_references: meta.owner_references,
            deletion_timestamp: meta.deletion_timestamp,
            ..Self::default()
        }
    }
}

impl<'de> Deserialize<'de> for Slim<StatefulSet> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// A StatefulSet's metadata (statuses and the inventory read only that): its
        /// spec and status are not read.
        #[derive(Deserialize)]
        struct Workload {
            metadata: Meta,
        }
        let read = Workload::deserialize(deserializer)?;
        Ok(Self(StatefulSet {
            metadata: read.metadata.into(),
            ..StatefulSet::default()
        }))
    }
}

impl<'de> Deserialize<'de> for Slim<Pod> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Read {
            metadata: Meta,
            spec: Option<Spec>,
            status: Option<PodStatus>,
        }
        /// Of the spec, which init containers run as native sidecars.
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Spec {
            init_containers: Option<Vec<Init>>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Init {
            name: String,
            restart_policy: Option<String>,
        }
        let read = Read::deserialize(deserializer)?;
        let spec = read.spec.map(|spec| PodSpec {
            init_containers: spec.init_containers.map(|inits| {
                inits
                    .into_iter()
                    .map(|init| Container {
                        name: init.name,
                        restart_policy: init.restart_policy,
                        ..Container::default()
                    })
                    .collect()
            }),
            ..PodSpec::default()
        });
        Ok(Self(Pod {
            metadata: read.metadata.into(),
            spec,
            status: read.status,
        }))
    }
}

impl<'de> Deserialize<'de> for Slim<Event> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Read {
            metadata: Meta,
            involved_object: ObjectReference,
            #[serde(rename = "type")]
            type_: Option<String>,
            reason: Option<String>,
            message: Option<String>,
            first_timestamp: Option<Time>,
            last_timestamp: Option<Time>,
            event_time: Option<MicroTime>,
            series: Option<EventSeries>,
        }
        let read = Read::deserialize(deserializer)?;
        Ok(Self(Event {
            metadata: read.metadata.into(),
            involved_object: read.involved_object,
            type_: read.type_,
            reason: read.reason,
            message: read.message,
            first_timestamp: read.first_timestamp,
            last_timestamp: read.last_timestamp,
            event_time: read.event_time,
            series: read.series,
            ..Event::default()
        }))
    }
}

impl<'de> Deserialize<'de> for Slim<Service> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Read {
            metadata: Meta,
            spec: Option<Spec>,
        }
        /// Of the spec, the node ports: the ports', and the one for health checks.
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Spec {
            ports: Option<Vec<ServicePort>>,
            health_check_node_port: Option<i32>,
        }
        let read = Read::deserialize(deserializer)?;
        Ok(Self(Service {
            metadata: read.metadata.into(),
            spec: read.spec.map(|spec| ServiceSpec {
                ports: spec.ports,
                health_check_node_port: spec.health_check_node_port,
                ..ServiceSpec::default()
            }),
            status: None,
        }))
    }
}

/// The kind is `K`'s: the same API, path and scope.
impl<K: k8s_openapi::Resource> k8s_openapi::Resource for Slim<K> {
    const API_VERSION: &'static str = K::API_VERSION;
    const GROUP: &'static str = K::GROUP;
    const KIND: &'static str = K::KIND;
    const VERSION: &'static str = K::VERSION;
    const URL_PATH_SEGMENT: &'static str = K::URL_PATH_SEGMENT;
    type Scope = K::Scope;
}

impl<K: k8s_openapi::Metadata<Ty = ObjectMeta>> k8s_openapi::Metadata for Slim<K> {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        self.0.metadata()
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        self.0.metadata_mut()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::objects::labels;
    use crate::status::Sources;

    /// An entry of `managedFields` as the API server writes one.
    fn managed(manager: &str) -> Value {
        json!({
            "manager": manager, "operation": "Apply", "apiVersion": "v1",
            "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": { "f:metadata": { "f:labels": { ".": {} } }, "f:spec": { "f:template": {} } },
        })
    }

    fn meta(name: &str, uid: &str, owner: Option<&str>) -> Value {
        let mut meta = json!({
            "name": name, "namespace": "framedb-storage", "uid": uid,
            "resourceVersion": "42", "generation": 3,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": { labels::INSTANCE: "db" },
            "annotations": { "a": "b" },
            "managedFields": [managed("framedb"), managed("kube-controller-manager")],
        });
        if let Some(owner) = owner {
            meta["ownerReferences"] = json!([{
                "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": owner,
                "controller": true, "blockOwnerDeletion": true,
            }]);
        }
        meta
    }

    #[test]
    fn slim_objects_keep_what_statuses_read_and_derive_the_same_statuses() {
        let workload = json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": meta("db", "uid-1", None),
            "spec": { "replicas": 1, "serviceName": "db", "selector": {}, "template": {} },
            "status": { "replicas": 1, "readyReplicas": 0 },
        });
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": meta("db-0", "pod-1", Some("uid-1")),
            "spec": {
                "containers": [{ "name": "tidb", "image": "pingcap/tidb:v8.5.1" }],
                "initContainers": [{ "name": "pd", "image": "pingcap/pd:v8.5.1", "restartPolicy": "Always" }],
            },
            "status": {
                "phase": "Pending",
                "conditions": [{ "type": "PodScheduled", "status": "True" }],
                "initContainerStatuses": [{
                    "name": "pd", "image": "pingcap/pd:v8.5.1", "imageID": "", "ready": false,
                    "restartCount": 0,
                    "state": { "waiting": { "reason": "ErrImagePull", "message": "not found" } },
                }],
            },
        });
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": meta("db-0.1", "ev-1", None),
            "involvedObject": { "kind": "Pod", "name": "db-0", "uid": "pod-1" },
            "type": "Warning", "reason": "Failed", "message": "Error: ErrImagePull",
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:03:00Z",
            "source": { "component": "kubelet" }, "count": 4,
        });

        let slim_workload: Slim<StatefulSet> = serde_json::from_value(workload.clone()).unwrap();
        let slim_pod: Slim<Pod> = serde_json::from_value(pod.clone()).unwrap();
        let slim_event: Slim<Event> = serde_json::from_value(event.clone()).unwrap();
        for meta in [
            &slim_workload.0.metadata,
            &slim_pod.0.metadata,
            &slim_event.0.metadata,
        ] {
            assert_eq!(meta.managed_fields, None);
            assert_eq!(meta.resource_version.as_deref(), Some("42"));
        }
        assert_eq!(
            slim_pod.0.metadata.owner_references.as_ref().unwrap().len(),
            1
        );
        assert_eq!(
            slim_workload.0.metadata.annotations.as_ref().unwrap()["a"],
            "b"
        );

        let service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": meta("db", "svc-1", None),
            "spec": {
                "type": "LoadBalancer", "selector": { "app": "db" },
                "externalTrafficPolicy": "Local", "healthCheckNodePort": 30950,
                "ports": [{ "name": "mysql", "port": 4000, "nodePort": 30901, "protocol": "TCP" }],
            },
            "status": { "loadBalancer": {} },
        });
        let slim_service: Slim<Service> = serde_json::from_value(service.clone()).unwrap();
        let full: Service = serde_json::from_value(service).unwrap();
        assert_eq!(
            crate::node_ports::held_by(&slim_service.0).collect::<Vec<_>>(),
            vec![30901, 30950]
        );
        assert_eq!(
            crate::node_ports::held_by(&slim_service.0).collect::<Vec<_>>(),
            crate::node_ports::held_by(&full).collect::<Vec<_>>()
        );
        assert_eq!(
            crate::inventory::node_ports(&[slim_service.0]),
            crate::inventory::node_ports(&[full])
        );

        let mut full = Sources::default();
        full.workload(&serde_json::from_value(workload).unwrap());
        full.pod(&serde_json::from_value(pod).unwrap());
        full.event(&serde_json::from_value(event).unwrap());
        let mut slim = Sources::default();
        slim.workload(&slim_workload.0);
        slim.pod(&slim_pod.0);
        slim.event(&slim_event.0);
        let statuses = slim.statuses();
        assert_eq!(statuses, full.statuses());
        let report = statuses.values().next().unwrap();
        assert_eq!(
            report.status,
            framedb_core::InstanceStatus::Failed,
            "{report:?}"
        );
    }
}
