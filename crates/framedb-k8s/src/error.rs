//! The Kubernetes layer's errors, and their translation into domain errors: callers see
//! `framedb_core::Error` with a sentence of ours, and the driver's error travels as the
//! fault's cause, for the log only. The translation reads the API server's answer by its
//! code and `details.causes`, and a transport failure by its error kind, never by the
//! wording of a message; it logs nothing.

use std::error::Error as _;

/// `Result` with this layer's [`Error`] as its default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong talking to a cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's kubeconfig cannot be used (a sentence that quotes none of its values).
    #[error("{0}")]
    Kubeconfig(String),

    /// An object of an instance's names exists that the create did not make.
    #[error("{sentence}")]
    Foreign {
        /// The cluster.
        cluster: framedb_core::ClusterId,
        /// The object, as `Kind namespace/name`.
        object: String,
        /// What is in the way and what to do, as a sentence.
        sentence: String,
    },

    /// A local volume's directory was not made or emptied on its node: its helper pod
    /// failed, or a wait for it (or for the volume to be released) ran out.
    #[error("{sentence}")]
    VolumeHelper {
        /// What was not done, where and why, as a sentence.
        sentence: String,
        /// Whether a wait ran out (the job may still get done) rather than failed.
        pending: bool,
    },

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

    /// A failure worded for the domain already (the random source failed, no node can
    /// hold a volume).
    #[error(transparent)]
    Domain(#[from] framedb_core::Error),
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

/// Whether the API answered 410 `Expired`: the history a continue token or a
/// resourceVersion needs was compacted.
pub(crate) fn is_expired(error: &kube::Error) -> bool {
    api_status(error).is_some_and(|s| s.code == 410)
}

/// Whether the API answered 409 AlreadyExists.
pub(crate) fn is_already_exists(error: &kube::Error) -> bool {
    api_status(error).is_some_and(|s| s.is_already_exists())
}

/// Whether the API answered 409 Conflict: a write guarded by a resourceVersion met a
/// newer version of the object (read it again and decide again).
pub(crate) fn is_conflict(error: &kube::Error) -> bool {
    api_status(error).is_some_and(|s| s.code == 409 && s.reason == "Conflict")
}

/// Whether the API refused a node port because another Service holds it: a 422 whose
/// causes include `FieldValueInvalid` on `spec.ports[N].nodePort`, as the API server's
/// node-port allocator answers, that is not [`port_range_refused`].
pub(crate) fn is_port_allocated(error: &kube::Error) -> bool {
    node_port_causes(error).any(|message| !message.contains(NOT_IN_RANGE))
}

/// The range the API server allows when it refused a node port for lying outside its
/// `--service-node-port-range` (e.g. `"32000-32767"`).
///
/// Kubernetes tells "taken" from "outside the range" only in the cause's message (its
/// allocator's `ErrAllocated` and `ErrNotInRange`), so that message is read here, and
/// only here.
pub(crate) fn port_range_refused(error: &kube::Error) -> Option<String> {
    node_port_causes(error).find_map(|message| {
        let (_, after) = message.split_once(NOT_IN_RANGE)?;
        let range = after
            .split_once(VALID_PORTS)
            .map_or("", |(_, range)| range)
            .trim()
            .trim_end_matches(['.', '"']);
        Some(if range.is_empty() || range.len() > 32 {
            "unknown".to_owned()
        } else {
            range.to_owned()
        })
    })
}

/// What the API server's node-port allocator says of a port outside its range.
const NOT_IN_RANGE: &str = "provided port is not in the valid range";
/// What precedes the range in that message.
const VALID_PORTS: &str = "The range of valid ports is ";

/// The messages of a 422's `FieldValueInvalid` causes on `spec.ports[N].nodePort`.
fn node_port_causes(error: &kube::Error) -> impl Iterator<Item = &str> {
    api_status(error)
        .filter(|status| status.code == 422)
        .and_then(|status| status.details.as_ref())
        .into_iter()
        .flat_map(|details| details.causes.iter())
        .filter(|cause| cause.reason == "FieldValueInvalid" && is_node_port_field(&cause.field))
        .map(|cause| cause.message.as_str())
}

/// `spec.ports[N].nodePort`.
fn is_node_port_field(field: &str) -> bool {
    field
        .strip_prefix("spec.ports[")
        .and_then(|rest| rest.strip_suffix("].nodePort"))
        .is_some_and(|index| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether a request failed because a timeout passed: the connector's and the body's
/// timeouts fail with an I/O error of kind `TimedOut` somewhere in the cause chain.
fn is_timeout(error: &kube::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = error.source();
    while let Some(current) = cause {
        if current
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            || current.is::<tokio::time::error::Elapsed>()
        {
            return true;
        }
        cause = current.source();
    }
    false
}

/// The namespace a create was refused in because it is being deleted: a 403 whose causes
/// include `NamespaceTerminating`, as the `NamespaceLifecycle` admission plugin answers.
/// The cause's message (`namespace {name} is being terminated`) is the only place the
/// answer names the namespace, so it is read here, and only here.
pub(crate) fn terminating_namespace(error: &kube::Error) -> Option<String> {
    let status = api_status(error).filter(|status| status.code == 403)?;
    let cause = status
        .details
        .as_ref()?
        .causes
        .iter()
        .find(|cause| cause.reason == "NamespaceTerminating")?;
    let named = cause
        .message
        .strip_prefix("namespace ")
        .and_then(|rest| rest.strip_suffix(" is being terminated"))
        .filter(|name| !name.is_empty() && name.len() <= 63);
    Some(named.unwrap_or("(unnamed)").to_owned())
}

impl From<Error> for framedb_core::Error {
    fn from(error: Error) -> Self {
        use framedb_core::{Error as Domain, Fault};
        let (cluster, action, source) = match error {
            Error::Domain(domain) => return domain,
            Error::Kubeconfig(message) => return Domain::Invalid(message),
            Error::Foreign {
                cluster,
                object,
                sentence,
            } => {
                return Domain::ObjectConflict {
                    cluster,
                    object,
                    sentence,
                };
            }
            Error::VolumeHelper { sentence, pending } => {
                let fault = Fault::new(sentence);
                return if pending {
                    Domain::Timeout(fault)
                } else {
                    Domain::Internal(fault)
                };
            }
            Error::Kube {
                cluster,
                action,
                source,
            } => (cluster, action, source),
        };
        if let Some(namespace) = terminating_namespace(&source) {
            // Nothing can be made in a namespace being deleted until it is gone; the
            // caller can simply try again then. Not a failure of FrameDB or the cluster:
            // a conflict with what the cluster is doing, or, where the cluster is not one
            // FrameDB knows by id (the config service's setup names it only as the caller's),
            // a passing unavailability.
            let sentence = format!(
                "namespace {namespace} on {} is being deleted, so nothing can be created \
                 in it ({action}); retry once it is gone",
                match framedb_core::ClusterId::new(&cluster) {
                    Ok(id) => format!("cluster '{id}'"),
                    Err(_) => cluster.clone(),
                }
            );
            return match framedb_core::ClusterId::new(&cluster) {
                Ok(cluster) => Domain::ObjectConflict {
                    cluster,
                    object: format!("Namespace {namespace}"),
                    sentence,
                },
                Err(_) => Domain::Unavailable(Fault::new(sentence).because(Error::Kube {
                    cluster,
                    action,
                    source,
                })),
            };
        }
        let (variant, message): (fn(Fault) -> Domain, String) = match api_status(&source) {
            Some(status) if status.code == 429 || status.code >= 500 => (
                Domain::Unavailable,
                format!(
                    "cluster '{cluster}' could not serve the request ({action}): its API \
                     answered {}",
                    status.code
                ),
            ),
            Some(status) => (
                Domain::Internal,
                format!(
                    "cluster '{cluster}' refused {action} ({} {})",
                    status.code, status.reason
                ),
            ),
            None if is_timeout(&source) => (
                Domain::Timeout,
                format!("cluster '{cluster}' did not answer in time ({action})"),
            ),
            None if matches!(source, kube::Error::HyperError(_) | kube::Error::Service(_)) => (
                Domain::Unavailable,
                format!("cluster '{cluster}' cannot be reached ({action})"),
            ),
            None => (
                Domain::Internal,
                format!("{action} on cluster '{cluster}' failed"),
            ),
        };
        variant(Fault::new(message).because(Error::Kube {
            cluster,
            action,
            source,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_error_passes_through_as_it_is() {
        let error = Error::from(framedb_core::Error::invalid("no such thing"));
        let domain = framedb_core::Error::from(error);
        assert!(
            matches!(domain, framedb_core::Error::Invalid(_)),
            "{domain:?}"
        );
        assert_eq!(domain.to_string(), "no such thing");
    }

    /// The `NamespaceLifecycle` plugin's refusal of a create in namespace `ns`.
    fn refused_in_terminating(ns: &str) -> kube::Error {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": 403, "reason": "Forbidden",
            "message": format!("services \"db\" is forbidden: unable to create new content in namespace {ns} because it is being terminated"),
            "details": { "name": "db", "kind": "services", "causes": [{
                "reason": "NamespaceTerminating",
                "message": format!("namespace {ns} is being terminated"),
                "field": "metadata.namespace",
            }] },
        }))
        .unwrap();
        kube::Error::Api(status.boxed())
    }

    #[test]
    fn a_create_in_a_namespace_being_deleted_is_a_conflict_to_retry_not_an_internal_error() {
        let error = Error::kube(
            "cluster-01",
            "creating Service db",
            refused_in_terminating("framedb-storage"),
        );
        let framedb_core::Error::ObjectConflict {
            object, sentence, ..
        } = framedb_core::Error::from(error)
        else {
            panic!("not a conflict");
        };
        assert_eq!(object, "Namespace framedb-storage");
        assert_eq!(
            sentence,
            "namespace framedb-storage on cluster 'cluster-01' is being deleted, so nothing \
             can be created in it (creating Service db); retry once it is gone"
        );
        // The config service's setup knows its cluster only as the caller's.
        let error = Error::kube(
            "the requested cluster",
            "applying ServiceAccount framedb-config",
            refused_in_terminating("framedb-config"),
        );
        let framedb_core::Error::Unavailable(fault) = framedb_core::Error::from(error) else {
            panic!("not unavailable");
        };
        assert!(
            fault
                .message()
                .starts_with("namespace framedb-config on the requested cluster is being deleted"),
            "{}",
            fault.message()
        );
        // Any other 403 stays a refusal.
        let other = kube::Error::Api(
            kube::core::Status::failure("no", "Forbidden")
                .with_code(403)
                .boxed(),
        );
        assert!(matches!(
            framedb_core::Error::from(Error::kube("cluster-01", "x", other)),
            framedb_core::Error::Internal(_)
        ));
    }

    #[test]
    fn node_port_fields_are_recognised_by_their_path() {
        assert!(is_node_port_field("spec.ports[0].nodePort"));
        assert!(is_node_port_field("spec.ports[12].nodePort"));
        for other in [
            "spec.ports[].nodePort",
            "spec.ports[a].nodePort",
            "spec.ports[0].port",
            "spec.clusterIP",
            "",
        ] {
            assert!(!is_node_port_field(other), "{other}");
        }
    }
}
