//! No secret ever leaves logtrain: the binary runs a configuration full of them
//! (drain URLs with passwords and bearer tokens, an Elasticsearch API key, the
//! HTTP input's bearer token, a `DATABASE_URL` with a password) with debug
//! logging, every error path is exercised (unreachable and refusing drains,
//! bad drain rows in Postgres — one of them with credentials in a URL that
//! cannot be parsed —, wrong and missing tokens, `logtrain check` on a bad
//! file, a start refused for a bad file), `/metrics` is scraped, and every
//! byte of output is searched. Drain URLs carry tokens in their path and query
//! too (`/receiver/v1/http/<token>`, `/inputs/<token>?dd-api-key=<key>`), in
//! URLs that work and in URLs that do not parse (a password holding `/` and
//! `#`): drain ids and errors show `scheme://host:port` at most.

use crate::support;

use std::time::Duration;

use support::faults::{Binary, http_get};
use support::http_recorder::{Recorder, Reply};
use support::postgres::Pg;
use support::wait_until;

const SECRETS: &[&str] = &[
    "DrainPassw0rd",
    "DrainBearerT0ken",
    "EsApiKeyS3cret",
    "HttpInputT0ken",
    "DbPassw0rd",
    "RowPassw0rd",
    "BadRowPassw0rd",
    "CheckPassw0rd",
    // Path tokens and pass-through query keys (every variant contains these).
    "PathT0ken",
    "DdApiK3y",
    // The user and the parts of a password holding '/' and '#' ("Xq7/Passw0rdZ#Kv9").
    "SecUs3r",
    "Xq7",
    "Passw0rdZ",
    "Kv9",
];

/// A password that no URL parser reads as one: the '/' and '#' end the host.
const ODD_PASSWORD: &str = "Xq7/Passw0rdZ#Kv9";

/// Fails when `text` holds a secret, in any case (an error may lower-case a value).
fn assert_clean(what: &str, text: &str) {
    let lower = text.to_ascii_lowercase();
    for s in SECRETS {
        if let Some(at) = lower.find(&s.to_ascii_lowercase()) {
            let from = at.saturating_sub(200);
            panic!("{what} reveals {s:?}: …{}…", &text[from..(at + 100).min(text.len())]);
        }
    }
}

