//! The per-cluster config service: installing it, removing it and reporting on it, on a
//! cluster reached through a caller's kubeconfig.
//!
//! Setup is a series of server-side applies (the `apply` module), so running it again
//! repairs or completes an installation; remove deletes each object and treats one
//! already gone as done. MongoDB, the local service's registry, is the `mongodb` module's.

use std::collections::BTreeMap;

use framedb_core::{ClusterId, StorageSize};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, StatefulSet};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Namespace, Node,
    PersistentVolume, PersistentVolumeClaim, Pod, PodSpec, PodTemplateSpec, Probe, Secret,
    SecretKeySelector, Service, ServiceAccount, ServicePort, ServiceSpec,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::apply::{FIELD_MANAGER, apply, delete_if_present};
use crate::error::{Error, Result, is_already_exists};
use crate::objects::{Layout, Storage, labels};
use crate::ownership::DELETION_WAIT;
use crate::status::StatusLimits;

mod mongodb;

use mongodb::MONGODB_PORT;
pub use mongodb::{
    LEGACY_CLAIM, LEGACY_VOLUME, LOCAL_DIRECTORY, MONGODB, MONGODB_CLAIM, MONGODB_CPU,
    MONGODB_MEMORY, MONGODB_SECRET, MONGODB_USER, MONGODB_VOLUME, MongoStorage,
};

/// The config service's deployment.
pub const FRAMEDB_CONFIG: &str = "framedb-config";
/// The config service's in-cluster Service.
pub const LOCAL_SERVICE: &str = "framedb-local-config";
/// The config service's NodePort Service.
pub const NODE_PORT_SERVICE: &str = "framedb-config-service";
/// The annotation of the config service's pod template that holds the SHA-256 of its
/// token, so that a new token rolls the pod.
pub const TOKEN_DIGEST: &str = "framedb.io/token-sha256";
/// The Secret holding the token the local service requires.
pub const TOKEN_SECRET: &str = "framedb-config-token";

/// What one installation is for. `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Install {
    /// The volume size of MongoDB.
    pub storage_size: StorageSize,
    /// The id the fleet knows the cluster by; the local service runs under it.
    pub cluster_id: ClusterId,
    /// The token the local service will require (kept in a Secret), if any.
    pub token: Option<String>,
    /// Where instance volumes live on the nodes, for clusters without a dynamic
    /// provisioner (see [`check_volume_root`]): the local service then makes a `local`
    /// PersistentVolume per instance, and only then may it write PersistentVolumes.
    pub local_volume_root: Option<String>,
}

impl std::fmt::Debug for Install {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Install")
            .field("storage_size", &self.storage_size)
            .field("cluster_id", &self.cluster_id)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("local_volume_root", &self.local_volume_root)
            .finish()
    }
}

/// Checks a `local_volume_root`: an absolute path, without `..`, whitespace or control
/// characters, of at most 256 bytes (it becomes each instance volume's `local.path`).
///
/// # Errors
/// A sentence saying what is wrong, quoting nothing of the value.
pub fn check_volume_root(root: &str) -> std::result::Result<(), String> {
    let plain = root.chars().all(|c| !c.is_control() && !c.is_whitespace());
    if !root.starts_with('/')
        || root.len() > 256
        || !plain
        || root.split('/').any(|segment| segment == "..")
    {
        return Err(
            "local_volume_root must be an absolute path of at most 256 characters, \
                    without '..', spaces or control characters"
                .into(),
        );
    }
    Ok(())
}

/// The port the config service listens on inside its pod.
pub const SERVICE_PORT: i32 = 8080;

/// What an installation looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The namespace it lives in (`framedb-config`).
    pub namespace: String,
    /// The MongoDB image (`docker.io/library/mongo:7.0`).
    pub mongo_image: String,
    /// FrameDB's server image, run in its `local` role ([`DEFAULT_SERVER_IMAGE`]).
    pub server_image: String,
    /// The node port of [`NODE_PORT_SERVICE`] (32566).
    pub node_port: u16,
    /// How the local service lays its instances out: the global's own layout, passed on
    /// as the local service's flags. Its namespace (`framedb-storage`) is the one setup
    /// creates and the only one the local service may write in.
    pub instance_layout: Layout,
    /// Where the local service's statuses read `Failed`: the global's own limits, passed
    /// on as its flags.
    pub status_limits: StatusLimits,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespace: "framedb-config".into(),
            mongo_image: DEFAULT_MONGO_IMAGE.into(),
            server_image: DEFAULT_SERVER_IMAGE.into(),
            node_port: 32566,
            instance_layout: Layout::default(),
            status_limits: StatusLimits::default(),
        }
    }
}

impl Settings {
    /// The images an installation runs: MongoDB and FrameDB's server.
    pub fn images(&self) -> [String; 2] {
        [self.mongo_image.clone(), self.server_image.clone()]
    }
}

/// A cluster's config service, reached through a kube-rs client.
pub struct ConfigService<'a> {
    client: &'a Client,
    settings: &'a Settings,
    /// The cluster's name, for messages and logs only.
    cluster: &'a str,
}

