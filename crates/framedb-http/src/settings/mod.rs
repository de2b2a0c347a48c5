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

mod groups;
mod secret;

use std::path::PathBuf;

use framedb_core::ClusterId;

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

    /// Images the clusters' registries hold besides those FrameDB deploys by default
    /// (e.g. what local services run with another `--tidb-version` or `--image-prefix`
    /// deploy); any other image fails to pull.
    #[arg(long, env = "FRAMEDB_SIM_IMAGES", value_delimiter = ',')]
    pub images: Vec<String>,

    /// Where kubeconfigs go, and how fast pods become ready.
    #[command(flatten)]
    pub demo: DemoSettings,
}

fn default_names(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}
