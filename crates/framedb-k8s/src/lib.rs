//! FrameDB on Kubernetes: the `ClusterDeployer` and `PortAllocator` adapters on kube-rs,
//! the config-service install / remove / status, and the Kubernetes API simulator that
//! tests and the embedded default run against (DESIGN.md §4, §6).

pub mod config_service;
pub mod deployer;
pub mod error;
pub mod kubeconfig;
mod live;
pub mod objects;

pub use deployer::KubeFleet;
pub use error::{Error, Result};
pub use objects::{Layout, Storage};
