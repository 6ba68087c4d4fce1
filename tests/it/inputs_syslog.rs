//! The syslog inputs against real senders: util-linux `logger` (TCP, UDP,
//! RFC 5424 and RFC 3164, octet counting), a private rsyslog forwarding over
//! TCP, UDP and TLS with a client certificate, `openssl s_client`, and raw
//! sockets for bad input (garbage, truncated and absurd octet counts, endless
//! lines, invalid UTF-8, idle peers, the connection cap).

use crate::support;

use std::process::Stdio;
use std::time::Duration;

use logtrain::config::Config;
use support::inputs::{Counts, gauge, machine_hostname, serial, start, start_to};
use support::rsyslog::Rsyslog;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

fn syslog_config() -> Config {
    Config {
        syslog_tcp: true,
        syslog_udp: true,
        ..crate::support::config()
    }
}

async fn logger(args: &[&str]) {
    let out = Command::new("logger").args(args).output().await.expect("run logger");
    assert!(
        out.status.success(),
        "logger {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reads until EOF (or reset) within `limit`; true when the peer closed.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut b = [0u8; 64];
    matches!(
        tokio::time::timeout(limit, s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logger_over_tcp_and_udp_in_both_formats() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let host = machine_hostname();
    let mut lt = start(dir.path(), syslog_config(), &[&host]).await;
    let tcp = lt.at.syslog_tcp.unwrap().port().to_string();
    let udp = lt.at.syslog_udp.unwrap().port().to_string();
    let (tcp_before, udp_before) = (Counts::of("syslog_tcp"), Counts::of("syslog_udp"));
    let n = ["-n", "127.0.0.1"];
    logger(
        &[
            &n[..],
            &[
                "-P",
                &tcp,
                "--tcp",
                "--rfc5424=notq",
                "-t",
                "webapp",
                "--id=4242",
                "--msgid",
                "M1",
            ],
            &[
                "--sd-id",
                "zoo@123",
                "--sd-param",
                r#"tiger="hun\"gry""#,
                "--sd-param",
                r#"b="x\\y""#,
                "-p",
                "local3.warning",
                "newline framed",
            ],
        ]
        .concat(),
    )
    .await;
    lt.records(1).await;
    logger(
        &[
            &n[..],
            &[
                "-P",
                &tcp,
                "--tcp",
                "--octet-count",
                "--rfc5424=notq",
                "-t",
                "webapp",
                "octet counted",
            ],
        ]
        .concat(),
    )
    .await;
    lt.records(2).await;
    logger(
        &[
            &n[..],
            &[
                "-P",
                &tcp,
                "--tcp",
                "--rfc3164",
                "-t",
                "old",
                "--id=7",
                "-p",
                "user.err",
                "bsd format",
            ],
        ]
        .concat(),
    )
    .await;
    lt.records(3).await;
    logger(
        &[
            &n[..],
            &["-P", &udp, "--udp", "--rfc5424=notq", "-t", "udpapp", "over udp"],
        ]
        .concat(),
    )
    .await;
    lt.records(4).await;
    logger(
        &[
            &n[..],
            &["-P", &udp, "--udp", "--rfc3164", "-t", "udp3164", "bsd over udp"],
        ]
        .concat(),
    )
    .await;
    let lines = lt.records(5).await;

    let l = &lines[0];
    assert_eq!(
        (l.pri, l.hostname.as_str(), l.app_name.as_str()),
        (19 * 8 + 4, host.as_str(), "webapp")
    );
    assert_eq!((l.procid.as_str(), l.msgid.as_str()), ("4242", "M1"));
    assert_eq!(l.sd, r#"[zoo@123 tiger="hun\"gry" b="x\\y"]"#);
    assert_eq!(l.msg_str(), "newline framed");
    assert_eq!(lines[1].msg_str(), "octet counted");
    assert_eq!((lines[1].pri, lines[1].sd.as_str()), (13, ""));
    let l = &lines[2];
    assert_eq!((l.pri, l.app_name.as_str(), l.procid.as_str()), (11, "old", "7"));
    assert_eq!(
        (l.hostname.as_str(), l.msg_str().as_str()),
        (host.as_str(), "bsd format")
    );
    assert_eq!(
        (lines[3].app_name.as_str(), lines[3].msg_str().as_str()),
        ("udpapp", "over udp")
    );
    assert_eq!(
        (lines[4].app_name.as_str(), lines[4].msg_str().as_str()),
        ("udp3164", "bsd over udp")
    );
    for l in &lines {
        // logger's own timestamp is kept (converted to UTC, microseconds).
        assert!(l.timestamp.ends_with('Z') && l.timestamp.len() == 27, "{l:?}");
    }
    let (t, u) = (
        Counts::since("syslog_tcp", tcp_before),
        Counts::since("syslog_udp", udp_before),
    );
    assert_eq!((t.records, t.parse_errors, u.records, u.parse_errors), (3, 0, 2, 0));
    lt.stop().await;
}

fn rsyslog_sender(dir: &std::path::Path, actions: &str) -> Rsyslog {
    let body = format!(
        "global(localHostname=\"web.default\")\n\
         module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
         input(type=\"imuxsock\" Socket=\"{}/log.sock\" CreatePath=\"on\" RateLimit.Interval=\"0\")\n{actions}\n",
        dir.display()
    );
    let r = Rsyslog::start(dir, &body, &[]);
    let sock = dir.join("log.sock");
    for _ in 0..500 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(sock.exists(), "rsyslog did not create {}", sock.display());
    r
}

async fn log_to_socket(dir: &std::path::Path, tag: &str, msg: &str) {
    let sock = dir.join("log.sock");
    logger(&[
        "-u",
        sock.to_str().unwrap(),
        "-t",
        tag,
        "--id=99",
        "-p",
        "local1.notice",
        msg,
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_forwards_octet_counted_tcp_and_udp() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let mut lt = start(dir.path(), syslog_config(), &["web.default"]).await;
    let (tcp_before, udp_before) = (Counts::of("syslog_tcp"), Counts::of("syslog_udp"));
    let rs_dir = dir.path().join("rsyslog");
    let actions = format!(
        "action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{}\" protocol=\"tcp\" TCP_Framing=\"octet-counted\" template=\"RSYSLOG_SyslogProtocol23Format\")\n\
         action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{}\" protocol=\"udp\" template=\"RSYSLOG_SyslogProtocol23Format\")",
        lt.at.syslog_tcp.unwrap().port(),
        lt.at.syslog_udp.unwrap().port()
    );
    let rs = rsyslog_sender(&rs_dir, &actions);
    for i in 0..10 {
        log_to_socket(&rs_dir, "shop", &format!("order {i} from rsyslog")).await;
    }
    let lines = lt.records(20).await;
    drop(rs);
    for i in 0..10 {
        let want = format!("order {i} from rsyslog");
        let got: Vec<_> = lines.iter().filter(|l| l.msg_str() == want).collect();
        assert_eq!(got.len(), 2, "{want}: {lines:#?}");
        for l in got {
            assert_eq!((l.pri, l.hostname.as_str()), (17 * 8 + 5, "web.default"));
            assert_eq!((l.app_name.as_str(), l.procid.as_str()), ("shop", "99"));
        }
    }
    assert_eq!(Counts::since("syslog_tcp", tcp_before).records, 10);
    assert_eq!(Counts::since("syslog_udp", udp_before).records, 10);
    lt.stop().await;
}

fn tls_config(pki: &support::tls::Pki, with_ca: bool) -> Config {
    Config {
        syslog_tls: true,
        syslog_tls_cert_pem: Some(pki.server_cert_pem.clone()),
        syslog_tls_key_pem: Some(pki.server_key.display().to_string().into()),
        syslog_tls_ca_pem: with_ca.then(|| pki.ca_path.display().to_string()),
        ..crate::support::config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_over_tls_with_a_required_client_certificate() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let pki = support::tls::make_pki(&dir.path().join("pki"));
    let mut lt = start(dir.path(), tls_config(&pki, true), &["web.default"]).await;
    let before = Counts::of("syslog_tls");
    let rs_dir = dir.path().join("rsyslog");
    let actions = format!(
        "global(DefaultNetstreamDriverCAFile=\"{}\" DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\")\n\
         action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{}\" protocol=\"tcp\" TCP_Framing=\"octet-counted\" \
         StreamDriver=\"gtls\" StreamDriverMode=\"1\" StreamDriverAuthMode=\"x509/name\" StreamDriverPermittedPeers=\"localhost\" \
         template=\"RSYSLOG_SyslogProtocol23Format\")",
        pki.ca_path.display(),
        pki.client_cert.display(),
        pki.client_key.display(),
        lt.at.syslog_tls.unwrap().port()
    );
    let rs = rsyslog_sender(&rs_dir, &actions);
    for i in 0..5 {
        log_to_socket(&rs_dir, "secure", &format!("over tls {i}")).await;
    }
    let lines = lt.records(5).await;
    drop(rs);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l.msg_str(), format!("over tls {i}"));
        assert_eq!((l.hostname.as_str(), l.app_name.as_str()), ("web.default", "secure"));
    }
    let d = Counts::since("syslog_tls", before);
    assert_eq!((d.records, d.handshake_errors), (5, 0));
    lt.stop().await;
}

async fn s_client(port: u16, pki: &support::tls::Pki, cert: bool, input: &[u8]) -> tokio::process::Child {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-quiet",
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-CAfile",
    ])
    .arg(&pki.ca_path);
    if cert {
        cmd.arg("-cert").arg(&pki.client_cert).arg("-key").arg(&pki.client_key);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run openssl");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).await.unwrap();
    drop(stdin);
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_client_framing_and_the_required_certificate() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let pki = support::tls::make_pki(&dir.path().join("pki"));
    let mut lt = start(dir.path(), tls_config(&pki, true), &["web.default"]).await;
    let port = lt.at.syslog_tls.unwrap().port();
    let before = Counts::of("syslog_tls");

    // Without a client certificate: refused during the handshake, nothing routed.
    let refused = s_client(port, &pki, false, b"<14>1 - web.default app - - - sneaky\n").await;
    let out = tokio::time::timeout(Duration::from_secs(10), refused.wait_with_output())
        .await
        .expect("openssl exits when refused")
        .unwrap();
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    support::wait_until("handshake error counted", Duration::from_secs(5), || {
        Counts::since("syslog_tls", before).handshake_errors == 1
    })
    .await;

    // With one: octet-counted and newline frames mixed on one connection.
    let frame = b"<165>1 2024-05-06T07:08:09.5+02:00 web.default tlsapp 12 ID1 [a@1 k=\"v\\]\"] first";
    let mut input = format!("{} ", frame.len()).into_bytes();
    input.extend_from_slice(frame);
    input.extend_from_slice(b"<14>1 2024-05-06T07:08:10Z web.default tlsapp - - - second\n");
    input.extend_from_slice(b"5 hello");
    let _ok = s_client(port, &pki, true, &input).await;
    let lines = lt.records(2).await;
    let l = &lines[0];
    assert_eq!(
        (
            l.pri,
            l.timestamp.as_str(),
            l.app_name.as_str(),
            l.procid.as_str(),
            l.msgid.as_str()
        ),
        (165, "2024-05-06T05:08:09.500000Z", "tlsapp", "12", "ID1")
    );
    assert_eq!((l.sd.as_str(), l.msg_str().as_str()), (r#"[a@1 k="v\]"]"#, "first"));
    assert_eq!(lines[1].msg_str(), "second");
    let d = Counts::since("syslog_tls", before);
    // "hello" is not syslog: a parse error, counted unrouted.
    support::wait_until("parse error counted", Duration::from_secs(5), || {
        Counts::since("syslog_tls", before).parse_errors == 1
    })
    .await;
    assert_eq!((d.records, d.handshake_errors), (2, 1));
    lt.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_truncated_counts_and_invalid_utf8() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let mut lt = start(dir.path(), syslog_config(), &["host.a"]).await;
    let addr = lt.at.syslog_tcp.unwrap();
    let before = Counts::of("syslog_tcp");
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"\x01\x02 garbage \xff\xfe\nplain words, no header\n")
        .await
        .unwrap();
    s.write_all(b"<14>1 2024-01-02T03:04:05Z host.a app 1 - - caf\xc3\xa9 \xff\xfe\x80 end\r\n")
        .await
        .unwrap();
    s.write_all(b"<14>1 2024-01-02T03:04:05Z nobody.routes app 1 - - unrouted\n")
        .await
        .unwrap();
    let frame = b"<14>1 2024-01-02T03:04:06Z host.a app 2 - - counted \xc0\xaf";
    s.write_all(format!("{} ", frame.len()).as_bytes()).await.unwrap();
    s.write_all(frame).await.unwrap();
    // A frame cut short by the end of the stream.
    s.write_all(b"100 <14>1 2024-01-02T03:04:07Z host.a app 3 - - short")
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    let lines = lt.records(2).await;
    assert_eq!(lines[0].msg, b"caf\xc3\xa9 \xff\xfe\x80 end");
    assert_eq!(lines[1].msg, b"counted \xc0\xaf");
    support::wait_until("errors counted", Duration::from_secs(5), || {
        Counts::since("syslog_tcp", before).parse_errors == 3
    })
    .await;
    let d = Counts::since("syslog_tcp", before);
    // Two unparseable lines and the truncated frame; three records parsed, one of them unrouted.
    assert_eq!((d.records, d.parse_errors, d.unrouted), (3, 3, 3));

    // The same bytes over UDP, one message per datagram.
    let before = Counts::of("syslog_udp");
    let u = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    u.send_to(b"\xff\xfe not syslog", lt.at.syslog_udp.unwrap())
        .await
        .unwrap();
    u.send_to(b"<14>1 - host.a udp - - - bytes \xff here\n", lt.at.syslog_udp.unwrap())
        .await
        .unwrap();
    let lines = lt.records(3).await;
    assert_eq!(lines[2].msg, b"bytes \xff here");
    let d = Counts::since("syslog_udp", before);
    assert_eq!((d.records, d.parse_errors), (1, 1));
    lt.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_octet_counts_are_skipped_or_end_the_connection() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        syslog_max_line: 512,
        syslog_max_frame: 1024,
        ..syslog_config()
    };
    let mut lt = start(dir.path(), config, &["host.a"]).await;
    let addr = lt.at.syslog_tcp.unwrap();
    let before = Counts::of("syslog_tcp");
    let mut s = TcpStream::connect(addr).await.unwrap();
    // Larger than the limit but resynchronisable: skipped, the next frame arrives.
    s.write_all(b"2000 ").await.unwrap();
    s.write_all(&[b'x'; 2000]).await.unwrap();
    s.write_all(b"<14>1 - host.a app - - - after skip\n").await.unwrap();
    let lines = lt.records(1).await;
    assert_eq!(lines[0].msg_str(), "after skip");
    // 2^40: never allocated, the connection is closed.
    s.write_all(b"1099511627776 <14>1 - host.a app - - - never\n<14>1 - host.a app - - - lost\n")
        .await
        .unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    let d = Counts::since("syslog_tcp", before);
    assert_eq!((d.records, d.parse_errors), (1, 2));
    // Other connections are unaffected.
    let mut s2 = TcpStream::connect(addr).await.unwrap();
    s2.write_all(b"<14>1 - host.a app - - - new connection\n")
        .await
        .unwrap();
    let lines = lt.records(2).await;
    assert_eq!(lines[1].msg_str(), "new connection");
    lt.stop().await;
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_line_is_truncated_in_bounded_memory() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let mut lt = start(dir.path(), syslog_config(), &["host.a"]).await;
    let max = Config::default().syslog_max_line;
    let before = Counts::of("syslog_tcp");
    let peak_before = peak_rss_kib();
    let mut s = TcpStream::connect(lt.at.syslog_tcp.unwrap()).await.unwrap();
    let head = b"<14>1 2024-01-02T03:04:05Z host.a app - - - ";
    s.write_all(head).await.unwrap();
    let chunk = vec![b'a'; 64 << 10];
    for _ in 0..(48 << 20) / chunk.len() {
        s.write_all(&chunk).await.unwrap();
    }
    s.write_all(b"\n<14>1 2024-01-02T03:04:06Z host.a app - - - still here\n")
        .await
        .unwrap();
    let lines = lt.records(2).await;
    assert_eq!(lines[0].msg.len(), max - head.len());
    assert!(lines[0].msg.iter().all(|&c| c == b'a'));
    assert_eq!(lines[1].msg_str(), "still here");
    let d = Counts::since("syslog_tcp", before);
    assert_eq!((d.records, d.truncated, d.parse_errors), (2, 1, 0));
    // 48 MiB went through one connection; the peak grew by far less.
    let grew = peak_rss_kib().saturating_sub(peak_before);
    assert!(grew < 16 << 10, "peak RSS grew by {grew} KiB");
    lt.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        input_idle_timeout: 1,
        ..syslog_config()
    };
    let mut lt = start(dir.path(), config, &["host.a"]).await;
    let open_before = gauge("logtrain_input_connections", "syslog_tcp");
    let mut quiet = TcpStream::connect(lt.at.syslog_tcp.unwrap()).await.unwrap();
    let mut half = TcpStream::connect(lt.at.syslog_tcp.unwrap()).await.unwrap();
    half.write_all(b"<14>1 - host.a app - - - half a li").await.unwrap();
    support::wait_until("two connections open", Duration::from_secs(5), || {
        gauge("logtrain_input_connections", "syslog_tcp") == open_before + 2
    })
    .await;
    assert!(closed_within(&mut quiet, Duration::from_secs(5)).await);
    assert!(closed_within(&mut half, Duration::from_secs(5)).await);
    support::wait_until("connections closed", Duration::from_secs(5), || {
        gauge("logtrain_input_connections", "syslog_tcp") == open_before
    })
    .await;
    // An unfinished line of an idle peer is not delivered.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(support::inputs::read(&lt.out).is_empty());
    lt.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_refused_and_the_others_keep_working() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        input_max_connections: 3,
        ..syslog_config()
    };
    let mut lt = start(dir.path(), config, &["host.a"]).await;
    let addr = lt.at.syslog_tcp.unwrap();
    let before = Counts::of("syslog_tcp");
    let mut kept = Vec::new();
    for i in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("<14>1 - host.a app - - - hello {i}\n").as_bytes())
            .await
            .unwrap();
        lt.records(i + 1).await;
        kept.push(s);
    }
    for _ in 0..2 {
        let mut extra = TcpStream::connect(addr).await.unwrap();
        let _ = extra.write_all(b"<14>1 - host.a app - - - refused\n").await;
        assert!(closed_within(&mut extra, Duration::from_secs(5)).await);
    }
    for (i, s) in kept.iter_mut().enumerate() {
        s.write_all(format!("<14>1 - host.a app - - - again {i}\n").as_bytes())
            .await
            .unwrap();
    }
    let lines = lt.records(6).await;
    let mut msgs: Vec<String> = lines.iter().map(|l| l.msg_str()).collect();
    // Order holds per connection, not across them.
    msgs[3..].sort();
    assert_eq!(msgs, ["hello 0", "hello 1", "hello 2", "again 0", "again 1", "again 2"]);
    let d = Counts::since("syslog_tcp", before);
    assert_eq!((d.records, d.refused), (6, 2));
    lt.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_material_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        syslog_tls: true,
        listen_address: "127.0.0.1".into(),
        http_port: 0,
        syslog_tls_port: 0,
        syslog_tls_cert_pem: Some(dir.path().join("missing.pem").display().to_string()),
        syslog_tls_key_pem: Some("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n".into()),
        ..crate::support::config()
    };
    let app = logtrain::app::App::start(config);
    let e = logtrain::input::start(&app).await.unwrap_err().to_string();
    assert!(e.contains("SYSLOG_TLS_CERT_PEM") && e.contains("missing.pem"), "{e}");
    assert!(!e.contains("nope"), "{e}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting_and_keeps_what_was_read() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let mut lt = start(dir.path(), syslog_config(), &["host.a"]).await;
    let addr = lt.at.syslog_tcp.unwrap();
    let before = Counts::of("syslog_tcp");
    let mut s = TcpStream::connect(addr).await.unwrap();
    for i in 0..100 {
        s.write_all(format!("<14>1 - host.a app - - - before stop {i}\n").as_bytes())
            .await
            .unwrap();
    }
    support::wait_until("all read", Duration::from_secs(5), || {
        Counts::since("syslog_tcp", before).records == 100
    })
    .await;
    lt.stop().await;
    let lines = support::inputs::read(&lt.out);
    assert_eq!(lines.len(), 100);
    assert_eq!(lines[99].msg_str(), "before stop 99");
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

/// `name{drain="…"}` for the file drain writing to `out`.
fn drain_counter(name: &'static str, out: &std::path::Path) -> u64 {
    let spec = logtrain::drain::DrainSpec::parse(&format!("file://{}", out.display())).unwrap();
    logtrain::telemetry::counter(name, &[("drain", &spec.id)]).get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_records_dropped_at_a_full_queue_are_counted_per_input_and_per_drain() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let host = machine_hostname();
    // The drain's folder does not exist yet: it cannot deliver, so its queue fills.
    let later = dir.path().join("later");
    let out = later.join("out.log");
    let config = Config {
        drain_queue_records: 4,
        // The memory queue alone: what it cannot take is refused or dropped.
        drain_buffer: logtrain::config::BufferMode::Memory,
        ..syslog_config()
    };
    let mut lt = start_to(&out, config, &[&host]).await;
    let udp = lt.at.syslog_udp.unwrap().port().to_string();
    let before = Counts::of("syslog_udp");
    let (queued_before, dropped_before) = (
        drain_counter("logtrain_drain_queued_total", &out),
        drain_counter("logtrain_drain_dropped_total", &out),
    );
    let sent = 20;
    for i in 0..sent {
        logger(&[
            "-n",
            "127.0.0.1",
            "-P",
            &udp,
            "-d",
            "--rfc5424",
            "-t",
            "app",
            &format!("msg {i}"),
        ])
        .await;
    }
    support::wait_until("20 datagrams read", Duration::from_secs(10), || {
        Counts::since("syslog_udp", before).records == sent
    })
    .await;
    let d = Counts::since("syslog_udp", before);
    let queued = drain_counter("logtrain_drain_queued_total", &out) - queued_before;
    let dropped = drain_counter("logtrain_drain_dropped_total", &out) - dropped_before;
    assert!(d.dropped > 0, "a queue of 4 took all {sent} records: {d:?}");
    // Every record the input read was queued or dropped, and each drop is
    // counted both for the input and for the drain.
    assert_eq!((d.records, d.dropped, d.unrouted), (sent, dropped, 0));
    assert_eq!(queued + dropped, sent);

    // Once the drain can deliver, the queued records arrive in order, and one
    // L10 line tells the drain how many it missed.
    std::fs::create_dir(&later).unwrap();
    let lines = lt.records(queued as usize + 1).await;
    let (l10, msgs): (Vec<_>, Vec<_>) = lines.iter().partition(|l| l.msgid == "L10");
    assert_eq!(l10.len(), 1, "{lines:#?}");
    assert!(
        l10[0].msg_str().starts_with(&format!(
            "Error L10 (output buffer overflow): {dropped} messages dropped since "
        )),
        "{:?}",
        l10[0]
    );
    let nums: Vec<u64> = msgs
        .iter()
        .map(|l| l.msg_str().strip_prefix("msg ").unwrap().parse().unwrap())
        .collect();
    assert!(nums.windows(2).all(|w| w[0] < w[1]), "{nums:?}");
    assert_eq!(Counts::since("syslog_udp", before).dropped, dropped);
    lt.stop().await;
}
