//! Per-drain processing declared in the drain URL: which records a drain
//! takes (`severity=`, `match=`, `exclude=`, `stream=`), how many per second
//! (`rate=`), and how its encoder shapes them (`parse=json`, `labels=`,
//! `sd=kubernetes`). [`Processing`] is what the URL parser builds (parsing and
//! its errors live in `url/processing.rs`); [`Gate`] is what a running drain
//! applies at its entry, before queueing.
//!
//! A record a gate leaves out is done for that drain: it is simply not
//! queued, so its acknowledgement never waits on this drain and a tailer's
//! checkpoint moves on. A drain without parameters has no gate at all: its
//! entry pays one branch on an `Option`. Nothing here encodes or sends.

pub mod filter;
pub mod rate;

use std::fmt;

use crate::record::{Record, SharedRecord};
use crate::telemetry::Counter;

pub use filter::{Filter, Pattern};
pub use rate::{Bucket, RateEpisode};

/// The processing parameters, in the order a drain id lists them.
pub const PARAMS: &[&str] = &[
    "severity", "match", "exclude", "stream", "rate", "parse", "labels", "sd",
];

/// What a drain URL's processing parameters asked for.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Processing {
    /// `severity=`, `match=`, `exclude=`, `stream=`.
    pub filter: Filter,
    /// `rate=N`: at most N records per second, in bursts of at most N.
    pub rate: Option<u32>,
    /// `parse=json`: a message that is a JSON object becomes fields of the
    /// document (JSON drains only).
    pub parse_json: bool,
    /// `labels=a,b`: these pod labels go into the Kubernetes metadata.
    pub labels: Vec<String>,
    /// `sd=kubernetes`: syslog lines carry the Kubernetes metadata as one SD
    /// element (syslog drains only).
    pub sd_kubernetes: bool,
    /// The parameters given, in [`PARAMS`] order (for the drain id).
    pub given: Vec<&'static str>,
}

impl fmt::Debug for Processing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: a pattern is the user's and may say anything.
        f.debug_tuple("Processing").field(&self.given).finish()
    }
}

impl Processing {
    /// Whether anything decides which records the drain takes (a filter or a
    /// rate), so its entry needs a [`Gate`].
    pub fn gates(&self) -> bool {
        !self.filter.is_empty() || self.rate.is_some()
    }

    /// The part a drain id gets: ` params=severity,rate` (names, never values).
    pub fn id_suffix(&self) -> String {
        format!(" params={}", self.given.join(","))
    }
}

/// What a running drain applies to each record offered to it: the filter,
/// then the rate limit. Counts what it leaves out.
pub struct Gate {
    filter: Filter,
    bucket: Option<Bucket>,
    filtered: Counter,
    rate_limited: Counter,
}

/// What a gate decided for one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Take,
    /// A filter left it out.
    Filtered,
    /// Over the drain's rate.
    RateLimited,
}

impl Gate {
    /// The gate `p` describes; `None` when it would take every record.
    pub fn new(p: &Processing, filtered: Counter, rate_limited: Counter) -> Option<Gate> {
        p.gates().then(|| Gate {
            filter: p.filter.clone(),
            bucket: p.rate.map(Bucket::new),
            filtered,
            rate_limited,
        })
    }

    /// Decides for one record, and counts a record left out.
    pub fn admit(&self, rec: &Record) -> Verdict {
        if !self.filter.admits(rec) {
            self.filtered.inc();
            return Verdict::Filtered;
        }
        if let Some(b) = &self.bucket
            && !b.take(1)
        {
            self.rate_limited.inc();
            return Verdict::RateLimited;
        }
        Verdict::Take
    }

    /// The records of `recs` the drain takes, in order.
    pub fn admit_all(&self, recs: &[SharedRecord]) -> Vec<SharedRecord> {
        recs.iter()
            .filter(|r| self.admit(r) == Verdict::Take)
            .cloned()
            .collect()
    }

    /// The rate-limit episode that ended (a second without a record over
    /// the rate), to be told to the drain; see [`Bucket::ended_episode`].
    pub fn ended_episode(&self) -> Option<RateEpisode> {
        self.bucket.as_ref().and_then(Bucket::ended_episode)
    }

    /// Puts back an episode that could not be told; see [`Bucket::restore`].
    pub fn restore_episode(&self, ep: RateEpisode) {
        if let Some(b) = &self.bucket {
            b.restore(ep);
        }
    }

    /// The drain's rate, if it has one.
    pub fn rate(&self) -> Option<u32> {
        self.bucket.as_ref().map(Bucket::rate)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio_util::task::TaskTracker;

    use crate::ack::{self, BatchStatus};
    use crate::drain::{self, DrainContext, DrainSpec};
    use crate::record::{InputKind, Record, Severity, SharedRecord};

    /// Records a drain's filter leaves out are done for it at once, even
    /// while its receiver is down (nothing listens on port 1): their
    /// acknowledgement never waits on it.
    #[tokio::test]
    async fn what_a_drain_leaves_out_is_acknowledged_at_once_even_while_it_is_down() {
        let spec = DrainSpec::parse("syslog+tcp://127.0.0.1:1?severity=err").unwrap();
        let tracker = TaskTracker::new();
        let d = drain::start(&spec, &DrainContext::standalone(), &tracker).unwrap();
        let (a, mut rx) = ack::batch();
        let recs: Vec<SharedRecord> = (0..3)
            .map(|i| {
                let mut r = Record::new(InputKind::File, "h", format!("info {i}"));
                r.severity = Severity::INFO;
                r.ack = Some(a.clone());
                Arc::new(r)
            })
            .collect();
        drop(a);
        assert_eq!(d.send_batch(&recs).await, 0, "none queued");
        drop(recs);
        assert_eq!(rx.try_status(), Some(BatchStatus::Delivered));
        assert_eq!(d.held(), 0);

        let (a, mut rx) = ack::batch();
        let mut r = Record::new(InputKind::File, "h", "err");
        r.severity = Severity::ERROR;
        r.ack = Some(a);
        assert_eq!(d.send_batch(&[Arc::new(r)]).await, 1, "an error is queued");
        assert_eq!(rx.try_status(), None, "and waits for the receiver");
        d.close();
    }
}
