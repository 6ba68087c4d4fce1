//! The counters every push input keeps, looked up once per listener, and the
//! events that both log and count them (so logs and metrics never disagree).
//! Labels are the input kind only. (Connection events live with the
//! [`super::listener`], memory events with the [`super::budget`].)

use tracing::{debug, warn};

use crate::record::InputKind;
use crate::telemetry::{self, Counter, OnceLog};

/// Metric handles of one input.
pub struct InputStats {
    pub kind: InputKind,
    pub records: Counter,
    pub bytes: Counter,
    pub parse_errors: Counter,
    pub truncated: Counter,
    pub rejected: Counter,
    pub unrouted: Counter,
    pub handshake_errors: Counter,
    once: OnceLog,
}

impl InputStats {
    pub fn new(kind: InputKind) -> Self {
        let l = [("input", kind.as_str())];
        InputStats {
            kind,
            records: telemetry::counter("logtrain_input_records_total", &l),
            bytes: telemetry::counter("logtrain_input_bytes_total", &l),
            parse_errors: telemetry::counter("logtrain_input_parse_errors_total", &l),
            truncated: telemetry::counter("logtrain_input_truncated_total", &l),
            rejected: telemetry::counter("logtrain_input_rejected_total", &l),
            unrouted: telemetry::counter("logtrain_unrouted_records_total", &l),
            handshake_errors: telemetry::counter("logtrain_input_handshake_errors_total", &l),
            once: OnceLog::default(),
        }
    }

    /// A frame that is not syslog: counted as a parse error and, having no
    /// hostname to route by, as unrouted. Logged once per peer and reason.
    pub fn parse_error(&self, peer: &str, reason: &str) {
        self.parse_errors.inc();
        self.unrouted.inc();
        if self.once.first(&format!("parse {peer} {reason}")) {
            warn!(input = self.kind.as_str(), %peer, %reason, "Dropped a frame that is not syslog.");
        } else {
            debug!(input = self.kind.as_str(), %peer, %reason, "Dropped a frame that is not syslog.");
        }
    }

    /// A framing error (oversized or truncated frame): a parse error, nothing forwarded.
    pub fn framing_error(&self, peer: &str, reason: &str) {
        self.parse_errors.inc();
        warn!(input = self.kind.as_str(), %peer, %reason, "Dropped a frame.");
    }

    /// A line longer than the limit, cut to it.
    pub fn truncated(&self, peer: &str, limit: usize) {
        self.truncated.inc();
        if self.once.first(&format!("truncated {peer}")) {
            warn!(input = self.kind.as_str(), %peer, limit, "Truncated a line longer than the frame limit; the rest of it is discarded.");
        }
    }

    /// A TLS handshake that failed (no or untrusted client certificate, protocol error).
    pub fn handshake_failed(&self, peer: &str, reason: &str) {
        self.handshake_errors.inc();
        warn!(input = self.kind.as_str(), %peer, %reason, "TLS handshake failed; connection closed.");
    }
}
