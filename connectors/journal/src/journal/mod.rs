//! The durable journal: an append-only, segmented log of opaque records.
//!
//! See the crate documentation for the format and the guarantees. Submodules:
//! [`segment`] (file names, record framing, reading in chunks), `commit` (the group-commit thread),
//! [`storage`] (the file layer, real or fault-injecting), `cursor` (sink positions).

mod commit;
mod cursor;
mod handle;
pub mod segment;
pub mod storage;

#[cfg(test)]
mod tests;

use std::any::Any;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;

use commit::{Queue, Request, SyncedEnd, Writer};
pub use handle::{JournalHandle, ObserverFactory};
use segment::SegmentReader;
use storage::{FsStorage, Storage};

/// Tuning of a [`Journal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalConfig {
    /// A segment is rolled before a record would take it past this size (default 64 MiB).
    /// Whole segments are the unit of deletion, so this is also the retention granularity.
    pub segment_bytes: u64,
    /// How long the committer lets appenders gather before one write and fsync
    /// (default 2 ms): the latency paid for sharing an fsync. 0 commits immediately.
    pub commit_ms: u64,
    /// A batch stops growing at this many framed bytes (default 4 MiB), bounding
    /// both the memory of a batch and the time its fsync takes.
    pub max_batch_bytes: u64,
    /// The largest accepted record (default 16 MiB). Recovery treats a larger
    /// length field as damage.
    pub max_record_bytes: u32,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 64 * 1024 * 1024,
            commit_ms: 2,
            max_batch_bytes: 4 * 1024 * 1024,
            max_record_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Everything that can go wrong in the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal I/O error ({what}): {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "journal segment {segment} is corrupt at byte offset {offset}: {reason}. \
         Refusing to open the journal, because dropping this record would lose acknowledged data; \
         inspect the segment or move it aside (quarantine) deliberately"
    )]
    Corrupt {
        segment: String,
        offset: u64,
        reason: String,
    },
    #[error(
        "journal is poisoned after a failed write or fsync ({cause}); nothing more is acknowledged: \
         reopen it with JournalHandle::recover, which first cuts off what was never synced"
    )]
    Poisoned { cause: String },
    #[error("record of {len} bytes refused: records must hold 1 to {max} bytes")]
    RecordSize { len: usize, max: u32 },
    #[error("invalid cursor name {0:?}: use 1 to 64 letters, digits, '-' or '_'")]
    CursorName(String),
    #[error("cursor file {0} is damaged")]
    CursorCorrupt(String),
    #[error("sequence number {seq} is not in the journal (it holds {first}..{next})")]
    OutOfRange { seq: u64, first: u64, next: u64 },
    #[error("the journal's committer has stopped")]
    Closed,
}

impl JournalError {
    fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        JournalError::Io {
            what: what.into(),
            source,
        }
    }
}

/// What [`Journal::open`] found on disk.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recovery {
    /// Segment files found (after creating the first one in an empty directory).
    pub segments: usize,
    /// Valid records found.
    pub records: u64,
    /// Sequence number of the oldest record kept (segments before it were retired).
    pub first_seq: u64,
    /// Sequence number of the last valid record, `None` if the journal is empty.
    pub last_seq: Option<u64>,
    /// Sequence number the next appended record gets.
    pub next_seq: u64,
    /// Bytes cut from the end of the journal: a torn last record, or when a
    /// poisoned journal is recovered, what was written after its last
    /// committed batch.
    pub truncated_bytes: u64,
}

/// Counters, readable at any time through [`Journal::metrics`].
#[derive(Debug, Default)]
struct Metrics {
    records: AtomicU64,
    bytes: AtomicU64,
    commits: AtomicU64,
    fsyncs: AtomicU64,
    fsync_max_us: AtomicU64,
}

/// A snapshot of the journal's counters since it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsSnapshot {
    /// Records committed.
    pub records: u64,
    /// Framed bytes committed.
    pub bytes: u64,
    /// Batches committed (one per group commit).
    pub commits: u64,
    /// Successful segment fsyncs (a batch that rolls a segment takes two).
    pub fsyncs: u64,
    /// The slowest fsync, in microseconds.
    pub fsync_max_us: u64,
}

/// What an appender hands along with its records (typically the decoded
/// records themselves) for the commit observer.
pub type Attachment = Arc<dyn Any + Send + Sync>;

