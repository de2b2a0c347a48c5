//! The config service's MongoDB (issue 14, point 8): a one-replica StatefulSet whose
//! registry lives on a claim of its own, so that the registry follows the pod through a
//! rollout or a reschedule, with authentication on (a generated password in a Secret),
//! resources, probes and the pod hygiene of the instances' pods.
//!
//! Why a StatefulSet: its controller replaces a pod only once the old one is gone
//! (`OrderedReady`, and a terminating pod is waited for), so two `mongod` never open one
//! data directory, which is what deadlocked a Deployment's rollout on `mongod.lock`; and its
//! claim (`data-mongodb-0`) outlives the pod, wherever the next one is scheduled.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, ExecAction, HostPathVolumeSource,
    LocalVolumeSource, Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, Secret, SecretKeySelector, SecurityContext,
    TCPSocketAction, Volume, VolumeMount, VolumeNodeAffinity, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// MongoDB's StatefulSet and its Service.
pub const MONGODB: &str = "mongodb";
/// The name of the StatefulSet's claim template, mounted at `/data/db`.
pub const MONGODB_DATA: &str = "data";
/// MongoDB's claim, made by its StatefulSet from its claim template (`MONGODB_DATA`) for
/// its one pod.
pub const MONGODB_CLAIM: &str = "data-mongodb-0";
/// The `local` PersistentVolume behind [`MONGODB_CLAIM`] on a cluster without a dynamic
/// provisioner (setup with `local_volume_root`, or a global with `--local-volume-root`).
pub const MONGODB_VOLUME: &str = "framedb-config-mongodb-data";
/// The Secret holding MongoDB's root user (`username`) and password (`password`).
pub const MONGODB_SECRET: &str = "framedb-config-mongodb";
/// MongoDB's root user, which the local service connects as.
pub const MONGODB_USER: &str = "framedb";
/// The port MongoDB listens on.
pub const MONGODB_PORT: i32 = 27017;
/// The directory under the local volume root that holds the registry (followed by
/// `-{uid}` of the installation's MongoDB Secret): instance ids start with a letter, so
/// no instance's `{root}/{id}` can be this one.
pub const LOCAL_DIRECTORY: &str = ".framedb-config-mongodb";

/// The claim of the version before the StatefulSet (a `hostPath` volume behind a
/// Deployment), which setup retires and remove deletes.
pub const LEGACY_CLAIM: &str = "mongodb-data";
/// The `hostPath` PersistentVolume of that version.
pub const LEGACY_VOLUME: &str = "framedb-config-mongodb";

/// The uid and gid `mongod` runs as in the official image (user `mongodb`): the pod runs
/// as them from the start, so the entrypoint needs no root and no capability to switch.
const MONGODB_UID: i64 = 999;
/// The node label every kubelet sets to its host name, which `local` volumes pin by.
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// Where MongoDB's registry lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MongoStorage {
    /// A claim of this storage class (the cluster's default when `None`).
    Dynamic(Option<String>),
    /// A `local` volume at this directory of one node, pinned to it (by its
    /// `kubernetes.io/hostname` label value).
    Local {
        /// The directory on the node.
        path: String,
        /// The node's `kubernetes.io/hostname`.
        host: String,
    },
}

/// What the StatefulSet is made of, besides the cluster's names.
pub struct Shape<'a> {
    /// The MongoDB image.
    pub image: &'a str,
    /// The claim's size (a Kubernetes quantity).
    pub size: &'a str,
    /// Where the data lives.
    pub storage: &'a MongoStorage,
    /// The labels of every object and of the pod.
    pub labels: BTreeMap<String, String>,
    /// The selector of the pod.
    pub selector: BTreeMap<String, String>,
    /// Pull secrets, as the instances' pods name them.
    pub pull_secrets: Option<Vec<k8s_openapi::api::core::v1::LocalObjectReference>>,
}

/// The memory `mongod` is given, as request and limit: a container without a limit may
/// take the node's memory, and one whose request is below its limit is evicted first.
/// WiredTiger's cache is set to fit inside it (`--wiredTigerCacheSizeGB`), with room for
/// connections and the probes' `mongosh`, which run in the container's cgroup.
pub const MONGODB_MEMORY: &str = "1Gi";
/// WiredTiger's cache, in GB: a quarter of [`MONGODB_MEMORY`], the official minimum.
const WIRED_TIGER_CACHE_GB: &str = "0.25";
/// The CPU `mongod` requests; not limited, as the instances' containers are not: a limit
/// only throttles a database that has idle cores beside it.
pub const MONGODB_CPU: &str = "250m";

