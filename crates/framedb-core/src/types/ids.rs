//! Identifiers: the instance id (a DNS-1123 label, since it names Kubernetes objects and a
//! DNS name) and the cluster and node ids (Kubernetes label values).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::invalid::Invalid;

type Result<T, E = Invalid> = std::result::Result<T, E>;

/// Longest `framedb_id`: derived names such as `{id}-data` and pod names stay under 63.
const MAX_FRAMEDB_ID_LEN: usize = 40;
/// Longest Kubernetes label value.
const MAX_LABEL_VALUE_LEN: usize = 63;
/// Path words of the API that an id would shadow.
const RESERVED_IDS: [&str; 2] = ["query", "cluster"];

/// Declares a string newtype whose only constructor is its validating `new`.
macro_rules! validated_string {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks `value` against the type's rules.
            ///
            /// # Errors
            /// [`Invalid`] with a sentence naming the broken rule.
            pub fn new(value: impl Into<String>) -> Result<Self> {
                let value = value.into();
                $check(&value)?;
                Ok(Self(value))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Invalid;
            fn try_from(value: String) -> Result<Self> {
                Self::new(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = Invalid;
            fn from_str(value: &str) -> Result<Self> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

validated_string!(
    /// The id of a persistent instance: a DNS-1123 label of at most 40 characters that
    /// starts with a letter and is not one of the reserved path words `query` and `cluster`.
    FramedbId,
    check_framedb_id
);

validated_string!(
    /// The id of a Kubernetes cluster in the fleet, a Kubernetes label value.
    ClusterId,
    check_cluster_id
);

validated_string!(
    /// The id of a node, matched against the node label (by default
    /// `kubernetes.io/hostname`), so a Kubernetes label value.
    NodeId,
    check_node_id
);

fn check_framedb_id(value: &str) -> Result<()> {
    const RULE: &str = "framedb_id must be 1 to 40 lowercase letters, digits or '-', \
                        starting with a letter and ending with a letter or digit";
    let bytes = value.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= MAX_FRAMEDB_ID_LEN
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if !valid {
        return Err(Invalid::new(described(RULE, value)));
    }
    if RESERVED_IDS.contains(&value) {
        return Err(Invalid::new(format!(
            "framedb_id '{value}' is reserved: it is a word of the API's paths"
        )));
    }
    Ok(())
}

fn check_cluster_id(value: &str) -> Result<()> {
    check_label_value("cluster_id", value)
}

fn check_node_id(value: &str) -> Result<()> {
    check_label_value("node_id", value)
}

fn check_label_value(field: &str, value: &str) -> Result<()> {
    let bytes = value.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= MAX_LABEL_VALUE_LEN
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(Invalid::new(described(
            &format!(
                "{field} must be a Kubernetes label value: 1 to 63 letters, digits, '-', '_' \
                 or '.', starting and ending with a letter or digit"
            ),
            value,
        )))
    }
}

/// The rule, followed by the offending value when it is short enough to echo usefully.
fn described(rule: &str, value: &str) -> String {
    const MAX_ECHO: usize = 64;
    if value.is_empty() {
        format!("{rule} (got an empty string)")
    } else if value.chars().count() <= MAX_ECHO && !value.chars().any(char::is_control) {
        format!("{rule} (got '{value}')")
    } else {
        format!("{rule} (got {} characters)", value.chars().count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framedb_id_accepts_dns_labels() {
        for ok in ["tidb-001", "a", "a1", "x-y-z", &"a".repeat(40)] {
            assert_eq!(FramedbId::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn framedb_id_rejects_what_kubernetes_or_the_paths_would() {
        for bad in [
            "",
            "TIDB-001",
            "tidb_001",
            "1tidb",
            "-tidb",
            "tidb-",
            "tidb.001",
            "tídb",
            &"a".repeat(41),
            "query",
            "cluster",
        ] {
            let err = FramedbId::new(bad).unwrap_err();
            assert!(
                matches!(crate::Error::from(err.clone()), crate::Error::Invalid(_)),
                "{bad}: {err:?}"
            );
            assert!(err.to_string().starts_with("framedb_id"), "{err}");
        }
    }

    #[test]
    fn label_values_follow_kubernetes_rules() {
        for ok in ["cluster-01", "Node_A", "n.1", "x", &"a".repeat(63)] {
            ClusterId::new(ok).unwrap();
            NodeId::new(ok).unwrap();
        }
        for bad in ["", "-a", "a-", "a b", "a/b", ".a", &"a".repeat(64)] {
            assert!(
                ClusterId::new(bad)
                    .unwrap_err()
                    .to_string()
                    .starts_with("cluster_id")
            );
            assert!(
                NodeId::new(bad)
                    .unwrap_err()
                    .to_string()
                    .starts_with("node_id")
            );
        }
    }

    #[test]
    fn deserializing_validates() {
        let err = serde_json::from_str::<FramedbId>("\"Bad\"").unwrap_err();
        assert!(err.to_string().contains("framedb_id must be"), "{err}");
        let id: FramedbId = serde_json::from_str("\"good\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"good\"");
    }

    #[test]
    fn long_values_are_not_echoed() {
        let err = FramedbId::new("X".repeat(500)).unwrap_err().to_string();
        assert!(err.ends_with("(got 500 characters)"), "{err}");
    }
}