fn component_labels(component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::NAME.to_owned(), component.to_owned()),
        ("app.kubernetes.io/part-of".to_owned(), "framedb".to_owned()),
        (labels::MANAGED_BY.to_owned(), "framedb".to_owned()),
    ])
}

fn selector(component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(labels::NAME.to_owned(), component.to_owned())])
}

impl<'a> ConfigService<'a> {
    /// The config service of the cluster `client` reaches; `cluster` names it in logs.
    pub fn new(client: &'a Client, settings: &'a Settings, cluster: &'a str) -> Self {
        Self {
            client,
            settings,
            cluster,
        }
    }

    fn meta(&self, name: &str, component: &str, namespaced: bool) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: namespaced.then(|| self.settings.namespace.clone()),
            labels: Some(component_labels(component)),
            ..ObjectMeta::default()
        }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    /// Applies `object`; a failure names it by its kind and name.
    async fn apply<K>(&self, api: Api<K>, object: K) -> Result<()>
    where
        K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let name = object.meta().name.clone().unwrap_or_default();
        apply(&api, &object, self.cluster, &name).await
    }

    /// Installs (or completes, or repairs) the config service as `install` says.
    ///
    /// # Errors
    /// [`Error::Kube`] when the cluster refuses or cannot be reached; [`Error::Domain`]
    /// when no password can be drawn, no node can hold MongoDB's `local` volume, or that
    /// volume is gone and no `local_volume_root` was given.
    pub async fn setup(&self, install: &Install) -> Result<()> {
        // A removal a moment ago leaves its namespace and volume being deleted while their
        // pods terminate: made anew once gone, not refused (403) or bound in them.
        let namespaces = Api::<Namespace>::all(self.client.clone());
        for name in [
            &self.settings.namespace,
            &self.settings.instance_layout.namespace,
        ] {
            self.await_deletion(&namespaces, name).await?;
        }
        let volumes = Api::<PersistentVolume>::all(self.client.clone());
        for volume in [MONGODB_VOLUME, LEGACY_VOLUME] {
            self.await_deletion(&volumes, volume).await?;
        }
        let mut namespace = Namespace {
            metadata: self.meta(&self.settings.namespace, FRAMEDB_CONFIG, false),
            ..Namespace::default()
        };
        // On local volumes MongoDB's pod mounts a `hostPath` (the directory of its `local`
        // volume, which the kubelet makes for it), which Pod Security `baseline` refuses:
        // a cluster whose default level is `baseline` must let this namespace, where only
        // setup (the installer's kubeconfig) makes pods, run it.
        let local = install.local_volume_root.is_some()
            || matches!(self.settings.instance_layout.storage, Storage::Local { .. });
        if local && let Some(labels) = namespace.metadata.labels.as_mut() {
            labels.insert(
                "pod-security.kubernetes.io/enforce".into(),
                "privileged".into(),
            );
        }
        self.apply(Api::all(self.client.clone()), namespace).await?;
        // Least privilege: the local service writes only in the instances' namespace (a
        // Role), and cluster-wide only reads what is cluster-wide (a ClusterRole: Services,
        // whose node ports are cluster-wide, and nodes).
        let instances =
            crate::objects::instance_namespace(&self.settings.instance_layout.namespace);
        self.apply(Api::all(self.client.clone()), instances).await?;
        self.apply(self.api(), self.service_account()).await?;
        self.apply(Api::all(self.client.clone()), cluster_role(install))
            .await?;
        self.apply(Api::all(self.client.clone()), self.role_binding())
            .await?;
        self.apply(self.instance_api(), self.instance_role(install))
            .await?;
        self.apply(self.instance_api(), self.instance_role_binding())
            .await?;
        let install_id = self.mongodb_secret().await?;
        self.retire_legacy_mongodb().await?;
        let installed = self.installed_mongodb().await?;
        let storage = self
            .mongodb_storage(install, installed.as_ref(), &install_id)
            .await?;
        // A StatefulSet's claim template cannot change: one installed keeps its size.
        let size = installed
            .as_ref()
            .map_or(install.storage_size.as_str(), |(size, _)| size.as_str());
        let set = self.mongodb(size, &storage);
        if let MongoStorage::Local { path, host } = &storage {
            let volume = mongodb::local_volume(
                self.meta(MONGODB_VOLUME, MONGODB, false),
                &self.settings.namespace,
                size,
                path,
                host,
            );
            self.apply(Api::all(self.client.clone()), volume).await?;
        }
        self.apply(self.api(), set).await?;
        self.apply(self.api(), self.mongodb_policy()).await?;
        // The StatefulSet's `serviceName`, kept `ClusterIP` rather than headless: one
        // replica needs no per-pod DNS name, the address the local service dials stays
        // as it was, and an installed Service's `clusterIP` cannot be changed to `None`.
        self.apply(
            self.api(),
            self.service(MONGODB, MONGODB, MONGODB_PORT, None),
        )
        .await?;
        if let Some(token) = &install.token {
            self.apply(self.api(), self.token_secret(token)).await?;
        }
        self.apply(self.api(), self.server(install)).await?;
        self.apply(
            self.api(),
            self.service(LOCAL_SERVICE, FRAMEDB_CONFIG, SERVICE_PORT, None),
        )
        .await?;
        self.apply(
            self.api(),
            self.service(
                NODE_PORT_SERVICE,
                FRAMEDB_CONFIG,
                SERVICE_PORT,
                Some(self.settings.node_port),
            ),
        )
        .await?;
        tracing::info!(cluster = self.cluster, "config service set up");
        Ok(())
    }

    /// Makes MongoDB's Secret with a new password, unless it exists: `mongod` keeps the
    /// root user it made on its first start, so a password changed later would lock the
    /// local service out of its registry. Created (never applied) so that no later setup
    /// can overwrite it; of two setups racing, the second finds the first's. Returns the
    /// Secret's uid, which names this installation's MongoDB directory on a local volume.
    async fn mongodb_secret(&self) -> Result<String> {
        let api = self.api::<Secret>();
        let reading = |error| {
            Error::kube(
                self.cluster,
                format!("reading Secret {MONGODB_SECRET}"),
                error,
            )
        };
        if let Some(existing) = api.get_opt(MONGODB_SECRET).await.map_err(reading)? {
            return Ok(existing.metadata.uid.unwrap_or_default());
        }
        // 192 bits from the OS's random source, in URL-safe base64: it needs no
        // percent-encoding in the local service's MongoDB URI.
        let password = framedb_core::Credentials::generate()?;
        let secret = mongodb::secret(
            self.meta(MONGODB_SECRET, MONGODB, true),
            password.password(),
        );
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        match api.create(&params, &secret).await {
            Ok(made) => Ok(made.metadata.uid.unwrap_or_default()),
            Err(error) if is_already_exists(&error) => {
                let found = api.get(MONGODB_SECRET).await.map_err(reading)?;
                Ok(found.metadata.uid.unwrap_or_default())
            }
            // The error says what was refused, never the Secret's content.
            Err(error) => Err(Error::kube(
                self.cluster,
                format!("creating Secret {MONGODB_SECRET}"),
                error,
            )),
        }
    }

    /// Deletes the MongoDB Deployment of the version before the StatefulSet, so that two
    /// MongoDBs never run side by side behind one Service. Its `hostPath` volume and claim
    /// ([`LEGACY_VOLUME`], [`LEGACY_CLAIM`]) stay, with the old registry on the node that
    /// ran it, until remove: the new MongoDB starts on a claim of its own (the old data
    /// has no users, which `mongod --auth` could not open), and the local service's
    /// reconcile pass refills the registry from the cluster's objects.
    async fn retire_legacy_mongodb(&self) -> Result<()> {
        self.delete(self.api::<Deployment>(), MONGODB).await
    }

    /// The size and class of the claim template of MongoDB's StatefulSet, if installed.
    async fn installed_mongodb(&self) -> Result<Option<(String, Option<String>)>> {
        let existing = self
            .api::<StatefulSet>()
            .get_opt(MONGODB)
            .await
            .map_err(|error| {
                Error::kube(
                    self.cluster,
                    format!("reading StatefulSet {MONGODB}"),
                    error,
                )
            })?;
        Ok(existing.as_ref().and_then(mongodb::installed_template))
    }

    /// Where MongoDB's registry goes.
    ///
    /// An installed StatefulSet keeps its claim template, which the API does not let
    /// change: a class stays that class, and a `local` volume stays where it is. Otherwise,
    /// a `local` volume when the local service uses local volumes (setup's
    /// `local_volume_root`, else the global's `--local-volume-root`), at
    /// `ROOT/.framedb-config-mongodb-{install_id}` of the node an existing volume names,
    /// else of the first Ready, schedulable node; otherwise a claim of the layout's storage
    /// class. The directory is this installation's (`install_id`, the uid of its MongoDB
    /// Secret): after a remove, a new setup's MongoDB, with a new password, never opens
    /// the directory of the one before, whose users it could not log in as.
    async fn mongodb_storage(
        &self,
        install: &Install,
        installed: Option<&(String, Option<String>)>,
        install_id: &str,
    ) -> Result<MongoStorage> {
        let (root, class) = match (
            &install.local_volume_root,
            &self.settings.instance_layout.storage,
        ) {
            (Some(root), _) | (None, Storage::Local { root }) => (Some(root), None),
            (None, Storage::Dynamic { storage_class }) => (None, storage_class.clone()),
        };
        match (installed, root) {
            (Some((_, kept)), _) if kept.as_deref() != Some("") => {
                return Ok(MongoStorage::Dynamic(kept.clone()));
            }
            (None, None) => return Ok(MongoStorage::Dynamic(class)),
            _ => {}
        }
        let volumes = Api::<PersistentVolume>::all(self.client.clone());
        let existing = volumes.get_opt(MONGODB_VOLUME).await.map_err(|error| {
            Error::kube(
                self.cluster,
                format!("reading PersistentVolume {MONGODB_VOLUME}"),
                error,
            )
        })?;
        // A volume's node and directory cannot change, and the registry is there.
        if let Some((path, host)) = existing.as_ref().and_then(mongodb::local_of) {
            return Ok(MongoStorage::Local { path, host });
        }
        let Some(root) = root else {
            return Err(framedb_core::Error::invalid(
                "the config service's MongoDB is installed on a local volume, which is gone: \
                 set it up with local_volume_root",
            )
            .into());
        };
        let path = format!(
            "{}/{LOCAL_DIRECTORY}-{install_id}",
            root.trim_end_matches('/')
        );
        let nodes = Api::<Node>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map_err(|error| Error::kube(self.cluster, "listing nodes", error))?;
        let host = mongodb::first_schedulable_host(&nodes.items).ok_or_else(|| {
            framedb_core::Error::Unavailable(framedb_core::Fault::new(
                "no node of the cluster is Ready and schedulable to hold the config service's \
                 MongoDB volume; retry once one is",
            ))
        })?;
        Ok(MongoStorage::Local { path, host })
    }

    /// MongoDB's StatefulSet, its claim of `size` on `storage`.
    fn mongodb(&self, size: &str, storage: &MongoStorage) -> StatefulSet {
        let shape = mongodb::Shape {
            image: &self.settings.mongo_image,
            size,
            storage,
            labels: component_labels(MONGODB),
            selector: selector(MONGODB),
            pull_secrets: crate::objects::pull_secrets(
                &self.settings.instance_layout.image_pull_secrets,
            ),
        };
        mongodb::stateful_set(&shape, self.meta(MONGODB, MONGODB, true))
    }

    /// Waits up to [`DELETION_WAIT`] for `name` to go if it is being deleted; returns at
    /// once otherwise. Still there after the wait, it is left to the setup's writes to be
    /// refused in (a namespace being deleted is a 409 conflict saying so).
    async fn await_deletion<K>(&self, api: &Api<K>, name: &str) -> Result<()>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let kind = K::kind(&K::DynamicType::default()).into_owned();
        let deadline = tokio::time::Instant::now() + DELETION_WAIT;
        let mut pause = std::time::Duration::from_millis(50);
        loop {
            let found = api.get_opt(name).await.map_err(|error| {
                Error::kube(self.cluster, format!("reading {kind} {name}"), error)
            })?;
            let going = found.is_some_and(|o| o.meta().deletion_timestamp.is_some());
            let now = tokio::time::Instant::now();
            if !going || now >= deadline {
                return Ok(());
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(1));
        }
    }

    /// Removes every object of the config service; those already gone are skipped.
    ///
    /// That includes MongoDB's claim and its `local` volume, as before the StatefulSet:
    /// remove is asked for by name, is refused while the cluster has registered instances
    /// (unless forced), and the local registry is rebuilt from the cluster's objects by
    /// the next installation. Deleting the StatefulSet alone would keep the claim (its
    /// retention policy is `Retain`); it is deleted here on purpose. A `local` volume's
    /// directory stays on its node (`Retain`); a provisioned volume goes as its class's
    /// reclaim policy says. The objects of the version before the StatefulSet (a MongoDB
    /// Deployment, its claim and `hostPath` volume) go too.
    ///
    /// # Errors
    /// [`Error::Kube`] when the cluster refuses or cannot be reached.
    pub async fn remove(&self) -> Result<()> {
        self.delete(self.api::<Deployment>(), FRAMEDB_CONFIG)
            .await?;
        self.delete(self.api::<StatefulSet>(), MONGODB).await?;
        self.delete(self.api::<Deployment>(), MONGODB).await?;
        for service in [NODE_PORT_SERVICE, LOCAL_SERVICE, MONGODB] {
            self.delete(self.api::<Service>(), service).await?;
        }
        for claim in [MONGODB_CLAIM, LEGACY_CLAIM] {
            self.delete(self.api::<PersistentVolumeClaim>(), claim)
                .await?;
        }
        for volume in [MONGODB_VOLUME, LEGACY_VOLUME] {
            self.delete(Api::<PersistentVolume>::all(self.client.clone()), volume)
                .await?;
        }
        self.delete(
            Api::<Namespace>::all(self.client.clone()),
            &self.settings.namespace,
        )
        .await?;
        // The instances' namespace stays: it holds their volumes.
        self.delete(self.instance_api::<RoleBinding>(), FRAMEDB_CONFIG)
            .await?;
        self.delete(self.instance_api::<Role>(), FRAMEDB_CONFIG)
            .await?;
        self.delete(
            Api::<ClusterRoleBinding>::all(self.client.clone()),
            FRAMEDB_CONFIG,
        )
        .await?;
        self.delete(Api::<ClusterRole>::all(self.client.clone()), FRAMEDB_CONFIG)
            .await?;
        tracing::info!(cluster = self.cluster, "config service removed");
        Ok(())
    }

    /// Deletes `name`; already gone is success.
    async fn delete<K>(&self, api: Api<K>, name: &str) -> Result<()>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
        K::DynamicType: Default,
    {
        delete_if_present(&api, self.cluster, name).await
    }

    /// Reads the state of every component.
    ///
    /// # Errors
    /// [`Error::Kube`] when the cluster refuses or cannot be reached.
    pub async fn status(&self) -> Result<Report> {
        let failed =
            |what: &str, error| Error::kube(self.cluster, format!("reading {what}"), error);
        let namespace = Api::<Namespace>::all(self.client.clone())
            .get_opt(&self.settings.namespace)
            .await
            .map_err(|e| failed("the namespace", e))?;
        let namespace = ComponentState {
            name: self.settings.namespace.clone(),
            exists: namespace.is_some(),
            detail: namespace.and_then(|n| n.status?.phase).unwrap_or_default(),
        };
        if !namespace.exists {
            return Ok(Report::absent(namespace));
        }
        let local = self
            .api::<Deployment>()
            .get_opt(FRAMEDB_CONFIG)
            .await
            .map_err(|e| failed("deployments", e))?;
        let settings = local.as_ref().map(installed_flags).unwrap_or_default();
        let deployments = vec![ComponentState {
            name: FRAMEDB_CONFIG.to_owned(),
            exists: local.is_some(),
            detail: ready_of(
                local
                    .as_ref()
                    .and_then(|d| d.status.as_ref()?.ready_replicas),
                local.as_ref().and_then(|d| d.spec.as_ref()?.replicas),
            ),
        }];
        let registry = self
            .api::<StatefulSet>()
            .get_opt(MONGODB)
            .await
            .map_err(|e| failed("statefulsets", e))?;
        let stateful_sets = vec![ComponentState {
            name: MONGODB.to_owned(),
            exists: registry.is_some(),
            detail: ready_of(
                registry
                    .as_ref()
                    .and_then(|s| s.status.as_ref()?.ready_replicas),
                registry.as_ref().and_then(|s| s.spec.as_ref()?.replicas),
            ),
        }];
        let mut services = Vec::new();
        for name in [MONGODB, LOCAL_SERVICE, NODE_PORT_SERVICE] {
            let found = self
                .api::<Service>()
                .get_opt(name)
                .await
                .map_err(|e| failed("services", e))?;
            services.push(ComponentState {
                name: name.to_owned(),
                exists: found.is_some(),
                detail: found.and_then(|s| service_detail(&s)).unwrap_or_default(),
            });
        }
        let claim = self
            .api::<PersistentVolumeClaim>()
            .get_opt(MONGODB_CLAIM)
            .await
            .map_err(|e| failed("the claim", e))?;
        let claim = ComponentState {
            name: MONGODB_CLAIM.to_owned(),
            exists: claim.is_some(),
            // As kubectl shows it: a claim being deleted reads Terminating.
            detail: claim
                .and_then(|c| match c.metadata.deletion_timestamp {
                    Some(_) => Some("Terminating".to_owned()),
                    None => c.status?.phase,
                })
                .unwrap_or_default(),
        };
        let pods = self
            .api::<Pod>()
            .list(&ListParams::default().labels("app.kubernetes.io/part-of=framedb"))
            .await
            .map_err(|e| failed("pods", e))?;
        let pods = pods
            .items
            .iter()
            .map(|pod| {
                let phase = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default();
                // A pod being deleted (the one a new token rolls away, or a removal's) is
                // on its way out however ready it still reads: as kubectl, it shows as
                // Terminating, and it makes no component ready.
                let terminating = pod.metadata.deletion_timestamp.is_some()
                    && !matches!(phase.as_str(), "Succeeded" | "Failed");
                PodState {
                    name: pod.metadata.name.clone().unwrap_or_default(),
                    component: pod
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(labels::NAME).cloned())
                        .unwrap_or_default(),
                    phase: if terminating {
                        "Terminating".to_owned()
                    } else {
                        phase
                    },
                    ready: !terminating
                        && pod.status.as_ref().is_some_and(|s| {
                            s.conditions
                                .as_deref()
                                .unwrap_or_default()
                                .iter()
                                .any(|c| c.type_ == "Ready" && c.status == "True")
                        }),
                }
            })
            .collect();
        Ok(Report::new(
            namespace,
            deployments,
            stateful_sets,
            services,
            claim,
            pods,
            settings,
        ))
    }

    fn instance_api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(
            self.client.clone(),
            &self.settings.instance_layout.namespace,
        )
    }

    fn instance_meta(&self) -> ObjectMeta {
        ObjectMeta {
            name: Some(FRAMEDB_CONFIG.to_owned()),
            namespace: Some(self.settings.instance_layout.namespace.clone()),
            labels: Some(component_labels(FRAMEDB_CONFIG)),
            ..ObjectMeta::default()
        }
    }

    /// What the local service may do in the instances' namespace: manage their
    /// StatefulSets, Services and claims, read their pods and the namespace's events
    /// (statuses tell what their pods and StatefulSets were refused), and exactly what it does with
    /// their credentials Secrets (created once, read back, marked retained or taken back
    /// with their volume, annotated with a grown volume's size, deleted: never updated,
    /// listed or watched), and NetworkPolicies and configuration ConfigMaps (created, read
    /// to check whose they are, applied again on a retried deploy, patched by an update,
    /// deleted).
    /// What the local service may do in the instances' namespace; with local volumes,
    /// also run the pods that empty a volume before a purge deletes it (in this
    /// namespace, under its Pod Security `baseline`).
    fn instance_role(&self, install: &Install) -> Role {
        let local = install.local_volume_root.is_some()
            || matches!(self.settings.instance_layout.storage, Storage::Local { .. });
        let pods: &[&str] = if local {
            &["get", "list", "watch", "create", "delete"]
        } else {
            &READ
        };
        Role {
            metadata: self.instance_meta(),
            rules: Some(vec![
                rule("", &["services", "persistentvolumeclaims"], &MANAGE),
                rule("apps", &["statefulsets"], &MANAGE),
                rule("", &["pods"], pods),
                rule("", &["events"], &["list", "watch"]),
                rule("", &["secrets"], &["get", "create", "patch", "delete"]),
                rule("", &["configmaps"], &["get", "create", "patch", "delete"]),
                rule(
                    "networking.k8s.io",
                    &["networkpolicies"],
                    &["get", "create", "patch", "delete"],
                ),
            ]),
        }
    }

    fn instance_role_binding(&self) -> RoleBinding {
        RoleBinding {
            metadata: self.instance_meta(),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "Role".into(),
                name: FRAMEDB_CONFIG.into(),
            },
            subjects: Some(vec![self.subject()]),
        }
    }

    fn subject(&self) -> Subject {
        Subject {
            kind: "ServiceAccount".into(),
            name: FRAMEDB_CONFIG.into(),
            namespace: Some(self.settings.namespace.clone()),
            ..Subject::default()
        }
    }

    fn service_account(&self) -> ServiceAccount {
        ServiceAccount {
            metadata: self.meta(FRAMEDB_CONFIG, FRAMEDB_CONFIG, true),
            ..ServiceAccount::default()
        }
    }

    fn role_binding(&self) -> ClusterRoleBinding {
        ClusterRoleBinding {
            metadata: self.meta(FRAMEDB_CONFIG, FRAMEDB_CONFIG, false),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: FRAMEDB_CONFIG.into(),
            },
            subjects: Some(vec![self.subject()]),
        }
    }

    fn deployment(&self, component: &str, mut pod: PodSpec) -> Deployment {
        // The same pull secrets as the instances' pods: one private registry, or none.
        pod.image_pull_secrets =
            crate::objects::pull_secrets(&self.settings.instance_layout.image_pull_secrets);
        Deployment {
            metadata: self.meta(component, component, true),
            spec: Some(DeploymentSpec {
                replicas: Some(1),
                selector: LabelSelector {
                    match_labels: Some(selector(component)),
                    match_expressions: None,
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(component_labels(component)),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(pod),
                },
                ..DeploymentSpec::default()
            }),
            status: None,
        }
    }

    /// Only the config service reaches its MongoDB: its password keeps others out of the
    /// registry, and this keeps them from even trying it (or from a `mongod` started
    /// before its root user was made).
    fn mongodb_policy(&self) -> NetworkPolicy {
        let pods = |component: &str| LabelSelector {
            match_labels: Some(selector(component)),
            match_expressions: None,
        };
        NetworkPolicy {
            metadata: self.meta(MONGODB, MONGODB, true),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(pods(MONGODB)),
                policy_types: Some(vec!["Ingress".into()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(pods(FRAMEDB_CONFIG)),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(vec![NetworkPolicyPort {
                        protocol: Some("TCP".into()),
                        port: Some(IntOrString::Int(MONGODB_PORT)),
                        end_port: None,
                    }]),
                }]),
                egress: None,
            }),
        }
    }

    fn token_secret(&self, token: &str) -> Secret {
        Secret {
            metadata: self.meta(TOKEN_SECRET, FRAMEDB_CONFIG, true),
            string_data: Some(BTreeMap::from([("token".to_owned(), token.to_owned())])),
            ..Secret::default()
        }
    }

    fn server(&self, install: &Install) -> Deployment {
        let env = |name: &str, value: String| EnvVar {
            name: name.into(),
            value: Some(value),
            value_from: None,
        };
        let mut environment = vec![
            env("FRAMEDB_LISTEN", format!("0.0.0.0:{SERVICE_PORT}")),
            env("FRAMEDB_CLUSTER_ID", install.cluster_id.to_string()),
            // Where its Role lets it write.
            env(
                "FRAMEDB_NAMESPACE",
                self.settings.instance_layout.namespace.clone(),
            ),
        ];
        // MongoDB's password from its Secret, and the URI that names it as `$(...)`.
        environment.extend(mongodb::client_env(&self.settings.namespace));
        // The rest of the global's layout, so that instances made through either tier
        // are alike; a local volume root from setup's body replaces a storage class (the
        // server takes one or the other, never both).
        environment.extend(
            layout_flags(&self.settings.instance_layout)
                .into_iter()
                .filter(|(name, _)| *name != "FRAMEDB_NAMESPACE")
                .filter(|(name, _)| {
                    *name != "FRAMEDB_STORAGE_CLASS" || install.local_volume_root.is_none()
                })
                .map(|(name, value)| env(name, value)),
        );
        if let Some(root) = &install.local_volume_root {
            environment.push(env("FRAMEDB_LOCAL_VOLUME_ROOT", root.clone()));
        }
        let limits = &self.settings.status_limits;
        environment.extend([
            env(
                "FRAMEDB_KUBE_STATUS_RESTART_LIMIT",
                limits.restarts.to_string(),
            ),
            env(
                "FRAMEDB_KUBE_STATUS_STUCK_AFTER_SECS",
                limits.stuck_after.as_secs().to_string(),
            ),
        ]);
        if install.token.is_some() {
            // The token stays in a Secret, never in the Deployment's spec.
            environment.push(EnvVar {
                name: "FRAMEDB_API_TOKEN".into(),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: TOKEN_SECRET.into(),
                        key: "token".into(),
                        optional: Some(false),
                    }),
                    ..EnvVarSource::default()
                }),
            });
        }
        let mut server = self.deployment(
            FRAMEDB_CONFIG,
            PodSpec {
                service_account_name: Some(FRAMEDB_CONFIG.into()),
                containers: vec![Container {
                    name: FRAMEDB_CONFIG.into(),
                    image: Some(self.settings.server_image.clone()),
                    args: Some(vec!["local".into()]),
                    env: Some(environment),
                    ports: Some(vec![ContainerPort {
                        name: Some("http".into()),
                        container_port: SERVICE_PORT,
                        ..ContainerPort::default()
                    }]),
                    // Ready while its registry (the MongoDB beside it) answers.
                    readiness_probe: Some(Probe {
                        http_get: Some(HTTPGetAction {
                            path: Some("/readyz".into()),
                            port: IntOrString::Int(SERVICE_PORT),
                            ..HTTPGetAction::default()
                        }),
                        period_seconds: Some(5),
                        ..Probe::default()
                    }),
                    ..Container::default()
                }],
                ..PodSpec::default()
            },
        );
        // A pod reads its token from the Secret when it starts: a new token (setup with
        // "replace", or a cluster's first own token) must roll the pod, so the template
        // names the token's digest (never the token).
        if let (Some(token), Some(template)) = (
            &install.token,
            server
                .spec
                .as_mut()
                .and_then(|spec| spec.template.metadata.as_mut()),
        ) {
            let digest = crate::kubeconfig::sha256_hex(token.as_bytes());
            template.annotations = Some(BTreeMap::from([(TOKEN_DIGEST.to_owned(), digest)]));
        }
        server
    }

    fn service(&self, name: &str, component: &str, port: i32, node_port: Option<u16>) -> Service {
        Service {
            metadata: self.meta(name, component, true),
            spec: Some(ServiceSpec {
                type_: Some(
                    if node_port.is_some() {
                        "NodePort"
                    } else {
                        "ClusterIP"
                    }
                    .into(),
                ),
                selector: Some(selector(component)),
                ports: Some(vec![ServicePort {
                    name: Some("main".into()),
                    port,
                    target_port: Some(IntOrString::Int(port)),
                    node_port: node_port.map(i32::from),
                    protocol: Some("TCP".into()),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }
}

/// Verbs of a kind the local service manages.
const MANAGE: [&str; 7] = [
    "get", "list", "watch", "create", "update", "patch", "delete",
];
/// Verbs of a kind it only reads.
const READ: [&str; 3] = ["get", "list", "watch"];

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

/// What the local config service may do cluster-wide: read Services (node ports are
/// cluster-wide, so allocation reads them all) and nodes, and get StorageClasses (an
/// update that grows a volume first checks that its class allows expansion). It writes
/// nothing outside the
/// instances' namespace, except, with local volumes (`local_volume_root`), their
/// PersistentVolumes, which are cluster-scoped (server-side applied: create and patch).
fn cluster_role(install: &Install) -> ClusterRole {
    let mut rules = vec![
        rule("", &["services", "nodes"], &READ),
        rule("storage.k8s.io", &["storageclasses"], &["get"]),
    ];
    if install.local_volume_root.is_some() {
        rules.push(rule(
            "",
            &["persistentvolumes"],
            &["get", "list", "watch", "create", "patch", "delete"],
        ));
    }
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(FRAMEDB_CONFIG.to_owned()),
            labels: Some(component_labels(FRAMEDB_CONFIG)),
            ..ObjectMeta::default()
        },
        rules: Some(rules),
        ..ClusterRole::default()
    }
}

/// `ready/wanted ready`, as `kubectl get` shows a workload (one replica when unsaid).
fn ready_of(ready: Option<i32>, wanted: Option<i32>) -> String {
    format!("{}/{} ready", ready.unwrap_or(0), wanted.unwrap_or(1))
}

fn service_detail(service: &Service) -> Option<String> {
    let spec = service.spec.as_ref()?;
    let kind = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    let ports: Vec<String> = spec
        .ports
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|p| match p.node_port {
            Some(node_port) => format!("{}:{node_port}", p.port),
            None => p.port.to_string(),
        })
        .collect();
    Some(format!("{kind} {}", ports.join(",")))
}

/// One component's presence and a word on its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ComponentState {
    /// The object's name.
    pub name: String,
    /// Whether it exists.
    pub exists: bool,
    /// Its phase, readiness or ports, as the kind has it.
    pub detail: String,
}

/// One pod of the config service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PodState {
    /// The pod's name.
    pub name: String,
    /// `mongodb` or `framedb-config`.
    pub component: String,
    /// Its phase, or `Terminating` while it is being deleted (as kubectl shows it).
    pub phase: String,
    /// Whether it is Ready and not being deleted.
    pub ready: bool,
}

