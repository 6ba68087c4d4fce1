//! The checkpoint folder runs out of space: a 64 KiB tmpfs filled to the brim
//! under `CHECKPOINT_PATH`. logtrain must say so once, count every failed save
//! in `logtrain_checkpoint_errors_total`, keep routing, and save again (and say
//! so) once space returns. Needs root for `mount -t tmpfs`, as the suite has.

mod support;

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
