//! The binary as a live-tail client: `logtrain tail` opens `/tail` on every
//! node and prints lines as they come; `logtrain routes` merges their
//! `/routes` into one table. A node is an `--endpoint` (plain HTTP/1.1 over
//! TCP) or, without one, every logtrain pod the Kubernetes API lists, reached
//! through the API server's pod proxy. A node that cannot be reached is named
//! on stderr and the others go on. Nothing here touches the routing of the
//! process it runs in (it runs none).

use std::io::Write;
use std::process::ExitCode;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::combinators::UnsyncBoxBody;
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
    /// Without one, every logtrain pod is found through the Kubernetes API
    /// (kubeconfig) and reached through the API server's pod proxy.
    #[arg(long = "endpoint")]
    pub endpoints: Vec<String>,
    /// Bearer token when the servers set `HTTP_TOKEN` (sent to `--endpoint`s only:
    /// through the pod proxy the API server's own credentials apply).
    #[arg(long, env = "LOGTRAIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Namespace of the logtrain pods (default: the kubeconfig context's).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Label selector of the logtrain pods (the chart's labels by default).
    #[arg(long, default_value = "app.kubernetes.io/name=logtrain")]
    pub selector: String,
    /// The pods' HTTP_PORT.
    #[arg(long, default_value_t = 9000)]
    pub port: u16,
}

/// One logtrain to ask.
#[derive(Clone)]
pub enum Target {
    Endpoint(String),
    /// Through `/api/v1/namespaces/NS/pods/NAME:PORT/proxy/…`.
    Pod {
        client: kube::Client,
        namespace: String,
        name: String,
        port: u16,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Endpoint(e) => f.write_str(e),
            Target::Pod { name, .. } => write!(f, "pod/{name}"),
        }
    }
}

/// The nodes to ask: the endpoints, or else the logtrain pods the API lists.
pub async fn targets(nodes: &Nodes) -> Result<Vec<Target>, String> {
    if !nodes.endpoints.is_empty() {
        return Ok(nodes.endpoints.iter().cloned().map(Target::Endpoint).collect());
    }
    use k8s_openapi::api::core::v1::Pod;
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("no --endpoint, and no Kubernetes API to find the pods: {e}"))?;
    let namespace = nodes
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let api: kube::Api<Pod> = kube::Api::namespaced(client.clone(), &namespace);
    let list = api
        .list(&kube::api::ListParams::default().labels(&nodes.selector))
        .await
        .map_err(|e| format!("cannot list the pods of namespace {namespace}: {e}"))?;
    let pods: Vec<Target> = list
        .items
        .into_iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter_map(|p| p.metadata.name)
        .map(|name| Target::Pod {
            client: client.clone(),
            namespace: namespace.clone(),
            name,
            port: nodes.port,
        })
        .collect();
    if pods.is_empty() {
        return Err(format!(
            "no running pod in namespace {namespace} matches {}: pass --namespace, --selector or --endpoint",
            nodes.selector
        ));
    }
    Ok(pods)
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
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("stream broken: {0}")]
    Stream(String),
}

/// A response body, whichever way it came.
type Stream = UnsyncBoxBody<Bytes, ClientError>;

/// GET `path_and_query` on `target`; the response once its status is 200.
pub(super) async fn get(
    target: &Target,
    path_and_query: &str,
    token: Option<&str>,
) -> Result<Response<Stream>, ClientError> {
    let resp = match target {
        Target::Endpoint(e) => direct(e, path_and_query, token)
            .await?
            .map(|b| b.map_err(|e| ClientError::Stream(e.to_string())).boxed_unsync()),
        Target::Pod {
            client,
            namespace,
            name,
            port,
        } => {
            let uri = format!("/api/v1/namespaces/{namespace}/pods/{name}:{port}/proxy{path_and_query}");
            let req = Request::get(uri).body(Vec::new().into()).expect("valid request");
            client
                .send(req)
                .await?
                .map(|b| b.map_err(|e| ClientError::Stream(e.to_string())).boxed_unsync())
        }
    };
    ok_or_status(resp).await
}

/// GET on an `http://HOST:PORT` endpoint, whatever the status.
async fn direct(endpoint: &str, path_and_query: &str, token: Option<&str>) -> Result<Response<Incoming>, ClientError> {
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
    ok_or_status(resp).await
}

/// The answer when it is 200; else its status and the start of its body.
async fn ok_or_status<B>(resp: Response<B>) -> Result<Response<B>, ClientError>
where
    B: hyper::body::Body,
{
    if resp.status() == StatusCode::OK {
        return Ok(resp);
    }
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&body[..body.len().min(512)]).trim().to_string();
    Err(ClientError::Status(status, body))
}

/// Streams one node's lines to stdout, whole lines at a time.
async fn follow(
    target: Target,
    query: String,
    token: Option<String>,
    prefix: Option<String>,
) -> Result<(), ClientError> {
    let mut body = get(&target, &query, token.as_deref()).await?.into_body();
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
    let targets = match targets(&args.nodes).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    for target in &targets {
        let prefix = args.node_prefix.then(|| format!("[{target}] "));
        let (target, q, t) = (target.clone(), query.clone(), token_for(target, &args.nodes));
        tasks.spawn(async move {
            let name = target.to_string();
            (name, follow(target, q, t, prefix).await)
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
    if failed == targets.len() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The token goes to endpoints only: through the pod proxy the API server
/// authenticates the client with its own credentials.
pub(super) fn token_for(target: &Target, nodes: &Nodes) -> Option<String> {
    match target {
        Target::Endpoint(_) => nodes.token.clone(),
        Target::Pod { .. } => None,
    }
}

/// `logtrain routes`: every endpoint's `/routes`, merged into one table.
pub async fn routes(args: RoutesArgs) -> ExitCode {
    let targets = match targets(&args.nodes).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut rows: Vec<[String; 5]> = Vec::new();
    let mut failed = 0;
    for e in &targets {
        let answer = async {
            let token = token_for(e, &args.nodes);
            let body = get(e, "/routes", token.as_deref()).await?.into_body();
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
        rows.extend(table_rows(&e.to_string(), &json, args.hostname.as_deref()));
    }
    rows.sort();
    let head = ["HOSTNAME", "DRAIN", "NODE", "ORIGINS", "STATE"].map(String::from);
    print!("{}", render(&head, &rows));
    if failed == targets.len() {
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
