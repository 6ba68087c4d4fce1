//! Which hostnames a `logtrain.akkeris.io/hostname` annotation may claim
//! (`ROUTE_HOSTNAME_SCOPE`). A hostname is a routing key: whoever claims
//! another's hostname receives its lines in their drains, and writes their own
//! lines into its drains. Under `namespace` (the default) an object may claim
//! only hostnames of its own namespace: `<name>.<namespace>`, or with Akkeris
//! naming also `<name>-<namespace>` (a non-empty name), or its own default.
//! Under `any`, anything (the Go logtrain).
//!
//! Akkeris names are ambiguous: `a-x-prod` is `a-x` of `prod` and `a` of
//! `x-prod`. A `-` claim is refused when it also reads as a hostname of another
//! namespace the caches know (seen on any cached workload or pod). Namespaces
//! with no workload in the caches are not known, and a claim accepted before
//! such a namespace appears is refused once it is seen (the view is recomputed
//! whole). Default names collide the same way (`a-x` in `prod` and `a` in
//! `x-prod` are both `a-x-prod`): that is Akkeris naming itself, which no
//! claim check can change.
//!
//! Pure decisions: nothing here reads the API server; the known namespaces come
//! from the caches through a closure.

use std::collections::HashSet;

use super::annotations::Naming;
use crate::config::HostnameScope;

/// A hostname claim that is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostnameRefused {
    #[error(
        "hostname \"{claimed}\" is not of namespace {namespace}: expected {expected} (ROUTE_HOSTNAME_SCOPE=namespace); its records keep the hostname \"{default}\""
    )]
    OtherNamespace {
        claimed: String,
        namespace: String,
        expected: String,
        default: String,
    },
    #[error(
        "hostname \"{claimed}\" also names an object of namespace {other} (Akkeris names join name and namespace with '-'), so namespace {namespace} may not claim it: use <name>.{namespace} (ROUTE_HOSTNAME_SCOPE=namespace); its records keep the hostname \"{default}\""
    )]
    Ambiguous {
        claimed: String,
        namespace: String,
        other: String,
        default: String,
    },
}

/// Longest claimed hostname a refusal repeats (a DNS name is at most 253).
const SHOWN: usize = 253;

/// `claimed` as a refusal shows it: cut (at a character boundary) past [`SHOWN`] bytes.
fn shown(claimed: &str) -> String {
    if claimed.len() <= SHOWN {
        return claimed.to_string();
    }
    let mut end = SHOWN;
    while !claimed.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &claimed[..end])
}

/// The hostname rules in force.
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    pub scope: HostnameScope,
    pub naming: &'a Naming,
}

