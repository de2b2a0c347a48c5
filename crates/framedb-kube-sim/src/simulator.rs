//! One simulated cluster: [`Simulator`] serves it on loopback, and [`SimConfig`] and
//! [`SimNode`] say how it starts.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::faults::{Faults, RequestStats, seed_from};
use super::images::{ContainerFault, DEFAULT_IMAGES};
use super::json::now_rfc3339;
use super::managed::Fields;
use super::resources::{NODES, STORAGE_CLASSES, by_plural};
use super::services::{NODE_PORT_MAX, NODE_PORT_MIN};
use super::shared::Shared;
use super::store::{CHANGES_KEPT as DEFAULT_HISTORY, PatchKind, State};
use super::{admission, quantity, routes};

/// The bearer token written into the simulator's kubeconfig. The simulator accepts any
/// request; the token only exists so that clients exercise their token handling.
const TOKEN: &str = "framedb-simulator";

/// How often readiness deadlines are checked between requests.
const TICK: Duration = Duration::from_millis(50);

/// A simulated node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimNode {
    /// The Node's name.
    pub name: String,
    /// The Node's labels (what node selectors match).
    pub labels: BTreeMap<String, String>,
    /// Its capacity (and allocatable) where it differs from a kubelet's default of 8
    /// CPUs, 32Gi of memory and 110 pods, e.g. `("memory", "4Gi")`.
    pub capacity: BTreeMap<String, String>,
    /// Directories that exist on the node from the start (what an operator prepared,
    /// e.g. a `local` PersistentVolume's path); see [`SimNode::with_directory`].
    pub directories: BTreeSet<String>,
}

impl From<&str> for SimNode {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl From<String> for SimNode {
    fn from(name: String) -> Self {
        Self::new(name)
    }
}

impl SimNode {
    /// A node labelled `kubernetes.io/hostname=<name>`, as kubelets label themselves.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        let labels = BTreeMap::from([("kubernetes.io/hostname".to_string(), name.clone())]);
        Self {
            name,
            labels,
            capacity: BTreeMap::new(),
            directories: BTreeSet::new(),
        }
    }

    /// Sets a resource's capacity (`cpu`, `memory`, `pods`), which is also what pods may
    /// request of the node in all.
    pub fn with_capacity(
        mut self,
        resource: impl Into<String>,
        quantity: impl Into<String>,
    ) -> Self {
        self.capacity.insert(resource.into(), quantity.into());
        self
    }

    /// Makes directory `path` exist on the node from the start, as an operator's setup
    /// does: a `local` PersistentVolume at a path that does not exist on its node cannot
    /// be mounted (the pod stays `ContainerCreating` with a `FailedMount` event).
    pub fn with_directory(mut self, path: impl Into<String>) -> Self {
        self.directories.insert(path.into());
        self
    }

    /// Adds (or replaces) a label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
}

/// What a node's kubelet says of it, through its `Ready` condition; see
/// [`Simulator::set_node_ready`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeReadiness {
    /// `Ready=True`: the kubelet is healthy and posting.
    Ready,
    /// `Ready=False`: the kubelet posts that the node is not ready.
    NotReady,
    /// `Ready=Unknown`: the kubelet stopped posting (the node is down or cut off).
    Unreachable,
}

/// How a [`Simulator`] starts.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The cluster's name: the name of the cluster, user and context in the kubeconfig.
    pub name: String,
    /// The nodes present at start.
    pub nodes: Vec<SimNode>,
    /// How long a started container's program takes to answer its startup and
    /// readiness probes (one without probes is ready once it runs).
    pub pod_ready_after: Duration,
    /// Latency added to every request (changeable later with [`Faults::set_latency`]).
    pub latency: Duration,
    /// The API server's `--service-node-port-range` (30000-32767 by default).
    pub node_ports: std::ops::RangeInclusive<u16>,
    /// Simulated seconds per real second for the cluster's grace periods (1: real time).
    /// See [`SimConfig::with_time_scale`].
    pub time_scale: f64,
    /// How many changes the cluster's history keeps (its etcd compaction); see
    /// [`SimConfig::with_history`].
    pub history: usize,
    /// How often a watch that allows bookmarks gets one (real time); `None`: once a
    /// simulated minute. See [`SimConfig::with_bookmark_interval`].
    pub bookmark_interval: Option<Duration>,
    /// The cluster's default StorageClass, or none; see [`SimStorageClass`].
    pub default_storage_class: Option<SimStorageClass>,
    /// The images its registry holds (references as a client writes them: `busybox`
    /// is `docker.io/library/busybox:latest`): [`DEFAULT_IMAGES`] unless changed with
    /// [`SimConfig::with_images`] and [`SimConfig::without_images`]. A pod's container
    /// of any other image does not start (`ErrImagePull`, then `ImagePullBackOff`)
    /// until [`Simulator::push_image`] adds it.
    pub images: Vec<String>,
}

