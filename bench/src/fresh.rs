//! `fresh` and `ready`: latency and start-up time.
//!
//! `fresh` appends CRI lines to a file at a fixed rate, one `write` per line as
//! a container runtime does, each carrying its wall-clock send time (`t=NANOS`);
//! its own receiver takes the arrival time of every message and prints latency
//! percentiles. `ready` starts a command and polls `GET /readyz` every
//! millisecond until it answers 200.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::recv::Splitter;
use crate::{Args, Rng, filler, now_ns};

pub fn run(a: &Args) -> Result<(), String> {
    let file = a.str("file", "");
    if file.is_empty() {
        return Err("fresh needs --file".into());
    }
    let port = a.num("port", 0)? as u16;
    let rate = a.num("rate", 10_000)?.max(1);
    let secs = a.num("secs", 5)?.max(1);
    let latencies = Arc::new(Mutex::new(Vec::<u64>::with_capacity((rate * secs) as usize)));
    let l = TcpListener::bind(("127.0.0.1", port)).map_err(|e| format!("bind {port}: {e}"))?;
    let lat = latencies.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let lat = lat.clone();
            std::thread::spawn(move || collect(s, lat));
        }
    });
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
        line.clear();
        let t = now_ns();
        write!(line, "2026-11-22T01:00:00.000000000Z stdout F fresh t={t} seq={seq} ").expect("vec");
        filler(&mut rng, 150, &mut line);
        line.push(b'\n');
        f.write_all(&line).map_err(|e| format!("{file}: {e}"))?;
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while latencies.lock().expect("lock").len() < total as usize && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut v = latencies.lock().expect("lock").clone();
    v.sort_unstable();
    let pct = |p: f64| -> f64 {
        if v.is_empty() {
            return f64::NAN;
        }
        v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1e6
    };
    println!(
        "{{\"sent\":{total},\"received\":{},\"rate\":{rate},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}}}",
        v.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    Ok(())
}

fn collect(mut s: TcpStream, lat: Arc<Mutex<Vec<u64>>>) {
    let mut sp = Splitter::default();
    let mut got = Vec::new();
    loop {
        match sp.read_from(&mut s) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let now = now_ns();
        sp.messages(|m| {
            if let Some(i) = m.windows(2).position(|w| w == b"t=") {
                let digits = m[i + 2..].iter().take_while(|c| c.is_ascii_digit());
                let t = digits.fold(0u64, |acc, &c| acc * 10 + (c - b'0') as u64);
                got.push(now.saturating_sub(t));
            }
        });
        lat.lock().expect("lock").append(&mut got);
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