/// POSTs `body` to the binary's HTTP input with these extra header lines; returns the answer.
fn post(port: u16, path: &str, headers: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_logs_metrics_or_answers() {
    let dir = tempfile::tempdir().unwrap();
    let pg = Pg::shared_or_private();
    let admin = pg.fresh_db("lt_security").await;
    let mut db_url = url::Url::parse(&admin).unwrap();
    db_url.set_password(Some("DbPassw0rd")).unwrap();
    // A receiver that refuses everything with 500, and one that says 401.
    let failing = Recorder::start().await;
    failing.script(std::iter::repeat_n(Reply::Status(500), 100_000));
    let refusing = Recorder::start().await;
    refusing.script(std::iter::repeat_n(Reply::Status(401), 100_000));
    // One that refuses gzip once (415), which logtrain tells in a log line.
    let no_gzip = Recorder::start().await;
    no_gzip.script([Reply::Status(415)]);
    let yaml = format!(
        r#"routes:
  - hostname: secret.default
    drains:
      - "https://user:DrainPassw0rd@127.0.0.1:1/logs"
      - "http://user:DrainPassw0rd@127.0.0.1:{f}/logs"
      - "syslog+http://token:DrainBearerT0ken@127.0.0.1:{r}/logs?auth=bearer"
      - "elasticsearch://keyid:EsApiKeyS3cret@127.0.0.1:1/?auth=apikey"
      - "https://127.0.0.1:1/receiver/v1/http/StaticPathT0ken"
      - "http://127.0.0.1:{f}/inputs/StaticPathT0ken?dd-api-key=StaticDdApiK3y"
      - "http://127.0.0.1:{g}/inputs/GzipPathT0ken?dd-api-key=GzipDdApiK3y"
"#,
        f = failing.port,
        r = refusing.port,
        g = no_gzip.port
    );
    let env = [
        ("DEBUG", "true"),
        ("HTTP_EVENTS", "true"),
        ("HTTP_TOKEN", "HttpInputT0ken"),
        ("POSTGRES", "true"),
        ("DATABASE_URL", db_url.as_str()),
    ];
    let mut bin = Binary::start(&dir.path().join("run"), &yaml, &env);
    let port = bin.http;

    // Bad and good rows, some with credentials.
    let (db, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    wait_until("the drains table", Duration::from_secs(20), || {
        http_get(port, "/readyz").starts_with("ready")
    })
    .await;
    db.batch_execute(
        "insert into drains (hostname, endpoint) values
           ('secret.default', 'gopher://user:BadRowPassw0rd@example.com'),
           ('secret.default', 'syslog+tcp://user:RowPassw0rd@127.0.0.1:1'),
           ('secret.default', 'https://user:BadRowPassw0rd@'),
           ('other.default', 'http://user:RowPassw0rd@127.0.0.1:1/x?insecure=maybe')",
    )
    .await
    .unwrap();
    // Tokens in paths and queries, in a row that works and in rows that do not parse.
    db.execute(
        "insert into drains (hostname, endpoint) values
           ('secret.default', 'https://127.0.0.1:1/inputs/RowPathT0ken?dd-api-key=RowDdApiK3y'),
           ('secret.default', $1),
           ('secret.default', 'https://127.0.0.1:99999/receiver/v1/http/BadRowPathT0ken?dd-api-key=BadRowDdApiK3y'),
           ('secret.default', 'syslog+tcp://127.0.0.1:1/BadRowPathT0ken')",
        &[&format!(
            "https://SecUs3r:{ODD_PASSWORD}@127.0.0.1:1/receiver/v1/http/BadRowPathT0ken?dd-api-key=BadRowDdApiK3y"
        )],
    )
    .await
    .unwrap();
    // A payload whose values serde would quote in its error.
    db.batch_execute(
        "notify \"drains.update\", '{\"old\":\"https://h/inputs/NotifyPathT0ken?dd-api-key=NotifyDdApiK3y\",\"new\":1}'",
    )
    .await
    .unwrap();
    db.batch_execute("notify \"drains.insert\", '{\"hostname\":\"x\",\"endpoint\":\"http://u:BadRowPassw0rd@[\"}'")
        .await
        .unwrap();

    // The HTTP input: no token, a wrong one, the right one.
    let event = r#"{"hostname":"secret.default","message":"hello"}"#;
    let no_token = post(port, "/events", "", event);
    assert!(no_token.starts_with("HTTP/1.1 401"), "{no_token}");
    let wrong = post(port, "/events", "Authorization: Bearer HttpInputT0kem\r\n", event);
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let right = post(port, "/events", "Authorization: Bearer HttpInputT0ken\r\n", event);
    assert!(right.starts_with("HTTP/1.1 200"), "{right}");
    let bad = post(
        port,
        "/events",
        "Authorization: Bearer HttpInputT0ken\r\n",
        "{\"hostname\":",
    );
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    for a in [&no_token, &wrong, &right, &bad] {
        assert_clean("an HTTP answer", a);
    }
    // Records flow into every drain; the failing ones fail.
    for i in 0..20 {
        let e = format!(r#"{{"hostname":"secret.default","message":"m{i}"}}"#);
        post(port, "/events", "Authorization: Bearer HttpInputT0ken\r\n", &e);
    }
    wait_until("the 500s, 401s and 415", Duration::from_secs(20), || {
        failing.requests().iter().any(|r| r.status == 500)
            && refusing.requests().iter().any(|r| r.status == 401)
            && no_gzip.requests().iter().any(|r| r.status == 200)
    })
    .await;
    // The drains did authenticate with what the URLs said.
    assert!(
        refusing.requests()[0]
            .header("authorization")
            .is_some_and(|h| h == "Bearer DrainBearerT0ken")
    );
    wait_until("the bad rows to be reported", Duration::from_secs(10), || {
        let log = bin.log();
        log.contains("gopher")
            && log.contains("an '@' after the host")
            && log.contains("invalid port number")
            && log.contains("unexpected path")
            && log.contains("Unreadable drain table notification")
            && log.contains("refuses gzip")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let metrics = bin.metrics();
    assert!(metrics.contains("logtrain_drain_errors_total"));
    // The drains with tokens in their paths are there, named by host and port.
    assert!(metrics.contains("{drain=\"https://127.0.0.1:1#"), "{metrics}");
    assert_clean("/metrics", &metrics);
    bin.signal("TERM");
    bin.wait_exit(Duration::from_secs(40));
    let stderr = bin.log();
    assert!(stderr.contains("\"level\":\"DEBUG\""), "debug logging on");
    assert_clean("stderr", &stderr);
    assert_clean("stdout", &std::fs::read_to_string(&bin.stdout).unwrap_or_default());

    // `logtrain check` on a file full of problems names them without secrets.
    let bad_yaml = dir.path().join("bad.yaml");
    std::fs::write(
        &bad_yaml,
        format!(
            r#"routes:
  - hostname: a.default
    drains:
      - "https://u:CheckPassw0rd@h:1/x"
      - "https://u:CheckPassw0rd@h:1/x"
      - "gopher://u:CheckPassw0rd@h"
      - "https://u:CheckPassw0rd@h/x?ca=notbase64"
      - "elasticsearch://u:CheckPassw0rd@h/?auth=unknown"
      - "syslog+tls://user:CheckPassw0rd@127.0.0.1:1"
      - "https://h:1/receiver/v1/http/CheckPathT0ken"
      - "https://h:1/receiver/v1/http/CheckPathT0ken"
      - "https://h/inputs/CheckPathT0ken?dd-api-key=CheckDdApiK3y&ca=notbase64"
      - "https://SecUs3r:{ODD_PASSWORD}@h/inputs/CheckPathT0ken?dd-api-key=CheckDdApiK3y"
      - "https://h:99999/receiver/v1/http/CheckPathT0ken"
      - "syslog+tcp://h:1/CheckPathT0ken"
      - "syslog+tls://h:1?CheckPathT0ken"
      - "http://h/inputs/CheckPathT0ken?auth=CheckPathT0ken"
"#
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_logtrain"))
        .arg("--config")
        .arg(&bad_yaml)
        .arg("check")
        .env("DATABASE_URL", "postgres://u:DbPassw0rd@/x?sslmode=bogus")
        .env("POSTGRES", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("duplicate route"), "{text}");
    assert!(text.contains("gopher"), "{text}");
    for problem in [
        "duplicate route to https://h:1#",
        "invalid drain URL \"https://\": an '@' after the host",
        "invalid drain URL \"https://h:99999\"",
        "unexpected path",
        "unknown parameter (name not shown)",
        "auth=(value not shown) needs credentials",
    ] {
        assert!(text.contains(problem), "{problem:?} not in {text}");
    }
    assert_clean("logtrain check", &text);

    // Starting with that file is refused, naming every problem the same way.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_logtrain"))
        .arg("--config")
        .arg(&bad_yaml)
        .env("DEBUG", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("an '@' after the host"), "{text}");
    assert_clean("a refused start", &text);

    // A file of the wrong shape: YAML errors name what was expected, not the value.
    let wrong_shape = dir.path().join("wrong-shape.yaml");
    std::fs::write(
        &wrong_shape,
        "routes:\n  - hostname: a.default\n    drains: \"https://h/inputs/YamlPathT0ken?dd-api-key=YamlDdApiK3y\"\nhttp_token: 12345\n",
    )
    .unwrap();
    for args in [&["check"][..], &[]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_logtrain"))
            .arg("--config")
            .arg(&wrong_shape)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("expected a sequence"), "{text}");
        assert_clean("a file of the wrong shape", &text);
    }
}