/// The default StorageClass a simulator starts with, annotated
/// `storageclass.kubernetes.io/is-default-class: "true"` (kind's is much like it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimStorageClass {
    /// Its name, `standard` by default.
    pub name: String,
    /// Its provisioner, `rancher.io/local-path` by default.
    pub provisioner: String,
    /// `volumeBindingMode`: `WaitForFirstConsumer` by default (claims bind once a pod
    /// using them is scheduled, on that pod's node); `Immediate` when false.
    pub wait_for_first_consumer: bool,
    /// `allowVolumeExpansion`: whether bound claims of the class may grow (false by
    /// default).
    pub allow_volume_expansion: bool,
}

impl Default for SimStorageClass {
    fn default() -> Self {
        Self {
            name: "standard".into(),
            provisioner: "rancher.io/local-path".into(),
            wait_for_first_consumer: true,
            allow_volume_expansion: false,
        }
    }
}

impl SimStorageClass {
    /// The StorageClass object.
    fn body(&self) -> Value {
        let mode = if self.wait_for_first_consumer {
            "WaitForFirstConsumer"
        } else {
            "Immediate"
        };
        json!({
            "metadata": {
                "name": self.name,
                "annotations": { "storageclass.kubernetes.io/is-default-class": "true" },
            },
            "provisioner": self.provisioner,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": mode,
            "allowVolumeExpansion": self.allow_volume_expansion,
        })
    }
}

