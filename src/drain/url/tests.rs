//! Tests of drain URL parsing: every scheme and parameter, valid and invalid.

use super::*;

fn ok(s: &str) -> DrainSpec {
    DrainSpec::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn bad(s: &str) -> DrainUrlError {
    DrainSpec::parse(s).expect_err(s)
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
        ("syslog://logs.example.com:5140", DrainKind::SyslogUdp, 5140),
        ("syslog://logs.example.com", DrainKind::SyslogUdp, 514),
        ("syslog+udp://10.0.0.1:514", DrainKind::SyslogUdp, 514),
        ("syslog+tcp://logs.example.com:601", DrainKind::SyslogTcp, 601),
        ("SYSLOG+TCP://Logs.Example.com:601", DrainKind::SyslogTcp, 601),
        ("syslog+tls://logs.example.com", DrainKind::SyslogTls, 6514),
        ("syslog+tcp://[::1]:5514", DrainKind::SyslogTcp, 5514),
    ];
    for (u, kind, port) in cases {
        let s = ok(u);
        assert_eq!(s.kind, kind, "{u}");
        assert_eq!(s.port, port, "{u}");
        assert_eq!(s.framing, Framing::OctetCounting);
        assert!(s.target.is_none());
    }
    assert_eq!(ok("syslog+tcp://[::1]:5514").host, "::1");
    assert_eq!(ok("syslog+tcp://[::1]:5514").id, "syslog+tcp://[::1]:5514");
    assert_eq!(
        ok("syslog+tcp://Logs.Example.com:601").id,
        "syslog+tcp://logs.example.com:601"
    );
}

#[test]
fn http_schemes() {
    let s = ok("https://user:secret@collector.example.com/ingest?token=abc&x=1");
    assert_eq!(s.kind, DrainKind::Http { tls: true });
    assert_eq!(s.port, 443);
    assert_eq!(
        s.auth,
        Auth::Basic {
            user: "user".into(),
            password: "secret".into()
        }
    );
    let t = s.target.unwrap();
    assert_eq!(t.as_str(), "https://collector.example.com/ingest?token=abc&x=1");
    assert_eq!(s.id, "https://collector.example.com:443/ingest");
    assert!(!s.id.contains("secret"));

    let s = ok("http://h:8080/");
    assert_eq!(s.kind, DrainKind::Http { tls: false });
    assert_eq!(s.target.unwrap().as_str(), "http://h:8080/");

    let s = ok("syslog+https://:tok@h/logs?auth=bearer&framing=newline");
    assert_eq!(s.kind, DrainKind::SyslogHttp { tls: true });
    assert_eq!(s.auth, Auth::Bearer { token: "tok".into() });
    assert_eq!(s.framing, Framing::Newline);
    assert_eq!(s.target.unwrap().as_str(), "https://h/logs");
    let s = ok("syslog+http://h:9000/syslog");
    assert_eq!(s.kind, DrainKind::SyslogHttp { tls: false });
    assert_eq!(s.target.unwrap().as_str(), "http://h:9000/syslog");
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
        assert_eq!(s.kind, DrainKind::Elasticsearch { tls }, "{u}");
        let scheme = if tls { "https" } else { "http" };
        assert_eq!(s.target.unwrap().as_str(), format!("{scheme}://h:9200/_bulk"));
    }
    let s = ok("es+http://id:key@h:9200/prefix/?auth=apikey&index=logs-%25Y.%25m.%25d");
    assert_eq!(
        s.auth,
        Auth::ApiKey {
            id: "id".into(),
            key: "key".into()
        }
    );
    assert_eq!(s.index.as_deref(), Some("logs-%Y.%m.%d"));
    assert_eq!(s.target.unwrap().as_str(), "http://h:9200/prefix/_bulk");
    assert_eq!(ok("es+http://h:9200/_bulk").target.unwrap().path(), "/_bulk");
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
    assert_eq!(s.ca.len(), 1);
    assert!(!s.insecure);
    // A raw base64 value whose '+' became a space still decodes.
    let s = ok(&format!("syslog+tls://h:6514?ca={ca}&insecure=true"));
    assert_eq!(s.ca.len(), 1);
    assert!(s.insecure);
    assert!(!ok("syslog+tls://h?insecure=false").insecure);
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
    assert_eq!(ok("syslog+tcp://h:1?framing=newline").framing, Framing::Newline);
    assert_eq!(ok("syslog+tls://h:1?framing=octet").framing, Framing::OctetCounting);
    assert!(bad("syslog+tcp://h:1?framing=json").valid.contains("octet or newline"));
    assert_eq!(ok("syslog+udp://h:1").max_datagram, 2048);
    assert_eq!(ok("syslog+udp://h:1?max_size=1400").max_datagram, 1400);
    assert!(bad("syslog+udp://h:1?max_size=10").valid.contains("480"));
    assert!(bad("syslog+udp://h:1?framing=newline").problem.contains("framing"));
}

