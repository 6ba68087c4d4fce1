//! `recv`: a syslog receiver that counts. Listens on every port given, accepts
//! any number of connections, splits each stream into messages (octet-counted
//! `LEN SP MSG`, or one message per LF line, told apart per frame as RFC 6587
//! allows) and counts messages and message bytes exactly.
//!
//! It prints one JSON line when `--expect` messages arrived (plus a short grace
//! period to catch duplicates), or when nothing arrived for `--idle-ms` after the
//! first message, or at `--timeout-s`.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::{Args, now_ns};

/// Counters shared by every connection.
#[derive(Default)]
pub struct Totals {
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub first_ns: AtomicU64,
    pub last_ns: AtomicU64,
    pub connections: AtomicU64,
}

/// Splits a byte stream into syslog messages; keeps partial frames between reads.
pub struct Splitter {
    buf: Vec<u8>,
    start: usize,
}

impl Default for Splitter {
    fn default() -> Self {
        Splitter {
            buf: Vec::with_capacity(1 << 20),
            start: 0,
        }
    }
}

impl Splitter {
    /// Reads once into the buffer; `Ok(0)` at end of stream.
    pub fn read_from(&mut self, s: &mut TcpStream) -> std::io::Result<usize> {
        if self.start > 0 && (self.start == self.buf.len() || self.buf.len() - self.start < self.start) {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let len = self.buf.len();
        if self.buf.capacity() - len < 256 << 10 {
            self.buf.reserve(1 << 20);
        }
        let cap = self.buf.capacity();
        self.buf.resize(cap, 0);
        let r = s.read(&mut self.buf[len..]);
        self.buf.truncate(len + *r.as_ref().unwrap_or(&0));
        r
    }

    /// Calls `f` with every complete message buffered.
    pub fn messages(&mut self, mut f: impl FnMut(&[u8])) {
        let b = &self.buf;
        let mut i = self.start;
        while i < b.len() {
            let c = b[i];
            if c == b'\n' || c == b'\r' || c == 0 {
                i += 1;
                continue;
            }
            // Octet counting: digits, then a space.
            let mut j = i;
            let mut n: usize = 0;
            while j < b.len() && b[j].is_ascii_digit() && j - i < 10 {
                n = n * 10 + (b[j] - b'0') as usize;
                j += 1;
            }
            if j > i && j < b.len() && b[j] == b' ' && b[i] != b'0' {
                if b.len() - (j + 1) < n {
                    break;
                }
                f(&b[j + 1..j + 1 + n]);
                i = j + 1 + n;
                continue;
            }
            if j == b.len() && j > i {
                break; // the count may continue in the next read
            }
            match b[i..].iter().position(|&c| c == b'\n') {
                Some(k) => {
                    f(&b[i..i + k]);
                    i += k + 1;
                }
                None => break,
            }
        }
        self.start = i;
    }
}

impl Totals {
    /// Counts `m` messages of `b` bytes that arrived now.
    pub fn add(&self, m: u64, b: u64) {
        if m == 0 {
            return;
        }
        let now = now_ns();
        let _ = self
            .first_ns
            .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
        self.last_ns.fetch_max(now, Ordering::AcqRel);
        self.bytes.fetch_add(b, Ordering::AcqRel);
        self.messages.fetch_add(m, Ordering::AcqRel);
    }
}

fn serve(mut s: TcpStream, totals: Arc<Totals>) {
    totals.connections.fetch_add(1, Ordering::Relaxed);
    let mut sp = Splitter::default();
    loop {
        match sp.read_from(&mut s) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let (mut m, mut b) = (0u64, 0u64);
        sp.messages(|msg| {
            m += 1;
            b += msg.len() as u64;
        });
        totals.add(m, b);
    }
}

/// Binds every port and serves connections on background threads.
pub fn listen(ports: &[u16], totals: &Arc<Totals>) -> Result<(), String> {
    for &p in ports {
        let l = TcpListener::bind(("127.0.0.1", p)).map_err(|e| format!("bind 127.0.0.1:{p}: {e}"))?;
        let t = totals.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let _ = s.set_nodelay(true);
                let t = t.clone();
                std::thread::spawn(move || serve(s, t));
            }
        });
    }
    Ok(())
}

