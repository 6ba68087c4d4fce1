//! The Envoy access-log input against a real Envoy: HTTP and TCP traffic through
//! Envoy arrives as logtrain-style records in a `file://` drain, Akkeris naming,
//! malformed and incomplete streams, the memory budget, the connection cap and
//! shutdown.
//!
//! The tests share process-wide counters, so they run one at a time.

use crate::support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use logtrain::app::App;
use logtrain::config::{Config, StaticRoute};
use logtrain::input::budget::Budget;
use logtrain::input::envoy::proto::envoy::data::accesslog::v3::{
    AccessLogCommon, HttpAccessLogEntry, HttpRequestProperties, HttpResponseProperties, TcpAccessLogEntry,
};
use logtrain::input::envoy::proto::envoy::service::accesslog::v3::StreamAccessLogsMessage;
use logtrain::input::envoy::proto::envoy::service::accesslog::v3::stream_access_logs_message::{
    HttpAccessLogEntries, Identifier, LogEntries, TcpAccessLogEntries,
};
use logtrain::telemetry;
use prost::Message;
use support::envoy::{ALS_PATH, DB_CLUSTER, Envoy, WEB_CLUSTER, echo_upstream, frame, grpc_call, http, web_upstream};
use support::{read_lines, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn count(name: &'static str, labels: &[(&'static str, &str)]) -> u64 {
    telemetry::counter(name, labels).get()
}
fn records() -> u64 {
    count("logtrain_input_records_total", &[("input", "envoy")])
}
fn parse_errors() -> u64 {
    count("logtrain_input_parse_errors_total", &[("input", "envoy")])
}
fn incomplete() -> u64 {
    count("logtrain_envoy_incomplete_entries_total", &[])
}
fn unnamed() -> u64 {
    count("logtrain_envoy_unnamed_entries_total", &[])
}

/// logtrain with the Envoy input on a free port, routing each `(hostname, file)`.
struct Setup {
    app: App,
    als: SocketAddr,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn start(akkeris: bool, routes: &[(&str, &str)]) -> Setup {
        Setup::with_memory(akkeris, routes, Config::default().input_memory_bytes).await
    }

    /// With `INPUT_MEMORY_BYTES` set to `memory`.
    async fn with_memory(akkeris: bool, routes: &[(&str, &str)], memory: usize) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            akkeris,
            shutdown_timeout: 5,
            routes: routes
                .iter()
                .map(|(host, file)| StaticRoute {
                    hostname: host.to_string(),
                    drains: vec![format!("file://{}", dir.path().join(file).display())],
                })
                .collect(),
            ..crate::support::config()
        };
        let app = App::start(config);
        assert!(app.wait_ready().await);
        let budget = Budget::new(memory);
        let als = logtrain::input::envoy::start(&app, "127.0.0.1:0".parse().unwrap(), &budget)
            .await
            .unwrap();
        Setup { app, als, dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    async fn envoy(&self) -> Envoy {
        Envoy::start(self.dir.path(), self.als, web_upstream().await, echo_upstream().await).await
    }
}

/// A file-drain line split into its RFC 5424 header and the key=value message.
struct Line {
    hostname: String,
    app_name: String,
    timestamp: String,
    message: String,
    kv: HashMap<String, String>,
}

fn parse(line: &str) -> Line {
    let parts: Vec<&str> = line.splitn(8, ' ').collect();
    assert_eq!(parts.len(), 8, "{line}");
    assert_eq!(parts[0], "<14>1", "{line}");
    assert_eq!(&parts[4..7], ["-", "-", "-"], "{line}");
    let message = parts[7].to_string();
    let kv = message
        .split(' ')
        .map(|f| {
            let (k, v) = f.split_once('=').unwrap_or_else(|| panic!("{f:?} in {line}"));
            (k.to_string(), v.to_string())
        })
        .collect();
    Line {
        timestamp: parts[1].into(),
        hostname: parts[2].into(),
        app_name: parts[3].into(),
        message,
        kv,
    }
}

