//! The command line of `framedb-server`: a role and its settings ([`crate::settings`]),
//! each flag with an environment fallback. With no role, the server runs the global role.

use clap::{Parser, Subcommand};

#[cfg(feature = "simulator")]
use crate::settings::SimulateSettings;
use crate::settings::{GlobalSettings, LocalSettings, ManifestsSettings};

/// `framedb-server [global|local|simulate|manifests] [FLAGS]`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "framedb-server",
    version,
    about = "FrameDB: persistent TiDB instances on Kubernetes",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// The role (global when none is named).
    #[command(subcommand)]
    pub role: Option<Role>,

    /// The global role's settings, when no role is named.
    #[command(flatten)]
    pub global: GlobalSettings,

    /// How log lines are written to stderr: `text`, or `json` (one object per line, with
    /// the fields of the spans it is in: a request's `request_id`, an instance's
    /// `framedb_id`).
    #[arg(
        long,
        env = "FRAMEDB_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: one line per event, coloured on a terminal.
    Text,
    /// For log pipelines: one JSON object per line.
    Json,
}

/// What the process runs.
#[derive(Debug, Clone, Subcommand)]
// Parsed once at start-up and moved into the role that runs: boxing the global's settings
// would only make every use of them read through a pointer.
#[allow(clippy::large_enum_variant)]
pub enum Role {
    /// The global service: the registry and the public API (the default). With no
    /// cluster named, it runs the embedded default: simulated clusters, each with its
    /// local config service, all in this process.
    Global(GlobalSettings),
    /// A cluster's local config service: the internal API that does the Kubernetes work
    /// for one cluster, with its own registry.
    Local(LocalSettings),
    /// Simulated Kubernetes clusters alone, on loopback, with their kubeconfigs written
    /// to the state directory: a fleet for local services and a global service that run
    /// as separate processes.
    #[cfg(feature = "simulator")]
    Simulate(SimulateSettings),
    /// Prints the Kubernetes objects a create of one instance makes (JSON, a `v1` `List`
    /// that `kubectl apply -f` takes), with the layout flags, and exits: what a cluster's
    /// operator reviews before letting FrameDB in.
    Manifests(ManifestsSettings),
}

