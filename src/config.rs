//! One typed configuration: logtrain's environment variables (same names and
//! defaults as the Go logtrain) and an optional YAML file with the same settings
//! in snake_case plus static routes. The environment wins over the file.
//!
//! Environment access goes through the small [`Env`] trait so tests pass a map
//! instead of mutating the process environment. Defaults live in
//! [`Config::default`] only.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::drain::{DrainKind, DrainSpec, DriverConfig};
use crate::egress::{self, Cidr};
use crate::secret::Secret;

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

/// Everything logtrain can be told. Each field's env var is its name in upper case
/// unless noted.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Port of the HTTP server (health, metrics, HTTP inputs). `HTTP_PORT`, 9000.
    pub http_port: u16,
    /// Address every listener binds. `LISTEN_ADDRESS`, 0.0.0.0.
    pub listen_address: String,
    /// Envoy access-log gRPC input. `ENVOY`, false.
    pub envoy: bool,
    /// `ENVOY_PORT`, 9001.
    pub envoy_port: u16,
    /// Syslog over TCP input. `SYSLOG_TCP`, false.
    pub syslog_tcp: bool,
    /// `SYSLOG_TCP_PORT`, 9002.
    pub syslog_tcp_port: u16,
    /// Syslog over UDP input. `SYSLOG_UDP`, false.
    pub syslog_udp: bool,
    /// `SYSLOG_UDP_PORT`, 9003.
    pub syslog_udp_port: u16,
    /// Syslog over TLS input. `SYSLOG_TLS`, false.
    pub syslog_tls: bool,
    /// `SYSLOG_TLS_PORT`, 9004.
    pub syslog_tls_port: u16,
    /// Server certificate chain: PEM text, or a path to a PEM file. `SYSLOG_TLS_CERT_PEM`.
    pub syslog_tls_cert_pem: Option<String>,
    /// Server private key: PEM text or a path. `SYSLOG_TLS_KEY_PEM`.
    pub syslog_tls_key_pem: Option<Secret>,
    /// When set, clients must present a certificate signed by this CA (PEM text or path). `SYSLOG_TLS_CA_PEM`.
    pub syslog_tls_ca_pem: Option<String>,
    /// Accepted for compatibility with logtrain; the certificate names the server. `SYSLOG_TLS_SERVER_NAME`.
    pub syslog_tls_server_name: Option<String>,
    /// JSON events over HTTP. `HTTP_EVENTS`, false.
    pub http_events: bool,
    /// `HTTP_EVENTS_PATH`, /events.
    pub http_events_path: String,
    /// Syslog over HTTP. `HTTP_SYSLOG`, false.
    pub http_syslog: bool,
    /// `HTTP_SYSLOG_PATH`, /syslog.
    pub http_syslog_path: String,
    /// Tail container logs. `KUBERNETES`, false.
    pub kubernetes: bool,
    /// `KUBERNETES_LOG_PATH`, /var/log/containers.
    pub kubernetes_log_path: PathBuf,
    /// Route by workload annotations. `KUBERNETES_DATASOURCE`, false.
    pub kubernetes_datasource: bool,
    /// Route by the Postgres drain table. `POSTGRES`, false.
    pub postgres: bool,
    /// `DATABASE_URL` (never logged).
    pub database_url: Option<Secret>,
    /// Akkeris naming (`name-namespace` hostnames). `AKKERIS`, false.
    pub akkeris: bool,
    /// Namespaces never tailed or routed. `EXCLUDE_NAMESPACES`, comma-separated.
    pub exclude_namespaces: Vec<String>,
    /// Only route Akkeris apps. `ONLY_AKKERIS`, false.
    pub only_akkeris: bool,
    /// Debug logging. `DEBUG`, false.
    pub debug: bool,
    /// This node's name (downward API). `NODE_NAME`, else logtrain's `NODE`.
    pub node_name: Option<String>,
    /// Tailer checkpoints. `CHECKPOINT_PATH`, /var/lib/logtrain/checkpoints.json.
    pub checkpoint_path: PathBuf,
    /// Seconds to flush drains on SIGTERM before exiting. `SHUTDOWN_TIMEOUT`, 25.
    pub shutdown_timeout: u64,
    /// `LOG_FORMAT`, text or json.
    pub log_format: LogFormat,
    /// Records each drain may queue. `DRAIN_QUEUE_RECORDS`, 10000.
    pub drain_queue_records: usize,
    /// Bytes each drain may queue. `DRAIN_QUEUE_BYTES`, 8388608.
    pub drain_queue_bytes: usize,
    /// Connections per network drain at most. `DRAIN_MAX_CONNECTIONS`, 40.
    pub drain_max_connections: usize,
    /// Files found at start without a checkpoint start at their end instead of
    /// their beginning. `TAIL_START_AT` = `beginning` (default) or `end`.
    pub tail_start_at_end: bool,
    /// Largest record the tailer builds from partial lines; longer ones are split
    /// (and counted). `TAIL_MAX_RECORD_BYTES`, 262144.
    pub tail_max_record_bytes: usize,
    /// Most bytes read from a file that has no checkpoint (older content is
    /// skipped, with a warning); 0 = no limit. `TAIL_MAX_BACKLOG_BYTES`, 104857600.
    pub tail_max_backlog_bytes: u64,
    /// Files found at start without a checkpoint and last written longer ago
    /// than this many seconds start at their end (their backlog is too old to
    /// be worth sending); 0 = no limit. `TAIL_MAX_BACKLOG_AGE`, 0.
    pub tail_max_backlog_age: u64,
    /// Syslog severity (0–7 or a name: `emerg` … `debug`) of container lines
    /// written to stdout. `TAIL_STDOUT_SEVERITY`, 6 (info).
    pub tail_stdout_severity: u8,
    /// Syslog severity of container lines written to stderr.
    /// `TAIL_STDERR_SEVERITY`, 3 (err).
    pub tail_stderr_severity: u8,
    /// Longest newline-delimited syslog frame (TCP, TLS, UDP, HTTP) in bytes;
    /// longer lines are truncated to it and counted. `SYSLOG_MAX_LINE`, 65536.
    pub syslog_max_line: usize,
    /// Longest octet-counted syslog frame in bytes; larger frames are skipped and
    /// counted as parse errors. `SYSLOG_MAX_FRAME`, 1048576.
    pub syslog_max_frame: usize,
    /// Open connections each TCP listener (syslog TCP, syslog TLS, HTTP) holds at
    /// most. At the cap the syslog listeners close a new connection at once; HTTP
    /// closes the connection idle longest instead (one with nothing in flight), so
    /// silent connections never keep the probes out. Both are counted. What the
    /// connections buffer is bounded by `INPUT_MEMORY_BYTES` over all of them.
    /// `INPUT_MAX_CONNECTIONS`, 1024.
    pub input_max_connections: usize,
    /// Seconds a connection may stay silent (or take to send its request headers,
    /// send a whole request body, or finish its TLS handshake) before it is
    /// closed. `INPUT_IDLE_TIMEOUT`, 300.
    pub input_idle_timeout: u64,
    /// Largest HTTP POST body in bytes (413 above). `HTTP_MAX_BODY`, 5242880.
    pub http_max_body: usize,
    /// When set, POSTs to the HTTP inputs need `Authorization: Bearer <token>`
    /// (401 otherwise); health and metrics stay open. `HTTP_TOKEN` (never logged).
    pub http_token: Option<Secret>,
    /// Which hostnames an annotation may claim: `namespace` (only its own
    /// namespace's) or `any` (the Go logtrain). `ROUTE_HOSTNAME_SCOPE`, namespace.
    pub route_hostname_scope: HostnameScope,
    /// Networks (comma-separated CIDRs) that drains named in annotations may
    /// never connect to, checked on every resolved address; empty allows all.
    /// `DRAIN_DENY_NETWORKS`, loopback, link-local and cloud metadata addresses.
    pub drain_deny_networks: Vec<Cidr>,
    /// Drains one annotated object may name at most; the rest are refused.
    /// `ANNOTATION_MAX_DRAINS`, 16.
    pub annotation_max_drains: usize,
    /// Drains running at once at most; routes to more are refused.
    /// `DRAIN_MAX`, 1000.
    pub drain_max: usize,
    /// Bytes push inputs may hold before their records are queued (frames being
    /// assembled, request bodies, decoded events and gRPC messages), over all
    /// connections; when spent, TCP stops reading, HTTP answers 503, gRPC
    /// RESOURCE_EXHAUSTED and UDP drops. `INPUT_MEMORY_BYTES`, 67108864.
    pub input_memory_bytes: usize,
    /// Static routes (file only).
    pub routes: Vec<StaticRoute>,
}

