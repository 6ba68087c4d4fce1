//! The binary as a live-tail client: `logtrain tail` opens `/tail` on every
//! endpoint and prints lines as they come; `logtrain routes` merges their
//! `/routes` into one table. A node that cannot be reached is named on stderr
//! and the others go on. Plain HTTP/1.1 over TCP; nothing here touches the
//! routing of the process it runs in (it runs none).

use std::io::Write;
use std::process::ExitCode;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HOST};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// `logtrain tail`.
#[derive(clap::Args, Debug)]
pub struct TailArgs {
    /// The hostname whose records to show (as routes name it, e.g. `web.default`).
    pub hostname: String,
    /// Only records at this severity or more severe (emerg … debug).
    #[arg(long)]
    pub severity: Option<String>,
    /// Only records whose message matches this regular expression.
    #[arg(long = "match")]
    pub pattern: Option<String>,
    #[command(flatten)]
    pub nodes: Nodes,
    /// Start each line with the endpoint it came from.
    #[arg(long)]
    pub node_prefix: bool,
}

/// `logtrain routes`.
#[derive(clap::Args, Debug)]
pub struct RoutesArgs {
    /// Only this hostname's routes.
    pub hostname: Option<String>,
    #[command(flatten)]
    pub nodes: Nodes,
}

/// Which logtrain processes to ask.
#[derive(clap::Args, Debug)]
pub struct Nodes {
    /// A logtrain's HTTP server (`http://HOST:PORT`); repeat for every node.
    #[arg(long = "endpoint", required = true)]
    pub endpoints: Vec<String>,
    /// Bearer token when the servers set `HTTP_TOKEN`.
    #[arg(long, env = "LOGTRAIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Why one endpoint could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("not an http://HOST:PORT endpoint")]
    Endpoint,
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("answered {0}: {1}")]
    Status(StatusCode, String),
}

/// GET `path_and_query` on `endpoint`; the response once its status is 200.
async fn get(endpoint: &str, path_and_query: &str, token: Option<&str>) -> Result<Response<Incoming>, ClientError> {
    let url = url::Url::parse(endpoint).map_err(|_| ClientError::Endpoint)?;
    if url.scheme() != "http" {
        return Err(ClientError::Endpoint);
    }
    let host = url.host_str().ok_or(ClientError::Endpoint)?;
    let port = url.port_or_known_default().ok_or(ClientError::Endpoint)?;
    let tcp = TcpStream::connect((host, port)).await.map_err(ClientError::Connect)?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let path = format!("{}{path_and_query}", url.path().trim_end_matches('/'));
    let mut req = Request::get(path).header(HOST, format!("{host}:{port}"));
    if let Some(t) = token {
        req = req.header(AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = send
        .send_request(req.body(Empty::<Bytes>::new()).expect("valid request"))
        .await?;
    if resp.status() != StatusCode::OK {
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body = String::from_utf8_lossy(&body[..body.len().min(512)]).trim().to_string();
        return Err(ClientError::Status(status, body));
    }
    Ok(resp)
}

/// Streams one endpoint's lines to stdout, whole lines at a time.
async fn follow(
    endpoint: String,
    query: String,
    token: Option<String>,
    prefix: Option<String>,
) -> Result<(), ClientError> {
    let mut body = get(&endpoint, &query, token.as_deref()).await?.into_body();
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
            continue;
        };
        let lines = buf.split_to(end + 1);
        let mut out = std::io::stdout().lock();
        for line in lines.split_inclusive(|&b| b == b'\n') {
            if let Some(p) = &prefix {
                let _ = out.write_all(p.as_bytes());
            }
            let _ = out.write_all(line);
        }
        let _ = out.flush();
    }
    if buf.has_remaining() {
        let _ = std::io::stdout().lock().write_all(&buf);
    }
    Ok(())
}

/// `logtrain tail`: until Ctrl-C, or until every stream ended.
pub async fn tail(args: TailArgs) -> ExitCode {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("hostname", &args.hostname);
    if let Some(s) = &args.severity {
        q.append_pair("severity", s);
    }
    if let Some(m) = &args.pattern {
        q.append_pair("match", m);
    }
    let query = format!("/tail?{}", q.finish());
    let mut tasks = tokio::task::JoinSet::new();
    for e in &args.nodes.endpoints {
        let prefix = args.node_prefix.then(|| format!("[{e}] "));
        let (e, q, t) = (e.clone(), query.clone(), args.nodes.token.clone());
        tasks.spawn(async move {
            let r = follow(e.clone(), q, t, prefix).await;
            (e, r)
        });
    }
    let mut failed = 0;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
            done = tasks.join_next() => match done {
                None => break,
                Some(Ok((e, Ok(())))) => eprintln!("{e}: stream ended"),
                Some(Ok((e, Err(err)))) => {
                    failed += 1;
                    eprintln!("{e}: {err}");
                }
                Some(Err(_)) => failed += 1,
            },
        }
    }
    if failed == args.nodes.endpoints.len() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `logtrain routes`: every endpoint's `/routes`, merged into one table.
pub async fn routes(args: RoutesArgs) -> ExitCode {
    let mut rows: Vec<[String; 5]> = Vec::new();
    let mut failed = 0;
    for e in &args.nodes.endpoints {
        let answer = async {
            let body = get(e, "/routes", args.nodes.token.as_deref()).await?.into_body();
            Ok::<_, ClientError>(body.collect().await?.to_bytes())
        };
        let json: serde_json::Value = match answer.await {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
            Err(err) => {
                failed += 1;
                eprintln!("{e}: {err}");
                continue;
            }
        };
        rows.extend(table_rows(e, &json, args.hostname.as_deref()));
    }
    rows.sort();
    let head = ["HOSTNAME", "DRAIN", "NODE", "ORIGINS", "STATE"].map(String::from);
    print!("{}", render(&head, &rows));
    if failed == args.nodes.endpoints.len() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// One row per (hostname, drain) of one node's `/routes` answer.
pub fn table_rows(node: &str, json: &serde_json::Value, only: Option<&str>) -> Vec<[String; 5]> {
    let empty = Vec::new();
    let mut rows = Vec::new();
    for r in json["routes"].as_array().unwrap_or(&empty) {
        let host = r["hostname"].as_str().unwrap_or("").to_string();
        if only.is_some_and(|o| o != host) {
            continue;
        }
        let origins: Vec<&str> = r["origins"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .filter_map(|o| o.as_str())
            .collect();
        for d in r["drains"].as_array().unwrap_or(&empty) {
            let id = d.as_str().unwrap_or("").to_string();
            let s = &json["drains"][&id];
            let state = format!(
                "{} queued={} sent={} dropped={} errors={}",
                if s["connected"].as_bool() == Some(true) {
                    "connected"
                } else {
                    "not-connected"
                },
                s["queued"],
                s["sent"],
                s["dropped"],
                s["errors"],
            );
            rows.push([host.clone(), id, node.to_string(), origins.join(","), state]);
        }
    }
    rows
}

/// Columns padded to their widest cell.
fn render(head: &[String; 5], rows: &[[String; 5]]) -> String {
    let mut width = head.clone().map(|h| h.len());
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(head).chain(rows) {
        let cells: Vec<String> = r.iter().zip(&width).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
