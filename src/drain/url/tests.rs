//! Tests of drain URL parsing: every scheme and parameter, valid and invalid.

use std::time::Duration;

use base64::Engine;

use super::*;
use crate::encode::framing::Framing;

mod processing;
mod secrets;

fn ok(s: &str) -> DrainSpec {
    DrainSpec::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn bad(s: &str) -> DrainUrlError {
    DrainSpec::parse(s).expect_err(s)
}

/// The readable part of a network drain's id, before its digest.
fn named(id: &str) -> &str {
    let (name, digest) = id.split_once('#').unwrap_or_else(|| panic!("{id}: no digest"));
    assert_eq!(digest.len(), 8, "{id}");
    assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    name
}

fn http(s: &DrainSpec) -> &HttpOptions {
    s.kind.http().unwrap_or_else(|| panic!("{s:?}: not an HTTP drain"))
}

fn es(s: &DrainSpec) -> &EsOptions {
    match &s.kind {
        DrainKind::Elasticsearch(es) => es,
        k => panic!("{k:?}: not Elasticsearch"),
    }
}

fn tls(s: &DrainSpec) -> &TlsOptions {
    s.kind.tls_options().unwrap_or_else(|| panic!("{s:?}: no TLS"))
}

fn framing(s: &DrainSpec) -> Framing {
    match &s.kind {
        DrainKind::SyslogStream { framing, .. } | DrainKind::SyslogHttp { framing, .. } => *framing,
        k => panic!("{k:?}: no framing"),
    }
}

fn max_datagram(s: &DrainSpec) -> usize {
    match s.kind {
        DrainKind::SyslogUdp { max_datagram } => max_datagram,
        ref k => panic!("{k:?}: not UDP"),
    }
}

fn test_ca_b64() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    base64::engine::general_purpose::STANDARD.encode(cert.pem())
}

#[test]
fn syslog_schemes_and_default_ports() {
    let cases = [
        ("syslog://logs.example.com:5140", "syslog_udp", 5140),
        ("syslog://logs.example.com", "syslog_udp", 514),
        ("syslog+udp://10.0.0.1:514", "syslog_udp", 514),
        ("syslog+tcp://logs.example.com:601", "syslog_tcp", 601),
        ("SYSLOG+TCP://Logs.Example.com:601", "syslog_tcp", 601),
        ("syslog+tls://logs.example.com", "syslog_tls", 6514),
        ("syslog+tcp://[::1]:5514", "syslog_tcp", 5514),
    ];
    for (u, kind, port) in cases {
        let s = ok(u);
        assert_eq!(s.kind.as_str(), kind, "{u}");
        assert_eq!(s.port, port, "{u}");
        if kind != "syslog_udp" {
            assert_eq!(framing(&s), Framing::OctetCounting);
        }
        assert!(s.kind.http().is_none());
    }
    assert_eq!(ok("syslog+tcp://[::1]:5514").host, "::1");
    assert_eq!(named(&ok("syslog+tcp://[::1]:5514").id), "syslog+tcp://[::1]:5514");
    assert_eq!(
        ok("syslog+tcp://Logs.Example.com:601").id,
        ok("syslog+tcp://logs.example.com:601").id,
    );
    assert_eq!(
        named(&ok("syslog+tls://logs.example.com").id),
        "syslog+tls://logs.example.com:6514"
    );
}