impl Cli {
    /// The role to run, the global one when none was named.
    pub fn into_role(self) -> Role {
        self.role.unwrap_or(Role::Global(self.global))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Role, clap::Error> {
        let args = std::iter::once("framedb-server").chain(args.iter().copied());
        Cli::try_parse_from(args).map(Cli::into_role)
    }

    #[test]
    fn no_role_is_the_global_role_with_its_flags() {
        let Ok(Role::Global(settings)) = parse(&["--listen", "127.0.0.1:0", "--token", "t"]) else {
            panic!("the global role")
        };
        assert_eq!(settings.serve.listen.port(), 0);
        // The global API's token never becomes the local services' token.
        assert_eq!(settings.local_token(), None);
        assert!(settings.fleet.names_no_cluster());
        assert!(matches!(
            parse(&["global", "--known-cluster", "c1"]),
            Ok(Role::Global(_))
        ));
    }

    #[test]
    fn each_flag_applies_to_the_roles_it_is_documented_for() {
        let Ok(Role::Local(settings)) = parse(&[
            "local",
            "--cluster-id",
            "c1",
            "--node-label",
            "topology.kubernetes.io/zone",
            "--storage-class",
            "fast",
            "--mongo-uri",
            "mongodb://127.0.0.1:1",
        ]) else {
            panic!("the local role")
        };
        assert_eq!(settings.layout.node_label, "topology.kubernetes.io/zone");
        assert_eq!(settings.layout.storage_class.as_deref(), Some("fast"));
        // Global-only flags are refused by the local role, local-only ones by the global.
        for refused in [
            &[
                "local",
                "--cluster-id",
                "c1",
                "--local-service",
                "a=http://x",
            ][..],
            &["local", "--cluster-id", "c1", "--state-dir", "/tmp/x"],
            &["global", "--cluster-id", "c1"],
            &["--kubeconfig", "/tmp/k"],
            &["local"],
        ] {
            assert!(parse(refused).is_err(), "{refused:?}");
        }
        assert!(parse(&["--storage-class", "a", "--local-volume-root", "/d"]).is_err());
    }

    #[cfg(feature = "simulator")]
    #[test]
    fn simulate_has_the_demo_fleet_by_default() {
        let Ok(Role::Simulate(settings)) = parse(&["simulate", "--state-dir", "/tmp/fleet"]) else {
            panic!("the simulate role")
        };
        assert_eq!(settings.clusters, ["cluster-01", "cluster-02"]);
        assert_eq!(settings.nodes, ["node-a", "node-b"]);
        assert_eq!(settings.demo.state_dir, std::path::Path::new("/tmp/fleet"));
        let Ok(Role::Simulate(settings)) =
            parse(&["simulate", "--clusters", "a,b,c", "--nodes", "n1"])
        else {
            panic!("the simulate role")
        };
        assert_eq!(settings.clusters, ["a", "b", "c"]);
        assert_eq!(settings.nodes, ["n1"]);
        assert!(settings.node_capacity.is_empty());
        assert!(parse(&["simulate", "--token", "t"]).is_err());
    }

    #[cfg(feature = "simulator")]
    #[test]
    fn simulate_reads_node_capacity_as_resource_quantity_pairs() {
        let Ok(Role::Simulate(settings)) =
            parse(&["simulate", "--node-capacity", "cpu=64,memory=256Gi"])
        else {
            panic!("the simulate role")
        };
        assert_eq!(
            settings.node_capacity,
            [
                ("cpu".into(), "64".into()),
                ("memory".into(), "256Gi".into())
            ]
        );
        for bad in ["cpu", "=64", "cpu=", "cpu:64"] {
            let Err(e) = parse(&["simulate", "--node-capacity", bad]) else {
                panic!("{bad:?} was read as a capacity")
            };
            assert!(e.to_string().contains("is not resource=quantity"), "{e}");
        }
    }

    #[test]
    fn a_local_volume_root_is_checked_and_the_helper_image_reaches_the_layout() {
        // Helper pods mount and empty `ROOT/{id}`: a root that leads elsewhere is refused.
        for bad in ["relative", "/mnt/../etc", "/mnt/a b"] {
            let error = parse(&["--local-volume-root", bad]).unwrap_err();
            assert!(error.to_string().contains("local_volume_root"), "{error}");
        }
        let Ok(Role::Global(settings)) = parse(&[
            "--local-volume-root",
            "/mnt/framedb",
            "--helper-image",
            "registry.example.com/busybox:1.36",
        ]) else {
            panic!("the global role")
        };
        let layout = settings.layout.layout();
        assert_eq!(layout.helper_image, "registry.example.com/busybox:1.36");
        assert_eq!(
            layout.volume_path("db-1").as_deref(),
            Some("/mnt/framedb/db-1")
        );
        let Ok(Role::Global(settings)) = parse(&[]) else {
            panic!("the global role")
        };
        assert_eq!(
            settings.layout.layout().helper_image,
            "docker.io/library/busybox:1.36"
        );
    }

    #[test]
    fn manifests_take_an_instance_and_the_layout_flags_only() {
        let Ok(Role::Manifests(settings)) = parse(&[
            "manifests",
            "--framedb-id",
            "db-1",
            "--node-id",
            "node-a",
            "--resources",
            "large",
            "--namespace",
            "tidb",
        ]) else {
            panic!("the manifests role")
        };
        let list = settings.manifests().unwrap();
        let items = list["items"].as_array().unwrap();
        assert_eq!(
            items[0]["metadata"]["name"], "tidb",
            "the layout's namespace"
        );
        let sts = items.last().unwrap();
        assert_eq!(sts["kind"], "StatefulSet");
        assert_eq!(
            sts["metadata"]["annotations"]["framedb.io/resources"],
            "large"
        );
        for refused in [
            &[
                "manifests",
                "--framedb-id",
                "db-1",
                "--node-id",
                "n",
                "--token",
                "t",
            ][..],
            &["manifests", "--framedb-id", "Db", "--node-id", "n"],
            &[
                "manifests",
                "--framedb-id",
                "db-1",
                "--node-id",
                "n",
                "--port",
                "8080",
            ],
            &[
                "manifests",
                "--framedb-id",
                "db-1",
                "--node-id",
                "n",
                "--resources",
                "huge",
            ],
            &["manifests", "--node-id", "n"],
        ] {
            assert!(parse(refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn the_log_format_is_taken_before_or_after_the_role() {
        let args = |args: &[&str]| {
            let args = std::iter::once("framedb-server").chain(args.iter().copied());
            Cli::try_parse_from(args).map(|cli| cli.log_format)
        };
        assert_eq!(args(&[]).unwrap(), LogFormat::Text);
        assert_eq!(args(&["--log-format", "json"]).unwrap(), LogFormat::Json);
        assert_eq!(
            args(&["local", "--cluster-id", "c1", "--log-format", "json"]).unwrap(),
            LogFormat::Json
        );
        assert!(args(&["--log-format", "xml"]).is_err());
    }

    #[test]
    fn local_service_urls_are_checked() {
        let error = parse(&["--local-service", "c1=http://user:pw@host"]).unwrap_err();
        assert!(
            error.to_string().contains("must not carry credentials"),
            "{error}"
        );
        let error = parse(&["--local-service", "c1=ftp://host"]).unwrap_err();
        assert!(error.to_string().contains("http:// or https://"), "{error}");
        assert!(parse(&["--local-service", "c1"]).is_err());
        let Ok(Role::Global(settings)) = parse(&["--local-service", "c1=http://10.0.0.1:32566"])
        else {
            panic!("the global role")
        };
        assert_eq!(
            settings.fleet.local_services[0].1.as_str(),
            "http://10.0.0.1:32566/"
        );
    }
}
