//! A syslog receiver that comes up late: a port is held (refusing
//! connections, a drain that is down) from the start of a test, and the
//! receiver listens on it when the test says so, keeping the message of every
//! octet-counted frame.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::io::AsyncReadExt;

use super::Reserved;
use super::faults::message;

/// A receiver that comes up late on a port held since the start (refusing
/// connections until then): keeps the message of every octet-counted frame.
#[derive(Clone, Default)]
pub struct Late {
    got: Arc<Mutex<Vec<String>>>,
}

impl Late {
    pub fn up(&self, port: Reserved) {
        let listener = port.listen();
        let got = self.got.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                let got = got.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = vec![0u8; 64 << 10];
                    loop {
                        let n = match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        buf.extend_from_slice(&chunk[..n]);
                        let mut at = 0;
                        while let Some(sp) = buf[at..].iter().position(|&c| c == b' ') {
                            let len: usize = std::str::from_utf8(&buf[at..at + sp]).unwrap().parse().unwrap();
                            if buf.len() < at + sp + 1 + len {
                                break;
                            }
                            let frame = String::from_utf8_lossy(&buf[at + sp + 1..at + sp + 1 + len]).into_owned();
                            got.lock().push(message(&frame).to_string());
                            at += sp + 1 + len;
                        }
                        buf.drain(..at);
                    }
                });
            }
        });
    }

    pub fn messages(&self) -> Vec<String> {
        self.got.lock().clone()
    }

    /// The numbers of the `line N` / `push N` messages, in arrival order.
    pub fn numbers(&self) -> Vec<usize> {
        numbers(self.got.lock().iter().map(String::as_str))
    }
}

pub fn numbers<'a>(msgs: impl Iterator<Item = &'a str>) -> Vec<usize> {
    msgs.filter_map(|m| m.split(' ').nth(1).and_then(|n| n.parse().ok()))
        .collect()
}
