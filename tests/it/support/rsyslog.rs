//! A private rsyslog instance per test: its own config, work directory, pid file
//! and ports, killed when dropped. Used as a receiving drain and as a sender.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The rsyslogd binary (Debian puts it in /usr/sbin).
pub fn rsyslogd() -> PathBuf {
    for p in ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("rsyslogd is not installed: run tests/run, which installs rsyslog and rsyslog-gnutls");
}

/// A running rsyslogd.
pub struct Rsyslog {
    child: Child,
}

impl Rsyslog {
    /// Starts rsyslogd with `body` (RainerScript) after a preamble that sets the
    /// work directory to `dir`. Waits until every port in `tcp_ports` accepts.
    pub fn start(dir: &Path, body: &str, tcp_ports: &[u16]) -> Rsyslog {
        std::fs::create_dir_all(dir.join("work")).unwrap();
        let conf = dir.join("rsyslog.conf");
        let text = format!(
            "global(workDirectory=\"{}\" maxMessageSize=\"256k\")\n{body}\n",
            dir.join("work").display()
        );
        std::fs::write(&conf, text).unwrap();
        let check = Command::new(rsyslogd())
            .args(["-N1", "-f"])
            .arg(&conf)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "rsyslog config invalid: {}\n{}",
            String::from_utf8_lossy(&check.stderr),
            std::fs::read_to_string(&conf).unwrap()
        );
        let child = Command::new(rsyslogd())
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rsyslogd");
        let r = Rsyslog { child };
        let start = Instant::now();
        for &p in tcp_ports {
            while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "rsyslog did not listen on {p}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        r
    }

    /// Stops rsyslogd (it flushes its outputs on SIGTERM).
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills rsyslogd at once (a receiver that dies mid-stream).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A JSON template with every RFC 5424 field as rsyslog parsed it, one object per line.
pub const JSON_TEMPLATE: &str = r#"template(name="fields" type="list" option.jsonf="on") {
  property(outname="pri" name="pri" format="jsonf")
  property(outname="timereported" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="appname" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}"#;

/// An rsyslog config writing every message received on `inputs` (module loads
/// and `input()` statements bound to ruleset `out`) as one JSON object per line
/// (see [`JSON_TEMPLATE`]) to `out`.
pub fn receiver_conf(out: &Path, inputs: &str) -> String {
    format!(
        r#"global(parser.escapeControlCharactersOnReceive="off")
{JSON_TEMPLATE}
ruleset(name="out") {{
  action(type="omfile" file="{}" template="fields" flushOnTXEnd="on" asyncWriting="off")
}}
{inputs}
"#,
        out.display()
    )
}

/// `imtcp` on `port`, into ruleset `out`.
pub fn tcp_input(port: u16) -> String {
    format!("module(load=\"imtcp\")\ninput(type=\"imtcp\" port=\"{port}\" ruleset=\"out\")")
}

/// An rsyslog receiving on TCP `port`, writing JSON lines to `dir/out.json`.
pub fn tcp_receiver(dir: &Path, port: u16) -> Rsyslog {
    Rsyslog::start(dir, &receiver_conf(&dir.join("out.json"), &tcp_input(port)), &[port])
}

/// The JSON objects rsyslog wrote so far (complete lines only: rsyslog may be in
/// the middle of writing the last one).
pub fn entries(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read(path).unwrap_or_default();
    let complete = text.iter().rposition(|&c| c == b'\n').map_or(0, |p| p + 1);
    text[..complete]
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(l))))
        .collect()
}

/// The `msg` field of every entry so far.
pub fn msgs(path: &Path) -> Vec<String> {
    entries(path)
        .iter()
        .map(|e| e["msg"].as_str().unwrap_or_default().to_string())
        .collect()
}
