//! The crate's errors, and their translation into the domain's.
//!
//! Every driver error is wrapped with what the registry was doing. [`From<Error>`] for
//! [`framedb_core::Error`] is the one place where a driver error becomes a domain error,
//! by its error code; it logs nothing, and keeps the driver's error as the fault's cause
//! for whoever logs it (never with a connection string's credentials):
//!
//! | driver error | domain error |
//! |---|---|
//! | duplicate key (code 11000, also inside write, bulk-write and command errors) on an insert | `AlreadyExists(id)` (the cluster directory reads the winner's entry instead) |
//! | `MaxTimeMSExpired` (50), `ExceededTimeLimit` (262), `NetworkTimeout` (89), a timed-out socket, or the registry's own deadline | `Timeout` |
//! | server selection, connection and I/O errors, a cleared pool, a server shutting down or stepping down | `Unavailable("the registry (MongoDB) cannot be reached")` |
//! | anything else (authentication, a refused command, an unreadable record, ...) | `Internal` |

use std::time::Duration;

use framedb_core::FramedbId;
use mongodb::error::{ErrorKind, WriteFailure};

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The message of every [`framedb_core::Error::Unavailable`] from this crate.
pub const UNAVAILABLE_MESSAGE: &str = "the registry (MongoDB) cannot be reached";
/// The message of every [`framedb_core::Error::Timeout`] from this crate.
pub const TIMEOUT_MESSAGE: &str = "the registry (MongoDB) did not answer in time";

/// Duplicate key.
const DUPLICATE_KEY: [i32; 2] = [11000, 11001];
/// `MaxTimeMSExpired`, `ExceededTimeLimit`, `NetworkTimeout`.
const TIMED_OUT: [i32; 3] = [50, 262, 89];
/// Codes of a server that cannot serve now: host unreachable or not found, socket
/// errors, shutting down, interrupted at shutdown or by a step-down, not primary.
const UNREACHABLE: [i32; 11] = [
    6, 7, 9001, 91, 11600, 11602, 189, 10107, 13435, 13436, 10058,
];

