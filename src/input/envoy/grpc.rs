//! gRPC by hand for the one client-streaming method the Envoy input serves: the
//! length-prefixed messages of a request body, assembled one at a time in a
//! buffer held from the input memory budget ([`Framer`]), and the two answers
//! (OK with its trailers, or a status). Never decodes protobuf.
//!
//! Framing like mini-redis: the 5-byte prefix is looked at before anything is
//! buffered, a message over the limit is refused before a byte of it is held,
//! and "incomplete" (read more) is kept apart from "invalid". The buffer grows
//! with what arrived (doubling, never past the announced length), so a sender
//! that announces 4 MiB and sends 10 bytes holds 10 bytes, not 4 MiB.

use std::convert::Infallible;

use bytes::{Buf, Bytes};
use http_body_util::StreamBody;
use hyper::body::Frame;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http::{HeaderMap, HeaderValue, Response, header::CONTENT_TYPE};

use crate::input::budget::{Lease, Spent};

/// The largest message accepted; Envoy flushes far smaller batches (16 KiB by default).
pub const MAX_MESSAGE: usize = 4 << 20;

/// A request body that is not a stream of messages logtrain can take.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("decoded message length too large: found {found} bytes, the limit is: {limit} bytes")]
    TooLarge { found: usize, limit: usize },
    #[error("compressed messages are not supported (flag {0})")]
    Compressed(u8),
    #[error("the stream ended inside a message")]
    Cut,
    #[error(transparent)]
    Spent(#[from] Spent),
}

impl FrameError {
    /// The status a gRPC client gets for it.
    pub fn status(&self) -> Status {
        match self {
            FrameError::TooLarge { .. } => Status::out_of_range(self.to_string()),
            FrameError::Compressed(_) => Status::unimplemented(self.to_string()),
            FrameError::Cut => Status::internal(self.to_string()),
            FrameError::Spent(_) => Status::resource_exhausted("input memory is spent; retry later"),
        }
    }
}

/// The messages of one request body.
#[derive(Default)]
pub struct Framer {
    head: [u8; 5],
    have: usize,
    message: Option<Partial>,
}

struct Partial {
    want: usize,
    buf: Vec<u8>,
}

impl Framer {
    /// Moves bytes from the front of `data` into the message being assembled,
    /// holding its buffer (and nothing else) in `lease`. Returns the message
    /// once whole, with `data` holding what follows it; `None` once `data` is used up.
    pub fn feed(&mut self, data: &mut Bytes, lease: &mut Lease) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            if self.message.is_none() {
                let n = (5 - self.have).min(data.len());
                self.head[self.have..self.have + n].copy_from_slice(&data[..n]);
                data.advance(n);
                self.have += n;
                if self.have < 5 {
                    return Ok(None);
                }
                self.have = 0;
                if self.head[0] != 0 {
                    return Err(FrameError::Compressed(self.head[0]));
                }
                let len = u32::from_be_bytes([self.head[1], self.head[2], self.head[3], self.head[4]]) as usize;
                if len > MAX_MESSAGE {
                    return Err(FrameError::TooLarge {
                        found: len,
                        limit: MAX_MESSAGE,
                    });
                }
                if len == 0 {
                    return Ok(Some(Vec::new()));
                }
                self.message = Some(Partial {
                    want: len,
                    buf: Vec::new(),
                });
            }
            let Some(p) = self.message.as_mut() else {
                unreachable!("a message is being assembled");
            };
            let n = (p.want - p.buf.len()).min(data.len());
            if n == 0 {
                return Ok(None);
            }
            if p.buf.len() + n > p.buf.capacity() {
                let cap = (p.buf.len() + n).max(p.buf.capacity() * 2).min(p.want);
                lease.try_resize(cap)?;
                p.buf.reserve_exact(cap - p.buf.len());
            }
            p.buf.extend_from_slice(&data[..n]);
            data.advance(n);
            if p.buf.len() == p.want {
                return Ok(self.message.take().map(|p| p.buf));
            }
        }
    }

    /// Called at the end of the body: an error when it cut a message short.
    pub fn finish(&self) -> Result<(), FrameError> {
        match self.have > 0 || self.message.is_some() {
            true => Err(FrameError::Cut),
            false => Ok(()),
        }
    }
}

/// The answer to a call that ended well: one empty `StreamAccessLogsResponse`
/// and `grpc-status: 0` in the trailers.
pub fn ok() -> Response<Body> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let frames = [
        Ok::<_, Infallible>(Frame::data(Bytes::from_static(&[0; 5]))),
        Ok(Frame::trailers(trailers)),
    ];
    let mut r = Response::new(Body::new(StreamBody::new(futures_util::stream::iter(frames))));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    r
}

/// The answer to a call that failed (trailers only).
pub fn error(status: Status) -> Response<Body> {
    status.into_http()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::budget::Budget;

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn messages_split_across_chunks_come_out_whole_and_in_order() {
        let budget = Budget::new(1 << 20);
        let mut lease = budget.lease();
        let mut wire = framed(b"hello");
        wire.extend(framed(b""));
        wire.extend(framed(&[7; 1000]));
        let mut f = Framer::default();
        let mut out = Vec::new();
        for chunk in wire.chunks(3) {
            let mut data = Bytes::copy_from_slice(chunk);
            while let Some(m) = f.feed(&mut data, &mut lease).unwrap() {
                out.push(m);
                lease.shrink(0);
            }
            assert!(data.is_empty());
        }
        assert_eq!(out, [b"hello".to_vec(), vec![], vec![7; 1000]]);
        f.finish().unwrap();
        assert_eq!(budget.free(), 1 << 20);
    }

    #[test]
    fn a_message_holds_what_arrived_not_what_it_announced() {
        let budget = Budget::new(1 << 20);
        let mut lease = budget.lease();
        let mut f = Framer::default();
        let mut head = vec![0];
        head.extend_from_slice(&(1_000_000u32).to_be_bytes());
        head.extend_from_slice(&[1; 10]);
        assert_eq!(f.feed(&mut Bytes::from(head), &mut lease).unwrap(), None);
        assert_eq!(lease.held(), 10);
        assert!(matches!(f.finish(), Err(FrameError::Cut)));
    }

    #[test]
    fn oversized_compressed_and_unaffordable_messages_are_refused() {
        let budget = Budget::new(100);
        let mut lease = budget.lease();
        let mut too_big = vec![0];
        too_big.extend_from_slice(&(64u32 << 20).to_be_bytes());
        let e = Framer::default()
            .feed(&mut Bytes::from(too_big), &mut lease)
            .unwrap_err();
        assert!(matches!(e, FrameError::TooLarge { .. }));
        assert_eq!(e.status().code(), tonic::Code::OutOfRange);
        let e = Framer::default()
            .feed(&mut Bytes::from_static(&[1, 0, 0, 0, 1, 0]), &mut lease)
            .unwrap_err();
        assert_eq!(e.status().code(), tonic::Code::Unimplemented);
        let e = Framer::default()
            .feed(&mut Bytes::from(framed(&[0; 200])), &mut lease)
            .unwrap_err();
        assert_eq!(e.status().code(), tonic::Code::ResourceExhausted);
    }
}
