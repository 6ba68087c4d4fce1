//! The Postgres drain table against a real PostgreSQL 15: initial load, live
//! insert/update/delete timed against the issue's one second, a logtrain-created
//! schema, an extra `tag` column, restart with changes made while disconnected,
//! bad rows (loaded and live, told once), unreadable notifications, two
//! logtrain processes creating the schema at once, and TLS with libpq's
//! `sslmode`s against a cluster serving a certificate made at test time.
//!
//! Latencies are printed (`cargo test --test postgres -- --nocapture`) as
//! `latency <what>: <ms>`.

use crate::support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use logtrain::app::App;
use logtrain::config::Config;
use logtrain::datasource::postgres::{events_for, load};
use logtrain::datasource::{RouteEvent, RouteObject, RouteSpec};
use logtrain::record::{InputKind, Record};
use support::faults::{Binary, http_get, metric_in};
use support::postgres::Pg;
use support::{read_lines, wait_until};
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

/// The schema as the Go logtrain creates it (uuid-ossp, no defaults on timestamps).
const GO_LOGTRAIN_SCHEMA: &str = r#"
create extension if not exists "uuid-ossp";
create table if not exists drains (
  drain uuid primary key default uuid_generate_v4(),
  hostname text not null,
  endpoint text not null,
  created timestamptz,
  updated timestamptz
);
create or replace function notify_drains_insert() returns trigger as $$
begin perform pg_notify('drains.insert', row_to_json(NEW)::text); return NEW; end; $$ language plpgsql;
create or replace function notify_drains_update() returns trigger as $$
begin perform pg_notify('drains.update', '{"old":' || row_to_json(OLD)::text || ',"new":' || row_to_json(NEW)::text || '}'); return NEW; end; $$ language plpgsql;
create or replace function notify_drains_delete() returns trigger as $$
begin perform pg_notify('drains.delete', row_to_json(OLD)::text); return OLD; end; $$ language plpgsql;
create trigger notify_drains_insert after insert on drains for each row execute procedure notify_drains_insert();
create trigger notify_drains_update after update on drains for each row execute procedure notify_drains_update();
create trigger notify_drains_delete after delete on drains for each row execute procedure notify_drains_delete();
"#;

/// The issue's bound: a change in the table reaches the routes, and a line the
/// drain, within a second.
const LIVE: Duration = Duration::from_secs(1);

/// `logtrain_route_errors_total{origin="postgres"}` is process-wide: tests that
/// make bad rows hold this, so the counter moves only by their own rows.
static BAD_ROWS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn route_errors() -> u64 {
    logtrain::telemetry::counter("logtrain_route_errors_total", &[("origin", "postgres")]).get()
}

/// Log lines of this test binary (see [`support::captured_logs`]).
fn captured() -> Arc<Mutex<Vec<u8>>> {
    support::captured_logs()
}

/// How many captured log lines contain every one of `needles`.
fn logged(needles: &[&str]) -> usize {
    let buf = captured();
    let text = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
    text.lines().filter(|l| needles.iter().all(|n| l.contains(n))).count()
}

