//! The pod proxy subresource of the test API server
//! (`/api/v1/namespaces/NS/pods/NAME:PORT/proxy/PATH`), as the real one serves
//! it: the pod must exist (404 `NotFound` otherwise) and be running with an
//! IP (503 otherwise); the request's method, path and query go to
//! `podIP:PORT` and the answer is streamed back as it arrives, status and
//! headers included; a pod that refuses the connection is a 503 naming the
//! dial error. Tests stand in for the pod network with
//! [`KubeApi::route_pod`](super::kube_api::KubeApi::route_pod): processes on
//! one machine all listen on 127.0.0.1 with ports of their own, where pods
//! in a cluster share a port at different IPs.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::mpsc;

use super::kube_api::Body;

/// `(namespace, pod, port, path)` when `path` is a pod proxy path.
pub fn parse(path: &str) -> Option<(String, String, u16, String)> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let (ns, rest) = rest.split_once("/pods/")?;
    let (name_port, rest) = rest.split_once("/proxy")?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let (name, port) = name_port.split_once(':')?;
    let rest = if rest.is_empty() { "/" } else { rest };
    Some((ns.to_string(), name.to_string(), port.parse().ok()?, rest.to_string()))
}

/// Where the pod's `port` is reached: the test's route for it, else
/// `status.podIP:port`; `Err` is the Status to answer.
pub fn address(
    pod: Option<&Value>,
    name: &str,
    port: u16,
    routed: Option<SocketAddr>,
) -> Result<SocketAddr, (u16, String, String)> {
    let Some(pod) = pod else {
        return Err((404, "NotFound".into(), format!("pods \"{name}\" not found")));
    };
    if pod["status"]["phase"] != "Running" {
        return Err((503, "ServiceUnavailable".into(), format!("pod {name} is not running")));
    }
    if let Some(a) = routed {
        return Ok(a);
    }
    let ip = pod["status"]["podIP"].as_str().and_then(|ip| ip.parse().ok());
    ip.map(|ip| SocketAddr::new(ip, port))
        .ok_or_else(|| (503, "ServiceUnavailable".into(), format!("pod {name} has no IP")))
}

/// Sends the request on to `addr` and streams the answer back.
pub async fn forward(
    addr: SocketAddr,
    path: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, (u16, String, String)> {
    let dial_error = |e: &dyn std::fmt::Display| {
        (
            503,
            "ServiceUnavailable".to_string(),
            format!("error trying to reach service: dial tcp {addr}: {e}"),
        )
    };
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| dial_error(&e))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| dial_error(&e))?;
    tokio::spawn(conn);
    let q = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    let up = Request::builder()
        .method(req.method())
        .uri(format!("{path}{q}"))
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .expect("valid request");
    let resp = send.send_request(up).await.map_err(|e| dial_error(&e))?;
    let (parts, mut body) = resp.into_parts();
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data()
                && tx.send(data).await.is_err()
            {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Ok(Response::from_parts(parts, StreamBody::new(stream).boxed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_paths_are_parsed_with_or_without_a_rest() {
        assert_eq!(
            parse("/api/v1/namespaces/logtrain/pods/logtrain-a:9000/proxy/tail"),
            Some(("logtrain".into(), "logtrain-a".into(), 9000, "/tail".into()))
        );
        assert_eq!(
            parse("/api/v1/namespaces/n/pods/p:80/proxy"),
            Some(("n".into(), "p".into(), 80, "/".into()))
        );
        assert_eq!(parse("/api/v1/namespaces/n/pods/p"), None);
        assert_eq!(parse("/api/v1/namespaces/n/pods/p:x/proxy/"), None);
    }
}
