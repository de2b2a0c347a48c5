//! What each role of `framedb-server` is configured with. Each group of settings is also
//! a group of command-line flags (with environment fallbacks and a help heading), so the
//! command line ([`crate::cli`]) and programs that build a service themselves (tests, the
//! benchmark, an embedding program) fill in the same structs; `Default` gives the flags'
//! defaults.
//!
//! | group | flags | global | local | simulate |
//! |---|---|---|---|---|
//! | [`ServeSettings`] | `--listen`, `--token` | yes | yes | |
//! | [`MongoSettings`] | `--mongo-*` | yes | yes | |
//! | [`KubeSettings`] | `--kube-*` | yes | yes | |
//! | [`LayoutSettings`] | `--namespace`, `--tidb-version`, `--image-prefix`, `--node-label`, `--storage-class`, `--local-volume-root` | yes | yes | |
//! | [`FleetSettings`] | `--local-service`, `--known-cluster`, `--local-token`, `--local-*-timeout-ms`, `--cluster`, `--in-cluster` | yes | | |
//! | [`ClusterSettings`] | `--cluster-id`, `--kubeconfig` | | yes | |
//! | [`DemoSettings`] | `--state-dir`, `--demo-ready-after-ms`, `--demo-time-scale` | yes | | yes |
//! | [`SimulateSettings`] | `--clusters`, `--nodes`, `--images` | | | yes |
//!
//! `manifests` ([`ManifestsSettings`]) takes the [`LayoutSettings`] and an instance's
//! fields, and prints what a create would make.

mod groups;
mod secret;

use std::path::PathBuf;

use framedb_core::{ClusterId, FramedbId, NodeId, ResourceProfile, StorageSize};

pub use groups::{
    DEFAULT_LISTEN, DemoSettings, FleetSettings, KubeSettings, LayoutSettings, MongoSettings,
    ServeSettings,
};
pub use secret::Secret;

/// The global service: the public API on the registry, and the fleet's clusters.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GlobalSettings {
    /// Where and how it serves.
    #[command(flatten)]
    pub serve: ServeSettings,
    /// Its registry.
    #[command(flatten)]
    pub mongo: MongoSettings,
    /// Its clusters.
    #[command(flatten)]
    pub fleet: FleetSettings,
    /// Calls to clusters' APIs (with `--cluster`, and for `/framedb-config/...`).
    #[command(flatten)]
    pub kube: KubeSettings,
    /// The instances' layout (with `--cluster`, and in the embedded default).
    #[command(flatten)]
    pub layout: LayoutSettings,
    /// The embedded default's simulated clusters.
    #[command(flatten)]
    pub demo: DemoSettings,
}

impl GlobalSettings {
    /// The token local services require: `--local-token` (never this server's own).
    pub fn local_token(&self) -> Option<String> {
        self.fleet
            .local_token
            .as_ref()
            .map(|token| token.expose().to_owned())
            .filter(|token| !token.is_empty())
    }
}

/// `framedb-server manifests`: the objects a create of one instance makes on its cluster,
/// printed instead of made (README, "Running on a real cluster").
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Manifests role")]
pub struct ManifestsSettings {
    /// The instance's id.
    #[arg(long, env = "FRAMEDB_MANIFEST_ID", value_parser = |s: &str| FramedbId::new(s))]
    pub framedb_id: FramedbId,
    /// The cluster it is for (named on its objects).
    #[arg(long, env = "FRAMEDB_MANIFEST_CLUSTER", default_value = "cluster-01", value_parser = |s: &str| ClusterId::new(s))]
    pub cluster_id: ClusterId,
    /// The node it is pinned to.
    #[arg(long, env = "FRAMEDB_MANIFEST_NODE", value_parser = |s: &str| NodeId::new(s))]
    pub node_id: NodeId,
    /// Its volume's size.
    #[arg(long, env = "FRAMEDB_MANIFEST_STORAGE_SIZE", default_value = "2Gi", value_parser = |s: &str| StorageSize::new(s))]
    pub storage_size: StorageSize,
    /// Its node port (30900-30999).
    #[arg(long, env = "FRAMEDB_MANIFEST_PORT", default_value_t = 30900, value_parser = clap::value_parser!(u16).range(30900..=30999))]
    pub port: u16,
    /// Its resource profile (the layout's `--instance-resources` unless given).
    #[arg(long, env = "FRAMEDB_MANIFEST_RESOURCES", value_parser = ResourceProfile::parse)]
    pub resources: Option<ResourceProfile>,
    /// The instances' layout.
    #[command(flatten)]
    pub layout: LayoutSettings,
}