/// Called by the committer thread for every attached append, in sequence
/// order, once it is durable and before its appender wakes. It runs on the
/// commit path: it must not block.
/// It gets the framed bytes of the records too, which consumers use to bound
/// what they hold without measuring the decoded records on this thread.
pub type Observer = Box<dyn Fn(Range<u64>, &Attachment, u64) + Send + Sync>;

/// State shared by the journal handle, its committer thread and readers.
struct Shared {
    storage: Arc<dyn Storage>,
    config: JournalConfig,
    queue: Mutex<Queue>,
    /// Wakes the committer: a new request, or shutdown.
    wake: Condvar,
    /// Base sequence number of every segment on disk, oldest first.
    segments: Mutex<Vec<u64>>,
    /// One past the last durable record: the limit of what readers may see.
    committed: AtomicU64,
    /// Sink positions, mirrored in cursor files. The lock also orders their writes.
    cursors: Mutex<BTreeMap<String, u64>>,
    metrics: Metrics,
    observer: OnceLock<Observer>,
}

/// Recovers the guard of a mutex whose holder panicked: the data under these
/// locks stays consistent at every unlock, and one panicking thread must not
/// take the journal down with it.
fn relock<T>(result: std::sync::LockResult<MutexGuard<'_, T>>) -> MutexGuard<'_, T> {
    result.unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        relock(self.queue.lock())
    }
    fn lock_segments(&self) -> MutexGuard<'_, Vec<u64>> {
        relock(self.segments.lock())
    }
    fn lock_cursors(&self) -> MutexGuard<'_, BTreeMap<String, u64>> {
        relock(self.cursors.lock())
    }
}

