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

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::BodyExt;

    use super::*;
    use crate::record::{InputKind, Record};
    use crate::tail::{BUFFER_LINES, Filter, Tails};

    fn rec(msg: String) -> Record {
        Record::new(
            InputKind::SyslogTcp,
            Bytes::from_static(b"web.default"),
            Bytes::from(msg),
        )
    }

    async fn next(body: &mut TailBody) -> Option<String> {
        let frame = body.frame().await?.unwrap();
        Some(String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn the_drop_notice_follows_what_was_buffered_and_precedes_what_came_after() {
        let tails = Tails::default();
        let sub = tails
            .subscribe(Bytes::from_static(b"web.default"), Filter::default())
            .unwrap();
        let mut body = TailBody::new(sub, Duration::from_secs(60), Box::new(()));
        for i in 0..BUFFER_LINES + 5 {
            tails.offer(&rec(format!("m{i}")));
        }
        for i in 0..BUFFER_LINES {
            assert!(next(&mut body).await.unwrap().ends_with(&format!(" m{i}\n")));
        }
        assert_eq!(
            next(&mut body).await.unwrap(),
            String::from_utf8(drop_notice(5).to_vec()).unwrap()
        );
        tails.offer(&rec("after".into()));
        assert!(next(&mut body).await.unwrap().ends_with(" after\n"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_ends_when_its_time_is_up_and_frees_its_session() {
        let tails = Tails::default();
        let sub = tails
            .subscribe(Bytes::from_static(b"web.default"), Filter::default())
            .unwrap();
        let mut body = TailBody::new(sub, Duration::from_secs(30 * 60), Box::new(()));
        let begun = tokio::time::Instant::now();
        assert_eq!(next(&mut body).await, None);
        assert_eq!(begun.elapsed(), Duration::from_secs(30 * 60));
        drop(body);
        assert_eq!(tails.sessions(), 0);
    }
}
