//! The drains table as routes: a row (loaded, or carried by a NOTIFY payload)
//! becomes one route object, a notification becomes route events. Pure
//! functions only: nothing here talks to the database, and a payload that
//! cannot be read is described by the kind of problem and where it is, never
//! by its values (an endpoint holds credentials).

use serde::Deserialize;

use crate::datasource::{RouteEvent, RouteObject, RouteSpec};

/// A row of the drains table, as loaded or as carried by a NOTIFY payload.
/// Other columns (`created`, `updated`, anything an operator added) are ignored.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct DrainRow {
    pub drain: String,
    pub hostname: String,
    pub endpoint: String,
    /// The optional `tag` column (the Go logtrain's writer fills it), read when
    /// the table has one: the route's records carry it as their APP-NAME at
    /// this row's drain (empty or absent: they keep their own).
    #[serde(default, deserialize_with = "any_text")]
    pub tag: Option<String>,
}

/// Reads a column of any JSON type as text (`null` as none), so an unusual
/// type of an optional column never makes a payload unreadable.
fn any_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}

impl DrainRow {
    pub(super) fn object(&self) -> RouteObject {
        RouteObject {
            id: object_id(&self.drain),
            routes: vec![RouteSpec {
                hostname: self.hostname.clone(),
                drain: self.endpoint.clone(),
                tag: self.tag.clone().filter(|t| !t.is_empty()),
            }],
        }
    }
}

fn object_id(drain: &str) -> String {
    format!("drain {drain}")
}

#[derive(Deserialize)]
struct UpdatePayload {
    old: DrainRow,
    new: DrainRow,
}

/// Why a payload could not be read, without its values (serde's messages may
/// quote a value, and an endpoint holds credentials): the kind of problem and
/// where it is.
fn unreadable(e: serde_json::Error) -> UnreadablePayload {
    UnreadablePayload(describe(e))
}

fn describe(e: serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Io => "cannot be read",
        Category::Syntax => "is not valid JSON",
        Category::Eof => "ends early",
        Category::Data => match e.to_string().strip_prefix("missing field `") {
            // "missing field `drain`" names a field, never a value.
            Some(rest) => {
                let field = rest.split('`').next().unwrap_or_default();
                return format!("payload lacks field {field} (line {} column {})", e.line(), e.column());
            }
            None => "is not a drain row",
        },
    };
    format!("payload {what} (line {} column {})", e.line(), e.column())
}

/// A notification that cannot be turned into route events: what is wrong
/// and where, never the payload's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnreadablePayload(String);

