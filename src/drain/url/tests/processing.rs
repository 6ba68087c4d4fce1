//! Tests of the processing parameters: parsed for every scheme, removed
//! before connecting, refused with a clear reason, named in the drain id.

use super::*;
use crate::record::{Severity, Stream};

fn processing(s: &DrainSpec) -> &Processing {
    s.processing
        .as_deref()
        .unwrap_or_else(|| panic!("{s:?}: no processing"))
}

#[test]
fn every_parameter_is_parsed_for_every_scheme() {
    for base in [
        "syslog+tcp://h:514",
        "syslog://h:514",
        "https://h/x",
        "es://h",
        "file:///var/log/x.log",
        "stdout://",
    ] {
        let sep = if base.contains('?') { '&' } else { '?' };
        let s = ok(&format!(
            "{base}{sep}severity=warning&match=%5EGET&exclude=healthz&stream=stderr&rate=50&labels=app,team"
        ));
        let p = processing(&s);
        assert_eq!(p.filter.severity, Some(Severity::WARNING), "{base}");
        assert_eq!(p.filter.stream, Some(Stream::Stderr));
        assert!(p.filter.matches.as_ref().unwrap().is_match(b"GET /"));
        assert!(p.filter.exclude.as_ref().unwrap().is_match(b"/healthz"));
        assert_eq!(p.rate, Some(50));
        assert_eq!(p.labels, ["app", "team"]);
        assert!(
            s.id.ends_with(" params=severity,match,exclude,stream,rate,labels"),
            "{}",
            s.id
        );
        assert!(
            !s.id.contains("GET") && !s.id.contains("healthz"),
            "values stay out of the id: {}",
            s.id
        );
    }
    assert_eq!(
        processing(&ok("syslog://h?severity=3")).filter.severity,
        Some(Severity::ERROR)
    );
    assert!(ok("syslog://h").processing.is_none(), "none given: none at all");
}

#[test]
fn they_never_reach_an_http_target() {
    let s = ok("https://h/ingest?token=abc&severity=err&rate=5&parse=json");
    assert_eq!(http(&s).target.as_str(), "https://h/ingest?token=abc");
    let s = ok("https://h/ingest?parse=json");
    assert_eq!(http(&s).target.as_str(), "https://h/ingest");
    assert!(processing(&s).parse_json);
}

#[test]
fn different_parameters_make_a_different_drain() {
    let plain = ok("syslog+tcp://h:514");
    let warn = ok("syslog+tcp://h:514?severity=warning");
    let err = ok("syslog+tcp://h:514?severity=err");
    assert_ne!(plain.id, warn.id);
    assert_ne!(warn.id, err.id, "same names, other values: the digest differs");
    let f1 = ok("file:///var/log/x.log");
    let f2 = ok("file:///var/log/x.log?severity=err");
    assert_eq!(f1.id, "file:///var/log/x.log");
    assert_ne!(f1.id, f2.id);
    assert!(
        f2.id.starts_with("file:///var/log/x.log#") && f2.id.ends_with(" params=severity"),
        "{}",
        f2.id
    );
    assert_eq!(
        ok("syslog://h?rate=5&severity=err").id.split(' ').nth(1),
        Some("params=severity,rate")
    );
}

#[test]
fn bad_values_are_refused_with_what_would_be_valid() {
    let e = bad("syslog+tcp://h:514?match=(unclosed");
    assert!(e.problem.contains("match= is not a usable regular expression"), "{e}");
    assert!(e.problem.contains("unclosed group"), "{e}");
    assert!(!e.to_string().contains("(unclosed"), "the pattern is not quoted: {e}");
    let e = bad(r"syslog+tcp://h:514?exclude=\w{1000}\w{1000}\w{1000}");
    assert!(e.problem.contains("more than 1 MiB"), "{e}");
    for (url, says) in [
        ("syslog://h?severity=loud", "severity= takes emerg"),
        ("syslog://h?severity=8", "severity= takes emerg"),
        ("syslog://h?rate=0", "rate= takes records per second"),
        ("syslog://h?rate=many", "rate= takes records per second"),
        ("syslog://h?stream=stdin", "stream= takes stdout or stderr"),
        ("syslog://h?parse=xml", "parse= takes json"),
        ("syslog://h?sd=other", "sd= takes kubernetes"),
        ("syslog://h?labels=", "labels= takes label names"),
        ("syslog://h?labels=a%20b", "labels= takes label names"),
        ("syslog+tcp://h?parse=json", "parse=json is for http(s)://"),
        ("file:///x.log?parse=json", "parse=json is for http(s)://"),
        ("https://h?sd=kubernetes", "sd=kubernetes is for syslog drains"),
        ("es://h?sd=kubernetes", "sd=kubernetes is for syslog drains"),
    ] {
        let e = bad(url);
        assert!(e.to_string().contains(says), "{url}: {e}");
    }
    assert!(processing(&ok("syslog+tls://h?sd=kubernetes&labels=app")).sd_kubernetes);
    assert!(processing(&ok("es+http://h?parse=json")).parse_json);
}

#[test]
fn the_readme_annotation_names_two_drains_that_parse() {
    let value = "https://logs.example.com/ingest?severity=warning&parse=json&labels=app,team&rate=500, syslog+tls://siem.example.com:6514?match=%5Eaudit%20&exclude=healthz&stream=stdout&sd=kubernetes&labels=team";
    let drains = crate::datasource::kubernetes::annotations::parse_drains(value);
    assert_eq!(drains.len(), 2, "{drains:?}");
    let https = ok(&drains[0]);
    assert_eq!(processing(&https).labels, ["app", "team"]);
    assert_eq!(processing(&https).rate, Some(500));
    let syslog = ok(&drains[1]);
    assert!(
        processing(&syslog)
            .filter
            .matches
            .as_ref()
            .unwrap()
            .is_match(b"audit login")
    );
    assert!(processing(&syslog).sd_kubernetes);
}
