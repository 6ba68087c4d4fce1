//! `envoy-load`: an Envoy stand-in speaking the real access-log gRPC API
//! (`envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs`, HTTP/2,
//! client streaming) with the message types logtrain's own build generates
//! from `proto/`. Each stream is one connection, as each Envoy worker keeps
//! its own; the first message of a stream carries the identifier, as Envoy's
//! does. Entries are complete HTTP entries (common properties with an Istio
//! upstream cluster naming `bench.default`, request, response, timings), so
//! every entry becomes one record routed to `bench.default`.
//!
//! Messages are built once (16 distinct ones of `--batch` entries, cycled) and
//! sent as fast as HTTP/2 flow control lets them; prints what was sent, the
//! seconds until every call was answered, and each call's `grpc-status`.

use std::convert::Infallible;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::Request;
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use logtrain::input::envoy::proto::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use logtrain::input::envoy::proto::envoy::data::accesslog::v3::{
    AccessLogCommon, HttpAccessLogEntry, HttpRequestProperties, HttpResponseProperties,
};
use logtrain::input::envoy::proto::envoy::service::accesslog::v3::StreamAccessLogsMessage;
use logtrain::input::envoy::proto::envoy::service::accesslog::v3::stream_access_logs_message::{
    HttpAccessLogEntries, Identifier, LogEntries,
};
use prost::Message;

use crate::{Args, Rng};

const PATH: &str = "/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs";
/// Distinct messages cycled through.
const DISTINCT: usize = 16;

fn socket(ip: &str, port: u32) -> Option<Address> {
    Some(Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.into(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    })
}

fn duration(micros: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: micros / 1_000_000,
        nanos: (micros % 1_000_000 * 1000) as i32,
    })
}

/// One complete HTTP entry, about 300 bytes on the wire.
fn entry(rng: &mut Rng, seq: u64) -> HttpAccessLogEntry {
    HttpAccessLogEntry {
        common_properties: Some(AccessLogCommon {
            upstream_cluster: "outbound|8080||bench.default.svc.cluster.local".into(),
            start_time: Some(prost_types::Timestamp {
                seconds: 1_795_000_000 + (seq / 1000) as i64,
                nanos: (seq % 1000 * 1_000_000) as i32,
            }),
            downstream_remote_address: socket(&format!("10.1.{}.{}", rng.below(256), rng.below(256)), 40000),
            upstream_remote_address: socket("10.2.0.17", 8080),
            time_to_last_upstream_tx_byte: duration(200 + rng.below(800) as i64),
            time_to_last_upstream_rx_byte: duration(1000 + rng.below(20_000) as i64),
            time_to_last_downstream_tx_byte: duration(1500 + rng.below(20_000) as i64),
            ..Default::default()
        }),
        protocol_version: 2, // HTTP/1.1
        request: Some(HttpRequestProperties {
            request_method: 1 + rng.below(4) as i32,
            scheme: "http".into(),
            authority: "bench.default.svc.cluster.local:8080".into(),
            path: format!("/api/v1/items/{}?page={}", rng.below(100_000), rng.below(50)),
            user_agent: "bench-client/1.0".into(),
            forwarded_for: format!("192.168.{}.{}", rng.below(256), rng.below(256)),
            request_id: format!("{:016x}-{:08x}", rng.next_u64(), seq),
            request_headers_bytes: 300 + rng.below(200),
            request_body_bytes: rng.below(2000),
            ..Default::default()
        }),
        response: Some(HttpResponseProperties {
            response_code: Some([200, 200, 200, 201, 204, 304, 404, 500][rng.below(8) as usize]),
            response_headers_bytes: 150 + rng.below(100),
            response_body_bytes: rng.below(20_000),
            ..Default::default()
        }),
    }
}

/// A gRPC frame (uncompressed flag, length, message) of `batch` entries.
fn message(rng: &mut Rng, first_seq: u64, batch: usize, identifier: bool) -> Bytes {
    let msg = StreamAccessLogsMessage {
        identifier: identifier.then(|| Identifier {
            node: None,
            log_name: "bench".into(),
        }),
        log_entries: Some(LogEntries::HttpLogs(HttpAccessLogEntries {
            log_entry: (0..batch as u64).map(|i| entry(rng, first_seq + i)).collect(),
        })),
    };
    let body = msg.encode_to_vec();
    let mut f = Vec::with_capacity(body.len() + 5);
    f.push(0);
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(&body);
    Bytes::from(f)
}

/// One stream of `messages` messages; returns its `grpc-status` (or an error).
async fn call(addr: String, first: Bytes, all: Vec<Bytes>, messages: usize) -> Result<String, String> {
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(1 << 20)
        .initial_connection_window_size(2 << 20)
        .handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    tokio::spawn(conn);
    let frames = std::iter::once(first)
        .chain((1..messages).map(move |i| all[i % all.len()].clone()))
        .map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let body = StreamBody::new(futures_util::stream::iter(frames));
    let req = Request::post(format!("http://{addr}{PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| format!("{addr}: {e}"))?;
    let mut headers = resp.headers().clone();
    let collected = resp.into_body().collect().await.map_err(|e| format!("{addr}: {e}"))?;
    if let Some(t) = collected.trailers() {
        headers.extend(t.clone());
    }
    Ok(headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_string())
}

pub fn run(a: &Args) -> Result<(), String> {
    let addr = a.str("addr", "127.0.0.1:9001");
    let count = a.num("count", 1_000_000)?;
    let batch = a.num("batch", 100)?.clamp(1, 10_000) as usize;
    let streams = a.num("streams", 2)?.max(1) as usize;
    let mut rng = Rng::new(0xE4);
    let all: Vec<Bytes> = (0..DISTINCT)
        .map(|i| message(&mut rng, (i * batch) as u64, batch, false))
        .collect();
    let first = message(&mut rng, 0, batch, true);
    let per_stream = (count as usize).div_ceil(batch * streams);
    let sent = per_stream * batch * streams;
    let entry_bytes = all.iter().map(Bytes::len).sum::<usize>() / all.len() / batch;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let began = Instant::now();
    let statuses = rt.block_on(async {
        let calls: Vec<_> = (0..streams)
            .map(|_| tokio::spawn(call(addr.clone(), first.clone(), all.clone(), per_stream)))
            .collect();
        let mut out = Vec::new();
        for c in calls {
            out.push(c.await.map_err(|e| e.to_string())??);
        }
        Ok::<_, String>(out)
    })?;
    let secs = began.elapsed().as_secs_f64();
    println!(
        "{{\"sent\":{sent},\"streams\":{streams},\"batch\":{batch},\"entry_bytes\":{entry_bytes},\"seconds\":{secs:.3},\"entries_per_s\":{:.0},\"grpc_status\":\"{}\"}}",
        sent as f64 / secs,
        statuses.join(",")
    );
    Ok(())
}
