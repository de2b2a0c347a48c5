//! The domain's one error type.
//!
//! Adapters translate their drivers' errors into these variants; only the HTTP layer maps
//! them to status codes. Messages are sentences meant for the API's caller, so they never
//! carry a driver's internal text. A backend failure ([`Error::Unavailable`],
//! [`Error::Timeout`], [`Error::Internal`]) carries a [`Fault`]: that sentence, and the
//! driver's error as its `source()`, so that whoever handles the error last (the HTTP
//! edge, or a background task) logs it once with its whole cause chain ([`Chain`]).
//! Conversions into this type log nothing.

use std::fmt;
use std::sync::Arc;

use crate::directory::Conflict;
use crate::types::{ClusterId, FramedbId, Invalid, StorageSize};

/// `Result` with the domain [`Error`] as its default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in FrameDB's domain.
///
/// Two errors are equal when they are the same variant with the same values and
/// sentences; the causes of backend failures are not compared.
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

    /// The cluster still runs registered instances, so its config service stays.
    #[error(
        "cluster '{cluster}' still has {instances} registered instance(s); delete them first, \
         or remove with \"force\": true"
    )]
    ClusterInUse {
        /// The cluster.
        cluster: ClusterId,
        /// How many instances are registered on it.
        instances: usize,
    },

    /// Setup would re-point a cluster the directory knows, or record it as another
    /// cluster (another API server or certificate authority).
    #[error("{}", conflict.sentence(cluster))]
    ClusterConflict {
        /// The cluster.
        cluster: ClusterId,
        /// What differs from what is known.
        conflict: Conflict,
    },

    /// An object of the instance's names exists on its cluster that this instance did not
    /// make: FrameDB takes nothing over, and changed nothing.
    #[error("{sentence}")]
    ObjectConflict {
        /// The cluster.
        cluster: ClusterId,
        /// The object, as `Kind namespace/name`.
        object: String,
        /// What is in the way and what the caller can do, as a sentence.
        sentence: String,
    },

    /// An update asked for a smaller volume: volumes only grow (Kubernetes does not
    /// shrink them), and nothing was changed.
    #[error(
        "storage_size can only grow: instance '{id}' has {current}, and {asked} is smaller \
         (Kubernetes does not shrink volumes); nothing was changed"
    )]
    ShrinkRefused {
        /// The instance.
        id: FramedbId,
        /// Its volume's size now.
        current: StorageSize,
        /// The size asked for.
        asked: StorageSize,
    },

    /// The instance's volume cannot grow on its cluster (its StorageClass does not allow
    /// expansion, or it is a static volume such as FrameDB's local ones); nothing was
    /// changed.
    #[error("{sentence}")]
    NotExpandable {
        /// The cluster.
        cluster: ClusterId,
        /// Why, as a sentence.
        sentence: String,
    },

    /// The instance cannot be changed now: it is being deleted, or its create has not
    /// finished.
    #[error("{sentence}")]
    InstanceBusy {
        /// The instance.
        id: FramedbId,
        /// Why, as a sentence.
        sentence: String,
    },

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

    /// The cluster's API server does not allow the node port: it lies outside the
    /// server's `--service-node-port-range`. No other port of the instance range is tried
    /// (they are tried lowest first, so the rest lie outside too, or are taken).
    #[error(
        "cluster '{cluster}' refuses node port {port}: its node-port range (the API \
         server's --service-node-port-range) is {valid}, and FrameDB's instances use \
         30900-30999; widen the range to include them"
    )]
    PortOutOfRange {
        /// The cluster.
        cluster: ClusterId,
        /// The port it refused.
        port: u16,
        /// The range it allows, as its API server states it (e.g. `32000-32767`).
        valid: String,
    },

    /// A backend (the registry, a cluster's API, a local config service) cannot be reached.
    #[error(transparent)]
    Unavailable(Fault),

    /// A backend did not answer in time.
    #[error(transparent)]
    Timeout(Fault),

    /// A peer service (a local config service) answered, but not with an answer its API
    /// allows: too large, not the JSON it promises, or a refusal of FrameDB's own token.
    #[error(transparent)]
    BadGateway(Fault),

    /// Anything else. The sentence is for the log; callers are told only that an
    /// internal error occurred.
    #[error(transparent)]
    Internal(Fault),
}

impl From<Invalid> for Error {
    fn from(invalid: Invalid) -> Self {
        Self::Invalid(invalid.into())
    }
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

/// What caused a [`Fault`]: a driver's error, kept for the log.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// A backend failure: a sentence for the caller (it names the backend and what was being
/// done, never the driver's own text), and the error that caused it, as `source()`.
#[derive(Debug, Clone)]
pub struct Fault {
    message: String,
    source: Option<Cause>,
}

impl Fault {
    /// A fault with no cause beyond its sentence.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// The fault, caused by `source`.
    #[must_use]
    pub fn because(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The sentence.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fault {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

/// Faults compare by their sentences: the cause is for the log.
impl PartialEq for Fault {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl Eq for Fault {}

impl From<String> for Fault {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for Fault {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

/// Shows an error with its causes, `error: cause: cause's cause`, for log lines.
#[derive(Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(current) = cause {
            write!(f, ": {current}")?;
            cause = current.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_shows_its_sentence_and_keeps_its_cause_for_the_chain() {
        let cause = std::io::Error::new(std::io::ErrorKind::TimedOut, "socket timed out");
        let error = Error::Timeout(Fault::new("cluster 'c' did not answer in time").because(cause));
        assert_eq!(error.to_string(), "cluster 'c' did not answer in time");
        assert_eq!(
            Chain(&error).to_string(),
            "cluster 'c' did not answer in time: socket timed out"
        );
        assert_eq!(
            error,
            Error::Timeout("cluster 'c' did not answer in time".into())
        );
        assert!(error.is_unreachable());
    }
}
