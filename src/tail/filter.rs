//! What a live tail keeps of its hostname's records: a highest severity and a
//! regular expression on the message, both optional. Pure values: parsing a
//! query and matching a record, nothing else.

use regex::bytes::{Regex, RegexBuilder};

use crate::record::{Record, Severity};

/// Longest `match` pattern accepted.
pub const MAX_PATTERN: usize = 512;
/// Compiled size limit of a `match` pattern (the regex crate's own measure).
const MAX_COMPILED: usize = 256 << 10;

/// Keeps records at or above a severity whose message matches a pattern.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    severity: Option<Severity>,
    pattern: Option<Regex>,
}

/// A query a filter cannot be made of; the message says what would be valid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    #[error("severity {0:?} is not a syslog severity (emerg … debug, or 0-7)")]
    Severity(String),
    #[error("match pattern is longer than {MAX_PATTERN} bytes")]
    TooLong,
    #[error("match pattern is not a valid regular expression: {0}")]
    Pattern(String),
}

impl Filter {
    /// A filter from the `severity` and `match` values of a query.
    pub fn new(severity: Option<&str>, pattern: Option<&str>) -> Result<Filter, FilterError> {
        let severity = match severity.filter(|s| !s.is_empty()) {
            Some(s) => Some(Severity::parse(s).ok_or_else(|| FilterError::Severity(s.to_string()))?),
            None => None,
        };
        let pattern = match pattern.filter(|p| !p.is_empty()) {
            Some(p) if p.len() > MAX_PATTERN => return Err(FilterError::TooLong),
            Some(p) => Some(
                RegexBuilder::new(p)
                    .size_limit(MAX_COMPILED)
                    .build()
                    .map_err(|e| FilterError::Pattern(e.to_string()))?,
            ),
            None => None,
        };
        Ok(Filter { severity, pattern })
    }

    /// Whether the stream shows `rec`.
    pub fn accepts(&self, rec: &Record) -> bool {
        self.severity.is_none_or(|s| rec.severity.get() <= s.get())
            && self.pattern.as_ref().is_none_or(|p| p.is_match(&rec.message))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::record::InputKind;

    fn rec(sev: Severity, msg: &str) -> Record {
        let mut r = Record::new(
            InputKind::SyslogTcp,
            Bytes::from_static(b"web.default"),
            Bytes::from(msg.to_string()),
        );
        r.severity = sev;
        r
    }

    #[test]
    fn a_severity_keeps_that_level_and_the_more_severe_ones() {
        let f = Filter::new(Some("warning"), None).unwrap();
        assert!(f.accepts(&rec(Severity::ERROR, "x")));
        assert!(f.accepts(&rec(Severity::WARNING, "x")));
        assert!(!f.accepts(&rec(Severity::INFO, "x")));
    }

    #[test]
    fn a_pattern_keeps_only_matching_messages() {
        let f = Filter::new(None, Some("GET /api/.*500")).unwrap();
        assert!(f.accepts(&rec(Severity::INFO, "GET /api/x 500")));
        assert!(!f.accepts(&rec(Severity::INFO, "GET /api/x 200")));
    }

    #[test]
    fn bad_queries_are_refused_with_what_would_be_valid() {
        assert!(matches!(Filter::new(Some("loud"), None), Err(FilterError::Severity(_))));
        assert!(matches!(Filter::new(None, Some("(")), Err(FilterError::Pattern(_))));
        let long = "a".repeat(MAX_PATTERN + 1);
        assert_eq!(Filter::new(None, Some(&long)).unwrap_err(), FilterError::TooLong);
        assert!(matches!(
            Filter::new(None, Some("a{1000}{1000}")),
            Err(FilterError::Pattern(_))
        ));
    }
}
