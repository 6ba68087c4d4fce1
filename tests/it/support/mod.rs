//! Harnesses shared by the integration tests: real peers started per test
//! (rsyslog), TLS material made at test time, and small waiting helpers.
//! Declared once in `tests/it/main.rs`; each test module reaches it as
//! `crate::support`.

pub mod connect_proxy;
pub mod disk;
pub mod drains;
pub mod envoy;
pub mod es_bulk;
pub mod faults;
pub mod http_recorder;
pub mod inputs;
pub mod kube_api;
pub mod kube_proxy;
pub mod late;
pub mod postgres;
pub mod rsyslog;
pub mod tls;

use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released), for a port that a child
/// process (rsyslog, Envoy, PostgreSQL, a logtrain binary) must be told before it
/// binds it. Racy: between the release and the child's bind another test may take
/// the port. Under `cargo nextest run` (tests/run) that is only a test running at the
/// same time, not a thread of the same process; a listener of our own is better
/// bound on port 0 and its address passed on ([`Reserved`] when the port must be
/// known before anything listens).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A port on 127.0.0.1 held for the whole test: bound but not listening, so a
/// connection to it is refused (a receiver that is down) and no other test can take
/// it; [`Reserved::listen`] brings the receiver up on it.
pub struct Reserved(socket2::Socket);

impl Reserved {
    pub fn new() -> Reserved {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        Reserved(socket)
    }

    pub fn port(&self) -> u16 {
        self.0.local_addr().unwrap().as_socket().unwrap().port()
    }

    /// Starts listening (inside a tokio runtime).
    pub fn listen(self) -> tokio::net::TcpListener {
        self.0.listen(1024).unwrap();
        self.0.set_nonblocking(true).unwrap();
        tokio::net::TcpListener::from_std(self.0.into()).unwrap()
    }
}

/// Whether the calling test has the process to itself, as a test that reads the
/// whole `/metrics` page needs. Under `cargo nextest run` every test does. Under
/// `cargo test`, where the tests of all modules share one process, this runs the
/// test `module::name` again alone in a child process, fails if it fails there, and
/// returns false: the caller returns at once.
pub fn alone(module: &str, name: &str) -> bool {
    let own = std::env::var_os("NEXTEST_EXECUTION_MODE").is_some_and(|m| m == "process-per-test");
    if own || std::env::var_os("LOGTRAIN_TEST_ALONE").is_some() {
        return true;
    }
    let test = format!(
        "{}::{name}",
        module.split_once("::").map_or(module, |(_crate, path)| path)
    );
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([&test, "--exact", "--test-threads=1"])
        .env("LOGTRAIN_TEST_ALONE", "1")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("1 passed"),
        "{test} alone:\n{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// Polls `f` every 10 ms until it is true or `limit` passes; panics naming `what`.
pub async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Lines of a file (empty when it does not exist yet).
pub fn read_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).lines().map(String::from).collect())
        .unwrap_or_default()
}

/// Log lines of this test binary (tracing at info, no colours), for checking
/// what was said and how often. The first call installs the subscriber.
pub fn captured_logs() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::sync::{Arc, Mutex, OnceLock};
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_env_filter("info")
            .with_writer(move || Capture(w.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The default configuration with the drains' disk buffers in a folder of
/// this test process's own, so no test finds what another left behind (and
/// replays it at start).
pub fn config() -> logtrain::config::Config {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    logtrain::config::Config {
        drain_buffer_path: dir.path().join("buffers"),
        ..logtrain::config::Config::default()
    }
}
