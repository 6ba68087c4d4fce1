//! What logtrain refuses of an annotation, said once per object and value
//! while it stays: a drain URL that does not parse, a drain an annotation may
//! not name (`route::policy`), a hostname out of `ROUTE_HOSTNAME_SCOPE`, drains
//! over `ANNOTATION_MAX_DRAINS`. The datasource logs and counts the last two
//! (the route writer never sees them); the route writer logs and counts the
//! first two. Every one becomes a Warning Event on its object (`events.rs`).
//!
//! Nothing here talks to the API server. A refusal's `message` is shown to
//! users and logged: it names drains by their id or their URL error (password
//! masked), never by the URL as written; `subject`, the refused value as
//! written, is only compared and hashed.

use std::collections::{HashMap, HashSet};

use tracing::warn;

use super::view::Objects;
use crate::datasource::OriginKind;
use crate::drain::DrainSpec;
use crate::egress::Egress;
use crate::route::policy::{self, Trust};
use crate::telemetry;

/// Why something of an annotation was refused (the Event's reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// A drain URL that does not parse.
    BadDrainUrl,
    /// A drain annotations may not name (a local drain, a denied address).
    DrainNotAllowed,
    /// A hostname out of `ROUTE_HOSTNAME_SCOPE`.
    HostnameRefused,
    /// Drains over `ANNOTATION_MAX_DRAINS`.
    TooManyDrains,
}

impl Reason {
    /// The Event's reason, as `kubectl describe` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadDrainUrl => "BadDrainURL",
            Reason::DrainNotAllowed => "DrainNotAllowed",
            Reason::HostnameRefused => "HostnameRefused",
            Reason::TooManyDrains => "TooManyDrains",
        }
    }
}

/// One refusal on one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The route object id (`Deployment default/web`, `Pod ns/name`).
    pub object: String,
    pub reason: Reason,
    /// The refused value as written (a hostname, a URL, the refused URLs):
    /// compared and hashed, never shown.
    pub subject: String,
    /// What is wrong and what would be valid, safe to show and log.
    pub message: String,
    /// Routes it costs (counted in `logtrain_route_errors_total`).
    pub routes: u64,
}

impl Refusal {
    /// Logs and counts a refusal the datasource itself makes (hostname,
    /// caps); the route writer does so for drains.
    pub fn log_and_count(&self) {
        let message = match self.reason {
            Reason::HostnameRefused => "Hostname annotation refused: out of ROUTE_HOSTNAME_SCOPE.",
            Reason::TooManyDrains => "Drains refused: more than ANNOTATION_MAX_DRAINS.",
            Reason::BadDrainUrl | Reason::DrainNotAllowed => return,
        };
        telemetry::counter(
            "logtrain_route_errors_total",
            &[("origin", OriginKind::Kubernetes.as_str())],
        )
        .add(self.routes);
        warn!(object = %self.object, reason = self.reason.as_str(), error = %self.message, "{message}");
    }
}

/// FNV-1a (64 bits) over the parts, each followed by a 0 byte (so `("ab",
/// "c")` and `("a", "bc")` differ): the same on every node and every build.
pub fn digest(parts: &[&str]) -> u64 {
    parts
        .iter()
        .fold(crate::hash::Fnv64::default(), |h, p| h.write(p.as_bytes()).write(&[0]))
        .finish()
}

/// The refusals already said, so that each is said once while it stays; one
/// that goes (fixed, object deleted) and comes back is said again. Values are
/// kept as digests: an annotation may be long, and the caches hold it already.
#[derive(Default)]
pub struct Told {
    said: HashSet<(String, Reason, u64)>,
}

impl Told {
    /// The refusals of `now` not said yet; forgets those no longer present.
    pub fn news<'a>(&mut self, now: &'a [Refusal]) -> Vec<&'a Refusal> {
        let mut said = HashSet::with_capacity(now.len());
        let mut news = Vec::new();
        for r in now {
            let key = (r.object.clone(), r.reason, digest(&[&r.subject]));
            if !self.said.contains(&key) && !said.contains(&key) {
                news.push(r);
            }
            said.insert(key);
        }
        self.said = said;
        news
    }
}

