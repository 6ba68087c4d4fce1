//! The JSON event packets of `POST HTTP_EVENTS_PATH`, as logtrain accepts them:
//! `{"severity","facility","hostname","tag","time","message"}`, one object per
//! body or an array of them. Severity and facility are numbers (0–7, 0–23) or
//! syslog names (`info`, `local0`); `time` is RFC 3339 (optional: the time of
//! encoding is used); `hostname` is required, it is the routing key.

use bytes::Bytes;
use serde::Deserialize;

use crate::record::{Facility, InputKind, Record, Severity};
use crate::time::Timestamp;

#[derive(Deserialize)]
#[serde(untagged)]
enum Level {
    Num(u8),
    Name(String),
}

#[derive(Deserialize)]
struct Event {
    severity: Option<Level>,
    facility: Option<Level>,
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    tag: String,
    time: Option<String>,
    #[serde(default)]
    message: String,
}

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

fn severity(l: &Level) -> Result<Severity, String> {
    match l {
        Level::Num(n) if *n <= 7 => Ok(Severity::new(*n)),
        Level::Name(s) => {
            Severity::parse(s).ok_or_else(|| format!("unknown severity {s:?} (use 0-7 or a name such as \"info\")"))
        }
        Level::Num(n) => Err(format!("severity {n} is out of range 0-7")),
    }
}

fn facility(l: &Level) -> Result<Facility, String> {
    match l {
        Level::Num(n) if *n <= 23 => Ok(Facility::new(*n)),
        Level::Name(s) => FACILITIES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s.trim()))
            .map(|i| Facility::new(i as u8))
            .ok_or_else(|| format!("unknown facility {s:?} (use 0-23 or a name such as \"local0\")")),
        Level::Num(n) => Err(format!("facility {n} is out of range 0-23")),
    }
}

fn record(e: Event) -> Result<Record, String> {
    if e.hostname.trim().is_empty() {
        return Err("hostname is required (it is the routing key)".into());
    }
    let mut r = Record::new(InputKind::HttpEvents, e.hostname, e.message);
    if let Some(s) = &e.severity {
        r.severity = severity(s)?;
    }
    if let Some(f) = &e.facility {
        r.facility = facility(f)?;
    }
    r.app_name = Bytes::from(e.tag);
    if let Some(t) = e.time.filter(|t| !t.is_empty()) {
        r.timestamp = Some(
            Timestamp::parse_rfc3339(t.as_bytes())
                .ok_or_else(|| format!("time {t:?} is not RFC 3339 (e.g. 2024-01-02T03:04:05Z)"))?,
        );
    }
    Ok(r)
}

/// Parses a body into records, or says what is wrong (with the event's index).
pub fn parse(body: &[u8]) -> Result<Vec<Record>, String> {
    let first = body.iter().find(|c| !c.is_ascii_whitespace());
    let events: Vec<Event> = if first == Some(&b'[') {
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?
    } else {
        vec![serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?]
    };
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| record(e).map_err(|m| format!("event {i}: {m}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_or_many() {
        let r = parse(br#"{"severity":3,"facility":"local0","hostname":"h","tag":"t","time":"2024-01-02T03:04:05Z","message":"m"}"#).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].severity.get(), r[0].facility.get()), (3, 16));
        assert_eq!(&r[0].app_name[..], b"t");
        assert_eq!(r[0].timestamp.unwrap().to_rfc3339(), "2024-01-02T03:04:05.000000Z");
        let r =
            parse(br#" [{"hostname":"a","message":"1","severity":"warning"},{"hostname":"b","message":"2"}]"#).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].severity, Severity::WARNING);
        assert_eq!(r[1].severity, Severity::INFO);
    }

    #[test]
    fn errors_name_the_event() {
        assert!(parse(b"{nope").unwrap_err().starts_with("invalid JSON: "));
        let e = parse(br#"[{"hostname":"a"},{"message":"x"}]"#).unwrap_err();
        assert!(e.starts_with("event 1: hostname is required"), "{e}");
        let e = parse(br#"{"hostname":"a","severity":9}"#).unwrap_err();
        assert!(e.contains("severity 9 is out of range"), "{e}");
        let e = parse(br#"{"hostname":"a","time":"yesterday"}"#).unwrap_err();
        assert!(e.contains("not RFC 3339"), "{e}");
    }
}
