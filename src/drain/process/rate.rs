//! `rate=N`: a token bucket holding at most N tokens, refilled at N per
//! second, one token per record. What it refuses is an episode: counted from
//! the first refusal, ended by a second without one, and then told to the
//! drain once (like the overflow notice). Never waits and never sleeps: a
//! record over the rate is refused at once.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::time::Timestamp;

/// How long without a refusal ends an episode.
pub const EPISODE_QUIET: Duration = Duration::from_secs(1);

/// Records refused over the rate, from when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateEpisode {
    pub count: u64,
    pub since: Timestamp,
}

struct State {
    tokens: f64,
    refilled: Instant,
    episode: Option<RateEpisode>,
    last_refusal: Instant,
}

/// The token bucket of one drain.
pub struct Bucket {
    rate: u32,
    state: Mutex<State>,
}

impl Bucket {
    /// A full bucket of `rate` tokens, refilled at `rate` per second.
    pub fn new(rate: u32) -> Bucket {
        let now = Instant::now();
        Bucket {
            rate,
            state: Mutex::new(State {
                tokens: rate as f64,
                refilled: now,
                episode: None,
                last_refusal: now,
            }),
        }
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Takes `n` tokens if there are; otherwise refuses (and counts the
    /// refusal into the current episode).
    pub fn take(&self, n: u32) -> bool {
        let now = Instant::now();
        let mut s = self.state.lock();
        let rate = self.rate as f64;
        let elapsed = now.saturating_duration_since(s.refilled).as_secs_f64();
        s.tokens = (s.tokens + elapsed * rate).min(rate);
        s.refilled = now;
        if s.tokens >= n as f64 {
            s.tokens -= n as f64;
            return true;
        }
        s.last_refusal = now;
        match &mut s.episode {
            Some(ep) => ep.count += n as u64,
            None => {
                s.episode = Some(RateEpisode {
                    count: n as u64,
                    since: Timestamp::now(),
                })
            }
        }
        false
    }

    /// Puts back an ended episode that could not be told (merged into any
    /// newer one, which then dates from the older's start).
    pub fn restore(&self, ep: RateEpisode) {
        let mut s = self.state.lock();
        match &mut s.episode {
            Some(newer) => {
                newer.count += ep.count;
                newer.since = ep.since;
            }
            None => s.episode = Some(ep),
        }
    }

    /// The episode of refusals, once it has ended (no refusal for
    /// [`EPISODE_QUIET`]); each episode is returned once.
    pub fn ended_episode(&self) -> Option<RateEpisode> {
        let mut s = self.state.lock();
        if s.episode.is_some() && s.last_refusal.elapsed() >= EPISODE_QUIET {
            return s.episode.take();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bursts_up_to_the_rate_then_refills_at_the_rate() {
        let b = Bucket::new(10);
        assert_eq!((0..30).filter(|_| b.take(1)).count(), 10, "a burst of 10 at most");
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!((0..30).filter(|_| b.take(1)).count(), 5, "half a second refills half");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!((0..30).filter(|_| b.take(1)).count(), 10, "never more than the burst");
    }

    #[tokio::test(start_paused = true)]
    async fn an_episode_is_told_once_after_a_quiet_second() {
        let b = Bucket::new(2);
        assert_eq!((0..7).filter(|_| b.take(1)).count(), 2);
        assert_eq!(b.ended_episode(), None, "still going on");
        tokio::time::advance(Duration::from_millis(600)).await;
        assert!(b.take(1), "refilled");
        assert_eq!(b.ended_episode(), None, "the last refusal is recent");
        tokio::time::advance(Duration::from_millis(500)).await;
        let ep = b.ended_episode().expect("ended");
        assert_eq!(ep.count, 5);
        assert_eq!(b.ended_episode(), None, "told once");
        b.restore(ep);
        assert_eq!(b.ended_episode(), Some(ep), "put back when it could not be told");
    }
}
