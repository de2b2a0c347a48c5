//! FrameDB over HTTP: the axum router of the global API ([`api::router`]), the error
//! envelope, and the pieces of the `framedb-server` binary ([`server`]) that tests and
//! embedding programs reuse.

pub mod api;
pub mod error;
pub mod extract;
pub mod server;

pub use api::{AppState, router};
pub use error::ApiError;
