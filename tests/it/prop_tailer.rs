//! The tailer against a model: random sequences of writes, rotations by
//! rename, copytruncates and restarts of logtrain, applied to a real file that
//! the real tailer follows. The model says what must come out: every line
//! written, once, in order. (A copytruncate waits until the tailer caught up
//! and saw the truncation, as `tests/faults_rotation.rs` explains; nothing else
//! waits.) Few cases, each a real run; `LOGTRAIN_PROP_TAILER_CASES` for more.
//!
//! Each (re)start waits until the tailer holds the live file: a copytruncate
//! before that open is invisible to any reader (the file is simply shorter
//! than its checkpoint), so the model's "truncation seen" would never come.

use crate::support;

use std::io::Write;
use std::time::Duration;

use logtrain::app::App;
use logtrain::config::{Config, StaticRoute};
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestRunner};
use support::faults::{Node, Receiver, message};
use support::wait_until;

#[derive(Clone, Debug)]
enum Action {
    /// Append this many lines (written in one go or line by line).
    Write(usize, bool),
    /// Rename the live file away and start a new one.
    Rotate,
    /// Copy, then truncate in place (after the tailer caught up).
    CopyTruncate,
    /// Stop logtrain cleanly and start it again (checkpoints carry over).
    Restart,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        5 => (1usize..300, any::<bool>()).prop_map(|(n, bulk)| Action::Write(n, bulk)),
        2 => Just(Action::Rotate),
        1 => Just(Action::CopyTruncate),
        1 => Just(Action::Restart),
    ]
}

fn truncations() -> u64 {
    logtrain::telemetry::counter("logtrain_tail_truncations_total", &[]).get()
}

async fn start(node: &Node, rx: &Receiver) -> App {
    use std::os::unix::fs::MetadataExt;
    let cp = node.path("state/checkpoints.json");
    // Checkpoints are saved by renaming a new file over the old one.
    let before = std::fs::metadata(&cp).map(|m| m.ino()).ok();
    let app = App::start(Config {
        kubernetes: true,
        http_port: 0,
        listen_address: "127.0.0.1".into(),
        kubernetes_log_path: node.containers(),
        checkpoint_path: node.path("state/checkpoints.json"),
        shutdown_timeout: 5,
        routes: vec![StaticRoute {
            hostname: "web.default".into(),
            drains: vec![rx.url()],
        }],
        ..crate::support::config()
    });
    assert!(app.wait_ready().await);
    logtrain::input::start(&app).await.unwrap();
    // The tailer opens files in a task of its own: a file rotated away between
    // discovery and that open is never read (a known gap, see the module doc).
    // Wait until it holds the live file, which its checkpoint shows once this
    // run saved it (a truncation before that open would go unseen, rightly).
    let live = std::fs::metadata(node.path("pods/default_web-1-a_uid/web/0.log")).unwrap();
    wait_until("the tailer to open the live file", Duration::from_secs(10), || {
        let fresh = std::fs::metadata(&cp).is_ok_and(|m| Some(m.ino()) != before);
        fresh
            && std::fs::read_to_string(&cp)
                .ok()
                .is_some_and(|t| t.contains(&format!("\"ino\": {}", live.ino())))
    })
    .await;
    app
}

