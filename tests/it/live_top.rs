//! `logtrain top` as a user sees it: the binary runs in a real terminal
//! (a tmux pane of its own server), reads two logtrain processes and an
//! address where nothing listens, and the pane is captured while lines flow:
//! the drain and the input show a rate, the dead node is named, `q` quits.

use std::process::Command;
use std::time::Duration;

use support::faults::Receiver;
use support::wait_until;

use crate::live_tail::{logtrain, send, syslog_tcp_port};
use crate::support;

/// A tmux server of the test's own (its socket name), killed when dropped.
struct Tmux(String);

impl Tmux {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.0)
            .args(args)
            .output()
            .expect("tmux runs")
    }

    fn pane(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
    }

    fn alive(&self) -> bool {
        self.run(&["has-session", "-t", "top"]).status.success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_renders_drains_inputs_and_silent_nodes_in_a_terminal_and_q_quits() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(false).await;
    let a = logtrain(&dir.path().join("a"), &[rx.url()], &[]);
    let b = logtrain(&dir.path().join("b"), &[rx.url()], &[]);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let cmd = format!(
        "{} top --endpoint http://127.0.0.1:{} --endpoint http://127.0.0.1:{} --endpoint http://127.0.0.1:{dead_port}",
        env!("CARGO_BIN_EXE_logtrain"),
        a.http,
        b.http
    );
    let tmux = Tmux(format!("logtrain-top-{}", std::process::id()));
    let started = tmux.run(&["new-session", "-d", "-s", "top", "-x", "100", "-y", "22", &cmd]);
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));

    // Lines keep flowing to both nodes while the pane is read.
    let (pa, pb) = (syslog_tcp_port(&a), syslog_tcp_port(&b));
    let flow = tokio::spawn(async move {
        for round in 0..60 {
            send(pa, (0..500).map(|i| format!("top-a-{round}-{i}"))).await;
            send(pb, (0..500).map(|i| format!("top-b-{round}-{i}"))).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let drain = rx.url();
    let sending = |pane: &str| {
        let Some(row) = pane.lines().find(|l| l.contains(&drain)) else {
            return false;
        };
        // The first number after the drain id is SENT/s.
        let after = &row[row.find(&drain).unwrap()..];
        after.split_whitespace().nth(1).is_some_and(|n| n != "0")
    };
    let mut pane = String::new();
    wait_until(
        "top shows the drain sending, the input and the dead node",
        Duration::from_secs(20),
        || {
            pane = tmux.pane();
            sending(&pane)
                && pane.contains("syslog_tcp")
                && pane.contains(&format!("not answering: http://127.0.0.1:{dead_port}"))
        },
    )
    .await;
    println!("{pane}");
    assert!(
        pane.contains("logtrain top: 3 nodes, every 1s, summed over nodes; q quits"),
        "{pane}"
    );
    assert!(pane.contains("SENT/s") && pane.contains("RECORDS/s"), "{pane}");

    tmux.run(&["send-keys", "-t", "top", "q"]);
    wait_until("q ends top", Duration::from_secs(5), || !tmux.alive()).await;
    flow.abort();
}
