//! The JSON event packets of `POST HTTP_EVENTS_PATH`, as logtrain accepts them:
//! `{"severity","facility","hostname","tag","time","message"}`, one object per
//! body or an array of them. Severity and facility are numbers (0–7, 0–23) or
//! syslog names (`info`, `local0`); `time` is RFC 3339 (optional: the time of
//! encoding is used); `hostname` is required, it is the routing key.
//!
//! A body is decoded one event at a time ([`parse_with`]): each event becomes
//! its record, checked and handed to the caller (who charges it to the memory
//! budget) before the next is decoded, so a body never expands into more than
//! the records it holds, and a bad event stops the decoding where it is.

use std::fmt;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::Refused;
use crate::input::budget::Spent;
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
    parse_with(body, &mut |_| Ok(())).map_err(|e| e.to_string())
}

/// [`parse`], handing each record to `keep` (which may refuse it) before the
/// next event is decoded.
pub fn parse_with(body: &[u8], keep: &mut dyn FnMut(&Record) -> Result<(), Spent>) -> Result<Vec<Record>, Refused> {
    let mut out = Vec::new();
    let mut failed = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    let seed = Events {
        out: &mut out,
        keep,
        failed: &mut failed,
    };
    let r = seed.deserialize(&mut de).and_then(|()| de.end());
    if let Some(f) = failed {
        return Err(f);
    }
    r.map_err(|e| Refused::Invalid(format!("invalid JSON: {e}")))?;
    Ok(out)
}

/// The decoding of one body: an object or an array of them.
struct Events<'a> {
    out: &'a mut Vec<Record>,
    keep: &'a mut dyn FnMut(&Record) -> Result<(), Spent>,
    /// Why decoding stopped, when it was not the JSON itself.
    failed: &'a mut Option<Refused>,
}

impl Events<'_> {
    fn take<E: serde::de::Error>(&mut self, i: usize, e: Event) -> Result<(), E> {
        let why = match record(e) {
            Ok(r) => match (self.keep)(&r) {
                Ok(()) => {
                    self.out.push(r);
                    return Ok(());
                }
                Err(spent) => Refused::Spent(spent),
            },
            Err(m) => Refused::Invalid(format!("event {i}: {m}")),
        };
        *self.failed = Some(why);
        Err(E::custom("stopped"))
    }
}

impl<'de> DeserializeSeed<'de> for Events<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Events<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object or an array of them")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, map: A) -> Result<(), A::Error> {
        let e = Event::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        self.take(0, e)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while let Some(e) = seq.next_element::<Event>()? {
            self.take(i, e)?;
            i += 1;
        }
        Ok(())
    }
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
        assert!(parse(br#""text""#).unwrap_err().starts_with("invalid JSON: "));
        assert!(
            parse(br#"[{"hostname":"a"}] x"#)
                .unwrap_err()
                .starts_with("invalid JSON: ")
        );
    }

    #[test]
    fn decoding_stops_at_the_first_event_the_caller_refuses() {
        // 100,000 events that decode into far more than their 19 bytes each.
        let body = format!("[{}]", vec![r#"{"hostname":"h"}"#; 100_000].join(","));
        let mut seen = 0;
        let spent = Spent {
            want: 1,
            free: 0,
            limit: 1,
        };
        let r = parse_with(body.as_bytes(), &mut |_| {
            seen += 1;
            if seen > 10 { Err(spent) } else { Ok(()) }
        });
        assert!(matches!(r, Err(Refused::Spent(_))));
        assert_eq!(seen, 11, "decoding stopped at the refused event");
        // A bad event stops it too, and names itself.
        let body = format!(
            "[{}, {{}}, {}]",
            r#"{"hostname":"h"}"#,
            vec![r#"{"hostname":"h"}"#; 1000].join(",")
        );
        let mut seen = 0;
        let r = parse_with(body.as_bytes(), &mut |_| {
            seen += 1;
            Ok(())
        });
        assert!(
            matches!(&r, Err(Refused::Invalid(m)) if m.starts_with("event 1: hostname is required")),
            "{r:?}"
        );
        assert_eq!(seen, 1);
    }
}
