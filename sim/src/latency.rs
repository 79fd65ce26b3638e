//! Device→MQTT latency: which positions were sent when, which the server
//! acked, and which came back on MQTT.
//!
//! A position is known by (IMEI, fix time in ms), which the server's MQTT
//! payload carries as `device` and `time`. An entry lives from the moment its
//! packet is built (just before it is written) until it is both acked and
//! seen; what is left at the end is in flight, unacked (never more than one
//! entry per position sent), or — when acked — missing on MQTT.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::report::{Latency, MqttReport};
use crate::stats::{add, get, histogram, lock, record};

/// Lock shards: 30k positions/s over 64 locks keeps contention negligible.
const SHARDS: usize = 64;

type Key = (u64, i64);

#[derive(Debug, Clone, Copy)]
struct Entry {
    sent: Instant,
    acked: bool,
    seen: bool,
}

#[derive(Debug)]
pub struct Ledger {
    shards: Box<[Mutex<HashMap<Key, Entry>>]>,
    received: AtomicU64,
    matched: AtomicU64,
    acked: AtomicU64,
    acked_seen: AtomicU64,
    /// The whole run's device→MQTT latency and the current timeline interval's.
    latency: Mutex<[Histogram<u64>; 2]>,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            received: AtomicU64::new(0),
            matched: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            acked_seen: AtomicU64::new(0),
            latency: Mutex::new([histogram(), histogram()]),
        }
    }
}

impl Ledger {
    fn shard(&self, imei: u64) -> &Mutex<HashMap<Key, Entry>> {
        &self.shards[imei as usize % SHARDS]
    }

    /// A position's packet is being written, from `at`.
    pub fn sent(&self, imei: u64, time_ms: i64, at: Instant) {
        let entry = Entry {
            sent: at,
            acked: false,
            seen: false,
        };
        lock(self.shard(imei)).insert((imei, time_ms), entry);
    }

    /// The server acknowledged the position.
    pub fn acked(&self, imei: u64, time_ms: i64) {
        add(&self.acked, 1);
        let mut shard = lock(self.shard(imei));
        let Some(entry) = shard.get_mut(&(imei, time_ms)) else {
            return;
        };
        entry.acked = true;
        if entry.seen {
            add(&self.acked_seen, 1);
            shard.remove(&(imei, time_ms));
        }
    }

    /// A position arrived on MQTT at `at`. Positions this run did not send,
    /// and repeats of one already seen, count as received only.
    pub fn seen(&self, imei: u64, time_ms: i64, at: Instant) {
        add(&self.received, 1);
        let mut shard = lock(self.shard(imei));
        let Some(entry) = shard.get_mut(&(imei, time_ms)) else {
            return;
        };
        if entry.seen {
            return;
        }
        entry.seen = true;
        let sent = entry.sent;
        if entry.acked {
            add(&self.acked_seen, 1);
            shard.remove(&(imei, time_ms));
        }
        drop(shard);
        add(&self.matched, 1);
        let [total, interval] = &mut *lock(&self.latency);
        record(total, at.saturating_duration_since(sent));
        record(interval, at.saturating_duration_since(sent));
    }

    /// A message on the subscription that is not a readable position.
    pub fn received_other(&self) {
        add(&self.received, 1);
    }

    /// Acked positions not (yet) seen on MQTT.
    pub fn missing(&self) -> u64 {
        get(&self.acked).saturating_sub(get(&self.acked_seen))
    }

    pub fn received(&self) -> u64 {
        get(&self.received)
    }

    pub fn report(&self) -> MqttReport {
        MqttReport {
            received: get(&self.received),
            matched: get(&self.matched),
            missing: self.missing(),
            latency_us: Latency::from(&lock(&self.latency)[0]),
        }
    }

    /// Device→MQTT latencies since the last call, for the timeline.
    pub fn take_interval_latency(&self) -> Latency {
        let mut pair = lock(&self.latency);
        let latency = Latency::from(&pair[1]);
        pair[1].reset();
        latency
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn acked_positions_are_missing_until_seen_in_either_order() {
        let t = Ledger::default();
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(5);
        t.sent(1, 1000, t0);
        t.sent(1, 2000, t0);
        t.sent(2, 1000, t0);
        t.acked(1, 1000);
        assert_eq!(t.missing(), 1);
        t.seen(1, 1000, later);
        // Seen before its ack: not missing, and not counted twice once acked.
        t.seen(1, 2000, later);
        t.acked(1, 2000);
        assert_eq!(t.missing(), 0);
        // Sent but never acked: not missing even though never seen.
        let r = t.report();
        assert_eq!((r.received, r.matched, r.missing), (2, 2, 0));
        assert_eq!(r.latency_us.count, 2);
        assert!(r.latency_us.p50 >= 4_900);
    }

    #[test]
    fn repeats_and_strangers_are_received_but_not_matched() {
        let t = Ledger::default();
        let now = Instant::now();
        t.sent(7, 1, now);
        t.seen(7, 1, now);
        t.seen(7, 1, now);
        t.seen(8, 1, now);
        t.received_other();
        let r = t.report();
        assert_eq!((r.received, r.matched), (4, 1));
    }
}