/// What went wrong in the MongoDB registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection string cannot be used.
    #[error("the MongoDB connection string {uri} cannot be used: {reason}")]
    InvalidUri {
        /// The connection string without its credentials.
        uri: String,
        /// Why, in the driver's words unless they would quote the credentials.
        reason: String,
    },

    /// The driver failed an operation.
    #[error("MongoDB failed while {operation}")]
    Driver {
        /// What the registry was doing, as a gerund phrase ("inserting an instance record").
        operation: &'static str,
        /// The instance concerned, when there is one.
        framedb_id: Option<FramedbId>,
        /// The driver's error.
        #[source]
        source: mongodb::error::Error,
    },

    /// An operation took longer than the registry's own deadline (a server that accepts
    /// connections but stops answering).
    #[error("MongoDB did not finish {operation} within {deadline:?}")]
    Deadline {
        /// What the registry was doing.
        operation: &'static str,
        /// The deadline that passed.
        deadline: Duration,
    },

    /// A stored document is not a valid directory entry (written by something else).
    /// The message names the cluster and the field, never the token.
    #[error("the stored directory entry of cluster '{cluster_id}' is not valid: {reason}")]
    CorruptEntry {
        /// The cluster id the document claims, if any.
        cluster_id: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A record of a cluster kept finding a duplicate that was gone when read back (the
    /// cluster set up and removed over and over meanwhile).
    #[error("MongoDB kept changing cluster '{cluster_id}' while {operation}")]
    Contended {
        /// What the directory was doing.
        operation: &'static str,
        /// The cluster.
        cluster_id: String,
    },

    /// A stored document is not a valid instance record (written by something else).
    #[error("the stored record of '{framedb_id}' is not a valid instance record: {reason}")]
    Corrupt {
        /// The id the document claims, if any.
        framedb_id: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    /// Wraps a driver error with what the registry was doing.
    pub(crate) fn driver(operation: &'static str, source: mongodb::error::Error) -> Self {
        Self::Driver {
            operation,
            framedb_id: None,
            source,
        }
    }

    /// Names the instance a driver error concerns; a duplicate key then means that this
    /// id is taken.
    #[must_use]
    pub(crate) fn for_instance(self, id: &FramedbId) -> Self {
        match self {
            Self::Driver {
                operation, source, ..
            } => Self::Driver {
                operation,
                framedb_id: Some(id.clone()),
                source,
            },
            other => other,
        }
    }

    /// Whether the cause is a duplicate key (another record has this `framedb_id`).
    pub fn is_duplicate_key(&self) -> bool {
        matches!(self, Self::Driver { source, .. } if class(source) == Class::DuplicateKey)
    }
}

/// What a driver error means for the registry's callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    DuplicateKey,
    TimedOut,
    Unreachable,
    Other,
}

fn class(error: &mongodb::error::Error) -> Class {
    let mut codes = Vec::new();
    let mut io_timeout = false;
    let mut unreachable_kind = false;
    for error in chain(error) {
        match error.kind.as_ref() {
            ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => io_timeout = true,
            ErrorKind::Io(_)
            | ErrorKind::ServerSelection { .. }
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::DnsResolve { .. } => unreachable_kind = true,
            kind => codes.extend(codes_of(kind)),
        }
    }
    if codes.iter().any(|code| DUPLICATE_KEY.contains(code)) {
        Class::DuplicateKey
    } else if io_timeout || codes.iter().any(|code| TIMED_OUT.contains(code)) {
        Class::TimedOut
    } else if unreachable_kind || codes.iter().any(|code| UNREACHABLE.contains(code)) {
        Class::Unreachable
    } else {
        Class::Other
    }
}

/// The error and the driver errors it was caused by.
fn chain(error: &mongodb::error::Error) -> impl Iterator<Item = &mongodb::error::Error> {
    std::iter::successors(Some(error), |error| {
        // The driver keeps its cause boxed; either form may be what `source` shows.
        std::error::Error::source(*error).and_then(|source| {
            source.downcast_ref::<mongodb::error::Error>().or_else(|| {
                source
                    .downcast_ref::<Box<mongodb::error::Error>>()
                    .map(|boxed| &**boxed)
            })
        })
    })
}

/// The server's error codes in one error kind: a command's, a write's, and each of a bulk
/// write's.
fn codes_of(kind: &ErrorKind) -> Vec<i32> {
    match kind {
        ErrorKind::Command(command) => vec![command.code],
        ErrorKind::Write(WriteFailure::WriteError(write)) => vec![write.code],
        ErrorKind::Write(WriteFailure::WriteConcernError(concern)) => vec![concern.code],
        ErrorKind::InsertMany(insert) => insert
            .write_errors
            .iter()
            .flatten()
            .map(|write| write.code)
            .chain(
                insert
                    .write_concern_error
                    .iter()
                    .map(|concern| concern.code),
            )
            .collect(),
        ErrorKind::BulkWrite(bulk) => bulk
            .write_errors
            .values()
            .map(|write| write.code)
            .chain(bulk.write_concern_errors.iter().map(|concern| concern.code))
            .collect(),
        _ => Vec::new(),
    }
}

impl From<Error> for framedb_core::Error {
    fn from(error: Error) -> Self {
        use framedb_core::Fault;
        let class = match &error {
            Error::Driver {
                framedb_id: Some(id),
                source,
                ..
            } if class(source) == Class::DuplicateKey => return Self::AlreadyExists(id.clone()),
            Error::Driver { source, .. } => class(source),
            Error::Deadline { .. } => Class::TimedOut,
            Error::InvalidUri { .. }
            | Error::Corrupt { .. }
            | Error::CorruptEntry { .. }
            | Error::Contended { .. } => Class::Other,
        };
        match class {
            Class::TimedOut => Self::Timeout(Fault::new(TIMEOUT_MESSAGE).because(error)),
            Class::Unreachable => Self::Unavailable(Fault::new(UNAVAILABLE_MESSAGE).because(error)),
            Class::DuplicateKey | Class::Other => {
                let message = match &error {
                    Error::Driver { operation, .. } => {
                        format!("the registry (MongoDB) failed while {operation}")
                    }
                    Error::InvalidUri { .. } => {
                        "the registry's MongoDB connection string cannot be used".to_owned()
                    }
                    Error::Corrupt { .. } | Error::Deadline { .. } => {
                        "a record in the registry (MongoDB) could not be read".to_owned()
                    }
                    Error::CorruptEntry { .. } => {
                        "an entry of the cluster directory (MongoDB) could not be read".to_owned()
                    }
                    Error::Contended { .. } => {
                        "the cluster directory (MongoDB) kept changing; try again".to_owned()
                    }
                };
                Self::Internal(Fault::new(message).because(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn id() -> FramedbId {
        FramedbId::new("tidb-001").unwrap()
    }

    fn io(kind: std::io::ErrorKind) -> mongodb::error::Error {
        mongodb::error::Error::from(ErrorKind::Io(Arc::new(std::io::Error::from(kind))))
    }

    fn server_error<T: serde::de::DeserializeOwned>(document: mongodb::bson::Document) -> T {
        mongodb::bson::deserialize_from_document(document).unwrap()
    }

    #[test]
    fn duplicate_keys_are_taken_ids_wherever_the_driver_puts_them() {
        use mongodb::bson::doc;
        let write = ErrorKind::Write(WriteFailure::WriteError(server_error(
            doc! {"code": 11000, "codeName": "DuplicateKey", "errmsg": "E11000 duplicate key"},
        )));
        let command = ErrorKind::Command(server_error(
            doc! {"code": 11000, "codeName": "DuplicateKey", "errmsg": "E11000 duplicate key"},
        ));
        let insert_many = ErrorKind::InsertMany(server_error(doc! {
            "writeErrors": [{"index": 0, "code": 11000, "errmsg": "E11000 duplicate key"}]
        }));
        for kind in [write, command, insert_many] {
            let error = Error::driver("inserting an instance record", kind.into());
            assert!(error.is_duplicate_key());
            assert_eq!(
                framedb_core::Error::from(error.for_instance(&id())),
                framedb_core::Error::AlreadyExists(id())
            );
        }
        let expired = ErrorKind::Command(server_error(
            doc! {"code": 50, "codeName": "MaxTimeMSExpired", "errmsg": "operation exceeded time limit"},
        ));
        assert_eq!(
            framedb_core::Error::from(Error::driver("querying instance records", expired.into())),
            framedb_core::Error::Timeout(TIMEOUT_MESSAGE.into())
        );
        let stepping_down = ErrorKind::Command(server_error(
            doc! {"code": 91, "codeName": "ShutdownInProgress", "errmsg": "shutting down"},
        ));
        assert_eq!(
            framedb_core::Error::from(Error::driver(
                "querying instance records",
                stepping_down.into()
            )),
            framedb_core::Error::Unavailable(UNAVAILABLE_MESSAGE.into())
        );
    }

    #[test]
    fn unreachable_and_timeouts() {
        let refused = Error::driver(
            "reading an instance record",
            io(std::io::ErrorKind::ConnectionRefused),
        );
        assert_eq!(
            framedb_core::Error::from(refused),
            framedb_core::Error::Unavailable(UNAVAILABLE_MESSAGE.into())
        );
        let slow = Error::driver(
            "reading an instance record",
            io(std::io::ErrorKind::TimedOut),
        );
        assert!(matches!(
            framedb_core::Error::from(slow),
            framedb_core::Error::Timeout(_)
        ));
        let deadline = Error::Deadline {
            operation: "querying instance records",
            deadline: Duration::from_secs(1),
        };
        assert!(matches!(
            framedb_core::Error::from(deadline),
            framedb_core::Error::Timeout(_)
        ));
    }

    #[test]
    fn other_errors_are_internal_with_a_sentence_of_our_own() {
        let error = Error::driver(
            "removing an instance record",
            mongodb::error::Error::custom("boom".to_owned()),
        )
        .for_instance(&id());
        assert!(!error.is_duplicate_key());
        match framedb_core::Error::from(error) {
            framedb_core::Error::Internal(fault) => {
                let message = fault.message();
                assert!(!message.contains("boom"), "{message}");
                assert!(message.contains("removing an instance record"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_uris_never_show_credentials() {
        let error = Error::InvalidUri {
            uri: crate::redact_uri("mongodb://user:pw@host"),
            reason: "x".to_owned(),
        };
        assert!(!error.to_string().contains("pw"));
        assert!(matches!(
            framedb_core::Error::from(error),
            framedb_core::Error::Internal(_)
        ));
    }
}
