//! FrameDB over HTTP: the axum routers of the global API ([`api::router`]) and of the
//! local config service ([`api::local::local_router`]), the error envelope, the client
//! adapter through which the global tier uses a remote local service as its
//! `ClusterDeployer` ([`remote`]), and the pieces of the `framedb-server` binary
//! ([`server`]) that tests and embedding programs reuse.

pub mod api;
pub mod error;
pub mod extract;
pub mod remote;
pub mod server;
pub mod wire;

pub use api::local::{LocalState, Stopping, local_router};
pub use api::{ApiToken, AppState, router};
pub use error::ApiError;
