//! Failed-login throttling: each user name and each client address gets a
//! few failures per window, then 429 until the window ends. Bounded: when
//! too many keys are tracked, expired windows are swept, and if that is not
//! enough the oldest are forgotten.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Failures allowed per key and window.
pub const MAX_FAILURES: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Keys tracked at most.
const CAPACITY: usize = 100_000;

#[derive(Default)]
pub struct Throttle {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Throttle {
    /// `Some(seconds to wait)` if any of `keys` has used up its failures.
    pub fn blocked(&self, keys: &[&str], now: Instant) -> Option<u64> {
        let windows = self.lock();
        keys.iter()
            .filter_map(|key| windows.get(*key))
            .filter(|(start, failures)| *failures >= MAX_FAILURES && now < *start + WINDOW)
            .map(|(start, _)| (*start + WINDOW - now).as_secs().max(1))
            .max()
    }

    /// Counts a failure against each of `keys`.
    pub fn failed(&self, keys: &[&str], now: Instant) {
        let mut windows = self.lock();
        if windows.len() + keys.len() > CAPACITY {
            windows.retain(|_, (start, _)| now < *start + WINDOW);
            if windows.len() + keys.len() > CAPACITY {
                windows.clear();
            }
        }
        for key in keys {
            let entry = windows.entry((*key).to_owned()).or_insert((now, 0));
            if now >= entry.0 + WINDOW {
                *entry = (now, 0);
            }
            entry.1 += 1;
        }
    }

    /// A success clears the user's count (not the address's: one address
    /// guessing many users stays throttled).
    pub fn succeeded(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, u32)>> {
        self.windows.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_block_until_the_window_ends() {
        let throttle = Throttle::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert_eq!(throttle.blocked(&["user:bob", "ip:10.0.0.1"], t0), None);
            throttle.failed(&["user:bob", "ip:10.0.0.1"], t0);
        }
        assert_eq!(throttle.blocked(&["user:bob"], t0), Some(60));
        assert_eq!(throttle.blocked(&["user:eve", "ip:10.0.0.1"], t0), Some(60));
        assert_eq!(throttle.blocked(&["user:eve", "ip:10.0.0.2"], t0), None);
        assert_eq!(throttle.blocked(&["user:bob"], t0 + WINDOW), None);
        throttle.succeeded("user:bob");
        assert_eq!(throttle.blocked(&["user:bob"], t0), None);
    }
}
