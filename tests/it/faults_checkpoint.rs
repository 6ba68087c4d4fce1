//! The checkpoint folder runs out of space: a 64 KiB tmpfs filled to the brim
//! under `CHECKPOINT_PATH`. logtrain must say so once, count every failed save
//! in `logtrain_checkpoint_errors_total`, keep routing, and save again (and say
//! so) once space returns. Needs root for `mount -t tmpfs`, as the suite has.
//!
//! A checkpoint file found damaged at start is kept aside (renamed beside it,
//! never overwritten), said once with where it went, counted in
//! `logtrain_checkpoint_corrupt_total`, and tailing goes on without it.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::faults::{Binary, Node, Receiver, append, cri};
use support::wait_until;

/// A tiny tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount -t tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }

    /// Fills every free byte.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_checkpoint_disk_is_logged_counted_routed_through_and_recovered() {
    let node = Node::new();
    let log = node.pod("default", "web-1-a", "web");
    let state = node.path("state");
    let disk = Tmpfs::mount(&state, "64k");
    disk.fill();
    let rx = Receiver::start(false).await;
    let yaml = format!("routes:\n  - hostname: web.default\n    drains: [\"{}\"]\n", rx.url());
    let checkpoints = state.join("checkpoints.json");
    let containers = node.containers();
    let env = [
        ("KUBERNETES", "true"),
        ("KUBERNETES_LOG_PATH", containers.to_str().unwrap()),
        ("CHECKPOINT_PATH", checkpoints.to_str().unwrap()),
    ];
    let mut bin = Binary::start(&node.path("run"), &yaml, &env);
    let mut written = 0;
    for _ in 0..200 {
        append(&log, &cri(&format!("line {written}")));
        written += 1;
    }
    wait_until("lines routed", Duration::from_secs(10), || rx.count() == written).await;
    let errors = || bin.metric("logtrain_checkpoint_errors_total");
    wait_until("failed saves to be counted", Duration::from_secs(10), || errors() >= 2).await;
    let warned = bin
        .log()
        .lines()
        .filter(|l| l.contains("Cannot save checkpoints; still routing, will retry."))
        .count();
    assert_eq!(warned, 1, "said once, counted each time:\n{}", bin.log());
    assert!(bin.log().contains("No space left on device"), "{}", bin.log());

    // Routing goes on while saves fail.
    for _ in 0..200 {
        append(&log, &cri(&format!("line {written}")));
        written += 1;
    }
    wait_until("routing goes on", Duration::from_secs(10), || rx.count() == written).await;

    // Space returns: saved again, at the end of what was delivered.
    disk.free();
    let size = std::fs::metadata(&log).unwrap().len();
    wait_until("saves to resume", Duration::from_secs(10), || {
        bin.log().contains("Checkpoints are being saved again.")
            && std::fs::read_to_string(&checkpoints)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .is_some_and(|v| v["files"][0]["offset"].as_u64() == Some(size))
    })
    .await;
    let stuck = errors();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(errors(), stuck, "no more failures once space returned");
    bin.signal("TERM");
    assert_eq!(bin.wait_exit(Duration::from_secs(10)).0, Some(0));
    drop(disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_checkpoint_file_is_kept_aside_counted_and_tailing_goes_on() {
    let node = Node::new();
    let log = node.pod("default", "web-1-a", "web");
    let state = node.path("state");
    std::fs::create_dir_all(&state).unwrap();
    let checkpoints = state.join("checkpoints.json");
    // Cut short, as by a disk that lost the end of the file.
    let damaged = b"{\n  \"version\": 1,\n  \"files\": [\n    {\n      \"path\": \"/var/log/contai";
    std::fs::write(&checkpoints, damaged).unwrap();
    for i in 0..100 {
        append(&log, &cri(&format!("line {i}")));
    }
    let rx = Receiver::start(false).await;
    let yaml = format!("routes:\n  - hostname: web.default\n    drains: [\"{}\"]\n", rx.url());
    let containers = node.containers();
    let env = [
        ("KUBERNETES", "true"),
        ("KUBERNETES_LOG_PATH", containers.to_str().unwrap()),
        ("CHECKPOINT_PATH", checkpoints.to_str().unwrap()),
    ];
    let mut bin = Binary::start(&node.path("run"), &yaml, &env);
    wait_until("lines routed", Duration::from_secs(10), || rx.count() == 100).await;

    // Kept beside it under a dated name, as it was.
    let kept: Vec<PathBuf> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("checkpoints.json.corrupt-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let name = kept[0].file_name().unwrap().to_str().unwrap();
    let time = name.strip_prefix("checkpoints.json.corrupt-").unwrap();
    assert!(
        time.len() == 16 && time.as_bytes()[8] == b'T' && time.ends_with('Z'),
        "a UTC time like 20261122T100000Z: {name}"
    );
    assert_eq!(std::fs::read(&kept[0]).unwrap(), damaged);
    let said: Vec<String> = bin
        .log()
        .lines()
        .filter(|l| l.contains("Checkpoint file unusable; kept aside"))
        .map(String::from)
        .collect();
    assert_eq!(said.len(), 1, "said once:\n{}", bin.log());
    assert!(
        said[0].contains(kept[0].to_str().unwrap()),
        "with where it went: {}",
        said[0]
    );
    assert_eq!(bin.metric("logtrain_checkpoint_corrupt_total"), 1);

    // Tailing goes on, and checkpoints are saved anew.
    append(&log, &cri("line 100"));
    wait_until("a line written after start", Duration::from_secs(10), || {
        rx.count() == 101
    })
    .await;
    let size = std::fs::metadata(&log).unwrap().len();
    wait_until("a new checkpoint at the end", Duration::from_secs(10), || {
        std::fs::read_to_string(&checkpoints)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v["files"][0]["offset"].as_u64() == Some(size))
    })
    .await;
    assert_eq!(std::fs::read(&kept[0]).unwrap(), damaged, "the kept copy is left alone");
    bin.signal("TERM");
    assert_eq!(bin.wait_exit(Duration::from_secs(10)).0, Some(0));
}