async fn wait_lines(path: &Path, n: usize) -> Vec<Line> {
    wait_until(
        &format!("{n} lines in {}", path.display()),
        Duration::from_secs(15),
        || read_lines(path).len() >= n,
    )
    .await;
    let lines = read_lines(path);
    assert_eq!(lines.len(), n, "{lines:#?}");
    lines.iter().map(|l| parse(l)).collect()
}

fn keys(l: &Line) -> Vec<&str> {
    l.message.split(' ').map(|f| f.split_once('=').unwrap().0).collect()
}

#[tokio::test]
async fn http_and_tcp_traffic_through_envoy_arrives_as_records() {
    let _serial = support::inputs::serial().await;
    let s = Setup::start(false, &[("web.default", "web.log"), ("db.default", "db.log")]).await;
    let envoy = s.envoy().await;
    let before = records();

    let calls: [(&str, &str, &[u8], u16); 4] = [
        ("GET", "/hello", b"", 200),
        ("POST", "/status/201?x=1", b"some body", 201),
        ("GET", "/status/404", b"", 404),
        ("DELETE", "/status/503", b"", 503),
    ];
    for (method, path, body, want) in calls {
        let (status, answer) = http(envoy.http_port, method, path, body).await.unwrap();
        assert_eq!(status, want, "{method} {path}");
        assert!(answer.starts_with(b"hello "));
    }
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", envoy.tcp_port))
        .await
        .unwrap();
    tcp.write_all(b"ping over tcp").await.unwrap();
    let mut echo = [0u8; 13];
    tcp.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"ping over tcp");
    drop(tcp);

    let web = wait_lines(&s.path("web.log"), 4).await;
    let want = [
        ("GET", "/hello", "200"),
        ("POST", "/status/201?x=1", "201"),
        ("GET", "/status/404", "404"),
        ("DELETE", "/status/503", "503"),
    ];
    let authority = format!("127.0.0.1:{}", envoy.http_port);
    let today = &logtrain::time::Timestamp::now().to_rfc3339()[..10];
    for (l, (method, path, status)) in web.iter().zip(want) {
        assert_eq!(l.hostname, "web.default");
        assert_eq!(l.app_name, "envoy");
        assert!(l.timestamp.starts_with(today), "{}", l.timestamp);
        assert_eq!(
            keys(l),
            [
                "bytes",
                "request_size",
                "response_size",
                "method",
                "request_id",
                "fwd",
                "authority",
                "protocol",
                "status",
                "connect",
                "service",
                "total",
                "path"
            ],
            "{}",
            l.message
        );
        let kv = &l.kv;
        assert_eq!(kv["method"], method, "{}", l.message);
        assert_eq!(kv["path"], path, "{}", l.message);
        assert_eq!(kv["status"], status, "{}", l.message);
        assert_eq!(kv["authority"], authority, "{}", l.message);
        assert_eq!(kv["protocol"], "http11", "{}", l.message);
        assert_eq!(kv["request_id"].len(), 36, "{}", l.message);
        let n = |k: &str| kv[k].parse::<u64>().unwrap();
        assert!(n("request_size") > 0 && n("response_size") > 0, "{}", l.message);
        assert_eq!(n("bytes"), n("request_size") + n("response_size"));
        for k in ["connect", "service", "total"] {
            let v = kv[k].strip_suffix("ms").unwrap();
            assert!(v.parse::<f64>().unwrap() >= 0.0, "{}", l.message);
        }
    }
    // The POST carried a body; its request is bigger than the GET's by at least that much.
    let size = |i: usize| web[i].kv["request_size"].parse::<u64>().unwrap();
    assert!(size(1) >= size(0) + 9);

    let db = wait_lines(&s.path("db.log"), 1).await;
    let l = &db[0];
    assert_eq!((l.hostname.as_str(), l.app_name.as_str()), ("db.default", "envoy"));
    assert_eq!(
        keys(l),
        [
            "bytes", "received", "sent", "fwd", "upstream", "protocol", "connect", "service", "total"
        ],
        "{}",
        l.message
    );
    assert_eq!(l.kv["received"], "13", "{}", l.message);
    assert_eq!(l.kv["sent"], "13", "{}", l.message);
    assert_eq!(l.kv["bytes"], "26", "{}", l.message);
    assert_eq!(l.kv["fwd"], "127.0.0.1", "{}", l.message);
    assert!(l.kv["upstream"].starts_with("127.0.0.1:"), "{}", l.message);
    assert_eq!(l.kv["protocol"], "tcp");

    assert_eq!(records() - before, 5);
    drop(envoy);
    assert!(s.app.shutdown().await.unflushed.is_empty());
}

