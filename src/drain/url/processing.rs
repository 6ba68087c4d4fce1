//! The processing parameters of a drain URL (`severity=`, `match=`,
//! `exclude=`, `stream=`, `rate=`, `parse=`, `labels=`, `sd=`) into a
//! [`Processing`], the same for every scheme, and the check that a drain of
//! its kind can honour them. Errors quote a value only as `params` allows (a
//! pattern is never shown, only why it does not compile). Pure functions only.

use super::kind::DrainKind;
use super::params::{Problem, quoted};
use crate::drain::process::{PARAMS, Pattern, Processing};
use crate::record::{Severity, Stream};

/// `rate=`: records per second, from 1 to this.
pub const MAX_RATE: u32 = 1_000_000;

/// Whether `k` is a processing parameter.
pub(super) fn is_processing(k: &str) -> bool {
    PARAMS.contains(&k)
}

/// Parses processing parameter `k` with value `v` into `p`.
pub(super) fn set(p: &mut Processing, k: &str, v: &str) -> Result<(), Problem> {
    let f = &mut p.filter;
    match k {
        "severity" => {
            f.severity = Some(Severity::parse(v).ok_or_else(|| {
                Problem::new(
                    format!("parameter severity={}", quoted(v)),
                    "severity= takes emerg, alert, crit, err, warning, notice, info, debug or 0-7",
                )
            })?);
        }
        "match" | "exclude" => {
            let pattern = Pattern::new(v).map_err(|e| {
                Problem::new(
                    format!("parameter {k}= is not a usable regular expression ({})", regex_problem(&e)),
                    format!(
                        "{k}= takes a regular expression of the Rust regex crate (no look-around or back-references), percent-encoded, compiling to at most 1 MiB"
                    ),
                )
            })?;
            if k == "match" {
                f.matches = Some(pattern);
            } else {
                f.exclude = Some(pattern);
            }
        }
        "stream" => {
            f.stream = Some(match v.to_ascii_lowercase().as_str() {
                "stdout" => Stream::Stdout,
                "stderr" => Stream::Stderr,
                other => {
                    return Err(Problem::new(
                        format!("parameter stream={}", quoted(other)),
                        "stream= takes stdout or stderr",
                    ));
                }
            })
        }
        "rate" => {
            let n = v.parse::<u32>().ok().filter(|n| (1..=MAX_RATE).contains(n));
            p.rate = Some(n.ok_or_else(|| {
                Problem::new(
                    format!("parameter rate={}", quoted(v)),
                    format!("rate= takes records per second from 1 to {MAX_RATE}"),
                )
            })?);
        }
        "parse" => {
            if !v.eq_ignore_ascii_case("json") {
                return Err(Problem::new(
                    format!("parameter parse={}", quoted(v)),
                    "parse= takes json",
                ));
            }
            p.parse_json = true;
        }
        "labels" => {
            let names: Vec<String> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            let valid = |n: &String| {
                n.len() <= 317
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
            };
            if names.is_empty() || !names.iter().all(valid) {
                return Err(Problem::new(
                    "parameter labels= names no valid label",
                    "labels= takes label names separated by commas (labels=app,team)",
                ));
            }
            p.labels = names;
        }
        "sd" => {
            if !v.eq_ignore_ascii_case("kubernetes") {
                return Err(Problem::new(
                    format!("parameter sd={}", quoted(v)),
                    "sd= takes kubernetes",
                ));
            }
            p.sd_kubernetes = true;
        }
        _ => unreachable!("every processing parameter is parsed here"),
    }
    if let Some(&name) = PARAMS.iter().find(|n| **n == k)
        && !p.given.contains(&name)
    {
        p.given.push(name);
        p.given.sort_by_key(|n| PARAMS.iter().position(|x| x == n));
    }
    Ok(())
}

/// Why a pattern did not compile, without quoting it (the regex crate's
/// message shows the pattern; only its last line, the reason, is kept).
fn regex_problem(e: &regex::Error) -> String {
    match e {
        regex::Error::CompiledTooBig(_) => "it compiles to more than 1 MiB".into(),
        regex::Error::Syntax(s) => s
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .map(|r| format!("syntax error: {r}"))
            .unwrap_or_else(|| "syntax error".into()),
        _ => "it cannot be compiled".into(),
    }
}

/// Checks that a drain of `kind` can honour `p`: `parse=json` only where
/// records become JSON documents, `sd=` only where they become syslog lines.
pub(super) fn check(p: &Processing, kind: &DrainKind) -> Result<(), Problem> {
    let json = matches!(kind, DrainKind::Http(_) | DrainKind::Elasticsearch(_));
    if p.parse_json && !json {
        return Err(Problem::new(
            "parse=json on a drain that sends syslog lines",
            "parse=json is for http(s):// and Elasticsearch drains",
        ));
    }
    if p.sd_kubernetes && json {
        return Err(Problem::new(
            "sd=kubernetes on a drain that sends JSON documents (they carry a kubernetes object already)",
            "sd=kubernetes is for syslog drains (syslog://, syslog+tcp://, syslog+tls://, syslog+http(s)://, file://, stdout://)",
        ));
    }
    Ok(())
}
