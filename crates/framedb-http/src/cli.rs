//! The command line of `framedb-server`: a role and its settings ([`crate::settings`]),
//! each flag with an environment fallback. With no role, the server runs the global role.

use clap::{Parser, Subcommand};

#[cfg(feature = "simulator")]
use crate::settings::SimulateSettings;
use crate::settings::{GlobalSettings, LocalSettings};

/// `framedb-server [global|local|simulate] [FLAGS]`.
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
}

/// What the process runs.
#[derive(Debug, Clone, Subcommand)]
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
}

impl Cli {
    /// The role to run, the global one when none was named.
    pub fn into_role(self) -> Role {
        self.role.unwrap_or(Role::Global(self.global))
    }
}
