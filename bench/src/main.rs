//! `logtrain-bench`: the load generators and the counting receiver behind
//! `bench/run`, which compares logtrain with rsyslog and syslog-ng on the same
//! input. One OS thread per connection (the Envoy client excepted, which uses
//! the crate's own HTTP/2 stack and message types; `kube-api` is the test
//! suite's API stand-in on tokio), so the tool is never what limits a
//! measurement.
//!
//! - `gen`: deterministic CRI container logs (kubelet file names);
//! - `recv`: counts syslog messages (octet-counted and newline-framed) on one or
//!   more ports and prints one JSON line;
//! - `fresh`: writes timestamped lines at a fixed rate and reports the latency
//!   until they arrive on its own receiver;
//! - `syslog-load`: pushes pre-generated RFC 5424 messages over TCP;
//! - `syslog-file`: writes those messages octet-counted to a file (for checking
//!   the receiver with `socat`);
//! - `udp-load`: sends those messages as datagrams at a paced rate;
//! - `envoy-load`: streams Envoy HTTP access-log entries over the real gRPC API;
//! - `http-recv`: counts the NDJSON lines of HTTP POSTs (gzipped or not);
//! - `fairness`: latency of many quiet files while one file drains a backlog;
//! - `ready`: starts a command and times it until `/readyz` answers 200;
//! - `kube-api`: the test suite's paging Kubernetes API stand-in with a
//!   synthetic cluster of thousands of workloads (the `kube_scale` scenario).

mod envoy;
mod fresh;
mod generate;
mod kube;
mod load;
mod ndjson;
mod recv;

use std::collections::HashMap;
use std::process::ExitCode;

/// `--key value` flags after the subcommand.
pub struct Args(HashMap<String, String>, Vec<String>);

impl Args {
    fn parse(args: &[String]) -> Result<Args, String> {
        let mut map = HashMap::new();
        let mut rest = Vec::new();
        let mut i = 0;
        while i < args.len() {
            if args[i] == "--" {
                rest = args[i + 1..].to_vec();
                break;
            }
            let key = args[i]
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {:?}", args[i]))?;
            let value = args.get(i + 1).ok_or_else(|| format!("--{key} needs a value"))?;
            map.insert(key.to_string(), value.clone());
            i += 2;
        }
        Ok(Args(map, rest))
    }

    pub fn str(&self, key: &str, default: &str) -> String {
        self.0.get(key).cloned().unwrap_or_else(|| default.to_string())
    }

    pub fn num(&self, key: &str, default: u64) -> Result<u64, String> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v
                .replace('_', "")
                .parse()
                .map_err(|_| format!("--{key} {v:?} is not a number")),
        }
    }

    pub fn rest(&self) -> &[String] {
        &self.1
    }
}

const USAGE: &str = "usage: logtrain-bench <gen|recv|http-recv|fresh|fairness|syslog-load|syslog-file|udp-load|envoy-load|ready|kube-api> [--flag value]…
  gen          --dir D [--lines 2000000] [--files 1] [--app bench] [--namespace default]
  recv         --ports P[,P…] [--expect N] [--idle-ms 3000] [--timeout-s 300] [--ready-file F]
  http-recv    --ports P[,P…] [--expect N] [--idle-ms 3000] [--timeout-s 300] [--ready-file F]
  fresh        --file F --port P [--rate 10000] [--secs 5] [--ready-file F] [--warmup-ms 0]
  fairness     --dir D --backlog F --backlog-src F --backlog-lines N --port P [--files 50] [--rate 10]
               [--secs 10] [--after-ms 1000] [--wait-s 60] [--ready-file F] [--warmup-ms 0]
  syslog-load  --addr HOST:PORT [--count 2000000] [--hostname bench.default] [--conns 1]
  syslog-file  --out F [--count 2000000] [--hostname bench.default]
  udp-load     --addr HOST:PORT [--count 1000000] [--rate 200000] [--hostname bench.default]
  envoy-load   --addr HOST:PORT [--count 1000000] [--batch 100] [--streams 2]
  ready        --port HTTP_PORT [--timeout-ms 5000] -- COMMAND ARGS…
  kube-api     --kubeconfig F [--deployments 10000] [--replicasets 3] [--jobs 2000] [--pods 50] [--last-applied 2048]";

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = argv.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = Args::parse(&argv[1..]).and_then(|a| match cmd.as_str() {
        "gen" => generate::run(&a),
        "recv" => recv::run(&a),
        "http-recv" => ndjson::run(&a),
        "fresh" => fresh::run(&a),
        "fairness" => fresh::fairness(&a),
        "udp-load" => load::udp(&a),
        "envoy-load" => envoy::run(&a),
        "syslog-load" => load::run(&a),
        "syslog-file" => load::write_file(&a),
        "ready" => fresh::ready(&a),
        "kube-api" => kube::run(&a),
        _ => Err(format!("unknown subcommand {cmd:?}\n{USAGE}")),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("logtrain-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A small deterministic generator (xorshift64*), so every run gets the same input.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Appends printable text of exactly `len` bytes (words of lowercase letters).
pub fn filler(rng: &mut Rng, len: usize, out: &mut Vec<u8>) {
    let start = out.len();
    while out.len() - start < len {
        if out.len() > start && rng.below(7) == 0 {
            out.push(b' ');
        } else {
            out.push(b'a' + rng.below(26) as u8);
        }
    }
}
