//! Harnesses of the fault tests: a node's container-log folders, the logtrain
//! binary run as a child process (so it can be killed and its memory read), a
//! syslog receiver that counts octet-counted frames and can be told to read
//! slowly, and the scaling of test durations by `LOGTRAIN_SOAK_SECS` (the
//! `tests/soak` script runs the same tests at full length).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// How long a phase of a fault test lasts: `LOGTRAIN_SOAK_SECS` when set (the
/// soak script), else `default_secs`.
pub fn phase(default_secs: f64) -> Duration {
    let secs = std::env::var("LOGTRAIN_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(default_secs);
    Duration::from_secs_f64(secs)
}

/// Whether the tests run at soak length (so they can print their figures).
pub fn soaking() -> bool {
    std::env::var("LOGTRAIN_SOAK_SECS").is_ok()
}

pub const CONTAINER_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A node's log folders: `containers/` holds links into `pods/`.
pub struct Node {
    pub root: tempfile::TempDir,
}

impl Node {
    pub fn new() -> Node {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("containers")).unwrap();
        std::fs::create_dir_all(root.path().join("out")).unwrap();
        Node { root }
    }
    pub fn containers(&self) -> PathBuf {
        self.root.path().join("containers")
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }
    /// Creates the pod's log folder and the link; returns the real `0.log` path.
    pub fn pod(&self, ns: &str, pod: &str, container: &str) -> PathBuf {
        let dir = self
            .root
            .path()
            .join("pods")
            .join(format!("{ns}_{pod}_uid"))
            .join(container);
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("0.log");
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        std::os::unix::fs::symlink(
            &log,
            self.containers()
                .join(format!("{pod}_{ns}_{container}-{CONTAINER_ID}.log")),
        )
        .unwrap();
        log
    }
}

impl Default for Node {
    fn default() -> Self {
        Self::new()
    }
}

/// A CRI line as containerd writes it.
pub fn cri(msg: &str) -> String {
    format!("2026-11-22T10:00:00.123456789Z stdout F {msg}\n")
}

pub fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// The logtrain binary, run with a YAML file and environment variables, its
/// output captured in files. Killed (SIGKILL) when dropped.
pub struct Binary {
    child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    pub http: u16,
}

/// Where a binary started in `dir` buffers: beside it, shared by the runs of
/// one test; inside it when `dir` is a temporary folder of its own (beside it
/// would be the system's temporary folder, shared by every test).
fn buffers_beside(dir: &Path) -> PathBuf {
    match dir.parent() {
        Some(p) if p != std::env::temp_dir() && p != Path::new("/tmp") => p.join("buffers"),
        _ => dir.join("buffers"),
    }
}

