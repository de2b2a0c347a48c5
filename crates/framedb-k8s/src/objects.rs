//! The Kubernetes objects of one persistent instance (docs/architecture.md, "Kubernetes
//! objects"), built as values so that they can be checked without a cluster: the PVC
//! (and, without a dynamic provisioner, the local PV), the single-replica StatefulSet
//! running PD, TiKV and TiDB, the NodePort Service, the Secret holding the root password,
//! and the NetworkPolicy that admits only TiDB's MySQL port.
//!
//! The instance is locked down from its first start: PD and TiKV listen on loopback only
//! (the three components share the pod), the policy keeps every other pod off every port
//! but MySQL, and tidb-server's `--initialize-sql-file` sets the root password from the
//! Secret when it bootstraps the cluster, so `root` never runs without one.

use std::collections::BTreeMap;

use framedb_core::{Credentials, DeploymentSpec};
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, ExecAction,
    HTTPGetAction, HostPathVolumeSource, KeyToPath, LocalObjectReference, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, ObjectReference, PersistentVolume,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource,
    PersistentVolumeSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, Secret, SecretVolumeSource, SecurityContext, Service,
    ServicePort, ServiceSpec, Volume, VolumeMount, VolumeNodeAffinity, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Label keys every FrameDB object carries.
pub mod labels {
    /// `tidb` on every instance object.
    pub const NAME: &str = "app.kubernetes.io/name";
    /// The `framedb_id`.
    pub const INSTANCE: &str = "app.kubernetes.io/instance";
    /// `framedb`.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// The `cluster_id`.
    pub const CLUSTER_ID: &str = "framedb.io/cluster-id";
}

/// TiDB's MySQL port, the Service's port and target.
pub const MYSQL_PORT: i32 = 4000;
/// TiDB's status port; `GET /status` there is the readiness check.
pub const TIDB_STATUS_PORT: i32 = 10080;
/// The key of the credentials Secret that holds the root password.
pub const PASSWORD_KEY: &str = "password";
/// The key of the credentials Secret that holds the SQL tidb-server runs at bootstrap.
pub const INIT_SQL_KEY: &str = "init.sql";
/// Where the tidb container finds [`INIT_SQL_KEY`].
pub const CREDENTIALS_DIR: &str = "/etc/framedb/credentials";
/// The label selector of every instance FrameDB manages.
pub const MANAGED_SELECTOR: &str =
    "app.kubernetes.io/name=tidb,app.kubernetes.io/managed-by=framedb";

/// Where an instance's volume comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// A dynamically provisioned volume of this storage class (the cluster's default when
    /// `None`).
    Dynamic {
        /// The storage class.
        storage_class: Option<String>,
    },
    /// A `local` PersistentVolume at `{root}/{framedb_id}` on the instance's node, for
    /// clusters without a dynamic provisioner.
    Local {
        /// The directory on each node under which volumes live.
        root: String,
    },
}

/// How instances are laid out on a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The namespace of every instance (`framedb-storage`).
    pub namespace: String,
    /// Image repository prefix for `pd`, `tikv` and `tidb` (`docker.io/pingcap`).
    pub image_prefix: String,
    /// The TiDB release all three images run (`v8.5.1`).
    pub tidb_version: String,
    /// The node label whose value is `node_id` (`kubernetes.io/hostname`).
    pub node_label: String,
    /// Where volumes come from.
    pub storage: Storage,
    /// The CPU and memory each component asks for.
    pub resources: Profile,
    /// Secrets (in the instances' namespace, made by the cluster's operator) that let the
    /// kubelet pull the images from a private registry.
    pub image_pull_secrets: Vec<String>,
    /// The image of the short-lived pods that empty purged local volumes
    /// ([`DEFAULT_HELPER_IMAGE`]); used with [`Storage::Local`] only.
    pub helper_image: String,
}

/// The helper image by default: a small, well-known image that has `find`.
pub const DEFAULT_HELPER_IMAGE: &str = "docker.io/library/busybox:1.36";

impl Default for Layout {
    fn default() -> Self {
        Self {
            namespace: "framedb-storage".into(),
            image_prefix: "docker.io/pingcap".into(),
            tidb_version: "v8.5.1".into(),
            node_label: "kubernetes.io/hostname".into(),
            storage: Storage::Dynamic {
                storage_class: None,
            },
            resources: Profile::Small,
            image_pull_secrets: Vec::new(),
            helper_image: DEFAULT_HELPER_IMAGE.into(),
        }
    }
}

/// The CPU and memory of an instance's components (docs/architecture.md, "Pod
/// configuration and resources"): each container requests its CPU and requests and is
/// limited to its memory, so the pod is never `BestEffort`, the scheduler places it by
/// what it uses, and TiKV sizes its block cache from its own limit rather than the node's
/// memory. CPU is not limited: a limit only throttles a database that has idle cores
/// beside it.
///
/// | profile | PD | TiKV | TiDB | a pod |
/// |---|---|---|---|---|
/// | small | 250m / 512Mi | 500m / 2Gi | 500m / 1Gi | 3.5Gi |
/// | medium | 500m / 1Gi | 1 / 4Gi | 1 / 2Gi | 7Gi |
/// | large | 1 / 2Gi | 2 / 8Gi | 2 / 4Gi | 14Gi |
pub use framedb_core::ResourceProfile as Profile;

/// Mebibytes.
const MIB: u64 = 1 << 20;
/// Gibibytes.
const GIB: u64 = 1 << 30;

/// (CPU in millicores, memory in bytes) of `component` (`pd`, `tikv`, `tidb`) in
/// `profile`.
fn share(profile: Profile, component: &str) -> (u32, u64) {
    let scale = match profile {
        Profile::Small => 1,
        Profile::Medium => 2,
        Profile::Large => 4,
    };
    let (cpu, memory) = match component {
        "pd" => (250, 512 * MIB),
        "tikv" => (500, 2 * GIB),
        _ => (500, GIB),
    };
    (cpu * scale, memory * u64::from(scale))
}

