use std::collections::HashMap;

use prost::Message;

use super::*;
use crate::input::envoy::proto::envoy::config::core::v3 as core;
use crate::input::envoy::proto::envoy::data::accesslog::v3 as full;
use crate::input::envoy::proto::envoy::service::accesslog::v3::StreamAccessLogsMessage;
use crate::input::envoy::proto::envoy::service::accesslog::v3::stream_access_logs_message::{
    HttpAccessLogEntries, Identifier as FullIdentifier, LogEntries, TcpAccessLogEntries,
};

fn ms(n: i64) -> Option<Duration> {
    Some(Duration {
        seconds: n / 1000,
        nanos: ((n % 1000) * 1_000_000) as i32,
    })
}

fn sock(ip: &str, port: core::socket_address::PortSpecifier) -> Option<core::Address> {
    Some(core::Address {
        address: Some(core::address::Address::SocketAddress(core::SocketAddress {
            address: ip.into(),
            port_specifier: Some(port),
            resolver_name: "ignored".into(),
            ..Default::default()
        })),
    })
}

/// An entry with every field logtrain reads set, and many it ignores.
fn rich_common() -> full::AccessLogCommon {
    full::AccessLogCommon {
        sample_rate: 1.0,
        downstream_remote_address: sock("10.0.0.1", core::socket_address::PortSpecifier::PortValue(40000)),
        downstream_local_address: sock("10.0.0.2", core::socket_address::PortSpecifier::PortValue(1)),
        tls_properties: Some(full::TlsProperties {
            tls_version: full::tls_properties::TlsVersion::TlSv12 as i32,
            tls_sni_hostname: "sni.example".into(),
            tls_cipher_suite: Some(4865),
            local_certificate_properties: Some(full::tls_properties::CertificateProperties {
                subject_alt_name: vec![Default::default(); 100],
                subject: "CN=x".into(),
                issuer: "CN=y".into(),
            }),
            ..Default::default()
        }),
        start_time: Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 7,
        }),
        time_to_last_rx_byte: ms(3),
        time_to_last_upstream_tx_byte: ms(1),
        time_to_last_upstream_rx_byte: ms(1234),
        time_to_last_downstream_tx_byte: ms(1250),
        upstream_remote_address: sock("::1", core::socket_address::PortSpecifier::NamedPort("pg".into())),
        upstream_cluster: "outbound|8080||web.default.svc.cluster.local".into(),
        response_flags: Some(full::ResponseFlags {
            downstream_connection_termination: true,
            no_route_found: true,
            ..Default::default()
        }),
        route_name: "ignored".into(),
        custom_tags: (0..50).map(|i| (format!("k{i}"), "v".into())).collect(),
        duration: ms(3000),
        stream_id: "ignored".into(),
        ..Default::default()
    }
}

fn rich_http() -> full::HttpAccessLogEntry {
    full::HttpAccessLogEntry {
        common_properties: Some(rich_common()),
        protocol_version: full::http_access_log_entry::HttpVersion::Http2 as i32,
        request: Some(full::HttpRequestProperties {
            request_method: core::RequestMethod::Patch as i32,
            scheme: "https".into(),
            authority: "web.example".into(),
            port: Some(443),
            path: "/a?b".into(),
            user_agent: "ignored".into(),
            forwarded_for: "1.2.3.4".into(),
            request_id: "rid".into(),
            original_path: "/orig".into(),
            request_headers_bytes: 11,
            request_body_bytes: 12,
            request_headers: (0..50)
                .map(|i| (format!("h{i}"), "v".into()))
                .collect::<HashMap<_, _>>(),
            ..Default::default()
        }),
        response: Some(full::HttpResponseProperties {
            response_code: Some(418),
            response_headers_bytes: 21,
            response_body_bytes: 22,
            response_code_details: "ignored".into(),
            ..Default::default()
        }),
    }
}

