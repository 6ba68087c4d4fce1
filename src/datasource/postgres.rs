//! The Postgres drain table datasource: loads every row of `drains` at start,
//! then follows `LISTEN drains.insert / drains.update / drains.delete`.
//!
//! It never exits on a database error: on connection loss it keeps the last good
//! routes, reconnects with jittered backoff and resyncs (a full listing, which the
//! route writer swaps in as a whole, so unchanged routes keep their drains). LISTEN
//! is issued before the listing, so no change can fall between the two. A NOTIFY
//! payload it cannot read triggers a resync rather than being ignored. The
//! database URL (and its password) is never logged, nor a payload's values.
//!
//! TLS follows libpq's `sslmode` (see [`tls`]); a session that ends up
//! unencrypted or with an unchecked certificate is warned about, naming the
//! `sslmode` that would protect it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::poll_fn;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Client, Notification, Socket};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Datasource, OriginKind, RouteEvent, RouteObject, RouteSender, RouteSpec, RouteUpdate};
use crate::backoff::Backoff;
use crate::telemetry;

pub mod tls;

use tls::Protection;

const SCHEMA: &str = include_str!("postgres/schema.sql");
/// Key of the advisory lock that serialises schema creation across nodes.
const SCHEMA_LOCK: i64 = 0x6c6f_6774_7261_696e; // "logtrain"
const CHANNELS: [&str; 3] = ["drains.insert", "drains.update", "drains.delete"];
/// How often an idle session checks that the server still answers.
const PING_EVERY: Duration = Duration::from_secs(15);
/// How long the server may take to answer: connecting (TCP, TLS,
/// authentication) or a ping.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

type PgConnection = tokio_postgres::Connection<Socket, <tls::Connector as MakeTlsConnect<Socket>>::Stream>;

/// What went wrong talking to Postgres (never contains the password).
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("DATABASE_URL is not a valid Postgres URL: {0}")]
    Url(String),
    #[error("DATABASE_URL: sslrootcert: {0}")]
    RootCert(#[source] crate::tls::TlsError),
    #[error(
        "postgres: the server's certificate is refused under sslmode={mode} ({reason}); \
         sslrootcert=FILE names the CA that signed it"
    )]
    Certificate {
        mode: &'static str,
        reason: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("postgres: {}", detail(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("postgres did not answer within {0:?}")]
    Timeout(Duration),
    #[error("postgres connection closed")]
    Closed,
}

impl PgError {
    /// A failed connection: a refused certificate apart from everything else.
    fn connecting(e: tokio_postgres::Error, mode: tls::SslMode) -> PgError {
        match refused_certificate(&e) {
            Some(reason) => PgError::Certificate {
                mode: mode.as_str(),
                reason,
                source: e,
            },
            None => PgError::Db(e),
        }
    }
}

/// The reason rustls refused the server's certificate, if that is why `e` happened.
fn refused_certificate(e: &tokio_postgres::Error) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        // tokio-rustls wraps the rustls error in an io::Error, whose `source` skips it.
        let tls = c
            .downcast_ref::<rustls::Error>()
            .or_else(|| c.downcast_ref::<std::io::Error>()?.get_ref()?.downcast_ref());
        if let Some(rustls::Error::InvalidCertificate(reason)) = tls {
            return Some(reason.to_string());
        }
        cause = c.source();
    }
    None
}

