//! How much CPU and memory an instance asks for, by name: what a caller may choose in a
//! create, and what a cluster's layout gives when it does not (the sizes themselves are
//! the Kubernetes adapter's, `framedb_k8s::objects`).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Invalid;

/// A named size of an instance's PD, TiKV and TiDB (README, "Resource profiles").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ResourceProfile {
    /// 3.5Gi of memory a pod.
    #[default]
    Small,
    /// 7Gi a pod.
    Medium,
    /// 14Gi a pod.
    Large,
}

impl ResourceProfile {
    /// The profile a name (`small`, `medium`, `large`) stands for.
    ///
    /// # Errors
    /// [`Invalid`], naming the profiles, when `name` is none of them.
    pub fn parse(name: &str) -> Result<Self, Invalid> {
        match name {
            "small" => Ok(Self::Small),
            "medium" => Ok(Self::Medium),
            "large" => Ok(Self::Large),
            _ => Err(Invalid::new(
                "resources must be one of small, medium or large",
            )),
        }
    }

    /// The profile as it appears in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Small => "small",
            Self::Medium => "medium",
            Self::Large => "large",
        }
    }
}

impl fmt::Display for ResourceProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