/// The Secret with the root user and `password`; created once, never rewritten (see
/// `ConfigService::mongodb_secret`).
pub fn secret(meta: ObjectMeta, password: &str) -> Secret {
    Secret {
        metadata: meta,
        string_data: Some(BTreeMap::from([
            ("username".to_owned(), MONGODB_USER.to_owned()),
            ("password".to_owned(), password.to_owned()),
        ])),
        ..Secret::default()
    }
}

/// A reference to a key of [`MONGODB_SECRET`].
fn from_secret(key: &str) -> Option<EnvVarSource> {
    Some(EnvVarSource {
        secret_key_ref: Some(SecretKeySelector {
            name: MONGODB_SECRET.into(),
            key: key.into(),
            optional: Some(false),
        }),
        ..EnvVarSource::default()
    })
}

/// The local service's environment that reaches MongoDB: the password from the Secret,
/// then the URI, into which the kubelet expands `$(FRAMEDB_MONGO_PASSWORD)` (a dependent
/// environment variable: one defined earlier in the list), so the password is in no
/// spec. The password is URL-safe base64 (letters, digits, `-`, `_`: unreserved in a
/// URI), so it needs no percent-encoding in the URI's user information.
pub fn client_env(namespace: &str) -> Vec<EnvVar> {
    vec![
        EnvVar {
            name: "FRAMEDB_MONGO_PASSWORD".into(),
            value: None,
            value_from: from_secret("password"),
        },
        EnvVar {
            name: "FRAMEDB_MONGO_URI".into(),
            // `NAME.NAMESPACE.svc` resolves through the pod's DNS search path whatever
            // the cluster's domain (not every cluster is `cluster.local`).
            value: Some(format!(
                "mongodb://{MONGODB_USER}:$(FRAMEDB_MONGO_PASSWORD)@{MONGODB}.{namespace}.svc:\
                 {MONGODB_PORT}/?authSource=admin"
            )),
            value_from: None,
        },
    ]
}

/// The `local` PersistentVolume of `storage` (a [`MongoStorage::Local`]), pre-bound to
/// [`MONGODB_CLAIM`]: `Retain`, so that deleting the claim never deletes the registry's
/// directory, and pinned to its node, so that the pod always goes where the data is.
pub fn local_volume(
    meta: ObjectMeta,
    namespace: &str,
    size: &str,
    path: &str,
    host: &str,
) -> PersistentVolume {
    PersistentVolume {
        metadata: meta,
        spec: Some(PersistentVolumeSpec {
            capacity: Some(storage(size)),
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            persistent_volume_reclaim_policy: Some("Retain".into()),
            storage_class_name: Some(String::new()),
            local: Some(LocalVolumeSource {
                path: path.to_owned(),
                fs_type: None,
            }),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: HOSTNAME_LABEL.into(),
                            operator: "In".into(),
                            values: Some(vec![host.to_owned()]),
                        }]),
                        match_fields: None,
                    }],
                }),
            }),
            claim_ref: Some(ObjectReference {
                namespace: Some(namespace.to_owned()),
                name: Some(MONGODB_CLAIM.into()),
                ..ObjectReference::default()
            }),
            ..PersistentVolumeSpec::default()
        }),
        status: None,
    }
}

/// A `local` volume's directory and the host it is pinned to.
pub fn local_of(volume: &PersistentVolume) -> Option<(String, String)> {
    let path = volume.spec.as_ref()?.local.as_ref()?.path.clone();
    Some((path, pinned_host(volume)?))
}

/// The host a `local` volume is pinned to, from its node affinity.
fn pinned_host(volume: &PersistentVolume) -> Option<String> {
    let terms = &volume
        .spec
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_expressions.as_deref().unwrap_or_default())
        .find(|e| e.key == HOSTNAME_LABEL && e.operator == "In")
        .and_then(|e| e.values.as_ref()?.first().cloned())
}

/// The host (its `kubernetes.io/hostname`) a new `local` volume goes on: the first node
/// by name that is Ready, not cordoned and without a `NoSchedule` or `NoExecute` taint
/// (a control-plane node's, a node going down), so that MongoDB can run there now.
pub fn first_schedulable_host(nodes: &[Node]) -> Option<String> {
    let mut usable: Vec<&Node> = nodes
        .iter()
        .filter(|node| {
            let spec = node.spec.as_ref();
            let cordoned = spec.and_then(|s| s.unschedulable).unwrap_or(false);
            let tainted = spec
                .and_then(|s| s.taints.as_deref())
                .unwrap_or_default()
                .iter()
                .any(|t| matches!(t.effect.as_str(), "NoSchedule" | "NoExecute"));
            let ready = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_deref())
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready && !cordoned && !tainted
        })
        .collect();
    usable.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let node = usable.first()?;
    let name = node.metadata.name.clone()?;
    Some(
        node.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(HOSTNAME_LABEL).cloned())
            .unwrap_or(name),
    )
}