impl SimConfig {
    /// A cluster named `name` with nodes `node-a` and `node-b`, pods ready at once, no
    /// added latency, and grace periods in real time.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            nodes: vec![SimNode::new("node-a"), SimNode::new("node-b")],
            pod_ready_after: Duration::ZERO,
            latency: Duration::ZERO,
            node_ports: NODE_PORT_MIN..=NODE_PORT_MAX,
            time_scale: 1.0,
            history: DEFAULT_HISTORY,
            bookmark_interval: None,
            default_storage_class: Some(SimStorageClass::default()),
            images: DEFAULT_IMAGES.iter().map(|i| (*i).to_string()).collect(),
        }
    }

    /// Adds an image to the cluster's registry (`pingcap/tidb:v8.5.1`,
    /// `registry.example/app@sha256:...`).
    pub fn with_image(mut self, image: impl Into<String>) -> Self {
        self.images.push(image.into());
        self
    }

    /// Adds images to the cluster's registry.
    pub fn with_images<I>(mut self, images: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.images.extend(images.into_iter().map(Into::into));
        self
    }

    /// Empties the cluster's registry, [`DEFAULT_IMAGES`] included: it then holds only
    /// what [`SimConfig::with_images`] adds after this (as the demo fleet holds exactly
    /// the images FrameDB deploys).
    pub fn without_images(mut self) -> Self {
        self.images.clear();
        self
    }

    /// Keeps only the last `changes` writes of the cluster's history (1000 by default),
    /// as etcd's compaction keeps only recent revisions: a watch resuming from an older
    /// resourceVersion gets 410 `Expired` (and relists), a list continued with a token
    /// of an older first page gets 410 `Expired` with a token to go on inconsistently,
    /// and a list at exactly an older version gets 410. Small values let tests compact
    /// in a few writes instead of waiting for it.
    pub fn with_history(mut self, changes: usize) -> Self {
        self.history = changes.max(1);
        self
    }

    /// Sends watches that allow bookmarks one every `interval` of real time, instead of
    /// once a simulated minute (kube-apiserver's watch cache sends them about once a
    /// minute, and as a watch's timeout runs out).
    pub fn with_bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = Some(interval);
        self
    }

    /// A cluster without a default StorageClass: a claim naming no class binds only to
    /// a matching volume, and stays `Pending` without one.
    pub fn without_default_storage_class(mut self) -> Self {
        self.default_storage_class = None;
        self
    }

    /// Makes the default StorageClass bind its claims at once (`volumeBindingMode:
    /// Immediate`) instead of waiting for their first consumer.
    pub fn with_immediate_binding(mut self) -> Self {
        if let Some(class) = &mut self.default_storage_class {
            class.wait_for_first_consumer = false;
        }
        self
    }

    /// Sets the default StorageClass's `allowVolumeExpansion`.
    pub fn with_volume_expansion(mut self, allowed: bool) -> Self {
        if let Some(class) = &mut self.default_storage_class {
            class.allow_volume_expansion = allowed;
        }
        self
    }

    /// Runs the cluster's clock `scale` times faster than real time for what waits on
    /// it: with 60, a pod's 30-second grace period ends half a real second after its
    /// deletion. Timestamps written into objects stay wall-clock (a pod's
    /// `deletionTimestamp` is when a real kubelet would have to be done), so a scaled
    /// pod goes before its `deletionTimestamp`, as one whose containers exit early does.
    /// `pod_ready_after` is not scaled.
    ///
    /// # Panics
    ///
    /// If `scale` is not a positive, finite number.
    pub fn with_time_scale(mut self, scale: f64) -> Self {
        assert!(
            scale.is_finite() && scale > 0.0,
            "a simulator's time scale must be a positive, finite number, not {scale}"
        );
        self.time_scale = scale;
        self
    }

    /// Replaces the nodes.
    pub fn with_nodes(mut self, nodes: impl IntoIterator<Item = SimNode>) -> Self {
        self.nodes = nodes.into_iter().collect();
        self
    }

    /// Sets how long a started container's program takes to answer its probes.
    pub fn with_pod_ready_after(mut self, delay: Duration) -> Self {
        self.pod_ready_after = delay;
        self
    }

    /// Sets the latency added to every request.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Sets the node-port range, as the API server's `--service-node-port-range` does:
    /// a Service asking for a port outside it is refused with 422 "provided port is not
    /// in the valid range".
    pub fn with_node_port_range(mut self, ports: std::ops::RangeInclusive<u16>) -> Self {
        self.node_ports = ports;
        self
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self::new("sim")
    }
}

