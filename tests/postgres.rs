//! The Postgres drain table against a real PostgreSQL 15: initial load, live
//! insert/update/delete, a logtrain-created schema, restart with changes made
//! while disconnected, bad rows, unreadable notifications, concurrent creation.

mod support;

use std::path::Path;
use std::time::Duration;

use logtrain::app::App;
use logtrain::config::Config;
use logtrain::record::{InputKind, Record};
use support::postgres::Pg;
use support::{read_lines, wait_until};

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

async fn client(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c
}

async fn start(url: &str) -> App {
    let config = Config {
        postgres: true,
        database_url: Some(url.to_string()),
        shutdown_timeout: 2,
        ..Config::default()
    };
    assert!(config.problems().is_empty(), "{:?}", config.problems());
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
    let pg = Pg::shared_or_private();
    let url = pg.fresh_db("lt_follow").await;
    let db = client(&url).await;
    db.batch_execute(GO_LOGTRAIN_SCHEMA).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        file(dir.path(), "a.log"),
        file(dir.path(), "b.log"),
        file(dir.path(), "c.log"),
    );
    db.execute("insert into drains (hostname, endpoint) values ('web.default', $1), ('api.default', 'gopher://bad'), ('api.default', $2)", &[&a, &b])
        .await
        .unwrap();

    let app = start(&url).await;
    assert_eq!(drains_of(&app, "web.default"), vec![a.clone()]);
    assert_eq!(
        drains_of(&app, "api.default"),
        vec![b.clone()],
        "the bad row is skipped, its neighbour works"
    );
    let errors = logtrain::telemetry::counter("logtrain_route_errors_total", &[("origin", "postgres")]).get();
    assert!(errors >= 1);
    let router = app.router(InputKind::Internal);
    router.offer(
        &app.routes.load(),
        Record::new(InputKind::Internal, "web.default", "before"),
    );
    wait_until("first line", Duration::from_secs(5), || {
        read_lines(&dir.path().join("a.log")).len() == 1
    })
    .await;

    // Insert: a new route appears.
    db.execute(
        "insert into drains (hostname, endpoint, created, updated) values ('new.default', $1, now(), now())",
        &[&c],
    )
    .await
    .unwrap();
    wait_until("insert applied", Duration::from_secs(5), || {
        drains_of(&app, "new.default") == vec![c.clone()]
    })
    .await;

    // Update of the endpoint moves the route; an update of other columns changes nothing.
    let before = app.routes.load().drains_for(b"api.default")[0].clone();
    db.execute(
        "update drains set updated = now() where hostname = 'api.default' and endpoint = $1",
        &[&b],
    )
    .await
    .unwrap();
    db.execute("update drains set endpoint = $1 where hostname = 'web.default'", &[&c])
        .await
        .unwrap();
    wait_until("update applied", Duration::from_secs(5), || {
        drains_of(&app, "web.default") == vec![c.clone()]
    })
    .await;
    assert!(
        std::sync::Arc::ptr_eq(&before, &app.routes.load().drains_for(b"api.default")[0]),
        "untouched route kept its drain"
    );
    router.offer(
        &app.routes.load(),
        Record::new(InputKind::Internal, "web.default", "after"),
    );
    wait_until("line at the new drain", Duration::from_secs(5), || {
        read_lines(&dir.path().join("c.log")).len() == 1
    })
    .await;
    assert_eq!(read_lines(&dir.path().join("a.log")).len(), 1);

    // Delete removes it.
    db.execute("delete from drains where hostname = 'new.default'", &[])
        .await
        .unwrap();
    db.execute("delete from drains where hostname = 'web.default'", &[])
        .await
        .unwrap();
    wait_until("delete applied", Duration::from_secs(5), || {
        drains_of(&app, "web.default").is_empty() && drains_of(&app, "new.default").is_empty()
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
    app.shutdown().await;
}

#[tokio::test]
async fn restart_with_changes_while_disconnected_is_recovered_by_resync() {
    let pg = Pg::private();
    let url = pg.fresh_db("lt_restart").await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (file(dir.path(), "a.log"), file(dir.path(), "b.log"));
    let app = start(&url).await;
    let db = client(&url).await;
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
        std::sync::Arc::ptr_eq(&kept, &app.routes.load().drains_for(b"keep.default")[0]),
        "unchanged route disturbed"
    );
    // Live changes flow again after the reconnect.
    let db = client(&url).await;
    db.execute(
        "insert into drains (hostname, endpoint) values ('later.default', $1)",
        &[&b],
    )
    .await
    .unwrap();
    wait_until("notifications after reconnect", Duration::from_secs(5), || {
        drains_of(&app, "later.default") == vec![b.clone()]
    })
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

#[test]
fn a_bad_database_url_is_a_config_problem_without_the_password() {
    let c = Config {
        postgres: true,
        database_url: Some("postgres://u:hunter2@h/db?sslmode=sometimes".into()),
        ..Config::default()
    };
    let p = c.problems();
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("sslmode=sometimes") && !p[0].contains("hunter2"), "{p:?}");
}
