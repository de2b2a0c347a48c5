//! The groups of settings that the roles share, each a group of flags under its own help
//! heading.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use framedb_core::ClusterId;
use framedb_k8s::config_service::{DEFAULT_MONGO_IMAGE, DEFAULT_SERVER_IMAGE};
use framedb_k8s::kubeconfig::Timeouts;
use framedb_k8s::{Layout, Profile, StatusLimits, Storage};
use framedb_mongo::{Durability, MongoConfig};
use url::Url;

use super::Secret;
use crate::remote::RemoteTimeouts;
use crate::remote::directory::service_url;

/// The address both roles serve on unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Where and how a role serves its API.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Serving")]
pub struct ServeSettings {
    /// Address and port to serve the API on (port 0 picks a free one; the log prints it).
    #[arg(long, env = "FRAMEDB_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Bearer token this server's API requires on every route but /healthz and /readyz.
    /// Without it the API is open, and the log says so; on an address other than loopback
    /// the server then refuses to start, unless --allow-open-api is given.
    #[arg(long, env = "FRAMEDB_API_TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,

    /// A second bearer token that /metrics takes besides --token, and that opens nothing
    /// else: what a Prometheus scraper holds, instead of a token that can create and purge.
    #[arg(long, env = "FRAMEDB_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<Secret>,

    /// Serve without --token on an address other than loopback: the API is then open to
    /// anyone who can reach it.
    #[arg(long, env = "FRAMEDB_ALLOW_OPEN_API")]
    pub allow_open_api: bool,

    /// Seconds a client may take to send a request's headers before it is disconnected.
    #[arg(long, env = "FRAMEDB_HEADER_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=30))]
    pub header_timeout_secs: u64,

    /// Seconds a request may take before it is answered 504 (a create or delete under way
    /// still finishes; status streams are not cut).
    #[arg(long, env = "FRAMEDB_REQUEST_TIMEOUT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_secs: u64,

    /// Serve over TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "FRAMEDB_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "FRAMEDB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Requests served at once; more are answered 503 at once.
    #[arg(long, env = "FRAMEDB_MAX_REQUESTS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_requests: u32,

    /// Seconds between two reconcile passes, which settle what a crash, restart or
    /// timeout left half done (creates that never recorded their port, deletes that
    /// stopped halfway); one runs at start-up too. 0 turns them off.
    #[arg(long, env = "FRAMEDB_RECONCILE_INTERVAL_SECS", default_value_t = 30)]
    pub reconcile_interval_secs: u64,

    /// Seconds after its start at which a reconcile pass takes a create that has not
    /// recorded its port for dead (its process was killed, its registry failed) and
    /// settles it. Far longer than a create takes: one that is still running then fails
    /// and undoes itself.
    #[arg(long, env = "FRAMEDB_CREATE_DEADLINE_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub create_deadline_secs: u64,
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("a socket address"),
            token: None,
            metrics_token: None,
            allow_open_api: false,
            header_timeout_secs: 10,
            request_timeout_secs: 60,
            tls_cert: None,
            tls_key: None,
            max_requests: 1024,
            reconcile_interval_secs: 30,
            create_deadline_secs: 300,
        }
    }
}

impl ServeSettings {
    /// Serving on a free loopback port, with no token: for tests and benchmarks.
    pub fn loopback() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..Self::default()
        }
    }
}

/// The registry: MongoDB, or memory.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "MongoDB")]
pub struct MongoSettings {
    /// MongoDB connection string of the registry (credentials in it are never logged).
    /// Without it the registry is in memory.
    #[arg(long = "mongo-uri", env = "FRAMEDB_MONGO_URI", hide_env_values = true)]
    pub uri: Option<Secret>,