#[tokio::test]
async fn akkeris_naming() {
    let _serial = support::inputs::serial().await;
    let s = Setup::start(true, &[("web-default", "web.log"), ("web.default", "dotted.log")]).await;
    let envoy = s.envoy().await;
    assert_eq!(http(envoy.http_port, "GET", "/ak", b"").await.unwrap().0, 200);
    let lines = wait_lines(&s.path("web.log"), 1).await;
    assert_eq!(lines[0].hostname, "web-default");
    assert_eq!(lines[0].app_name, "akkeris/router");
    assert_eq!(lines[0].kv["path"], "/ak");
    assert!(read_lines(&s.path("dotted.log")).is_empty());
    drop(envoy);
    s.app.shutdown().await;
}

fn http_message(entries: Vec<HttpAccessLogEntry>, first: bool) -> Vec<u8> {
    let msg = StreamAccessLogsMessage {
        identifier: first.then(|| Identifier {
            node: None,
            log_name: "handmade".into(),
        }),
        log_entries: Some(LogEntries::HttpLogs(HttpAccessLogEntries { log_entry: entries })),
    };
    frame(&msg.encode_to_vec())
}

fn cluster_only(cluster: &str) -> Option<AccessLogCommon> {
    Some(AccessLogCommon {
        upstream_cluster: cluster.into(),
        ..Default::default()
    })
}