/// A running simulated Kubernetes API server.
///
/// It serves on a task of the Tokio runtime it was started on, until
/// [`shutdown`](Simulator::shutdown), until the `Simulator` is dropped, or until that
/// runtime stops.
pub struct Simulator {
    name: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    ticker: JoinHandle<()>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("name", &self.name)
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Binds `127.0.0.1:0` and starts serving; the cluster has the namespaces `default`,
    /// `kube-system`, `kube-public` and `kube-node-lease`, the `kubernetes` Service in
    /// `default`, and the configured nodes.
    pub async fn start(config: SimConfig) -> std::io::Result<Simulator> {
        for node in &config.nodes {
            check_node_name(&node.name)?;
            check_capacity(node)?;
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let seed = seed_from(&config.name);
        let mut state = State::new(seed, config.pod_ready_after, config.time_scale);
        state.changes.keep(config.history);
        state.bookmark_every = config
            .bookmark_interval
            .unwrap_or_else(|| Duration::from_secs(60).div_f64(config.time_scale))
            .max(Duration::from_millis(1));
        state.alloc.node_port_range = config.node_ports.clone();
        for image in &config.images {
            if !state.runtime.registry.push(image) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("invalid image reference {image:?}"),
                ));
            }
        }
        for node in &config.nodes {
            state
                .create(by_plural(NODES), None, node_body(node), Fields::Kept)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.message))?;
            state
                .directories
                .entry(node.name.clone())
                .or_default()
                .extend(node.directories.iter().cloned());
        }
        if let Some(class) = &config.default_storage_class {
            state
                .create(by_plural(STORAGE_CLASSES), None, class.body(), Fields::Kept)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.message))?;
        }
        state.reconcile(Instant::now());
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            faults: Faults::new(seed, config.latency),
            stats: Mutex::new(RequestStats::default()),
            address: addr.to_string(),
            watch_epoch: tokio::sync::watch::channel(0).0,
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let app = routes::router(shared.clone());
        let server = tokio::spawn(routes::serve(listener, app, async {
            let _ = stopped.await;
        }));
        let ticker = tokio::spawn(tick(Arc::downgrade(&shared)));
        tracing::debug!(cluster = %config.name, %addr, "Kubernetes simulator started");
        Ok(Simulator {
            name: config.name,
            addr,
            shared,
            stop: Some(stop),
            server: Some(server),
            ticker,
        })
    }

    /// The server's base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The cluster name given in [`SimConfig::name`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kubeconfig as JSON: one cluster, user and context, all named after the
    /// cluster, with inline data only (a static bearer token; nothing on disk).
    pub fn kubeconfig_json(&self) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": self.name, "cluster": { "server": self.url() } }],
            "users": [{ "name": self.name, "user": { "token": TOKEN } }],
            "contexts": [{ "name": self.name, "context": { "cluster": self.name, "user": self.name, "namespace": "default" } }],
            "current-context": self.name,
            "preferences": {},
        })
    }

    /// The kubeconfig, parsed (see [`kubeconfig_json`](Simulator::kubeconfig_json)).
    pub fn kubeconfig(&self) -> kube::config::Kubeconfig {
        serde_json::from_value(self.kubeconfig_json())
            .expect("the simulator's kubeconfig is well-formed")
    }

    /// Writes the kubeconfig (as JSON, which `kubectl --kubeconfig` reads like YAML).
    ///
    /// The file is readable by its owner only, and is written beside `path` first and
    /// then renamed into place, so that a link already at `path` is replaced, not followed.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let text =
            serde_json::to_vec_pretty(&self.kubeconfig_json()).map_err(std::io::Error::other)?;
        let mut staged = path.as_os_str().to_owned();
        staged.push(format!(".{}.tmp", std::process::id()));
        let staged = std::path::PathBuf::from(staged);
        let _ = std::fs::remove_file(&staged);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&staged)?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&staged, path)
    }

    /// A client for this cluster, built with `kube::Config::from_custom_kubeconfig`.
    ///
    /// kube-rs' default retry of 429/503/504 answers (up to 15 times, with exponential
    /// backoff) is switched off, so that injected failures reach the caller at once.
    pub async fn client(&self) -> kube::Client {
        let options = kube::config::KubeConfigOptions::default();
        let mut config = kube::Config::from_custom_kubeconfig(self.kubeconfig(), &options)
            .await
            .expect("the simulator's kubeconfig is usable");
        config.default_retry = false;
        kube::Client::try_from(config).expect("a client for the simulator")
    }

    /// The fault injector.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// The requests served so far, by verb and resource.
    pub fn requests(&self) -> RequestStats {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Adds a node (or replaces the labels of an existing one); pending pods that fit
    /// it are scheduled at once.
    ///
    /// # Panics
    ///
    /// If the name is not a valid node name (a DNS-1123 subdomain).
    pub fn add_node(&self, node: SimNode) {
        if let Err(e) = check_node_name(&node.name) {
            panic!("{e}");
        }
        let nodes = by_plural(NODES);
        let mut state = self.shared.state();
        let result = if state.get(nodes, None, &node.name).is_ok() {
            let patch = json!({ "metadata": { "labels": node.labels } });
            state.patch(
                nodes,
                None,
                &node.name,
                (PatchKind::Merge, &patch),
                false,
                None,
            )
        } else {
            state.create(nodes, None, node_body(&node), Fields::Kept)
        };
        if let Err(e) = result {
            panic!("adding node {}: {}", node.name, e.message);
        }
        state
            .directories
            .entry(node.name.clone())
            .or_default()
            .extend(node.directories);
        state.reconcile(Instant::now());
    }

    /// Pushes an image to the cluster's registry: a pod waiting for it (`ImagePullBackOff`)
    /// pulls it at its next retry, within the kubelet's back-off (10 simulated seconds
    /// after its first failure, doubling up to five minutes).
    ///
    /// # Panics
    ///
    /// If `image` is not an image reference.
    pub fn push_image(&self, image: &str) {
        let mut state = self.shared.state();
        assert!(
            state.runtime.registry.push(image),
            "invalid image reference {image:?}"
        );
    }

    /// Injects a container fault (a crash loop, OOM kills, a slow start; see
    /// [`ContainerFault`]): it applies to the containers it names as they next start or
    /// restart, the latest injected first where several name the same container.
    pub fn inject_container_fault(&self, fault: ContainerFault) {
        self.shared.state().runtime.faults.push(fault);
    }

    /// Lifts every container fault: a crashing container's next restart (after its
    /// back-off) runs normally; a running one already doomed still ends as it was told.
    pub fn clear_container_faults(&self) {
        self.shared.state().runtime.faults.clear();
    }

    /// Sets node `name`'s `Ready` condition, as `kubectl patch node NAME
    /// --subresource=status` does: [`NodeReadiness::NotReady`] stands for a kubelet that
    /// posts `Ready=False`, [`NodeReadiness::Unreachable`] for one that stopped posting
    /// (`Unknown`), [`NodeReadiness::Ready`] for a kubelet back to health. The condition
    /// sticks (the simulator has no heartbeat that would overwrite it), and the node
    /// lifecycle controller acts on it on the simulator's clock (see the crate's
    /// [Node lifecycle](crate#node-lifecycle)).
    ///
    /// # Panics
    ///
    /// If there is no such node.
    pub fn set_node_ready(&self, name: &str, readiness: NodeReadiness) {
        let (status, reason, message) = match readiness {
            NodeReadiness::Ready => ("True", "KubeletReady", "kubelet is posting ready status"),
            NodeReadiness::NotReady => (
                "False",
                "KubeletNotReady",
                "container runtime network not ready: NetworkReady=false",
            ),
            NodeReadiness::Unreachable => (
                "Unknown",
                "NodeStatusUnknown",
                "Kubelet stopped posting node status.",
            ),
        };
        let patch = json!({ "status": { "conditions": [{
            "type": "Ready", "status": status, "reason": reason, "message": message,
            "lastTransitionTime": now_rfc3339(),
        }] } });
        let mut state = self.shared.state();
        if let Err(e) = state.patch(
            by_plural(NODES),
            None,
            name,
            (PatchKind::Strategic, &patch),
            true,
            None,
        ) {
            panic!("setting node {name} ready {status}: {}", e.message);
        }
        state.reconcile(Instant::now());
    }

    /// Ends every open watch, as a restart of the API server does; clients then watch
    /// again (or list again) as they would after one.
    pub fn end_watches(&self) {
        self.shared.watch_epoch.send_modify(|epoch| *epoch += 1);
    }

    /// Stops serving and waits (briefly) for open connections to close.
    pub async fn shutdown(mut self) {
        self.stop_serving();
        if let Some(server) = self.server.take() {
            // Idle keep-alive connections close at once; a hung one must not hang the caller.
            let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        }
    }

    fn stop_serving(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Watches would otherwise hold their connections open until their timeouts.
        self.end_watches();
        self.ticker.abort();
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop_serving();
    }
}

