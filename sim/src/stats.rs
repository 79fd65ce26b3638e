//! Counters and latency histograms the device tasks update while a run goes
//! on, read by the progress bar and turned into the [`Report`](crate::Report).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::report::{Connections, Latency};

/// Histogram shards: device tasks on different cores rarely share a lock.
const SHARDS: usize = 16;
/// Largest latency a histogram holds, µs (an hour; longer values saturate).
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A latency histogram, µs, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .expect("constant bounds: low ≥ 1, high ≥ 2 × low, 3 significant digits")
}

/// Records `d` as µs, clamped into the histogram's range.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    h.saturating_record(us.clamp(1, MAX_LATENCY_US));
}

/// Locks `m`, carrying on after a panic elsewhere: counters stay meaningful.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
pub struct Stats {
    pub attempted: AtomicU64,
    pub established: AtomicU64,
    pub failed: AtomicU64,
    pub reconnects: AtomicU64,
    /// Devices logged in right now (for the progress bar and the timeline).
    pub connected: AtomicU64,
    /// Most devices logged in at once.
    pub connected_peak: AtomicU64,
    pub messages_sent: AtomicU64,
    pub records_sent: AtomicU64,
    pub acks_received: AtomicU64,
    /// Acks read during the drain: counted, not timed.
    pub acks_drained: AtomicU64,
    pub records_acked: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    /// Per shard: the whole run's histogram and the current timeline
    /// interval's, under one lock so an ack costs one lock.
    ack_latency: Box<[Mutex<[Histogram<u64>; 2]>]>,
    login_latency: Mutex<Histogram<u64>>,
}

impl Default for Stats {
    fn default() -> Self {
        let zero = || AtomicU64::new(0);
        Stats {
            attempted: zero(),
            established: zero(),
            failed: zero(),
            reconnects: zero(),
            connected: zero(),
            connected_peak: zero(),
            messages_sent: zero(),
            records_sent: zero(),
            acks_received: zero(),
            acks_drained: zero(),
            records_acked: zero(),
            errors: Mutex::default(),
            ack_latency: (0..SHARDS)
                .map(|_| Mutex::new([histogram(), histogram()]))
                .collect(),
            login_latency: Mutex::new(histogram()),
        }
    }
}

/// Adds to a counter; relaxed, as nothing is ordered against these.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Stats {
    pub fn error(&self, kind: &str) {
        *lock(&self.errors).entry(kind.to_owned()).or_default() += 1;
    }

    pub fn ack_latency(&self, device: u32, d: Duration) {
        let shard = device as usize % SHARDS;
        if let Some(h) = self.ack_latency.get(shard) {
            let [total, interval] = &mut *lock(h);
            record(total, d);
            record(interval, d);
        }
    }

    pub fn login_latency(&self, d: Duration) {
        record(&mut lock(&self.login_latency), d);
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        lock(&self.errors).clone()
    }

    pub fn ack_latency_summary(&self) -> Latency {
        let mut all = histogram();
        for shard in self.ack_latency.iter() {
            // Same bounds everywhere, so adding cannot fail.
            let _ = all.add(&lock(shard)[0]);
        }
        Latency::from(&all)
    }

    /// The ack latencies since the last call, for the timeline.
    pub fn take_interval_ack_latency(&self) -> Latency {
        let mut all = histogram();
        for shard in self.ack_latency.iter() {
            let mut pair = lock(shard);
            let _ = all.add(&pair[1]);
            pair[1].reset();
        }
        Latency::from(&all)
    }

    /// A device logged in: counts it, and the peak.
    pub fn online(&self) {
        let now = self.connected.fetch_add(1, Ordering::Relaxed) + 1;
        self.connected_peak.fetch_max(now, Ordering::Relaxed);
    }

    pub fn login_latency_summary(&self) -> Latency {
        Latency::from(&*lock(&self.login_latency))
    }

    pub fn connections(&self) -> Connections {
        Connections {
            attempted: get(&self.attempted),
            established: get(&self.established),
            failed: get(&self.failed),
            reconnects: get(&self.reconnects),
            peak_connected: get(&self.connected_peak),
        }
    }
}
