//! Names of kubelet's container log links:
//! `<pod>_<namespace>_<container>-<64 hex container id>.log`.

/// What a container log file name says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogName {
    pub pod: String,
    pub namespace: String,
    pub container: String,
    pub container_id: String,
}

/// Parses a file name (not a path); `None` for anything else.
pub fn parse(file_name: &str) -> Option<LogName> {
    let stem = file_name.strip_suffix(".log")?;
    let (pod, rest) = stem.split_once('_')?;
    let (namespace, rest) = rest.split_once('_')?;
    let (container, id) = rest.rsplit_once('-')?;
    if pod.is_empty() || namespace.is_empty() || container.is_empty() {
        return None;
    }
    if id.len() != 64 || !id.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some(LogName {
        pod: pod.to_string(),
        namespace: namespace.to_string(),
        container: container.to_string(),
        container_id: id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_names() {
        let id = "a".repeat(64);
        let n = parse(&format!("web-7d9f8c6b5-x2x4z_default_my-app-{id}.log")).unwrap();
        assert_eq!(
            (n.pod.as_str(), n.namespace.as_str(), n.container.as_str()),
            ("web-7d9f8c6b5-x2x4z", "default", "my-app")
        );
        assert_eq!(n.container_id, id);
        for bad in [
            format!("web_default_app-{}.log", "a".repeat(63)),
            format!("web_default_app-{}.log", "g".repeat(64)),
            format!("web_default-{id}.log"),
            format!("web_default_app-{id}.log.20240101"),
            "random.log".to_string(),
        ] {
            assert!(parse(&bad).is_none(), "{bad}");
        }
    }
}
