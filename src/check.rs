//! `logtrain check` and the start-up check: what a configuration's values name
//! (drain URLs, file drains' folders, the database URL, listener settings that
//! go together), looked at before anything starts. The one place that looks
//! past the configuration's own syntax; it never starts, binds or connects
//! anything.

use std::collections::HashSet;
use std::path::Path;

use crate::config::{Config, Env};
use crate::drain::{DrainKind, DrainSpec};
use crate::secret::Secret;

/// Everything wrong with a configuration at once: the errors that stop it
/// loading (each bad key of the file, each bad variable) and the problems of
/// what could be read. Returns (errors, problems).
pub fn check(file: Option<&Path>, env: &dyn Env) -> (Vec<String>, Vec<String>) {
    let (config, errors) = Config::load_leniently(file, env);
    let problems = problems(&config);
    (errors, problems)
}

/// Every problem with a configuration (empty when it is usable): bad drain
/// URLs, duplicate routes, unusable file drain paths, incomplete listener settings.
pub fn problems(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen: HashSet<(&str, String)> = HashSet::new();
    for (i, r) in config.routes.iter().enumerate() {
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
    if config.syslog_tls && (config.syslog_tls_cert_pem.is_none() || config.syslog_tls_key_pem.is_none()) {
        out.push("SYSLOG_TLS is on but SYSLOG_TLS_CERT_PEM and SYSLOG_TLS_KEY_PEM are not both set".into());
    }
    if config.postgres {
        match config.database_url.as_ref().map(Secret::expose) {
            None => out.push("POSTGRES is on but DATABASE_URL is not set".into()),
            Some(u) => {
                if let Err(e) = crate::datasource::postgres::PostgresSource::new(u) {
                    out.push(e.to_string());
                }
            }
        }
    }
    if let Err(e) = config.proxies() {
        out.push(e.to_string());
    }
    for (name, p) in [
        ("HTTP_EVENTS_PATH", &config.http_events_path),
        ("HTTP_SYSLOG_PATH", &config.http_syslog_path),
    ] {
        if !p.starts_with('/') {
            out.push(format!("{name}={p:?}: must start with /"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
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
        let (errors, problems) = check(Some(&file), &env(&[("SYSLOG_TCP_PORT", "x"), ("DEBUG", "maybe")]));
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
        let (errors, problems) = check(None, &env(&[]));
        assert!(errors.is_empty() && problems.is_empty());
    }

    #[test]
    fn problems_name_culprits() {
        let c = Config::from_yaml(
            "routes:\n  - hostname: web.default\n    drains: [\"syslog+tcp://h:1\", \"SYSLOG+TCP://H:1\", \"gopher://x\", \"file:///nonexistent-dir/x.log\"]\n  - hostname: \"\"\n    drains: []\n",
        )
        .unwrap();
        let p = problems(&c);
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
