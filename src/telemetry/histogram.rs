//! Histograms: a fixed set of upper bounds per metric (declared with it in the
//! catalog), one atomic count per bucket, the sum and the count. Observing is
//! a short scan of the bounds and two atomic adds; rendering makes the
//! buckets cumulative, as the exposition formats want them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bounds for latencies in seconds, 1 ms to 60 s.
pub const SECONDS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Bounds for sizes in records, 1 to 10,000.
pub const RECORDS: &[f64] = &[1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0];

pub(super) struct Inner {
    bounds: &'static [f64],
    /// One per bound, and the last for what is above every bound.
    buckets: Box<[AtomicU64]>,
    /// The sum, as the bits of an `f64`.
    sum: AtomicU64,
}

impl Inner {
    pub(super) fn new(bounds: &'static [f64]) -> Self {
        Inner {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }
}

/// A distribution of observed values.
#[derive(Clone)]
pub struct Histogram(pub(super) Arc<Inner>);

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram").field("count", &self.count()).finish()
    }
}

impl Histogram {
    pub fn observe(&self, v: f64) {
        let i = self
            .0
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.0.bounds.len());
        self.0.buckets[i].fetch_add(1, Ordering::Relaxed);
        let _ = self.0.sum.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
            Some((f64::from_bits(bits) + v).to_bits())
        });
    }

    pub fn count(&self) -> u64 {
        self.0.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }
}

/// `(le, cumulative count)` per bound then `+Inf`, the sum and the count.
pub(super) fn snapshot(h: &Inner) -> (Vec<(String, u64)>, f64, u64) {
    let mut acc = 0;
    let mut out = Vec::with_capacity(h.buckets.len());
    for (i, b) in h.buckets.iter().enumerate() {
        acc += b.load(Ordering::Relaxed);
        let le = h.bounds.get(i).map_or_else(|| "+Inf".to_string(), |b| b.to_string());
        out.push((le, acc));
    }
    (out, f64::from_bits(h.sum.load(Ordering::Relaxed)), acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_with_an_infinite_last() {
        let h = Histogram(Arc::new(Inner::new(&[1.0, 5.0])));
        for v in [0.5, 1.0, 3.0, 9.0] {
            h.observe(v);
        }
        let (b, sum, count) = snapshot(&h.0);
        assert_eq!(b, [("1".into(), 2), ("5".into(), 3), ("+Inf".into(), 4)]);
        assert_eq!((sum, count), (13.5, 4));
    }
}
