//! FrameDB's registry in MongoDB: an [`InstanceRegistry`](framedb_core::InstanceRegistry)
//! (and the global's [`ClusterDirectoryStore`](framedb_core::ClusterDirectoryStore))
//! on the official driver that renders the core's typed filter to BSON
//! (docs/architecture.md).
//!
//! ```no_run
//! # async fn demo() -> Result<(), framedb_mongo::Error> {
//! use std::time::Duration;
//! use framedb_mongo::{MongoConfig, MongoRegistry};
//!
//! let config = MongoConfig::new("mongodb://127.0.0.1:27017")
//!     .server_selection_timeout(Duration::from_secs(2));
//! let registry = MongoRegistry::connect(&config).await?;
//! # let _ = registry;
//! # Ok(())
//! # }
//! ```
//!
//! - `config`: [`MongoConfig`], where the registry lives and its time limits;
//! - `registry`: [`MongoRegistry`], the port's implementation;
//! - `directory`: [`MongoDirectoryStore`], the global service's cluster directory, in the
//!   registry's database;
//! - `fence`: [`MongoFence`], a local service's undone creates;
//! - `lease`: [`MongoLease`], which global replica reconciles;
//! - [`render`]: the typed filter and sort as BSON;
//! - `document`: records as documents, JSON values as BSON;
//! - `error`: [`Error`], and its translation into the domain's errors;
//! - `uri`: [`redact_uri`], for every connection string that is logged.

mod config;
mod directory;
mod document;
mod error;
mod fence;
mod lease;
mod registry;
pub mod render;
mod uri;

pub use config::{
    DEFAULT_COLLECTION, DEFAULT_CONNECT_TIMEOUT, DEFAULT_DATABASE, DEFAULT_QUERY_TIMEOUT,
    DEFAULT_SERVER_SELECTION_TIMEOUT, Durability, MongoConfig,
};
pub use directory::{DIRECTORY_COLLECTION, DIRECTORY_INDEX, MongoDirectoryStore};
pub use error::{Error, Result, TIMEOUT_MESSAGE, UNAVAILABLE_MESSAGE};
pub use fence::{FENCE_COLLECTION, FENCE_INDEX, FENCE_TTL_INDEX, MongoFence};
pub use lease::{LEASE_COLLECTION, MongoLease};
pub use registry::{CLUSTER_NODE_INDEX, ID_INDEX, MongoRegistry, PING_DEADLINE, STATUS_PORT_INDEX};
pub use uri::redact_uri;
