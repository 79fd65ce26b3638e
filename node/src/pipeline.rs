//! Where the device servers' records go: into the journal, and nowhere else.
//!
//! A record is accepted — and the device acked — only once the journal has it
//! on disk (group commit). Nothing else is on the ack path: the journal's
//! commit observer hands the committed batch to its consumers (the engine,
//! history, InfluxDB, MQTT), which take it at their own pace and read the
//! journal when they fall behind. Connection changes go to the engine's
//! board, which never waits; they and the devices' answers to commands
//! (once committed) also go to the command service, dropped and counted
//! when it is behind. When the journal fails (an fsync error, a full
//! disk) `submit` fails: the session closes the connection without an ack,
//! the device keeps its records and sends them again, and the recovery task
//! reopens the journal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use drover_devices::{Admit, Ingest, IngestClosed};
use drover_engine::connections::Connections;
use drover_journal::{JournalError, JournalHandle, record};
use drover_protocols::model::{DeviceId, DeviceMessage};
use tokio::sync::{Notify, Semaphore};
use tracing::{error, warn};

use crate::admission::Gate;
use crate::commands::Intake;
use crate::supervise::Fatal;

/// How often a refusal is logged while the journal stays unavailable.
const WARN_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Pipeline {
    pub journal: Arc<JournalHandle>,
    /// Where connection changes go, for the engine's next tick.
    pub connections: Connections,
    /// Wakes the recovery task after the journal failed.
    pub recover: Arc<Notify>,
    /// Journal size past which appends are refused until sinks catch up.
    pub max_backlog_bytes: u64,
    /// Bytes of records waiting for the group commit.
    pub queued: CommitQueue,
    pub stats: Arc<PipelineStats>,
    /// Told when the journal's committer is gone: nothing can be acked again.
    pub fatal: Fatal,
    /// Which devices are served, asked at each login.
    pub gate: Gate,
    /// Where connections and the devices' answers to commands go, without
    /// waiting.
    pub commands: Intake,
}

/// Room in the group commit's queue, in bytes: a burst from many devices
/// waits here (and in their sockets) instead of growing memory.
#[derive(Clone)]
pub struct CommitQueue {
    room: Arc<Semaphore>,
    max: u32,
}

impl CommitQueue {
    pub fn new(max_bytes: usize) -> Self {
        let max = u32::try_from(max_bytes).unwrap_or(u32::MAX).max(1);
        CommitQueue {
            room: Arc::new(Semaphore::new(max as usize)),
            max,
        }
    }

    /// Waits for room for `bytes`; a batch larger than the whole queue waits
    /// for all of it.
    async fn enter(&self, bytes: usize) -> Result<tokio::sync::SemaphorePermit<'_>, IngestClosed> {
        let wanted = u32::try_from(bytes).unwrap_or(u32::MAX).clamp(1, self.max);
        // Nothing closes the semaphore; a closed one would mean shutting down.
        self.room
            .acquire_many(wanted)
            .await
            .map_err(|_| IngestClosed)
    }

    /// Bytes queued now.
    pub fn queued(&self) -> u64 {
        u64::from(self.max).saturating_sub(self.room.available_permits() as u64)
    }
}

/// Counters of the ack path.
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Records made durable and acknowledged.
    pub committed: AtomicU64,
    /// Batches refused because the journal failed or the backlog was full.
    pub refused: AtomicU64,
    last_warning: std::sync::Mutex<Option<Instant>>,
}

impl PipelineStats {
    fn refuse(&self, reason: &dyn std::fmt::Display) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let mut last = self
            .last_warning
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if last.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            *last = Some(Instant::now());
            warn!(%reason, refused = self.refused.load(Ordering::Relaxed),
                "records refused: devices are not acked and will send them again");
        }
    }
}