impl Scope<'_> {
    /// Whether an object of `namespace`, whose hostname is `default` without
    /// annotation, may claim `claimed`. `known` lists the namespaces the
    /// caches know; it is asked only for an Akkeris `-` claim.
    pub fn check<'n, K>(&self, claimed: &str, namespace: &str, default: &str, known: K) -> Result<(), HostnameRefused>
    where
        K: FnOnce() -> &'n HashSet<String>,
    {
        if self.scope == HostnameScope::Any || claimed == default {
            return Ok(());
        }
        let dotted = claimed
            .strip_suffix(namespace)
            .and_then(|n| n.strip_suffix('.'))
            .is_some_and(|name| !name.is_empty());
        if dotted {
            return Ok(());
        }
        let dashed = self.naming.akkeris
            && claimed
                .strip_suffix(namespace)
                .and_then(|n| n.strip_suffix('-'))
                .is_some_and(|name| !name.is_empty());
        if !dashed {
            let expected = if self.naming.akkeris {
                format!("<name>.{namespace} or <name>-{namespace}")
            } else {
                format!("<name>.{namespace}")
            };
            return Err(HostnameRefused::OtherNamespace {
                claimed: shown(claimed),
                namespace: namespace.to_string(),
                expected,
                default: default.to_string(),
            });
        }
        let other = known()
            .iter()
            .filter(|ns| ns.as_str() != namespace)
            .filter(|ns| {
                claimed
                    .strip_suffix(ns.as_str())
                    .and_then(|n| n.strip_suffix('-'))
                    .is_some_and(|name| !name.is_empty())
            })
            .min();
        match other {
            Some(other) => Err(HostnameRefused::Ambiguous {
                claimed: shown(claimed),
                namespace: namespace.to_string(),
                other: other.clone(),
                default: default.to_string(),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(list: &[&str]) -> HashSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_namespace_may_claim_only_its_own_hostnames() {
        let plain = Naming { akkeris: false };
        let s = Scope {
            scope: HostnameScope::Namespace,
            naming: &plain,
        };
        let none = known(&[]);
        let check = |claimed: &str| s.check(claimed, "evil", "x.evil", || &none);
        assert!(check("web.evil").is_ok());
        assert!(check("a.b.evil").is_ok());
        assert!(check("x.evil").is_ok());
        for refused in [
            "web.default",
            ".evil",
            "evil",
            "web-evil",
            "web.notevil",
            "web.evil.default",
            "web.EVIL",
        ] {
            let e = check(refused).unwrap_err();
            assert!(matches!(e, HostnameRefused::OtherNamespace { .. }), "{refused}");
            let text = e.to_string();
            assert!(
                text.contains("<name>.evil") && text.contains("ROUTE_HOSTNAME_SCOPE"),
                "{text}"
            );
            assert!(text.contains("\"x.evil\""), "{text}");
        }
    }

    #[test]
    fn a_long_claim_is_cut_in_the_refusal() {
        let plain = Naming { akkeris: false };
        let s = Scope {
            scope: HostnameScope::Namespace,
            naming: &plain,
        };
        let none = known(&[]);
        let long = "é".repeat(10_000);
        let e = s.check(&long, "evil", "x.evil", || &none).unwrap_err();
        assert!(e.to_string().len() < 600, "{}", e.to_string().len());
    }

    #[test]
    fn any_scope_allows_every_claim() {
        let plain = Naming { akkeris: false };
        let s = Scope {
            scope: HostnameScope::Any,
            naming: &plain,
        };
        let none = known(&[]);
        assert!(s.check("web.default", "evil", "x.evil", || &none).is_ok());
    }

    #[test]
    fn akkeris_dash_claims_are_refused_when_another_known_namespace_reads_them() {
        let akk = Naming { akkeris: true };
        let s = Scope {
            scope: HostnameScope::Namespace,
            naming: &akk,
        };
        let some = known(&["prod", "x-prod", "default"]);
        assert!(s.check("shop-prod", "prod", "web-prod", || &some).is_ok());
        assert!(s.check("shop.prod", "prod", "web-prod", || &some).is_ok());
        assert!(s.check("a-b-default", "default", "web-default", || &some).is_ok());
        let e = s.check("a-x-prod", "prod", "web-prod", || &some).unwrap_err();
        assert!(
            matches!(&e, HostnameRefused::Ambiguous { other, .. } if other == "x-prod"),
            "{e:?}"
        );
        assert!(e.to_string().contains("<name>.prod"), "{e}");
        // Read the other way round too: from `x-prod`, `a-x-prod` is `a-x` of `prod`.
        assert!(s.check("a-x-prod", "x-prod", "web-x-prod", || &some).is_err());
        // Unless it is the object's own default (Akkeris naming gives it anyway).
        assert!(s.check("a-x-prod", "x-prod", "a-x-prod", || &some).is_ok());
        // Without the other namespace in the caches, nothing is ambiguous.
        let alone = known(&["prod"]);
        assert!(s.check("a-x-prod", "prod", "web-prod", || &alone).is_ok());
        assert!(s.check("-prod", "prod", "web-prod", || &alone).is_err());
        assert!(s.check("shop-default", "prod", "web-prod", || &alone).is_err());
    }

    #[test]
    fn the_known_namespaces_are_asked_only_for_an_akkeris_dash_claim() {
        let akk = Naming { akkeris: true };
        let s = Scope {
            scope: HostnameScope::Namespace,
            naming: &akk,
        };
        let never = || -> &HashSet<String> { panic!("asked") };
        assert!(s.check("a.prod", "prod", "web-prod", never).is_ok());
        assert!(s.check("a.other", "prod", "web-prod", never).is_err());
    }
}
