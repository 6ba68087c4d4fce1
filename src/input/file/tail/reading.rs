//! One file being read: the open file, the line and acknowledgement state that
//! goes with it, and the pod its records are for, held together from the open
//! to [`Reading::finish`]. What a reading does lives in the modules named after
//! it (`follow`, `lines`, `deliver`, `acks`, `truncate`); this one only makes
//! one and finishes it. Nothing here reads the file.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use super::Tailer;
use super::acks::Settle;
use super::lines::LineState;
use super::open::{FirstLine, Open};
use crate::ack::AckReceiver;
use crate::input::file::format::Assembled;
use crate::record::{PodRef, Stream};

/// A file of this tailer's path (live or rotated) being read.
pub(super) struct Reading<'a> {
    pub(super) tailer: &'a Tailer,
    pub(super) pod: Arc<PodRef>,
    pub(super) open: Open,
    pub(super) lines: LineState,
    /// Chunks handed on and not yet folded into the position: the offset each
    /// ends at, and its acknowledgement.
    pub(super) pending: VecDeque<(u64, AckReceiver)>,
}

impl<'a> Reading<'a> {
    pub(super) fn new(tailer: &'a Tailer, pod: &Arc<PodRef>, open: Open, first_line: FirstLine) -> Self {
        let mut lines = LineState::new(tailer.shared.max_record);
        lines.discarding = first_line == FirstLine::Cut;
        Reading {
            tailer,
            pod: pod.clone(),
            open,
            lines,
            pending: VecDeque::new(),
        }
    }

    /// Hands on whatever is unfinished in a file we are done with and remembers
    /// it as done; its position reaches its end as its last acknowledgements
    /// come in, in the background.
    pub(super) async fn finish(mut self) {
        let mut out = Vec::new();
        self.lines.reasm.flush(&mut out);
        if !self.lines.carry.is_empty() && !self.lines.discarding {
            let line = std::mem::take(&mut self.lines.carry);
            self.tailer.shared.stats.parse_errors.inc();
            out.push(Assembled {
                time: None,
                stream: Stream::Stdout,
                msg: Bytes::from(line),
                split: false,
                start: self.open.line_at,
                piece: 0,
            });
        }
        let end = self.open.read_at;
        self.send(out, end).await;
        self.settle(Settle::Ready).await;
        // A finished file stays in the checkpoints, at its end once everything
        // in it is acknowledged, so a restart knows it was read; the oldest are
        // forgotten. The next file need not wait for those acknowledgements
        // (a drain may confirm a batch only some time after writing it).
        self.tailer.record_position(&self.open);
        self.tailer.mark_done(self.open.id);
        self.settle_in_background();
    }
}
