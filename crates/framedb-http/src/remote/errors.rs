//! How a call to a local service fails: [`CallError`], the cause that travels with the
//! domain error, and the domain error each refusal of the local service stands for.

use framedb_core::{ClusterId, Error, Fault, FramedbId};
use reqwest::{Method, StatusCode};
use url::Url;

use super::MAX_ANSWER;
use crate::wire::Failure;

/// Why a call to a local service failed: the cause of the domain error it becomes.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The HTTP client could not be built.
    #[error("the HTTP client for local services cannot be built")]
    Client(#[source] reqwest::Error),
    /// The request could not be sent, or the answer not received.
    #[error("{method} {url} failed")]
    Transport {
        /// The method.
        method: Method,
        /// The URL called.
        url: Url,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The answer is larger than a local service may send.
    #[error("{url} answered more than {MAX_ANSWER} bytes")]
    TooLarge {
        /// The URL called.
        url: Url,
    },
    /// The answer is not the JSON the API promises.
    #[error("{url} answered {status} with a body that is not the expected JSON")]
    Unreadable {
        /// The URL called.
        url: Url,
        /// The answer's status.
        status: StatusCode,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The service refused the call.
    #[error("{url} answered {status} {code}: {message}")]
    Refused {
        /// The URL called.
        url: Url,
        /// The answer's status.
        status: StatusCode,
        /// The envelope's code.
        code: String,
        /// The envelope's sentence.
        message: String,
    },
    /// A path could not be joined to the service's URL.
    #[error("the URL of a call cannot be built")]
    Url(#[source] url::ParseError),
}

/// The domain error a local service's refusal stands for.
pub(super) fn domain_error(
    cluster: &ClusterId,
    id: Option<&FramedbId>,
    url: &Url,
    status: StatusCode,
    failure: Failure,
) -> Error {
    let Failure {
        message,
        error: code,
        details,
        ..
    } = failure;
    let fault = |sentence: String, message: String| {
        Fault::new(sentence).because(CallError::Refused {
            url: url.clone(),
            status,
            code: code.clone(),
            message,
        })
    };
    match (code.as_str(), id) {
        ("instance_not_found", Some(id)) => Error::InstanceNotFound(id.clone()),
        ("cluster_not_found", _) => Error::ClusterNotFound(cluster.clone()),
        ("invalid_input" | "malformed_json", _) => Error::Invalid(message),
        ("ports_exhausted", _) => Error::PortsExhausted(cluster.clone()),
        ("port_taken", _) => Error::PortTaken {
            cluster: cluster.clone(),
            port: details
                .as_ref()
                .and_then(|details| details.get("port")?.as_u64())
                .and_then(|port| u16::try_from(port).ok())
                .unwrap_or_default(),
        },
        ("port_out_of_range", _) => {
            let detail = |key: &str| details.as_ref().and_then(|details| details.get(key));
            Error::PortOutOfRange {
                cluster: cluster.clone(),
                port: detail("port")
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|port| u16::try_from(port).ok())
                    .unwrap_or_default(),
                valid: detail("valid_ports")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("unknown")
                    .chars()
                    .take(64)
                    .collect(),
            }
        }
        // The cluster runs an instance of this id that this registry does not know (or
        // another create's objects): nothing of it is taken over, and the create's undo
        // removes its own stamp's objects only.
        ("already_exists", _) => Error::ObjectConflict {
            cluster: cluster.clone(),
            object: id.map_or_else(|| "an instance".to_owned(), |id| format!("instance {id}")),
            sentence: format!(
                "cluster '{cluster}' already runs an instance of this id that this registry \
                 does not hold; nothing of it was changed (delete it through the cluster's \
                 config service, or use another framedb_id)"
            ),
        },
        ("conflict", _) => Error::ObjectConflict {
            cluster: cluster.clone(),
            object: details
                .as_ref()
                .and_then(|details| details.get("object")?.as_str())
                .unwrap_or("an object")
                .to_owned(),
            sentence: message,
        },
        ("not_expandable", _) => Error::NotExpandable {
            cluster: cluster.clone(),
            sentence: message,
        },
        ("instance_busy", Some(id)) => Error::InstanceBusy {
            id: id.clone(),
            sentence: message,
        },
        ("unavailable", _) => Error::Unavailable(fault(message.clone(), message)),
        ("timeout", _) => Error::Timeout(fault(message.clone(), message)),
        _ if status == StatusCode::UNAUTHORIZED => Error::BadGateway(fault(
            format!("cluster '{cluster}''s config service refused FrameDB's token"),
            message,
        )),
        _ => Error::Internal(fault(
            format!("cluster '{cluster}''s config service failed"),
            message,
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn refusal(code: &str, details: Option<serde_json::Value>) -> Failure {
        Failure {
            success: false,
            message: "node port 30901 on cluster 'c' is already allocated".into(),
            error: code.into(),
            details,
        }
    }

    #[test]
    fn a_taken_port_is_read_from_the_details_not_the_sentence() {
        let cluster = ClusterId::new("c").unwrap();
        let url = Url::parse("http://127.0.0.1:1/local/v1/instances/a").unwrap();
        let taken = domain_error(
            &cluster,
            None,
            &url,
            StatusCode::CONFLICT,
            refusal("port_taken", Some(json!({"port": 30907}))),
        );
        assert_eq!(
            taken,
            Error::PortTaken {
                cluster: cluster.clone(),
                port: 30907
            }
        );
        let unreadable = domain_error(
            &cluster,
            None,
            &url,
            StatusCode::CONFLICT,
            refusal("port_taken", None),
        );
        assert_eq!(unreadable, Error::PortTaken { cluster, port: 0 });
    }

    #[test]
    fn a_refusal_keeps_the_local_answer_as_its_cause() {
        let cluster = ClusterId::new("c").unwrap();
        let url = Url::parse("http://127.0.0.1:1/local/v1/ports/free").unwrap();
        let failed = domain_error(
            &cluster,
            None,
            &url,
            StatusCode::INTERNAL_SERVER_ERROR,
            refusal("internal", None),
        );
        let Error::Internal(fault) = &failed else {
            panic!("{failed:?}")
        };
        assert_eq!(fault.message(), "cluster 'c''s config service failed");
        let chain = framedb_core::Chain(&failed).to_string();
        assert!(
            chain.contains("answered 500 Internal Server Error internal"),
            "{chain}"
        );
    }
}