/// Turns one notification into route events; `Err` means the payload is unreadable.
pub fn events_for(channel: &str, payload: &str) -> Result<Vec<RouteEvent>, UnreadablePayload> {
    let row = |p: &str| serde_json::from_str::<DrainRow>(p).map_err(unreadable);
    match channel {
        "drains.insert" => Ok(vec![RouteEvent::Apply(row(payload)?.object())]),
        "drains.delete" => Ok(vec![RouteEvent::Delete(object_id(&row(payload)?.drain))]),
        "drains.update" => {
            let u: UpdatePayload = serde_json::from_str(payload).map_err(unreadable)?;
            let mut ev = Vec::new();
            if u.old.drain != u.new.drain {
                ev.push(RouteEvent::Delete(object_id(&u.old.drain)));
            }
            // The route writer ignores an Apply that changes nothing, so an update of
            // other columns does not disturb the route (a new tag does change it).
            ev.push(RouteEvent::Apply(u.new.object()));
            Ok(ev)
        }
        other => Err(UnreadablePayload(format!("unexpected channel {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_payloads() {
        let ins =
            r#"{"drain":"a1","hostname":"web.default","endpoint":"syslog+tcp://h:1","created":null,"updated":null}"#;
        assert_eq!(
            events_for("drains.insert", ins).unwrap(),
            vec![RouteEvent::Apply(RouteObject {
                id: "drain a1".into(),
                routes: vec![RouteSpec {
                    hostname: "web.default".into(),
                    drain: "syslog+tcp://h:1".into(),
                    tag: None,
                }]
            })]
        );
        assert_eq!(
            events_for("drains.delete", ins).unwrap(),
            vec![RouteEvent::Delete("drain a1".into())]
        );
        let upd = format!(r#"{{"old":{ins},"new":{}}}"#, ins.replace("web.default", "api.default"));
        let ev = events_for("drains.update", &upd).unwrap();
        assert_eq!(ev.len(), 1);
        assert!(matches!(&ev[0], RouteEvent::Apply(o) if o.routes[0].hostname == "api.default"));
        assert!(events_for("drains.insert", "not json").is_err());
        assert!(events_for("drains.insert", r#"{"drain":"x"}"#).is_err());
        assert!(events_for("drains.update", ins).is_err());
    }

    #[test]
    fn an_unreadable_payload_is_described_without_its_values() {
        let url = "https://u:Passw0rd@h/inputs/T0ken";
        for (channel, payload) in [
            ("drains.update", format!(r#"{{"old":"{url}","new":"{url}"}}"#)),
            (
                "drains.insert",
                format!(r#"{{"drain":7,"hostname":"{url}","endpoint":{{}}}}"#),
            ),
            ("drains.insert", format!(r#"{{"hostname":"x","endpoint":"{url}"}}"#)),
            ("drains.delete", format!(r#"{{"drain":"{url}""#)),
            ("drains.insert", format!(r#"["{url}"]"#)),
        ] {
            let e = events_for(channel, &payload).unwrap_err().to_string();
            assert!(!e.contains("Passw0rd") && !e.contains("T0ken"), "{payload}: {e}");
            assert!(e.contains("line 1 column"), "{e}");
        }
        let e = events_for("drains.insert", r#"{"hostname":"x","endpoint":"y"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("payload lacks field drain"), "{e}");
    }

    #[test]
    fn a_tag_column_is_read_and_becomes_the_routes_tag() {
        let base = r#""drain":"a1","hostname":"web.default","endpoint":"syslog+tcp://h:1""#;
        let tagged = |tag: Option<&str>| {
            vec![RouteEvent::Apply(RouteObject {
                id: "drain a1".into(),
                routes: vec![RouteSpec {
                    hostname: "web.default".into(),
                    drain: "syslog+tcp://h:1".into(),
                    tag: tag.map(String::from),
                }],
            })]
        };
        assert_eq!(
            events_for("drains.insert", &format!("{{{base}}}")).unwrap(),
            tagged(None)
        );
        for (tag, read) in [
            (r#""shop""#, Some("shop")),
            ("null", None),
            (r#""""#, None),
            ("7", Some("7")),
            (r#"{"a":1}"#, Some(r#"{"a":1}"#)),
        ] {
            let payload = format!(r#"{{{base},"tag":{tag},"created":"2026-12-01T10:00:00+00:00"}}"#);
            let row: DrainRow = serde_json::from_str(&payload).unwrap();
            assert_eq!(row.tag.as_deref().filter(|t| !t.is_empty()), read, "{payload}");
            assert_eq!(
                events_for("drains.insert", &payload).unwrap(),
                tagged(read),
                "{payload}"
            );
            assert_eq!(
                events_for("drains.delete", &payload).unwrap(),
                vec![RouteEvent::Delete("drain a1".into())]
            );
        }
        // An update of the tag alone moves the route to the new tag.
        let old = format!(r#"{{{base},"tag":"shop"}}"#);
        let new = format!(r#"{{{base},"tag":"cart"}}"#);
        let ev = events_for("drains.update", &format!(r#"{{"old":{old},"new":{new}}}"#)).unwrap();
        assert_eq!(ev, tagged(Some("cart")));
    }
}
