//! FrameDB's domain: the validated types, the query filter, the errors, the ports that the
//! adapters implement, the provisioning service that drives them, and in-memory adapters
//! for tests, the library's users and the server's embedded default.
//!
//! ```text
//!   ProvisioningService ──▶ InstanceRegistry   (MongoDB, in-memory)
//!                      ├──▶ PortAllocator      (Kubernetes Services, in-memory)
//!                      └──▶ ClusterDeployer    (Kubernetes, a local config service, in-memory)
//!
//!   the global's cluster directory ──▶ ClusterDirectoryStore (MongoDB, in-memory)
//! ```

pub mod directory;
pub mod error;
pub mod filter;
pub mod live;
pub mod memory;
#[cfg(feature = "openapi")]
mod openapi;
pub mod ports;
pub mod service;
pub mod types;

pub use directory::{ClusterIdentity, Conflict, DirectoryEntry, LocalToken, Recorded};
pub use error::{Chain, Error, Fault, Result};
pub use filter::{Filter, Query, QueryOptions, Sort};
pub use ports::{
    ClusterDeployer, ClusterDirectoryStore, Deployed, DeploymentSpec, Fence, InstanceRegistry,
    Lease, PortAllocator,
};
pub use service::{Created, PortChoice, ProvisioningService, Repairs};
pub use types::*;
