//! What each origin may declare. Trust follows who wrote a route: the static
//! file and the Postgres table are the operator's and may name any drain; an
//! annotation is whoever may edit a workload (another tenant), so it may name
//! network drains only, and never an IP literal that `DRAIN_DENY_NETWORKS`
//! forbids (names are checked again on every resolved address at connect time).
//!
//! Pure decisions: nothing here starts, resolves or connects anything.

use crate::datasource::OriginKind;
use crate::drain::{DrainKind, DrainSpec};
use crate::egress::{Denied, Egress};

/// Who wrote a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trust {
    /// The static file and the Postgres table.
    Operator,
    /// Kubernetes annotations: anyone who may edit a workload.
    Tenant,
}

impl Trust {
    pub fn of(origin: OriginKind) -> Trust {
        match origin {
            OriginKind::Static | OriginKind::Postgres => Trust::Operator,
            OriginKind::Kubernetes => Trust::Tenant,
        }
    }
}

/// Why a tenant may not use a drain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "{scheme}:// drains write on the node and may only come from the static file or the Postgres table, not from an annotation"
    )]
    Local { scheme: &'static str },
    #[error(transparent)]
    Denied(#[from] Denied),
}

/// Whether a route of `trust` may use `spec`.
pub fn admit(spec: &DrainSpec, trust: Trust, egress: &Egress) -> Result<(), Refusal> {
    if trust == Trust::Operator {
        return Ok(());
    }
    match spec.kind {
        DrainKind::File { .. } => Err(Refusal::Local { scheme: "file" }),
        DrainKind::Stdout => Err(Refusal::Local { scheme: "stdout" }),
        _ => Ok(egress.check_literal(&spec.host)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> DrainSpec {
        DrainSpec::parse(url).unwrap()
    }

    #[test]
    fn tenants_get_network_drains_to_allowed_addresses_only() {
        let e = Egress::default();
        for url in ["file:///var/lib/logtrain/checkpoints.json.tmp", "stdout://"] {
            assert!(
                matches!(admit(&spec(url), Trust::Tenant, &e), Err(Refusal::Local { .. })),
                "{url}"
            );
            assert!(admit(&spec(url), Trust::Operator, &e).is_ok());
        }
        for url in [
            "syslog+tcp://127.0.0.1:514",
            "https://169.254.169.254/latest/meta-data",
            "syslog://[::1]:514",
        ] {
            assert!(
                matches!(admit(&spec(url), Trust::Tenant, &e), Err(Refusal::Denied(_))),
                "{url}"
            );
            assert!(admit(&spec(url), Trust::Operator, &e).is_ok());
        }
        assert!(admit(&spec("syslog+tls://logs.example.com:6514"), Trust::Tenant, &e).is_ok());
        assert!(admit(&spec("syslog+tcp://127.0.0.1:514"), Trust::Tenant, &Egress::open()).is_ok());
        assert_eq!(Trust::of(OriginKind::Kubernetes), Trust::Tenant);
        assert_eq!(Trust::of(OriginKind::Postgres), Trust::Operator);
    }
}
