//! A setting that is a secret (a token, a connection string that may carry a password):
//! its `Debug` never shows it, so printing the settings cannot leak it.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

/// A secret setting's value. Read it with [`Secret::expose`], where it is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl FromStr for Secret {
    type Err = Infallible;
    fn from_str(value: &str) -> Result<Self, Infallible> {
        Ok(Self(value.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::from("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(<hidden>)");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn the_settings_debug_shows_no_secret() {
        let mut settings = crate::settings::GlobalSettings::default();
        settings.serve.token = Some("api-t0ken".into());
        settings.fleet.local_token = Some("local-t0ken".into());
        settings.mongo.uri = Some("mongodb://user:pa55@host/".into());
        let shown = format!("{settings:?}");
        for secret in ["api-t0ken", "local-t0ken", "pa55"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
