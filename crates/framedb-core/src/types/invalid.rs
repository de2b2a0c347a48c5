//! The error of a value that breaks a rule of its type.

/// A value that breaks a rule: the sentence says which. It becomes
/// [`crate::Error::Invalid`] (and a 400 over HTTP).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(String);

impl Invalid {
    /// A value broke the rule `message` states.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// The sentence.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl From<Invalid> for String {
    fn from(invalid: Invalid) -> Self {
        invalid.0
    }
}
