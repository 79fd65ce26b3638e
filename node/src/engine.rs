//! The engine as a consumer of the committed journal, and what keeps its
//! state across restarts.
//!
//! * [`EngineSink`] takes committed records from the journal like any sink
//!   and hands them to the tick thread; its journal cursor is the position of
//!   the last snapshot written, so a restart replays exactly what the
//!   snapshot misses.
//! * Snapshots: the tick thread captures one every `engine.snapshot_secs`;
//!   [`write_snapshots`] stores each under `data_dir/engine/snapshot.json`
//!   (temporary file, fsync, rename, directory fsync), so a crash leaves the
//!   old or the new one, never a mix. [`load_snapshot`] reads it on start.
//! * [`publish_status`] turns the engine's status board into retained MQTT
//!   status messages, and publishes every known status again after the
//!   broker connection came back (a restarted broker may have lost them).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use drover_engine::outputs::{DeltaQueue, StatusBoard};
use drover_engine::runtime::{Batch, SnapshotOffer};
use drover_engine::{Engine, Snapshot};
use drover_journal::sink::{Sink, SinkError};
use drover_mqtt::Publisher;
use drover_protocols::model::{DeviceId, DeviceMessage};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The engine's journal cursor name.
pub const CURSOR: &str = "engine";

/// Hands committed records to the tick thread. A full inbox makes it wait —
/// the sink runner then reads the journal once it goes on — so a slow engine
/// never touches a device's ack.
pub struct EngineSink {
    pub inbox: flume::Sender<Batch>,
    /// The position of the newest snapshot on disk.
    pub durable: Arc<AtomicU64>,
}

impl Sink for EngineSink {
    fn name(&self) -> &'static str {
        CURSOR
    }

    async fn write(
        &mut self,
        first: u64,
        messages: &[Arc<DeviceMessage>],
    ) -> Result<(), SinkError> {
        let batch = Batch {
            first,
            messages: messages.to_vec(),
        };
        self.inbox
            .send_async(batch)
            .await
            .map_err(|_| SinkError("the engine has stopped".to_owned()))
    }

    async fn confirm(&mut self, position: u64) -> Result<u64, SinkError> {
        // Only what a snapshot holds survives a crash; the rest is replayed.
        Ok(position.min(self.durable.load(Ordering::Acquire)))
    }
}

/// Counters of the snapshot writer.
#[derive(Debug, Default)]
pub struct SnapshotStats {
    pub written: AtomicU64,
    pub failures: AtomicU64,
    /// Skipped because the analytics outputs they cover were not handled in time.
    pub deferred: AtomicU64,
    /// Journal position and size of the newest snapshot on disk.
    pub position: Arc<AtomicU64>,
    pub bytes: AtomicU64,
}

/// Where the snapshot lives.
pub fn snapshot_path(data_dir: &Path) -> PathBuf {
    data_dir.join("engine").join("snapshot.json")
}

/// The snapshot on disk, if there is a usable one. A damaged or newer one is
/// logged and ignored: the engine then rebuilds from the journal.
pub fn load_snapshot(data_dir: &Path) -> Option<Snapshot> {
    let path = snapshot_path(data_dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            warn!(path = %path.display(), %error, "cannot read the engine snapshot; rebuilding from the journal");
            return None;
        }
    };
    match Snapshot::decode(&bytes) {
        Ok(snapshot) => {
            info!(
                position = snapshot.position,
                devices = snapshot.devices.len(),
                "engine snapshot loaded"
            );
            Some(snapshot)
        }
        Err(error) => {
            warn!(path = %path.display(), %error, "engine snapshot unusable; rebuilding from the journal");
            None
        }
    }
}

/// Restores `snapshot` into `engine` and returns the journal position to
/// replay from, kept within what the journal holds (`first..=next`).
pub fn restore(engine: &mut Engine, snapshot: Option<Snapshot>, first: u64, next: u64) -> u64 {
    let Some(snapshot) = snapshot else {
        engine.set_position(first);
        return first;
    };
    let taken_at = snapshot.position;
    if let Err(error) = engine.restore(snapshot) {
        warn!(%error, "engine snapshot not restored; rebuilding from the journal");
        engine.set_position(first);
        return first;
    }
    let start = taken_at.clamp(first, next);
    if start != taken_at {
        warn!(
            snapshot = taken_at,
            journal_first = first,
            journal_next = next,
            "the engine snapshot does not match the journal; live state may miss records"
        );
    }
    engine.set_position(start);
    start
}

