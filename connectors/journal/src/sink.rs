//! Sinks: consumers of the journal that each keep their own cursor.
//!
//! Every record that leaves Drover — to the history store, InfluxDB, MQTT —
//! is read from the journal by a [`Sink`] at its own pace, so a slow or
//! unreachable sink never holds up ingest, and after a crash or an outage each
//! one resumes from its durable cursor (at-least-once delivery).
//!
//! Reading back from disk what was just written would cost a read and a decode
//! per record per sink, so the journal's commit observer hands each committed
//! batch, still decoded, to a [`Feed`]: one bounded channel per sink, filled in
//! sequence order without ever waiting. A sink follows the feed while it keeps
//! up; when it falls behind (after a restart, during an outage, or because its
//! channel overflowed) it reads the journal from its cursor until it has caught
//! up, then follows the feed again. Sequence numbers tell the two apart: a
//! feed batch that starts past the sink's position means records are missing
//! from the feed and must come from disk. Each sink's feed is bounded in
//! records, so a stalled sink holds a bounded amount of memory whatever
//! the batch sizes.
//!
//! A record that passed its checksum but does not decode (a format bug) is
//! retried a few times, then logged with its position, counted and skipped:
//! one bad record must not stop a sink forever.

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use drover_protocols::model::DeviceMessage;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::journal::{Attachment, Journal, JournalError, Observer};
use crate::record;

/// The records one append committed, as the journal observer hands them on.
#[derive(Debug, Clone)]
pub struct Committed {
    pub seqs: Range<u64>,
    pub messages: Arc<Vec<Arc<DeviceMessage>>>,
    /// The records' size in the journal (1 for a marker of a dropped batch,
    /// which holds none): what the feed's bound counts.
    bytes: usize,
}

/// Why a sink could not take a batch. The runner retries the same batch with
/// backoff: sinks must be idempotent (writes keyed by device and time).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// A destination for records.
pub trait Sink: Send + 'static {
    /// The journal cursor's name (letters, digits, `-`, `_`).
    fn name(&self) -> &'static str;

    /// Takes a batch: `messages[i]` is journal record `first + i`. `Ok`
    /// means the records are durable at the destination (or deliberately
    /// skipped as invalid, with a log), or handed over to be made durable by
    /// [`Sink::confirm`]. An error retries the batch.
    fn write(
        &mut self,
        first: u64,
        messages: &[Arc<DeviceMessage>],
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Waits until what `write` took up to `position` is durable at the
    /// destination, and returns the position up to which it is (at most
    /// `position`); the runner saves that as the cursor. A sink that
    /// pipelines (hands records over and hears back later, like MQTT's
    /// acknowledgements) confirms here; one whose state is made durable
    /// now and then (the engine's snapshots) answers with an older position.
    /// An error makes the runner go back to its last saved cursor and write
    /// everything since again. By default `write` was durable already.
    fn confirm(&mut self, position: u64) -> impl Future<Output = Result<u64, SinkError>> + Send {
        std::future::ready(Ok(position))
    }
}

/// How a sink batches.
#[derive(Debug, Clone, Copy)]
pub struct SinkConfig {
    /// A batch is written once it holds this many records…
    pub batch_max: usize,
    /// …or once its first record has waited this long (0: write what is there).
    pub linger: Duration,
    /// Journal bytes of the records the feed may hold for this sink before
    /// it falls back to the journal.
    pub feed_bytes: usize,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            batch_max: 5_000,
            linger: Duration::ZERO,
            feed_bytes: 16 << 20,
        }
    }
}

/// Counters of one sink, readable while it runs.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Records written.
    pub written: AtomicU64,
    /// Batches written.
    pub batches: AtomicU64,
    /// Failed write attempts (each retried).
    pub failures: AtomicU64,
    /// Records read back from the journal instead of the feed.
    pub replayed: AtomicU64,
    /// The sink's position: every record below it has been taken.
    pub position: AtomicU64,
    /// Records that could not be decoded and were skipped after
    /// [`UNDECODABLE_TRIES`] tries (each logged with its position).
    pub skipped: AtomicU64,
}

