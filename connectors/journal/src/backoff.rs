//! Exponential backoff with jitter: how a sink retries a destination that
//! refused a batch (InfluxDB down, a broker gone). One policy for every sink.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Bounds of the delay between attempts: it starts at `initial`, doubles each
/// failure up to `max`, and is randomised over its upper half so that nodes
/// that lost the same destination do not all come back in the same millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (1 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        let ceiling = self
            .initial
            .saturating_mul(1 << doublings)
            .min(self.max)
            .max(Duration::from_millis(1));
        let half = ceiling / 2;
        half + half.mul_f64(random_unit())
    }
}

/// A number in [0, 1). Jitter needs no quality randomness: std's per-process
/// random hash keys (`RandomState` changes them on every call) are enough and
/// avoid a dependency.
fn random_unit() -> f64 {
    let bits = RandomState::new().build_hasher().finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_within_bounds_with_jitter_in_the_upper_half() {
        let b = Backoff::default();
        for (attempt, ceiling_ms) in [(1, 100), (2, 200), (3, 400), (8, 10_000), (60, 10_000)] {
            let ceiling = Duration::from_millis(ceiling_ms);
            for _ in 0..20 {
                let d = b.delay(attempt);
                assert!(d >= ceiling / 2 && d <= ceiling, "attempt {attempt}: {d:?}");
            }
        }
    }
}