    /// MongoDB database of the registry.
    #[arg(
        long = "mongo-database",
        env = "FRAMEDB_MONGO_DATABASE",
        default_value = "framedb"
    )]
    pub database: String,

    /// Milliseconds to wait for MongoDB to be reachable (server selection, connect).
    #[arg(
        long = "mongo-timeout-ms",
        env = "FRAMEDB_MONGO_TIMEOUT_MS",
        default_value_t = 5000
    )]
    pub timeout_ms: u64,

    /// Milliseconds a registry query may run on the server.
    #[arg(
        long = "mongo-query-timeout-ms",
        env = "FRAMEDB_MONGO_QUERY_TIMEOUT_MS",
        default_value_t = 10000
    )]
    pub query_timeout_ms: u64,

    /// When MongoDB acknowledges a registry write, and so when FrameDB answers:
    /// `journaled` (in the server's journal; survives its crash), `majority` (in the
    /// journals of a replica set's majority) or `acknowledged` (from memory; a crash can
    /// lose an answered create). It replaces any `w`/`journal` of the connection string.
    #[arg(
        long = "mongo-write-concern",
        env = "FRAMEDB_MONGO_WRITE_CONCERN",
        value_enum,
        default_value_t = WriteConcern::Journaled
    )]
    pub write_concern: WriteConcern,
}

/// The choices of `--mongo-write-concern`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WriteConcern {
    /// `j: true`.
    Journaled,
    /// `w: "majority", j: true`, read with read concern `majority`.
    Majority,
    /// `w: 1`.
    Acknowledged,
}

impl From<WriteConcern> for Durability {
    fn from(concern: WriteConcern) -> Self {
        match concern {
            WriteConcern::Journaled => Self::Journaled,
            WriteConcern::Majority => Self::Majority,
            WriteConcern::Acknowledged => Self::Acknowledged,
        }
    }
}

impl Default for MongoSettings {
    fn default() -> Self {
        Self {
            uri: None,
            database: "framedb".into(),
            timeout_ms: 5000,
            query_timeout_ms: 10000,
            write_concern: WriteConcern::Journaled,
        }
    }
}

impl MongoSettings {
    /// The driver's configuration, when a URI is set.
    pub fn config(&self) -> Option<MongoConfig> {
        let uri = self.uri.as_ref()?;
        let timeout = Duration::from_millis(self.timeout_ms);
        Some(
            MongoConfig::new(uri.expose())
                .database(self.database.clone())
                .server_selection_timeout(timeout)
                .connect_timeout(timeout)
                .query_timeout(Duration::from_millis(self.query_timeout_ms))
                .durability(self.write_concern.into()),
        )
    }
}

/// How long calls to a cluster's Kubernetes API may take.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Kubernetes")]
pub struct KubeSettings {
    /// Seconds to wait for a cluster's API to accept a connection.
    #[arg(
        long = "kube-connect-timeout-secs",
        env = "FRAMEDB_KUBE_CONNECT_TIMEOUT_SECS",
        default_value_t = 5
    )]
    pub connect_timeout_secs: u64,

    /// Seconds to wait for a cluster's API to answer a request.
    #[arg(
        long = "kube-timeout-secs",
        env = "FRAMEDB_KUBE_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub timeout_secs: u64,

    /// Restarts of a container of a pod that is not ready after which its instance reads
    /// `Failed` rather than `Provisioning` (docs/architecture.md, "Status").
    #[arg(
        long = "kube-status-restart-limit",
        env = "FRAMEDB_KUBE_STATUS_RESTART_LIMIT",
        default_value_t = StatusLimits::default().restarts,
        value_parser = clap::value_parser!(i32).range(1..)
    )]
    pub status_restart_limit: i32,

    /// Seconds for which the kubelet may tell a cause it retries (an image it cannot
    /// pull, a container it cannot create) in a pod's events before its instance reads
    /// `Failed` rather than `Provisioning`.
    #[arg(
        long = "kube-status-stuck-after-secs",
        env = "FRAMEDB_KUBE_STATUS_STUCK_AFTER_SECS",
        default_value_t = StatusLimits::default().stuck_after.as_secs()
    )]
    pub status_stuck_after_secs: u64,
}

impl Default for KubeSettings {
    fn default() -> Self {
        let limits = StatusLimits::default();
        Self {
            connect_timeout_secs: 5,
            timeout_secs: 30,
            status_restart_limit: limits.restarts,
            status_stuck_after_secs: limits.stuck_after.as_secs(),
        }
    }
}

impl KubeSettings {
    /// The clients' timeouts.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(self.connect_timeout_secs),
            read: Duration::from_secs(self.timeout_secs),
        }
    }

    /// Where instances that do not come up read `Failed`.
    pub fn status_limits(&self) -> StatusLimits {
        StatusLimits {
            restarts: self.status_restart_limit,
            stuck_after: Duration::from_secs(self.status_stuck_after_secs),
        }
    }
}

