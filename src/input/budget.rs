//! One memory budget for every push input (`INPUT_MEMORY_BYTES`): the bytes an
//! input holds before its records are queued — a frame being assembled in a TCP
//! or TLS connection's buffer, an HTTP body being read and the records decoded
//! from it, a gRPC message and the entry being decoded from it — are taken from
//! it, and given back once those records are queued or dropped.
//!
//! When it is spent each input answers in its own way: TCP and TLS stop reading
//! (TCP flow control slows the sender, nothing is dropped), HTTP answers 503 with
//! `Retry-After`, gRPC `RESOURCE_EXHAUSTED`, UDP drops the datagram. Each of these
//! is one [`Pressure::spent`] event: logged once per input, counted in
//! `logtrain_input_memory_exhausted_total{input}`. `logtrain_input_memory_bytes`
//! says what is held right now.
//!
//! The budget is a semaphore of bytes, so inputs that wait for it are served in
//! the order they asked. This module never allocates what it accounts for and
//! knows nothing about connections; a [`Lease`] is what one of them holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::record::Record;
use crate::telemetry::{self, Counter, Gauge};

/// The budget was spent (or the request is larger than the whole budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("input memory is spent: {want} more bytes wanted, {free} of INPUT_MEMORY_BYTES={limit} free")]
pub struct Spent {
    pub want: usize,
    pub free: usize,
    pub limit: usize,
}

/// The bytes all push inputs may hold together. Cheap to clone.
#[derive(Clone)]
pub struct Budget {
    inner: Arc<Inner>,
}

struct Inner {
    bytes: Semaphore,
    limit: usize,
    held: Gauge,
}

impl Budget {
    /// A budget of `limit` bytes (at least 1).
    pub fn new(limit: usize) -> Budget {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        Budget {
            inner: Arc::new(Inner {
                bytes: Semaphore::new(limit),
                limit,
                held: telemetry::gauge("logtrain_input_memory_bytes", &[]),
            }),
        }
    }

    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Bytes not held by anyone right now.
    pub fn free(&self) -> usize {
        self.inner.bytes.available_permits()
    }

    /// A lease holding nothing yet.
    pub fn lease(&self) -> Lease {
        Lease {
            inner: self.inner.clone(),
            held: 0,
        }
    }
}

/// Bytes one reader holds; given back when dropped.
pub struct Lease {
    inner: Arc<Inner>,
    held: usize,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("held", &self.held).finish()
    }
}

impl Lease {
    pub fn held(&self) -> usize {
        self.held
    }

    fn spent(&self, want: usize) -> Spent {
        Spent {
            want,
            free: self.inner.bytes.available_permits(),
            limit: self.inner.limit,
        }
    }

    /// Holds `n` bytes more, if they are free now.
    pub fn try_grow(&mut self, n: usize) -> Result<(), Spent> {
        if n == 0 {
            return Ok(());
        }
        let Ok(count) = u32::try_from(n) else {
            return Err(self.spent(n));
        };
        let taken = match self.inner.bytes.try_acquire_many(count) {
            Ok(p) => {
                p.forget();
                true
            }
            Err(_) => false,
        };
        if !taken {
            return Err(self.spent(n));
        }
        self.took(n);
        Ok(())
    }

    /// Holds exactly `n` bytes: gives back the excess at once, or takes what is
    /// missing if it is free now.
    pub fn try_resize(&mut self, n: usize) -> Result<(), Spent> {
        match n.checked_sub(self.held) {
            Some(more) => self.try_grow(more),
            None => {
                self.shrink(n);
                Ok(())
            }
        }
    }

    /// Holds exactly `n` bytes, waiting (in turn with every other waiter) for
    /// what is missing. Fails at once when `n` is more than the whole budget.
    pub async fn resize(&mut self, n: usize) -> Result<(), Spent> {
        let Some(more) = n.checked_sub(self.held) else {
            self.shrink(n);
            return Ok(());
        };
        if more == 0 {
            return Ok(());
        }
        let count = match u32::try_from(more) {
            Ok(c) if n <= self.inner.limit => c,
            _ => return Err(self.spent(more)),
        };
        // The semaphore is never closed, so acquiring only ever waits.
        let inner = self.inner.clone();
        if let Ok(p) = inner.bytes.acquire_many(count).await {
            p.forget();
            self.took(more);
        }
        Ok(())
    }

    /// Gives back everything above `n` bytes.
    pub fn shrink(&mut self, n: usize) {
        if n < self.held {
            let back = self.held - n;
            self.held = n;
            self.inner.bytes.add_permits(back);
            self.inner.held.add(-(back as i64));
        }
    }

    fn took(&mut self, n: usize) {
        self.held += n;
        self.inner.held.add(n as i64);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.shrink(0);
    }
}

/// Bytes a decoded record holds until it is queued: the struct and its fields.
pub fn record_cost(r: &Record) -> usize {
    std::mem::size_of::<Record>() + r.size_hint()
}

/// The event of one input finding the budget spent (logged the first time, counted every time).
pub struct Pressure {
    input: &'static str,
    spent: Counter,
    logged: AtomicBool,
}

impl Pressure {
    pub fn new(input: &'static str) -> Self {
        Pressure {
            input,
            spent: telemetry::counter("logtrain_input_memory_exhausted_total", &[("input", input)]),
            logged: AtomicBool::new(false),
        }
    }

    /// The budget was spent; `answer` says what the input did about it
    /// (`"reading paused"`, `"answered 503"`, …).
    pub fn spent(&self, e: &Spent, answer: &'static str) {
        self.spent.inc();
        if !self.logged.swap(true, Ordering::Relaxed) {
            warn!(input = self.input, %answer, want = e.want, free = e.free, limit = e.limit,
                "Input memory budget spent (INPUT_MEMORY_BYTES); logged once, counted in logtrain_input_memory_exhausted_total.");
        } else {
            debug!(input = self.input, %answer, want = e.want, free = e.free, "Input memory budget spent.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn leases_take_and_give_back_bytes() {
        let b = Budget::new(100);
        let mut a = b.lease();
        a.try_grow(60).unwrap();
        let mut c = b.lease();
        assert_eq!(
            c.try_grow(50),
            Err(Spent {
                want: 50,
                free: 40,
                limit: 100
            })
        );
        c.try_resize(40).unwrap();
        assert_eq!(b.free(), 0);
        a.try_resize(10).unwrap();
        assert_eq!((a.held(), b.free()), (10, 50));
        drop(c);
        drop(a);
        assert_eq!(b.free(), 100);
    }

    #[test]
    fn more_than_the_whole_budget_is_refused_at_once() {
        let b = Budget::new(100);
        let mut a = b.lease();
        assert!(a.try_grow(101).is_err());
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert!(rt.block_on(a.resize(101)).is_err());
        assert_eq!(a.held(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gets_its_bytes_when_another_gives_them_back() {
        let b = Budget::new(100);
        let mut first = b.lease();
        first.try_grow(80).unwrap();
        let b2 = b.clone();
        let waiter = tokio::spawn(async move {
            let mut l = b2.lease();
            l.resize(50).await.unwrap();
            l.held()
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished());
        first.shrink(30);
        assert_eq!(waiter.await.unwrap(), 50);
        assert_eq!(b.free(), 70);
    }
}
