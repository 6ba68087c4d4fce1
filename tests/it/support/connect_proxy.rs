//! A forward proxy as squid or tinyproxy serve HTTPS: `CONNECT host:port`,
//! optionally demanding `Proxy-Authorization` (407 without it), then bytes
//! copied both ways. It records each CONNECT's target and credentials, and
//! dials the target by the name or address it was given.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One CONNECT the proxy answered.
#[derive(Clone, Debug)]
pub struct Connect {
    pub target: String,
    pub authorization: Option<String>,
}

pub struct ConnectProxy {
    pub port: u16,
    seen: Arc<Mutex<Vec<Connect>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConnectProxy {
    /// Listens on 127.0.0.1; with `basic`, CONNECTs must carry
    /// `Proxy-Authorization: Basic <basic>`.
    pub async fn start(basic: Option<&str>) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Connect>>> = Arc::default();
        let (log, basic) = (seen.clone(), basic.map(|b| format!("Basic {b}")));
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let (log, basic) = (log.clone(), basic.clone());
                tokio::spawn(async move {
                    let _ = serve(client, log, basic).await;
                });
            }
        });
        ConnectProxy { port, seen, task }
    }

    pub fn url(&self, userinfo: &str) -> String {
        format!("http://{userinfo}127.0.0.1:{}", self.port)
    }

    pub fn connects(&self) -> Vec<Connect> {
        self.seen.lock().clone()
    }
}

async fn serve(mut client: TcpStream, log: Arc<Mutex<Vec<Connect>>>, basic: Option<String>) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut b).await? == 0 {
            return Ok(());
        }
        head.push(b[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.lines();
    let first: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
    if first.first() != Some(&"CONNECT") || first.len() < 2 {
        client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n").await?;
        return Ok(());
    }
    let authorization = lines
        .find_map(|l| l.strip_prefix("Proxy-Authorization: "))
        .map(str::to_string);
    log.lock().push(Connect {
        target: first[1].to_string(),
        authorization: authorization.clone(),
    });
    if basic.is_some() && authorization != basic {
        client
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\n\r\n")
            .await?;
        return Ok(());
    }
    let Ok(mut upstream) = TcpStream::connect(first[1]).await else {
        client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await?;
        return Ok(());
    };
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
