//! What logtrain reads from Kubernetes metadata: the `logtrain.akkeris.io/*`
//! annotations, the `akkeris.io/*` labels, and the naming rules (hostname and
//! tag) logtrain applies to workloads and pods. Pure functions only: no I/O.
//!
//! It also trims what the watch caches keep of each object, so that only the
//! keys named here stay in memory.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::drain::url::SCHEMES;

/// Drain URLs, separated by `;` (and by `,` before a scheme: see [`parse_drains`]).
pub const DRAINS: &str = "logtrain.akkeris.io/drains";
/// Overrides the hostname (routing key) of a workload's or pod's records.
pub const HOSTNAME: &str = "logtrain.akkeris.io/hostname";
/// Overrides the tag (app name) of a pod's records.
pub const TAG: &str = "logtrain.akkeris.io/tag";
/// The Akkeris app a workload or pod belongs to.
pub const AKKERIS_APP: &str = "akkeris.io/app-name";
/// The Akkeris dyno type (`web`, `worker`, …).
pub const AKKERIS_DYNO: &str = "akkeris.io/dyno-type";

pub(crate) const KEPT_ANNOTATIONS: [&str; 3] = [DRAINS, HOSTNAME, TAG];
const KEPT_LABELS: [&str; 2] = [AKKERIS_APP, AKKERIS_DYNO];

/// How names are made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Naming {
    /// `AKKERIS`: `name-namespace` hostnames and `<dyno>.<podid>` tags.
    pub akkeris: bool,
}

/// Splits a drains annotation. `;` always separates; `,` separates only where
/// the text after it (trimmed) starts a scheme logtrain knows (`https://`,
/// `syslog+tls://`, …), so a comma inside a URL (a password, a query) stays in
/// it. Entries are trimmed of blanks and of commas at either end, empty ones
/// ignored, duplicates dropped (first kept).
pub fn parse_drains(value: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for segment in value.split(';') {
        let mut start = 0;
        let cuts = segment
            .match_indices(',')
            .map(|(i, _)| i)
            .filter(|&i| starts_with_scheme(segment[i + 1..].trim_start()))
            .chain([segment.len()]);
        for end in cuts {
            let d = segment[start..end].trim_matches(|c: char| c == ',' || c.is_whitespace());
            if !d.is_empty() && seen.insert(d) {
                out.push(d.to_string());
            }
            start = (end + 1).min(segment.len());
        }
    }
    out
}

/// Whether `text` opens with `scheme://` for a scheme of the drain URL parser
/// (case-insensitive, as the parser reads schemes).
fn starts_with_scheme(text: &str) -> bool {
    SCHEMES.iter().any(|s| {
        text.len() > s.len() + 2
            && text.as_bytes()[..s.len()].eq_ignore_ascii_case(s.as_bytes())
            && text[s.len()..].starts_with("://")
    })
}

/// An annotation, `None` when absent or blank.
pub fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

/// A label, `None` when absent or blank.
pub fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels
        .as_ref()
        .and_then(|a| a.get(key))
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

/// The drains an object's annotation names.
pub fn drains(meta: &ObjectMeta) -> Vec<String> {
    annotation(meta, DRAINS).map(parse_drains).unwrap_or_default()
}

/// Whether an object carries the Akkeris app label.
pub fn is_akkeris(meta: &ObjectMeta) -> bool {
    label(meta, AKKERIS_APP).is_some()
}

/// What logtrain keeps of a pod's metadata: what [`trim`] keeps, and every
/// label (a drain's `labels=` may name any; only the pods of this node are
/// watched, so this is bounded by what the node runs).
pub fn trim_pod(meta: &mut ObjectMeta) {
    let labels = meta.labels.take();
    trim(meta);
    meta.labels = labels;
}

/// Keeps only what logtrain reads of an object's metadata: name, namespace,
/// owner references, and the annotations and labels named in this module.
pub fn trim(meta: &mut ObjectMeta) {
    fn keep(map: &mut Option<BTreeMap<String, String>>, keys: &[&str]) {
        if let Some(m) = map {
            m.retain(|k, _| keys.contains(&k.as_str()));
            if m.is_empty() {
                *map = None;
            }
        }
    }
    meta.managed_fields = None;
    meta.finalizers = None;
    meta.generate_name = None;
    meta.creation_timestamp = None;
    meta.deletion_grace_period_seconds = None;
    meta.self_link = None;
    keep(&mut meta.annotations, &KEPT_ANNOTATIONS);
    keep(&mut meta.labels, &KEPT_LABELS);
    if let Some(refs) = &mut meta.owner_references {
        for r in refs.iter_mut() {
            r.uid = String::new();
            r.block_owner_deletion = None;
        }
    }
}

impl Naming {
    /// The default hostname of a top-level object `name` in `namespace`:
    /// `name.namespace`, or `name-namespace` with Akkeris naming.
    pub fn join(&self, name: &str, namespace: &str) -> String {
        if self.akkeris {
            format!("{name}-{namespace}")
        } else {
            format!("{name}.{namespace}")
        }
    }

    /// The hostname a workload's records get without a hostname annotation:
    /// (with Akkeris naming) `app-namespace` from its `akkeris.io/app-name`
    /// label, else its name joined with its namespace. Whether its annotation
    /// may replace it is for `scope.rs` to say.
    pub fn default_hostname(&self, meta: &ObjectMeta) -> String {
        let ns = meta.namespace.as_deref().unwrap_or_default();
        if self.akkeris
            && let Some(app) = label(meta, AKKERIS_APP)
        {
            return self.join(app, ns);
        }
        self.join(meta.name.as_deref().unwrap_or_default(), ns)
    }