impl Default for Config {
    fn default() -> Self {
        let d = DriverConfig::default();
        Config {
            http_port: 9000,
            listen_address: "0.0.0.0".into(),
            envoy: false,
            envoy_port: 9001,
            syslog_tcp: false,
            syslog_tcp_port: 9002,
            syslog_udp: false,
            syslog_udp_port: 9003,
            syslog_tls: false,
            syslog_tls_port: 9004,
            syslog_tls_cert_pem: None,
            syslog_tls_key_pem: None,
            syslog_tls_ca_pem: None,
            syslog_tls_server_name: None,
            http_events: false,
            http_events_path: "/events".into(),
            http_syslog: false,
            http_syslog_path: "/syslog".into(),
            kubernetes: false,
            kubernetes_log_path: "/var/log/containers".into(),
            kubernetes_datasource: false,
            postgres: false,
            database_url: None,
            akkeris: false,
            exclude_namespaces: Vec::new(),
            only_akkeris: false,
            debug: false,
            node_name: None,
            checkpoint_path: "/var/lib/logtrain/checkpoints.json".into(),
            shutdown_timeout: 25,
            log_format: LogFormat::Text,
            drain_queue_records: d.queue_records,
            drain_queue_bytes: d.queue_bytes,
            drain_max_connections: d.max_connections,
            tail_start_at_end: false,
            tail_max_record_bytes: 256 << 10,
            tail_max_backlog_bytes: 100 << 20,
            tail_max_backlog_age: 0,
            tail_stdout_severity: 6,
            tail_stderr_severity: 3,
            syslog_max_line: 64 << 10,
            syslog_max_frame: 1 << 20,
            input_max_connections: 1024,
            input_idle_timeout: 300,
            http_max_body: 5 << 20,
            http_token: None,
            route_hostname_scope: HostnameScope::Namespace,
            drain_deny_networks: egress::parse_list(egress::DEFAULT_DENY).expect("default networks parse"),
            annotation_max_drains: 16,
            drain_max: 1000,
            input_memory_bytes: 64 << 20,
            routes: Vec::new(),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}={value:?}: {expected}")]
    Env {
        var: String,
        value: String,
        expected: String,
    },
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

fn parse_bool(var: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(ConfigError::Env {
            var: var.into(),
            value: v.into(),
            expected: "expected true or false".into(),
        }),
    }
}

fn parse_num<T: std::str::FromStr>(var: &str, v: &str, what: &str) -> Result<T, ConfigError> {
    v.trim().parse().map_err(|_| ConfigError::Env {
        var: var.into(),
        value: v.into(),
        expected: format!("expected {what}"),
    })
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
        Self::from_yaml(&text).map_err(|message| ConfigError::Parse {
            path: path.into(),
            message,
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
                errors.extend(each.into_iter().map(|message| {
                    ConfigError::Parse {
                        path: p.into(),
                        message,
                    }
                    .to_string()
                }));
                c
            }),
        };
        errors.extend(cfg.apply_env(env).iter().map(ToString::to_string));
        let problems = cfg.problems();
        (errors, problems)
    }

    /// Reads a YAML mapping one top-level key at a time: what can be read,
    /// and one error per key that cannot.
    fn from_yaml_by_key(text: &str) -> (Config, Vec<String>) {
        let Ok(serde_yaml::Value::Mapping(map)) = serde_yaml::from_str::<serde_yaml::Value>(text) else {
            return (Config::default(), Vec::new());
        };
        let mut good = serde_yaml::Mapping::new();
        let mut errors = Vec::new();
        for (k, v) in map {
            let mut one = serde_yaml::Mapping::new();
            one.insert(k.clone(), v.clone());
            match serde_yaml::from_value::<Config>(serde_yaml::Value::Mapping(one)) {
                Ok(_) => {
                    good.insert(k, v);
                }
                Err(e) => errors.push(without_values(&e.to_string())),
            }
        }
        let cfg = serde_yaml::from_value(serde_yaml::Value::Mapping(good)).unwrap_or_default();
        (cfg, errors)
    }

    /// Parses YAML text.
    pub fn from_yaml(text: &str) -> Result<Config, String> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_yaml::from_str(text).map_err(|e| without_values(&e.to_string()))
    }

    /// Applies environment variables over the current values; returns every bad value.
    pub fn apply_env(&mut self, env: &dyn Env) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        macro_rules! set {
            ($field:ident, $var:literal, bool) => {
                if let Some(v) = env.var($var) {
                    match parse_bool($var, &v) {
                        Ok(b) => self.$field = b,
                        Err(e) => errors.push(e),
                    }
                }
            };
            ($field:ident, $var:literal, num, $what:literal) => {
                if let Some(v) = env.var($var).filter(|v| !v.is_empty()) {
                    match parse_num($var, &v, $what) {
                        Ok(n) => self.$field = n,
                        Err(e) => errors.push(e),
                    }
                }
            };
            ($field:ident, $var:literal, string) => {
                if let Some(v) = env.var($var).filter(|v| !v.is_empty()) {
                    self.$field = v.into();
                }
            };
            ($field:ident, $var:literal, opt) => {
                if let Some(v) = env.var($var).filter(|v| !v.is_empty()) {
                    self.$field = Some(v.into());
                }
            };
        }
        set!(http_port, "HTTP_PORT", num, "a port number");
        set!(listen_address, "LISTEN_ADDRESS", string);
        set!(envoy, "ENVOY", bool);
        set!(envoy_port, "ENVOY_PORT", num, "a port number");
        set!(syslog_tcp, "SYSLOG_TCP", bool);
        set!(syslog_tcp_port, "SYSLOG_TCP_PORT", num, "a port number");
        set!(syslog_udp, "SYSLOG_UDP", bool);
        set!(syslog_udp_port, "SYSLOG_UDP_PORT", num, "a port number");
        set!(syslog_tls, "SYSLOG_TLS", bool);
        set!(syslog_tls_port, "SYSLOG_TLS_PORT", num, "a port number");
        set!(syslog_tls_cert_pem, "SYSLOG_TLS_CERT_PEM", opt);
        set!(syslog_tls_key_pem, "SYSLOG_TLS_KEY_PEM", opt);
        set!(syslog_tls_ca_pem, "SYSLOG_TLS_CA_PEM", opt);
        set!(syslog_tls_server_name, "SYSLOG_TLS_SERVER_NAME", opt);
        set!(http_events, "HTTP_EVENTS", bool);
        set!(http_events_path, "HTTP_EVENTS_PATH", string);
        set!(http_syslog, "HTTP_SYSLOG", bool);
        set!(http_syslog_path, "HTTP_SYSLOG_PATH", string);
        set!(kubernetes, "KUBERNETES", bool);
        set!(kubernetes_log_path, "KUBERNETES_LOG_PATH", string);
        set!(kubernetes_datasource, "KUBERNETES_DATASOURCE", bool);
        set!(postgres, "POSTGRES", bool);
        set!(database_url, "DATABASE_URL", opt);
        set!(akkeris, "AKKERIS", bool);
        set!(only_akkeris, "ONLY_AKKERIS", bool);
        set!(debug, "DEBUG", bool);
        set!(node_name, "NODE", opt);
        set!(node_name, "NODE_NAME", opt);
        set!(checkpoint_path, "CHECKPOINT_PATH", string);
        set!(shutdown_timeout, "SHUTDOWN_TIMEOUT", num, "whole seconds");
        set!(drain_queue_records, "DRAIN_QUEUE_RECORDS", num, "a record count");
        set!(drain_queue_bytes, "DRAIN_QUEUE_BYTES", num, "a byte count");
        set!(
            drain_max_connections,
            "DRAIN_MAX_CONNECTIONS",
            num,
            "a connection count"
        );
        set!(tail_max_record_bytes, "TAIL_MAX_RECORD_BYTES", num, "a byte count");
        set!(tail_max_backlog_bytes, "TAIL_MAX_BACKLOG_BYTES", num, "a byte count");
        set!(tail_max_backlog_age, "TAIL_MAX_BACKLOG_AGE", num, "whole seconds");
        for (var, field) in [
            ("TAIL_STDOUT_SEVERITY", &mut self.tail_stdout_severity),
            ("TAIL_STDERR_SEVERITY", &mut self.tail_stderr_severity),
        ] {
            if let Some(v) = env.var(var).filter(|v| !v.is_empty()) {
                match crate::record::Severity::parse(&v) {
                    Some(n) => *field = n.get(),
                    None => errors.push(ConfigError::Env {
                        var: var.into(),
                        value: v,
                        expected: "expected a syslog severity: 0 to 7, or emerg, alert, crit, err, warning, notice, info, debug".into(),
                    }),
                }
            }
        }
        if let Some(v) = env.var("TAIL_START_AT").filter(|v| !v.is_empty()) {
            match v.to_ascii_lowercase().as_str() {
                "beginning" => self.tail_start_at_end = false,
                "end" => self.tail_start_at_end = true,
                _ => errors.push(ConfigError::Env {
                    var: "TAIL_START_AT".into(),
                    value: v,
                    expected: "expected beginning or end".into(),
                }),
            }
        }
        set!(syslog_max_line, "SYSLOG_MAX_LINE", num, "a byte count");
        set!(syslog_max_frame, "SYSLOG_MAX_FRAME", num, "a byte count");
        set!(
            input_max_connections,
            "INPUT_MAX_CONNECTIONS",
            num,
            "a connection count"
        );
        set!(input_idle_timeout, "INPUT_IDLE_TIMEOUT", num, "whole seconds");
        set!(http_max_body, "HTTP_MAX_BODY", num, "a byte count");
        set!(http_token, "HTTP_TOKEN", opt);
        set!(annotation_max_drains, "ANNOTATION_MAX_DRAINS", num, "a drain count");
        set!(drain_max, "DRAIN_MAX", num, "a drain count");
        set!(input_memory_bytes, "INPUT_MEMORY_BYTES", num, "a byte count");
        if let Some(v) = env.var("ROUTE_HOSTNAME_SCOPE").filter(|v| !v.is_empty()) {
            match v.to_ascii_lowercase().as_str() {
                "namespace" => self.route_hostname_scope = HostnameScope::Namespace,
                "any" => self.route_hostname_scope = HostnameScope::Any,
                _ => errors.push(ConfigError::Env {
                    var: "ROUTE_HOSTNAME_SCOPE".into(),
                    value: v,
                    expected: "expected namespace or any".into(),
                }),
            }
        }
        // Set but empty means "deny nothing", so it is read even when empty.
        if let Some(v) = env.var("DRAIN_DENY_NETWORKS") {
            match egress::parse_list(&v) {
                Ok(list) => self.drain_deny_networks = list,
                Err(e) => errors.push(ConfigError::Env {
                    var: "DRAIN_DENY_NETWORKS".into(),
                    value: v,
                    expected: format!("expected comma-separated networks: {e}"),
                }),
            }
        }
        if let Some(v) = env.var("EXCLUDE_NAMESPACES") {
            self.exclude_namespaces = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        if let Some(v) = env.var("LOG_FORMAT").filter(|v| !v.is_empty()) {
            match v.to_ascii_lowercase().as_str() {
                "text" => self.log_format = LogFormat::Text,
                "json" => self.log_format = LogFormat::Json,
                _ => errors.push(ConfigError::Env {
                    var: "LOG_FORMAT".into(),
                    value: v,
                    expected: "expected text or json".into(),
                }),
            }
        }
        errors
    }

    /// Driver settings derived from this configuration.
    pub fn driver(&self) -> DriverConfig {
        DriverConfig {
            queue_records: self.drain_queue_records.max(1),
            queue_bytes: self.drain_queue_bytes.max(1),
            max_connections: self.drain_max_connections.max(1),
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
            let e = said.join("\n");
            assert!(e.contains(expected), "{yaml}: {e}");
            for secret in ["Passw0rd", "T0ken", "12345", "1.5", "true", "w0rd"] {
                assert!(!e.contains(secret), "{yaml}: {e}");
            }
        }
        assert_eq!(without_values("a string \"x\\\"y\" b"), "a string b");
        assert_eq!(without_values("string \"unclosed"), "string");
    }

    #[test]
    fn unknown_yaml_keys_are_named() {
        let e = Config::from_yaml("http_prot: 1\n").unwrap_err();
        assert!(e.contains("http_prot"), "{e}");
        let e = Config::from_yaml("routes:\n  - hostname: a\n    drains: []\n    colour: red\n").unwrap_err();
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
