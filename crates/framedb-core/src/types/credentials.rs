//! An instance's database credentials: the `root` user and the password generated for it
//! at its first deploy. The password lives on the instance's cluster only (a Secret, with
//! the Kubernetes adapter); it is never written to the registry, and `Debug` hides it so
//! that no log line can carry it by accident.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Fault, Result};

/// The database user FrameDB creates instances with.
pub const ROOT_USER: &str = "root";

/// Random bytes in a generated password: 192 bits, 32 characters once encoded.
const PASSWORD_BYTES: usize = 24;

/// An instance's database user and password. `Debug` shows the user only; the password
/// is reached through [`Self::password`] or serialization (for the answers that carry it).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Raw")]
pub struct Credentials {
    user: String,
    password: String,
}

/// The unchecked JSON shape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    user: String,
    password: String,
}

impl TryFrom<Raw> for Credentials {
    type Error = Error;

    fn try_from(raw: Raw) -> Result<Self> {
        let credentials = Self::root(raw.password)?;
        if raw.user != ROOT_USER {
            return Err(Error::invalid(format!(
                "the credentials' user must be '{ROOT_USER}'"
            )));
        }
        Ok(credentials)
    }
}

impl Credentials {
    /// `root` with a new password of 192 bits from the operating system's random source,
    /// in URL-safe base64 without padding: letters, digits, `-` and `_`, which need no
    /// escaping in a single-quoted SQL literal, a shell word or a URL.
    ///
    /// # Errors
    /// [`Error::Internal`] when the operating system's random source cannot be read.
    pub fn generate() -> Result<Self> {
        use base64::Engine as _;
        let mut bytes = [0u8; PASSWORD_BYTES];
        getrandom::fill(&mut bytes).map_err(|error| {
            Error::Internal(
                Fault::new("no password could be generated").because(RandomSource(error)),
            )
        })?;
        let password = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        Ok(Self {
            user: ROOT_USER.to_owned(),
            password,
        })
    }

    /// `root` with `password`, as read back from where it is kept.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the password is empty or has a character other than
    /// letters, digits, `-` and `_` (which [`Self::generate`] never makes): such a
    /// password would need escaping where the instance's bootstrap quotes it.
    pub fn root(password: impl Into<String>) -> Result<Self> {
        let password = password.into();
        let plain = password
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if password.is_empty() || !plain {
            return Err(Error::invalid(
                "a password must be letters, digits, '-' and '_' only",
            ));
        }
        Ok(Self {
            user: ROOT_USER.to_owned(),
            password,
        })
    }

    /// The user, `root`.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password itself, to install or to hand to the instance's owner.
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// The random source's failure, as an error cause.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
struct RandomSource(getrandom::Error);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_plain_and_different() {
        let one = Credentials::generate().unwrap();
        let two = Credentials::generate().unwrap();
        assert_eq!(one.user(), "root");
        assert_eq!(one.password().len(), 32);
        assert_ne!(one.password(), two.password());
        assert!(Credentials::root(one.password()).is_ok());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let credentials = Credentials::generate().unwrap();
        let shown = format!("{credentials:?} {credentials:#?}");
        assert!(!shown.contains(credentials.password()), "{shown}");
        assert!(shown.contains("root"));
    }

    #[test]
    fn passwords_that_would_need_quoting_are_refused() {
        for bad in ["", "a'b", "a\\b", "a b", "é"] {
            assert!(Credentials::root(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn json_round_trips_and_checks() {
        let credentials = Credentials::root("abc-_9").unwrap();
        let json = serde_json::to_value(&credentials).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"user": "root", "password": "abc-_9"})
        );
        let back: Credentials = serde_json::from_value(json).unwrap();
        assert_eq!(back, credentials);
        let other_user = serde_json::json!({"user": "admin", "password": "abc"});
        assert!(serde_json::from_value::<Credentials>(other_user).is_err());
    }
}
