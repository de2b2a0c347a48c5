//! The cluster directory's records: what setup recorded about a cluster (where its local
//! config service answers, the token that service requires, and the identity of the
//! cluster's API server), and how a later setup compares with it. The store that keeps
//! them is the [`crate::ports::ClusterDirectoryStore`] port.

use std::fmt;
use std::sync::Arc;

use crate::types::ClusterId;

/// The token one cluster's local service requires. Its `Debug` never shows it, and it has
/// no `Display` nor `Serialize`: only [`LocalToken::expose`] gives it out, to send or
/// store it.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalToken(Arc<str>);

impl LocalToken {
    /// Wraps `token`; an empty one is none.
    pub fn new(token: impl Into<String>) -> Option<Self> {
        let token = token.into();
        (!token.is_empty()).then(|| Self(token.into()))
    }

    /// A new token of 256 bits from the operating system's random source, URL-safe.
    ///
    /// # Panics
    /// When the operating system has no random source to read.
    pub fn generate() -> Self {
        use base64::Engine as _;
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's random source");
        Self(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(bytes)
                .into(),
        )
    }

    /// The token itself, to send, install or store.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LocalToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalToken(..)")
    }
}

/// Who a cluster is, as the kubeconfig of its first setup named it: a later setup that
/// names another API server or another certificate authority is not the same cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterIdentity {
    /// The API server's URL, as the kubeconfig wrote it.
    pub api_server: String,
    /// The SHA-256 of the kubeconfig's `certificate-authority-data` (lower-case hex), or
    /// none when it has none.
    pub ca_sha256: Option<String>,
}

/// What setup recorded about one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// The id the fleet knows the cluster by.
    pub cluster_id: ClusterId,
    /// Where the cluster's local config service answers (an `http(s)://` base URL).
    pub local_url: String,
    /// The token installed with that service.
    pub token: LocalToken,
    /// The cluster's API server and certificate authority.
    pub identity: ClusterIdentity,
}

impl DirectoryEntry {
    /// How `wanted` (a new setup of the same cluster) differs from this entry, if it does;
    /// the token is not compared (each setup draws a new one).
    pub fn conflict_with(&self, wanted: &Self) -> Option<Conflict> {
        if self.local_url != wanted.local_url {
            Some(Conflict::LocalUrl)
        } else if self.identity.api_server != wanted.identity.api_server {
            Some(Conflict::ApiServer)
        } else if self.identity.ca_sha256 != wanted.identity.ca_sha256 {
            Some(Conflict::CertificateAuthority)
        } else {
            None
        }
    }
}

/// Why setup may not record a cluster as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The global service's operator configured this cluster (by flag).
    Configured,
    /// Setup recorded it with another local service URL.
    LocalUrl,
    /// Setup recorded it through another API server.
    ApiServer,
    /// Setup recorded it with another certificate authority (or with one, or without).
    CertificateAuthority,
}

impl Conflict {
    /// The stable name of what differs, for the API's `details`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Configured => "configured",
            Self::LocalUrl => "local_url",
            Self::ApiServer => "api_server",
            Self::CertificateAuthority => "certificate_authority",
        }
    }

    /// The sentence of a refused setup of `cluster`.
    pub fn sentence(self, cluster: &ClusterId) -> String {
        let why = match self {
            Self::Configured => {
                return format!(
                    "cluster '{cluster}' is configured by the global service's operator; \
                     setup cannot install or re-point its service through a caller's \
                     kubeconfig"
                );
            }
            Self::LocalUrl => "with another local_url",
            Self::ApiServer => "through another API server",
            Self::CertificateAuthority => "with another certificate authority",
        };
        format!(
            "cluster '{cluster}' was set up {why}; remove it first with its own kubeconfig \
             (or, where the operator allows it, set up with \"replace\": true)"
        )
    }
}

/// What [`crate::ports::ClusterDirectoryStore::record`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The cluster was unknown; the entry is recorded.
    New,
    /// The cluster was recorded already, as this entry; nothing was written.
    Existing(DirectoryEntry),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(url: &str, server: &str, ca: Option<&str>) -> DirectoryEntry {
        DirectoryEntry {
            cluster_id: ClusterId::new("c1").unwrap(),
            local_url: url.into(),
            token: LocalToken::generate(),
            identity: ClusterIdentity {
                api_server: server.into(),
                ca_sha256: ca.map(Into::into),
            },
        }
    }

    #[test]
    fn entries_differ_by_address_then_server_then_ca_and_never_show_their_token() {
        let first = entry("http://a/", "https://k", Some("ab"));
        assert_eq!(
            first.conflict_with(&entry("http://a/", "https://k", Some("ab"))),
            None
        );
        let cases = [
            (entry("http://b/", "https://x", None), Conflict::LocalUrl),
            (
                entry("http://a/", "https://x", Some("ab")),
                Conflict::ApiServer,
            ),
            (
                entry("http://a/", "https://k", None),
                Conflict::CertificateAuthority,
            ),
            (
                entry("http://a/", "https://k", Some("cd")),
                Conflict::CertificateAuthority,
            ),
        ];
        for (wanted, conflict) in cases {
            assert_eq!(first.conflict_with(&wanted), Some(conflict));
        }
        let shown = format!("{first:?}");
        assert!(!shown.contains(first.token.expose()), "{shown}");
        assert!(shown.contains("LocalToken(..)"));
        assert_eq!(LocalToken::new(""), None);
        assert!(LocalToken::generate().expose().len() >= 43, "256 bits");
    }
}