async fn run(actions: Vec<Action>) -> Result<(), TestCaseError> {
    let node = Node::new();
    let log = node.pod("default", "web-1-a", "web");
    let rx = Receiver::start(true).await;
    let mut app = start(&node, &rx).await;
    let mut written = 0usize;
    let mut rotation = 0;
    let open = |p: &std::path::Path| std::fs::OpenOptions::new().append(true).create(true).open(p).unwrap();
    let mut f = open(&log);
    for a in &actions {
        match a {
            Action::Write(n, bulk) => {
                let lines: Vec<String> = (written..written + n)
                    .map(|i| format!("2026-11-22T10:00:00.1Z stdout F line {i}\n"))
                    .collect();
                if *bulk {
                    f.write_all(lines.concat().as_bytes()).unwrap();
                } else {
                    for l in &lines {
                        f.write_all(l.as_bytes()).unwrap();
                    }
                }
                written += n;
            }
            Action::Rotate => {
                rotation += 1;
                std::fs::rename(&log, log.with_extension(format!("log.{rotation:04}"))).unwrap();
                f = open(&log);
            }
            Action::CopyTruncate => {
                wait_until("the tailer to catch up", Duration::from_secs(20), || {
                    rx.count() >= written
                })
                .await;
                let seen = truncations();
                rotation += 1;
                // Named as logrotate's `compress` leaves it: the tailer never reads
                // `.gz` siblings. (An uncompressed copy next to a file that is also
                // rotated by rename would be taken for a file fallen behind on.)
                let copy = log.with_extension(format!("log.{rotation:04}.gz"));
                std::fs::copy(&log, &copy).unwrap();
                std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&log)
                    .unwrap();
                if std::fs::metadata(&copy).unwrap().len() > 0 {
                    wait_until("the truncation to be seen", Duration::from_secs(20), || {
                        truncations() > seen
                    })
                    .await;
                }
            }
            Action::Restart => {
                let report = app.shutdown().await;
                prop_assert!(report.unflushed.is_empty());
                app = start(&node, &rx).await;
            }
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while rx.count() < written && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got: Vec<usize> = rx
        .frames()
        .iter()
        .map(|fr| message(fr).strip_prefix("line ").unwrap().parse().unwrap())
        .collect();
    let missing: Vec<usize> = (0..written).filter(|i| !got.contains(i)).collect();
    prop_assert_eq!(
        got,
        (0..written).collect::<Vec<_>>(),
        "after {:?}; missing {:?}",
        actions,
        missing
    );
    app.shutdown().await;
    Ok(())
}

fn config_rng() -> proptest::test_runner::RngAlgorithm {
    proptest::test_runner::RngAlgorithm::ChaCha
}

#[test]
fn the_tailer_delivers_what_the_model_says_through_random_rotations_and_restarts() {
    let cases = std::env::var("LOGTRAIN_PROP_TAILER_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let config = PropConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 4,
        ..PropConfig::default()
    };
    // `cargo test` runs a fixed set of cases; the soak run explores new ones.
    let mut runner = match std::env::var("LOGTRAIN_PROP_TAILER_CASES") {
        Ok(_) => TestRunner::new(config),
        Err(_) => TestRunner::new_with_rng(config, proptest::test_runner::TestRng::deterministic_rng(config_rng())),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let result = runner.run(&proptest::collection::vec(action(), 1..12), |actions| {
        rt.block_on(run(actions))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// A file rotated away while logtrain was down still holds lines past its
/// checkpoint: they come before the new file's, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_of_a_file_rotated_while_logtrain_was_down_are_read_first() {
    let node = Node::new();
    let log = node.pod("default", "web-1-a", "web");
    let rx = Receiver::start(true).await;
    let line = |i: usize| format!("2026-11-22T10:00:00.1Z stdout F line {i}\n");
    let app = start(&node, &rx).await;
    support::faults::append(&log, &(0..100).map(line).collect::<String>());
    wait_until("the first lines", Duration::from_secs(10), || rx.count() == 100).await;
    assert!(app.shutdown().await.unflushed.is_empty());
    // While down: more lines, a rotation, a new file.
    support::faults::append(&log, &(100..150).map(line).collect::<String>());
    std::fs::rename(&log, log.with_extension("log.20261122-000001")).unwrap();
    std::fs::write(&log, (150..180).map(line).collect::<String>()).unwrap();
    let app = start(&node, &rx).await;
    wait_until("every line", Duration::from_secs(10), || rx.count() >= 180).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got: Vec<usize> = rx
        .frames()
        .iter()
        .map(|fr| message(fr).strip_prefix("line ").unwrap().parse().unwrap())
        .collect();
    assert_eq!(got, (0..180).collect::<Vec<_>>());
    app.shutdown().await;
}
