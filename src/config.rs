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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

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

/// Who may use the live-tail endpoints (`GET /tail`, `POST /tails`, `GET /routes`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum TailAccess {
    /// Only requests carrying `HTTP_TOKEN`; with no token set, nobody (they
    /// answer 403): a stream shows any hostname's lines.
    #[default]
    Token,
    /// Whoever reaches the HTTP port, token or not: for the Kubernetes API
    /// server's pod proxy, which authenticates the user itself and does not
    /// pass a token on. Limit who reaches the port (the chart's NetworkPolicy).
    Open,
}

/// Where a drain keeps records its memory queue has no room for.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum BufferMode {
    /// In segment files under `DRAIN_BUFFER_PATH`, within the byte budgets:
    /// the tailer moves on and push inputs lose nothing while a drain is down.
    #[default]
    Disk,
    /// Nowhere (the Go logtrain): the tailer waits for the drain, push inputs
    /// drop and count.
    Memory,
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
    /// Where records that do not fit a drain's queue go: `disk` (segment files
    /// under `DRAIN_BUFFER_PATH`, replayed in order, kept across restarts) or
    /// `memory` (none: the tailer waits for the drain, push inputs drop).
    drain_buffer: BufferMode = "disk", "DRAIN_BUFFER",
        Choice(&[("disk", BufferMode::Disk), ("memory", BufferMode::Memory)]);
    /// Folder of the drains' disk buffers (one folder per drain, mode 0700).
    drain_buffer_path: PathBuf = "/var/lib/logtrain/buffers", "DRAIN_BUFFER_PATH", text();
    /// Record bytes one drain may hold on disk; beyond it records are dropped,
    /// counted and told to the drain.
    drain_buffer_max_bytes: u64 = "268435456", "DRAIN_BUFFER_MAX_BYTES", num("a byte count").at_least(1);
    /// Record bytes all drains of the node may hold on disk together.
    drain_buffer_total_bytes: u64 = "2147483648", "DRAIN_BUFFER_TOTAL_BYTES", num("a byte count").at_least(1);
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
    /// Who may open live tails and read the routes: `token` (only with
    /// `HTTP_TOKEN`; nobody without one) or `open` (whoever reaches the port).
    tail_access: TailAccess = "token", "TAIL_ACCESS",
        Choice(&[("token", TailAccess::Token), ("open", TailAccess::Open)]);
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
    /// Forward proxy (`http://[user:password@]host:port`) for TLS HTTP drains (never logged).
    https_proxy: Option<Secret> = "", "HTTPS_PROXY", optional();
    /// Forward proxy for plain-HTTP drains (never logged).
    http_proxy: Option<Secret> = "", "HTTP_PROXY", optional();
    /// Hosts HTTP drains reach without a proxy: names (and their subdomains),
    /// addresses or networks, comma-separated; `*` for all.
    no_proxy: Option<String> = "", "NO_PROXY", optional();
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

/// YAML configuration text that cannot be used. The parser's error is not
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

/// The YAML document as a JSON value (null when empty), read by serde-saphyr;
/// a syntax error says where, never what the line holds (it may hold a
/// credential).
fn yaml_value(text: &str) -> Result<serde_json::Value, YamlError> {
    if text.trim().is_empty() {
        return Ok(serde_json::Value::Null);
    }
    serde_saphyr::from_str::<serde_json::Value>(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" at line {} column {}", l.line(), l.column()))
            .unwrap_or_default();
        YamlError::Invalid(format!("not valid YAML{at}"))
    })
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
    /// The HTTP drains' forward proxies (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`).
    pub fn proxies(&self) -> Result<crate::drain::proxy::Proxies, crate::drain::proxy::ProxyError> {
        crate::drain::proxy::Proxies::new(
            self.http_proxy.as_ref().map(Secret::expose),
            self.https_proxy.as_ref().map(Secret::expose),
            self.no_proxy.as_deref(),
        )
    }

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

    /// Reads as much of a configuration as can be read, for `logtrain check`:
    /// the file's keys that cannot be read (each one, not only the first) and
    /// the environment's bad values, beside what could be read of the rest.
    /// What its values name is looked at by [`crate::check`].
    pub fn load_leniently(file: Option<&Path>, env: &dyn Env) -> (Config, Vec<String>) {
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
        (cfg, errors)
    }

    /// One warning per variable only the Go logtrain read that is set (named,
    /// with what replaced it): `logtrain check` prints them, `main` logs them.
    pub fn warnings(env: &dyn Env) -> Vec<String> {
        legacy::warnings(env)
    }

    /// Reads a YAML mapping one top-level key at a time: what can be read,
    /// and one error per key that cannot.
    fn from_yaml_by_key(text: &str) -> (Config, Vec<YamlError>) {
        let Ok(serde_json::Value::Object(map)) = yaml_value(text) else {
            return (Config::default(), Vec::new());
        };
        let mut good = serde_json::Map::new();
        let mut errors = Vec::new();
        for (k, v) in map {
            let one = serde_json::Map::from_iter([(k.clone(), v.clone())]);
            match serde_json::from_value::<Config>(serde_json::Value::Object(one)) {
                Ok(c) if c.out_of_bounds().is_empty() => {
                    good.insert(k, v);
                }
                Ok(c) => errors.extend(c.out_of_bounds().into_iter().map(|e| YamlError::OutOfBounds(vec![e]))),
                Err(e) => errors.push(YamlError::Invalid(without_values(&e.to_string()))),
            }
        }
        let cfg = serde_json::from_value(serde_json::Value::Object(good)).unwrap_or_default();
        (cfg, errors)
    }

    /// Parses YAML text.
    pub fn from_yaml(text: &str) -> Result<Config, YamlError> {
        let value = yaml_value(text)?;
        if value.is_null() {
            return Ok(Config::default());
        }
        let cfg: Config = serde_json::from_value(value).map_err(|e| {
            // Name every key that cannot be read, in a stable order, not only
            // the first the deserializer met.
            let each: Vec<String> = Self::from_yaml_by_key(text).1.iter().map(ToString::to_string).collect();
            match each.is_empty() {
                true => YamlError::Invalid(without_values(&e.to_string())),
                false => YamlError::Invalid(each.join("; ")),
            }
        })?;
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

    pub fn shutdown_deadline(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout)
    }
}

#[cfg(test)]
mod tests;
