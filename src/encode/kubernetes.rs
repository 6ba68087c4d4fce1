//! The Kubernetes metadata of a tailed record as a drain writes it: a
//! `kubernetes` JSON object for JSON drains, and for a syslog drain given
//! `sd=kubernetes` one RFC 5424 SD element,
//!
//! ```text
//! [kubernetes@32473 namespace="default" pod="web-7d9f-x2x4z" container="web" node="n1"
//!  workload_kind="Deployment" workload="web" label.app="web"]
//! ```
//!
//! The SD-ID is `kubernetes@32473`: logtrain has no private enterprise number
//! of its own, and 32473 is the one RFC 5612 reserves for examples, so the
//! element can never be mistaken for a registered enterprise's. Parameters
//! absent from the record's metadata are left out; a label is `label.<name>`
//! and left out when that name is longer than the 32 characters RFC 5424
//! allows. Values are escaped as RFC 5424 §6.3.3 says (`"`, `\` and `]`).
//! Appends to a caller's buffer; pure functions only.

use super::json;
use crate::record::PodRef;

/// The SD-ID of the element.
pub const SD_ID: &str = "kubernetes@32473";

/// RFC 5424 §6.3.3: PARAM-NAME is at most 32 characters.
const MAX_SD_NAME: usize = 32;

/// Appends the SD element of `pod`, with the labels named in `labels`.
pub fn sd_element(pod: &PodRef, labels: &[String], out: &mut Vec<u8>) {
    out.push(b'[');
    out.extend_from_slice(SD_ID.as_bytes());
    sd_param(out, "namespace", &pod.namespace);
    sd_param(out, "pod", &pod.pod);
    sd_param(out, "container", &pod.container);
    if let Some(n) = &pod.node {
        sd_param(out, "node", n);
    }
    if let Some(w) = &pod.workload {
        sd_param(out, "workload_kind", &w.kind);
        sd_param(out, "workload", &w.name);
    }
    for (k, v) in asked(pod, labels) {
        let name = format!("label.{k}");
        if name.len() <= MAX_SD_NAME && name.bytes().all(sd_name_char) {
            sd_param(out, &name, v);
        }
    }
    out.push(b']');
}

fn sd_name_char(c: u8) -> bool {
    (33..=126).contains(&c) && !matches!(c, b'=' | b']' | b'"')
}

fn sd_param(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"=\"");
    for &c in value.as_bytes() {
        if matches!(c, b'"' | b'\\' | b']') {
            out.push(b'\\');
        }
        out.push(c);
    }
    out.push(b'"');
}

/// Appends `,"kubernetes":{…}`: namespace, pod, container, node and
/// workload when known, and `labels` holding the labels named in `labels`
/// when any was asked for.
pub fn json_object(pod: &PodRef, labels: &[String], out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"kubernetes\":{\"namespace\":");
    json::string(pod.namespace.as_bytes(), out);
    out.extend_from_slice(b",\"pod\":");
    json::string(pod.pod.as_bytes(), out);
    out.extend_from_slice(b",\"container\":");
    json::string(pod.container.as_bytes(), out);
    if let Some(n) = &pod.node {
        out.extend_from_slice(b",\"node\":");
        json::string(n.as_bytes(), out);
    }
    if let Some(w) = &pod.workload {
        out.extend_from_slice(b",\"workload\":{\"kind\":");
        json::string(w.kind.as_bytes(), out);
        out.extend_from_slice(b",\"name\":");
        json::string(w.name.as_bytes(), out);
        out.push(b'}');
    }
    if !labels.is_empty() {
        out.extend_from_slice(b",\"labels\":{");
        for (i, (k, v)) in asked(pod, labels).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::string(k.as_bytes(), out);
            out.push(b':');
            json::string(v.as_bytes(), out);
        }
        out.push(b'}');
    }
    out.push(b'}');
}

/// The pod's labels named in `labels`, in the order asked.
fn asked<'a>(pod: &'a PodRef, labels: &'a [String]) -> impl Iterator<Item = (&'a str, &'a str)> {
    labels
        .iter()
        .filter_map(|k| pod.labels.get(k).map(|v| (k.as_str(), v.as_str())))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::encode::rfc5424::valid_sd;
    use crate::record::Workload;

    fn pod() -> PodRef {
        let mut labels = BTreeMap::new();
        labels.insert("app".to_string(), "web \"quoted\" ]x\\".to_string());
        labels.insert("app.kubernetes.io/very-long-label-name".to_string(), "v".to_string());
        PodRef {
            namespace: "default".into(),
            pod: "web-7d9f-x2x4z".into(),
            container: "web".into(),
            node: Some(Arc::from("n1")),
            workload: Some(Workload {
                kind: "Deployment".into(),
                name: "web".into(),
            }),
            labels: Arc::new(labels),
        }
    }

    #[test]
    fn the_sd_element_is_well_formed_and_escaped() {
        let mut out = Vec::new();
        let asked = [
            "app".to_string(),
            "app.kubernetes.io/very-long-label-name".to_string(),
            "none".to_string(),
        ];
        sd_element(&pod(), &asked, &mut out);
        let s = String::from_utf8(out.clone()).unwrap();
        assert_eq!(
            s,
            r#"[kubernetes@32473 namespace="default" pod="web-7d9f-x2x4z" container="web" node="n1" workload_kind="Deployment" workload="web" label.app="web \"quoted\" \]x\\"]"#
        );
        assert!(valid_sd(&out), "{s}");
    }

    #[test]
    fn the_json_object_names_what_is_known_and_the_labels_asked() {
        let mut out = b"{\"a\":1".to_vec();
        json_object(&pod(), &["app".to_string()], &mut out);
        out.push(b'}');
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let k = &v["kubernetes"];
        assert_eq!(k["namespace"], "default");
        assert_eq!(k["pod"], "web-7d9f-x2x4z");
        assert_eq!(k["container"], "web");
        assert_eq!(k["node"], "n1");
        assert_eq!(k["workload"]["kind"], "Deployment");
        assert_eq!(k["labels"]["app"], "web \"quoted\" ]x\\");
        let mut bare = PodRef {
            node: None,
            workload: None,
            ..pod()
        };
        bare.labels = Arc::default();
        let mut out = b"{\"a\":1".to_vec();
        json_object(&bare, &[], &mut out);
        out.push(b'}');
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(v["kubernetes"].get("node").is_none() && v["kubernetes"].get("labels").is_none());
    }
}