/// The requests and limits of `component` in `profile`.
fn requirements(profile: Profile, component: &str) -> ResourceRequirements {
    let (cpu, memory) = share(profile, component);
    let memory = Quantity(format!("{}Mi", memory / MIB));
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity(format!("{cpu}m"))),
            ("memory".to_owned(), memory.clone()),
        ])),
        limits: Some(BTreeMap::from([("memory".to_owned(), memory)])),
        ..ResourceRequirements::default()
    }
}

/// PD's configuration: this instance has one TiKV store, so one replica of each region
/// is all there can be (the default, 3, would leave every region under-replicated and
/// PD scheduling replicas that can never be placed).
pub fn pd_config() -> String {
    "[replication]\nmax-replicas = 1\n".to_owned()
}

/// TiKV's configuration for a volume of `capacity` bytes and a memory limit of `memory`
/// bytes. TiKV's defaults assume a large dedicated disk: it keeps 5 GiB
/// (`storage.reserve-space`) and 1 GiB (`reserve-raft-space`) free and refuses writes
/// below that, so on a small volume it is "disk full" from the start. Here the
/// reservations are 5% and 2.5% of the volume (at least 32 MiB and 16 MiB, at most
/// TiKV's defaults), the write-ahead logs are held to an eighth and a quarter of it, and
/// the block cache takes 45% of the memory limit, TiKV's own share of a host's memory.
pub fn tikv_config(capacity: u64, memory: u64) -> String {
    let reserve = (capacity / 20).clamp(32 * MIB, 5 * GIB);
    let reserve_raft = (capacity / 40).clamp(16 * MIB, GIB);
    let wal = (capacity / 8).min(4 * GIB);
    let raft_purge = (capacity / 4).min(10 * GIB);
    let raft_file = (capacity / 32).clamp(8 * MIB, 128 * MIB);
    let cache = memory / 100 * 45;
    format!(
        "[storage]\nreserve-space = \"{}MiB\"\nreserve-raft-space = \"{}MiB\"\n\n\
         [storage.block-cache]\ncapacity = \"{}MiB\"\n\n\
         [rocksdb]\nmax-total-wal-size = \"{}MiB\"\n\n\
         [raft-engine]\npurge-threshold = \"{}MiB\"\ntarget-file-size = \"{}MiB\"\n",
        reserve / MIB,
        reserve_raft / MIB,
        cache / MIB,
        wal / MIB,
        raft_purge / MIB,
        raft_file / MIB,
    )
}

/// The name of the instance's configuration ConfigMap.
pub fn config_name(id: &str) -> String {
    format!("{id}-config")
}

/// Where PD and TiKV read their configuration files.
pub const CONFIG_DIR: &str = "/etc/framedb/config";

/// How long the components have to stop after SIGTERM: TiKV flushes its memtables and
/// closes its raft engine, which can outlast the default 30 s on a busy store. The pod
/// goes as soon as all three have exited; this is only the bound.
pub const TERMINATION_GRACE_SECONDS: i64 = 60;

/// The objects of one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceObjects {
    /// The local PV, with [`Storage::Local`] only.
    pub volume: Option<PersistentVolume>,
    /// `{id}-data`.
    pub claim: PersistentVolumeClaim,
    /// `{id}`.
    pub statefulset: StatefulSet,
    /// `{id}`, NodePort.
    pub service: Service,
    /// `{id}`: only TiDB's MySQL port admits traffic from outside the pod.
    pub network_policy: NetworkPolicy,
    /// `{id}-config`: PD's and TiKV's configuration files.
    pub config: ConfigMap,
}

/// Annotation keys every FrameDB instance object carries: who made it (the create's
/// stamp) and what its record says, so that an object is never taken for another
/// create's and a record can be rebuilt from the cluster.
pub mod annotations {
    /// The stamp of the create that made the object.
    pub const STAMP: &str = "framedb.io/stamp";
    /// The instance's node.
    pub const NODE: &str = "framedb.io/node-id";
    /// The instance's volume size.
    pub const STORAGE_SIZE: &str = "framedb.io/storage-size";
    /// The instance's deletion policy.
    pub const DELETION_POLICY: &str = "framedb.io/deletion-policy";
    /// When the instance was registered.
    pub const CREATED_AT: &str = "framedb.io/created-at";
    /// The resource profile the create asked for (absent: the layout's default).
    pub const RESOURCES: &str = "framedb.io/resources";
    /// On the workload: the caller's metadata, as JSON (at most 64 KiB, within
    /// Kubernetes' 256 KiB of annotations).
    pub const METADATA: &str = "framedb.io/metadata";
    /// On a volume (or its credentials) a create took back: the stamp that retained it,
    /// so that undoing that create retains it again instead of deleting it.
    pub const REATTACHED_FROM: &str = "framedb.io/reattached-from";
    /// On a local volume, `true` once its directory was made on its node (and so may hold
    /// data): written before the instance's StatefulSet is, so a volume without it was
    /// never mounted, and its removal has no directory to empty.
    pub const DIRECTORY_PREPARED: &str = "framedb.io/directory-prepared";
    /// On a local PersistentVolume: the stamp of the removal that emptied it.
    pub const WIPED: &str = "framedb.io/wiped";
}

/// The label that marks a volume (and its credentials) that a deleted instance retained
/// for its id, with the value `true`.
pub const RETAINED: &str = "framedb.io/retained";

/// The annotations of every object of an instance.
pub fn instance_annotations(spec: &DeploymentSpec) -> BTreeMap<String, String> {
    let mut noted = BTreeMap::from([
        (
            annotations::STAMP.to_owned(),
            spec.stamp.as_str().to_owned(),
        ),
        (annotations::NODE.to_owned(), spec.node_id.to_string()),
        (
            annotations::STORAGE_SIZE.to_owned(),
            spec.storage_size.as_str().to_owned(),
        ),
        (
            annotations::DELETION_POLICY.to_owned(),
            spec.deletion_policy.as_str().to_owned(),
        ),
        (
            annotations::CREATED_AT.to_owned(),
            spec.created_at.to_string(),
        ),
    ]);
    if let Some(profile) = spec.resources {
        noted.insert(annotations::RESOURCES.to_owned(), profile.to_string());
    }
    noted
}