/// How an instance is laid out on its cluster.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Instance layout")]
pub struct LayoutSettings {
    /// Namespace of the instances' objects.
    #[arg(long, env = "FRAMEDB_NAMESPACE", default_value = "framedb-storage")]
    pub namespace: String,

    /// TiDB release the PD, TiKV and TiDB images run.
    #[arg(long, env = "FRAMEDB_TIDB_VERSION", default_value = "v8.5.1")]
    pub tidb_version: String,

    /// Image repository prefix of `pd`, `tikv` and `tidb`.
    #[arg(
        long,
        env = "FRAMEDB_IMAGE_PREFIX",
        default_value = "docker.io/pingcap"
    )]
    pub image_prefix: String,

    /// A Secret of the instances' namespace (and of the config service's) that lets the
    /// kubelet pull the images from a private registry (repeatable; commas in the
    /// variable). The cluster's operator creates it.
    #[arg(
        long = "image-pull-secret",
        env = "FRAMEDB_IMAGE_PULL_SECRETS",
        value_delimiter = ','
    )]
    pub image_pull_secrets: Vec<String>,

    /// Node label whose value is an instance's `node_id`.
    #[arg(
        long,
        env = "FRAMEDB_NODE_LABEL",
        default_value = "kubernetes.io/hostname"
    )]
    pub node_label: String,

    /// Storage class of the instances' volumes (the cluster's default when unset).
    #[arg(
        long,
        env = "FRAMEDB_STORAGE_CLASS",
        conflicts_with = "local_volume_root"
    )]
    pub storage_class: Option<String>,

    /// For clusters without a dynamic provisioner: put each volume in a `hostPath` PV at
    /// `ROOT/{id}` of the instance's node, which the kubelet makes when the instance's pod
    /// mounts it; a short-lived pod (--helper-image) empties it, through the instance's
    /// claim, when the instance is purged.
    #[arg(long, env = "FRAMEDB_LOCAL_VOLUME_ROOT", value_parser = parse_volume_root)]
    pub local_volume_root: Option<String>,

    /// Image of the pods that empty purged local volumes (with --local-volume-root only);
    /// it needs `find`.
    #[arg(
        long,
        env = "FRAMEDB_HELPER_IMAGE",
        default_value = framedb_k8s::objects::DEFAULT_HELPER_IMAGE
    )]
    pub helper_image: String,

    /// CPU and memory of each instance's components: `small` (3.5Gi of memory a pod),
    /// `medium` (7Gi) or `large` (14Gi); see docs/architecture.md.
    #[arg(long, env = "FRAMEDB_INSTANCE_RESOURCES", default_value = "small", value_parser = Profile::parse)]
    pub instance_resources: Profile,
}

impl Default for LayoutSettings {
    fn default() -> Self {
        let layout = Layout::default();
        Self {
            namespace: layout.namespace,
            tidb_version: layout.tidb_version,
            image_prefix: layout.image_prefix,
            node_label: layout.node_label,
            storage_class: None,
            local_volume_root: None,
            instance_resources: layout.resources,
            image_pull_secrets: layout.image_pull_secrets,
            helper_image: layout.helper_image,
        }
    }
}

impl LayoutSettings {
    /// The deployer's layout.
    pub fn layout(&self) -> Layout {
        Layout {
            namespace: self.namespace.clone(),
            image_prefix: self.image_prefix.clone(),
            tidb_version: self.tidb_version.clone(),
            node_label: self.node_label.clone(),
            storage: match &self.local_volume_root {
                Some(root) => Storage::Local { root: root.clone() },
                None => Storage::Dynamic {
                    storage_class: self.storage_class.clone(),
                },
            },
            resources: self.instance_resources,
            image_pull_secrets: self.image_pull_secrets.clone(),
            helper_image: self.helper_image.clone(),
        }
    }
}

/// How the global service reaches its clusters.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Global role")]
pub struct FleetSettings {
    /// A cluster's local config service, as `CLUSTER_ID=URL` (repeatable; commas in the
    /// variable).
    #[arg(long = "local-service", env = "FRAMEDB_LOCAL_SERVICES", value_delimiter = ',', value_parser = parse_local_service)]
    pub local_services: Vec<(ClusterId, Url)>,