/// Where the journal observer sends committed batches: one channel per
/// sink, bounded by the records' size in the journal (decoded, they take a
/// few times that).
#[derive(Clone, Default)]
pub struct Feed {
    subscribers: Vec<Subscriber>,
}

/// The observer's end of one sink's feed.
#[derive(Clone)]
struct Subscriber {
    tx: flume::Sender<Committed>,
    /// Bytes sent and not yet taken, shared with the [`FeedReceiver`].
    queued: Arc<AtomicUsize>,
    limit: usize,
}

/// A sink's end of its feed.
pub struct FeedReceiver {
    rx: flume::Receiver<Committed>,
    queued: Arc<AtomicUsize>,
}

impl FeedReceiver {
    fn taken(&self, batch: Committed) -> Committed {
        self.queued.fetch_sub(batch.bytes, Ordering::Relaxed);
        batch
    }

    /// The next batch if one is waiting. A marker comes back as a batch
    /// without records, which the follower reads as "go to the journal".
    fn try_recv(&self) -> Option<Committed> {
        self.rx.try_recv().ok().map(|b| self.taken(b))
    }

    /// Waits for the next batch or marker; `None` once the feed is gone.
    /// Consumers without a cursor (the live stream) read it directly and
    /// take a marker as records they will not see.
    pub async fn recv(&self) -> Option<Committed> {
        let batch = self.rx.recv_async().await.ok()?;
        Some(self.taken(batch))
    }
}

impl Feed {
    /// A new channel for one sink, holding at most about `bytes` bytes.
    pub fn subscribe(&mut self, bytes: usize) -> FeedReceiver {
        let (tx, rx) = flume::unbounded();
        let queued = Arc::new(AtomicUsize::new(0));
        self.subscribers.push(Subscriber {
            tx,
            queued: Arc::clone(&queued),
            limit: bytes.max(1),
        });
        FeedReceiver { rx, queued }
    }

    /// The journal observer that fills this feed. Appends must attach an
    /// `Arc<Vec<Arc<DeviceMessage>>>`; a batch that would take a sink's feed
    /// past its bound is dropped for that sink only, which then reads it from
    /// the journal. The batches are shared: sinks that keep up cost one copy.
    pub fn observer(self) -> Observer {
        Box::new(
            move |seqs: Range<u64>, attachment: &Attachment, bytes: u64| {
                let Ok(messages) = Arc::clone(attachment).downcast::<Vec<Arc<DeviceMessage>>>()
                else {
                    return;
                };
                let bytes = usize::try_from(bytes).unwrap_or(usize::MAX).max(1);
                for subscriber in &self.subscribers {
                    subscriber.offer(&seqs, &messages, bytes);
                }
            },
        )
    }
}

impl Subscriber {
    /// Sends the batch if it fits. If it does not and the feed is empty, a
    /// marker without records goes instead: a sink waiting on an empty feed
    /// must still learn that records were committed. A feed holding anything
    /// needs no marker: the sink finds the gap when it gets there.
    fn offer(&self, seqs: &Range<u64>, messages: &Arc<Vec<Arc<DeviceMessage>>>, bytes: usize) {
        // Only this observer adds, so the check and the add do not race.
        let queued = self.queued.load(Ordering::Relaxed);
        let batch = if queued + bytes <= self.limit {
            Committed {
                seqs: seqs.clone(),
                messages: Arc::clone(messages),
                bytes,
            }
        } else if queued == 0 {
            Committed {
                seqs: seqs.clone(),
                messages: Arc::default(),
                bytes: 1,
            }
        } else {
            return;
        };
        let weight = batch.bytes;
        self.queued.fetch_add(weight, Ordering::Relaxed);
        if self.tx.send(batch).is_err() {
            self.queued.fetch_sub(weight, Ordering::Relaxed);
        }
    }
}

/// The journal a sink reads: fixed, or replaced when the node reopens it
/// after a failure.
pub trait JournalSource: Send + Sync + 'static {
    fn journal(&self) -> Arc<Journal>;
}

