//! The domain's one error type.
//!
//! Adapters translate their drivers' errors into these variants; only the HTTP layer maps
//! them to status codes. Messages are sentences meant for the API's caller, so they never
//! carry a driver's internal text: adapters log that and return [`Error::Internal`] or
//! [`Error::Unavailable`] with a message of their own.

use crate::types::{ClusterId, FramedbId};

/// `Result` with the domain [`Error`] as its default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in FrameDB's domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The caller sent a value that breaks a rule (a bad id, quantity, metadata or filter).
    #[error("{0}")]
    Invalid(String),

    /// No instance is registered under this id.
    #[error("no persistent instance is registered as '{0}'")]
    InstanceNotFound(FramedbId),

    /// The cluster is not one that FrameDB knows.
    #[error("cluster '{0}' is not known to FrameDB")]
    ClusterNotFound(ClusterId),

    /// An instance with this id is already registered.
    #[error("a persistent instance named '{0}' already exists")]
    AlreadyExists(FramedbId),

    /// Every node port of the instance range is taken on this cluster.
    #[error("no free port in 30900-30999 is left on cluster '{0}'")]
    PortsExhausted(ClusterId),

    /// Another Service took the node port between allocation and deployment. The
    /// provisioning service retries with another port; callers outside it rarely see this.
    #[error("node port {port} on cluster '{cluster}' is already allocated")]
    PortTaken {
        /// The cluster whose port was taken.
        cluster: ClusterId,
        /// The port that was taken.
        port: u16,
    },

    /// A backend (the registry, a cluster's API, a local config service) cannot be reached.
    #[error("{0}")]
    Unavailable(String),

    /// A backend did not answer in time.
    #[error("{0}")]
    Timeout(String),

    /// Anything else; the cause has been logged where it happened.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// A short invalid-input error, for validation code.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    /// Whether the cause is a backend that is down or slow, as opposed to a refusal. Reads
    /// use this to fall back to the registry with status `Unknown`.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Timeout(_))
    }
}