fn check_node_name(name: &str) -> std::io::Result<()> {
    match admission::validate_name(by_plural(NODES), name) {
        None => Ok(()),
        Some(_) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("invalid simulated node name {name:?}: it must be a DNS-1123 subdomain"),
        )),
    }
}

/// A node's capacity names only what the scheduler counts, each as a quantity (CPU in
/// cores or millicores, memory in bytes with a suffix, pods as a count).
fn check_capacity(node: &SimNode) -> std::io::Result<()> {
    for (resource, amount) in &node.capacity {
        let read = match resource.as_str() {
            "cpu" => quantity::millicores(amount),
            "memory" | "pods" => quantity::units(amount),
            _ => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "node {:?}: unknown capacity {resource:?}: it must be cpu, memory or pods",
                        node.name
                    ),
                ));
            }
        };
        if read.is_none() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "node {:?}: capacity {resource}={amount:?} is not a quantity (e.g. 64, 500m, 256Gi)",
                    node.name
                ),
            ));
        }
    }
    Ok(())
}

fn node_body(node: &SimNode) -> Value {
    json!({
        "metadata": { "name": node.name, "labels": node.labels },
        "status": { "capacity": node.capacity },
    })
}

/// Keeps readiness current between requests, until the simulator is gone.
async fn tick(shared: Weak<Shared>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        let Some(shared) = shared.upgrade() else {
            break;
        };
        shared.state().tick(Instant::now());
    }
}
