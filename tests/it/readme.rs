//! The README documents every metric, environment variable and listener port
//! the code has: each metric of `telemetry::CATALOG` is a row of the metrics
//! table with its type, each variable of `config::SETTINGS` is named in the
//! Configuration table with its default, and each listener's port variable is
//! given with its default in the Listeners table. A failure lists everything
//! that is missing.

use std::path::PathBuf;

use logtrain::config::{Config, GO_ONLY, SETTINGS, Setting};
use logtrain::telemetry::{CATALOG, Kind};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

/// The text of the `## title` section (up to the next `## ` heading).
fn section<'a>(text: &'a str, title: &str) -> &'a str {
    let head = format!("\n## {title}\n");
    let at = text
        .find(&head)
        .unwrap_or_else(|| panic!("README has no `## {title}` section"));
    let body = &text[at + head.len()..];
    &body[..body.find("\n## ").unwrap_or(body.len())]
}

/// The table rows (lines starting with `|`) of a section.
fn rows(section: &str) -> Vec<&str> {
    section.lines().filter(|l| l.starts_with('|')).collect()
}

/// Every environment variable logtrain reads (each row's, older names too).
fn config_env_vars() -> Vec<String> {
    SETTINGS.iter().flat_map(|s| s.vars()).map(String::from).collect()
}

/// Metrics of `catalog` with no `` | `name` | type | `` row in the README's
/// Observability section.
fn missing_metrics(readme: &str, catalog: &[(&str, Kind, &str)]) -> Vec<String> {
    let table = rows(section(readme, "Observability"));
    catalog
        .iter()
        .filter(|(name, kind, _)| {
            let kind = kind.name();
            let row = format!("| `{name}` | {kind} |");
            !table.iter().any(|r| r.starts_with(&row))
        })
        .map(|(name, _, _)| name.to_string())
        .collect()
}

/// Variables not named (in backticks) in a row of the Configuration table.
fn missing_vars(readme: &str, vars: &[String]) -> Vec<String> {
    let table = rows(section(readme, "Configuration"));
    vars.iter()
        .filter(|v| {
            let quoted = format!("`{v}`");
            !table.iter().any(|r| r.contains(&quoted))
        })
        .cloned()
        .collect()
}

/// Variables whose Default cell in the Configuration table does not give the
/// default of their row of `SETTINGS` (as the variable would be written), as
/// `VAR (default)`. The deny list's default is given in words.
fn wrong_defaults(readme: &str, settings: &[Setting]) -> Vec<String> {
    let table = rows(section(readme, "Configuration"));
    let gives = |row: &str, default: &str| {
        let cell = row.split('|').nth(2).unwrap_or("");
        cell.split(|c: char| c.is_whitespace() || c == ',')
            .any(|word| word.trim_matches(|c| "`()".contains(c)) == default)
    };
    settings
        .iter()
        .filter(|s| !s.default.is_empty() && s.env != "DRAIN_DENY_NETWORKS")
        .filter(|s| {
            let quoted = format!("`{}`", s.env);
            !table.iter().any(|r| r.contains(&quoted) && gives(r, s.default))
        })
        .map(|s| format!("{} ({})", s.env, s.default))
        .collect()
}

/// Each listener's port variable with its default, as the code has them.
fn port_defaults() -> Vec<(&'static str, u16)> {
    let c = Config::default();
    vec![
        ("HTTP_PORT", c.http_port),
        ("ENVOY_PORT", c.envoy_port),
        ("SYSLOG_TCP_PORT", c.syslog_tcp_port),
        ("SYSLOG_UDP_PORT", c.syslog_udp_port),
        ("SYSLOG_TLS_PORT", c.syslog_tls_port),
    ]
}

/// Ports not given as `` `VAR` (DEFAULT) `` in a row of the Listeners table.
fn missing_ports(readme: &str, ports: &[(&str, u16)]) -> Vec<String> {
    let table = rows(section(readme, "Listeners"));
    ports
        .iter()
        .filter(|(var, port)| {
            let cell = format!("`{var}` ({port})");
            !table.iter().any(|r| r.contains(&cell))
        })
        .map(|(var, port)| format!("{var} ({port})"))
        .collect()
}