/// `layout` as the server's environment variables (`FRAMEDB_TIDB_VERSION`, ...); a local
/// volume root is the setup body's to give (it also changes the local service's rights).
pub fn layout_flags(layout: &Layout) -> Vec<(&'static str, String)> {
    let mut flags = vec![
        ("FRAMEDB_NAMESPACE", layout.namespace.clone()),
        ("FRAMEDB_TIDB_VERSION", layout.tidb_version.clone()),
        ("FRAMEDB_IMAGE_PREFIX", layout.image_prefix.clone()),
        ("FRAMEDB_NODE_LABEL", layout.node_label.clone()),
        ("FRAMEDB_HELPER_IMAGE", layout.helper_image.clone()),
        (
            "FRAMEDB_INSTANCE_RESOURCES",
            layout.resources.as_str().to_owned(),
        ),
    ];
    if let Storage::Dynamic {
        storage_class: Some(class),
    } = &layout.storage
    {
        flags.push(("FRAMEDB_STORAGE_CLASS", class.clone()));
    }
    if !layout.image_pull_secrets.is_empty() {
        flags.push((
            "FRAMEDB_IMAGE_PULL_SECRETS",
            layout.image_pull_secrets.join(","),
        ));
    }
    flags
}

/// The layout flags (and status limits) a local service was installed with, as its
/// Deployment says.
const REPORTED_FLAGS: [&str; 11] = [
    "FRAMEDB_IMAGE_PULL_SECRETS",
    "FRAMEDB_HELPER_IMAGE",
    "FRAMEDB_NAMESPACE",
    "FRAMEDB_TIDB_VERSION",
    "FRAMEDB_IMAGE_PREFIX",
    "FRAMEDB_NODE_LABEL",
    "FRAMEDB_INSTANCE_RESOURCES",
    "FRAMEDB_STORAGE_CLASS",
    "FRAMEDB_LOCAL_VOLUME_ROOT",
    "FRAMEDB_KUBE_STATUS_RESTART_LIMIT",
    "FRAMEDB_KUBE_STATUS_STUCK_AFTER_SECS",
];

