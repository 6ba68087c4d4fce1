//! Tails created by `POST /tails` and not opened yet (the Go logtail API):
//! at most a fixed number wait, each expires [`OPEN_WITHIN`] after it was
//! created, and each opens at most once. Nothing here opens a stream.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// A tail created with `POST /tails` expires unless opened within this.
pub const OPEN_WITHIN: Duration = Duration::from_secs(5 * 60);

/// What a `POST /tails` asked for: `{"hostname", "severity"?, "match"?}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct Ask {
    pub hostname: String,
    pub severity: Option<String>,
    #[serde(rename = "match")]
    pub pattern: Option<String>,
}

/// The tails waiting to be opened, by id.
pub struct Waiting {
    asks: Mutex<HashMap<String, (Ask, Instant)>>,
    max: usize,
}

impl Waiting {
    pub fn new(max: usize) -> Self {
        Waiting {
            asks: Mutex::new(HashMap::new()),
            max: max.max(1),
        }
    }

    /// Remembers `ask` under a new unguessable id; `None` when `max` wait already.
    pub fn create(&self, ask: Ask) -> Option<String> {
        let mut asks = self.asks.lock();
        asks.retain(|_, (_, at)| at.elapsed() < OPEN_WITHIN);
        if asks.len() >= self.max {
            return None;
        }
        let id = format!("{:032x}", rand::random::<u128>());
        asks.insert(id.clone(), (ask, Instant::now()));
        Some(id)
    }

    /// The tail `id` asked for, once, if it has not expired.
    pub fn take(&self, id: &str) -> Option<Ask> {
        let (ask, at) = self.asks.lock().remove(id)?;
        (at.elapsed() < OPEN_WITHIN).then_some(ask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask() -> Ask {
        Ask {
            hostname: "web.default".into(),
            severity: None,
            pattern: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_tail_opens_once_within_five_minutes_and_not_after() {
        let w = Waiting::new(4);
        let id = w.create(ask()).unwrap();
        tokio::time::advance(OPEN_WITHIN - Duration::from_secs(1)).await;
        assert_eq!(w.take(&id), Some(ask()));
        assert_eq!(w.take(&id), None, "opened once");
        let late = w.create(ask()).unwrap();
        tokio::time::advance(OPEN_WITHIN).await;
        assert_eq!(w.take(&late), None, "expired unopened");
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_max_tails_wait_and_expired_ones_make_room() {
        let w = Waiting::new(2);
        let a = w.create(ask()).unwrap();
        w.create(ask()).unwrap();
        assert_eq!(w.create(ask()), None);
        assert_eq!(a.len(), 32, "128 random bits, in hex");
        assert!(w.take(&a).is_some());
        w.create(ask()).unwrap();
        tokio::time::advance(OPEN_WITHIN).await;
        assert!(w.create(ask()).is_some());
    }
}