#[test]
fn http_schemes() {
    let s = ok("https://user:secret@collector.example.com/ingest?token=abc&x=1");
    assert!(matches!(&s.kind, DrainKind::Http(h) if h.tls.is_some()));
    assert_eq!(s.port, 443);
    assert_eq!(
        http(&s).auth,
        Auth::Basic {
            user: "user".into(),
            password: "secret".into()
        }
    );
    let t = http(&s).target.clone();
    assert_eq!(t.as_str(), "https://collector.example.com/ingest?token=abc&x=1");
    assert_eq!(named(&s.id), "https://collector.example.com:443");

    let s = ok("http://h:8080/");
    assert!(matches!(&s.kind, DrainKind::Http(h) if h.tls.is_none()));
    assert_eq!(http(&s).target.clone().as_str(), "http://h:8080/");

    let s = ok("syslog+https://:tok@h/logs?auth=bearer&framing=newline");
    assert!(matches!(&s.kind, DrainKind::SyslogHttp { http, .. } if http.tls.is_some()));
    assert_eq!(http(&s).auth, Auth::Bearer { token: "tok".into() });
    assert_eq!(framing(&s), Framing::Newline);
    assert_eq!(http(&s).target.clone().as_str(), "https://h/logs");
    let s = ok("syslog+http://h:9000/syslog");
    assert!(matches!(&s.kind, DrainKind::SyslogHttp { http, .. } if http.tls.is_none()));
    assert_eq!(http(&s).target.clone().as_str(), "http://h:9000/syslog");
}

#[test]
fn elasticsearch_schemes() {
    for (u, tls) in [
        ("es://h:9200", true),
        ("elasticsearch://h:9200", true),
        ("es+https://h:9200", true),
        ("elasticsearch+https://h:9200", true),
        ("es+http://h:9200", false),
        ("elasticsearch+http://h:9200", false),
    ] {
        let s = ok(u);
        assert_eq!(es(&s).http.tls.is_some(), tls, "{u}");
        let scheme = if tls { "https" } else { "http" };
        assert_eq!(http(&s).target.clone().as_str(), format!("{scheme}://h:9200/_bulk"));
    }
    let s = ok("es+http://id:key@h:9200/prefix/?auth=apikey&index=logs-%25Y.%25m.%25d");
    assert_eq!(
        http(&s).auth,
        Auth::ApiKey {
            id: "id".into(),
            key: "key".into()
        }
    );
    assert_eq!(es(&s).index.as_deref(), Some("logs-%Y.%m.%d"));
    assert_eq!(http(&s).target.clone().as_str(), "http://h:9200/prefix/_bulk");
    assert_eq!(http(&ok("es+http://h:9200/_bulk")).target.path(), "/_bulk");
    assert_eq!(
        Auth::ApiKey {
            id: "id".into(),
            key: "key".into()
        }
        .header()
        .unwrap(),
        "ApiKey aWQ6a2V5"
    );
}

#[test]
fn local_drains() {
    let s = ok("file:///var/tmp/web.log");
    assert_eq!(
        s.kind,
        DrainKind::File {
            path: "/var/tmp/web.log".into()
        }
    );
    assert_eq!(s.id, "file:///var/tmp/web.log");
    assert_eq!(ok("stdout://").kind, DrainKind::Stdout);
    assert!(bad("file://remote/var/log/x").problem.contains("host \"remote\""));
    assert!(bad("file:///var/tmp/").problem.contains("directory"));
    assert!(
        bad("file:///var/tmp/x.log?mode=1")
            .problem
            .contains("unknown parameter \"mode\"")
    );
    assert!(bad("stdout://host").problem.contains("no host"));
}

#[test]
fn tls_parameters() {
    let ca = test_ca_b64();
    let s = ok(&format!(
        "syslog+tls://h:6514?ca={}",
        percent_encoding::utf8_percent_encode(&ca, percent_encoding::NON_ALPHANUMERIC)
    ));
    assert_eq!(tls(&s).ca.len(), 1);
    assert!(!tls(&s).insecure);
    // A raw base64 value whose '+' became a space still decodes.
    let s = ok(&format!("syslog+tls://h:6514?ca={ca}&insecure=true"));
    assert_eq!(tls(&s).ca.len(), 1);
    assert!(tls(&s).insecure);
    assert!(!tls(&ok("syslog+tls://h?insecure=false")).insecure);
    assert!(bad("syslog+tls://h?insecure=maybe").valid.contains("true or false"));
    assert!(bad("syslog+tls://h?ca=%%%").problem.contains("ca"));
    let not_pem = base64::engine::general_purpose::STANDARD.encode("hello");
    assert!(
        bad(&format!("syslog+tls://h?ca={not_pem}"))
            .problem
            .contains("no PEM certificate")
    );
    // TLS parameters on a plain scheme are refused, not ignored.
    assert!(bad("syslog+tcp://h:1?insecure=true").problem.contains("insecure"));
    assert!(bad("http://h:1?insecure=true").problem.contains("insecure"));
}