impl Pipeline {
    async fn commit(&self, messages: Arc<Vec<Arc<DeviceMessage>>>) -> Result<(), IngestClosed> {
        let journal = self.journal.current();
        let backlog = journal.disk_bytes();
        if backlog > self.max_backlog_bytes {
            self.stats.refuse(&format_args!(
                "the journal holds {} MB that a sink has not taken (journal.max_backlog_mb)",
                backlog / 1_000_000
            ));
            return Err(IngestClosed);
        }
        let mut encoded = Vec::with_capacity(messages.len());
        for message in messages.iter() {
            match record::encode(message) {
                Ok(bytes) => encoded.push(bytes),
                Err(error) => {
                    // Only absurd input gets here (a device id over 64 KiB).
                    warn!(device = %message.device, %error, "record cannot be stored");
                    return Err(IngestClosed);
                }
            }
        }
        let _room = self
            .queued
            .enter(encoded.iter().map(Vec::len).sum())
            .await?;
        let attachment = Arc::clone(&messages) as drover_journal::Attachment;
        match journal
            .append_attached(encoded, attachment)
            .wait_async()
            .await
        {
            Ok(seqs) => {
                self.stats
                    .committed
                    .fetch_add(seqs.end - seqs.start, Ordering::Relaxed);
                // Only now: an answer the journal might still lose must not
                // close its command.
                self.commands.answers(&messages);
                Ok(())
            }
            Err(JournalError::Closed) => {
                self.fatal
                    .report("journal committer", "it stopped".to_owned());
                Err(IngestClosed)
            }
            Err(failure) => {
                if journal.is_poisoned() {
                    error!(%failure, "journal failed; reopening it");
                    self.recover.notify_one();
                }
                self.stats.refuse(&failure);
                Err(IngestClosed)
            }
        }
    }
}

impl Ingest for Pipeline {
    fn admit(&self, device: &DeviceId, protocol: &'static str, peer: SocketAddr) -> Admit {
        self.gate.admit(device, protocol, peer)
    }

    async fn submit(&self, records: Vec<DeviceMessage>) -> Result<(), IngestClosed> {
        let messages: Arc<Vec<Arc<DeviceMessage>>> =
            Arc::new(records.into_iter().map(Arc::new).collect());
        self.commit(messages).await
    }

    async fn connected(
        &self,
        device: DeviceId,
        protocol: &'static str,
    ) -> Result<(), IngestClosed> {
        self.commands.connected(device.clone());
        self.commands.connected(device.clone());
        self.connections.opened(device, protocol);
        Ok(())
    }

    async fn disconnected(&self, device: DeviceId) -> Result<(), IngestClosed> {
        self.connections.closed(device);
        Ok(())
    }
}

