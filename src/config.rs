//! One typed configuration: logtrain's environment variables (same names and
//! defaults as the Go logtrain) and an optional YAML file with the same settings
//! in snake_case plus static routes. The environment wins over the file.
//!
//! Every setting is one row of the `settings!` table below: its field, type,
//! default (written as the variable would be), variable and doc, and the reader
//! that parses it and checks its bounds. The table makes [`Config`], its
//! `Default`, [`Config::apply_env`] and [`SETTINGS`], which `logtrain --help`,
//! the README test and the chart test read; nothing else names a variable.
//!
//! Environment access goes through the small [`Env`] trait so tests pass a map
//! instead of mutating the process environment.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::drain::{DrainKind, DrainSpec, DriverConfig};
use crate::egress::{self, Cidr};
use crate::secret::Secret;

mod legacy;
pub use legacy::GO_ONLY;
mod read;
#[macro_use]
mod table;

use read::{Choice, Flag, List, Networks, SeverityLevel, num, optional, text};
pub use table::Setting;

/// Where environment variables come from.
pub trait Env {
    fn var(&self, key: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

/// A static route: records with this hostname go to these drains.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StaticRoute {
    /// The source key (a record's hostname, e.g. `web.default`).
    pub hostname: String,
    /// Drain URLs.
    pub drains: Vec<String>,
}

/// Log output format.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Which hostnames a workload's `logtrain.akkeris.io/hostname` annotation may claim.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum HostnameScope {
    /// Only hostnames of the object's own namespace: `<name>.<namespace>`, or
    /// `<name>-<namespace>` with `AKKERIS=true`.
    #[default]
    Namespace,
    /// Any hostname (the Go logtrain): whoever can annotate a workload can read
    /// any hostname's logs and write into its drains.
    Any,
}