/// The `--ports` list.
pub fn ports(a: &Args) -> Result<Vec<u16>, String> {
    let ports: Vec<u16> = a
        .str("ports", "")
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().map_err(|_| format!("bad port {p:?}")))
        .collect::<Result<_, _>>()?;
    if ports.is_empty() {
        return Err("the receiver needs --ports".into());
    }
    Ok(ports)
}

pub fn run(a: &Args) -> Result<(), String> {
    let totals = Arc::new(Totals::default());
    listen(&ports(a)?, &totals)?;
    wait_and_report(a, &totals, &String::new)
}

/// Writes `--ready-file`, waits until `--expect` messages arrived (or
/// `--idle-ms` without one after the first, or `--timeout-s`) and prints the
/// one JSON line; what `extra` returns then is appended inside the object
/// (`,"key":value…`).
pub fn wait_and_report(a: &Args, totals: &Totals, extra: &dyn Fn() -> String) -> Result<(), String> {
    let expect = a.num("expect", 0)?;
    let idle = Duration::from_millis(a.num("idle-ms", 3000)?);
    let timeout = Duration::from_secs(a.num("timeout-s", 300)?);
    let ready = a.str("ready-file", "");
    if !ready.is_empty() {
        std::fs::write(&ready, b"ready\n").map_err(|e| format!("{ready}: {e}"))?;
    }
    let began = Instant::now();
    let mut last_count = 0;
    let mut last_change = Instant::now();
    let outcome = loop {
        std::thread::sleep(Duration::from_millis(2));
        let n = totals.messages.load(Ordering::Acquire);
        if n != last_count {
            last_count = n;
            last_change = Instant::now();
        }
        if expect > 0 && n >= expect {
            // Grace period: anything more is a duplicate.
            std::thread::sleep(Duration::from_millis(300));
            break "complete";
        }
        if n > 0 && last_change.elapsed() > idle {
            break "idle";
        }
        if began.elapsed() > timeout {
            break "timeout";
        }
    };
    let m = totals.messages.load(Ordering::Acquire);
    let b = totals.bytes.load(Ordering::Acquire);
    let first = totals.first_ns.load(Ordering::Acquire);
    let last = totals.last_ns.load(Ordering::Acquire);
    let secs = (last.saturating_sub(first)) as f64 / 1e9;
    let rate = if secs > 0.0 { m as f64 / secs } else { 0.0 };
    let extra = extra();
    println!(
        "{{\"outcome\":\"{outcome}\",\"messages\":{m},\"bytes\":{b},\"expected\":{expect},\"first_ns\":{first},\"last_ns\":{last},\"seconds\":{secs:.6},\"msgs_per_s\":{rate:.0},\"mb_per_s\":{:.2},\"connections\":{}{extra}}}",
        if secs > 0.0 { b as f64 / secs / 1e6 } else { 0.0 },
        totals.connections.load(Ordering::Acquire)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut sp = Splitter::default();
        let mut out = Vec::new();
        for c in chunks {
            sp.buf.extend_from_slice(c);
            sp.messages(|m| out.push(m.to_vec()));
        }
        out
    }

    #[test]
    fn both_framings_across_reads() {
        let got = split(&[b"5 hello3 ab", b"c<14>1 line\n1", b"1 <14>1 x y z\n"]);
        assert_eq!(
            got,
            vec![
                b"hello".to_vec(),
                b"abc".to_vec(),
                b"<14>1 line".to_vec(),
                b"<14>1 x y z".to_vec()
            ]
        );
    }
}
