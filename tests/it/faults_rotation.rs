//! A rotation storm: 50 container logs written at speed, each rotated every
//! 100 ms — 25 by rename (kubelet: the live file is renamed to `0.log.<n>` and
//! a new one created) and 25 by copytruncate (logrotate: copied to `0.log.<n>`,
//! then emptied in place). Every line must arrive exactly once and in order per
//! file.
//!
//! What copytruncate can promise: bytes written between the copy and the
//! truncation are gone from the live file, and a truncation is only visible to
//! a reader as "the file is shorter than where I am". So each copytruncate
//! writer rotates only once the receiver has every line it wrote (the tailer
//! caught up), and writes again only once the tailer counted the truncation
//! (`logtrain_tail_truncations_total`); truncations are serialised for that.
//! Under those conditions nothing may be lost or repeated. Rename rotation has
//! no such precondition: its writers never wait.
//!
//! The storm lasts `LOGTRAIN_SOAK_SECS` (default 2 s; `tests/soak` runs 60).

use crate::support;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logtrain::app::App;
use logtrain::config::{Config, StaticRoute};
use parking_lot::Mutex;
use support::faults::{Node, Receiver, message, phase};

const FILES: usize = 50;
const LINES_PER_ROTATION: usize = 20;

fn truncations() -> u64 {
    logtrain::telemetry::counter("logtrain_tail_truncations_total", &[]).get()
}

fn line(file: usize, seq: usize) -> String {
    format!("2026-11-22T10:00:00.000000001Z stdout F f{file:02} {seq:08}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_once_and_in_order_through_a_rotation_storm() {
    let node = Node::new();
    let rx = Arc::new(Receiver::start(true).await);
    let logs: Vec<_> = (0..FILES)
        .map(|f| node.pod("storm", &format!("app{f:02}-1-a"), "c"))
        .collect();
    let app = App::start(Config {
        kubernetes: true,
        http_port: 0,
        listen_address: "127.0.0.1".into(),
        kubernetes_log_path: node.containers(),
        checkpoint_path: node.path("state/checkpoints.json"),
        shutdown_timeout: 5,
        routes: (0..FILES)
            .map(|f| StaticRoute {
                hostname: format!("app{f:02}.storm"),
                drains: vec![rx.url()],
            })
            .collect(),
        ..crate::support::config()
    });
    assert!(app.wait_ready().await);
    logtrain::input::start(&app).await.unwrap();

    let storm = phase(2.0);
    let truncating = Arc::new(Mutex::new(()));
    let writers: Vec<_> = logs
        .iter()
        .enumerate()
        .map(|(f, log)| {
            let (log, rx, truncating) = (log.clone(), rx.clone(), truncating.clone());
            std::thread::spawn(move || {
                let copytruncate = f % 2 == 1;
                let key = format!("f{f:02}");
                let begun = Instant::now();
                let mut seq = 0;
                let mut rotation = 0;
                let mut out = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
                while begun.elapsed() < storm {
                    let cycle = Instant::now();
                    for _ in 0..LINES_PER_ROTATION / 4 {
                        let mut burst = String::new();
                        for _ in 0..4 {
                            burst.push_str(&line(f, seq));
                            seq += 1;
                        }
                        out.write_all(burst.as_bytes()).unwrap();
                        std::thread::sleep(Duration::from_millis(15));
                    }
                    if let Some(rest) = Duration::from_millis(100).checked_sub(cycle.elapsed()) {
                        std::thread::sleep(rest);
                    }
                    rotation += 1;
                    let rotated = log.with_extension(format!("log.{rotation:06}"));
                    if copytruncate {
                        let limit = Instant::now() + Duration::from_secs(30);
                        while rx.count_of(&key) < seq {
                            assert!(Instant::now() < limit, "{key}: tailer did not catch up");
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        let _one = truncating.lock();
                        let seen = truncations();
                        std::fs::copy(&log, &rotated).unwrap();
                        std::fs::OpenOptions::new()
                            .write(true)
                            .truncate(true)
                            .open(&log)
                            .unwrap();
                        while truncations() == seen {
                            assert!(Instant::now() < limit, "{key}: truncation not noticed");
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    } else {
                        std::fs::rename(&log, &rotated).unwrap();
                        out = std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(&log)
                            .unwrap();
                    }
                }
                (seq, rotation)
            })
        })
        .collect();
    let written: Vec<(usize, usize)> =
        tokio::task::spawn_blocking(move || writers.into_iter().map(|w| w.join().unwrap()).collect())
            .await
            .unwrap();
    let total: usize = written.iter().map(|(n, _)| n).sum();
    let rotations: usize = written.iter().map(|(_, r)| r).sum();
    // Short or not, the per-file comparison below says what is missing.
    let deadline = Instant::now() + Duration::from_secs(40);
    while rx.count() < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut per_file: Vec<Vec<usize>> = vec![Vec::new(); FILES];
    for frame in rx.frames() {
        let m = message(&frame);
        let (f, seq) = m.split_once(' ').unwrap();
        per_file[f[1..].parse::<usize>().unwrap()].push(seq.parse().unwrap());
    }
    for (f, got) in per_file.iter().enumerate() {
        let want: Vec<usize> = (0..written[f].0).collect();
        assert!(
            got == &want,
            "f{f:02} ({}): {} lines, {} written; first difference at {:?}; arrived as runs {:?}",
            if f % 2 == 1 { "copytruncate" } else { "rename" },
            got.len(),
            want.len(),
            got.iter().zip(&want).position(|(a, b)| a != b),
            runs(got)
        );
    }
    assert_eq!(rx.count(), total, "lines from no file arrived");
    assert!(rotations >= FILES * 5, "{rotations} rotations");
    if support::faults::soaking() {
        println!(
            "SOAK rotation storm: {total} lines, {rotations} rotations over {FILES} files in {storm:?}; all once, in order"
        );
    }
    app.shutdown().await;
}

/// `[0, 1, 2, 7, 8]` as `[(0, 2), (7, 8)]`: how lines arrived, in short.
fn runs(seqs: &[usize]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &n in seqs {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == n => *end = n,
            _ => out.push((n, n)),
        }
    }
    out
}
