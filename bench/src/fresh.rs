//! `fresh`, `fairness` and `ready`: latency and start-up time.
//!
//! `fresh` appends CRI lines to a file at a fixed rate, one `write` per line as
//! a container runtime does, each carrying its wall-clock send time (`t=NANOS`);
//! its own receiver takes the arrival time of every message and prints latency
//! percentiles. `fairness` does the same for many quiet files at a low rate
//! each while one more file receives a large backlog at once (see [`fairness`]).
//! `ready` starts a command and polls `GET /readyz` every millisecond until it
//! answers 200.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::generate::file_name;
use crate::recv::Splitter;
use crate::{Args, Rng, filler, now_ns};

/// What the receiver saw: (send time, latency) in ns of every stamped line,
/// the count of every message (stamped or not), and when the unstamped ones
/// (a backlog) reached `backlog`.
#[derive(Default)]
struct Seen {
    stamped: Mutex<Vec<(u64, u64)>>,
    all: AtomicU64,
    unstamped: AtomicU64,
    backlog: AtomicU64,
    backlog_done_ns: AtomicU64,
}

/// Receives on `port` in the background.
fn receiver(port: u16) -> Result<Arc<Seen>, String> {
    let seen = Arc::new(Seen::default());
    let l = TcpListener::bind(("127.0.0.1", port)).map_err(|e| format!("bind {port}: {e}"))?;
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let seen = s2.clone();
            std::thread::spawn(move || collect(s, &seen));
        }
    });
    Ok(seen)
}

/// With the receiver listening: writes `--ready-file` (so the agent can be
/// started with its destination up, as a peer that backs off after a refused
/// connection would otherwise measure its backoff), then waits `--warmup-ms`.
fn warm_up(a: &Args) -> Result<(), String> {
    let ready = a.str("ready-file", "");
    if !ready.is_empty() {
        std::fs::write(&ready, b"ready\n").map_err(|e| format!("{ready}: {e}"))?;
    }
    std::thread::sleep(Duration::from_millis(a.num("warmup-ms", 0)?));
    Ok(())
}