#[tokio::test]
async fn malformed_protobuf_ends_only_its_stream() {
    let _serial = support::inputs::serial().await;
    let s = Setup::start(false, &[("web.default", "web.log")]).await;
    let envoy = s.envoy().await;
    let errors = parse_errors();

    // A good message, then bytes that are no protobuf at all.
    let good = HttpAccessLogEntry {
        common_properties: cluster_only(WEB_CLUSTER),
        request: Some(HttpRequestProperties {
            path: "/before-junk".into(),
            ..Default::default()
        }),
        response: Some(HttpResponseProperties {
            response_code: Some(200),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut body = http_message(vec![good], true);
    body.extend(frame(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x34]));
    let reply = grpc_call(s.als, ALS_PATH, body).await;
    assert_eq!(reply.http_status, 200);
    assert_eq!(reply.grpc_status, Some(13), "{reply:?}");
    assert!(reply.grpc_message.contains("decode"), "{reply:?}");
    assert_eq!(parse_errors() - errors, 1);

    // A frame that claims more bytes than the limit allows is refused too.
    let mut huge = vec![0u8];
    huge.extend_from_slice(&(64u32 << 20).to_be_bytes());
    let reply = grpc_call(s.als, ALS_PATH, huge).await;
    assert_ne!(reply.grpc_status, Some(0), "{reply:?}");
    assert_eq!(parse_errors() - errors, 2);

    // The server keeps serving: the real Envoy's stream still delivers.
    assert_eq!(http(envoy.http_port, "GET", "/after-junk", b"").await.unwrap().0, 200);
    let lines = wait_lines(&s.path("web.log"), 2).await;
    assert_eq!(lines[0].kv["path"], "/before-junk");
    assert_eq!(lines[1].kv["path"], "/after-junk");
    drop(envoy);
    s.app.shutdown().await;
}

#[tokio::test]
async fn entries_with_missing_fields_use_defaults_and_are_counted() {
    let _serial = support::inputs::serial().await;
    let s = Setup::start(false, &[("web.default", "web.log"), ("db.default", "db.log")]).await;
    let (inc, unn, recs) = (incomplete(), unnamed(), records());

    let http_entries = vec![
        // Only the cluster: request, response and start time missing.
        HttpAccessLogEntry {
            common_properties: cluster_only(WEB_CLUSTER),
            ..Default::default()
        },
        // No common properties at all: nothing to route by.
        HttpAccessLogEntry::default(),
        // A cluster that names no service (passthrough): skipped, as logtrain does.
        HttpAccessLogEntry {
            common_properties: Some(AccessLogCommon {
                upstream_cluster: "PassthroughCluster".into(),
                start_time: Some(prost_types::Timestamp::default()),
                ..Default::default()
            }),
            request: Some(HttpRequestProperties::default()),
            response: Some(HttpResponseProperties::default()),
            ..Default::default()
        },
    ];
    let mut body = http_message(http_entries, true);
    let tcp = StreamAccessLogsMessage {
        identifier: None,
        log_entries: Some(LogEntries::TcpLogs(TcpAccessLogEntries {
            log_entry: vec![TcpAccessLogEntry {
                common_properties: cluster_only(DB_CLUSTER),
                connection_properties: None,
            }],
        })),
    };
    body.extend(frame(&tcp.encode_to_vec()));
    // A message with no entries at all.
    body.extend(frame(&StreamAccessLogsMessage::default().encode_to_vec()));
    let reply = grpc_call(s.als, ALS_PATH, body).await;
    assert_eq!(reply.grpc_status, Some(0), "{reply:?}");

    let web = wait_lines(&s.path("web.log"), 1).await;
    assert_eq!(
        web[0].message,
        "bytes=0 request_size=0 response_size=0 method=METHOD_UNSPECIFIED request_id= fwd= authority= \
         protocol=protocol_unspecified status=0 connect=0.00ms service=0.00ms total=0.00ms path="
    );
    let db = wait_lines(&s.path("db.log"), 1).await;
    assert_eq!(
        db[0].message,
        "bytes=0 received=0 sent=0 fwd= upstream= protocol=tcp connect=0.00ms service=0.00ms total=0.00ms"
    );
    assert_eq!(incomplete() - inc, 3);
    assert_eq!(unnamed() - unn, 2);
    assert_eq!(records() - recs, 2);
    s.app.shutdown().await;
}

#[tokio::test]
async fn silent_connections_at_the_cap_make_room_for_a_real_envoy() {
    let _serial = support::inputs::serial().await;
    let s = Setup::start(false, &[("web.default", "web.log")]).await;
    let counter = |name| count(name, &[("input", "envoy")]);
    let open = || telemetry::gauge("logtrain_input_connections", &[("input", "envoy")]).get();
    let (refused, evicted) = (
        counter("logtrain_input_connections_refused_total"),
        counter("logtrain_input_connections_evicted_total"),
    );
    // 256 connections that never speak HTTP/2 fill every slot.
    let mut held = Vec::new();
    for _ in 0..256 {
        held.push(tokio::net::TcpStream::connect(s.als).await.unwrap());
    }
    wait_until("256 open connections", Duration::from_secs(10), || open() == 256).await;

    // A real Envoy still gets in: its connection takes the place of the oldest
    // silent one, and its stream (a request in flight) is never evicted.
    let envoy = s.envoy().await;
    assert_eq!(http(envoy.http_port, "GET", "/room", b"").await.unwrap().0, 200);
    assert_eq!(wait_lines(&s.path("web.log"), 1).await[0].kv["path"], "/room");
    // (It was sent the server's SETTINGS, then closed.)
    let mut settings = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), held[0].read_to_end(&mut settings)).await;
    assert!(closed.is_ok(), "the oldest silent connection was closed");
    assert!(counter("logtrain_input_connections_evicted_total") - evicted >= 1);
    assert_eq!(counter("logtrain_input_connections_refused_total") - refused, 0);
    assert_eq!(open(), 256);

    // A flood of newcomers sheds the silent ones, never the Envoy's.
    for _ in 0..300 {
        held.push(tokio::net::TcpStream::connect(s.als).await.unwrap());
    }
    assert_eq!(http(envoy.http_port, "GET", "/after-flood", b"").await.unwrap().0, 200);
    let lines = wait_lines(&s.path("web.log"), 2).await;
    assert_eq!(lines[1].kv["path"], "/after-flood");
    drop(held);
    wait_until("silent connections released", Duration::from_secs(10), || open() == 1).await;
    drop(envoy);
    s.app.shutdown().await;
}