/// The instances' namespace `name`: FrameDB's, and under Pod Security Admission's
/// `baseline` level, so that whoever may create workloads there (the local service) cannot
/// run privileged or host-path pods.
pub fn instance_namespace(name: &str) -> k8s_openapi::api::core::v1::Namespace {
    k8s_openapi::api::core::v1::Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([
                (labels::MANAGED_BY.to_owned(), "framedb".to_owned()),
                (
                    "pod-security.kubernetes.io/enforce".to_owned(),
                    "baseline".to_owned(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        ..Default::default()
    }
}

/// The name of instance `id`'s wipe pod, `{id}-volume-wipe`, so that a retry (or a run
/// after a crash) finds the one left behind.
pub fn wipe_pod_name(id: &str) -> String {
    format!("{id}-volume-wipe")
}

/// `app.kubernetes.io/name` of the wipe pods.
pub const HELPER_NAME: &str = "framedb-volume-helper";

/// Where a wipe pod mounts the volume.
pub const HELPER_MOUNT: &str = "/volume";

/// The labels of every object of an instance.
pub fn instance_labels(spec: &DeploymentSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::NAME.to_owned(), "tidb".to_owned()),
        (labels::INSTANCE.to_owned(), spec.framedb_id.to_string()),
        (labels::MANAGED_BY.to_owned(), "framedb".to_owned()),
        (labels::CLUSTER_ID.to_owned(), spec.cluster_id.to_string()),
    ])
}

/// The name of the instance's PVC (and local PV).
pub fn claim_name(id: &str) -> String {
    format!("{id}-data")
}

/// The name of the instance's credentials Secret.
pub fn credentials_name(id: &str) -> String {
    format!("{id}-credentials")
}

/// The SQL that sets the root password at bootstrap. The password is URL-safe base64
/// ([`Credentials::root`] refuses anything else), so quoting it needs no escaping.
pub fn init_sql(credentials: &Credentials) -> String {
    format!(
        "ALTER USER '{}'@'%' IDENTIFIED BY '{}';\n",
        credentials.user(),
        credentials.password()
    )
}

/// The selector of the instance's pods: the StatefulSet's, the Service's and the
/// NetworkPolicy's.
fn pod_selector(id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::NAME.to_owned(), "tidb".to_owned()),
        (labels::INSTANCE.to_owned(), id.to_owned()),
    ])
}

impl Layout {
    /// Every object of the instance `spec` describes.
    pub fn objects(&self, spec: &DeploymentSpec) -> InstanceObjects {
        InstanceObjects {
            volume: self.volume(spec),
            claim: self.claim(spec),
            statefulset: self.statefulset(spec),
            service: self.service(spec),
            network_policy: self.network_policy(spec),
            config: self.config_map(spec),
        }
    }

    /// PD's and TiKV's configuration files, sized to the instance's volume and TiKV's
    /// memory limit.
    fn config_map(&self, spec: &DeploymentSpec) -> ConfigMap {
        let (_, tikv_memory) = share(self.profile(spec), "tikv");
        ConfigMap {
            metadata: self.meta(config_name(spec.framedb_id.as_str()), spec, true),
            data: Some(BTreeMap::from([
                ("pd.toml".to_owned(), pd_config()),
                (
                    "tikv.toml".to_owned(),
                    tikv_config(spec.storage_size.bytes(), tikv_memory),
                ),
            ])),
            ..ConfigMap::default()
        }
    }

    /// Every object a create of `spec` makes on its cluster, as a `v1` `List` that
    /// `kubectl apply -f` takes, in an order that applies: the instances' namespace, the
    /// Service (made first: it reserves the port), with [`Storage::Local`] the
    /// PersistentVolume on the node's directory, then what a create makes together: the
    /// credentials Secret (holding `credentials`), the ConfigMap, the NetworkPolicy, the
    /// claim and the StatefulSet.
    pub fn manifests(&self, spec: &DeploymentSpec, credentials: &Credentials) -> serde_json::Value {
        fn item<K: serde::Serialize>(object: &K) -> serde_json::Value {
            serde_json::to_value(object).unwrap_or_default()
        }
        let objects = self.objects(spec);
        let mut items = vec![
            item(&instance_namespace(&self.namespace)),
            item(&objects.service),
        ];
        items.extend(objects.volume.as_ref().map(item));
        items.extend([
            item(&self.credentials_secret(spec, credentials)),
            item(&objects.config),
            item(&objects.network_policy),
            item(&objects.claim),
        ]);
        items.push(item(&objects.statefulset));
        serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": items })
    }

    /// The instance's credentials Secret: the password, and the SQL that installs it.
    /// It is created once, at the first deploy, and never rewritten (see the deployer).
    pub fn credentials_secret(&self, spec: &DeploymentSpec, credentials: &Credentials) -> Secret {
        Secret {
            metadata: self.meta(credentials_name(spec.framedb_id.as_str()), spec, true),
            type_: Some("Opaque".into()),
            string_data: Some(BTreeMap::from([
                (PASSWORD_KEY.to_owned(), credentials.password().to_owned()),
                (INIT_SQL_KEY.to_owned(), init_sql(credentials)),
            ])),
            ..Secret::default()
        }
    }

