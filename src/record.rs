//! The log record every input produces and every drain consumes.
//!
//! A record is built once and shared by reference count with each drain it is
//! routed to (`Arc<Record>`), so fanning out to several drains never copies it.
//! Text fields are `Bytes` so inputs can slice them out of their read buffers;
//! the message is raw bytes and invalid UTF-8 survives untouched.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::ack::Ack;
use crate::time::Timestamp;

/// Syslog severity, 0 (emergency) to 7 (debug).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Severity(u8);

impl Severity {
    pub const EMERGENCY: Severity = Severity(0);
    pub const ALERT: Severity = Severity(1);
    pub const CRITICAL: Severity = Severity(2);
    pub const ERROR: Severity = Severity(3);
    pub const WARNING: Severity = Severity(4);
    pub const NOTICE: Severity = Severity(5);
    pub const INFO: Severity = Severity(6);
    pub const DEBUG: Severity = Severity(7);

    /// Clamps to the valid range 0..=7.
    pub fn new(v: u8) -> Self {
        Severity(v.min(7))
    }

    /// A severity by its usual names (`emerg` … `debug`, any case, aliases
    /// such as `error` and `warn`), or by its number 0–7.
    pub fn parse(v: &str) -> Option<Severity> {
        const NAMES: [&[&str]; 8] = [
            &["emerg", "emergency", "panic"],
            &["alert"],
            &["crit", "critical"],
            &["err", "error"],
            &["warning", "warn"],
            &["notice"],
            &["info", "informational"],
            &["debug"],
        ];
        let v = v.trim();
        if let Ok(n) = v.parse::<u8>() {
            return (n <= 7).then_some(Severity(n));
        }
        NAMES
            .iter()
            .position(|names| names.iter().any(|n| n.eq_ignore_ascii_case(v)))
            .map(|i| Severity(i as u8))
    }
    pub fn get(self) -> u8 {
        self.0
    }
}

/// Syslog facility, 0 (kern) to 23 (local7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Facility(u8);

impl Facility {
    pub const KERN: Facility = Facility(0);
    pub const USER: Facility = Facility(1);
    pub const LOCAL0: Facility = Facility(16);

    /// Clamps to the valid range 0..=23.
    pub fn new(v: u8) -> Self {
        Facility(v.min(23))
    }
    pub fn get(self) -> u8 {
        self.0
    }
}

/// Which kind of input produced a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InputKind {
    File,
    SyslogTcp,
    SyslogUdp,
    SyslogTls,
    HttpSyslog,
    HttpEvents,
    Envoy,
    Internal,
}

impl InputKind {
    /// A short, stable name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            InputKind::File => "file",
            InputKind::SyslogTcp => "syslog_tcp",
            InputKind::SyslogUdp => "syslog_udp",
            InputKind::SyslogTls => "syslog_tls",
            InputKind::HttpSyslog => "http_syslog",
            InputKind::HttpEvents => "http_events",
            InputKind::Envoy => "envoy",
            InputKind::Internal => "internal",
        }
    }
}

/// The container stream a tailed line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Kubernetes identity of the container a record came from, shared by every
/// record of that container (one per tailed file, not per record).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PodRef {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// The node the pod runs on (`NODE_NAME`), when set.
    pub node: Option<Arc<str>>,
    /// The pod's top owner, when the Kubernetes datasource knows the pod.
    pub workload: Option<Workload>,
    /// The pod's labels, when the Kubernetes datasource knows the pod.
    pub labels: Arc<BTreeMap<String, String>>,
}

/// A pod's top owner: `Deployment`/`web`, `StatefulSet`/`db`, …
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Workload {
    pub kind: String,
    pub name: String,
}

