//! A setting that must never be shown: `HTTP_TOKEN`, `DATABASE_URL`, TLS private
//! keys. [`Secret`]'s `Debug` and `Display` print `***`, so a secret can sit in a
//! struct that is logged or printed without leaking; only [`Secret::expose`]
//! gives the text, and callers use it at the one place the value is needed
//! (a header comparison, a connection string). Errors about a secret describe
//! it without quoting it.

use std::fmt;

use serde::Deserialize;

/// Text that is never printed.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Self {
        Secret(text.into())
    }

    /// The secret itself: use it, never print it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neither_debug_nor_display_shows_the_text() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?} {:?}", Some(&s)), "*** Secret(***) Some(Secret(***))");
        assert_eq!(s.expose(), "hunter2");
    }
}