/// The journal. Share it through an `Arc`: every method takes `&self`.
/// Dropping it commits whatever is queued and stops the committer thread.
pub struct Journal {
    shared: Arc<Shared>,
    committer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("config", &self.shared.config)
            .field("committed", &self.shared.committed.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

/// The answer to one append, to be waited for (blocking or async).
#[derive(Debug)]
pub struct Ticket {
    reply: flume::Receiver<Result<Range<u64>, JournalError>>,
}

impl Ticket {
    fn ready(result: Result<Range<u64>, JournalError>) -> Self {
        let (tx, rx) = flume::bounded(1);
        let _ = tx.send(result);
        Ticket { reply: rx }
    }

    /// Blocks until the records are durable (or the append failed).
    pub fn wait(self) -> Result<Range<u64>, JournalError> {
        self.reply.recv().unwrap_or(Err(JournalError::Closed))
    }

    /// Waits without blocking the executor thread.
    pub async fn wait_async(self) -> Result<Range<u64>, JournalError> {
        self.reply
            .recv_async()
            .await
            .unwrap_or(Err(JournalError::Closed))
    }
}

impl Journal {
    /// Opens (or creates) the journal in `dir` on the real filesystem.
    pub fn open(
        dir: impl AsRef<Path>,
        config: JournalConfig,
    ) -> Result<(Journal, Recovery), JournalError> {
        let dir = dir.as_ref();
        let storage = FsStorage::new(dir).map_err(|source| {
            JournalError::io(
                format!("create journal directory {}", dir.display()),
                source,
            )
        })?;
        Self::open_with_storage(Arc::new(storage), config)
    }

    /// Opens the journal on any [`Storage`]; tests pass a fault-injecting one.
    ///
    /// Validates every record. A torn last record of the last segment is cut off
    /// (it was never acknowledged: its fsync had not returned); any other damage is
    /// [`JournalError::Corrupt`].
    pub fn open_with_storage(
        storage: Arc<dyn Storage>,
        config: JournalConfig,
    ) -> Result<(Journal, Recovery), JournalError> {
        let names = storage
            .list()
            .map_err(|source| JournalError::io("list the journal directory", source))?;
        let mut bases: Vec<u64> = names
            .iter()
            .filter_map(|n| segment::parse_name(n))
            .collect();
        bases.sort_unstable();

        let mut cursors = BTreeMap::new();
        for name in names.iter().filter_map(|n| cursor::parse_name(n)) {
            let file = cursor::file_name(name);
            let data = storage
                .read(&file)
                .map_err(|source| JournalError::io(format!("read {file}"), source))?;
            let seq = cursor::decode(&data).ok_or(JournalError::CursorCorrupt(file))?;
            cursors.insert(name.to_owned(), seq);
        }

        let mut recovery = Recovery::default();
        if bases.is_empty() {
            let name = segment::file_name(0);
            storage
                .create(&name)
                .map_err(|source| JournalError::io(format!("create segment {name}"), source))?;
            storage
                .sync_dir()
                .map_err(|source| JournalError::io("fsync the journal directory", source))?;
            bases.push(0);
        }
        recovery.segments = bases.len();
        recovery.first_seq = bases[0];

        let mut next_seq = bases[0];
        let mut last_len = 0u64;
        for (index, &base) in bases.iter().enumerate() {
            let name = segment::file_name(base);
            if base != next_seq {
                return Err(JournalError::Corrupt {
                    segment: name,
                    offset: 0,
                    reason: format!(
                        "the segment starts at sequence {base} but the one before it ends at {next_seq} \
                         (a segment is missing or damaged)"
                    ),
                });
            }
            let is_last = index + 1 == bases.len();
            let scanned = scan(storage.as_ref(), &name, is_last, config.max_record_bytes)?;
            if scanned.valid_len < scanned.file_len {
                let cut = scanned.file_len - scanned.valid_len;
                tracing::warn!(
                    segment = %name,
                    offset = scanned.valid_len,
                    bytes = cut,
                    "journal: cutting a torn last record (it was never acknowledged)"
                );
                storage
                    .truncate(&name, scanned.valid_len)
                    .map_err(|source| {
                        JournalError::io(format!("truncate segment {name}"), source)
                    })?;
                recovery.truncated_bytes = cut;
            }
            next_seq = base + scanned.records;
            recovery.records += scanned.records;
            last_len = scanned.valid_len;
        }
        recovery.next_seq = next_seq;
        recovery.last_seq = (next_seq > recovery.first_seq).then(|| next_seq - 1);
        clamp_cursors(storage.as_ref(), &mut cursors, next_seq)?;

        let active_base = *bases.last().unwrap_or(&0);
        let active = segment::file_name(active_base);
        let file = storage
            .open_append(&active)
            .map_err(|source| JournalError::io(format!("open segment {active}"), source))?;
        // What opening finds is taken as synced: a new process cannot tell
        // bytes a failed fsync left in the page cache from synced ones.
        let synced = SyncedEnd {
            segment: active_base,
            len: last_len,
            next_seq,
        };
        let writer = Writer::new(file, synced);
        let shared = Arc::new(Shared {
            storage,
            config,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            segments: Mutex::new(bases),
            committed: AtomicU64::new(next_seq),
            cursors: Mutex::new(cursors),
            metrics: Metrics::default(),
            observer: OnceLock::new(),
        });
        let committer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("journal-commit".to_owned())
                .spawn(move || commit::run(shared, writer))
                .map_err(|source| JournalError::io("start the committer thread", source))?
        };
        Ok((
            Journal {
                shared,
                committer: Some(committer),
            },
            recovery,
        ))
    }

    /// Appends records and returns their sequence numbers once they are written
    /// and fsynced. Blocks; concurrent callers share one fsync (group commit).
    pub fn append(&self, records: Vec<Vec<u8>>) -> Result<Range<u64>, JournalError> {
        self.append_async(records).wait()
    }

    /// Queues records for the next group commit and returns at once; the
    /// [`Ticket`] resolves when they are durable. The records of one call get
    /// consecutive sequence numbers, and calls are committed in queue order.
    pub fn append_async(&self, records: Vec<Vec<u8>>) -> Ticket {
        self.enqueue(records, None)
    }

    /// Like [`Journal::append_async`], and once the records are durable the
    /// observer set by [`Journal::observe`] gets `attachment` with their
    /// sequence numbers.
    pub fn append_attached(&self, records: Vec<Vec<u8>>, attachment: Attachment) -> Ticket {
        self.enqueue(records, Some(attachment))
    }

    /// Sets the commit observer; there is at most one, for the journal's life.
    /// Returns `false` if one was already set.
    pub fn observe(&self, observer: Observer) -> bool {
        self.shared.observer.set(observer).is_ok()
    }

    fn enqueue(&self, records: Vec<Vec<u8>>, attachment: Option<Attachment>) -> Ticket {
        let max = self.shared.config.max_record_bytes;
        let mut bytes = 0;
        for record in &records {
            if record.is_empty() || record.len() > max as usize {
                return Ticket::ready(Err(JournalError::RecordSize {
                    len: record.len(),
                    max,
                }));
            }
            bytes += segment::framed_len(record.len());
        }
        let mut queue = self.shared.lock_queue();
        if let Some(poison) = &queue.poisoned {
            return Ticket::ready(Err(JournalError::Poisoned {
                cause: poison.cause.clone(),
            }));
        }
        if records.is_empty() {
            let next = self.shared.committed.load(Ordering::Acquire);
            return Ticket::ready(Ok(next..next));
        }
        let (reply, rx) = flume::bounded(1);
        queue.requests.push_back(Request {
            records,
            bytes,
            reply,
            attachment,
        });
        queue.bytes += bytes;
        drop(queue);
        self.shared.wake.notify_one();
        Ticket { reply: rx }
    }

    /// Whether a write or fsync has failed; a poisoned journal must be reopened.
    pub fn is_poisoned(&self) -> bool {
        self.shared.lock_queue().poisoned.is_some()
    }

    /// Where the last committed batch ended, once the journal is poisoned:
    /// what recovery may keep.
    fn synced_end_if_poisoned(&self) -> Option<SyncedEnd> {
        let queue = self.shared.lock_queue();
        queue.poisoned.as_ref().map(|poison| poison.synced)
    }

    /// One past the last durable record.
    pub fn next_seq(&self) -> u64 {
        self.shared.committed.load(Ordering::Acquire)
    }

    /// Sequence number of the oldest record still on disk.
    pub fn first_seq(&self) -> u64 {
        self.shared.lock_segments().first().copied().unwrap_or(0)
    }

    /// An upper bound of the bytes the journal holds on disk: its segments
    /// times the segment size. What grows when a sink falls behind.
    pub fn disk_bytes(&self) -> u64 {
        let segments = self.shared.lock_segments().len() as u64;
        segments.saturating_mul(self.shared.config.segment_bytes)
    }

    /// Reads committed records from `seq` on, across segments. The reader stops at
    /// the records committed when it was created.
    pub fn read_from(&self, seq: u64) -> Reader {
        Reader {
            shared: Arc::clone(&self.shared),
            next: seq,
            end: self.shared.committed.load(Ordering::Acquire),
            segment: None,
            resume: None,
            done: false,
        }
    }

    /// Like [`Journal::read_from`] the bookmark's record, but starting where
    /// it lies in its segment rather than scanning the segment up to it. A
    /// bookmark whose segment was retired reads as `read_from` would.
    pub fn read_from_bookmark(&self, bookmark: Bookmark) -> Reader {
        Reader {
            resume: Some(bookmark),
            ..self.read_from(bookmark.seq)
        }
    }

    /// Durably records that sink `name` has taken every record below `seq`.
    pub fn set_cursor(&self, name: &str, seq: u64) -> Result<(), JournalError> {
        if !cursor::valid_name(name) {
            return Err(JournalError::CursorName(name.to_owned()));
        }
        let next = self.next_seq();
        if seq > next {
            // A cursor past the committed end could let `retire` delete a segment
            // whose records are still being committed.
            return Err(JournalError::OutOfRange {
                seq,
                first: self.first_seq(),
                next,
            });
        }
        let mut cursors = self.shared.lock_cursors();
        let file = cursor::file_name(name);
        self.shared
            .storage
            .write_atomic(&file, &cursor::encode(seq))
            .map_err(|source| JournalError::io(format!("write {file}"), source))?;
        cursors.insert(name.to_owned(), seq);
        Ok(())
    }

    /// The position of sink `name`, if it has one.
    pub fn cursor(&self, name: &str) -> Option<u64> {
        self.shared.lock_cursors().get(name).copied()
    }

    /// Deletes every segment all of whose records are below the lowest cursor,
    /// and returns how many. The active segment is never deleted, and nothing is
    /// deleted while no cursor exists (no sink has said what it has taken).
    pub fn retire(&self) -> Result<usize, JournalError> {
        self.retire_keeping(0)
    }

    /// Like [`Journal::retire`], but keeps the newest segments that together
    /// hold at least `keep_bytes`: readers without a cursor (an integrator
    /// pulling the records at its own pace) find a window of recent history
    /// even when every sink is up to date.
    pub fn retire_keeping(&self, keep_bytes: u64) -> Result<usize, JournalError> {
        let Some(min) = self.shared.lock_cursors().values().min().copied() else {
            return Ok(0);
        };
        let min = min.min(self.next_seq());
        let bases = self.shared.lock_segments().clone();
        // Segment i holds records bases[i]..bases[i + 1].
        let passed = bases.windows(2).take_while(|w| w[1] <= min).count();
        let count = passed.min(self.oldest_kept(&bases, keep_bytes)?);
        let retired: Vec<u64> = {
            let mut segments = self.shared.lock_segments();
            // Sizes were read without the lock, which the commit path takes
            // to roll a segment; only another retire can have changed the
            // front of the list since, and then this one leaves it alone.
            if !segments.starts_with(&bases[..count]) {
                return Ok(0);
            }
            segments.drain(..count).collect()
        };
        for &base in &retired {
            let name = segment::file_name(base);
            self.shared
                .storage
                .remove(&name)
                .map_err(|source| JournalError::io(format!("delete segment {name}"), source))?;
        }
        if !retired.is_empty() {
            self.shared
                .storage
                .sync_dir()
                .map_err(|source| JournalError::io("fsync the journal directory", source))?;
        }
        Ok(retired.len())
    }

    /// The index in `bases` of the oldest segment among the newest ones
    /// that together hold at least `keep_bytes` (0 when all of them hold
    /// less).
    fn oldest_kept(&self, bases: &[u64], keep_bytes: u64) -> Result<usize, JournalError> {
        let mut held = 0u64;
        for (index, &base) in bases.iter().enumerate().rev() {
            if held >= keep_bytes {
                return Ok(index + 1);
            }
            let name = segment::file_name(base);
            let len = self
                .shared
                .storage
                .open_read(&name)
                .and_then(|mut file| file.size())
                .map_err(|source| JournalError::io(format!("read segment {name}"), source))?;
            held = held.saturating_add(len);
        }
        Ok(0)
    }

    /// Counters since the journal was opened.
    pub fn metrics(&self) -> MetricsSnapshot {
        let m = &self.shared.metrics;
        MetricsSnapshot {
            records: m.records.load(Ordering::Relaxed),
            bytes: m.bytes.load(Ordering::Relaxed),
            commits: m.commits.load(Ordering::Relaxed),
            fsyncs: m.fsyncs.load(Ordering::Relaxed),
            fsync_max_us: m.fsync_max_us.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.shared.lock_queue().shutdown = true;
        self.shared.wake.notify_all();
        if let Some(committer) = self.committer.take() {
            // A panicked committer has nothing left to clean up.
            let _ = committer.join();
        }
    }
}

/// A cursor past the end of the recovered journal (its records were cut as a
/// torn tail after the sink had taken them) would make the sink skip the
/// records that reuse those sequence numbers: bring it back to the end.
fn clamp_cursors(
    storage: &dyn Storage,
    cursors: &mut BTreeMap<String, u64>,
    next_seq: u64,
) -> Result<(), JournalError> {
    for (name, seq) in cursors.iter_mut().filter(|(_, seq)| **seq > next_seq) {
        tracing::warn!(cursor = %name, was = *seq, now = next_seq, "journal: cursor past the recovered end moved back");
        let file = cursor::file_name(name);
        storage
            .write_atomic(&file, &cursor::encode(next_seq))
            .map_err(|source| JournalError::io(format!("write {file}"), source))?;
        *seq = next_seq;
    }
    Ok(())
}

/// What [`scan`] found in a segment.
struct Scanned {
    records: u64,
    /// Length of the valid prefix.
    valid_len: u64,
    file_len: u64,
}

/// Validates a segment. Only the last segment may end in an invalid record,
/// and only if that record reaches the end of the file (a write cut short) or
/// is followed by nothing but zeroes (the file grew but its data never arrived).
fn scan(
    storage: &dyn Storage,
    name: &str,
    is_last: bool,
    max_record_bytes: u32,
) -> Result<Scanned, JournalError> {
    let read_error = |source| JournalError::io(format!("read segment {name}"), source);
    let mut reader = SegmentReader::open(storage, name).map_err(read_error)?;
    let mut records = 0;
    while reader.offset() < reader.file_len() {
        let offset = reader.offset();
        let Err(invalid) = reader.next_record(max_record_bytes).map_err(read_error)? else {
            records += 1;
            continue;
        };
        if is_last && reader.is_torn(invalid).map_err(read_error)? {
            return Ok(Scanned {
                records,
                valid_len: offset,
                file_len: reader.file_len(),
            });
        }
        return Err(JournalError::Corrupt {
            segment: name.to_owned(),
            offset,
            reason: invalid.describe(),
        });
    }
    Ok(Scanned {
        records,
        valid_len: reader.file_len(),
        file_len: reader.file_len(),
    })
}

/// An iterator over committed records: `(sequence number, payload)`.
/// After the first error it yields nothing more.
pub struct Reader {
    shared: Arc<Shared>,
    next: u64,
    /// One past the last record to yield: the committed end when created.
    end: u64,
    /// The segment being read, through a buffer of at most a chunk or one record.
    segment: Option<OpenSegment>,
    /// Where the first record lies, when a reader was there before.
    resume: Option<Bookmark>,
    done: bool,
}

/// Where a record lies on disk, to read from it again without scanning its
/// segment from the start: a segment holds up to `segment_bytes` (64 MiB),
/// which a reader that pages through the journal would otherwise scan, and
/// checksum, for every page. Only a [`Reader`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bookmark {
    seq: u64,
    segment: u64,
    offset: u64,
}

impl Bookmark {
    /// The sequence number of the record it marks.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

struct OpenSegment {
    name: String,
    /// The segment's base: the sequence number of its first record.
    base: u64,
    records: SegmentReader,
    /// Sequence number of the record at the reader's offset.
    seq: u64,
    /// Base of the next segment: this one holds no record at or past it.
    limit: u64,
}

impl Reader {
    /// Where the next record lies, once this reader has read from its
    /// segment: also at the end of what it could read, where records
    /// committed later will be.
    pub fn bookmark(&self) -> Option<Bookmark> {
        let current = self.segment.as_ref()?;
        let usable = current.seq == self.next && current.seq < current.limit;
        usable.then(|| Bookmark {
            seq: self.next,
            segment: current.base,
            offset: current.records.offset(),
        })
    }

