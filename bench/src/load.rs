//! `syslog-load`, `syslog-file` and `udp-load`: RFC 5424 messages built once
//! up front. Over TCP (and to the file) they are octet-counted and written as
//! fast as the socket takes them; over UDP each is one datagram, sent at a
//! paced rate (UDP has no back-pressure, so "as fast as possible" would only
//! measure the kernel's drops).
//!
//! Messages are 200–250 bytes with the given hostname (logtrain's routing key)
//! and a sequence number; 4,096 distinct messages are cycled through.

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::{Args, Rng, filler};

const DISTINCT: u64 = 4096;

/// The `DISTINCT` messages, unframed.
fn bodies(hostname: &str) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(0x10AD);
    let mut out = Vec::with_capacity(DISTINCT as usize);
    for seq in 0..DISTINCT {
        let mut msg = Vec::with_capacity(256);
        let total = 200 + rng.below(51) as usize;
        write!(
            msg,
            "<14>1 2026-11-22T01:00:00.{:06}Z {hostname} bench 1 - - seq={seq} ",
            seq % 1_000_000
        )
        .expect("vec");
        let used = msg.len();
        filler(&mut rng, total.saturating_sub(used).max(1), &mut msg);
        out.push(msg);
    }
    out
}

/// Octet-counted messages for `count` sends, as one buffer of `DISTINCT` messages.
fn messages(hostname: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(DISTINCT as usize * 260);
    for msg in bodies(hostname) {
        write!(out, "{} ", msg.len()).expect("vec");
        out.extend_from_slice(&msg);
    }
    out
}

/// The first `n` messages of `all` as a byte range end (`n < DISTINCT`).
fn prefix_len(all: &[u8], n: u64) -> usize {
    let mut i = 0;
    for _ in 0..n {
        let sp = all[i..].iter().position(|&c| c == b' ').expect("count") + i;
        let len: usize = std::str::from_utf8(&all[i..sp])
            .expect("digits")
            .parse()
            .expect("count");
        i = sp + 1 + len;
    }
    i
}

pub fn run(a: &Args) -> Result<(), String> {
    let addr = a.str("addr", "127.0.0.1:9002");
    let count = a.num("count", 2_000_000)?;
    let conns = a.num("conns", 1)?.max(1);
    let host = a.str("hostname", "bench.default");
    let all = messages(&host);
    let began = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|c| {
            let share = count / conns + u64::from(c < count % conns);
            let (addr, all) = (addr.clone(), all.clone());
            std::thread::spawn(move || -> Result<(), String> {
                let mut s = TcpStream::connect(&addr).map_err(|e| format!("{addr}: {e}"))?;
                let err = |e: std::io::Error| format!("{addr}: {e}");
                for _ in 0..share / DISTINCT {
                    s.write_all(&all).map_err(err)?;
                }
                s.write_all(&all[..prefix_len(&all, share % DISTINCT)]).map_err(err)?;
                s.flush().map_err(err)?;
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "sender thread panicked".to_string())??;
    }
    let secs = began.elapsed().as_secs_f64();
    println!(
        "{{\"sent\":{count},\"seconds\":{secs:.3},\"msgs_per_s\":{:.0}}}",
        count as f64 / secs
    );
    Ok(())
}

pub fn write_file(a: &Args) -> Result<(), String> {
    let out = a.str("out", "");
    if out.is_empty() {
        return Err("syslog-file needs --out".into());
    }
    let count = a.num("count", 2_000_000)?;
    let all = messages(&a.str("hostname", "bench.default"));
    let err = |e: std::io::Error| format!("{out}: {e}");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&out).map_err(err)?);
    for _ in 0..count / DISTINCT {
        f.write_all(&all).map_err(err)?;
    }
    f.write_all(&all[..prefix_len(&all, count % DISTINCT)]).map_err(err)?;
    f.flush().map_err(err)?;
    Ok(())
}

/// `udp-load`: `count` datagrams to `addr` at `rate` per second, paced in
/// steps of a millisecond (a burst of `rate / 1000` at a time), from one socket.
/// Prints what was sent, over how long, and the send errors (a full socket
/// buffer on the sending side is retried, never skipped).
pub fn udp(a: &Args) -> Result<(), String> {
    let addr = a.str("addr", "127.0.0.1:9003");
    let count = a.num("count", 1_000_000)?;
    let rate = a.num("rate", 200_000)?.max(1);
    let all = bodies(&a.str("hostname", "bench.default"));
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("udp bind: {e}"))?;
    sock.connect(&addr).map_err(|e| format!("{addr}: {e}"))?;
    let began = Instant::now();
    let mut retries = 0u64;
    for seq in 0..count {
        if seq % 64 == 0 {
            let due = Duration::from_nanos(seq * 1_000_000_000 / rate);
            let ahead = due.saturating_sub(began.elapsed());
            if ahead > Duration::from_micros(500) {
                std::thread::sleep(ahead);
            }
        }
        let msg = &all[(seq % DISTINCT) as usize];
        while let Err(e) = sock.send(msg) {
            // ENOBUFS / EAGAIN on the sender: wait for room rather than lose the datagram here.
            if e.kind() == std::io::ErrorKind::ConnectionRefused {
                return Err(format!("{addr}: {e}"));
            }
            retries += 1;
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    let secs = began.elapsed().as_secs_f64();
    println!(
        "{{\"sent\":{count},\"seconds\":{secs:.3},\"msgs_per_s\":{:.0},\"rate\":{rate},\"send_retries\":{retries}}}",
        count as f64 / secs
    );
    Ok(())
}