#[tokio::test]
async fn a_message_the_memory_budget_cannot_hold_is_refused_with_resource_exhausted() {
    let _serial = support::inputs::serial().await;
    let s = Setup::with_memory(false, &[("web.default", "web.log")], 64 << 10).await;
    let exhausted = || count("logtrain_input_memory_exhausted_total", &[("input", "envoy")]);
    let (before, errors, recs) = (exhausted(), parse_errors(), records());
    let entry = |path: &str| HttpAccessLogEntry {
        common_properties: cluster_only(WEB_CLUSTER),
        request: Some(HttpRequestProperties {
            path: path.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    // 100 KiB of entries in one message: more than the 64 KiB budget.
    let big = http_message(vec![entry(&"x".repeat(100 << 10))], true);
    let reply = grpc_call(s.als, ALS_PATH, big).await;
    assert_eq!(reply.grpc_status, Some(8), "{reply:?}");
    assert_eq!(exhausted() - before, 1);
    assert_eq!(parse_errors() - errors, 0, "not a bad message");
    // A message that fits goes through.
    let reply = grpc_call(s.als, ALS_PATH, http_message(vec![entry("/small")], true)).await;
    assert_eq!(reply.grpc_status, Some(0), "{reply:?}");
    assert_eq!(wait_lines(&s.path("web.log"), 1).await[0].kv["path"], "/small");
    assert_eq!(records() - recs, 1);
    s.app.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_streams_and_stops_listening() {
    let _serial = support::inputs::serial().await;
    let s = Setup::start(false, &[("web.default", "web.log")]).await;
    let envoy = s.envoy().await;
    for i in 0..3 {
        let path = format!("/before-stop/{i}");
        assert_eq!(http(envoy.http_port, "GET", &path, b"").await.unwrap().0, 200);
    }
    wait_lines(&s.path("web.log"), 3).await;
    let (als, web) = (s.als, s.path("web.log"));
    // Envoy holds its access-log stream open; shutdown must end it, not wait for it.
    let report = tokio::time::timeout(Duration::from_secs(5), s.app.shutdown())
        .await
        .expect("shutdown within its deadline");
    assert!(report.unflushed.is_empty());
    assert!(tokio::net::TcpStream::connect(als).await.is_err(), "still listening");
    assert_eq!(read_lines(&web).len(), 3);
    // Envoy saw its access-log connection closed.
    let stat = "/stats?filter=logtrain_als.upstream_cx_active";
    let mut closed = false;
    for _ in 0..100 {
        let (_, body) = http(envoy.admin_port, "GET", stat, b"").await.unwrap();
        if String::from_utf8_lossy(&body).contains("cluster.logtrain_als.upstream_cx_active: 0") {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(closed, "Envoy still holds a connection to the stopped input");
    drop(envoy);
}
