//! The Kubernetes layer's errors, and their translation into domain errors: a driver
//! error never leaves this crate; callers see `framedb_core::Error` with a sentence of
//! ours, and the driver's own text goes to the log.

use std::error::Error as _;

/// `Result` with this layer's [`Error`] as its default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong talking to a cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's kubeconfig cannot be used (a sentence that quotes none of its values).
    #[error("{0}")]
    Kubeconfig(String),

    /// A request to a cluster's API failed.
    #[error("{action} on cluster '{cluster}' failed: {source}")]
    Kube {
        /// The cluster asked.
        cluster: String,
        /// What was being done, e.g. "creating Service tidb-001".
        action: String,
        /// The driver's error.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// A failed request, with what it was for.
    pub fn kube(cluster: &str, action: impl Into<String>, source: kube::Error) -> Self {
        Self::Kube {
            cluster: cluster.to_owned(),
            action: action.into(),
            source,
        }
    }
}

/// The API's answer status, when the failure is one.
pub(crate) fn api_status(error: &kube::Error) -> Option<&kube::core::Status> {
    match error {
        kube::Error::Api(status) => Some(status),
        _ => None,
    }
}

/// Whether the API answered 404.
pub(crate) fn is_not_found(error: &kube::Error) -> bool {
    api_status(error).is_some_and(|s| s.is_not_found())
}

/// Whether the API answered 409 AlreadyExists.
pub(crate) fn is_already_exists(error: &kube::Error) -> bool {
    api_status(error).is_some_and(|s| s.is_already_exists())
}

/// Whether the API refused a node port because another Service holds it.
pub(crate) fn is_port_allocated(error: &kube::Error) -> bool {
    api_status(error)
        .is_some_and(|s| s.code == 422 && s.message.contains("port is already allocated"))
}

fn is_timeout(error: &kube::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = error.source();
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        if current.is::<tokio::time::error::Elapsed>() || current.to_string().contains("timed out")
        {
            return true;
        }
        cause = current.source();
    }
    false
}

impl From<Error> for framedb_core::Error {
    fn from(error: Error) -> Self {
        use framedb_core::Error as Domain;
        match &error {
            Error::Kubeconfig(message) => Domain::Invalid(message.clone()),
            Error::Kube {
                cluster,
                action,
                source,
            } => {
                tracing::warn!(cluster_id = %cluster, action = %action, error = %source,
                    "Kubernetes API request failed");
                match api_status(source) {
                    Some(status) if status.code == 429 || status.code >= 500 => {
                        Domain::Unavailable(format!(
                            "cluster '{cluster}' could not serve the request ({action}): its API \
                             answered {}",
                            status.code
                        ))
                    }
                    Some(status) => Domain::Internal(format!(
                        "cluster '{cluster}' refused {action} ({} {})",
                        status.code, status.reason
                    )),
                    None if is_timeout(source) => Domain::Timeout(format!(
                        "cluster '{cluster}' did not answer in time ({action})"
                    )),
                    None if matches!(
                        source,
                        kube::Error::HyperError(_) | kube::Error::Service(_)
                    ) =>
                    {
                        Domain::Unavailable(format!(
                            "cluster '{cluster}' cannot be reached ({action})"
                        ))
                    }
                    None => Domain::Internal(format!("{action} on cluster '{cluster}' failed")),
                }
            }
        }
    }
}
