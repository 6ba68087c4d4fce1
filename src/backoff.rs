//! Jittered exponential backoff, shared by every loop that retries something
//! remote: drain connections and the datasources' watches and listens.
//!
//! It only computes delays; it never sleeps, counts or logs — the caller
//! decides when to wait and what a failure means.

use std::time::Duration;

/// Jittered exponential backoff ("full jitter" over a doubling ceiling).
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff { min, max, current: min }
    }

    /// The next delay: uniformly random between `min` and the current ceiling,
    /// which doubles up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let ceil = self.current;
        self.current = (self.current * 2).min(self.max);
        let lo = self.min.as_millis() as u64;
        let hi = ceil.as_millis().max(lo as u128) as u64;
        Duration::from_millis(if hi > lo { rand::random_range(lo..=hi) } else { lo })
    }

    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_and_capped() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        for _ in 0..10 {
            let d = b.next_delay();
            assert!(d >= Duration::from_millis(100) && d <= Duration::from_secs(2));
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
