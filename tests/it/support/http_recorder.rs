//! A real HTTP/1.1 server (hyper) that records every request it gets — method,
//! path, headers and the body (gunzipped when sent with `Content-Encoding:
//! gzip`) — and answers as scripted: a status, 429 with `Retry-After`, a slow
//! answer, no answer at all, 415 to compressed bodies, or 413 to bodies over a
//! size. Also a listener that accepts connections and never reads them.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How to answer one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// This status, empty body.
    Status(u16),
    /// 429 with `Retry-After: secs`.
    TooMany { retry_after: u64 },
    /// Never answer (the request is recorded, the connection stays open).
    Hang,
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    /// The body after undoing `Content-Encoding: gzip`.
    pub body: Vec<u8>,
    /// Status answered (0 when it hung).
    pub status: u16,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Reply>>,
    refuse_gzip: Mutex<bool>,
    max_body: Mutex<Option<usize>>,
    connections: Mutex<usize>,
}

/// A running recorder; stops (closing every connection) when dropped.
pub struct Recorder {
    pub port: u16,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Recorder {
    /// Starts on a free port.
    pub async fn start() -> Recorder {
        Self::launch(bind_any().await, None).await
    }

    /// Starts on the port `reserved` held until now (a receiver that comes up late).
    pub async fn start_on(reserved: super::Reserved) -> Recorder {
        Self::launch(reserved.listen(), None).await
    }

    /// Starts an HTTPS recorder with this certificate chain and key (PEM).
    pub async fn start_tls(cert_pem: &str, key_pem: &str) -> Recorder {
        Self::launch(bind_any().await, Some(super::tls::acceptor(cert_pem, key_pem))).await
    }

    async fn launch(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) -> Recorder {
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        let st = state.clone();
        let task = tokio::spawn(super::tls::accept_each(listener, tls, move |io| serve(st.clone(), io)));
        Recorder { port, state, task }
    }

    /// Answers the next requests with these replies, in order; then 200 again.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().extend(replies);
    }

    /// Answer 415 to any gzip-encoded body (from now on).
    pub fn refuse_gzip(&self) {
        *self.state.refuse_gzip.lock() = true;
    }

    /// Answer 413 (Payload Too Large) to bodies of more than `bytes` as sent
    /// (before undoing any compression), from now on.
    pub fn refuse_larger_than(&self, bytes: usize) {
        *self.state.max_body.lock() = Some(bytes);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().clone()
    }

    /// Requests answered with a 2xx status.
    pub fn accepted(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        *self.state.connections.lock()
    }
}

/// Serves HTTP/1.1 on one accepted connection.
async fn serve<I>(st: Arc<State>, io: I)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    *st.connections.lock() += 1;
    let svc = service_fn(move |req| handle(st.clone(), req));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(st: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let raw = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let gzipped = parts
        .headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let body = if gzipped {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .expect("gzip body decodes");
        out
    } else {
        raw.to_vec()
    };
    let reply = if gzipped && *st.refuse_gzip.lock() {
        Reply::Status(415)
    } else if st.max_body.lock().is_some_and(|max| raw.len() > max) {
        Reply::Status(413)
    } else {
        st.script.lock().pop_front().unwrap_or(Reply::Status(200))
    };
    let mut rec = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.to_string(),
        headers: parts.headers,
        body,
        status: 0,
        at: Instant::now(),
    };
    let mut resp = Response::new(Full::new(Bytes::new()));
    match reply {
        Reply::Status(s) => *resp.status_mut() = StatusCode::from_u16(s).unwrap(),
        Reply::TooMany { retry_after } => {
            *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            resp.headers_mut()
                .insert("retry-after", retry_after.to_string().parse().unwrap());
        }
        Reply::Hang => {
            st.requests.lock().push(rec);
            std::future::pending::<()>().await;
            unreachable!();
        }
    }
    rec.status = resp.status().as_u16();
    st.requests.lock().push(rec);
    Ok(resp)
}

/// A TCP listener that accepts connections and never reads from them, so a
/// sender's writes eventually block. Holds the sockets until dropped.
pub struct BlackHole {
    pub port: u16,
    task: JoinHandle<()>,
    accepted: Arc<Mutex<usize>>,
}

impl BlackHole {
    pub async fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(Mutex::new(0));
        let a = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                *a.lock() += 1;
                held.push(s);
            }
        });
        BlackHole { port, task, accepted }
    }

    pub fn accepted(&self) -> usize {
        *self.accepted.lock()
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn bind_any() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}
