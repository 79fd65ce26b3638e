//! Counters per protocol listener, readable from anywhere.

use std::sync::atomic::{AtomicU64, Ordering};

/// What one protocol listener has seen. Monotonic counters except `open`.
#[derive(Debug, Default)]
pub struct ListenerStats {
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub open: AtomicU64,
    pub frames: AtomicU64,
    pub records: AtomicU64,
    pub bad_checksum: AtomicU64,
    pub decode_errors: AtomicU64,
    pub unidentified: AtomicU64,
    pub garbage_bytes: AtomicU64,
    pub oversized: AtomicU64,
    pub idle_timeouts: AtomicU64,
}

impl ListenerStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A plain copy, for reports and tests.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            accepted: get(&self.accepted),
            refused: get(&self.refused),
            open: get(&self.open),
            frames: get(&self.frames),
            records: get(&self.records),
            bad_checksum: get(&self.bad_checksum),
            decode_errors: get(&self.decode_errors),
            unidentified: get(&self.unidentified),
            garbage_bytes: get(&self.garbage_bytes),
            oversized: get(&self.oversized),
            idle_timeouts: get(&self.idle_timeouts),
        }
    }
}

/// A copy of [`ListenerStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    pub accepted: u64,
    pub refused: u64,
    pub open: u64,
    pub frames: u64,
    pub records: u64,
    pub bad_checksum: u64,
    pub decode_errors: u64,
    pub unidentified: u64,
    pub garbage_bytes: u64,
    pub oversized: u64,
    pub idle_timeouts: u64,
}
