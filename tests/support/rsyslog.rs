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
    pub dir: PathBuf,
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
        let r = Rsyslog {
            child,
            dir: dir.to_path_buf(),
        };
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
