//! Tests of the configuration table: defaults, the environment over the
//! file, every bad value named, bounds, `--help`.

use std::collections::HashSet;

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
fn a_yaml_syntax_error_says_where_and_never_what_the_line_holds() {
    let text = "routes:\n  - hostname: web\n    drains: [\"syslog+tls://u:s3cret@h:1\"\nhttp_port: 9000\n";
    let e = Config::from_yaml(text).unwrap_err().to_string();
    assert!(e.starts_with("not valid YAML at line "), "{e}");
    assert!(!e.contains("s3cret"), "{e}");
    // A value of the wrong type is named by its kind only.
    let e = Config::from_yaml("http_port: \"s3cret\"\n").unwrap_err().to_string();
    assert!(e.contains("http_port") || e.contains("string"), "{e}");
    assert!(!e.contains("s3cret"), "{e}");
}