/// The layout flags in the local service `deployment`'s environment.
fn installed_flags(deployment: &Deployment) -> BTreeMap<String, String> {
    let containers = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .map(|pod| pod.containers.as_slice())
        .unwrap_or_default();
    containers
        .iter()
        .flat_map(|c| c.env.as_deref().unwrap_or_default())
        .filter(|e| REPORTED_FLAGS.contains(&e.name.as_str()))
        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
        .collect()
}

/// The MongoDB image a config service runs by default.
pub const DEFAULT_MONGO_IMAGE: &str = "docker.io/library/mongo:7.0";
/// FrameDB's server image a config service runs by default: this build's version, where
/// the project publishes it (the README, "Running on a real cluster").
pub const DEFAULT_SERVER_IMAGE: &str =
    concat!("ghcr.io/framedb/framedb-server:", env!("CARGO_PKG_VERSION"));

/// The state of a cluster's config service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Report {
    /// Whether every component exists and has a ready pod.
    pub ready: bool,
    /// The namespace.
    pub namespace: ComponentState,
    /// `framedb-config`, the local service.
    pub deployments: Vec<ComponentState>,
    /// `mongodb`, its registry.
    pub stateful_sets: Vec<ComponentState>,
    /// `mongodb`, `framedb-local-config` and `framedb-config-service`.
    pub services: Vec<ComponentState>,
    /// MongoDB's claim (`data-mongodb-0`).
    pub persistent_volume_claim: ComponentState,
    /// The pods of both workloads.
    pub pods: Vec<PodState>,
    /// The layout the local service runs with (`FRAMEDB_TIDB_VERSION` and the other
    /// layout flags), read from its Deployment; empty when it is not installed.
    pub settings: BTreeMap<String, String>,
}