    /// Admits traffic to the instance's pods on TiDB's MySQL port only: PD, TiKV and
    /// TiDB's status port are then out of other pods' reach even where a component
    /// listens on more than loopback.
    fn network_policy(&self, spec: &DeploymentSpec) -> NetworkPolicy {
        let id = spec.framedb_id.as_str();
        NetworkPolicy {
            metadata: self.meta(id.to_owned(), spec, true),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector {
                    match_labels: Some(pod_selector(id)),
                    match_expressions: None,
                }),
                policy_types: Some(vec!["Ingress".into()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: None,
                    ports: Some(vec![NetworkPolicyPort {
                        protocol: Some("TCP".into()),
                        port: Some(IntOrString::Int(MYSQL_PORT)),
                        end_port: None,
                    }]),
                }]),
                egress: None,
            }),
        }
    }

    /// The workload's metadata: the instance's, and the caller's data, so that the
    /// instance's record can be rebuilt from the cluster.
    fn workload_meta(&self, spec: &DeploymentSpec) -> ObjectMeta {
        let mut meta = self.meta(spec.framedb_id.to_string(), spec, true);
        if let (Some(annotations), Ok(data)) = (
            meta.annotations.as_mut(),
            serde_json::to_string(&spec.metadata),
        ) {
            annotations.insert(annotations::METADATA.to_owned(), data);
        }
        meta
    }

    fn meta(&self, name: String, spec: &DeploymentSpec, namespaced: bool) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: namespaced.then(|| self.namespace.clone()),
            labels: Some(instance_labels(spec)),
            annotations: Some(instance_annotations(spec)),
            ..ObjectMeta::default()
        }
    }

    fn storage_request(spec: &DeploymentSpec) -> BTreeMap<String, Quantity> {
        BTreeMap::from([(
            "storage".to_owned(),
            Quantity(spec.storage_size.as_str().to_owned()),
        )])
    }

    fn volume(&self, spec: &DeploymentSpec) -> Option<PersistentVolume> {
        if !matches!(self.storage, Storage::Local { .. }) {
            return None;
        }
        let name = claim_name(spec.framedb_id.as_str());
        let on_node = NodeSelectorRequirement {
            key: self.node_label.clone(),
            operator: "In".into(),
            values: Some(vec![spec.node_id.to_string()]),
        };
        Some(PersistentVolume {
            metadata: self.meta(name.clone(), spec, false),
            spec: Some(PersistentVolumeSpec {
                capacity: Some(Self::storage_request(spec)),
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                persistent_volume_reclaim_policy: Some("Retain".into()),
                storage_class_name: Some(String::new()),
                // The kubelet makes the directory when it mounts the volume
                // (`DirectoryOrCreate`), so nothing has to run on the node first; a
                // PersistentVolume's source is not the pod's, so Pod Security `baseline`
                // (which refuses a pod's `hostPath`) lets the instance's pod use it.
                host_path: Some(HostPathVolumeSource {
                    path: self.volume_path(spec.framedb_id.as_str())?,
                    type_: Some("DirectoryOrCreate".into()),
                }),
                node_affinity: Some(VolumeNodeAffinity {
                    required: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_expressions: Some(vec![on_node]),
                            match_fields: None,
                        }],
                    }),
                }),
                // Reserve the volume for this claim alone.
                claim_ref: Some(ObjectReference {
                    namespace: Some(self.namespace.clone()),
                    name: Some(name),
                    ..ObjectReference::default()
                }),
                ..PersistentVolumeSpec::default()
            }),
            status: None,
        })
    }

    fn claim(&self, spec: &DeploymentSpec) -> PersistentVolumeClaim {
        let name = claim_name(spec.framedb_id.as_str());
        let (storage_class_name, volume_name) = match &self.storage {
            Storage::Dynamic { storage_class } => (storage_class.clone(), None),
            Storage::Local { .. } => (Some(String::new()), Some(name.clone())),
        };
        PersistentVolumeClaim {
            metadata: self.meta(name, spec, true),
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(Self::storage_request(spec)),
                    limits: None,
                }),
                storage_class_name,
                volume_name,
                ..PersistentVolumeClaimSpec::default()
            }),
            status: None,
        }
    }

    /// The resource profile of an instance: its create's, else the layout's default.
    fn profile(&self, spec: &DeploymentSpec) -> Profile {
        spec.resources.unwrap_or(self.resources)
    }

    /// The images instances of this layout run: PD, TiKV and TiDB at its TiDB release.
    pub fn images(&self) -> [String; 3] {
        ["pd", "tikv", "tidb"].map(|component| self.image(component))
    }

    /// The directory of instance `id`'s local volume on its node, `{root}/{id}`; `None`
    /// without [`Storage::Local`]. The id's characters (lower-case letters, digits and
    /// `-`) and the root's check (`config_service::check_volume_root`) keep it under the
    /// root.
    pub fn volume_path(&self, id: &str) -> Option<String> {
        let Storage::Local { root } = &self.storage else {
            return None;
        };
        Some(format!("{}/{id}", root.trim_end_matches('/')))
    }

    /// The pod that empties instance `id`'s local volume (`{root}/{id}` on its node)
    /// before a removal deletes it, stamped `stamp` by that removal of cluster `cluster`;
    /// `None` without [`Storage::Local`]. It mounts the instance's own claim, in the
    /// instances' namespace (no `hostPath` of its own, so Pod Security `baseline` admits
    /// it), and lands where the volume is; it runs once (`restartPolicy: Never`), holds no
    /// service account token, and is hardened as the instance's containers are. It runs
    /// as root, with no capability, to remove what the components (root in their images)
    /// wrote.
    pub fn wipe_pod(
        &self,
        id: &str,
        cluster: &str,
        stamp: &framedb_core::Stamp,
    ) -> Option<k8s_openapi::api::core::v1::Pod> {
        use k8s_openapi::api::core::v1::Pod;
        self.volume_path(id)?;
        let quantity = |q: &str| Quantity(q.to_owned());
        let container = Container {
            name: "wipe".into(),
            image: Some(self.helper_image.clone()),
            command: Some(
                ["find", HELPER_MOUNT, "-mindepth", "1", "-delete"]
                    .map(String::from)
                    .to_vec(),
            ),
            volume_mounts: Some(vec![VolumeMount {
                name: "volume".into(),
                mount_path: HELPER_MOUNT.into(),
                ..VolumeMount::default()
            }]),
            resources: Some(ResourceRequirements {
                requests: Some(BTreeMap::from([
                    ("cpu".to_owned(), quantity("10m")),
                    ("memory".to_owned(), quantity("16Mi")),
                ])),
                limits: Some(BTreeMap::from([
                    ("cpu".to_owned(), quantity("100m")),
                    ("memory".to_owned(), quantity("64Mi")),
                ])),
                ..ResourceRequirements::default()
            }),
            security_context: Some(SecurityContext {
                read_only_root_filesystem: Some(true),
                ..hardened()
            }),
            ..Container::default()
        };
        Some(Pod {
            metadata: ObjectMeta {
                name: Some(wipe_pod_name(id)),
                namespace: Some(self.namespace.clone()),
                labels: Some(BTreeMap::from([
                    (labels::NAME.to_owned(), HELPER_NAME.to_owned()),
                    (labels::INSTANCE.to_owned(), id.to_owned()),
                    (labels::MANAGED_BY.to_owned(), "framedb".to_owned()),
                    (labels::CLUSTER_ID.to_owned(), cluster.to_owned()),
                ])),
                annotations: Some(BTreeMap::from([(
                    annotations::STAMP.to_owned(),
                    stamp.as_str().to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                containers: vec![container],
                restart_policy: Some("Never".into()),
                automount_service_account_token: Some(false),
                termination_grace_period_seconds: Some(1),
                image_pull_secrets: pull_secrets(&self.image_pull_secrets),
                security_context: Some(PodSecurityContext {
                    run_as_user: Some(0),
                    run_as_group: Some(0),
                    run_as_non_root: Some(false),
                    seccomp_profile: Some(SeccompProfile {
                        type_: "RuntimeDefault".into(),
                        localhost_profile: None,
                    }),
                    ..PodSecurityContext::default()
                }),
                volumes: Some(vec![Volume {
                    name: "volume".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: claim_name(id),
                        read_only: None,
                    }),
                    ..Volume::default()
                }]),
                ..PodSpec::default()
            }),
            status: None,
        })
    }

    fn image(&self, component: &str) -> String {
        format!("{}/{component}:{}", self.image_prefix, self.tidb_version)
    }

    fn statefulset(&self, spec: &DeploymentSpec) -> StatefulSet {
        let id = spec.framedb_id.as_str();
        let profile = self.profile(spec);
        let labels = instance_labels(spec);
        let selector = pod_selector(id);
        let port = |name: &str, port: i32| ContainerPort {
            name: Some(name.into()),
            container_port: port,
            ..ContainerPort::default()
        };
        let data = |sub_path: &str| VolumeMount {
            name: "data".into(),
            mount_path: format!("/data/{sub_path}"),
            sub_path: Some(sub_path.into()),
            ..VolumeMount::default()
        };
        let args = |items: &[&str]| Some(items.iter().map(|s| (*s).to_owned()).collect());
        let config = VolumeMount {
            name: "config".into(),
            mount_path: CONFIG_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        };
        // The three components share the pod's network, so they find each other on
        // loopback, and PD and TiKV listen there only: nothing outside the pod reaches
        // them (they would bypass SQL authentication). PD and TiKV keep their data in
        // sub-paths of the one volume.
        let pd = Container {
            name: "pd".into(),
            image: Some(self.image("pd")),
            command: args(&["/pd-server"]),
            args: args(&[
                "--name=pd",
                "--data-dir=/data/pd",
                "--client-urls=http://127.0.0.1:2379",
                "--advertise-client-urls=http://127.0.0.1:2379",
                "--peer-urls=http://127.0.0.1:2380",
                "--advertise-peer-urls=http://127.0.0.1:2380",
                &format!("--config={CONFIG_DIR}/pd.toml"),
            ]),
            ports: Some(vec![port("pd-client", 2379), port("pd-peer", 2380)]),
            volume_mounts: Some(vec![data("pd"), config.clone()]),
            resources: Some(requirements(profile, "pd")),
            security_context: Some(hardened()),
            // A native sidecar: TiKV starts once PD answers, and PD runs on beside
            // TiDB, stopped after it.
            restart_policy: Some("Always".into()),
            startup_probe: Some(probe(loopback_get(PD_PORT, PD_HEALTH, None), 2, 150)),
            readiness_probe: Some(probe(loopback_get(PD_PORT, PD_HEALTH, None), 5, 3)),
            liveness_probe: Some(probe(loopback_connect(PD_PORT), 10, 6)),
            ..Container::default()
        };
        let tikv = Container {
            name: "tikv".into(),
            image: Some(self.image("tikv")),
            command: args(&["/tikv-server"]),
            args: args(&[
                "--addr=127.0.0.1:20160",
                "--advertise-addr=127.0.0.1:20160",
                "--status-addr=127.0.0.1:20180",
                "--data-dir=/data/tikv",
                "--pd-endpoints=http://127.0.0.1:2379",
                &format!("--config={CONFIG_DIR}/tikv.toml"),
                // What TiKV tells PD it may fill: the volume, not the node's disk.
                &format!("--capacity={}MiB", spec.storage_size.bytes() / MIB),
            ]),
            ports: Some(vec![port("tikv", 20160), port("tikv-status", 20180)]),
            volume_mounts: Some(vec![data("tikv"), config]),
            resources: Some(requirements(profile, "tikv")),
            security_context: Some(hardened()),
            // A native sidecar too: TiDB starts once PD counts TiKV's store `Up` (a
            // listening port is not enough: TiDB's bootstrap needs the store), and TiKV
            // is ready while it stays so. A first start may replay a large log, hence
            // the long startup allowance.
            restart_policy: Some("Always".into()),
            startup_probe: Some(probe(store_up(), 2, 300)),
            readiness_probe: Some(probe(store_up(), 5, 3)),
            liveness_probe: Some(probe(loopback_connect(TIKV_STATUS_PORT), 10, 6)),
            ..Container::default()
        };
        let init_sql_flag = format!("--initialize-sql-file={CREDENTIALS_DIR}/{INIT_SQL_KEY}");
        let tidb = Container {
            name: "tidb".into(),
            image: Some(self.image("tidb")),
            command: args(&["/tidb-server"]),
            // The first bootstrap runs the Secret's SQL, which sets root's password.
            args: args(&[
                "--store=tikv",
                "--path=127.0.0.1:2379",
                "-P",
                "4000",
                "--status=10080",
                &init_sql_flag,
            ]),
            volume_mounts: Some(vec![VolumeMount {
                name: "credentials".into(),
                mount_path: CREDENTIALS_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            }]),
            ports: Some(vec![
                port("mysql", MYSQL_PORT),
                port("status", TIDB_STATUS_PORT),
            ]),
            // TiDB's status port listens on the pod's address, where the kubelet's
            // own HTTP probes reach. Its first start bootstraps the cluster.
            startup_probe: Some(probe(tidb_status(), 2, 150)),
            readiness_probe: Some(probe(tidb_status(), 5, 3)),
            liveness_probe: Some(probe(tidb_status(), 10, 6)),
            resources: Some(requirements(profile, "tidb")),
            security_context: Some(hardened()),
            ..Container::default()
        };
        StatefulSet {
            metadata: self.workload_meta(spec),
            spec: Some(StatefulSetSpec {
                replicas: Some(1),
                service_name: Some(id.to_owned()),
                selector: LabelSelector {
                    match_labels: Some(selector),
                    match_expressions: None,
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        init_containers: Some(vec![pd, tikv]),
                        containers: vec![tidb],
                        termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
                        // The images run as root, so Pod Security `restricted` (which
                        // needs a non-root user) cannot hold; `baseline` does, and no
                        // container may gain privileges or keep capabilities.
                        security_context: Some(PodSecurityContext {
                            seccomp_profile: Some(SeccompProfile {
                                type_: "RuntimeDefault".into(),
                                localhost_profile: None,
                            }),
                            ..PodSecurityContext::default()
                        }),
                        automount_service_account_token: Some(false),
                        image_pull_secrets: pull_secrets(&self.image_pull_secrets),
                        node_selector: Some(BTreeMap::from([(
                            self.node_label.clone(),
                            spec.node_id.to_string(),
                        )])),
                        volumes: Some(vec![
                            Volume {
                                name: "data".into(),
                                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                                    claim_name: claim_name(id),
                                    read_only: None,
                                }),
                                ..Volume::default()
                            },
                            Volume {
                                name: "config".into(),
                                config_map: Some(ConfigMapVolumeSource {
                                    name: config_name(id),
                                    optional: Some(false),
                                    ..ConfigMapVolumeSource::default()
                                }),
                                ..Volume::default()
                            },
                            // The bootstrap SQL only (not the bare password), readable by
                            // the container's user alone.
                            Volume {
                                name: "credentials".into(),
                                secret: Some(SecretVolumeSource {
                                    secret_name: Some(credentials_name(id)),
                                    items: Some(vec![KeyToPath {
                                        key: INIT_SQL_KEY.into(),
                                        path: INIT_SQL_KEY.into(),
                                        mode: None,
                                    }]),
                                    default_mode: Some(0o400),
                                    optional: Some(false),
                                }),
                                ..Volume::default()
                            },
                        ]),
                        ..PodSpec::default()
                    }),
                },
                ..StatefulSetSpec::default()
            }),
            status: None,
        }
    }

    fn service(&self, spec: &DeploymentSpec) -> Service {
        let id = spec.framedb_id.as_str();
        Service {
            metadata: self.meta(id.to_owned(), spec, true),
            spec: Some(ServiceSpec {
                type_: Some("NodePort".into()),
                selector: Some(pod_selector(id)),
                ports: Some(vec![ServicePort {
                    name: Some("mysql".into()),
                    port: MYSQL_PORT,
                    target_port: Some(IntOrString::Int(MYSQL_PORT)),
                    node_port: Some(i32::from(spec.port)),
                    protocol: Some("TCP".into()),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }
}

/// PD's client port, on loopback.
const PD_PORT: i32 = 2379;
/// TiKV's status port, on loopback.
const TIKV_STATUS_PORT: i32 = 20180;
/// PD's health API: 200 once PD serves its API.
const PD_HEALTH: &str = "/pd/api/v1/health";
/// PD's view of its stores.
const PD_STORES: &str = "/pd/api/v1/stores";
/// What PD's store list says of a store that serves (a bash regular expression, its
/// quoted parts literal).
const STORE_UP: &str = r#"'"state_name":'[[:space:]]*'"Up"'"#;

/// A probe running `action` every `period` seconds, failing after `failures` misses in
/// a row, each given 3 seconds.
fn probe(action: Probe, period: i32, failures: i32) -> Probe {
    Probe {
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(3),
        ..action
    }
}

/// PD's store list shows TiKV's store `Up`.
fn store_up() -> Probe {
    loopback_get(PD_PORT, PD_STORES, Some(STORE_UP))
}

/// TiDB's `GET /status`, on its status port.
fn tidb_status() -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/status".into()),
            port: IntOrString::Int(TIDB_STATUS_PORT),
            ..HTTPGetAction::default()
        }),
        ..Probe::default()
    }
}

/// Passes when something accepts a connection on loopback `port`.
///
/// PD and TiKV listen on loopback only, which the kubelet's `tcpSocket` and `httpGet`
/// probes (sent to the pod's IP from the node) cannot reach, so the check runs in the
/// container. It uses bash's `/dev/tcp` alone: the PingCAP images (Rocky Linux based
/// since v7) carry bash, but no HTTP client is promised.
fn loopback_connect(port: i32) -> Probe {
    in_container(format!("exec 3<>/dev/tcp/127.0.0.1/{port}"))
}

/// Passes when `GET path` on loopback `port` answers 200 and, given `body`, a body
/// matching that bash regular expression (see [`loopback_connect`] for why in bash).
fn loopback_get(port: i32, path: &str, body: Option<&str>) -> Probe {
    let request = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port} && \
         printf 'GET {path} HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&3 && \
         IFS= read -r -d '' answer <&3; \
         [[ ${{answer%%$'\\r'*}} == 'HTTP/'*' 200'* ]]"
    );
    in_container(match body {
        Some(pattern) => format!("{request} && [[ $answer =~ {pattern} ]]"),
        None => request,
    })
}

