//! Where the tick thread puts what it produces, without ever waiting for the
//! consumers.
//!
//! A slow consumer (a broker that is down, a WebSocket client on a bad
//! network) must never stop ticks: a stopped engine would hold back its
//! journal position and, before the engine left the ack path, device acks.
//! So each output either coalesces — it keeps only the newest value per key,
//! which bounds it by the fleet size — or drops its oldest entries and counts
//! them:
//!
//! * [`StatusBoard`]: each device's newest online/offline status, taken by
//!   the MQTT status publisher. Status is state, not a stream of events: a
//!   publisher that missed ten flaps still publishes the right retained
//!   value.
//! * [`DeltaQueue`]: events for stream consumers (presence changes, the
//!   WebSocket hub's), bounded, oldest dropped first with
//!   [`DeltaQueue::dropped`] counting them.
//!
//! Device state itself goes into the read model ([`crate::view`]), which
//! readers load without the tick thread's help.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use drover_protocols::model::DeviceId;

use crate::io::Delta;

/// Devices' newest status, waiting to be published. Cheap to clone.
#[derive(Clone)]
pub struct StatusBoard {
    pending: Arc<Mutex<HashMap<DeviceId, bool>>>,
    /// A single-slot doorbell: one ring wakes the consumer however many
    /// changes arrived.
    bell: flume::Sender<()>,
    ring: flume::Receiver<()>,
}

impl Default for StatusBoard {
    fn default() -> Self {
        let (bell, ring) = flume::bounded(1);
        StatusBoard {
            pending: Arc::default(),
            bell,
            ring,
        }
    }
}

impl StatusBoard {
    /// Records `device`'s newest status, replacing one not yet taken.
    pub fn set(&self, device: DeviceId, online: bool) {
        self.lock().insert(device, online);
        let _ = self.bell.try_send(());
    }

    /// Waits until something was set since the last [`StatusBoard::take`]
    /// (or returns at once if it was).
    pub async fn changed(&self) {
        let _ = self.ring.recv_async().await;
    }

    /// Everything set since the last call.
    pub fn take(&self) -> HashMap<DeviceId, bool> {
        std::mem::take(&mut *self.lock())
    }

    /// Gives back statuses a consumer could not deliver, unless a newer one
    /// arrived meanwhile.
    pub fn put_back(&self, statuses: impl IntoIterator<Item = (DeviceId, bool)>) {
        let mut pending = self.lock();
        for (device, online) in statuses {
            pending.entry(device).or_insert(online);
        }
    }

    /// Statuses waiting.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<DeviceId, bool>> {
        // A panicking consumer leaves a consistent map behind.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A bounded queue of deltas that drops its oldest entry rather than wait.
#[derive(Clone)]
pub struct DeltaQueue {
    tx: flume::Sender<Delta>,
    /// The producer's own receiver, used to evict the oldest delta.
    evict: flume::Receiver<Delta>,
    dropped: Arc<AtomicU64>,
}

impl DeltaQueue {
    pub fn new(capacity: usize) -> Self {
        let (tx, evict) = flume::bounded(capacity.max(1));
        DeltaQueue {
            tx,
            evict,
            dropped: Arc::default(),
        }
    }

    /// Queues `delta`, dropping the oldest one when full. Never waits.
    pub fn push(&self, mut delta: Delta) {
        loop {
            match self.tx.try_send(delta) {
                Ok(()) => return,
                Err(flume::TrySendError::Disconnected(_)) => return,
                Err(flume::TrySendError::Full(back)) => {
                    delta = back;
                    if self.evict.try_recv().is_ok() {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// The consumer's end.
    pub fn receiver(&self) -> flume::Receiver<Delta> {
        self.evict.clone()
    }

    /// Deltas dropped because nobody took them in time.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_board_keeps_only_the_newest_status_per_device() {
        let board = StatusBoard::default();
        let a = DeviceId::new("a");
        for online in [true, false, true, false] {
            board.set(a.clone(), online);
        }
        board.set(DeviceId::new("b"), true);
        let taken = board.take();
        assert_eq!(taken.len(), 2);
        assert!(!taken[&a]);
        assert!(board.is_empty());
        board.set(a.clone(), true);
        board.put_back([(a.clone(), false), (DeviceId::new("c"), true)]);
        let taken = board.take();
        assert!(taken[&a], "a newer status is not overwritten");
        assert_eq!(taken.len(), 2);
    }

    #[test]
    fn a_full_queue_drops_its_oldest_delta_and_counts_it() {
        let queue = DeltaQueue::new(2);
        for online in [true, false, true] {
            queue.push(Delta::Presence {
                device: DeviceId::new("a"),
                online,
                time_ms: i64::from(online),
            });
        }
        let kept: Vec<Delta> = queue.receiver().try_iter().collect();
        assert_eq!(queue.dropped(), 1);
        assert!(matches!(kept[0], Delta::Presence { online: false, .. }));
        assert!(matches!(kept[1], Delta::Presence { online: true, .. }));
    }
}