#[test]
fn every_metric_of_the_catalog_has_a_row_in_the_metrics_table() {
    let missing = missing_metrics(&readme(), CATALOG);
    assert!(
        missing.is_empty(),
        "README.md (## Observability) has no `| `name` | type |` row for: {missing:?}"
    );
}

#[test]
fn every_environment_variable_of_the_config_is_documented() {
    let vars = config_env_vars();
    assert!(vars.len() >= 50, "only {} variables: {vars:?}", vars.len());
    let missing = missing_vars(&readme(), &vars);
    assert!(
        missing.is_empty(),
        "README.md (## Configuration) does not document: {missing:?}"
    );
}

#[test]
fn every_default_of_the_config_is_the_readmes() {
    let wrong = wrong_defaults(&readme(), SETTINGS);
    assert!(
        wrong.is_empty(),
        "README.md (## Configuration) does not give these defaults: {wrong:?}"
    );
}

#[test]
fn every_listener_port_default_is_documented() {
    let ports = port_defaults();
    assert_eq!(
        ports.iter().map(|p| p.1).collect::<Vec<_>>(),
        [9000, 9001, 9002, 9003, 9004]
    );
    let missing = missing_ports(&readme(), &ports);
    assert!(
        missing.is_empty(),
        "README.md (## Listeners) does not give these ports: {missing:?}"
    );
}

/// The checks report what a README without it lacks (so they can fail).
#[test]
fn the_checks_name_what_is_missing() {
    let text = readme();
    let cut = |needle: &str| -> String {
        text.lines()
            .filter(|l| !(l.starts_with('|') && l.contains(needle)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let without = cut("`logtrain_input_dropped_total`");
    assert_eq!(missing_metrics(&without, CATALOG), ["logtrain_input_dropped_total"]);
    let wrong_type = text.replace("| `logtrain_routes` | gauge |", "| `logtrain_routes` | counter |");
    assert_eq!(missing_metrics(&wrong_type, CATALOG), ["logtrain_routes"]);
    let vars = vec!["TAIL_START_AT".to_string(), "HTTP_MAX_BODY".to_string()];
    assert_eq!(missing_vars(&cut("`TAIL_START_AT`"), &vars), ["TAIL_START_AT"]);
    // A row added to the table that the README does not name yet.
    let mut more = config_env_vars();
    more.push("TAIL_NEW_LIMIT".into());
    assert_eq!(missing_vars(&text, &more), ["TAIL_NEW_LIMIT"]);
    let changed = text.replace("| `DRAIN_MAX_CONNECTIONS` | 40 |", "| `DRAIN_MAX_CONNECTIONS` | 400 |");
    assert_eq!(wrong_defaults(&changed, SETTINGS), ["DRAIN_MAX_CONNECTIONS (40)"]);
    let ports = port_defaults();
    assert_eq!(
        missing_ports(&text.replace("`SYSLOG_UDP_PORT` (9003)", "`SYSLOG_UDP_PORT`"), &ports),
        ["SYSLOG_UDP_PORT (9003)"]
    );
}

/// Every Go-only variable is named in the migration section, and `logtrain
/// check` warns about each one that is set without changing its exit code.
#[test]
fn every_go_only_variable_is_documented_and_warned_about_by_check() {
    let text = readme();
    let migrating = section(&text, "Migrating from the Go logtrain");
    let undocumented: Vec<&str> = GO_ONLY
        .iter()
        .map(|g| g.variable)
        .filter(|v| !migrating.contains(&format!("`{v}`")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "not in the migration section: {undocumented:?}"
    );
    let check = |set: bool| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_logtrain"));
        c.arg("check").env_remove("LOGTRAIN_CONFIG");
        for g in GO_ONLY {
            c.env_remove(g.variable);
            if set {
                c.env(g.variable, "true");
            }
        }
        let out = c.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (quiet_code, quiet) = check(false);
    let (code, stderr) = check(true);
    assert_eq!(code, quiet_code, "{stderr}");
    assert!(!quiet.contains("warning:"), "{quiet}");
    for g in GO_ONLY {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("warning: ") && l.contains(g.variable)),
            "{} not warned about:\n{stderr}",
            g.variable
        );
    }
}