    fn open(&mut self, seq: u64) -> Result<OpenSegment, JournalError> {
        let (base, limit) = {
            let segments = self.shared.lock_segments();
            let index = segments.partition_point(|&base| base <= seq);
            if index == 0 {
                return Err(JournalError::OutOfRange {
                    seq,
                    first: segments.first().copied().unwrap_or(0),
                    next: self.end,
                });
            }
            (
                segments[index - 1],
                segments.get(index).copied().unwrap_or(u64::MAX),
            )
        };
        let name = segment::file_name(base);
        let mut records = SegmentReader::open(self.shared.storage.as_ref(), &name)
            .map_err(|source| JournalError::io(format!("read segment {name}"), source))?;
        let resume = self.resume.take();
        let seq = match resume {
            Some(mark) if mark.seq == seq && mark.segment == base && records.seek(mark.offset) => {
                mark.seq
            }
            _ => base,
        };
        Ok(OpenSegment {
            name,
            base,
            records,
            seq,
            limit,
        })
    }

    fn step(&mut self) -> Result<Option<(u64, Vec<u8>)>, JournalError> {
        let max = self.shared.config.max_record_bytes;
        loop {
            if self.next >= self.end {
                return Ok(None);
            }
            let reopen = !matches!(&self.segment, Some(current) if current.seq < current.limit);
            if reopen {
                self.segment = Some(self.open(self.next)?);
            }
            let Some(current) = self.segment.as_mut() else {
                return Ok(None);
            };
            let offset = current.records.offset();
            let payload = current
                .records
                .next_record(max)
                .map_err(|source| {
                    JournalError::io(format!("read segment {}", current.name), source)
                })?
                .map_err(|invalid| JournalError::Corrupt {
                    segment: current.name.clone(),
                    offset,
                    reason: invalid.describe(),
                })?;
            let seq = current.seq;
            current.seq += 1;
            if seq == self.next {
                self.next += 1;
                return Ok(Some((seq, payload.to_vec())));
            }
            // Records before the starting point of this reader: skip.
        }
    }
}

impl Iterator for Reader {
    type Item = Result<(u64, Vec<u8>), JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(record)) => Some(Ok(record)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}