impl Report {
    fn new(
        namespace: ComponentState,
        deployments: Vec<ComponentState>,
        stateful_sets: Vec<ComponentState>,
        services: Vec<ComponentState>,
        persistent_volume_claim: ComponentState,
        pods: Vec<PodState>,
        settings: BTreeMap<String, String>,
    ) -> Self {
        let ready = namespace.exists
            && deployments.iter().all(|d| d.exists)
            && stateful_sets.iter().all(|s| s.exists)
            && services.iter().all(|s| s.exists)
            && persistent_volume_claim.exists
            && [MONGODB, FRAMEDB_CONFIG]
                .iter()
                .all(|component| pods.iter().any(|p| p.component == *component && p.ready));
        Self {
            ready,
            namespace,
            deployments,
            stateful_sets,
            services,
            persistent_volume_claim,
            pods,
            settings,
        }
    }

    fn absent(namespace: ComponentState) -> Self {
        let missing = |name: &str| ComponentState {
            name: name.to_owned(),
            exists: false,
            detail: String::new(),
        };
        Self::new(
            namespace,
            vec![missing(FRAMEDB_CONFIG)],
            vec![missing(MONGODB)],
            vec![
                missing(MONGODB),
                missing(LOCAL_SERVICE),
                missing(NODE_PORT_SERVICE),
            ],
            missing(MONGODB_CLAIM),
            Vec::new(),
            BTreeMap::new(),
        )
    }
}
