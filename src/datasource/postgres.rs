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
use tokio::sync::mpsc;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Client, Notification, Socket};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Datasource, OriginKind, RouteEvent, RouteSender, RouteUpdate};
use crate::backoff::Backoff;
use crate::telemetry;

mod error;
mod rows;
pub mod tls;

pub use error::PgError;
pub use rows::{DrainRow, UnreadablePayload, events_for};

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