impl Binary {
    /// Starts the binary in `dir` and waits until it logged "logtrain started.".
    /// `LOG_FORMAT=json`, `HTTP_PORT=0` and `DRAIN_BUFFER_PATH` (`buffers`
    /// beside `dir`) are set unless `env` says otherwise.
    pub fn start(dir: &Path, yaml: &str, env: &[(&str, &str)]) -> Binary {
        std::fs::create_dir_all(dir).unwrap();
        let conf = dir.join("logtrain.yaml");
        std::fs::write(&conf, yaml).unwrap();
        let stdout = dir.join("stdout.log");
        let stderr = dir.join("stderr.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_logtrain"));
        cmd.arg("--config")
            .arg(&conf)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LOG_FORMAT", "json")
            .env("HTTP_PORT", "0")
            .env("LISTEN_ADDRESS", "127.0.0.1")
            // Beside the runs of one test, so a restart finds what an earlier run buffered.
            .env("DRAIN_BUFFER_PATH", buffers_beside(dir))
            .stdin(Stdio::null())
            .stdout(append_file(&stdout))
            .stderr(append_file(&stderr));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start the logtrain binary");
        let mut b = Binary {
            child,
            stdout,
            stderr,
            http: 0,
        };
        let start = Instant::now();
        let mark = std::fs::read(&b.stderr).map(|t| t.len()).unwrap_or(0);
        loop {
            let text = std::fs::read(&b.stderr).unwrap_or_default();
            let fresh = String::from_utf8_lossy(&text[mark.min(text.len())..]).into_owned();
            if let Some(line) = fresh.lines().find(|l| l.contains("logtrain started.")) {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let addr = v["fields"]["http"].as_str().unwrap();
                b.http = addr.rsplit(':').next().unwrap().parse().unwrap();
                b.await_ready(Duration::from_secs(5));
                return b;
            }
            if let Ok(Some(status)) = b.child.try_wait() {
                panic!("logtrain exited with {status} before starting:\n{}", b.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "logtrain did not start:\n{}",
                b.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits, at most `limit`, for `/readyz` to answer 200: every datasource
    /// has installed its routes, so lines sent from now on are routed. A test
    /// of a process that is not to become ready goes on after `limit`.
    pub fn await_ready(&self, limit: Duration) {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if http_status(self.http, "/readyz") == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the binary wrote to stderr so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stderr).unwrap_or_default()).into_owned()
    }

    /// Sends a signal (`TERM`, `KILL`, …) with kill(1).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit; returns its exit code (None: killed by a
    /// signal) and how long it took, or panics after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), start.elapsed());
            }
            assert!(
                start.elapsed() < limit,
                "logtrain did not exit within {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `kill -9`, then reap.
    pub fn kill9(&mut self) {
        self.signal("KILL");
        self.wait_exit(Duration::from_secs(5));
    }

    /// A field of `/proc/PID/status` in KiB (`VmHWM`, `VmRSS`).
    pub fn status_kib(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        text.lines()
            .find(|l| l.starts_with(&format!("{field}:")))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    /// The `/metrics` page.
    pub fn metrics(&self) -> String {
        http_get(self.http, "/metrics")
    }

    /// The port the syslog listener of `input` (`syslog_tcp`, `syslog_udp`)
    /// bound, from its start-up line (it was asked for port 0).
    pub fn listener_port(&self, input: &str) -> u16 {
        let log = self.log();
        let l = log
            .lines()
            .find(|l| l.contains("Syslog listener started.") && l.contains(&format!("\"{input}\"")))
            .unwrap_or_else(|| panic!("no {input} listener in:\n{log}"));
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        v["fields"]["addr"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// The value of one sample of `/metrics` (`name{labels}` exactly), 0 when absent.
    pub fn metric(&self, sample: &str) -> u64 {
        metric_in(&self.metrics(), sample)
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn append_file(p: &Path) -> std::fs::File {
    std::fs::OpenOptions::new().create(true).append(true).open(p).unwrap()
}

/// The value of `sample` in a Prometheus text page, 0 when absent.
pub fn metric_in(page: &str, sample: &str) -> u64 {
    page.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .map(|v| v.trim().parse::<f64>().unwrap() as u64)
        .unwrap_or(0)
}

/// The status of a blocking HTTP/1.0 GET on 127.0.0.1, `None` when nothing answers.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// A blocking HTTP/1.0 GET on 127.0.0.1; returns the body.
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// A syslog receiver on 127.0.0.1 that splits octet-counted frames and keeps
/// each message (the part after the RFC 5424 header is not parsed: tests look
/// for their own markers). With a read pause it takes at most one 4 KiB read
/// per pause, a deliberately slow drain.
pub struct Receiver {
    pub port: u16,
    frames: Arc<Mutex<Vec<String>>>,
    by_key: Arc<Mutex<std::collections::HashMap<String, usize>>>,
    count: Arc<AtomicUsize>,
    pause: Arc<Mutex<Option<Duration>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start(keep: bool) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frames: Arc<Mutex<Vec<String>>> = Arc::default();
        let by_key: Arc<Mutex<std::collections::HashMap<String, usize>>> = Arc::default();
        let count = Arc::new(AtomicUsize::new(0));
        let pause: Arc<Mutex<Option<Duration>>> = Arc::default();
        let (f, c, p, k) = (frames.clone(), count.clone(), pause.clone(), by_key.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                let (f, c, p, k) = (f.clone(), c.clone(), p.clone(), k.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = vec![0u8; 64 << 10];
                    loop {
                        let wait = *p.lock();
                        let want = if wait.is_some() { 4096 } else { chunk.len() };
                        let n = match s.read(&mut chunk[..want]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        buf.extend_from_slice(&chunk[..n]);
                        let mut at = 0;
                        while let Some(sp) = buf[at..].iter().position(|&c| c == b' ') {
                            let len: usize = std::str::from_utf8(&buf[at..at + sp]).unwrap().parse().unwrap();
                            if buf.len() < at + sp + 1 + len {
                                break;
                            }
                            if keep {
                                let frame = &buf[at + sp + 1..at + sp + 1 + len];
                                let frame = String::from_utf8_lossy(frame).into_owned();
                                let key = message(&frame).split(' ').next().unwrap_or("").to_string();
                                *k.lock().entry(key).or_default() += 1;
                                f.lock().push(frame);
                            }
                            c.fetch_add(1, Ordering::Relaxed);
                            at += sp + 1 + len;
                        }
                        buf.drain(..at);
                        if let Some(w) = wait {
                            tokio::time::sleep(w).await;
                        }
                    }
                });
            }
        });
        Receiver {
            port,
            frames,
            by_key,
            count,
            pause,
            task,
        }
    }

    /// Frames received so far.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// The frames kept so far (when started with `keep`).
    pub fn frames(&self) -> Vec<String> {
        self.frames.lock().clone()
    }

    /// Frames kept so far whose message starts with `key` and a space.
    pub fn count_of(&self, key: &str) -> usize {
        self.by_key.lock().get(key).copied().unwrap_or(0)
    }

    /// Reads slowly (`Some`) or at full speed (`None`) from now on.
    pub fn set_pause(&self, pause: Option<Duration>) {
        *self.pause.lock() = pause;
    }

    pub fn url(&self) -> String {
        format!("syslog+tcp://127.0.0.1:{}", self.port)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The message of an RFC 5424 frame (after the seven header fields; structured
/// data is `-` in everything these tests send).
pub fn message(frame: &str) -> &str {
    frame.splitn(8, ' ').nth(7).unwrap_or("")
}