/// Reopens the journal whenever the pipeline reports it failed, retrying
/// while that fails too (a disk still full), until `shutdown`.
pub async fn recover_journal(
    journal: Arc<JournalHandle>,
    wake: Arc<Notify>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = wake.notified() => {}
        }
        loop {
            let attempt = {
                let journal = Arc::clone(&journal);
                tokio::task::spawn_blocking(move || journal.recover()).await
            };
            match attempt {
                Ok(Ok(_)) => break,
                Ok(Err(failure)) => warn!(%failure, "journal cannot be reopened yet; retrying"),
                Err(panic) => error!(%panic, "journal recovery panicked; retrying"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_journal::sink::Feed;
    use drover_journal::storage::{FaultyStorage, Storage};
    use drover_journal::{JournalConfig, ObserverFactory};
    use drover_protocols::model::Record;

    fn message(time_ms: i64) -> DeviceMessage {
        DeviceMessage {
            device: DeviceId::new("356307042441013"),
            protocol: drover_protocols::teltonika::NAME,
            record: Record {
                time_ms,
                ..Record::default()
            },
        }
    }

    fn pipeline(storage: &FaultyStorage, catalog: &tempfile::TempDir) -> Pipeline {
        let observer: ObserverFactory = Box::new(|| Feed::default().observer());
        let (journal, _) = JournalHandle::open(
            Arc::new(storage.clone()) as Arc<dyn Storage>,
            JournalConfig::default(),
            Some(observer),
        )
        .unwrap();
        Pipeline {
            journal: Arc::new(journal),
            connections: Connections::default(),
            recover: Arc::new(Notify::new()),
            max_backlog_bytes: u64::MAX,
            queued: CommitQueue::new(1 << 20),
            stats: Arc::default(),
            fatal: Fatal::default(),
            gate: Gate {
                catalog: Arc::new(drover_catalog::Catalog::open(catalog.path()).unwrap()),
                serve_unknown: false,
            },
            commands: crate::commands::intake(Arc::default()).0,
        }
    }

    fn journal_times(pipeline: &Pipeline) -> Vec<i64> {
        pipeline
            .journal
            .current()
            .read_from(0)
            .map(|r| record::decode(&r.unwrap().1).unwrap().record.time_ms)
            .collect()
    }

    #[tokio::test]
    async fn an_fsync_error_stops_acks_until_the_journal_is_recovered() {
        let storage = FaultyStorage::new();
        let catalog = tempfile::tempdir().unwrap();
        let pipeline = pipeline(&storage, &catalog);
        pipeline.submit(vec![message(1), message(2)]).await.unwrap();

        storage.set_fail_fsync(true);
        let woken = pipeline.recover.notified();
        assert_eq!(pipeline.submit(vec![message(3)]).await, Err(IngestClosed));
        woken.await; // the recovery task is asked to reopen the journal
        storage.set_fail_fsync(false);
        // Still refused: a poisoned journal never trusts the disk again by itself.
        assert_eq!(pipeline.submit(vec![message(4)]).await, Err(IngestClosed));

        pipeline.journal.recover().unwrap().expect("recovered");
        pipeline.submit(vec![message(5)]).await.unwrap();
        let times = journal_times(&pipeline);
        assert_eq!(&times[..2], &[1, 2], "acknowledged records survive");
        assert_eq!(times.last(), Some(&5));
        assert!(!times.contains(&4));
        assert_eq!(pipeline.stats.committed.load(Ordering::Relaxed), 3);
        assert_eq!(pipeline.stats.refused.load(Ordering::Relaxed), 2);
        assert_eq!(
            pipeline.queued.queued(),
            0,
            "the queue's room is given back"
        );
    }

    #[tokio::test]
    async fn a_full_backlog_refuses_records() {
        let storage = FaultyStorage::new();
        let catalog = tempfile::tempdir().unwrap();
        let mut pipeline = pipeline(&storage, &catalog);
        pipeline.max_backlog_bytes = 0;
        assert_eq!(pipeline.submit(vec![message(1)]).await, Err(IngestClosed));
        assert!(journal_times(&pipeline).is_empty());
    }

    #[tokio::test]
    async fn connections_go_to_the_engine_board_without_waiting() {
        let storage = FaultyStorage::new();
        let catalog = tempfile::tempdir().unwrap();
        let pipeline = pipeline(&storage, &catalog);
        let device = DeviceId::new("356307042441013");
        pipeline.connected(device.clone(), "gt06").await.unwrap();
        pipeline.disconnected(device).await.unwrap();
        let mut inputs = Vec::new();
        pipeline.connections.drain_into(&mut inputs);
        assert_eq!(inputs.len(), 2);
    }

    #[tokio::test]
    async fn a_full_commit_queue_makes_submitters_wait_for_room() {
        let queue = CommitQueue::new(100);
        let held = queue.enter(80).await.unwrap();
        assert_eq!(queue.queued(), 80);
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move {
                let _room = queue.enter(50).await.unwrap();
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "no room for 50 more bytes yet");
        drop(held);
        waiting.await.unwrap();
        // A batch larger than the queue takes all of it rather than never.
        drop(queue.enter(10_000).await.unwrap());
        assert_eq!(queue.queued(), 0);
    }
}