#[test]
fn framing_and_datagram_size() {
    assert_eq!(framing(&ok("syslog+tcp://h:1?framing=newline")), Framing::Newline);
    assert_eq!(framing(&ok("syslog+tls://h:1?framing=octet")), Framing::OctetCounting);
    assert!(bad("syslog+tcp://h:1?framing=json").valid.contains("octet or newline"));
    assert_eq!(max_datagram(&ok("syslog+udp://h:1")), 2048);
    assert_eq!(max_datagram(&ok("syslog+udp://h:1?max_size=1400")), 1400);
    assert!(bad("syslog+udp://h:1?max_size=10").valid.contains("480"));
    assert!(bad("syslog+udp://h:1?framing=newline").problem.contains("framing"));
}

#[test]
fn elasticsearch_batch_size_and_linger() {
    let s = ok("es+http://h:9200");
    assert_eq!((es(&s).batch_bytes, es(&s).linger), (None, None));
    let s = ok("es://h:9200?batch_bytes=65536&linger_ms=250");
    assert_eq!(es(&s).batch_bytes, Some(65536));
    assert_eq!(es(&s).linger, Some(Duration::from_millis(250)));
    assert_eq!(
        http(&s).target.clone().as_str(),
        "https://h:9200/_bulk",
        "not passed on to Elasticsearch"
    );
    // The bounds are valid; zero linger sends what is queued at once.
    assert_eq!(
        es(&ok("elasticsearch+http://h?batch_bytes=1024")).batch_bytes,
        Some(1024)
    );
    assert_eq!(
        es(&ok("es+https://h?batch_bytes=104857600")).batch_bytes,
        Some(100 << 20)
    );
    assert_eq!(es(&ok("elasticsearch://h?linger_ms=0")).linger, Some(Duration::ZERO));
    assert_eq!(
        es(&ok("es+http://h?linger_ms=60000")).linger,
        Some(Duration::from_secs(60))
    );

    for v in ["1023", "104857601", "-1", "5MiB", ""] {
        let e = bad(&format!("es+http://h?batch_bytes={v}"));
        assert_eq!(e.problem, format!("parameter batch_bytes=\"{v}\""));
        assert!(e.valid.contains("from 1024 to 104857600"), "{e}");
    }
    for v in ["60001", "-5", "1s", "0.5"] {
        let e = bad(&format!("es://h?linger_ms={v}"));
        assert_eq!(e.problem, format!("parameter linger_ms=\"{v}\""));
        assert!(e.valid.contains("milliseconds from 0 to 60000"), "{e}");
    }
    // Only Elasticsearch drains take them; http(s) passes them on to the receiver.
    for u in ["syslog+http://h/?linger_ms=5", "syslog+tcp://h:1?batch_bytes=4096"] {
        assert!(bad(u).problem.contains("unknown parameter"), "{u}");
    }
    let s = ok("https://h/?batch_bytes=4096");
    assert!(matches!(s.kind, DrainKind::Http(_)));
    assert_eq!(http(&s).target.clone().as_str(), "https://h/?batch_bytes=4096");
    assert!(bad("es://h?foo=1").valid.contains("batch_bytes, linger_ms"));
}

#[test]
fn the_scheme_list_is_what_the_parser_accepts_and_the_errors_name() {
    for s in SCHEMES {
        let problem = match DrainSpec::parse(&format!("{s}://")) {
            Ok(_) => String::new(),
            Err(e) => e.problem,
        };
        assert!(!problem.starts_with("unknown scheme"), "{s}: {problem}");
        assert!(
            VALID_SCHEMES.contains(&format!("{s}://")),
            "{s} missing from VALID_SCHEMES"
        );
    }
    let named = VALID_SCHEMES.matches("://").count();
    assert_eq!(named, SCHEMES.len(), "VALID_SCHEMES names a scheme SCHEMES lacks");
    assert!(bad("gopher://x").problem.starts_with("unknown scheme"));
}