impl JournalSource for Arc<Journal> {
    fn journal(&self) -> Arc<Journal> {
        Arc::clone(self)
    }
}

/// How often a sink's cursor is written to disk: it costs an fsync, and after
/// a crash at most this much is delivered twice.
const CURSOR_EVERY: Duration = Duration::from_millis(250);
/// How long a stopping sink waits for its destination to confirm what it
/// took: a destination that is down must not hold up the node's stop.
const LAST_CHECKPOINT: Duration = Duration::from_secs(2);
/// How long a sink waits before reading the journal again after a read error.
const READ_RETRY: Duration = Duration::from_secs(10);
/// Reads of a record that does not decode before it is skipped: a decode
/// error of a record that passed its checksum is a bug that no retry fixes,
/// but a few tries rule out a fluke before data is dropped.
pub const UNDECODABLE_TRIES: u32 = 3;

/// Runs `sink` until `shutdown`: follows `feed`, falls back to the journal
/// when behind, retries failed batches, and keeps the cursor.
pub async fn run<S: Sink>(
    mut sink: S,
    source: impl JournalSource,
    feed: FeedReceiver,
    config: SinkConfig,
    stats: Arc<SinkStats>,
    shutdown: CancellationToken,
) {
    let name = sink.name();
    let journal = source.journal();
    let start = journal.cursor(name).unwrap_or(0).max(journal.first_seq());
    info!(
        sink = name,
        position = start,
        committed = journal.next_seq(),
        "sink starting"
    );
    let mut reader = Follower {
        position: start,
        held: None,
        replaying: None,
        undecodable: None,
        feed,
        config,
        name,
    };
    let mut cursor = CursorKeeper::new(start);
    stats.position.store(start, Ordering::Relaxed);
    loop {
        let journal = source.journal();
        // While the cursor lags, an idle sink wakes up to save it.
        let wake = (cursor.saved != reader.position).then_some(CURSOR_EVERY);
        let next = tokio::select! {
            () = shutdown.cancelled() => break,
            next = reader.next_batch(&journal, &stats, wake) => next,
        };
        let messages = match next {
            Ok(messages) => messages,
            Err(error) => {
                let pause = reader.failed_read(&error, &stats);
                stats.position.store(reader.position, Ordering::Relaxed);
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(pause) => continue,
                }
            }
        };
        if messages.is_empty() {
            if cursor.due(reader.position) {
                checkpoint(&mut sink, &mut reader, &mut cursor, journal, &stats).await;
            } else {
                // The records exist but the journal has not counted them as
                // committed yet (the feed is told first): let the committer finish.
                tokio::task::yield_now().await;
            }
            continue;
        }
        if !deliver(&mut sink, reader.position, &messages, &stats, &shutdown).await {
            break;
        }
        reader.position += messages.len() as u64;
        stats.position.store(reader.position, Ordering::Relaxed);
        if cursor.due(reader.position) {
            checkpoint(&mut sink, &mut reader, &mut cursor, journal, &stats).await;
        }
    }
    let journal = source.journal();
    let last = checkpoint(&mut sink, &mut reader, &mut cursor, journal, &stats);
    if tokio::time::timeout(LAST_CHECKPOINT, last).await.is_err() {
        warn!(
            sink = name,
            saved = cursor.saved,
            "stopping before the sink confirmed its last records; they go again next time"
        );
    }
    debug!(sink = name, position = reader.position, "sink stopped");
}

/// Saves the cursor once the sink confirmed what it took; when it cannot,
/// takes the sink back to the last saved cursor to write everything since
/// again.
async fn checkpoint<S: Sink>(
    sink: &mut S,
    reader: &mut Follower,
    cursor: &mut CursorKeeper,
    journal: Arc<Journal>,
    stats: &SinkStats,
) {
    match sink.confirm(reader.position).await {
        Ok(durable) if durable == cursor.saved => cursor.postpone(),
        Ok(durable) => cursor.save(journal, sink.name(), durable).await,
        Err(error) => {
            stats.failures.fetch_add(1, Ordering::Relaxed);
            warn!(sink = sink.name(), %error, from = cursor.saved, to = reader.position,
                "sink did not confirm its records; writing them again");
            reader.rewind(cursor.saved);
            stats.position.store(reader.position, Ordering::Relaxed);
        }
    }
}