    /// A cluster whose local config service answers at its default address,
    /// http://CLUSTER_ID:32566 (repeatable).
    #[arg(
        long = "known-cluster",
        env = "FRAMEDB_KNOWN_CLUSTERS",
        value_delimiter = ','
    )]
    pub known_clusters: Vec<ClusterId>,

    /// The token sent to the local config services the operator names (--local-service,
    /// --known-cluster) and installs by other means. It is never this server's own
    /// --token, which stays with the global service, and setup never installs it: a
    /// cluster setup installs gets a generated token of its own.
    #[arg(long, env = "FRAMEDB_LOCAL_TOKEN", hide_env_values = true)]
    pub local_token: Option<Secret>,

    /// Milliseconds to wait for a local config service to accept a connection.
    #[arg(
        long = "local-connect-timeout-ms",
        env = "FRAMEDB_LOCAL_CONNECT_TIMEOUT_MS",
        default_value_t = 2000
    )]
    pub local_connect_timeout_ms: u64,

    /// Certificates (PEM) to trust, besides the public web roots, for local services on
    /// https:// URLs: the CA of their certificates.
    #[arg(long = "local-ca-file", env = "FRAMEDB_LOCAL_CA_FILE")]
    pub local_ca_file: Option<PathBuf>,

    /// Milliseconds a call to a local config service may take.
    #[arg(
        long = "local-timeout-ms",
        env = "FRAMEDB_LOCAL_TIMEOUT_MS",
        default_value_t = 30000
    )]
    pub local_timeout_ms: u64,

    /// Single tier: a real cluster to drive directly, as `CLUSTER_ID=KUBECONFIG_FILE`
    /// (repeat the flag, or separate with commas in the variable).
    #[arg(long = "cluster", env = "FRAMEDB_CLUSTERS", value_delimiter = ',', value_parser = parse_cluster)]
    pub clusters: Vec<(ClusterId, PathBuf)>,

    /// Single tier: drive the cluster the server runs in, under this cluster id
    /// (service-account credentials).
    #[arg(long, env = "FRAMEDB_IN_CLUSTER_ID")]
    pub in_cluster: Option<ClusterId>,

    /// Let /framedb-config/* call API servers on loopback, link-local or unspecified
    /// addresses, over plain http, or without TLS verification (the embedded default's
    /// simulated clusters are such).
    #[arg(long, env = "FRAMEDB_ALLOW_INSECURE_CLUSTERS")]
    pub allow_insecure_clusters: bool,

    /// Let /framedb-config/setup re-point a cluster that setup recorded, when its body
    /// says `"replace": true` (a new local_url, API server or certificate authority, with
    /// a new token). Off, such a setup is 403: re-pointing a cluster is the operator's
    /// decision, not any API caller's.
    #[arg(long, env = "FRAMEDB_ALLOW_SETUP_REPLACE")]
    pub allow_setup_replace: bool,

    /// FrameDB's server image that /framedb-config/setup runs as the local service
    /// (published from the repository's Dockerfile; see the README).
    #[arg(long, env = "FRAMEDB_SERVER_IMAGE", default_value = DEFAULT_SERVER_IMAGE)]
    pub server_image: String,

    /// The MongoDB image /framedb-config/setup runs for the local registry.
    #[arg(long, env = "FRAMEDB_MONGO_IMAGE", default_value = DEFAULT_MONGO_IMAGE)]
    pub mongo_image: String,

    /// Seconds between reloads of the cluster directory from its store (MongoDB with
    /// --mongo-uri), so that another replica's setup with "replace" or remove reaches
    /// this one; 0: never (a cluster this replica does not know is looked up in the store
    /// anyway).
    #[arg(
        long = "directory-refresh-secs",
        env = "FRAMEDB_DIRECTORY_REFRESH_SECS",
        default_value_t = 30
    )]
    pub directory_refresh_secs: u64,

    /// With no cluster named, serve the clusters that /framedb-config/setup records in
    /// the cluster directory (with --mongo-uri, MongoDB's) instead of starting the
    /// embedded default's simulated clusters: a deployed global service whose fleet
    /// grows by setup.
    #[arg(long, env = "FRAMEDB_SETUP_ONLY")]
    pub setup_only: bool,
}

