//! The body of a live-tail response: the subscription's lines as they come,
//! one notice line per episode of drops, and the end when the stream's time is
//! up, the client leaves (the body is dropped, which unsubscribes) or logtrain
//! shuts down. It never buffers beyond the subscription's bounded channel.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::time::Sleep;

use super::Subscription;

/// A streaming response body over one [`Subscription`].
pub struct TailBody {
    sub: Subscription,
    ends: Pin<Box<Sleep>>,
    /// Kept while the stream runs (the listener's "request in flight" mark, so
    /// an open stream is never taken for an idle connection).
    _keep: Box<dyn Send + Sync>,
}

impl TailBody {
    pub fn new(sub: Subscription, lasts: Duration, keep: Box<dyn Send + Sync>) -> Self {
        TailBody {
            sub,
            ends: Box::pin(tokio::time::sleep(lasts)),
            _keep: keep,
        }
    }
}

/// The line a stream shows after dropping `n` lines.
pub fn drop_notice(n: u64) -> Bytes {
    Bytes::from(format!(
        "logtrain: {n} lines dropped here: this client reads slower than they arrive\n"
    ))
}

impl Body for TailBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.ends.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        let data = |b: Bytes| Poll::Ready(Some(Ok(Frame::data(b))));
        match self.sub.rx.try_recv() {
            Ok(line) => return data(line),
            Err(TryRecvError::Disconnected) => return Poll::Ready(None),
            Err(TryRecvError::Empty) => {}
        }
        // What was buffered before the drops is out: say what was lost.
        let n = self.sub.dropped.swap(0, Ordering::Relaxed);
        if n > 0 {
            return data(drop_notice(n));
        }
        match self.sub.rx.poll_recv(cx) {
            Poll::Ready(Some(line)) => data(line),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        false
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