settings! {
    /// Port of the HTTP server (health, metrics, HTTP inputs).
    http_port: u16 = "9000", "HTTP_PORT", num("a port number");
    /// Address every listener binds.
    listen_address: String = "0.0.0.0", "LISTEN_ADDRESS", text();
    /// Envoy access-log gRPC input.
    envoy: bool = "false", "ENVOY", Flag;
    /// Port of the Envoy access-log gRPC input.
    envoy_port: u16 = "9001", "ENVOY_PORT", num("a port number");
    /// Syslog over TCP input.
    syslog_tcp: bool = "false", "SYSLOG_TCP", Flag;
    /// Port of the syslog over TCP input.
    syslog_tcp_port: u16 = "9002", "SYSLOG_TCP_PORT", num("a port number");
    /// Syslog over UDP input.
    syslog_udp: bool = "false", "SYSLOG_UDP", Flag;
    /// Port of the syslog over UDP input.
    syslog_udp_port: u16 = "9003", "SYSLOG_UDP_PORT", num("a port number");
    /// Syslog over TLS input.
    syslog_tls: bool = "false", "SYSLOG_TLS", Flag;
    /// Port of the syslog over TLS input.
    syslog_tls_port: u16 = "9004", "SYSLOG_TLS_PORT", num("a port number");
    /// Server certificate chain of the syslog TLS input: PEM text, or a path to a PEM file.
    syslog_tls_cert_pem: Option<String> = "", "SYSLOG_TLS_CERT_PEM", optional();
    /// Server private key of the syslog TLS input: PEM text or a path (never logged).
    syslog_tls_key_pem: Option<Secret> = "", "SYSLOG_TLS_KEY_PEM", optional();
    /// When set, syslog TLS clients must present a certificate signed by this CA
    /// (PEM text or path).
    syslog_tls_ca_pem: Option<String> = "", "SYSLOG_TLS_CA_PEM", optional();
    /// Accepted for compatibility with logtrain; the certificate names the server.
    syslog_tls_server_name: Option<String> = "", "SYSLOG_TLS_SERVER_NAME", optional();
    /// JSON events over HTTP.
    http_events: bool = "false", "HTTP_EVENTS", Flag;
    /// Path of the JSON events input.
    http_events_path: String = "/events", "HTTP_EVENTS_PATH", text();
    /// Syslog over HTTP.
    http_syslog: bool = "false", "HTTP_SYSLOG", Flag;
    /// Path of the syslog over HTTP input.
    http_syslog_path: String = "/syslog", "HTTP_SYSLOG_PATH", text();
    /// Tail container logs.
    kubernetes: bool = "false", "KUBERNETES", Flag;
    /// Folder of the container logs.
    kubernetes_log_path: PathBuf = "/var/log/containers", "KUBERNETES_LOG_PATH", text();
    /// Route by workload annotations.
    kubernetes_datasource: bool = "false", "KUBERNETES_DATASOURCE", Flag;
    /// Route by the Postgres drain table.
    postgres: bool = "false", "POSTGRES", Flag;
    /// The Postgres drain table's database (never logged).
    database_url: Option<Secret> = "", "DATABASE_URL", optional();
    /// Akkeris naming (`name-namespace` hostnames).
    akkeris: bool = "false", "AKKERIS", Flag;
    /// Namespaces never tailed or routed, comma-separated.
    exclude_namespaces: Vec<String> = "", "EXCLUDE_NAMESPACES", List;
    /// Only route Akkeris apps.
    only_akkeris: bool = "false", "ONLY_AKKERIS", Flag;
    /// Debug logging.
    debug: bool = "false", "DEBUG", Flag;
    /// This node's name (downward API); logtrain's `NODE` is read too.
    node_name: Option<String> = "", "NODE_NAME" | "NODE", optional();
    /// Tailer checkpoints.
    checkpoint_path: PathBuf = "/var/lib/logtrain/checkpoints.json", "CHECKPOINT_PATH", text();
    /// Seconds to flush drains on SIGTERM before exiting.
    shutdown_timeout: u64 = "25", "SHUTDOWN_TIMEOUT", num("whole seconds");
    /// Log format of logtrain itself: `text` or `json`.
    log_format: LogFormat = "text", "LOG_FORMAT", Choice(&[("text", LogFormat::Text), ("json", LogFormat::Json)]);
    /// Records each drain may queue.
    drain_queue_records: usize = "10000", "DRAIN_QUEUE_RECORDS", num("a record count").at_least(1);
    /// Bytes each drain may queue.
    drain_queue_bytes: usize = "8388608", "DRAIN_QUEUE_BYTES", num("a byte count").at_least(1);
    /// Connections per network drain at most.
    drain_max_connections: usize = "40", "DRAIN_MAX_CONNECTIONS", num("a connection count").at_least(1);
    /// Where files found at start without a checkpoint start: `beginning`, or
    /// `end` (the field is true).
    tail_start_at_end: bool = "beginning", "TAIL_START_AT", Choice(&[("beginning", false), ("end", true)]);
    /// Largest record the tailer builds from partial lines; longer ones are split
    /// (and counted).
    tail_max_record_bytes: usize = "262144", "TAIL_MAX_RECORD_BYTES", num("a byte count");
    /// Most bytes read from a file that has no checkpoint (older content is
    /// skipped, with a warning); 0 = no limit.
    tail_max_backlog_bytes: u64 = "104857600", "TAIL_MAX_BACKLOG_BYTES", num("a byte count");
    /// Files found at start without a checkpoint and last written longer ago
    /// than this many seconds start at their end (their backlog is too old to
    /// be worth sending); 0 = no limit.
    tail_max_backlog_age: u64 = "0", "TAIL_MAX_BACKLOG_AGE", num("whole seconds");
    /// Syslog severity (0–7 or a name: `emerg` … `debug`) of container lines
    /// written to stdout; the file takes the number.
    tail_stdout_severity: u8 = "info", "TAIL_STDOUT_SEVERITY", SeverityLevel;
    /// Syslog severity of container lines written to stderr.
    tail_stderr_severity: u8 = "err", "TAIL_STDERR_SEVERITY", SeverityLevel;
    /// Longest newline-delimited syslog frame (TCP, TLS, UDP, HTTP) in bytes;
    /// longer lines are truncated to it and counted.
    syslog_max_line: usize = "65536", "SYSLOG_MAX_LINE", num("a byte count").at_least(1);
    /// Longest octet-counted syslog frame in bytes; larger frames are skipped and
    /// counted as parse errors.
    syslog_max_frame: usize = "1048576", "SYSLOG_MAX_FRAME", num("a byte count").at_least(1);
    /// Open connections each TCP listener (syslog TCP, syslog TLS, HTTP) holds at
    /// most. At the cap the syslog listeners close a new connection at once; HTTP
    /// closes the connection idle longest instead (one with nothing in flight), so
    /// silent connections never keep the probes out. Both are counted. What the
    /// connections buffer is bounded by `INPUT_MEMORY_BYTES` over all of them.
    input_max_connections: usize = "1024", "INPUT_MAX_CONNECTIONS", num("a connection count").at_least(1);
    /// Seconds a connection may stay silent (or take to send its request headers,
    /// send a whole request body, or finish its TLS handshake) before it is
    /// closed.
    input_idle_timeout: u64 = "300", "INPUT_IDLE_TIMEOUT", num("whole seconds").at_least(1);
    /// Largest HTTP POST body in bytes (413 above).
    http_max_body: usize = "5242880", "HTTP_MAX_BODY", num("a byte count").at_least(1);
    /// When set, POSTs to the HTTP inputs need `Authorization: Bearer <token>`
    /// (401 otherwise); health and metrics stay open (never logged).
    http_token: Option<Secret> = "", "HTTP_TOKEN", optional();
    /// Live-tail streams (`GET /tail`, `GET /tails/ID`) open at once on this
    /// node; more are answered 503.
    tail_max_sessions: usize = "32", "TAIL_MAX_SESSIONS", num("a stream count").at_least(1);
    /// Which hostnames an annotation may claim: `namespace` (only its own
    /// namespace's) or `any` (the Go logtrain).
    route_hostname_scope: HostnameScope = "namespace", "ROUTE_HOSTNAME_SCOPE",
        Choice(&[("namespace", HostnameScope::Namespace), ("any", HostnameScope::Any)]);
    /// Networks (comma-separated CIDRs) that drains named in annotations may
    /// never connect to, checked on every resolved address; empty allows all.
    /// The default is loopback, link-local and cloud metadata addresses.
    drain_deny_networks: Vec<Cidr> = egress::DEFAULT_DENY, "DRAIN_DENY_NETWORKS", Networks;
    /// Drains one annotated object may name at most; the rest are refused.
    annotation_max_drains: usize = "16", "ANNOTATION_MAX_DRAINS", num("a drain count");
    /// Drains running at once at most; routes to more are refused.
    drain_max: usize = "1000", "DRAIN_MAX", num("a drain count");
    /// Bytes push inputs may hold before their records are queued (frames being
    /// assembled, request bodies, decoded events and gRPC messages), over all
    /// connections; when spent, TCP stops reading, HTTP answers 503, gRPC
    /// RESOURCE_EXHAUSTED and UDP drops.
    input_memory_bytes: usize = "67108864", "INPUT_MEMORY_BYTES", num("a byte count");

    file only:
    /// Static routes.
    routes: Vec<StaticRoute>;
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: YamlError,
    },
    #[error("environment variable {var}={value:?}: {expected}")]
    Env {
        var: String,
        value: String,
        expected: String,
    },
}