impl Default for FleetSettings {
    fn default() -> Self {
        Self {
            local_services: Vec::new(),
            known_clusters: Vec::new(),
            local_token: None,
            local_connect_timeout_ms: 2000,
            local_ca_file: None,
            local_timeout_ms: 30000,
            clusters: Vec::new(),
            in_cluster: None,
            allow_insecure_clusters: false,
            allow_setup_replace: false,
            server_image: DEFAULT_SERVER_IMAGE.into(),
            mongo_image: DEFAULT_MONGO_IMAGE.into(),
            directory_refresh_secs: 30,
            setup_only: false,
        }
    }
}

impl FleetSettings {
    /// Whether the global role runs the embedded default: no cluster named, and no
    /// `--setup-only`.
    pub fn runs_embedded(&self) -> bool {
        self.names_no_cluster() && !self.setup_only
    }

    /// Whether no cluster is named at all (the embedded default, or `--setup-only`).
    pub fn names_no_cluster(&self) -> bool {
        self.clusters.is_empty()
            && self.in_cluster.is_none()
            && self.local_services.is_empty()
            && self.known_clusters.is_empty()
    }

    /// Whether the clusters are driven directly (`--cluster`, `--in-cluster`) rather than
    /// through their local config services.
    pub fn is_direct(&self) -> bool {
        !self.clusters.is_empty() || self.in_cluster.is_some()
    }

    /// The timeouts of calls to local services.
    pub fn remote_timeouts(&self) -> RemoteTimeouts {
        RemoteTimeouts {
            connect: Duration::from_millis(self.local_connect_timeout_ms),
            request: Duration::from_millis(self.local_timeout_ms),
        }
    }
}

/// The simulated clusters' default clock: the simulator's `SimFleet::DEMO_TIME_SCALE`
/// (this crate builds without the simulator too).
const DEMO_TIME_SCALE: f64 = 10.0;

/// The simulated clusters of the embedded default and of `simulate`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Simulated clusters")]
pub struct DemoSettings {
    /// Where the simulated clusters' kubeconfigs are written (`DIR/{cluster}.kubeconfig`).
    #[arg(long, env = "FRAMEDB_STATE_DIR", default_value_os_t = default_state_dir())]
    pub state_dir: PathBuf,

    /// How long a new instance's pod takes to become ready, in milliseconds.
    #[arg(long, env = "FRAMEDB_DEMO_READY_AFTER_MS", default_value_t = 2000)]
    pub demo_ready_after_ms: u64,

    /// Simulated seconds per real second on the simulated clusters' clocks (grace
    /// periods): 10 turns a pod's 30-second grace period into 3 seconds.
    #[arg(long, env = "FRAMEDB_DEMO_TIME_SCALE", default_value_t = DEMO_TIME_SCALE,
          value_parser = parse_time_scale)]
    pub demo_time_scale: f64,
}

impl Default for DemoSettings {
    fn default() -> Self {
        Self {
            state_dir: default_state_dir(),
            demo_ready_after_ms: 2000,
            demo_time_scale: DEMO_TIME_SCALE,
        }
    }
}

fn parse_time_scale(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(scale) if scale.is_finite() && scale > 0.0 => Ok(scale),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

impl DemoSettings {
    /// How long a pod takes to become ready.
    pub fn ready_after(&self) -> Duration {
        Duration::from_millis(self.demo_ready_after_ms)
    }
}

fn default_state_dir() -> PathBuf {
    std::env::temp_dir().join("framedb")
}

/// A local volume root as setup's body takes it: instances' volumes are `ROOT/{id}`, which
/// a purge empties, so it must not lead anywhere else.
fn parse_volume_root(text: &str) -> Result<String, String> {
    framedb_k8s::config_service::check_volume_root(text)?;
    Ok(text.to_owned())
}

fn parse_local_service(text: &str) -> Result<(ClusterId, Url), String> {
    let (id, url) = text
        .split_once('=')
        .ok_or_else(|| "expected CLUSTER_ID=URL".to_owned())?;
    let id = ClusterId::new(id).map_err(|e| e.to_string())?;
    let url = service_url(url).map_err(|e| format!("cluster '{id}': {e}"))?;
    Ok((id, url))
}

fn parse_cluster(text: &str) -> Result<(ClusterId, PathBuf), String> {
    let (id, path) = text
        .split_once('=')
        .ok_or_else(|| format!("expected CLUSTER_ID=KUBECONFIG_FILE, got '{text}'"))?;
    let id = ClusterId::new(id).map_err(|e| e.to_string())?;
    Ok((id, PathBuf::from(path)))
}
