use super::*;
use crate::input::envoy::wire::{ResponseFlags, SocketAddress, TlsProperties};

const CLUSTER: &str = "outbound|8080||web.default.svc.cluster.local";
const PLAIN: Naming = Naming { akkeris: false };
const NOW: Timestamp = Timestamp(42);

fn ms(n: i64) -> Option<Duration> {
    Some(Duration {
        seconds: n / 1000,
        nanos: ((n % 1000) * 1_000_000) as i32,
    })
}

fn common() -> AccessLogCommon {
    AccessLogCommon {
        upstream_cluster: CLUSTER.into(),
        start_time: Some(PbTimestamp {
            seconds: 1_700_000_000,
            nanos: 5_000,
        }),
        time_to_last_upstream_tx_byte: ms(1),
        time_to_last_upstream_rx_byte: ms(1234),
        time_to_last_downstream_tx_byte: ms(1250),
        ..Default::default()
    }
}

fn http_entry() -> HttpAccessLogEntry {
    HttpAccessLogEntry {
        common_properties: Some(common()),
        protocol_version: HttpVersion::Http11 as i32,
        request: Some(HttpRequestProperties {
            request_method: RequestMethod::Post as i32,
            authority: "web.example".into(),
            path: "/a?b=c".into(),
            forwarded_for: "10.0.0.1".into(),
            request_id: "rid-1".into(),
            request_headers_bytes: 100,
            request_body_bytes: 20,
            ..Default::default()
        }),
        response: Some(HttpResponseProperties {
            response_code: Some(201),
            response_headers_bytes: 50,
            response_body_bytes: 7,
        }),
    }
}

fn text(c: &Converted) -> &str {
    std::str::from_utf8(&c.record.as_ref().unwrap().message).unwrap()
}

#[test]
fn hostnames_follow_logtrain() {
    assert_eq!(PLAIN.hostname(CLUSTER).as_deref(), Some("web.default"));
    let ak = Naming { akkeris: true };
    assert_eq!(ak.hostname(CLUSTER).as_deref(), Some("web-default"));
    assert_eq!(ak.tag(), "akkeris/router");
    assert_eq!(PLAIN.tag(), "envoy");
    assert_eq!(
        PLAIN.hostname("inbound|80|http|api.prod.svc.cluster.local").as_deref(),
        Some("api.prod")
    );
    for none in [
        "",
        "BlackHoleCluster",
        "PassthroughCluster",
        "inbound|8080||",
        "outbound|80||web",
        "outbound|80||.ns",
        "outbound|80||web.",
    ] {
        assert_eq!(PLAIN.hostname(none), None, "{none}");
    }
}

#[test]
fn http_layout_matches_logtrain() {
    let c = http(PLAIN, &http_entry(), NOW);
    assert!(!c.incomplete);
    assert_eq!(
        text(&c),
        "bytes=177 request_size=120 response_size=57 method=POST request_id=rid-1 fwd=10.0.0.1 \
         authority=web.example protocol=http11 status=201 connect=1.00ms service=1234.00ms \
         total=1250.00ms path=/a?b=c"
    );
    let r = c.record.unwrap();
    assert_eq!(&r.hostname[..], b"web.default");
    assert_eq!(&r.app_name[..], b"envoy");
    assert_eq!(r.timestamp, Some(Timestamp(1_700_000_000_000_005_000)));
    assert_eq!(r.origin.input, InputKind::Envoy);
}

#[test]
fn tls_adds_origin_and_version() {
    let mut e = http_entry();
    let cp = e.common_properties.as_mut().unwrap();
    cp.tls_properties = Some(TlsProperties {
        tls_version: TlsVersion::TlSv13 as i32,
        tls_sni_hostname: "web.example".into(),
    });
    e.request.as_mut().unwrap().original_path = "/orig".into();
    let c = http(PLAIN, &e, NOW);
    let t = text(&c);
    assert!(
        t.contains(" authority=web.example origin=https://web.example/orig protocol=http11 tls=TLSv1_3 status=201 "),
        "{t}"
    );
}

#[test]
fn downstream_termination_without_code_is_499() {
    let mut e = http_entry();
    e.response.as_mut().unwrap().response_code = None;
    e.common_properties.as_mut().unwrap().response_flags = Some(ResponseFlags {
        downstream_connection_termination: true,
    });
    assert!(text(&http(PLAIN, &e, NOW)).contains(" status=499 "));
}

#[test]
fn missing_parts_read_as_defaults_and_mark_incomplete() {
    let e = HttpAccessLogEntry {
        common_properties: Some(AccessLogCommon {
            upstream_cluster: CLUSTER.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let c = http(PLAIN, &e, NOW);
    assert!(c.incomplete);
    assert_eq!(
        text(&c),
        "bytes=0 request_size=0 response_size=0 method=METHOD_UNSPECIFIED request_id= fwd= authority= \
         protocol=protocol_unspecified status=0 connect=0.00ms service=0.00ms total=0.00ms path="
    );
    assert_eq!(c.record.unwrap().timestamp, Some(NOW));

    let c = http(PLAIN, &HttpAccessLogEntry::default(), NOW);
    assert!(c.incomplete && c.record.is_none());
    let c = tcp(PLAIN, &TcpAccessLogEntry::default(), NOW);
    assert!(c.incomplete && c.record.is_none());
}

#[test]
fn unknown_enum_values_print_as_numbers() {
    let mut e = http_entry();
    e.protocol_version = 99;
    e.request.as_mut().unwrap().request_method = 77;
    let c = http(PLAIN, &e, NOW);
    assert!(text(&c).contains(" method=77 "), "{}", text(&c));
    assert!(text(&c).contains(" protocol=99 "), "{}", text(&c));
}

#[test]
fn tcp_layout() {
    let sock = |ip: &str, port: u32| {
        Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: ip.into(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            })),
        })
    };
    let mut cp = common();
    cp.upstream_cluster = "outbound|5432||db.data.svc.cluster.local".into();
    cp.downstream_remote_address = sock("127.0.0.1", 40000);
    cp.upstream_remote_address = sock("::1", 5432);
    cp.duration = ms(3000);
    let e = TcpAccessLogEntry {
        common_properties: Some(cp),
        connection_properties: Some(ConnectionProperties {
            received_bytes: 11,
            sent_bytes: 22,
        }),
    };
    let c = tcp(Naming { akkeris: true }, &e, NOW);
    assert!(!c.incomplete);
    assert_eq!(
        text(&c),
        "bytes=33 received=11 sent=22 fwd=127.0.0.1 upstream=[::1]:5432 protocol=tcp \
         connect=1.00ms service=1234.00ms total=3000.00ms"
    );
    let r = c.record.unwrap();
    assert_eq!(&r.hostname[..], b"db-data");
    assert_eq!(&r.app_name[..], b"akkeris/router");
}