/// YAML configuration text that cannot be used. serde_yaml's error is not
/// kept as a source: its message quotes values, which may be drain URLs or
/// tokens; what is kept is that message without them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlError {
    /// Not a configuration (syntax, unknown field, wrong type), values removed.
    #[error("{0}")]
    Invalid(String),
    /// Settings outside their bounds, each naming the setting and its bounds.
    #[error("{}", .0.join("; "))]
    OutOfBounds(Vec<String>),
}

/// A YAML error without the values it quotes (`string "…"`, ``integer `5` ``,
/// ``unknown variant `x` ``): a value in the wrong place may be a drain URL or a
/// token. Field names and what was expected stay.
fn without_values(message: &str) -> String {
    const MARKS: [(&str, char); 6] = [
        ("string \"", '"'),
        ("integer `", '`'),
        ("floating point `", '`'),
        ("boolean `", '`'),
        ("character `", '`'),
        ("variant `", '`'),
    ];
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some((at, mark, close)) = MARKS
        .iter()
        .filter_map(|(m, c)| rest.find(m).map(|at| (at, *m, *c)))
        .min_by_key(|(at, _, _)| *at)
    {
        // Keep the kind ("string", "integer", …), drop the quoted value.
        out.push_str(&rest[..at + mark.len() - 2]);
        let mut chars = rest[at + mark.len()..].char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '\\' {
                chars.next();
            } else if c == close {
                end = Some(at + mark.len() + i + c.len_utf8());
                break;
            }
        }
        match end {
            Some(e) => rest = &rest[e..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

impl Config {
    /// Reads the YAML file (if any), then applies the environment over it.
    pub fn load(file: Option<&Path>, env: &dyn Env) -> Result<Config, Vec<ConfigError>> {
        let mut cfg = match file {
            Some(p) => Self::from_file(p).map_err(|e| vec![e])?,
            None => Config::default(),
        };
        let errors = cfg.apply_env(env);
        if errors.is_empty() { Ok(cfg) } else { Err(errors) }
    }

    /// Parses a YAML file; unknown keys are errors that name the key.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::from_yaml(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })
    }

    /// Everything wrong with a configuration at once (`logtrain check`): the
    /// file's keys that cannot be read (each one, not only the first), the
    /// environment's bad values, and [`Config::problems`] of what could be
    /// read. Returns (errors that stop loading, problems of the result).
    pub fn check(file: Option<&Path>, env: &dyn Env) -> (Vec<String>, Vec<String>) {
        let mut errors = Vec::new();
        let mut cfg = match file {
            None => Config::default(),
            Some(p) => Self::from_file(p).unwrap_or_else(|first| {
                // Unreadable as a whole: read it key by key to name each bad one.
                let (c, each) = std::fs::read_to_string(p)
                    .map(|text| Self::from_yaml_by_key(&text))
                    .unwrap_or_default();
                if each.is_empty() {
                    errors.push(first.to_string());
                }
                errors.extend(
                    each.into_iter()
                        .map(|source| ConfigError::Parse { path: p.into(), source }.to_string()),
                );
                c
            }),
        };
        errors.extend(cfg.apply_env(env).iter().map(ToString::to_string));
        let problems = cfg.problems();
        (errors, problems)
    }

    /// One warning per variable only the Go logtrain read that is set (named,
    /// with what replaced it): `logtrain check` prints them, `main` logs them.
    pub fn warnings(env: &dyn Env) -> Vec<String> {
        legacy::warnings(env)
    }

    /// Reads a YAML mapping one top-level key at a time: what can be read,
    /// and one error per key that cannot.
    fn from_yaml_by_key(text: &str) -> (Config, Vec<YamlError>) {
        let Ok(serde_yaml::Value::Mapping(map)) = serde_yaml::from_str::<serde_yaml::Value>(text) else {
            return (Config::default(), Vec::new());
        };
        let mut good = serde_yaml::Mapping::new();
        let mut errors = Vec::new();
        for (k, v) in map {
            let mut one = serde_yaml::Mapping::new();
            one.insert(k.clone(), v.clone());
            match serde_yaml::from_value::<Config>(serde_yaml::Value::Mapping(one)) {
                Ok(c) if c.out_of_bounds().is_empty() => {
                    good.insert(k, v);
                }
                Ok(c) => errors.extend(c.out_of_bounds().into_iter().map(|e| YamlError::OutOfBounds(vec![e]))),
                Err(e) => errors.push(YamlError::Invalid(without_values(&e.to_string()))),
            }
        }
        let cfg = serde_yaml::from_value(serde_yaml::Value::Mapping(good)).unwrap_or_default();
        (cfg, errors)
    }

    /// Parses YAML text.
    pub fn from_yaml(text: &str) -> Result<Config, YamlError> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let cfg: Config = serde_yaml::from_str(text).map_err(|e| YamlError::Invalid(without_values(&e.to_string())))?;
        let refused = cfg.out_of_bounds();
        if refused.is_empty() {
            Ok(cfg)
        } else {
            Err(YamlError::OutOfBounds(refused))
        }
    }

    /// The environment variables for `logtrain --help`, from [`SETTINGS`].
    pub fn help() -> String {
        table::help(SETTINGS)
    }

    /// Driver settings derived from this configuration.
    pub fn driver(&self) -> DriverConfig {
        DriverConfig {
            queue_records: self.drain_queue_records,
            queue_bytes: self.drain_queue_bytes,
            max_connections: self.drain_max_connections,
            ..DriverConfig::default()
        }
    }

    pub fn shutdown_deadline(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout)
    }

    /// Every problem with this configuration (empty when it is usable): bad drain
    /// URLs, duplicate routes, unusable file drain paths, incomplete listener settings.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen: HashSet<(&str, String)> = HashSet::new();
        for (i, r) in self.routes.iter().enumerate() {
            if r.hostname.trim().is_empty() {
                out.push(format!("routes[{i}]: hostname is empty"));
            }
            if r.drains.is_empty() {
                out.push(format!("routes[{i}] ({}): no drains listed", r.hostname));
            }
            for d in &r.drains {
                match DrainSpec::parse(d) {
                    Ok(spec) => {
                        if !seen.insert((r.hostname.as_str(), spec.key.clone())) {
                            out.push(format!("routes[{i}] ({}): duplicate route to {}", r.hostname, spec.id));
                        }
                        if let DrainKind::File { path } = &spec.kind {
                            match path.parent() {
                                Some(dir) if dir.is_dir() => {}
                                _ => out.push(format!(
                                    "routes[{i}] ({}): {}: folder {} does not exist",
                                    r.hostname,
                                    spec.id,
                                    path.parent().unwrap_or(Path::new("/")).display()
                                )),
                            }
                        }
                    }
                    Err(e) => out.push(format!("routes[{i}] ({}): {e}", r.hostname)),
                }
            }
        }
        if self.syslog_tls && (self.syslog_tls_cert_pem.is_none() || self.syslog_tls_key_pem.is_none()) {
            out.push("SYSLOG_TLS is on but SYSLOG_TLS_CERT_PEM and SYSLOG_TLS_KEY_PEM are not both set".into());
        }
        if self.postgres {
            match self.database_url.as_ref().map(Secret::expose) {
                None => out.push("POSTGRES is on but DATABASE_URL is not set".into()),
                Some(u) => {
                    if let Err(e) = crate::datasource::postgres::PostgresSource::new(u) {
                        out.push(e.to_string());
                    }
                }
            }
        }
        for (name, p) in [
            ("HTTP_EVENTS_PATH", &self.http_events_path),
            ("HTTP_SYSLOG_PATH", &self.http_syslog_path),
        ] {
            if !p.starts_with('/') {
                out.push(format!("{name}={p:?}: must start with /"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn logtrain_defaults() {
        let c = Config::load(None, &env(&[])).unwrap();
        assert_eq!(
            (
                c.http_port,
                c.envoy_port,
                c.syslog_tcp_port,
                c.syslog_udp_port,
                c.syslog_tls_port
            ),
            (9000, 9001, 9002, 9003, 9004)
        );
        assert_eq!(c.http_events_path, "/events");
        assert_eq!(c.http_syslog_path, "/syslog");
        assert_eq!(c.kubernetes_log_path, PathBuf::from("/var/log/containers"));
        assert_eq!(c.shutdown_timeout, 25);
        assert!(!c.syslog_tcp && !c.kubernetes && !c.postgres);
    }

    #[test]
    fn check_lists_every_bad_key_every_bad_variable_and_the_problems_of_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(
            &file,
            "bogus_one: 1\nhttp_port: notaport\nbogus_two: x\nroutes:\n  - hostname: web.default\n    drains: [\"gopher://x\"]\n",
        )
        .unwrap();
        let (errors, problems) = Config::check(Some(&file), &env(&[("SYSLOG_TCP_PORT", "x"), ("DEBUG", "maybe")]));
        let all = errors.join("\n");
        for want in ["bogus_one", "bogus_two", "http_port", "SYSLOG_TCP_PORT", "DEBUG"] {
            assert!(all.contains(want), "{want} missing from:\n{all}");
        }
        assert_eq!(errors.len(), 5, "{all}");
        // The routes could be read, so their problems are listed too.
        assert!(
            problems.iter().any(|p| p.contains("unknown scheme \"gopher\"")),
            "{problems:?}"
        );
        let (errors, problems) = Config::check(None, &env(&[]));
        assert!(errors.is_empty() && problems.is_empty());
    }

    #[test]
    fn stream_severities_by_number_or_name() {
        let c = Config::load(None, &env(&[])).unwrap();
        assert_eq!((c.tail_stdout_severity, c.tail_stderr_severity), (6, 3));
        let c = Config::load(
            None,
            &env(&[("TAIL_STDOUT_SEVERITY", "notice"), ("TAIL_STDERR_SEVERITY", "2")]),
        )
        .unwrap();
        assert_eq!((c.tail_stdout_severity, c.tail_stderr_severity), (5, 2));
        let errs = Config::load(
            None,
            &env(&[("TAIL_STDOUT_SEVERITY", "8"), ("TAIL_STDERR_SEVERITY", "loud")]),
        )
        .unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(
            text[0].contains("TAIL_STDOUT_SEVERITY=\"8\"") && text[0].contains("0 to 7"),
            "{text:?}"
        );
        assert!(text[1].contains("TAIL_STDERR_SEVERITY=\"loud\""), "{text:?}");
    }

    #[test]
    fn env_overrides_file() {
        let mut c = Config::from_yaml("http_port: 8000\nsyslog_tcp: false\nexclude_namespaces: [a]\n").unwrap();
        let errs = c.apply_env(&env(&[
            ("SYSLOG_TCP", "true"),
            ("HTTP_PORT", "8080"),
            ("EXCLUDE_NAMESPACES", "kube-system, istio-system,,"),
            ("NODE", "n1"),
            ("NODE_NAME", "n2"),
        ]));
        assert!(errs.is_empty());
        assert!(c.syslog_tcp);
        assert_eq!(c.http_port, 8080);
        assert_eq!(c.exclude_namespaces, vec!["kube-system", "istio-system"]);
        assert_eq!(c.node_name.as_deref(), Some("n2"));
    }

    #[test]
    fn bad_env_values_are_all_reported() {
        let mut c = Config::default();
        let errs = c.apply_env(&env(&[
            ("HTTP_PORT", "ninety"),
            ("SYSLOG_TCP", "maybe"),
            ("LOG_FORMAT", "xml"),
        ]));
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(text[0].contains("HTTP_PORT") && text[0].contains("port number"));
        assert!(
            text.iter()
                .any(|t| t.contains("SYSLOG_TCP") && t.contains("true or false"))
        );
    }

    #[test]
    fn yaml_errors_never_quote_a_value() {
        for (yaml, expected) in [
            (
                "routes:\n  - hostname: a\n    drains: \"https://u:Passw0rd@h/receiver/v1/http/T0ken\"\n",
                "invalid type: string, expected a sequence",
            ),
            ("http_token: 12345\n", "invalid type: integer, expected a string"),
            ("shutdown_timeout: 1.5\n", "invalid type: floating point, expected u64"),
            ("database_url: true\n", "invalid type: boolean, expected a string"),
            ("log_format: Passw0rd\n", "unknown variant, expected"),
            (
                "routes:\n  - hostname: a\n    drains: [\"x\"]\n    tag: \"Pass\\\"w0rd\"\n",
                "unknown field `tag`",
            ),
        ] {
            // Read whole (a start) and key by key (`logtrain check`).
            let mut said = Config::from_yaml_by_key(yaml).1;
            said.extend(Config::from_yaml(yaml).err());
            let e = said.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
            assert!(e.contains(expected), "{yaml}: {e}");
            for secret in ["Passw0rd", "T0ken", "12345", "1.5", "true", "w0rd"] {
                assert!(!e.contains(secret), "{yaml}: {e}");
            }
        }
        assert_eq!(without_values("a string \"x\\\"y\" b"), "a string b");
        assert_eq!(without_values("string \"unclosed"), "string");
    }

    #[test]
    fn every_variable_and_every_key_is_declared_once() {
        let mut vars = HashSet::new();
        let mut keys = HashSet::new();
        for s in SETTINGS {
            for var in s.vars() {
                assert!(vars.insert(var), "{var} is read by two rows");
            }
            assert!(keys.insert(s.key), "{} is the key of two rows", s.key);
            assert!(!s.summary().is_empty(), "{} has no doc", s.env);
        }
        assert!(vars.len() >= 50 && vars.contains("NODE") && vars.contains("NODE_NAME"));
    }

    /// Each key, given the row's default as YAML, is accepted by the file
    /// loader and reads as the default (the three whose variable takes names
    /// the file does not are at least known keys).
    #[test]
    fn every_key_is_read_by_the_yaml_loader() {
        let written_differently = ["tail_start_at_end", "tail_stdout_severity", "tail_stderr_severity"];
        for s in SETTINGS {
            let value = match s.key {
                "exclude_namespaces" | "drain_deny_networks" => {
                    let items: Vec<String> = s.default.split_terminator(',').map(|i| format!("{i:?}")).collect();
                    format!("[{}]", items.join(", "))
                }
                _ => s.default.to_string(),
            };
            let got = Config::from_yaml(&format!("{}: {value}\n", s.key));
            if written_differently.contains(&s.key) {
                let e = got.unwrap_err().to_string();
                assert!(
                    e.contains("invalid type") && !e.contains("unknown field"),
                    "{}: {e}",
                    s.key
                );
            } else {
                assert_eq!(got, Ok(Config::default()), "{}", s.key);
            }
        }
    }

    #[test]
    fn a_bound_is_refused_naming_the_variable_or_the_key() {
        let errs = Config::load(None, &env(&[("DRAIN_MAX_CONNECTIONS", "0"), ("SYSLOG_MAX_LINE", "1")])).unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            text,
            ["environment variable DRAIN_MAX_CONNECTIONS=\"0\": expected a connection count of at least 1"]
        );
        let e = Config::from_yaml("drain_queue_records: 0\nhttp_max_body: 0\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "drain_queue_records: expected a record count of at least 1; http_max_body: expected a byte count of at least 1"
        );
        assert!(matches!(&e, YamlError::OutOfBounds(each) if each.len() == 2), "{e:?}");
        let (_, each) = Config::from_yaml_by_key("input_idle_timeout: 0\nhttp_port: 1\n");
        assert_eq!(
            each,
            [YamlError::OutOfBounds(vec![
                "input_idle_timeout: expected whole seconds of at least 1".into()
            ])]
        );
    }

    #[test]
    fn the_drain_defaults_are_the_drivers() {
        let (c, d) = (Config::default().driver(), DriverConfig::default());
        assert_eq!(
            (c.queue_records, c.queue_bytes, c.max_connections),
            (d.queue_records, d.queue_bytes, d.max_connections)
        );
    }

    #[test]
    fn help_lists_every_variable_with_its_default() {
        let help = Config::help();
        for s in SETTINGS {
            assert!(help.contains(&format!("  {}", s.env)), "{} missing:\n{help}", s.env);
        }
        assert!(
            help.contains("  HTTP_PORT  [default: 9000]\n      Port of the HTTP server"),
            "{help}"
        );
        assert!(help.contains("  NODE_NAME, NODE\n"), "{help}");
        assert!(
            help.contains("  TAIL_START_AT  [default: beginning]  [file: tail_start_at_end]"),
            "{help}"
        );
    }

    #[test]
    fn unknown_yaml_keys_are_named() {
        let e = Config::from_yaml("http_prot: 1\n").unwrap_err().to_string();
        assert!(e.contains("http_prot"), "{e}");
        let e = Config::from_yaml("routes:\n  - hostname: a\n    drains: []\n    colour: red\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn problems_name_culprits() {
        let c = Config::from_yaml(
            "routes:\n  - hostname: web.default\n    drains: [\"syslog+tcp://h:1\", \"SYSLOG+TCP://H:1\", \"gopher://x\", \"file:///nonexistent-dir/x.log\"]\n  - hostname: \"\"\n    drains: []\n",
        )
        .unwrap();
        let p = c.problems();
        assert!(
            p.iter().any(|s| s.contains("duplicate route to syslog+tcp://h:1")),
            "{p:?}"
        );
        assert!(p.iter().any(|s| s.contains("unknown scheme \"gopher\"")), "{p:?}");
        assert!(p.iter().any(|s| s.contains("/nonexistent-dir does not exist")), "{p:?}");
        assert!(p.iter().any(|s| s.contains("routes[1]: hostname is empty")), "{p:?}");
        assert!(p.iter().any(|s| s.contains("no drains listed")), "{p:?}");
    }
}
