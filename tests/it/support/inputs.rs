//! Harness for the input tests: a logtrain `App` whose routes send the given
//! hostnames to one `file://` drain, its inputs started on port 0, and a reader
//! that parses the RFC 5424 lines the file drain writes back into fields.

use std::path::{Path, PathBuf};
use std::time::Duration;

use logtrain::app::App;
use logtrain::config::{Config, StaticRoute};
use logtrain::input::Listening;

/// Metrics are process-wide, and under `cargo test` the tests of every module share
/// one process and run in parallel: tests that assert counter deltas hold this for
/// their whole run. (`cargo nextest run` gives each test a process of its own.)
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// A running logtrain writing every routed record to `out`.
pub struct Logtrain {
    pub app: Option<App>,
    pub at: Listening,
    pub out: PathBuf,
}

/// Starts logtrain with `config` (ports set to 0, bound to 127.0.0.1) routing
/// each of `hosts` to `DIR/out.log`.
pub async fn start(dir: &Path, config: Config, hosts: &[&str]) -> Logtrain {
    start_to(&dir.join("out.log"), config, hosts).await
}

/// Like [`start`], with the file drain at `out`.
pub async fn start_to(out: &Path, mut config: Config, hosts: &[&str]) -> Logtrain {
    let out = out.to_path_buf();
    let url = format!("file://{}", out.display());
    config.listen_address = "127.0.0.1".into();
    config.http_port = 0;
    config.syslog_tcp_port = 0;
    config.syslog_udp_port = 0;
    config.syslog_tls_port = 0;
    config.shutdown_timeout = 3;
    config.drain_buffer_path = out.parent().unwrap_or(&out).join("buffers");
    config.routes.extend(hosts.iter().map(|h| StaticRoute {
        hostname: h.to_string(),
        drains: vec![url.clone()],
    }));
    let app = App::start(config);
    assert!(
        tokio::time::timeout(Duration::from_secs(5), app.wait_ready())
            .await
            .unwrap()
    );
    let at = logtrain::input::start(&app).await.expect("inputs start");
    Logtrain {
        app: Some(app),
        at,
        out,
    }
}

impl Logtrain {
    /// Waits until the file holds `n` records, then a little longer to be sure
    /// no more arrive, and returns them.
    pub async fn records(&self, n: usize) -> Vec<Line> {
        let start = std::time::Instant::now();
        while read(&self.out).len() < n {
            if start.elapsed() > Duration::from_secs(15) {
                panic!(
                    "timed out waiting for {n} records in {}; found {:#?}",
                    self.out.display(),
                    read(&self.out)
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let got = read(&self.out);
        assert_eq!(got.len(), n, "{got:#?}");
        got
    }

    /// Stops inputs and flushes drains.
    pub async fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            let report = app.shutdown().await;
            assert!(report.unflushed.is_empty(), "{report:?}");
        }
    }
}

/// One RFC 5424 line as the file drain wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub pri: u8,
    pub timestamp: String,
    pub hostname: String,
    pub app_name: String,
    pub procid: String,
    pub msgid: String,
    pub sd: String,
    pub msg: Vec<u8>,
}

impl Line {
    pub fn msg_str(&self) -> String {
        String::from_utf8_lossy(&self.msg).into_owned()
    }
}

/// Every record of a file drain's output.
pub fn read(path: &Path) -> Vec<Line> {
    let Ok(data) = std::fs::read(path) else {
        return Vec::new();
    };
    let complete = data.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
    data[..complete]
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(parse_line)
        .collect()
}

/// Parses `<PRI>1 TS HOST APP PROCID MSGID SD[ MSG]`.
pub fn parse_line(l: &[u8]) -> Line {
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
    assert!(l.starts_with(b"<"), "{:?}", String::from_utf8_lossy(l));
    let close = l.iter().position(|&c| c == b'>').unwrap();
    let pri: u8 = text(&l[1..close]).parse().unwrap();
    assert_eq!(&l[close + 1..close + 3], b"1 ");
    let mut rest = &l[close + 3..];
    let mut fields = Vec::new();
    for _ in 0..5 {
        let sp = rest.iter().position(|&c| c == b' ').unwrap();
        fields.push(text(&rest[..sp]));
        rest = &rest[sp + 1..];
    }
    // Structured data: `-` or `[...]...` with escapes inside quoted values.
    let sd_end = if rest.first() == Some(&b'-') {
        1
    } else {
        let (mut i, mut quoted) = (0, false);
        loop {
            match rest.get(i) {
                None => break i,
                Some(b'\\') if quoted => i += 2,
                Some(b'"') => {
                    quoted = !quoted;
                    i += 1
                }
                Some(b' ') if !quoted && i > 0 && rest[i - 1] == b']' => break i,
                Some(_) => i += 1,
            }
        }
    };
    let sd = text(&rest[..sd_end]);
    let msg = rest.get(sd_end + 1..).unwrap_or(b"").to_vec();
    let dash = |s: String| if s == "-" { String::new() } else { s };
    Line {
        pri,
        timestamp: fields[0].clone(),
        hostname: dash(fields[1].clone()),
        app_name: dash(fields[2].clone()),
        procid: dash(fields[3].clone()),
        msgid: dash(fields[4].clone()),
        sd: dash(sd),
        msg,
    }
}

/// The current value of an input counter (`input` label).
pub fn counter(name: &'static str, input: &str) -> u64 {
    logtrain::telemetry::counter(name, &[("input", input)]).get()
}

/// The current value of an input gauge (`input` label).
pub fn gauge(name: &'static str, input: &str) -> i64 {
    logtrain::telemetry::gauge(name, &[("input", input)]).get()
}

/// Counters of one input, read before and after an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub records: u64,
    pub parse_errors: u64,
    pub truncated: u64,
    pub rejected: u64,
    /// Record copies dropped at full drain queues (`logtrain_input_dropped_total`).
    pub dropped: u64,
    pub refused: u64,
    pub handshake_errors: u64,
    pub unrouted: u64,
}

impl Counts {
    pub fn of(input: &str) -> Counts {
        Counts {
            records: counter("logtrain_input_records_total", input),
            parse_errors: counter("logtrain_input_parse_errors_total", input),
            truncated: counter("logtrain_input_truncated_total", input),
            rejected: counter("logtrain_input_rejected_total", input),
            dropped: counter("logtrain_input_dropped_total", input),
            refused: counter("logtrain_input_connections_refused_total", input),
            handshake_errors: counter("logtrain_input_handshake_errors_total", input),
            unrouted: counter("logtrain_unrouted_records_total", input),
        }
    }

    /// What changed since `before`.
    pub fn since(input: &str, before: Counts) -> Counts {
        let now = Counts::of(input);
        Counts {
            records: now.records - before.records,
            parse_errors: now.parse_errors - before.parse_errors,
            truncated: now.truncated - before.truncated,
            rejected: now.rejected - before.rejected,
            dropped: now.dropped - before.dropped,
            refused: now.refused - before.refused,
            handshake_errors: now.handshake_errors - before.handshake_errors,
            unrouted: now.unrouted - before.unrouted,
        }
    }
}

/// This machine's host name, as `logger` puts it in messages.
pub fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}
