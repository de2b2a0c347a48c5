//! FrameDB on Kubernetes: the `ClusterDeployer` and `PortAllocator` adapters on kube-rs,
//! and the config-service install / remove / status (docs/architecture.md, "Kubernetes
//! objects"). They are tested against the Kubernetes API simulator of the
//! `framedb-kube-sim` crate.
//!
//! The modules, each using only those listed before it:
//! - [`error`]: this layer's errors and their translation into domain errors;
//! - [`kubeconfig`]: callers' kubeconfigs, checked, and the clients built from them;
//! - [`objects`]: the Kubernetes objects of one instance, as values;
//! - `status`: Kubernetes objects to instance statuses, without a request;
//! - `apply`: server-side applies and deletes, as FrameDB;
//! - `ownership`: creates that take over no object they did not make (nor one being
//!   deleted), and removals of one create's objects only;
//! - `live`: the per-cluster status books, kept by watches;
//! - `node_ports`: the per-cluster views of the node ports, kept by watches;
//! - `volumes`: the pods that empty local volumes before a purge deletes them;
//! - [`deployer`]: the instances' deployer and the port allocator;
//! - [`config_service`]: the per-cluster config service.

mod amend;
mod apply;
pub mod config_service;
pub mod deployer;
pub mod error;
mod inventory;
pub mod kubeconfig;
mod live;
mod node_ports;
pub mod objects;
mod ownership;
mod slim;
mod status;
mod volumes;

pub use deployer::{KubeFleet, StatusLimits};
pub use error::{Error, Result};
pub use objects::{Layout, Profile, Storage};
pub use volumes::HELPER_WAIT;

/// Every image FrameDB deploys on a cluster: the instances' PD, TiKV and TiDB of
/// `layout`, its helper image (run with local volumes only), and the config service's
/// MongoDB and server of `settings`. A cluster's registry must hold these (the simulated
/// clusters of the demo are given exactly them).
pub fn deployed_images(layout: &Layout, settings: &config_service::Settings) -> Vec<String> {
    layout
        .images()
        .into_iter()
        .chain([layout.helper_image.clone()])
        .chain(settings.images())
        .collect()
}

/// [`deployed_images`] of the default layout and config service.
pub fn default_images() -> Vec<String> {
    deployed_images(&Layout::default(), &config_service::Settings::default())
}
