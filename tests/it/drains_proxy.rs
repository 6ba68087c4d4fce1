//! HTTP drains through a forward proxy, as the ecosystem's clients use one:
//! `HTTPS_PROXY` tunnels a TLS drain with CONNECT (credentials from the proxy
//! URL, never in a log), `NO_PROXY` sends it direct, a proxy that refuses is
//! a drain error like any other and nothing is lost once it lets the drain
//! through.

use std::time::Duration;

use base64::Engine as _;

use crate::live_tail::{logtrain, send, syslog_tcp_port};
use crate::support;
use support::connect_proxy::ConnectProxy;
use support::http_recorder::Recorder;
use support::wait_until;

fn ca_param(pem: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
    percent_encoding::utf8_percent_encode(&b64, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// NDJSON documents the recorder accepted.
fn lines_received(rec: &Recorder) -> usize {
    rec.accepted()
        .iter()
        .map(|r| r.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count())
        .sum()
}

/// Sends a probe line now and then until the route delivers one (lines sent
/// while the route is being installed go nowhere); returns the lines received.
async fn routed(bin: &support::faults::Binary, rec: &Recorder) -> usize {
    let before = lines_received(rec);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while lines_received(rec) == before {
        assert!(std::time::Instant::now() < deadline, "no line routed:\n{}", bin.log());
        send(syslog_tcp_port(bin), ["probe".to_string()]).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Probes still in flight land before the count is taken.
    tokio::time::sleep(Duration::from_millis(500)).await;
    lines_received(rec)
}

/// Waits until the route's drain runs.
async fn started(bin: &support::faults::Binary) {
    wait_until("the drain started", Duration::from_secs(10), || {
        bin.log().contains("Drain started.")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_drain_goes_through_the_proxy_unless_no_proxy_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let pki = support::tls::make_pki(&dir.path().join("pki"));
    let rec = Recorder::start_tls(&pki.server_cert_pem, &pki.server_key_pem).await;
    let proxy = ConnectProxy::start(Some(&base64::engine::general_purpose::STANDARD.encode("u:p@ss"))).await;
    let drain = format!("https://localhost:{}/logs?ca={}", rec.port, ca_param(&pki.ca_pem));

    let proxied = proxy.url("u:p%40ss@");
    let bin = logtrain(
        &dir.path().join("a"),
        std::slice::from_ref(&drain),
        &[("HTTPS_PROXY", &proxied)],
    );
    let n = routed(&bin, &rec).await;
    send(syslog_tcp_port(&bin), (0..20).map(|i| format!("via-proxy-{i}"))).await;
    wait_until("20 lines through the proxy", Duration::from_secs(20), || {
        lines_received(&rec) == n + 20
    })
    .await;
    let seen = proxy.connects();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|c| c.target == format!("localhost:{}", rec.port)),
        "{seen:?}"
    );
    assert!(!bin.log().contains("p@ss") && !bin.log().contains("p%40ss"));
    drop(bin);

    // NO_PROXY: the same drain, straight to its target.
    let before = proxy.connects().len();
    let env = [("HTTPS_PROXY", proxied.as_str()), ("NO_PROXY", "example.com,localhost")];
    let bin = logtrain(&dir.path().join("b"), &[drain], &env);
    let n = routed(&bin, &rec).await;
    send(syslog_tcp_port(&bin), (0..20).map(|i| format!("direct-{i}"))).await;
    wait_until("20 more lines, direct", Duration::from_secs(20), || {
        lines_received(&rec) == n + 20
    })
    .await;
    assert_eq!(
        proxy.connects().len(),
        before,
        "NO_PROXY hosts never go through the proxy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_refuses_is_a_drain_error_that_names_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let pki = support::tls::make_pki(&dir.path().join("pki"));
    let rec = Recorder::start_tls(&pki.server_cert_pem, &pki.server_key_pem).await;
    let proxy = ConnectProxy::start(Some("right")).await;
    let drain = format!("https://localhost:{}/logs?ca={}", rec.port, ca_param(&pki.ca_pem));
    let bin = logtrain(dir.path(), &[drain], &[("HTTPS_PROXY", &proxy.url("wrong:s3cret@"))]);
    started(&bin).await;
    // A line now and then until the drain has tried (one sent while the route
    // was still being installed would go nowhere).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !bin.log().contains("answered 407") {
        assert!(std::time::Instant::now() < deadline, "no 407 reported:\n{}", bin.log());
        send(syslog_tcp_port(&bin), ["refused".to_string()]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        proxy.connects()[0].authorization.as_deref(),
        Some("Basic d3Jvbmc6czNjcmV0")
    );
    assert_eq!(lines_received(&rec), 0);
    let log = bin.log();
    assert!(!log.contains("s3cret") && !log.contains("d3Jvbmc6czNjcmV0"), "{log}");
    assert!(log.contains(&format!("proxy 127.0.0.1:{}", proxy.port)), "{log}");
}

#[test]
fn a_bad_proxy_url_stops_the_start_and_hides_its_password() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_logtrain"))
        .arg("check")
        .env_clear()
        .env("HTTPS_PROXY", "https://user:s3cret@proxy:8443")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("HTTPS_PROXY") && err.contains("only http:// proxies"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
}
