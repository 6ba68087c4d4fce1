//! Records onto their drains: builds a read's records (hostname and tag from
//! the pod directory, severity from the stream, the file position they came
//! from) and queues them on every drain of their route as one batch with one
//! acknowledgement, waiting while a drain's queue is full. Nothing here reads
//! the file or waits for an acknowledgement.

use std::sync::Arc;

use bytes::Bytes;

use super::Tailer;
use super::open::Open;
use super::reading::Reading;
use crate::ack;
use crate::datasource::pods::{PodKey, PodMeta, fallback_hostname};
use crate::input::file::format::Assembled;
use crate::record::{Facility, InputKind, Origin, PodRef, Position, Record, SharedRecord, Stream};

impl Reading<'_> {
    /// Builds records and queues them on their drains (waiting for room);
    /// `end` is the offset up to which they make the file's lines whole.
    pub(super) async fn send(&mut self, records: Vec<Assembled>, end: u64) {
        let tailer = self.tailer;
        let shared = &tailer.shared;
        let open = &mut self.open;
        if records.is_empty() {
            if self.lines.reasm.idle() && end > open.acked && self.pending.is_empty() {
                open.acked = end;
                tailer.record_position(open);
            }
            return;
        }
        let (hostname, tag, meta) = tailer.labels();
        if let Some(m) = &meta {
            refresh_pod(&mut self.pod, m);
        }
        let drains = shared.routes.load().drains_arc(&hostname);
        let (ack, rx) = ack::batch();
        let n = records.len() as u64;
        let mut bytes = 0u64;
        let mut batch: Vec<SharedRecord> = Vec::with_capacity(records.len());
        for a in records {
            if a.split {
                shared.stats.split.inc();
            }
            bytes += a.msg.len() as u64;
            let mut r = Record::new(InputKind::File, hostname.clone(), a.msg);
            r.facility = Facility::USER;
            r.severity = match a.stream {
                Stream::Stdout => shared.stdout_severity,
                Stream::Stderr => shared.stderr_severity,
            };
            r.timestamp = a.time;
            r.app_name = tag.clone();
            r.origin = Origin {
                input: InputKind::File,
                pod: Some(self.pod.clone()),
                stream: Some(a.stream),
                position: Some(Position {
                    file: file_key(open),
                    offset: a.start,
                    piece: a.piece,
                }),
            };
            r.ack = Some(ack.clone());
            batch.push(Arc::new(r));
        }
        drop(ack);
        shared.routes.live().offer_all(&batch);
        match &drains {
            Some(ds) => {
                for d in ds.iter() {
                    d.send_batch(&batch).await;
                }
            }
            None => shared.stats.unrouted.add(n),
        }
        drop(batch);
        shared.stats.records.add(n);
        shared.stats.bytes.add(bytes);
        self.pending.push_back((end, rx));
    }
}

/// Takes the pod's workload and labels from the pod directory when they
/// changed (the datasource learnt of the pod after this file was opened, or
/// its labels changed): one comparison per read otherwise.
fn refresh_pod(pod: &mut Arc<PodRef>, m: &PodMeta) {
    if pod.workload != m.workload || !Arc::ptr_eq(&pod.labels, &m.labels) {
        let mut p = PodRef::clone(pod);
        p.workload = m.workload.clone();
        p.labels = m.labels.clone();
        *pod = Arc::new(p);
    }
}

impl Tailer {
    /// The hostname and tag of this container's records, and what the pod
    /// directory knows of its pod.
    fn labels(&self) -> (Bytes, Bytes, Option<Arc<PodMeta>>) {
        let key = PodKey::new(self.name.namespace.clone(), self.name.pod.clone());
        match self.shared.pods.get(&key) {
            Some(m) => (Bytes::from(m.hostname.clone()), Bytes::from(m.tag.clone()), Some(m)),
            None => (
                Bytes::from(fallback_hostname(
                    &self.name.namespace,
                    &self.name.pod,
                    self.shared.akkeris,
                )),
                Bytes::from(self.name.pod.clone()),
                None,
            ),
        }
    }
}

/// The file part of a record's position: the same for a file across restarts
/// (its device, inode and fingerprint).
fn file_key(open: &Open) -> u64 {
    open.id.dev.rotate_left(32) ^ open.id.ino ^ open.head
}