#[test]
fn the_pruned_entries_read_the_same_fields_as_envoys_own() {
    let e = HttpAccessLogEntry::decode(rich_http().encode_to_vec().as_slice()).unwrap();
    let c = e.common_properties.as_ref().unwrap();
    let want = rich_common();
    assert_eq!(c.start_time, want.start_time);
    assert_eq!(c.time_to_last_upstream_tx_byte, ms(1));
    assert_eq!(c.time_to_last_upstream_rx_byte, ms(1234));
    assert_eq!(c.time_to_last_downstream_tx_byte, ms(1250));
    assert_eq!(c.duration, ms(3000));
    assert_eq!(c.upstream_cluster, want.upstream_cluster);
    assert!(c.response_flags.unwrap().downstream_connection_termination);
    let tls = c.tls_properties.as_ref().unwrap();
    assert_eq!(
        (tls.tls_version, tls.tls_sni_hostname.as_str()),
        (full::tls_properties::TlsVersion::TlSv12 as i32, "sni.example")
    );
    let addr = |a: &Option<Address>| {
        let address::Address::SocketAddress(s) = a.as_ref().unwrap().address.as_ref().unwrap();
        (s.address.clone(), s.port_specifier.clone())
    };
    assert_eq!(
        addr(&c.downstream_remote_address),
        ("10.0.0.1".into(), Some(socket_address::PortSpecifier::PortValue(40000)))
    );
    assert_eq!(
        addr(&c.upstream_remote_address),
        (
            "::1".into(),
            Some(socket_address::PortSpecifier::NamedPort("pg".into()))
        )
    );
    assert_eq!(
        e.protocol_version,
        full::http_access_log_entry::HttpVersion::Http2 as i32
    );
    let r = e.request.as_ref().unwrap();
    assert_eq!(r.request_method, core::RequestMethod::Patch as i32);
    assert_eq!(
        [&r.authority, &r.path, &r.forwarded_for, &r.request_id, &r.original_path],
        ["web.example", "/a?b", "1.2.3.4", "rid", "/orig"]
    );
    assert_eq!((r.request_headers_bytes, r.request_body_bytes), (11, 12));
    let resp = e.response.unwrap();
    assert_eq!(
        (
            resp.response_code,
            resp.response_headers_bytes,
            resp.response_body_bytes
        ),
        (Some(418), 21, 22)
    );

    let tcp = full::TcpAccessLogEntry {
        common_properties: Some(rich_common()),
        connection_properties: Some(full::ConnectionProperties {
            received_bytes: 5,
            sent_bytes: 6,
        }),
    };
    let t = TcpAccessLogEntry::decode(tcp.encode_to_vec().as_slice()).unwrap();
    assert_eq!(
        t.connection_properties,
        Some(ConnectionProperties {
            received_bytes: 5,
            sent_bytes: 6
        })
    );
    assert_eq!(t.common_properties.unwrap().upstream_cluster, want.upstream_cluster);
}

#[test]
fn a_walk_hands_over_the_identifier_and_each_entry_in_order() {
    let http = StreamAccessLogsMessage {
        identifier: Some(FullIdentifier {
            node: Some(core::Node {
                id: "sidecar~1".into(),
                cluster: "ignored".into(),
                ..Default::default()
            }),
            log_name: "logs".into(),
        }),
        log_entries: Some(LogEntries::HttpLogs(HttpAccessLogEntries {
            log_entry: vec![rich_http(), full::HttpAccessLogEntry::default(), rich_http()],
        })),
    };
    let mut parts = Vec::new();
    walk(&http.encode_to_vec(), |p| {
        parts.push(match p {
            Part::Identifier(b) => {
                let id = Identifier::decode(b).unwrap();
                format!("id {} {}", id.node.unwrap().id, id.log_name)
            }
            Part::Http(b) => format!("http {}", b.len()),
            Part::Tcp(b) => format!("tcp {}", b.len()),
        });
        ControlFlow::Continue(())
    })
    .unwrap();
    let rich = rich_http().encoded_len();
    assert_eq!(
        parts,
        [
            "id sidecar~1 logs".to_string(),
            format!("http {rich}"),
            "http 0".into(),
            format!("http {rich}")
        ]
    );

    let tcp = StreamAccessLogsMessage {
        identifier: None,
        log_entries: Some(LogEntries::TcpLogs(TcpAccessLogEntries {
            log_entry: vec![Default::default(); 3],
        })),
    };
    let mut n = 0;
    walk(&tcp.encode_to_vec(), |p| {
        assert_eq!(p, Part::Tcp(&[]));
        n += 1;
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(n, 3);
}

#[test]
fn two_million_empty_entries_are_walked_without_building_them() {
    // What an attacker sends: 2 bytes per entry on the wire.
    let n = 2_000_000;
    let mut batch = Vec::with_capacity(2 * n);
    for _ in 0..n {
        batch.extend_from_slice(&[0x0a, 0x00]);
    }
    let mut msg = vec![0x12];
    prost::encoding::encode_varint(batch.len() as u64, &mut msg);
    msg.extend_from_slice(&batch);
    let mut seen = 0;
    walk(&msg, |p| {
        assert!(p.is_empty());
        seen += 1;
        if seen == n / 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!(seen, n / 2, "a walk stops when told");
}

#[test]
fn bad_bytes_are_errors_that_say_decode() {
    for bad in [
        &[0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x34][..],
        &[0x12, 0x05, 0x0a][..],
        &[0x12, 0x02, 0x0a, 0x05][..],
        &[0x0a][..],
    ] {
        let e = walk(bad, |_| ControlFlow::Continue(())).unwrap_err();
        assert!(e.to_string().contains("decode"), "{e}");
    }
    assert!(HttpAccessLogEntry::decode(&[0x0a, 0x03, 0x7a, 0x01][..]).is_err());
}