/// A sink's way through the records: the feed while it keeps up, the journal
/// when it does not.
struct Follower {
    /// Every record below this has been taken by the sink.
    position: u64,
    /// A feed batch received but not used yet: it starts past `position`.
    held: Option<Committed>,
    /// The journal reader while catching up (kept: it holds a loaded segment).
    replaying: Option<crate::journal::Reader>,
    /// A record that did not decode, and how often it was tried.
    undecodable: Option<(u64, u32)>,
    feed: FeedReceiver,
    config: SinkConfig,
    name: &'static str,
}

impl Follower {
    /// Goes back to `position`: what follows comes from the journal until
    /// the sink has caught up with the feed again.
    fn rewind(&mut self, position: u64) {
        self.position = position;
        self.held = None;
        self.replaying = None;
    }

    /// Handles a failed read and says how long to wait before the next. A
    /// record that does not decode is skipped once it failed
    /// [`UNDECODABLE_TRIES`] times; any other error is retried.
    fn failed_read(&mut self, error: &SinkReadError, stats: &SinkStats) -> Duration {
        self.replaying = None;
        let SinkReadError::Record(seq, why) = error else {
            warn!(sink = self.name, %error, "cannot read the journal; retrying");
            return READ_RETRY;
        };
        let tries = match self.undecodable {
            Some((at, tries)) if at == *seq => tries + 1,
            _ => 1,
        };
        if tries < UNDECODABLE_TRIES {
            self.undecodable = Some((*seq, tries));
            warn!(sink = self.name, position = seq, tries, error = %why,
                "journal record does not decode; trying again");
            return Duration::from_secs(1);
        }
        self.undecodable = None;
        stats.skipped.fetch_add(1, Ordering::Relaxed);
        tracing::error!(sink = self.name, position = seq, error = %why,
            "journal record does not decode; skipped (it stays in the journal until retired)");
        self.position = seq + 1;
        Duration::ZERO
    }

    /// The next records from `position` on, in order; none when the feed
    /// was quiet for `wake_after`.
    async fn next_batch(
        &mut self,
        journal: &Journal,
        stats: &SinkStats,
        wake_after: Option<Duration>,
    ) -> Result<Vec<Arc<DeviceMessage>>, SinkReadError> {
        loop {
            // Read the committed end before looking at the feed: the journal
            // announces a batch before it counts it as committed, so an empty
            // feed below the committed end means the batch will not come.
            let committed = journal.next_seq();
            if self.held.is_none() {
                self.held = self.feed.try_recv();
            }
            match &self.held {
                Some(batch) if batch.seqs.end <= self.position => self.held = None,
                // A marker of batches the feed dropped: they are in the journal.
                Some(marker) if marker.messages.is_empty() => {
                    if self.position < committed {
                        self.held = None;
                        return self.replay(journal, stats).await;
                    }
                    // Announced, not yet counted as committed: the committer
                    // is about to.
                    tokio::task::yield_now().await;
                }
                Some(batch) if batch.seqs.start <= self.position => {
                    self.replaying = None;
                    return Ok(self.gather().await);
                }
                // The feed skipped records, or this sink is catching up.
                Some(_) => return self.replay(journal, stats).await,
                None if self.position < committed => return self.replay(journal, stats).await,
                None => {
                    self.replaying = None;
                    let received = match wake_after {
                        Some(quiet) => tokio::time::timeout(quiet, self.feed.recv()).await,
                        None => Ok(self.feed.recv().await),
                    };
                    match received {
                        Err(_quiet) => return Ok(Vec::new()),
                        Ok(Some(batch)) => self.held = Some(batch),
                        // The feed is gone (the node is stopping): nothing more comes.
                        Ok(None) => std::future::pending::<()>().await,
                    }
                }
            }
        }
    }