fn storage(size: &str) -> BTreeMap<String, Quantity> {
    BTreeMap::from([("storage".to_owned(), Quantity(size.to_owned()))])
}

/// A container that may not gain privileges, keeps no Linux capabilities and runs as
/// `mongodb`: what Pod Security `restricted` asks of a container (the pod as a whole
/// meets it without local volumes; with them, its `hostPath` needs `privileged`).
fn hardened() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(MONGODB_UID),
        run_as_group: Some(MONGODB_UID),
        ..crate::objects::hardened()
    }
}

/// MongoDB's StatefulSet.
///
/// - One replica, `OrderedReady`, rolling updates: the controller deletes the pod and
///   makes its successor only once it is gone, so a new template never starts a second
///   `mongod` on the same data directory (the Deployment's `mongod.lock` deadlock).
/// - `volumeClaimTemplates` `data` at `/data/db` on `storage`'s class (the cluster's
///   default when none), or of no class, to bind the pre-bound `local` volume. Claims are
///   retained when the StatefulSet is deleted or scaled (the default, spelled out):
///   only an explicit delete of the claim (remove) lets the registry go.
/// - Authentication: the official image creates the root user from
///   `MONGO_INITDB_ROOT_USERNAME` / `_PASSWORD` on an empty data directory and then runs
///   `mongod --auth`; both come from the Secret.
/// - Probes: readiness asks `mongod` itself (`mongosh` `ping`, which needs no login), so
///   the Service sends nothing to a `mongod` still recovering its journal; liveness and
///   startup only open the port, since a `mongosh` every few seconds costs a Node.js
///   process in the container's memory, and restarting a `mongod` that answers TCP but is
///   slow (a long recovery, a heavy query) would only make it slower. The startup probe
///   allows five minutes for a journal recovery before liveness applies.
pub fn stateful_set(shape: &Shape<'_>, meta: ObjectMeta) -> StatefulSet {
    let (class, local) = match shape.storage {
        MongoStorage::Dynamic(class) => (class.clone(), None),
        MongoStorage::Local { path, .. } => (Some(String::new()), Some(path)),
    };
    let tcp = || TCPSocketAction {
        port: IntOrString::Int(MONGODB_PORT),
        host: None,
    };
    let mongod = Container {
        name: MONGODB.into(),
        image: Some(shape.image.to_owned()),
        args: Some(vec![
            "--wiredTigerCacheSizeGB".into(),
            WIRED_TIGER_CACHE_GB.into(),
        ]),
        env: Some(vec![
            EnvVar {
                name: "MONGO_INITDB_ROOT_USERNAME".into(),
                value: None,
                value_from: from_secret("username"),
            },
            EnvVar {
                name: "MONGO_INITDB_ROOT_PASSWORD".into(),
                value: None,
                value_from: from_secret("password"),
            },
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("mongodb".into()),
            container_port: MONGODB_PORT,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        volume_mounts: Some(vec![VolumeMount {
            name: MONGODB_DATA.into(),
            mount_path: "/data/db".into(),
            ..VolumeMount::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), Quantity(MONGODB_CPU.into())),
                ("memory".to_owned(), Quantity(MONGODB_MEMORY.into())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_owned(),
                Quantity(MONGODB_MEMORY.into()),
            )])),
            ..ResourceRequirements::default()
        }),
        readiness_probe: Some(Probe {
            exec: Some(ExecAction {
                command: Some(vec![
                    "mongosh".into(),
                    "--quiet".into(),
                    "--eval".into(),
                    "db.adminCommand('ping')".into(),
                ]),
            }),
            period_seconds: Some(10),
            timeout_seconds: Some(5),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        liveness_probe: Some(Probe {
            tcp_socket: Some(tcp()),
            period_seconds: Some(10),
            timeout_seconds: Some(5),
            failure_threshold: Some(6),
            ..Probe::default()
        }),
        startup_probe: Some(Probe {
            tcp_socket: Some(tcp()),
            period_seconds: Some(10),
            failure_threshold: Some(30),
            ..Probe::default()
        }),
        security_context: Some(hardened()),
        ..Container::default()
    };
    let mut pod = PodSpec {
        containers: vec![mongod],
        automount_service_account_token: Some(false),
        image_pull_secrets: shape.pull_secrets.clone(),
        security_context: Some(PodSecurityContext {
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            run_as_non_root: Some(true),
            // The claim's files belong to `mongodb`'s group, so `mongod` can write to a
            // fresh volume; checked on the root only, so a big registry mounts fast.
            fs_group: Some(MONGODB_UID),
            fs_group_change_policy: Some("OnRootMismatch".into()),
            ..PodSecurityContext::default()
        }),
        ..PodSpec::default()
    };
    if let Some(path) = local {
        // A `local` volume's directory must exist before it mounts; the kubelet makes a
        // `hostPath` `DirectoryOrCreate` (of exactly that directory) for a container that
        // mounts it, so this init container mounts it and does nothing else. The kubelet
        // retries the `local` mount until the directory is there, then gives it
        // `mongodb`'s group (fsGroup; a hostPath would not get it).
        pod.init_containers = Some(vec![Container {
            name: "data-directory".into(),
            image: Some(shape.image.to_owned()),
            command: Some(vec!["true".into()]),
            volume_mounts: Some(vec![VolumeMount {
                name: "data-directory".into(),
                mount_path: "/data-directory".into(),
                ..VolumeMount::default()
            }]),
            resources: Some(ResourceRequirements {
                requests: Some(BTreeMap::from([
                    ("cpu".to_owned(), Quantity("10m".into())),
                    ("memory".to_owned(), Quantity("32Mi".into())),
                ])),
                limits: Some(BTreeMap::from([(
                    "memory".to_owned(),
                    Quantity("32Mi".into()),
                )])),
                ..ResourceRequirements::default()
            }),
            security_context: Some(hardened()),
            ..Container::default()
        }]);
        pod.volumes = Some(vec![Volume {
            name: "data-directory".into(),
            host_path: Some(HostPathVolumeSource {
                path: path.clone(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            ..Volume::default()
        }]);
    }
    StatefulSet {
        metadata: meta,
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(MONGODB.into()),
            pod_management_policy: Some("OrderedReady".into()),
            selector: LabelSelector {
                match_labels: Some(shape.selector.clone()),
                match_expressions: None,
            },
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".into()),
                    when_scaled: Some("Retain".into()),
                },
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(shape.labels.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(MONGODB_DATA.into()),
                    labels: Some(shape.labels.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(storage(shape.size)),
                        limits: None,
                    }),
                    storage_class_name: class,
                    ..PersistentVolumeClaimSpec::default()
                }),
                status: None,
            }]),
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

