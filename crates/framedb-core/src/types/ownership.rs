//! Who made an instance's objects, and what happens to its volume when it goes: the
//! creation stamp that every object of an instance carries, so that no create takes over
//! and no delete removes what another create made; and the deletion policy.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::invalid::Invalid;
use crate::error::{Error, Fault, Result};

/// Random bytes in a stamp: 128 bits, 32 hex characters.
const STAMP_BYTES: usize = 16;

/// The creation stamp of one instance: drawn at registration, kept in both registries and
/// on every object made for the instance. Two creates of one id have different stamps,
/// so each acts on its own objects only.
///
/// Records and objects from before stamps existed have the empty stamp: they match each
/// other, and nothing a stamped create makes.
///
/// Held inline (no allocation): every record carries one, and the registry may hold a
/// hundred thousand records in memory.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Stamp {
    /// The hex digits, ASCII; `len` of them are used (0 or 32).
    hex: [u8; 2 * STAMP_BYTES],
    len: u8,
}

impl fmt::Debug for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Stamp({:?})", self.as_str())
    }
}

impl Stamp {
    /// A new stamp from the operating system's random source.
    ///
    /// # Errors
    /// [`Error::Internal`] when the random source cannot be read.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; STAMP_BYTES];
        getrandom::fill(&mut bytes).map_err(|error| {
            Error::Internal(Fault::new(format!(
                "the operating system's random source failed ({error})"
            )))
        })?;
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self::new(text).expect("32 lower-case hex digits"))
    }

    /// The stamp of what was made before stamps existed.
    pub fn unstamped() -> Self {
        Self {
            hex: [0; 2 * STAMP_BYTES],
            len: 0,
        }
    }

    /// Checks a stamp read from a peer or a cluster: empty, or 32 lower-case hex digits.
    ///
    /// # Errors
    /// [`Invalid`] otherwise.
    pub fn new(value: impl Into<String>) -> Result<Self, Invalid> {
        let value = value.into();
        let hex = value.len() == 2 * STAMP_BYTES
            && value
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if value.is_empty() {
            Ok(Self::unstamped())
        } else if hex {
            let mut stamp = Self::unstamped();
            stamp.hex.copy_from_slice(value.as_bytes());
            stamp.len = 2 * STAMP_BYTES as u8;
            Ok(stamp)
        } else {
            Err(Invalid::new(
                "a stamp is 32 lower-case hexadecimal digits".to_owned(),
            ))
        }
    }

    /// Whether this is [`Self::unstamped`].
    pub fn is_unstamped(&self) -> bool {
        self.len == 0
    }

    /// The stamp as text (empty for [`Self::unstamped`]).
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        std::str::from_utf8(&self.hex[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl Default for Stamp {
    /// [`Self::unstamped`].
    fn default() -> Self {
        Self::unstamped()
    }
}

impl TryFrom<String> for Stamp {
    type Error = Invalid;
    fn try_from(value: String) -> Result<Self, Invalid> {
        Self::new(value)
    }
}

impl From<Stamp> for String {
    fn from(stamp: Stamp) -> Self {
        stamp.as_str().to_owned()
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_unstamped() {
            "(unstamped)"
        } else {
            self.as_str()
        })
    }
}

/// What deleting an instance does with its volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DeletionPolicy {
    /// The volume goes with the instance (the default).
    #[default]
    Delete,
    /// The volume (and the credentials that open its data) stays on the cluster, marked as
    /// retained for the id; a later create of the same id on the same cluster and node
    /// takes it back.
    Retain,
}

impl DeletionPolicy {
    /// The policy as it appears in JSON and filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delete => "Delete",
            Self::Retain => "Retain",
        }
    }
}

impl fmt::Display for DeletionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a removal of an instance's objects keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Removal {
    /// Everything of the instance goes, volume included.
    Purge,
    /// The workload, Service and policy go; the volume and credentials stay, marked
    /// retained.
    Retain,
    /// The undo of a create that failed: what it made goes, and a retained volume it took
    /// back is retained again.
    Undo,
}

impl Removal {
    /// What deleting an instance under `policy` does, unless the caller asked to purge.
    pub fn of(policy: DeletionPolicy, purge: bool) -> Self {
        match (policy, purge) {
            (_, true) | (DeletionPolicy::Delete, false) => Self::Purge,
            (DeletionPolicy::Retain, false) => Self::Retain,
        }
    }

    /// The removal as a word of the local API (`purge`, `retain`, `undo`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Purge => "purge",
            Self::Retain => "retain",
            Self::Undo => "undo",
        }
    }

    /// The removal a word of the local API names.
    ///
    /// # Errors
    /// [`Invalid`] for any other word.
    pub fn parse(word: &str) -> Result<Self, Invalid> {
        match word {
            "purge" => Ok(Self::Purge),
            "retain" => Ok(Self::Retain),
            "undo" => Ok(Self::Undo),
            _ => Err(Invalid::new(
                "removal must be one of purge, retain, undo".to_owned(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_random_hex_and_checked() {
        let (a, b) = (Stamp::generate().unwrap(), Stamp::generate().unwrap());
        assert_ne!(a, b);
        assert_eq!(Stamp::new(a.as_str()).unwrap(), a);
        assert_eq!(Stamp::new("").unwrap(), Stamp::unstamped());
        for bad in ["xyz", "ABCDEF0123456789ABCDEF0123456789", "00", " "] {
            assert!(Stamp::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deleting_purges_unless_retained_and_not_purged() {
        assert_eq!(Removal::of(DeletionPolicy::Delete, false), Removal::Purge);
        assert_eq!(Removal::of(DeletionPolicy::Retain, false), Removal::Retain);
        assert_eq!(Removal::of(DeletionPolicy::Retain, true), Removal::Purge);
        for removal in [Removal::Purge, Removal::Retain, Removal::Undo] {
            assert_eq!(Removal::parse(removal.as_str()).unwrap(), removal);
        }
    }
}