    /// Takes the held batch and whatever follows it in the feed, up to the
    /// batch limit, lingering for more when configured.
    async fn gather(&mut self) -> Vec<Arc<DeviceMessage>> {
        let mut out = Vec::new();
        let mut end = self.position;
        let deadline = tokio::time::Instant::now() + self.config.linger;
        while let Some(batch) = self.held.take() {
            if batch.seqs.start > end || batch.messages.is_empty() {
                // A gap or a marker: the journal fills it next time.
                self.held = Some(batch);
                break;
            }
            let skip = (end - batch.seqs.start) as usize;
            out.extend(batch.messages.iter().skip(skip).cloned());
            end = end.max(batch.seqs.end);
            if out.len() >= self.config.batch_max {
                break;
            }
            self.held = match self.feed.try_recv() {
                Some(next) => Some(next),
                None if self.config.linger.is_zero() => None,
                None => tokio::time::timeout_at(deadline, self.feed.recv())
                    .await
                    .ok()
                    .flatten(),
            };
        }
        out
    }

    /// Reads and decodes up to a batch of records from the journal, on a
    /// blocking thread: loading a segment is file I/O.
    async fn replay(
        &mut self,
        journal: &Journal,
        stats: &SinkStats,
    ) -> Result<Vec<Arc<DeviceMessage>>, SinkReadError> {
        let reader = match self.replaying.take() {
            Some(reader) => reader,
            None => journal.read_from(self.position),
        };
        let (position, max) = (self.position, self.config.batch_max);
        let (reader, read) = tokio::task::spawn_blocking(move || {
            let mut reader = reader;
            let read = read_batch(&mut reader, position, max);
            (reader, read)
        })
        .await
        .map_err(|_| SinkReadError::Panicked)?;
        let out = read?;
        if out.len() >= self.config.batch_max {
            self.replaying = Some(reader); // more to read from the loaded segment
        }
        if !out.is_empty() {
            stats
                .replayed
                .fetch_add(out.len() as u64, Ordering::Relaxed);
            debug!(
                sink = self.name,
                from = self.position,
                records = out.len(),
                "replayed from the journal"
            );
        }
        Ok(out)
    }
}

/// Reads and decodes up to `max` records from `reader`, which must be at
/// `position`.
fn read_batch(
    reader: &mut crate::journal::Reader,
    position: u64,
    max: usize,
) -> Result<Vec<Arc<DeviceMessage>>, SinkReadError> {
    let mut out = Vec::new();
    for item in reader.by_ref() {
        let (seq, bytes) = item?;
        if seq != position + out.len() as u64 {
            return Err(SinkReadError::Sequence(seq));
        }
        let message = match record::decode(&bytes) {
            Ok(message) => message,
            // The records before it go now; the next read starts at it.
            Err(_) if !out.is_empty() => break,
            Err(error) => return Err(SinkReadError::Record(seq, error)),
        };
        out.push(Arc::new(message));
        if out.len() >= max {
            break;
        }
    }
    Ok(out)
}

/// Why a sink could not read its next records from the journal.
#[derive(Debug, thiserror::Error)]
enum SinkReadError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("journal record {0} cannot be decoded: {1}")]
    Record(u64, record::RecordError),
    #[error("journal reader returned record {0} out of sequence")]
    Sequence(u64),
    #[error("journal reader thread panicked")]
    Panicked,
}