/// Where in a tailed file a record comes from, so a delivery sent again is
/// recognised (the Elasticsearch drain derives a document id from it).
///
/// Unique per record: no two records of a file start at the same line, and the
/// pieces of one record split at `TAIL_MAX_RECORD_BYTES` are numbered. Stable:
/// the same bytes give the same position however often they are read (a retry,
/// or a restart reading again from the checkpoint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Position {
    /// Identity of the file (device, inode and a checksum of its first bytes).
    pub file: u64,
    /// Byte offset where the record's first line starts (a record joined from
    /// partial lines starts at its first partial line).
    pub offset: u64,
    /// Which piece of that record this is: 0, or 1, 2, … for the pieces after
    /// the first when the record was split at the maximum record size.
    pub piece: u32,
}

/// Where a record came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub input: InputKind,
    pub pod: Option<Arc<PodRef>>,
    pub stream: Option<Stream>,
    pub position: Option<Position>,
}

impl Origin {
    pub fn new(input: InputKind) -> Self {
        Origin {
            input,
            pod: None,
            stream: None,
            position: None,
        }
    }
}

/// One log message.
#[derive(Clone, Debug)]
pub struct Record {
    pub facility: Facility,
    pub severity: Severity,
    /// When the message was produced; `None` lets the encoder use the time of encoding.
    pub timestamp: Option<Timestamp>,
    /// The routing key, as in logtrain (e.g. `web.default`).
    pub hostname: Bytes,
    /// The syslog APP-NAME, logtrain's "tag".
    pub app_name: Bytes,
    pub procid: Bytes,
    pub msgid: Bytes,
    /// Structured data as RFC 5424 text (`[id k="v"]…`), empty when there is none.
    pub structured_data: Bytes,
    /// The message body: arbitrary bytes, no trailing newline.
    pub message: Bytes,
    pub origin: Origin,
    /// Told when every drain holding this record delivered or gave it up.
    pub ack: Option<Ack>,
    /// See [`Record::serial`].
    serial: u64,
}

/// The next [`Record::serial`].
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(0);

/// Every field of a record a drain sends, to compare two records (its
/// origin, acknowledgement and serial are the process's own).
pub type Fields = (
    Facility,
    Severity,
    Option<Timestamp>,
    Bytes,
    Bytes,
    Bytes,
    Bytes,
    Bytes,
    Bytes,
);

impl Record {
    /// [`Fields`] of this record (the text fields share its memory).
    pub fn fields(&self) -> Fields {
        (
            self.facility,
            self.severity,
            self.timestamp,
            self.hostname.clone(),
            self.app_name.clone(),
            self.procid.clone(),
            self.msgid.clone(),
            self.structured_data.clone(),
            self.message.clone(),
        )
    }

    /// A record with empty header fields, severity info, facility user.
    pub fn new(input: InputKind, hostname: impl Into<Bytes>, message: impl Into<Bytes>) -> Self {
        Record {
            facility: Facility::USER,
            severity: Severity::INFO,
            timestamp: None,
            hostname: hostname.into(),
            app_name: Bytes::new(),
            procid: Bytes::new(),
            msgid: Bytes::new(),
            structured_data: Bytes::new(),
            message: message.into(),
            origin: Origin::new(input),
            ack: None,
            serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// A number no other record made by this process has (copies of a record
    /// keep it): a record sent again is recognised by it, and two records
    /// equal in every field are still told apart.
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// Approximate bytes this record holds, for byte-bounded queues.
    pub fn size_hint(&self) -> usize {
        64 + self.hostname.len()
            + self.app_name.len()
            + self.procid.len()
            + self.msgid.len()
            + self.structured_data.len()
            + self.message.len()
    }

    /// Source key used for ordering: records with the same key keep their order.
    pub fn order_key(&self) -> &[u8] {
        &self.hostname
    }
}

/// A record as queued for drains: shared, never copied.
pub type SharedRecord = Arc<Record>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_has_its_own_serial_and_copies_keep_it() {
        let a = Record::new(InputKind::Internal, "h", "m");
        let b = Record::new(InputKind::Internal, "h", "m");
        assert_ne!(a.serial(), b.serial());
        assert_eq!(a.clone().serial(), a.serial());
    }
}