#[test]
fn elasticsearch_batch_size_and_linger() {
    let s = ok("es+http://h:9200");
    assert_eq!((s.batch_bytes, s.linger), (None, None));
    let s = ok("es://h:9200?batch_bytes=65536&linger_ms=250");
    assert_eq!(s.batch_bytes, Some(65536));
    assert_eq!(s.linger, Some(Duration::from_millis(250)));
    assert_eq!(
        s.target.unwrap().as_str(),
        "https://h:9200/_bulk",
        "not passed on to Elasticsearch"
    );
    // The bounds are valid; zero linger sends what is queued at once.
    assert_eq!(ok("elasticsearch+http://h?batch_bytes=1024").batch_bytes, Some(1024));
    assert_eq!(ok("es+https://h?batch_bytes=104857600").batch_bytes, Some(100 << 20));
    assert_eq!(ok("elasticsearch://h?linger_ms=0").linger, Some(Duration::ZERO));
    assert_eq!(ok("es+http://h?linger_ms=60000").linger, Some(Duration::from_secs(60)));

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
    assert_eq!(s.batch_bytes, None);
    assert_eq!(s.target.unwrap().as_str(), "https://h/?batch_bytes=4096");
    assert!(bad("es://h?foo=1").valid.contains("batch_bytes, linger_ms"));
}

#[test]
fn errors_name_the_part_and_mask_passwords() {
    let e = bad("ftp://user:hunter2@h/");
    assert!(e.problem.contains("unknown scheme \"ftp\""));
    assert!(e.valid.contains("syslog+tls://"));
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert!(e.to_string().contains("user:***@h"), "{e}");

    let e = bad("not a url at all");
    assert!(e.problem.contains("not a URL"));
    let e = bad("syslog+tcp://u:pw@h:1");
    assert!(e.problem.contains("credentials"));
    assert!(!e.to_string().contains("pw@"));
    assert!(bad("syslog+tcp://h:99999").problem.contains("not a URL"));
    assert!(bad("syslog+tcp://h:0").problem.contains("port 0"));
    assert!(bad("syslog+tcp://h:1/path").problem.contains("path"));
    assert!(bad("syslog+tcp://:1").problem.contains("host") || bad("syslog+tcp://:1").problem.contains("URL"));
    assert!(bad("https://h/?auth=bearer").problem.contains("needs credentials"));
    assert!(
        bad("https://u:p@h/?auth=digest")
            .valid
            .contains("basic, bearer or apikey")
    );
    assert!(bad("es://h?index=").problem.contains("index"));
    assert!(bad("es://h?foo=1").valid.contains("accepts auth, index"));
}

#[test]
fn masking_handles_unparseable_urls() {
    assert_eq!(mask_credentials("es://u:p@ss@h:1/x"), "es://u:***@h:1/x");
    assert_eq!(mask_credentials("https://token@h"), "https://***@h");
    assert_eq!(mask_credentials("syslog+tcp://h:1"), "syslog+tcp://h:1");
    assert_eq!(mask_credentials("garbage"), "garbage");
}

#[test]
fn debug_never_shows_secrets() {
    let s = ok("https://user:topsecret@h/?auth=basic");
    assert!(!format!("{s:?}").contains("topsecret"));
    assert!(!format!("{s}").contains("topsecret"));
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