/// How long a snapshot waits for the analytics outputs it covers to be
/// handled before it is skipped (the previous one stays, and the journal
/// keeps what it would hold).
const ANALYTICS_WAIT: Duration = Duration::from_secs(10);

/// How far the analytics consumer is: outputs it handled plus those the
/// queue dropped (lost either way, and counted).
pub struct AnalyticsProgress {
    pub handled: crate::analytics::Handled,
    pub queue: DeltaQueue,
}

impl AnalyticsProgress {
    fn reached(&self, through: u64) -> bool {
        self.handled.get() + self.queue.dropped() >= through
    }

    /// Whether every output up to `through` was handled within
    /// [`ANALYTICS_WAIT`].
    fn wait_for(&self, through: u64) -> bool {
        let deadline = std::time::Instant::now() + ANALYTICS_WAIT;
        while !self.reached(through) {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

/// Writes every snapshot the engine hands over until it stops (it sends a
/// last one then), each once the analytics outputs it covers are handled.
/// Runs on a blocking thread.
pub fn write_snapshots(
    data_dir: &Path,
    offers: flume::Receiver<SnapshotOffer>,
    analytics: &AnalyticsProgress,
    stats: &SnapshotStats,
) {
    let path = snapshot_path(data_dir);
    for SnapshotOffer {
        snapshot,
        analytics_through,
    } in offers.iter()
    {
        if !analytics.wait_for(analytics_through) {
            stats.deferred.fetch_add(1, Ordering::Relaxed);
            warn!(
                position = snapshot.position,
                "engine snapshot skipped: trips it covers are not stored yet (history backend down?)"
            );
            continue;
        }
        let bytes = snapshot.encode();
        match write_atomically(&path, &bytes) {
            Ok(()) => {
                stats.written.fetch_add(1, Ordering::Relaxed);
                stats.bytes.store(bytes.len() as u64, Ordering::Relaxed);
                stats.position.store(snapshot.position, Ordering::Release);
            }
            Err(error) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                warn!(path = %path.display(), %error,
                    "cannot write the engine snapshot; the journal keeps what it would hold");
            }
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// How often the status publisher looks for a reconnected broker when
/// nothing changes.
const RECHECK: Duration = Duration::from_secs(1);

/// Publishes each device's newest status as a retained message until
/// `shutdown`, then what is left on the board. A broker that is down makes
/// this task wait, never the engine: statuses pile up on the board, one per
/// device.
pub async fn publish_status(publisher: Publisher, board: StatusBoard, shutdown: CancellationToken) {
    let mut published: HashMap<DeviceId, bool> = HashMap::new();
    let mut connects = 0;
    loop {
        let stopping = tokio::select! {
            () = shutdown.cancelled() => true,
            () = board.changed() => false,
            () = tokio::time::sleep(RECHECK) => false,
        };
        let now = publisher.stats.connects.load(Ordering::Relaxed);
        if now > connects {
            // A new broker session: it may have lost the retained statuses.
            connects = now;
            board.put_back(published.iter().map(|(d, o)| (d.clone(), *o)));
        }
        let pending = board.take();
        let mut pending = pending.into_iter();
        while let Some((device, online)) = pending.next() {
            let sent = tokio::select! {
                sent = publisher.status(device.as_str(), online) => sent,
                () = shutdown.cancelled(), if !stopping => Err(drover_mqtt::MqttError::PublisherClosed),
            };
            if let Err(error) = sent {
                board.put_back(std::iter::once((device, online)).chain(pending));
                if stopping {
                    warn!(%error, "statuses not published before the stop");
                    return;
                }
                break;
            }
            published.insert(device, online);
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_engine::Delta;

    fn removed() -> Delta {
        Delta::Removed {
            device: DeviceId::new("d"),
        }
    }

    #[test]
    fn outputs_count_as_reached_once_handled_or_dropped() {
        let progress = AnalyticsProgress {
            handled: crate::analytics::Handled::default(),
            queue: DeltaQueue::new(1),
        };
        assert!(progress.reached(0));
        progress.queue.push(removed());
        progress.queue.push(removed()); // the first is dropped
        assert!(progress.reached(1) && !progress.reached(2));
        progress.handled.0.fetch_add(1, Ordering::Release);
        assert!(progress.reached(2));
    }
}
