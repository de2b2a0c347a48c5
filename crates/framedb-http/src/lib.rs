//! FrameDB over HTTP: the public API and the local config service's internal API
//! ([`api`]), their shared wire types ([`wire`]) and error envelope ([`error`]), the
//! client through which the global tier uses remote local services as its clusters
//! ([`remote`]), and the composition root that builds and serves each role of the
//! `framedb-server` binary ([`startup`]) from its settings ([`settings`], [`cli`]).

pub mod api;
pub mod cli;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod remote;
pub mod settings;
pub mod startup;
pub mod tls;
pub mod wire;

pub use error::ApiError;
pub use startup::{Adapters, App, Clusters, ReconcileCount, Running, StartError};
