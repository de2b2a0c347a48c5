//! What can go wrong, and the exit code each failure ends the process with: 1 when the
//! API refused or a wait ended badly, 2 for usage (clap's own, and a token that cannot be
//! sent), 3 when the server cannot be reached or does not answer as FrameDB; 0 when stdout
//! was closed by its reader.

use std::time::Duration;

use serde_json::Value;

/// A command's failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API answered with its failure envelope.
    #[error("{code}: {message}")]
    Refused {
        /// The API's machine-readable `error`.
        code: String,
        /// Its sentence.
        message: String,
        /// Its `details`, when it gives some.
        details: Option<Value>,
    },
    /// An instance waited for reached a state it does not leave by itself.
    #[error("{id} is {status}: {reason}")]
    WaitFailed {
        /// The instance.
        id: String,
        /// Its status.
        status: String,
        /// FrameDB's reason.
        reason: String,
    },
    /// An instance did not get where it was waited for in time.
    #[error("{id} is still {status} after {}: {reason}", seconds(*.waited))]
    WaitTimedOut {
        /// The instance.
        id: String,
        /// Its last status.
        status: String,
        /// FrameDB's reason for it, or a note that it gave none.
        reason: String,
        /// How long it was waited for.
        waited: Duration,
    },
    /// The token holds characters an HTTP header cannot carry (the message does not
    /// quote it).
    #[error("the API token holds characters an HTTP header cannot carry")]
    BadToken,
    /// Nothing answered.
    #[error("cannot reach the FrameDB server at {server}")]
    Unreachable {
        /// The server's URL.
        server: String,
        /// The transport's error (without the URL).
        #[source]
        source: reqwest::Error,
    },
    /// No answer in time.
    #[error("the FrameDB server at {server} did not answer within {}", seconds(*.timeout))]
    Timeout {
        /// The server's URL.
        server: String,
        /// The request timeout.
        timeout: Duration,
    },
    /// An answer that is not FrameDB's JSON envelope (another server, a proxy's page).
    #[error(
        "the server at {server} answered HTTP {status} with something other than FrameDB's JSON \
         (is --server right?)"
    )]
    NotFrameDb {
        /// The server's URL.
        server: String,
        /// The HTTP status it answered.
        status: u16,
    },
    /// Paging through every instance did not end (a server paging without end).
    #[error(
        "the server at {server} still had instances after {pages} pages of {size}; \
         list one cluster (--cluster) or query instead"
    )]
    EndlessPages {
        /// The server's URL.
        server: String,
        /// How many pages were read.
        pages: u64,
        /// Their size.
        size: u64,
    },
    /// A page started where the last one did: the server ignores `skip`.
    #[error(
        "the server at {server} answered the page at skip {skip} with the same first instance \
         as the page before (it ignores skip; is --server right?)"
    )]
    StuckPages {
        /// The server's URL.
        server: String,
        /// Where the page was asked from.
        skip: u64,
    },
    /// An answer over the size cap.
    #[error("the server at {server} answered more than {limit} bytes; narrow the request")]
    TooLarge {
        /// The server's URL.
        server: String,
        /// The cap.
        limit: usize,
    },
    /// The HTTP client could not be built (its TLS roots, say).
    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),
    /// The async runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// Stdout's reader has gone (`| head`): not a failure, the process ends quietly with 0.
    #[error("stdout was closed")]
    StdoutClosed,
    /// The output could not be written or rendered.
    #[error("cannot write the output")]
    Output(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// The process's exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Refused { .. }
            | Self::WaitFailed { .. }
            | Self::WaitTimedOut { .. }
            | Self::Output(_) => 1,
            Self::StdoutClosed => 0,
            Self::BadToken => 2,
            Self::Unreachable { .. }
            | Self::Timeout { .. }
            | Self::NotFrameDb { .. }
            | Self::TooLarge { .. }
            | Self::EndlessPages { .. }
            | Self::StuckPages { .. }
            | Self::Client(_)
            | Self::Runtime(_) => 3,
        }
    }

    /// Whether a wait should keep polling through it: the server or a cluster is busy or
    /// briefly away, which the next poll may not be.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Refused { code, .. } => {
                matches!(code.as_str(), "unavailable" | "timeout" | "overloaded")
            }
            Self::Timeout { .. } => true,
            _ => false,
        }
    }

    /// Whether the API said the instance is not (or no longer) registered.
    pub fn is_instance_not_found(&self) -> bool {
        matches!(self, Self::Refused { code, .. } if code == "instance_not_found")
    }
}

/// `90s`, `10m`, `10m30s`, `500ms`: a duration as a person writes it.
fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs();
    match (secs / 60, secs % 60) {
        (0, 0) => format!("{}ms", duration.as_millis()),
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_written() {
        assert_eq!(seconds(Duration::from_millis(500)), "500ms");
        assert_eq!(seconds(Duration::from_secs(90)), "1m30s");
        assert_eq!(seconds(Duration::from_secs(600)), "10m");
        assert_eq!(seconds(Duration::from_secs(5)), "5s");
    }
}