/// The server's own words when it sent an error (tokio-postgres alone says
/// only "db error"), else the error and its cause. Neither holds the password.
fn detail(e: &tokio_postgres::Error) -> String {
    match (e.as_db_error(), std::error::Error::source(e)) {
        (Some(db), _) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        (None, Some(cause)) => format!("{e}: {cause}"),
        (None, None) => e.to_string(),
    }
}

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
    fn object(&self) -> RouteObject {
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
fn unreadable(e: serde_json::Error) -> String {
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

/// Turns one notification into route events; `Err` means the payload is unreadable.
pub fn events_for(channel: &str, payload: &str) -> Result<Vec<RouteEvent>, String> {
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
        other => Err(format!("unexpected channel {other}")),
    }
}

/// Creates the table and triggers if missing; safe when several nodes run it at once.
pub async fn ensure_schema(client: &mut Client) -> Result<(), PgError> {
    let tx = client.transaction().await?;
    tx.execute("select pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).await?;
    tx.batch_execute(SCHEMA).await?;
    tx.commit().await?;
    Ok(())
}

/// Every row of the table. `tag` is read through `to_jsonb(row)`, which yields
/// null when the table has no such column, so one query fits both schemas.
pub async fn load(client: &Client) -> Result<Vec<DrainRow>, PgError> {
    let rows = client
        .query(
            "select drain::text, hostname, endpoint, to_jsonb(d) ->> 'tag' from drains d order by drain",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| DrainRow {
            drain: r.get(0),
            hostname: r.get(1),
            endpoint: r.get(2),
            tag: r.get(3),
        })
        .collect())
}

/// Follows the drains table.
pub struct PostgresSource {
    config: tokio_postgres::Config,
    tls: tls::PgTls,
    /// `host:port/dbname`, for logs.
    target: String,
}

impl PostgresSource {
    /// Parses `DATABASE_URL` (libpq's `sslmode` and `sslrootcert`, see [`tls`]).
    pub fn new(url: &str) -> Result<Self, PgError> {
        let (config, tls) = tls::parse(url)?;
        let host = config
            .get_hosts()
            .first()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .unwrap_or_default();
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let target = format!("{host}:{port}/{}", config.get_dbname().unwrap_or("postgres"));
        Ok(PostgresSource { config, tls, target })
    }

    /// Opens a session as `sslmode` says (`allow`: plain first, TLS when the
    /// server refuses a plain session), and tells how it is protected.
    async fn connect(&self) -> Result<(Client, PgConnection, Protection), PgError> {
        let attempts = self.tls.mode().attempts();
        let mut attempt = 0;
        loop {
            let mut config = self.config.clone();
            config.ssl_mode(attempts[attempt]);
            let (connector, encrypted) = self.tls.connector();
            match tokio::time::timeout(ANSWER_WITHIN, config.connect(connector))
                .await
                .map_err(|_| PgError::Timeout(ANSWER_WITHIN))?
            {
                Ok((client, connection)) => {
                    let protection = self.tls.protection(encrypted.load(Ordering::Acquire));
                    return Ok((client, connection, protection));
                }
                Err(e) if e.as_db_error().is_some() && attempt + 1 < attempts.len() => attempt += 1,
                Err(e) => return Err(PgError::connecting(e, self.tls.mode())),
            }
        }
    }

    /// A session weaker than `verify-ca`: warned about when first seen and
    /// whenever it changes, counted every time.
    fn unprotected_session(&self, protection: Protection, progress: &mut Progress) {
        let changed = progress.protection.replace(protection) != Some(protection);
        let tls = match protection {
            Protection::Plain => "none",
            Protection::Unverified => "unverified",
            Protection::ChainVerified | Protection::Verified => return,
        };
        telemetry::counter("logtrain_postgres_unprotected_sessions_total", &[("tls", tls)]).inc();
        if !changed {
            return;
        }
        let sslmode = self.tls.mode().as_str();
        if protection == Protection::Plain {
            warn!(database = %self.target, sslmode, "The Postgres session is not encrypted; sslmode=verify-full with sslrootcert=FILE encrypts it and checks the server.");
        } else {
            warn!(database = %self.target, sslmode, "The Postgres session is encrypted but the server's certificate is not checked; sslmode=verify-full with sslrootcert=FILE checks it.");
        }
    }

    async fn session(
        &self,
        tx: &RouteSender,
        stop: &CancellationToken,
        progress: &mut Progress,
    ) -> Result<(), PgError> {
        let (mut client, mut connection, protection) = self.connect().await?;
        self.unprotected_session(protection, progress);
        // Drive the connection; forward notifications through a bounded channel.
        // If it overflows, the session resyncs instead of losing changes.
        let (ntx, mut nrx) = mpsc::channel::<Notification>(1024);
        let overflow = Arc::new(AtomicBool::new(false));
        let ov = overflow.clone();
        let driver = tokio::spawn(async move {
            let mut messages = poll_fn(move |cx| connection.poll_message(cx));
            while let Some(m) = messages.next().await {
                match m {
                    Ok(AsyncMessage::Notification(n)) => {
                        if ntx.try_send(n).is_err() {
                            ov.store(true, Ordering::Release);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return Err(PgError::Db(e)),
                }
            }
            Ok(())
        });
        let _abort = AbortOnDrop(driver.abort_handle());

        ensure_schema(&mut client).await?;
        let listen: String = CHANNELS.iter().map(|c| format!("LISTEN \"{c}\";")).collect();
        client.batch_execute(&listen).await?;
        self.resync(&client, tx).await?;
        if !progress.up {
            info!(database = %self.target, tls = ?protection, "Following the Postgres drain table.");
            progress.up = true;
        }
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                n = nrx.recv() => {
                    let Some(n) = n else {
                        return Err(match driver.await { Ok(Err(e)) => e, _ => PgError::Closed });
                    };
                    telemetry::counter("logtrain_postgres_notifications_total", &[]).inc();
                    match events_for(n.channel(), n.payload()) {
                        Ok(events) => {
                            for event in events {
                                if tx.send(RouteUpdate { origin: OriginKind::Postgres, event }).await.is_err() {
                                    return Ok(());
                                }
                            }
                        }
                        Err(e) => {
                            warn!(channel = n.channel(), error = %e, "Unreadable drain table notification; reloading the table.");
                            self.resync(&client, tx).await?;
                        }
                    }
                    if overflow.swap(false, Ordering::AcqRel) {
                        warn!("Drain table notifications arrived faster than they were applied; reloading the table.");
                        self.resync(&client, tx).await?;
                    }
                }
                _ = ping.tick() => {
                    tokio::time::timeout(ANSWER_WITHIN, client.simple_query("select 1"))
                        .await
                        .map_err(|_| PgError::Timeout(ANSWER_WITHIN))??;
                }
            }
        }
    }

    /// Publishes the whole table as one listing.
    async fn resync(&self, client: &Client, tx: &RouteSender) -> Result<(), PgError> {
        let rows = load(client).await?;
        telemetry::counter("logtrain_postgres_resyncs_total", &[]).inc();
        let mut events = Vec::with_capacity(rows.len() + 2);
        events.push(RouteEvent::Init);
        events.extend(rows.iter().map(|r| RouteEvent::InitApply(r.object())));
        events.push(RouteEvent::InitDone);
        for event in events {
            if tx
                .send(RouteUpdate {
                    origin: OriginKind::Postgres,
                    event,
                })
                .await
                .is_err()
            {
                break;
            }
        }
        Ok(())
    }
}

/// What the sessions of one datasource have told so far.
#[derive(Default)]
struct Progress {
    /// The current session follows the table.
    up: bool,
    /// The protection of the last session (warned about when it changes).
    protection: Option<Protection>,
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Datasource for PostgresSource {
    fn origin(&self) -> OriginKind {
        OriginKind::Postgres
    }

    fn run(self: Box<Self>, tx: RouteSender, stop: CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
            let mut progress = Progress::default();
            let mut failing = false;
            while !stop.is_cancelled() {
                let result = self.session(&tx, &stop, &mut progress).await;
                if stop.is_cancelled() || tx.is_closed() {
                    return;
                }
                if let Err(e) = result {
                    telemetry::counter("logtrain_postgres_errors_total", &[]).inc();
                    if !failing {
                        warn!(database = %self.target, error = %e, "Lost the Postgres drain table; keeping the last routes and reconnecting.");
                        failing = true;
                    }
                    progress.up = false;
                } else {
                    failing = false;
                    backoff.reset();
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
                if failing {
                    // A session that got as far as following the table resets the backoff.
                    if progress.up {
                        backoff.reset();
                    }
                }
            }
        })
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
            let e = events_for(channel, &payload).unwrap_err();
            assert!(!e.contains("Passw0rd") && !e.contains("T0ken"), "{payload}: {e}");
            assert!(e.contains("line 1 column"), "{e}");
        }
        let e = events_for("drains.insert", r#"{"hostname":"x","endpoint":"y"}"#).unwrap_err();
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