/// Writes one batch, retrying with backoff until it is taken. `false` if
/// shutdown came first.
async fn deliver<S: Sink>(
    sink: &mut S,
    first: u64,
    messages: &[Arc<DeviceMessage>],
    stats: &SinkStats,
    shutdown: &CancellationToken,
) -> bool {
    let backoff = Backoff::default();
    let mut attempt = 0;
    loop {
        // A write may wait for its destination (a full client queue while a
        // broker is down): shutdown must not wait with it.
        let written = tokio::select! {
            () = shutdown.cancelled() => return false,
            written = sink.write(first, messages) => written,
        };
        match written {
            Ok(()) => {
                stats
                    .written
                    .fetch_add(messages.len() as u64, Ordering::Relaxed);
                stats.batches.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Err(error) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                attempt += 1;
                let delay = backoff.delay(attempt);
                warn!(sink = sink.name(), %error, records = messages.len(), attempt, retry_in = ?delay,
                    "sink write failed; the batch stays in the journal and is retried");
                tokio::select! {
                    () = shutdown.cancelled() => return false,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Persists a sink's position at most every [`CURSOR_EVERY`].
struct CursorKeeper {
    saved: u64,
    at: Instant,
}

impl CursorKeeper {
    fn new(position: u64) -> Self {
        Self {
            saved: position,
            at: Instant::now(),
        }
    }

    fn due(&self, position: u64) -> bool {
        position != self.saved && self.at.elapsed() >= CURSOR_EVERY
    }

    /// Nothing new is durable: ask again after [`CURSOR_EVERY`].
    fn postpone(&mut self) {
        self.at = Instant::now();
    }

    /// Writes the cursor on a blocking thread: it is a file write and two
    /// fsyncs, which on a busy disk take tens of milliseconds that would
    /// otherwise stall every task queued on this worker.
    async fn save(&mut self, journal: Arc<Journal>, name: &'static str, position: u64) {
        // Feed batches arrive just before the journal counts them as
        // committed; a cursor may not pass the committed end, so the rest is
        // saved next time.
        let position = position.min(journal.next_seq());
        let saved = tokio::task::spawn_blocking(move || journal.set_cursor(name, position)).await;
        match saved {
            Ok(Ok(())) => {
                self.saved = position;
                self.at = Instant::now();
            }
            Ok(Err(error)) => warn!(sink = name, %error, "cannot save the sink's cursor"),
            Err(panic) => warn!(sink = name, %panic, "saving the sink's cursor panicked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::JournalConfig;
    use drover_protocols::model::{DeviceId, Record};
    use std::sync::Mutex;

    /// Records what it was given; fails the first `fail` writes and the
    /// first `fail_confirm` confirmations.
    #[derive(Clone, Default)]
    struct Collect {
        seen: Arc<Mutex<Vec<i64>>>,
        fail: Arc<AtomicU64>,
        fail_confirm: Arc<AtomicU64>,
    }

    impl Sink for Collect {
        fn name(&self) -> &'static str {
            "collect"
        }
        async fn write(
            &mut self,
            _first: u64,
            messages: &[Arc<DeviceMessage>],
        ) -> Result<(), SinkError> {
            if self.fail.load(Ordering::Relaxed) > 0 {
                self.fail.fetch_sub(1, Ordering::Relaxed);
                return Err(SinkError("down".into()));
            }
            let mut seen = self.seen.lock().unwrap();
            seen.extend(messages.iter().map(|m| m.record.time_ms));
            Ok(())
        }
        async fn confirm(&mut self, position: u64) -> Result<u64, SinkError> {
            if self.fail_confirm.load(Ordering::Relaxed) > 0 {
                self.fail_confirm.fetch_sub(1, Ordering::Relaxed);
                return Err(SinkError("not acknowledged".into()));
            }
            Ok(position)
        }
    }

    /// The framed size of `message(time_ms)` in the journal.
    fn journal_bytes(time_ms: i64) -> usize {
        let encoded = record::encode(&message(time_ms)).unwrap();
        crate::journal::segment::framed_len(encoded.len()) as usize
    }

    fn message(time_ms: i64) -> Arc<DeviceMessage> {
        Arc::new(DeviceMessage {
            device: DeviceId::new("352312094312345"),
            protocol: drover_protocols::gt06::NAME,
            record: Record {
                time_ms,
                ..Record::default()
            },
        })
    }

    fn append(journal: &Journal, times: std::ops::Range<i64>) {
        let messages: Vec<_> = times.map(message).collect();
        let bytes = messages
            .iter()
            .map(|m| record::encode(m).unwrap())
            .collect();
        journal
            .append_attached(bytes, Arc::new(messages))
            .wait()
            .unwrap();
    }

    async fn until(what: &str, check: impl Fn() -> bool) {
        for _ in 0..500 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    struct Running {
        sink: Collect,
        stats: Arc<SinkStats>,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    impl Running {
        async fn stop(self) {
            self.shutdown.cancel();
            self.task.await.unwrap();
        }
    }

    fn temp_journal() -> (tempfile::TempDir, Arc<Journal>) {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path(), JournalConfig::default())
            .unwrap()
            .0;
        (dir, Arc::new(journal))
    }

    /// A sink on `journal` whose feed holds about `feed_records` records.
    fn start(journal: &Arc<Journal>, feed_records: usize, sink: Collect) -> Running {
        let mut feed = Feed::default();
        let rx = feed.subscribe(feed_records * journal_bytes(0));
        assert!(journal.observe(feed.observer()));
        let config = SinkConfig {
            batch_max: 7,
            ..SinkConfig::default()
        };
        let stats = Arc::new(SinkStats::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            sink.clone(),
            Arc::clone(journal),
            rx,
            config,
            Arc::clone(&stats),
            shutdown.clone(),
        ));
        Running {
            sink,
            stats,
            shutdown,
            task,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follows_the_feed_in_order_and_keeps_its_cursor() {
        let (_dir, journal) = temp_journal();
        let running = start(&journal, 1024, Collect::default());
        for i in 0..20 {
            append(&journal, i * 5..i * 5 + 5);
        }
        until("100 records", || {
            running.sink.seen.lock().unwrap().len() == 100
        })
        .await;
        assert_eq!(
            *running.sink.seen.lock().unwrap(),
            (0..100).collect::<Vec<_>>()
        );
        assert_eq!(running.stats.replayed.load(Ordering::Relaxed), 0);
        running.stop().await;
        assert_eq!(journal.cursor("collect"), Some(100));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unconfirmed_stretch_is_written_again_from_the_last_cursor() {
        let (_dir, journal) = temp_journal();
        let sink = Collect::default();
        sink.fail_confirm.store(1, Ordering::Relaxed);
        let running = start(&journal, 1024, sink);
        append(&journal, 0..10);
        until("10 records", || {
            running.sink.seen.lock().unwrap().len() == 10
        })
        .await;
        // Idle with its cursor behind, the sink confirms: that fails, so
        // everything since the last saved cursor (0) goes again.
        until("the stretch written again", || {
            running.sink.seen.lock().unwrap().len() == 20
        })
        .await;
        append(&journal, 10..15);
        until("the rest", || running.sink.seen.lock().unwrap().len() == 25).await;
        let expected: Vec<i64> = (0..10).chain(0..15).collect();
        assert_eq!(*running.sink.seen.lock().unwrap(), expected);
        assert_eq!(running.stats.failures.load(Ordering::Relaxed), 1);
        running.stop().await;
        assert_eq!(journal.cursor("collect"), Some(15));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_overflowing_feed_falls_back_to_the_journal() {
        let (_dir, journal) = temp_journal();
        let sink = Collect::default();
        sink.fail.store(2, Ordering::Relaxed); // the sink is down at first
        let running = start(&journal, 1, sink);
        for i in 0..50 {
            append(&journal, i * 2..i * 2 + 2);
        }
        until("100 records", || {
            running.sink.seen.lock().unwrap().len() >= 100
        })
        .await;
        let seen = running.sink.seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            (0..100).collect::<Vec<_>>(),
            "each record once, in order"
        );
        assert!(running.stats.replayed.load(Ordering::Relaxed) > 0);
        assert_eq!(running.stats.failures.load(Ordering::Relaxed), 2);
        running.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_a_version_1_build_journaled_are_delivered_after_the_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (journal, _) = Journal::open(dir.path(), JournalConfig::default()).unwrap();
            let v1 = (0..10)
                .map(|t| record::encode_v1(&message(t)).unwrap())
                .collect();
            journal.append(v1).unwrap();
        }
        let journal = Arc::new(
            Journal::open(dir.path(), JournalConfig::default())
                .unwrap()
                .0,
        );
        let running = start(&journal, 16, Collect::default());
        append(&journal, 10..12);
        until("12 records", || {
            running.sink.seen.lock().unwrap().len() >= 12
        })
        .await;
        assert_eq!(
            *running.sink.seen.lock().unwrap(),
            (0..12).collect::<Vec<_>>()
        );
        running.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restarted_sink_resumes_from_its_cursor() {
        let dir = tempfile::tempdir().unwrap();
        {
            let journal = Arc::new(
                Journal::open(dir.path(), JournalConfig::default())
                    .unwrap()
                    .0,
            );
            append(&journal, 0..10);
            journal.set_cursor("collect", 4).unwrap();
            append(&journal, 10..12);
        }
        let journal = Arc::new(
            Journal::open(dir.path(), JournalConfig::default())
                .unwrap()
                .0,
        );
        let running = start(&journal, 16, Collect::default());
        append(&journal, 12..15);
        until("11 records", || {
            running.sink.seen.lock().unwrap().len() >= 11
        })
        .await;
        assert_eq!(
            *running.sink.seen.lock().unwrap(),
            (4..15).collect::<Vec<_>>()
        );
        running.stop().await;
        assert_eq!(journal.cursor("collect"), Some(15));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_that_does_not_decode_is_skipped_after_a_few_tries() {
        let (_dir, journal) = temp_journal();
        let running = start(&journal, 1024, Collect::default());
        append(&journal, 0..3);
        // Passes its checksum, is no record: a format bug, not disk damage.
        journal.append(vec![b"not a record".to_vec()]).unwrap();
        append(&journal, 4..6);
        until("the records around it", || {
            running.sink.seen.lock().unwrap().len() == 5
        })
        .await;
        assert_eq!(*running.sink.seen.lock().unwrap(), vec![0, 1, 2, 4, 5]);
        assert_eq!(running.stats.skipped.load(Ordering::Relaxed), 1);
        running.stop().await;
        assert_eq!(journal.cursor("collect"), Some(6), "the sink went past it");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_sink_holds_at_most_its_feed_bound() {
        let (_dir, journal) = temp_journal();
        let mut feed = Feed::default();
        let each = journal_bytes(0);
        let rx = feed.subscribe(10 * each);
        assert!(journal.observe(feed.observer()));
        for i in 0..40 {
            append(&journal, i * 3..i * 3 + 3);
        }
        // Nobody reads: three batches of three fit, then one marker at most
        // once the feed was drained.
        assert_eq!(rx.queued.load(Ordering::Relaxed), 9 * each);
        assert_eq!(rx.rx.len(), 3);
        while rx.try_recv().is_some() {}
        append(&journal, 120..131);
        let marker = rx.try_recv().expect("a marker for the dropped batch");
        assert!(marker.messages.is_empty());
        assert_eq!(marker.seqs, 120..131);
    }

    /// Confirms only up to a position set by the test, like the engine's
    /// snapshots.
    #[derive(Clone, Default)]
    struct Lagging {
        durable: Arc<AtomicU64>,
    }

    impl Sink for Lagging {
        fn name(&self) -> &'static str {
            "lagging"
        }
        async fn write(&mut self, _: u64, _: &[Arc<DeviceMessage>]) -> Result<(), SinkError> {
            Ok(())
        }
        async fn confirm(&mut self, position: u64) -> Result<u64, SinkError> {
            Ok(position.min(self.durable.load(Ordering::Relaxed)))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_cursor_is_what_the_sink_confirmed_not_what_it_took() {
        let (_dir, journal) = temp_journal();
        let mut feed = Feed::default();
        let rx = feed.subscribe(1024);
        assert!(journal.observe(feed.observer()));
        let sink = Lagging::default();
        let durable = Arc::clone(&sink.durable);
        let stats = Arc::new(SinkStats::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            sink,
            Arc::clone(&journal),
            rx,
            SinkConfig::default(),
            Arc::clone(&stats),
            shutdown.clone(),
        ));
        append(&journal, 0..10);
        until("10 taken", || stats.position.load(Ordering::Relaxed) == 10).await;
        durable.store(4, Ordering::Relaxed);
        until("the cursor at 4", || journal.cursor("lagging") == Some(4)).await;
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(journal.cursor("lagging"), Some(4));
    }
}