/// A probe that runs `script` with bash in the container.
fn in_container(script: String) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec!["/bin/bash".into(), "-c".into(), script]),
        }),
        ..Probe::default()
    }
}

/// `names` as a pod's `imagePullSecrets` (none: the field left out).
pub fn pull_secrets(names: &[String]) -> Option<Vec<LocalObjectReference>> {
    (!names.is_empty()).then(|| {
        names
            .iter()
            .map(|name| LocalObjectReference { name: name.clone() })
            .collect()
    })
}

/// A container that may not gain privileges and keeps no Linux capabilities.
pub(crate) fn hardened() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        ..SecurityContext::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2Gi instance `img`.
    fn spec() -> DeploymentSpec {
        DeploymentSpec {
            framedb_id: framedb_core::FramedbId::new("img").unwrap(),
            cluster_id: framedb_core::ClusterId::new("c").unwrap(),
            node_id: framedb_core::NodeId::new("n").unwrap(),
            storage_size: framedb_core::StorageSize::new("2Gi").unwrap(),
            port: 30900,
            stamp: framedb_core::Stamp::unstamped(),
            deletion_policy: framedb_core::DeletionPolicy::Delete,
            created_at: framedb_core::Timestamp::now(),
            metadata: Default::default(),
            resources: None,
        }
    }

    /// The script of an exec probe.
    fn script(probe: &Probe) -> String {
        let command = probe.exec.as_ref().unwrap().command.as_ref().unwrap();
        assert_eq!(command[..2], ["/bin/bash", "-c"]);
        command[2].clone()
    }

    /// Runs a probe's script against a server on loopback that answers each connection
    /// with `answer` (none: nothing listens), as the kubelet would in the container.
    fn passes(probe: impl Fn(i32) -> Probe, answer: Option<&'static str>) -> bool {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = i32::from(listener.local_addr().unwrap().port());
        let listener = answer.map(|answer| (answer, listener));
        let server = listener.map(|(answer, listener)| {
            std::thread::spawn(move || {
                let (mut stream, _) = listener.accept().unwrap();
                // The whole request first: closing on unread bytes resets the
                // connection, which no real server does.
                let mut request = Vec::new();
                let mut chunk = [0u8; 512];
                while !request.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = stream.write_all(answer.as_bytes());
                String::from_utf8_lossy(&request).to_string()
            })
        });
        let status = std::process::Command::new("/bin/bash")
            .args(["-c", &script(&probe(port))])
            .status()
            .unwrap();
        if let Some(server) = server {
            let request = server.join().unwrap();
            assert!(
                request.starts_with("GET /") || request.is_empty(),
                "{request:?}"
            );
        }
        status.success()
    }

    #[test]
    fn pd_and_tikv_are_sidecars_probed_on_loopback_and_tidb_waits_for_them() {
        let layout = Layout::default();
        let sts = layout.objects(&spec()).statefulset;
        let pod = sts.spec.unwrap().template.spec.unwrap();
        let inits = pod.init_containers.unwrap();
        let names: Vec<&str> = inits.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["pd", "tikv"]);
        for sidecar in &inits {
            assert_eq!(sidecar.restart_policy.as_deref(), Some("Always"));
            for probe in [
                &sidecar.startup_probe,
                &sidecar.readiness_probe,
                &sidecar.liveness_probe,
            ] {
                let probe = probe.as_ref().unwrap();
                assert!(script(probe).contains("/dev/tcp/127.0.0.1/"), "{probe:?}");
                assert!(probe.timeout_seconds.is_some() && probe.failure_threshold.is_some());
            }
        }
        let tidb = &pod.containers[..];
        assert_eq!(tidb.len(), 1);
        assert_eq!(tidb[0].name, "tidb");
        for probe in [
            &tidb[0].startup_probe,
            &tidb[0].readiness_probe,
            &tidb[0].liveness_probe,
        ] {
            let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
            assert_eq!(get.path.as_deref(), Some("/status"));
        }
    }

    #[test]
    fn loopback_probes_pass_only_on_the_answer_they_wait_for() {
        let health = |port| loopback_get(port, PD_HEALTH, None);
        let store_up = |port| loopback_get(port, PD_STORES, Some(STORE_UP));
        let ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[]";
        assert!(passes(health, Some(ok)));
        assert!(!passes(
            health,
            Some("HTTP/1.1 503 Service Unavailable\r\n\r\n")
        ));
        assert!(!passes(health, None), "nothing listens");
        let stores = |state: &str| -> &'static str {
            let body = format!(
                "HTTP/1.1 200 OK\r\n\r\n{{\"count\": 1, \"stores\": [{{\"store\": {{\"id\": 1, \"state_name\": \"{state}\"}}}}]}}"
            );
            Box::leak(body.into_boxed_str())
        };
        assert!(passes(store_up, Some(stores("Up"))));
        assert!(!passes(store_up, Some(stores("Offline"))));
        assert!(!passes(
            store_up,
            Some("HTTP/1.1 200 OK\r\n\r\n{\"count\": 0, \"stores\": null}")
        ));
        assert!(passes(loopback_connect, Some("")));
        assert!(!passes(loopback_connect, None));
    }

    /// A TOML value of `config` (`"51MiB"` as 51 MiB), in bytes.
    fn mib(config: &str, key: &str) -> u64 {
        let line = config
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap();
        let value = line.split('"').nth(1).unwrap().trim_end_matches("MiB");
        value.parse::<u64>().unwrap() * MIB
    }

    #[test]
    fn tikv_keeps_free_only_a_small_share_of_a_small_volume() {
        for capacity in [GIB, 2 * GIB] {
            let config = tikv_config(capacity, 2 * GIB);
            let reserved = mib(&config, "reserve-space") + mib(&config, "reserve-raft-space");
            // TiKV's defaults (5 GiB + 1 GiB) exceed the whole volume.
            assert!(reserved * 10 < capacity, "{config}");
            assert!(mib(&config, "max-total-wal-size") <= capacity / 8);
            assert!(mib(&config, "purge-threshold") <= capacity / 4);
        }
        let big = tikv_config(1 << 40, 8 * GIB);
        assert_eq!(
            mib(&big, "reserve-space"),
            5 * GIB,
            "TiKV's default on a large volume"
        );
        assert_eq!(mib(&big, "capacity"), 8 * GIB / 100 * 45 / MIB * MIB);
    }

    #[test]
    fn images_are_fully_qualified_and_pulled_with_the_layout_s_secrets() {
        let layout = Layout {
            image_pull_secrets: vec!["regcred".into()],
            ..Layout::default()
        };
        let spec = spec();
        let pod_of = |layout: &Layout| {
            layout
                .statefulset(&spec)
                .spec
                .unwrap()
                .template
                .spec
                .unwrap()
        };
        let pod = pod_of(&layout);
        assert_eq!(
            pod.containers[0].image.as_deref(),
            Some("docker.io/pingcap/tidb:v8.5.1")
        );
        assert_eq!(pod.image_pull_secrets.unwrap()[0].name, "regcred");
        assert!(pod_of(&Layout::default()).image_pull_secrets.is_none());
    }

    #[test]
    fn profiles_set_requests_and_memory_limits() {
        let tikv = requirements(Profile::Small, "tikv");
        assert_eq!(tikv.limits.unwrap()["memory"], Quantity("2048Mi".into()));
        let requests = tikv.requests.unwrap();
        assert_eq!(requests["cpu"], Quantity("500m".into()));
        assert_eq!(Profile::parse("large"), Ok(Profile::Large));
        assert!(
            Profile::parse("huge")
                .unwrap_err()
                .message()
                .contains("small, medium or large")
        );
    }

    #[test]
    fn a_create_s_profile_replaces_the_layout_s_default() {
        let layout = Layout::default();
        let memory_of = |spec: &DeploymentSpec| {
            let objects = layout.objects(spec);
            let pod = objects.statefulset.spec.unwrap().template.spec.unwrap();
            let tikv = pod.init_containers.unwrap().remove(1);
            let limit = tikv.resources.unwrap().limits.unwrap()["memory"].clone();
            let config = objects.config.data.unwrap()["tikv.toml"].clone();
            (limit, mib(&config, "capacity"))
        };
        let default = spec();
        let (small, small_cache) = memory_of(&default);
        assert_eq!(small, Quantity("2048Mi".into()));
        let large = DeploymentSpec {
            resources: Some(Profile::Large),
            ..spec()
        };
        let (limit, cache) = memory_of(&large);
        assert_eq!(limit, Quantity("8192Mi".into()));
        // TiKV's block cache follows its own limit (45% of it, in whole MiB).
        assert_eq!(cache / MIB, 8192 * 45 / 100);
        assert_eq!(small_cache / MIB, 2048 * 45 / 100);
        let noted = instance_annotations(&large);
        assert_eq!(noted[annotations::RESOURCES], "large");
        assert!(!instance_annotations(&default).contains_key(annotations::RESOURCES));
    }

    #[test]
    fn the_wipe_pod_mounts_only_its_instance_s_claim_in_the_instances_namespace() {
        let stamp = framedb_core::Stamp::unstamped();
        assert!(
            Layout::default().wipe_pod("db", "c", &stamp).is_none(),
            "no wipe without local volumes"
        );
        let layout = Layout {
            storage: Storage::Local {
                root: "/mnt/volumes/".into(),
            },
            ..Layout::default()
        };
        let pod = layout.wipe_pod("db", "c", &stamp).unwrap();
        assert_eq!(pod.metadata.namespace.as_deref(), Some("framedb-storage"));
        let pod_spec = pod.spec.unwrap();
        let volumes = pod_spec.volumes.unwrap();
        assert_eq!(volumes.len(), 1);
        assert!(
            volumes[0].host_path.is_none(),
            "Pod Security baseline admits it"
        );
        let claim = volumes[0].persistent_volume_claim.clone().unwrap();
        assert_eq!(claim.claim_name, "db-data");
        let security = pod_spec.security_context.unwrap();
        assert_eq!(security.run_as_user, Some(0));
        let container = &pod_spec.containers[0];
        assert_eq!(container.image.as_deref(), Some(DEFAULT_HELPER_IMAGE));
        let hardening = container.security_context.clone().unwrap();
        assert_eq!(hardening.allow_privilege_escalation, Some(false));
        assert_eq!(hardening.capabilities.unwrap().drop.unwrap(), ["ALL"]);
        assert!(container.resources.as_ref().unwrap().limits.is_some());
        // The volume is the node's directory, which the kubelet makes.
        let volume = layout.objects(&spec()).volume.unwrap();
        let host_path = volume.spec.unwrap().host_path.unwrap();
        assert_eq!(host_path.path, "/mnt/volumes/img");
        assert_eq!(host_path.type_.as_deref(), Some("DirectoryOrCreate"));
    }

    #[test]
    fn the_bootstrap_sql_quotes_the_password_as_one_literal() {
        let credentials = Credentials::root("Ab-_9").unwrap();
        assert_eq!(
            init_sql(&credentials),
            "ALTER USER 'root'@'%' IDENTIFIED BY 'Ab-_9';\n"
        );
    }
}