    /// The default tag of a pod: its name, or with Akkeris naming
    /// `<dyno>.<podid>` — `podid` being the last two `-` segments of the pod
    /// name and `dyno` the `akkeris.io/dyno-type` label (of the pod's owner or
    /// the pod), else the part after `--` in the rest of the name, else `web`.
    pub fn pod_tag(&self, pod: &str, dyno_label: Option<&str>) -> String {
        if !self.akkeris {
            return pod.to_string();
        }
        let parts: Vec<&str> = pod.split('-').collect();
        let (prefix, podid) = if parts.len() > 2 {
            (parts[..parts.len() - 2].join("-"), parts[parts.len() - 2..].join("-"))
        } else {
            (String::new(), pod.to_string())
        };
        let dyno = match dyno_label {
            Some(d) => d.to_string(),
            None => prefix
                .split_once("--")
                .map(|(_, d)| d.to_string())
                .unwrap_or_else(|| "web".to_string()),
        };
        format!("{dyno}.{podid}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, ns: &str, ann: &[(&str, &str)], labels: &[(&str, &str)]) -> ObjectMeta {
        let map = |kv: &[(&str, &str)]| {
            (!kv.is_empty()).then(|| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
        };
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            annotations: map(ann),
            labels: map(labels),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn drains_split_on_semicolons_and_on_commas_before_a_scheme() {
        assert_eq!(
            parse_drains(" syslog+tls://a:1 ; https://b/x,, ;stdout:// , syslog+tls://a:1"),
            vec!["syslog+tls://a:1", "https://b/x", "stdout://"]
        );
        assert!(parse_drains(" ; , ").is_empty());
        assert!(drains(&meta("w", "d", &[(DRAINS, "  ")], &[])).is_empty());
        assert_eq!(
            parse_drains("syslog://a,SYSLOG+TCP://b:1,  es+https://c"),
            vec!["syslog://a", "SYSLOG+TCP://b:1", "es+https://c"]
        );
    }

    #[test]
    fn a_comma_inside_a_url_stays_in_it() {
        assert_eq!(
            parse_drains("https://user:pa,ss@collector/ingest, syslog+tls://a:1"),
            vec!["https://user:pa,ss@collector/ingest", "syslog+tls://a:1"]
        );
        assert_eq!(
            parse_drains("https://h/x?tags=a,b,c;https://u:p,,w@h2"),
            vec!["https://h/x?tags=a,b,c", "https://u:p,,w@h2"]
        );
        // Text that only looks like a scheme does not split: `gopher` is none of ours.
        assert_eq!(
            parse_drains("https://u:a,gopher://x@h"),
            vec!["https://u:a,gopher://x@h"]
        );
        assert_eq!(parse_drains("https://u:a,http:x@h"), vec!["https://u:a,http:x@h"]);
        // A password that itself holds `,https://` cannot be told apart: it splits.
        assert_eq!(parse_drains("https://u:a,https://@h").len(), 2);
    }

    #[test]
    fn workload_hostnames() {
        let plain = Naming { akkeris: false };
        let akk = Naming { akkeris: true };
        let w = meta("web", "default", &[], &[(AKKERIS_APP, "shop")]);
        assert_eq!(plain.default_hostname(&w), "web.default");
        assert_eq!(akk.default_hostname(&w), "shop-default");
        let w = meta("web", "default", &[], &[]);
        assert_eq!(akk.default_hostname(&w), "web-default");
        // The annotation is not the default: `scope.rs` decides whether it applies.
        let w = meta(
            "web",
            "default",
            &[(HOSTNAME, " custom.host ")],
            &[(AKKERIS_APP, "shop")],
        );
        assert_eq!(akk.default_hostname(&w), "shop-default");
    }

    #[test]
    fn akkeris_tags() {
        let akk = Naming { akkeris: true };
        assert_eq!(
            akk.pod_tag("shop--worker-7d9f8c6b5-x2x4z", None),
            "worker.7d9f8c6b5-x2x4z"
        );
        assert_eq!(akk.pod_tag("shop-7d9f8c6b5-x2x4z", None), "web.7d9f8c6b5-x2x4z");
        assert_eq!(
            akk.pod_tag("shop-7d9f8c6b5-x2x4z", Some("cron")),
            "cron.7d9f8c6b5-x2x4z"
        );
        assert_eq!(akk.pod_tag("db-0", None), "web.db-0");
        assert_eq!(Naming { akkeris: false }.pod_tag("web-1-2", None), "web-1-2");
    }

    #[test]
    fn trim_keeps_only_what_is_read() {
        let mut m = meta(
            "w",
            "d",
            &[
                (DRAINS, "stdout://"),
                ("kubectl.kubernetes.io/last-applied-configuration", "{…}"),
            ],
            &[(AKKERIS_APP, "a"), ("app", "w")],
        );
        m.managed_fields = Some(vec![Default::default()]);
        trim(&mut m);
        assert!(m.managed_fields.is_none());
        assert_eq!(m.annotations.as_ref().unwrap().len(), 1);
        assert_eq!(m.labels.as_ref().unwrap().len(), 1);
        let mut m = meta("w", "d", &[("x", "y")], &[]);
        trim(&mut m);
        assert!(m.annotations.is_none());
    }

    #[test]
    fn a_pod_keeps_every_label_and_only_the_annotations_read() {
        let mut m = meta(
            "p",
            "d",
            &[(DRAINS, "stdout://"), ("other", "x")],
            &[("app", "w"), ("team", "pay")],
        );
        m.managed_fields = Some(vec![Default::default()]);
        trim_pod(&mut m);
        assert!(m.managed_fields.is_none());
        assert_eq!(m.annotations.as_ref().unwrap().len(), 1);
        assert_eq!(m.labels.as_ref().unwrap().len(), 2);
    }
}