/// The `p`-quantile (0–1) of sorted nanoseconds, in milliseconds.
fn pct(v: &[u64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1e6
}

/// One CRI line stamped with its send time.
fn stamped(rng: &mut Rng, seq: u64, line: &mut Vec<u8>) {
    line.clear();
    write!(
        line,
        "2026-11-22T01:00:00.000000000Z stdout F fresh t={} seq={seq} ",
        now_ns()
    )
    .expect("vec");
    filler(rng, 150, line);
    line.push(b'\n');
}

pub fn run(a: &Args) -> Result<(), String> {
    let file = a.str("file", "");
    if file.is_empty() {
        return Err("fresh needs --file".into());
    }
    let port = a.num("port", 0)? as u16;
    let rate = a.num("rate", 10_000)?.max(1);
    let secs = a.num("secs", 5)?.max(1);
    let seen = receiver(port)?;
    warm_up(a)?;
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(&file)
        .map_err(|e| format!("{file}: {e}"))?;
    let total = rate * secs;
    let began = Instant::now();
    let mut rng = Rng::new(7);
    let mut line = Vec::with_capacity(256);
    for seq in 0..total {
        let due = Duration::from_nanos(seq * 1_000_000_000 / rate);
        let ahead = due.saturating_sub(began.elapsed());
        if ahead > Duration::from_micros(200) {
            std::thread::sleep(ahead);
        }
        stamped(&mut rng, seq, &mut line);
        f.write_all(&line).map_err(|e| format!("{file}: {e}"))?;
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while seen.stamped.lock().expect("lock").len() < total as usize && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut v: Vec<u64> = seen.stamped.lock().expect("lock").iter().map(|p| p.1).collect();
    v.sort_unstable();
    println!(
        "{{\"sent\":{total},\"received\":{},\"rate\":{rate},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}}}",
        v.len(),
        pct(&v, 0.5),
        pct(&v, 0.9),
        pct(&v, 0.99),
        pct(&v, 1.0)
    );
    Ok(())
}

/// `fairness`: `--files` quiet container files in `--dir` (kubelet names of
/// pods `bench-…-x0001` on) get `--rate` stamped lines per second each, one
/// `write` per line, spread evenly, for `--secs`; `--after-ms` into the run
/// the file `--backlog` (container 0 of the same pod set) receives the whole
/// of `--backlog-src` (`--backlog-lines` lines) in one copy, as a container
/// that logged a burst. The receiver on `--port` counts every message and
/// times the stamped ones; the quiet lines' latency percentiles are printed
/// over the whole run and over the lines sent while the backlog drained (from
/// the copy's start to the backlog's last message).
pub fn fairness(a: &Args) -> Result<(), String> {
    let dir = a.str("dir", "");
    let (backlog, src) = (a.str("backlog", ""), a.str("backlog-src", ""));
    if dir.is_empty() || backlog.is_empty() || src.is_empty() {
        return Err("fairness needs --dir, --backlog and --backlog-src".into());
    }
    let port = a.num("port", 0)? as u16;
    let files = a.num("files", 50)?.max(1);
    let rate = a.num("rate", 10)?.max(1);
    let secs = a.num("secs", 10)?.max(1);
    let backlog_lines = a.num("backlog-lines", 0)?;
    let after = Duration::from_millis(a.num("after-ms", 1000)?);
    let wait = Duration::from_secs(a.num("wait-s", 60)?);
    let seen = receiver(port)?;
    seen.backlog.store(backlog_lines, Ordering::Release);
    let mut quiet = Vec::new();
    for i in 1..=files {
        let path = std::path::Path::new(&dir).join(file_name("bench", "default", i));
        let f = OpenOptions::new().append(true).create(true).open(&path);
        quiet.push(f.map_err(|e| format!("{}: {e}", path.display()))?);
    }
    warm_up(a)?;
    let began = Instant::now();
    let copier = std::thread::spawn(move || -> Result<(u64, u64), String> {
        std::thread::sleep(after);
        let t0 = now_ns();
        let err = |e: std::io::Error| format!("{backlog}: {e}");
        let mut out = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&backlog)
            .map_err(err)?;
        let mut inp = std::fs::File::open(&src).map_err(|e| format!("{src}: {e}"))?;
        std::io::copy(&mut inp, &mut out).map_err(err)?;
        Ok((t0, now_ns()))
    });
    let total = files * rate * secs;
    let mut rng = Rng::new(11);
    let mut line = Vec::with_capacity(256);
    for g in 0..total {
        let due = Duration::from_nanos(g * 1_000_000_000 / (files * rate));
        let ahead = due.saturating_sub(began.elapsed());
        if ahead > Duration::from_micros(200) {
            std::thread::sleep(ahead);
        }
        stamped(&mut rng, g, &mut line);
        let f = &mut quiet[(g % files) as usize];
        f.write_all(&line).map_err(|e| format!("quiet file: {e}"))?;
    }
    let (copy_start, copy_end) = copier.join().map_err(|_| "copier panicked".to_string())??;
    let expect = total + backlog_lines;
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline && seen.all.load(Ordering::Acquire) < expect {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    // The backlog's last message (or now, if it never all arrived).
    let drained_at = match seen.backlog_done_ns.load(Ordering::Acquire) {
        0 => now_ns(),
        t => t,
    };
    let pairs = seen.stamped.lock().expect("lock").clone();
    let mut v: Vec<u64> = pairs.iter().map(|p| p.1).collect();
    v.sort_unstable();
    let mut during: Vec<u64> = pairs
        .iter()
        .filter(|p| p.0 >= copy_start && p.0 <= drained_at)
        .map(|p| p.1)
        .collect();
    during.sort_unstable();
    let all = seen.all.load(Ordering::Acquire);
    println!(
        "{{\"files\":{files},\"rate\":{rate},\"sent\":{total},\"received\":{},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3},\"during\":{},\"during_p50_ms\":{:.3},\"during_p99_ms\":{:.3},\"backlog_lines\":{backlog_lines},\"messages\":{all},\"expected\":{expect},\"backlog_copy_ms\":{:.1},\"backlog_drain_s\":{:.3}}}",
        v.len(),
        pct(&v, 0.5),
        pct(&v, 0.99),
        pct(&v, 1.0),
        during.len(),
        pct(&during, 0.5),
        pct(&during, 0.99),
        (copy_end - copy_start) as f64 / 1e6,
        drained_at.saturating_sub(copy_start) as f64 / 1e9,
    );
    Ok(())
}

fn collect(mut s: TcpStream, seen: &Seen) {
    let mut sp = Splitter::default();
    let mut got = Vec::new();
    loop {
        match sp.read_from(&mut s) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let now = now_ns();
        let (mut n, mut plain) = (0, 0);
        sp.messages(|m| {
            n += 1;
            plain += 1;
            if let Some(i) = memchr::memmem::find(m, b" t=") {
                let digits = m[i + 3..].iter().take_while(|c| c.is_ascii_digit());
                let t = digits.fold(0u64, |acc, &c| acc * 10 + (c - b'0') as u64);
                got.push((t, now.saturating_sub(t)));
                plain -= 1;
            }
        });
        seen.stamped.lock().expect("lock").append(&mut got);
        seen.all.fetch_add(n, Ordering::AcqRel);
        let unstamped = seen.unstamped.fetch_add(plain, Ordering::AcqRel) + plain;
        let backlog = seen.backlog.load(Ordering::Acquire);
        if backlog > 0 && unstamped >= backlog {
            let _ = seen
                .backlog_done_ns
                .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
        }
    }
}

pub fn ready(a: &Args) -> Result<(), String> {
    let port = a.num("port", 9000)? as u16;
    let limit = Duration::from_millis(a.num("timeout-ms", 5000)?);
    let cmd = a.rest();
    if cmd.is_empty() {
        return Err("ready needs -- COMMAND".into());
    }
    let began = Instant::now();
    let mut child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .spawn()
        .map_err(|e| format!("{}: {e}", cmd[0]))?;
    let mut ready_after = None;
    while began.elapsed() < limit {
        if readyz(port) {
            ready_after = Some(began.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.kill();
    let _ = child.wait();
    match ready_after {
        Some(d) => {
            println!("{{\"ready_ms\":{:.2}}}", d.as_secs_f64() * 1e3);
            Ok(())
        }
        None => Err(format!("not ready within {limit:?}")),
    }
}

fn readyz(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    if s.write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 16];
    let mut n = 0;
    while n < head.len() {
        match s.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    head[..n].starts_with(b"HTTP/1.1 200")
}