/// The captured log lines that contain `needle`.
fn log_lines(needle: &str) -> String {
    let buf = captured();
    let text = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
    text.lines()
        .filter(|l| l.contains(needle))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits for `f` (polling every 2 ms, for at most 10 s), prints how long it took
/// since `since`, and asserts that this was under [`LIVE`].
async fn live(what: &str, since: Instant, mut f: impl FnMut() -> bool) -> Duration {
    while !f() {
        assert!(since.elapsed() < Duration::from_secs(10), "{what}: not done after 10 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = since.elapsed();
    eprintln!("latency {what}: {:.1} ms", took.as_secs_f64() * 1e3);
    assert!(took < LIVE, "{what} took {took:?}, over {LIVE:?}");
    took
}

/// Sends one line for `host` through the app's router and waits (see [`live`])
/// until the drain wrote it to `log`.
async fn line_follows(app: &App, host: &str, text: &str, log: &Path, what: &str, since: Instant) {
    let offered = app.router(InputKind::Internal).offer(
        &app.routes.load(),
        Record::new(InputKind::Internal, host.to_string(), text.to_string()),
    );
    assert_eq!(offered.queued, 1, "{what}: {offered:?}");
    live(what, since, || read_lines(log).iter().any(|l| l.ends_with(text))).await;
}

/// A session LISTENing on the drain channels: what the triggers really send.
async fn listen(url: &str) -> (tokio_postgres::Client, mpsc::UnboundedReceiver<(String, String)>) {
    let (c, mut conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let AsyncMessage::Notification(n) = m {
                let _ = tx.send((n.channel().to_string(), n.payload().to_string()));
            }
        }
    });
    c.batch_execute(r#"LISTEN "drains.insert"; LISTEN "drains.update"; LISTEN "drains.delete";"#)
        .await
        .unwrap();
    (c, rx)
}

async fn next_notification(rx: &mut mpsc::UnboundedReceiver<(String, String)>) -> (String, String) {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a notification")
        .expect("listener alive")
}

async fn client(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c
}

async fn start(url: &str) -> App {
    let config = Config {
        postgres: true,
        database_url: Some(url.to_string().into()),
        shutdown_timeout: 2,
        ..crate::support::config()
    };
    assert!(
        logtrain::check::problems(&config).is_empty(),
        "{:?}",
        logtrain::check::problems(&config)
    );
    let app = App::start(config);
    tokio::time::timeout(Duration::from_secs(20), app.wait_ready())
        .await
        .expect("drain table loaded");
    app
}

fn drains_of(app: &App, host: &str) -> Vec<String> {
    let mut v: Vec<String> = app
        .routes
        .load()
        .drains_for(host.as_bytes())
        .iter()
        .map(|d| d.id().to_string())
        .collect();
    v.sort();
    v
}

fn file(dir: &Path, name: &str) -> String {
    format!("file://{}", dir.join(name).display())
}

#[tokio::test]
async fn loads_existing_rows_and_follows_changes_on_a_logtrain_schema() {
    captured();
    let _bad_rows = BAD_ROWS.lock().await;
    let pg = Pg::shared_or_private();
    let url = pg.fresh_db("lt_follow").await;
    let db = client(&url).await;
    db.batch_execute(GO_LOGTRAIN_SCHEMA).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = |name: &str| dir.path().join(name);
    let (a, b, c, d) = (
        file(dir.path(), "a.log"),
        file(dir.path(), "b.log"),
        file(dir.path(), "c.log"),
        file(dir.path(), "d.log"),
    );
    let bad: String = db
        .query_one(
            "insert into drains (hostname, endpoint) values ('api.default', 'gopher://bad') returning drain::text",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    db.execute(
        "insert into drains (hostname, endpoint) values ('web.default', $1), ('api.default', $2)",
        &[&a, &b],
    )
    .await
    .unwrap();
    let rows = load(&db).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.tag.is_none()), "no tag column, no tag: {rows:?}");

    let errors = route_errors();
    let app = start(&url).await;
    assert_eq!(drains_of(&app, "web.default"), vec![a.clone()]);
    assert_eq!(
        drains_of(&app, "api.default"),
        vec![b.clone()],
        "the bad row is skipped, its neighbour works"
    );
    assert_eq!(route_errors(), errors + 1, "the one bad row is counted once");
    assert_eq!(
        logged(&["Route skipped", &bad, "gopher://bad"]),
        1,
        "the bad row is logged once, naming its drain id"
    );
    let t = Instant::now();
    line_follows(&app, "web.default", "before", &log("a.log"), "loaded row → line", t).await;
    line_follows(
        &app,
        "api.default",
        "api before",
        &log("b.log"),
        "loaded neighbour of a bad row → line",
        t,
    )
    .await;

    // Insert: a new route appears, and a line sent to it arrives.
    let t = Instant::now();
    db.execute(
        "insert into drains (hostname, endpoint, created, updated) values ('new.default', $1, now(), now())",
        &[&c],
    )
    .await
    .unwrap();
    live("insert → route", t, || {
        drains_of(&app, "new.default") == vec![c.clone()]
    })
    .await;
    line_follows(
        &app,
        "new.default",
        "inserted",
        &log("c.log"),
        "insert → line at the drain",
        t,
    )
    .await;

    // An update of other columns changes nothing; an update of the endpoint moves the route.
    let before = app.routes.load().drains_for(b"api.default")[0].clone();
    db.execute(
        "update drains set updated = now() where hostname = 'api.default' and endpoint = $1",
        &[&b],
    )
    .await
    .unwrap();
    let t = Instant::now();
    db.execute("update drains set endpoint = $1 where hostname = 'web.default'", &[&d])
        .await
        .unwrap();
    live("endpoint update → route", t, || {
        drains_of(&app, "web.default") == vec![d.clone()]
    })
    .await;
    line_follows(
        &app,
        "web.default",
        "after",
        &log("d.log"),
        "endpoint update → line at the new drain",
        t,
    )
    .await;
    assert!(
        Arc::ptr_eq(&before, &app.routes.load().drains_for(b"api.default")[0]),
        "untouched route kept its drain"
    );
    assert_eq!(read_lines(&log("a.log")).len(), 1, "nothing more at the old drain");

    // An update of the hostname moves the route to the new key.
    let t = Instant::now();
    db.execute(
        "update drains set hostname = 'moved.default' where hostname = 'new.default'",
        &[],
    )
    .await
    .unwrap();
    live("hostname update → route", t, || {
        drains_of(&app, "moved.default") == vec![c.clone()] && drains_of(&app, "new.default").is_empty()
    })
    .await;
    line_follows(
        &app,
        "moved.default",
        "moved",
        &log("c.log"),
        "hostname update → line",
        t,
    )
    .await;
    let router = app.router(InputKind::Internal);
    assert!(
        router
            .offer(
                &app.routes.load(),
                Record::new(InputKind::Internal, "new.default", "old key")
            )
            .unrouted
    );

    // Delete removes it.
    let t = Instant::now();
    db.execute(
        "delete from drains where hostname in ('moved.default', 'web.default')",
        &[],
    )
    .await
    .unwrap();
    live("delete → route gone", t, || {
        drains_of(&app, "web.default").is_empty() && drains_of(&app, "moved.default").is_empty()
    })
    .await;
    assert!(
        router
            .offer(
                &app.routes.load(),
                Record::new(InputKind::Internal, "web.default", "gone")
            )
            .unrouted
    );
    assert_eq!(read_lines(&log("d.log")).len(), 1);
    // Every publish above walked the bad row again; it was told only once.
    assert_eq!(route_errors(), errors + 1);
    assert_eq!(logged(&["Route skipped", &bad]), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn a_bad_row_inserted_live_is_told_once_and_skipped_and_the_rest_keeps_working() {
    captured();
    let _bad_rows = BAD_ROWS.lock().await;
    let pg = Pg::shared_or_private();
    let url = pg.fresh_db("lt_badlive").await;
    let dir = tempfile::tempdir().unwrap();
    let log = |name: &str| dir.path().join(name);
    let (a, b, c) = (
        file(dir.path(), "a.log"),
        file(dir.path(), "b.log"),
        file(dir.path(), "c.log"),
    );
    let app = start(&url).await;
    let db = client(&url).await;
    db.execute(
        "insert into drains (hostname, endpoint) values ('ok.default', $1)",
        &[&a],
    )
    .await
    .unwrap();
    wait_until("good row applied", Duration::from_secs(5), || {
        drains_of(&app, "ok.default") == vec![a.clone()]
    })
    .await;

    let errors = route_errors();
    // A bad row for the same hostname, then a good row: notifications are applied
    // in order, so once the good one shows, the bad one was handled.
    let bad: String = db
        .query_one(
            "insert into drains (hostname, endpoint) values ('ok.default', 'gopher://live-bad') returning drain::text",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    db.execute(
        "insert into drains (hostname, endpoint) values ('after.default', $1)",
        &[&b],
    )
    .await
    .unwrap();
    wait_until("the row after the bad one", Duration::from_secs(5), || {
        drains_of(&app, "after.default") == vec![b.clone()]
    })
    .await;
    assert_eq!(route_errors(), errors + 1, "the live bad row is counted once");
    assert_eq!(logged(&["Route skipped", &bad, "gopher://live-bad"]), 1);
    assert_eq!(
        drains_of(&app, "ok.default"),
        vec![a.clone()],
        "its hostname keeps its good drain"
    );
    let t = Instant::now();
    line_follows(
        &app,
        "ok.default",
        "still routed",
        &log("a.log"),
        "neighbour of a live bad row → line",
        t,
    )
    .await;

    // A resync (forced by an unreadable notification) lists the bad row again:
    // it is skipped again but not told again.
    db.batch_execute("alter table drains disable trigger notify_drains_insert")
        .await
        .unwrap();
    db.execute(
        "insert into drains (hostname, endpoint) values ('quiet.default', $1)",
        &[&c],
    )
    .await
    .unwrap();
    db.batch_execute("alter table drains enable trigger notify_drains_insert")
        .await
        .unwrap();
    db.execute("select pg_notify('drains.update', '{\"old\":')", &[])
        .await
        .unwrap();
    wait_until("resync picked up the quiet row", Duration::from_secs(5), || {
        drains_of(&app, "quiet.default") == vec![c.clone()]
    })
    .await;
    assert_eq!(drains_of(&app, "ok.default"), vec![a.clone()]);
    assert_eq!(route_errors(), errors + 1, "a resync does not count the bad row again");
    assert_eq!(logged(&["Route skipped", &bad]), 1, "nor log it again");

    // Fixing the row makes it a route like any other.
    let t = Instant::now();
    db.execute(
        "update drains set endpoint = $1 where drain = $2::text::uuid",
        &[&c, &bad],
    )
    .await
    .unwrap();
    live("fixed bad row → route", t, || {
        drains_of(&app, "ok.default") == {
            let mut v = vec![a.clone(), c.clone()];
            v.sort();
            v
        }
    })
    .await;
    assert_eq!(route_errors(), errors + 1);
    app.shutdown().await;
}

#[tokio::test]
async fn a_tag_column_becomes_the_app_name_of_the_rows_route_and_follows_changes() {
    captured();
    let pg = Pg::shared_or_private();
    let url = pg.fresh_db("lt_tag").await;
    let db = client(&url).await;
    // A Go logtrain database whose writer inserts a tag.
    db.batch_execute(GO_LOGTRAIN_SCHEMA).await.unwrap();
    db.batch_execute("alter table drains add column tag text")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        file(dir.path(), "a.log"),
        file(dir.path(), "b.log"),
        file(dir.path(), "c.log"),
    );
    db.execute(
        "insert into drains (hostname, endpoint, tag) values ('shop.default', $1, 'shop'), ('untagged.default', $1, null)",
        &[&a],
    )
    .await
    .unwrap();
    let mut rows = load(&db).await.unwrap();
    rows.sort_by(|x, y| x.hostname.cmp(&y.hostname));
    assert_eq!(
        rows.iter().map(|r| r.tag.as_deref()).collect::<Vec<_>>(),
        vec![Some("shop"), None]
    );

    let app = start(&url).await;
    // A tagged route is a drain of its own, named with its tag.
    assert_eq!(drains_of(&app, "shop.default"), vec![format!("{a} tag=shop")]);
    assert_eq!(drains_of(&app, "untagged.default"), vec![a.clone()]);
    // Its records carry the tag as APP-NAME; the untagged route's keep theirs.
    let send = |host: &str, app_name: &str, text: &str| {
        let mut r = Record::new(InputKind::Internal, host.to_string(), text.to_string());
        r.app_name = app_name.to_string().into();
        let offered = app.router(InputKind::Internal).offer(&app.routes.load(), r);
        assert_eq!(offered.queued, 1, "{host}");
    };
    send("shop.default", "web-1", "tagged line");
    send("untagged.default", "web-2", "own line");
    let a_log = dir.path().join("a.log");
    wait_until("both lines", Duration::from_secs(10), || read_lines(&a_log).len() == 2).await;
    let lines = read_lines(&a_log);
    let app_name_of = |text: &str| -> String {
        let l = lines.iter().find(|l| l.ends_with(text)).unwrap();
        l.split(' ').nth(3).unwrap().to_string()
    };
    assert_eq!(app_name_of("tagged line"), "shop", "{lines:?}");
    assert_eq!(app_name_of("own line"), "web-2", "{lines:?}");
    let (_listener, mut notes) = listen(&url).await;

    // Insert with a tag: the real payload carries it, and parses.
    let t = Instant::now();
    let id: String = db
        .query_one(
            "insert into drains (hostname, endpoint, tag) values ('cart.default', $1, 'cart') returning drain::text",
            &[&b],
        )
        .await
        .unwrap()
        .get(0);
    live("insert with a tag → route", t, || {
        drains_of(&app, "cart.default") == vec![format!("{b} tag=cart")]
    })
    .await;
    let (channel, payload) = next_notification(&mut notes).await;
    assert_eq!(channel, "drains.insert");
    assert!(payload.contains(r#""tag":"cart""#), "{payload}");
    let tagged = |drain: &str, tag: &str| {
        RouteEvent::Apply(RouteObject {
            id: format!("drain {id}"),
            routes: vec![RouteSpec {
                hostname: "cart.default".into(),
                drain: drain.into(),
                tag: Some(tag.into()),
            }],
        })
    };
    assert_eq!(events_for(&channel, &payload).unwrap(), vec![tagged(&b, "cart")]);

    // An update of the tag alone moves the route to the new tag.
    let t = Instant::now();
    db.execute("update drains set tag = 'shop-2' where hostname = 'shop.default'", &[])
        .await
        .unwrap();
    live("tag update → route", t, || {
        drains_of(&app, "shop.default") == vec![format!("{a} tag=shop-2")]
    })
    .await;
    let (_, payload) = next_notification(&mut notes).await;
    assert!(payload.contains(r#""tag":"shop-2""#), "{payload}");
    // Removing the tag: records keep their own APP-NAME again, at the plain drain.
    db.execute("update drains set tag = null where hostname = 'shop.default'", &[])
        .await
        .unwrap();
    let _ = next_notification(&mut notes).await;
    wait_until("untagged again", Duration::from_secs(5), || {
        drains_of(&app, "shop.default") == vec![a.clone()]
    })
    .await;
    // An update of the endpoint with a tag present moves the route.
    let t = Instant::now();
    db.execute(
        "update drains set endpoint = $1, tag = 'cart-2' where drain = $2::text::uuid",
        &[&c, &id],
    )
    .await
    .unwrap();
    live("endpoint update with a tag → route", t, || {
        drains_of(&app, "cart.default") == vec![format!("{c} tag=cart-2")]
    })
    .await;
    let (channel, payload) = next_notification(&mut notes).await;
    assert_eq!(events_for(&channel, &payload).unwrap(), vec![tagged(&c, "cart-2")]);

    // Delete with a tag.
    let t = Instant::now();
    db.execute("delete from drains where drain = $1::text::uuid", &[&id])
        .await
        .unwrap();
    live("delete with a tag → route gone", t, || {
        drains_of(&app, "cart.default").is_empty()
    })
    .await;
    let (channel, payload) = next_notification(&mut notes).await;
    assert_eq!(
        events_for(&channel, &payload).unwrap(),
        vec![RouteEvent::Delete(format!("drain {id}"))]
    );
    app.shutdown().await;
}

#[tokio::test]
async fn restart_with_changes_while_disconnected_is_recovered_by_resync() {
    captured();
    let _bad_rows = BAD_ROWS.lock().await;
    let pg = Pg::private();
    let url = pg.fresh_db("lt_restart").await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (file(dir.path(), "a.log"), file(dir.path(), "b.log"));
    let app = start(&url).await;
    let db = client(&url).await;
    let errors = route_errors();
    let bad: String = db
        .query_one(
            "insert into drains (hostname, endpoint) values ('keep.default', 'gopher://still-bad') returning drain::text",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    db.execute(
        "insert into drains (hostname, endpoint) values ('keep.default', $1), ('old.default', $1)",
        &[&a],
    )
    .await
    .unwrap();
    wait_until("rows applied", Duration::from_secs(5), || {
        drains_of(&app, "old.default") == vec![a.clone()]
    })
    .await;
    assert_eq!(route_errors(), errors + 1);
    assert_eq!(logged(&["Route skipped", &bad]), 1);
    let kept = app.routes.load().drains_for(b"keep.default")[0].clone();
    drop(db);

    // Down hard; changes are made while logtrain cannot reach the server over TCP.
    pg.stop_immediate();
    pg.start_with("");
    pg.psql_socket("lt_restart", &format!("delete from drains where hostname = 'old.default'; insert into drains (hostname, endpoint) values ('added.default', '{b}')"));
    // The last good table keeps serving meanwhile.
    assert_eq!(drains_of(&app, "old.default"), vec![a.clone()]);
    pg.stop_immediate();
    pg.start_with("127.0.0.1");

    wait_until("resync after reconnect", Duration::from_secs(30), || {
        drains_of(&app, "added.default") == vec![b.clone()] && drains_of(&app, "old.default").is_empty()
    })
    .await;
    assert!(
        Arc::ptr_eq(&kept, &app.routes.load().drains_for(b"keep.default")[0]),
        "unchanged route disturbed"
    );
    // The bad row, still in the table, was listed again but is not told again.
    assert_eq!(route_errors(), errors + 1, "a resync counted the bad row again");
    assert_eq!(logged(&["Route skipped", &bad]), 1, "a resync logged the bad row again");
    // Live changes flow again after the reconnect.
    let db = client(&url).await;
    let t = Instant::now();
    db.execute(
        "insert into drains (hostname, endpoint) values ('later.default', $1)",
        &[&b],
    )
    .await
    .unwrap();
    live("insert after a reconnect → route", t, || {
        drains_of(&app, "later.default") == vec![b.clone()]
    })
    .await;
    line_follows(
        &app,
        "later.default",
        "after the restart",
        &dir.path().join("b.log"),
        "insert after a reconnect → line",
        t,
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn an_unreadable_notification_triggers_a_resync() {
    let pg = Pg::shared_or_private();
    let url = pg.fresh_db("lt_badnotify").await;
    let dir = tempfile::tempdir().unwrap();
    let a = file(dir.path(), "a.log");
    let app = start(&url).await;
    let db = client(&url).await;
    // A row that arrives without a notification, then a garbage notification.
    db.batch_execute("alter table drains disable trigger notify_drains_insert")
        .await
        .unwrap();
    db.execute(
        "insert into drains (hostname, endpoint) values ('quiet.default', $1)",
        &[&a],
    )
    .await
    .unwrap();
    db.batch_execute("alter table drains enable trigger notify_drains_insert")
        .await
        .unwrap();
    assert!(drains_of(&app, "quiet.default").is_empty());
    db.execute("select pg_notify('drains.insert', 'this is not json')", &[])
        .await
        .unwrap();
    wait_until("resync picked up the quiet row", Duration::from_secs(5), || {
        drains_of(&app, "quiet.default") == vec![a.clone()]
    })
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn two_nodes_creating_the_schema_at_once_both_succeed() {
    let pg = Pg::shared_or_private();
    let url = pg.fresh_db("lt_concurrent").await;
    let mut c1 = client(&url).await;
    let mut c2 = client(&url).await;
    let (r1, r2) = tokio::join!(
        logtrain::datasource::postgres::ensure_schema(&mut c1),
        logtrain::datasource::postgres::ensure_schema(&mut c2)
    );
    r1.unwrap();
    r2.unwrap();
    let n: i64 = c1
        .query_one(
            "select count(*) from pg_trigger where not tgisinternal and tgname like 'notify_drains_%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
    // Our schema gives rows an id and timestamps by default.
    let row = c1
        .query_one("insert into drains (hostname, endpoint) values ('h', 'stdout://') returning drain::text, created is not null", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0).len(), 36);
    assert!(row.get::<_, bool>(1));
}

/// POSTs `body` to `path` of 127.0.0.1:`port`; returns the status code and body.
fn http_post(port: u16, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_logtrain_processes_starting_at_once_on_a_fresh_database_both_route() {
    let pg = Pg::shared_or_private();
    let url = pg.fresh_db("lt_two_procs").await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("POSTGRES", "true"),
        ("DATABASE_URL", url.as_str()),
        ("HTTP_SYSLOG", "true"),
    ];
    let (n1, n2) = (dir.path().join("node1"), dir.path().join("node2"));
    // A gate that makes the two creations overlap for sure: an uncommitted table
    // of the same name, which every `create table drains` waits behind. Once
    // both processes wait on a lock it is rolled back and both go at once.
    // (Without the advisory lock the loser then fails on pg_type's unique index.)
    let gate = client(&url).await;
    gate.batch_execute("begin; create table drains (gate int);")
        .await
        .unwrap();
    let db = client(&url).await;
    let go = std::sync::Barrier::new(2);
    let nodes: Vec<Binary> = tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            let starts: Vec<_> = [&n1, &n2]
                .into_iter()
                .map(|d| {
                    let (go, env) = (&go, &env);
                    s.spawn(move || {
                        go.wait();
                        Binary::start(d, "routes: []\n", env)
                    })
                })
                .collect();
            starts.into_iter().map(|h| h.join().unwrap()).collect()
        })
    });
    let waiting =
        "select count(*) from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n: i64 = db.query_one(waiting, &[]).await.unwrap().get(0);
        if n == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} of 2 processes reached the schema creation"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !nodes.iter().any(|n| n.log().contains("Following the Postgres")),
        "ready behind the gate"
    );
    gate.batch_execute("rollback").await.unwrap();
    for (i, node) in nodes.iter().enumerate() {
        wait_until(&format!("node {} ready", i + 1), Duration::from_secs(20), || {
            http_get(node.http, "/readyz") == "ready\n"
        })
        .await;
    }
    for (i, node) in nodes.iter().enumerate() {
        let log = node.log();
        assert_eq!(
            log.matches("Following the Postgres drain table.").count(),
            1,
            "node {} followed the table on its first session:\n{log}",
            i + 1
        );
        assert!(
            !log.contains("Lost the Postgres drain table"),
            "node {} failed a session:\n{log}",
            i + 1
        );
    }
    let n: i64 = db
        .query_one(
            "select count(*) from pg_trigger where not tgisinternal and tgname like 'notify_drains_%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3, "one set of triggers");

    // A row inserted now is routed by both processes, and a line sent to each arrives.
    let out = dir.path().join("both.log");
    let t = Instant::now();
    db.execute(
        "insert into drains (hostname, endpoint) values ('both.default', $1)",
        &[&file(dir.path(), "both.log")],
    )
    .await
    .unwrap();
    live("insert → route in two processes", t, || {
        nodes.iter().all(|n| metric_in(&n.metrics(), "logtrain_routes") == 1)
    })
    .await;
    for (i, node) in nodes.iter().enumerate() {
        let line = format!(
            "<14>1 2026-12-01T10:00:00Z both.default app - - - from node {}\n",
            i + 1
        );
        assert_eq!(
            http_post(node.http, "/syslog", &line),
            (200, "accepted 1\n".to_string()),
            "node {}",
            i + 1
        );
    }
    live("insert → lines through two processes", t, || {
        let lines = read_lines(&out);
        (1..=2).all(|i| lines.iter().any(|l| l.ends_with(&format!("from node {i}"))))
    })
    .await;
    drop(nodes);
}

#[tokio::test]
async fn a_failing_session_is_logged_with_the_servers_reason() {
    captured();
    let pg = Pg::shared_or_private();
    let mut u = url::Url::parse(&pg.fresh_db("lt_reason").await).unwrap();
    u.set_path("/lt_no_such_database");
    let target = format!("{}:{}/lt_no_such_database", u.host_str().unwrap(), u.port().unwrap());
    let app = App::start(Config {
        postgres: true,
        database_url: Some(u.to_string().into()),
        shutdown_timeout: 2,
        ..crate::support::config()
    });
    wait_until("the failure logged", Duration::from_secs(10), || {
        logged(&["Lost the Postgres drain table", &target]) == 1
    })
    .await;
    assert_eq!(
        logged(&[
            &target,
            "FATAL 3D000",
            r#"database "lt_no_such_database" does not exist"#
        ]),
        1,
        "the reason is the server's, not just \"db error\": {}",
        log_lines(&target)
    );
    assert!(!app.is_ready());
    app.shutdown().await;
}

#[test]
fn a_bad_database_url_is_a_config_problem_without_the_password() {
    let c = Config {
        postgres: true,
        database_url: Some("postgres://u:hunter2@h/db?sslmode=sometimes".into()),
        ..crate::support::config()
    };
    let p = logtrain::check::problems(&c);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("sslmode=sometimes") && !p[0].contains("hunter2"), "{p:?}");
}

/// A private cluster serving TLS with a certificate for `localhost` only
/// (not 127.0.0.1), signed by a CA of its own made here; returns it and the
/// CA's PEM file. Plain sessions are still accepted (`host` lines of pg_hba).
fn tls_cluster(dir: &Path) -> (Pg, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "logtrain postgres test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "localhost");
    let cert = leaf.signed_by(&key, &issuer).unwrap();

    // The server reads its files as `postgres`, and wants the key private.
    let files = dir.join("server");
    std::fs::create_dir_all(&files).unwrap();
    let (uid, gid) = postgres_ids();
    let own = |p: &Path, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    own(dir, 0o755);
    own(&files, 0o700);
    let (crt, pem_key) = (files.join("server.crt"), files.join("server.key"));
    std::fs::write(&crt, cert.pem()).unwrap();
    std::fs::write(&pem_key, key.serialize_pem()).unwrap();
    own(&crt, 0o644);
    own(&pem_key, 0o600);
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();

    let pg = Pg::private();
    for sql in [
        format!("alter system set ssl_cert_file = '{}'", crt.display()),
        format!("alter system set ssl_key_file = '{}'", pem_key.display()),
        "alter system set ssl = on".to_string(),
    ] {
        pg.psql_socket("postgres", &sql);
    }
    pg.stop_immediate();
    pg.start_with("127.0.0.1");
    assert_eq!(pg.psql_socket("postgres", "show ssl").trim(), "on");
    (pg, ca_path)
}

fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| {
        let out = std::process::Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

/// The password every TLS test URL carries (the cluster trusts everyone, so it
/// is never checked, only searched for in what logtrain says).
const TLS_TEST_PASSWORD: &str = "PgTlsPassw0rd";

/// `postgres://postgres:<password>@HOST:PORT/DB?QUERY` on a fresh database of `pg`.
async fn tls_url(pg: &Pg, host: &str, db: &str, query: &str) -> (String, String) {
    pg.fresh_db(db).await;
    let target = format!("{host}:{}/{db}", pg.port);
    (
        format!("postgres://postgres:{TLS_TEST_PASSWORD}@{target}?{query}"),
        target,
    )
}

/// Runs the Postgres datasource on `url` until it has listed the table
/// (`Ok`) or logged why it cannot (`Err` with the log line).
async fn follow(url: &str, target: &str) -> Result<(), String> {
    use logtrain::datasource::Datasource;
    use logtrain::datasource::postgres::PostgresSource;
    let source = PostgresSource::new(url).map_err(|e| e.to_string())?;
    let (tx, mut rx) = mpsc::channel(64);
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(Box::new(source).run(tx, stop.clone()));
    let since = Instant::now();
    let outcome = loop {
        match tokio::time::timeout(Duration::from_millis(20), rx.recv()).await {
            Ok(Some(u)) if u.event == RouteEvent::InitDone => break Ok(()),
            Ok(Some(_)) => {}
            Ok(None) => break Err("the datasource ended".into()),
            Err(_) => {
                let lost = log_lines(&format!("database={target} "));
                if let Some(l) = lost.lines().find(|l| l.contains("Lost the Postgres drain table")) {
                    break Err(l.to_string());
                }
                assert!(
                    since.elapsed() < Duration::from_secs(20),
                    "{target}: neither followed nor failed"
                );
            }
        }
    };
    stop.cancel();
    task.await.unwrap();
    outcome
}

/// The warnings logged about `target`'s session protection.
fn tls_warnings(target: &str) -> Vec<String> {
    log_lines(&format!("database={target} "))
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("The Postgres session is"))
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn verify_full_and_verify_ca_check_the_servers_certificate_as_libpq_does() {
    captured();
    let dir = tempfile::tempdir().unwrap();
    let (pg, ca) = tls_cluster(dir.path());
    let wrong = support::tls::make_pki(&dir.path().join("other")).ca_path;
    let (ca, wrong) = (ca.display(), wrong.display());

    // verify-full: chain and host name, trusting only sslrootcert.
    let (url, target) = tls_url(
        &pg,
        "localhost",
        "lt_tls_full",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    )
    .await;
    follow(&url, &target).await.unwrap();
    assert_eq!(tls_warnings(&target), Vec::<String>::new());
    assert_eq!(
        logged(&[
            &format!("database={target} "),
            "Following the Postgres drain table",
            "tls=Verified"
        ]),
        1
    );

    let refused = [
        // The certificate names localhost, not 127.0.0.1.
        (
            "lt_tls_full_ip",
            "127.0.0.1",
            format!("sslmode=verify-full&sslrootcert={ca}"),
            "not valid for name",
        ),
        (
            "lt_tls_full_wrong_ca",
            "localhost",
            format!("sslmode=verify-full&sslrootcert={wrong}"),
            "UnknownIssuer",
        ),
        // The system's roots do not hold the test CA.
        (
            "lt_tls_full_system",
            "localhost",
            "sslrootcert=system".to_string(),
            "UnknownIssuer",
        ),
        (
            "lt_tls_ca_wrong_ca",
            "127.0.0.1",
            format!("sslmode=verify-ca&sslrootcert={wrong}"),
            "UnknownIssuer",
        ),
        // require with a root certificate checks the chain (libpq's rule).
        (
            "lt_tls_require_wrong_ca",
            "localhost",
            format!("sslmode=require&sslrootcert={wrong}"),
            "UnknownIssuer",
        ),
    ];
    for (db, host, query, why) in refused {
        let (url, target) = tls_url(&pg, host, db, &query).await;
        let line = follow(&url, &target).await.expect_err(&url);
        assert!(line.contains("certificate is refused under sslmode="), "{url}: {line}");
        assert!(line.contains(why), "{url}: {line}");
        assert!(line.contains("sslrootcert=FILE names the CA"), "{line}");
        assert!(!line.contains(TLS_TEST_PASSWORD), "{line}");
    }

    // verify-ca and require with the right CA: the chain is checked, the name is not.
    for (db, query) in [
        ("lt_tls_ca_ip", format!("sslmode=verify-ca&sslrootcert={ca}")),
        ("lt_tls_require_ca_ip", format!("sslmode=require&sslrootcert={ca}")),
    ] {
        let (url, target) = tls_url(&pg, "127.0.0.1", db, &query).await;
        follow(&url, &target).await.unwrap();
        assert_eq!(tls_warnings(&target), Vec::<String>::new(), "{url}");
    }
    assert!(!log_lines("postgres").contains(TLS_TEST_PASSWORD));
}

#[tokio::test]
async fn unencrypted_or_unchecked_sessions_are_warned_about_and_allow_falls_back_to_tls() {
    captured();
    let dir = tempfile::tempdir().unwrap();
    let (pg, ca) = tls_cluster(dir.path());
    let unverified =
        || logtrain::telemetry::counter("logtrain_postgres_unprotected_sessions_total", &[("tls", "unverified")]).get();
    let before = unverified();

    // Encrypted, certificate unchecked: require and prefer (the default) without a root certificate.
    for (db, query) in [
        ("lt_tls_require", "sslmode=require"),
        ("lt_tls_prefer", "application_name=lt"),
    ] {
        let (url, target) = tls_url(&pg, "127.0.0.1", db, query).await;
        follow(&url, &target).await.unwrap();
        let w = tls_warnings(&target);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("encrypted but the server's certificate is not checked"),
            "{w:?}"
        );
        assert!(w[0].contains("sslmode=verify-full with sslrootcert=FILE"), "{w:?}");
    }
    assert!(unverified() >= before + 2);

    // Not encrypted: disable, and allow while the server takes plain sessions.
    for (db, mode) in [("lt_tls_disable", "disable"), ("lt_tls_allow_plain", "allow")] {
        let (url, target) = tls_url(
            &pg,
            "127.0.0.1",
            db,
            &format!("sslmode={mode}&sslrootcert={}", ca.display()),
        )
        .await;
        follow(&url, &target).await.unwrap();
        let w = tls_warnings(&target);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("The Postgres session is not encrypted"), "{w:?}");
        assert!(w[0].contains(&format!("sslmode=\"{mode}\"")), "{w:?}");
        assert!(w[0].contains("sslmode=verify-full with sslrootcert=FILE"), "{w:?}");
    }

    // A server that refuses plain sessions: allow then encrypts (and checks the
    // chain, as a root certificate is given); disable cannot get in.
    let (allow, allow_target) = tls_url(
        &pg,
        "127.0.0.1",
        "lt_tls_allow_tls",
        &format!("sslmode=allow&sslrootcert={}", ca.display()),
    )
    .await;
    let (disable, disable_target) = tls_url(&pg, "127.0.0.1", "lt_tls_disable_refused", "sslmode=disable").await;
    let data = pg.psql_socket("postgres", "show data_directory");
    std::fs::write(
        Path::new(data.trim()).join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
    )
    .unwrap();
    pg.psql_socket("postgres", "select pg_reload_conf()");
    tokio::time::sleep(Duration::from_millis(300)).await;
    follow(&allow, &allow_target).await.unwrap();
    assert_eq!(tls_warnings(&allow_target), Vec::<String>::new());
    let line = follow(&disable, &disable_target).await.unwrap_err();
    assert!(line.contains("28000") && line.contains("no encryption"), "{line}");
    assert!(!log_lines("postgres").contains(TLS_TEST_PASSWORD));
}