/// The size and class of an existing StatefulSet's claim template: its templates cannot
/// change (the API refuses with 422), so a setup run again keeps them.
pub fn installed_template(set: &StatefulSet) -> Option<(String, Option<String>)> {
    let template = set
        .spec
        .as_ref()?
        .volume_claim_templates
        .as_ref()?
        .first()?;
    let spec = template.spec.as_ref()?;
    let size = spec.resources.as_ref()?.requests.as_ref()?.get("storage")?;
    Some((size.0.clone(), spec.storage_class_name.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uri_names_the_password_only_as_a_variable() {
        let env = client_env("framedb-config");
        assert_eq!(env[0].name, "FRAMEDB_MONGO_PASSWORD");
        assert!(env[0].value.is_none());
        assert_eq!(
            env[1].value.as_deref(),
            Some(
                "mongodb://framedb:$(FRAMEDB_MONGO_PASSWORD)@mongodb.framedb-config.svc:27017/\
                 ?authSource=admin"
            )
        );
    }

    #[test]
    fn a_new_local_volume_goes_on_the_first_ready_schedulable_node() {
        let node = |name: &str, ready: &str, cordoned: bool, taint: Option<&str>| -> Node {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "labels": {HOSTNAME_LABEL: format!("host-{name}")}},
                "spec": {
                    "unschedulable": cordoned,
                    "taints": taint.map(|effect| vec![serde_json::json!({"key": "k", "effect": effect})]),
                },
                "status": {"conditions": [{"type": "Ready", "status": ready}]},
            }))
            .unwrap()
        };
        let nodes = [
            node("d", "True", false, None),
            node("a", "False", false, None),
            node("b", "True", true, None),
            node("c", "True", false, Some("NoSchedule")),
            node("e", "True", false, Some("PreferNoSchedule")),
        ];
        assert_eq!(first_schedulable_host(&nodes).as_deref(), Some("host-d"));
        assert_eq!(first_schedulable_host(&nodes[1..4]), None);
    }
}
