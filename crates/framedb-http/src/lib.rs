//! FrameDB over HTTP: the axum router of the global API ([`api::router`]), the error
//! envelope, and the pieces of the `framedb-server` binary ([`server`]) that tests and
//! embedding programs reuse.

pub mod api;
pub mod error;
pub mod extract;
pub mod remote;
pub mod server;

pub use api::local::{LocalState, local_router};
pub use api::{ApiToken, AppState, router};
pub use error::ApiError;