/// Parse and policy outcome of every drain URL named now, so a republish does
/// not parse every route again.
#[derive(Default)]
pub struct Verdicts {
    cache: HashMap<String, Option<(Reason, String)>>,
}

impl Verdicts {
    /// The drains of `objects` that do not parse or that annotations may not
    /// name under `egress` (the route writer's policy).
    pub fn review(&mut self, objects: &Objects, egress: &Egress) -> Vec<Refusal> {
        let mut out = Vec::new();
        let mut cache = HashMap::with_capacity(self.cache.len());
        for (id, routes) in objects {
            for r in routes {
                let verdict = match self.cache.remove(&r.drain) {
                    Some(v) => v,
                    None => cache
                        .get(&r.drain)
                        .cloned()
                        .unwrap_or_else(|| verdict(&r.drain, egress)),
                };
                if let Some((reason, message)) = &verdict {
                    out.push(Refusal {
                        object: id.clone(),
                        reason: *reason,
                        subject: r.drain.clone(),
                        message: message.clone(),
                        routes: 1,
                    });
                }
                cache.insert(r.drain.clone(), verdict);
            }
        }
        self.cache = cache;
        out
    }
}

fn verdict(url: &str, egress: &Egress) -> Option<(Reason, String)> {
    match DrainSpec::parse(url) {
        Err(e) => Some((Reason::BadDrainUrl, e.to_string())),
        Ok(spec) => policy::admit(&spec, Trust::Tenant, egress)
            .err()
            .map(|refusal| (Reason::DrainNotAllowed, format!("drain {} refused: {refusal}", spec.id))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasource::RouteSpec;

    fn objects(list: &[(&str, &[&str])]) -> Objects {
        list.iter()
            .map(|(id, drains)| (id.to_string(), drains.iter().map(|d| RouteSpec::new("h", *d)).collect()))
            .collect()
    }

    #[test]
    fn drains_that_do_not_parse_or_are_not_allowed_are_refused_without_their_secrets() {
        let mut v = Verdicts::default();
        let o = objects(&[(
            "Deployment shop/web",
            &[
                "syslog+tls://logs.example.com:6514",
                "ftp://deploy:s3cret@logs.example.com/x",
                "file:///var/lib/logtrain/checkpoints.json",
                "https://u:s3cret@127.0.0.1/x?token=s3cret",
            ],
        )]);
        let r = v.review(&o, &Egress::default());
        let reasons: Vec<Reason> = r.iter().map(|r| r.reason).collect();
        assert_eq!(
            reasons,
            [Reason::BadDrainUrl, Reason::DrainNotAllowed, Reason::DrainNotAllowed]
        );
        for x in &r {
            assert!(!x.message.contains("s3cret"), "{}", x.message);
            assert_eq!(x.object, "Deployment shop/web");
        }
        assert!(r[1].message.contains("file://"), "{}", r[1].message);
        assert!(r[2].message.contains("DRAIN_DENY_NETWORKS"), "{}", r[2].message);
        // An open egress allows the loopback drain; local drains stay refused.
        assert_eq!(Verdicts::default().review(&o, &Egress::open()).len(), 2);
        // Verdicts are kept while a URL is named, and dropped once it is not.
        assert_eq!(v.review(&o, &Egress::default()).len(), 3);
        assert!(v.review(&Objects::new(), &Egress::default()).is_empty());
        assert!(v.cache.is_empty());
    }

    #[test]
    fn each_refusal_is_told_once_while_it_stays() {
        let r = |object: &str, subject: &str| Refusal {
            object: object.into(),
            reason: Reason::HostnameRefused,
            subject: subject.into(),
            message: String::new(),
            routes: 1,
        };
        let mut told = Told::default();
        let first = [r("Deployment evil/x", "web.default")];
        assert_eq!(told.news(&first).len(), 1);
        assert!(told.news(&first).is_empty());
        // A new value is news; the old one, gone, is forgotten.
        let second = [r("Deployment evil/x", "api.default")];
        assert_eq!(told.news(&second).len(), 1);
        assert_eq!(told.news(&first).len(), 1);
        let twice = [r("Pod a/b", "c.d"), r("Pod a/b", "c.d")];
        assert_eq!(told.news(&twice).len(), 1);
    }
}