impl ManifestsSettings {
    /// The objects, as a `v1` `List`, under a new create's stamp and with a newly
    /// generated root password, as a create draws them.
    ///
    /// # Errors
    /// [`framedb_core::Error`] when no stamp or password can be drawn (the system's random
    /// source failed).
    pub fn manifests(&self) -> framedb_core::Result<serde_json::Value> {
        let spec = framedb_core::DeploymentSpec {
            framedb_id: self.framedb_id.clone(),
            cluster_id: self.cluster_id.clone(),
            node_id: self.node_id.clone(),
            storage_size: self.storage_size.clone(),
            port: self.port,
            stamp: framedb_core::Stamp::generate()?,
            deletion_policy: framedb_core::DeletionPolicy::default(),
            created_at: framedb_core::Timestamp::now(),
            metadata: framedb_core::Metadata::default(),
            resources: self.resources,
        };
        let credentials = framedb_core::Credentials::generate()?;
        Ok(self.layout.layout().manifests(&spec, &credentials))
    }
}

/// How the local config service reaches its cluster.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Local role")]
pub struct ClusterSettings {
    /// The id of the cluster this service runs in.
    #[arg(long, env = "FRAMEDB_CLUSTER_ID")]
    pub cluster_id: ClusterId,

    /// Reach the cluster through this kubeconfig file instead of the pod's service
    /// account.
    #[arg(long, env = "FRAMEDB_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Status streams served at once (each global replica follows one); more are answered
    /// 503.
    #[arg(long, env = "FRAMEDB_MAX_STATUS_STREAMS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_status_streams: u32,
}

/// A cluster's local config service: the internal API that does the Kubernetes work for
/// one cluster, on its own registry.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalSettings {
    /// Where and how it serves.
    #[command(flatten)]
    pub serve: ServeSettings,
    /// Its cluster.
    #[command(flatten)]
    pub cluster: ClusterSettings,
    /// Its registry.
    #[command(flatten)]
    pub mongo: MongoSettings,
    /// Calls to its cluster's API.
    #[command(flatten)]
    pub kube: KubeSettings,
    /// The instances' layout.
    #[command(flatten)]
    pub layout: LayoutSettings,
}

impl LocalSettings {
    /// A local service for `cluster_id`, reached through the kubeconfig file
    /// `kubeconfig`, with every other setting at its default.
    pub fn new(cluster_id: ClusterId, kubeconfig: Option<PathBuf>) -> Self {
        Self {
            serve: ServeSettings::default(),
            cluster: ClusterSettings {
                cluster_id,
                kubeconfig,
                max_status_streams: 16,
            },
            mongo: MongoSettings::default(),
            kube: KubeSettings::default(),
            layout: LayoutSettings::default(),
        }
    }
}

/// Simulated clusters alone, for a fleet of separate processes on one machine.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateSettings {
    /// The clusters to simulate.
    #[arg(long, env = "FRAMEDB_SIM_CLUSTERS", value_delimiter = ',', default_values_t = default_names(&["cluster-01", "cluster-02"]))]
    pub clusters: Vec<String>,

    /// The nodes of each cluster.
    #[arg(long, env = "FRAMEDB_SIM_NODES", value_delimiter = ',', default_values_t = default_names(&["node-a", "node-b"]))]
    pub nodes: Vec<String>,

    /// What each node has for pods, as `resource=quantity` pairs (`cpu`, `memory`,
    /// `pods`), where it differs from a kubelet's default of 8 CPUs, 32Gi of memory and
    /// 110 pods: a small instance's pod requests 1.25 CPUs and 3.5Gi, so a default node
    /// holds 6 of them (the fleet benchmark runs `cpu=64,memory=256Gi` nodes, which hold
    /// 50 each).
    #[arg(long, env = "FRAMEDB_SIM_NODE_CAPACITY", value_delimiter = ',', value_parser = parse_capacity)]
    pub node_capacity: Vec<(String, String)>,

    /// Images the clusters' registries hold besides those FrameDB deploys by default
    /// (e.g. what local services run with another `--tidb-version` or `--image-prefix`
    /// deploy); any other image fails to pull.
    #[arg(long, env = "FRAMEDB_SIM_IMAGES", value_delimiter = ',')]
    pub images: Vec<String>,

    /// How long every request to a simulated API server waits before it is served, in
    /// milliseconds: the round-trip of a cluster that is not on this machine (the fleet
    /// benchmark runs its clusters with 5 ms).
    #[arg(long, env = "FRAMEDB_SIM_API_LATENCY_MS", default_value_t = 0)]
    pub api_latency_ms: u64,

    /// Where kubeconfigs go, and how fast pods become ready.
    #[command(flatten)]
    pub demo: DemoSettings,
}

/// A `resource=quantity` pair of `--node-capacity`; the simulator checks the quantity.
fn parse_capacity(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((resource, amount)) if !resource.is_empty() && !amount.is_empty() => {
            Ok((resource.to_owned(), amount.to_owned()))
        }
        _ => Err(format!(
            "{text:?} is not resource=quantity (e.g. cpu=64,memory=256Gi,pods=110)"
        )),
    }
}

fn default_names(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}
