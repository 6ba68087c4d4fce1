//! Which records a drain takes: `severity=`, `match=`, `exclude=`,
//! `stream=`. Patterns are compiled once, when the URL is parsed, by the
//! `regex` crate (linear time in the message, whatever the pattern) with a
//! bound on the compiled program, so a pattern from an annotation can cost
//! neither unbounded time nor memory. Pure functions only.

use std::fmt;

use regex::bytes::{Regex, RegexBuilder};

use crate::record::{Record, Severity, Stream};

/// Bytes a compiled pattern (and, separately, its lazy DFA cache) may take.
pub const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// A compiled `match=` or `exclude=` pattern, compared by its source.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    regex: Regex,
}

impl Pattern {
    /// Compiles `source`; the error says why it cannot be used.
    pub fn new(source: &str) -> Result<Pattern, regex::Error> {
        let regex = RegexBuilder::new(source)
            .size_limit(PATTERN_SIZE_LIMIT)
            .dfa_size_limit(PATTERN_SIZE_LIMIT)
            .build()?;
        Ok(Pattern {
            source: source.to_string(),
            regex,
        })
    }

    /// Whether the pattern occurs anywhere in `message` (raw bytes: a message
    /// that is not UTF-8 is still searched).
    pub fn is_match(&self, message: &[u8]) -> bool {
        self.regex.is_match(message)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pattern(..)")
    }
}

/// The record filters of one drain; the default takes every record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Records at this severity or more severe (a lower number) only.
    pub severity: Option<Severity>,
    /// Messages where this pattern occurs only.
    pub matches: Option<Pattern>,
    /// Messages where this pattern does not occur only.
    pub exclude: Option<Pattern>,
    /// Container logs of this stream only (records without a stream, from
    /// push inputs, are left out).
    pub stream: Option<Stream>,
}

impl Filter {
    /// Whether it takes every record.
    pub fn is_empty(&self) -> bool {
        self == &Filter::default()
    }

    /// Whether the drain takes `rec`. Cheapest tests first: a severity is one
    /// comparison, a pattern a scan of the message.
    pub fn admits(&self, rec: &Record) -> bool {
        if let Some(s) = self.severity
            && rec.severity > s
        {
            return false;
        }
        if let Some(s) = self.stream
            && rec.origin.stream != Some(s)
        {
            return false;
        }
        if let Some(p) = &self.matches
            && !p.is_match(&rec.message)
        {
            return false;
        }
        if let Some(p) = &self.exclude
            && p.is_match(&rec.message)
        {
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::InputKind;

    fn rec(sev: Severity, stream: Option<Stream>, msg: &str) -> Record {
        let mut r = Record::new(InputKind::File, "h", msg.to_string());
        r.severity = sev;
        r.origin.stream = stream;
        r
    }

    #[test]
    fn severity_keeps_that_level_and_more_severe() {
        let f = Filter {
            severity: Some(Severity::WARNING),
            ..Filter::default()
        };
        assert!(f.admits(&rec(Severity::ERROR, None, "x")));
        assert!(f.admits(&rec(Severity::WARNING, None, "x")));
        assert!(!f.admits(&rec(Severity::INFO, None, "x")));
        assert!(!f.admits(&rec(Severity::DEBUG, None, "x")));
    }

    #[test]
    fn match_and_exclude_search_the_message() {
        let f = Filter {
            matches: Some(Pattern::new("^GET ").unwrap()),
            exclude: Some(Pattern::new("/healthz").unwrap()),
            ..Filter::default()
        };
        assert!(f.admits(&rec(Severity::INFO, None, "GET /users")));
        assert!(!f.admits(&rec(Severity::INFO, None, "GET /healthz")));
        assert!(!f.admits(&rec(Severity::INFO, None, "POST /users")));
        let mut bytes = rec(Severity::INFO, None, "");
        bytes.message = bytes::Bytes::from_static(b"GET \xff\xfe");
        assert!(f.admits(&bytes), "a message that is not UTF-8 is searched too");
    }

    #[test]
    fn stream_keeps_that_stream_only() {
        let f = Filter {
            stream: Some(Stream::Stderr),
            ..Filter::default()
        };
        assert!(f.admits(&rec(Severity::INFO, Some(Stream::Stderr), "x")));
        assert!(!f.admits(&rec(Severity::INFO, Some(Stream::Stdout), "x")));
        assert!(!f.admits(&rec(Severity::INFO, None, "pushed")));
        assert!(Filter::default().admits(&rec(Severity::DEBUG, None, "x")));
        assert!(Filter::default().is_empty() && !f.is_empty());
    }

    #[test]
    fn a_pattern_too_large_to_compile_is_refused() {
        assert!(Pattern::new(r"\w{1000}\w{1000}\w{1000}").is_err());
        assert!(Pattern::new("(unclosed").is_err());
        assert_eq!(Pattern::new("a+").unwrap(), Pattern::new("a+").unwrap());
    }
}
