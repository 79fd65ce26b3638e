//! Counters per protocol listener, readable from anywhere.

use std::sync::atomic::{AtomicU64, Ordering};

/// What one protocol listener has seen. Monotonic counters except `open`.
#[derive(Debug, Default)]
pub struct ListenerStats {
    pub accepted: AtomicU64,
    /// Refused at the listener's `max_connections`.
    pub refused: AtomicU64,
    /// Refused at `max_connections_per_ip`.
    pub refused_per_ip: AtomicU64,
    pub open: AtomicU64,
    pub frames: AtomicU64,
    pub records: AtomicU64,
    pub bad_checksum: AtomicU64,
    pub decode_errors: AtomicU64,
    pub unidentified: AtomicU64,
    pub garbage_bytes: AtomicU64,
    pub oversized: AtomicU64,
    pub idle_timeouts: AtomicU64,
    /// Closed for not identifying a device within `identify_timeout_secs`.
    pub unidentified_timeouts: AtomicU64,
    /// Closed because the device they named may not be served
    /// ([`crate::Ingest::admit`]: not registered, or disabled).
    pub refused_devices: AtomicU64,
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
            refused_per_ip: get(&self.refused_per_ip),
            open: get(&self.open),
            frames: get(&self.frames),
            records: get(&self.records),
            bad_checksum: get(&self.bad_checksum),
            decode_errors: get(&self.decode_errors),
            unidentified: get(&self.unidentified),
            garbage_bytes: get(&self.garbage_bytes),
            oversized: get(&self.oversized),
            idle_timeouts: get(&self.idle_timeouts),
            unidentified_timeouts: get(&self.unidentified_timeouts),
            refused_devices: get(&self.refused_devices),
        }
    }
}

/// A copy of [`ListenerStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    pub accepted: u64,
    pub refused: u64,
    pub refused_per_ip: u64,
    pub open: u64,
    pub frames: u64,
    pub records: u64,
    pub bad_checksum: u64,
    pub decode_errors: u64,
    pub unidentified: u64,
    pub garbage_bytes: u64,
    pub oversized: u64,
    pub idle_timeouts: u64,
    pub unidentified_timeouts: u64,
    pub refused_devices: u64,
}
