//! Group commit: one thread writes everything that is waiting, fsyncs once, then
//! wakes every appender of the batch.
//!
//! An fsync costs ~3–4 ms on the development machine, so one fsync per append
//! would cap ingest at a few hundred records per second; sharing it between all
//! appenders that arrived meanwhile is what makes fsync-before-ack affordable.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::segment;
use super::storage::AppendFile;
use super::{JournalError, Shared};

/// One `append` call waiting for its commit.
pub(crate) struct Request {
    pub(crate) records: Vec<Vec<u8>>,
    /// Framed size, to bound the bytes of a batch.
    pub(crate) bytes: u64,
    pub(crate) reply: flume::Sender<Result<Range<u64>, JournalError>>,
    /// Handed to the commit observer with the request's sequence numbers.
    pub(crate) attachment: Option<super::Attachment>,
}

/// State shared between appenders and the committer, under one mutex.
#[derive(Default)]
pub(crate) struct Queue {
    pub(crate) requests: VecDeque<Request>,
    /// Framed bytes of all queued requests.
    pub(crate) bytes: u64,
    /// Set after the first failed write or fsync; never cleared (see `Journal`).
    pub(crate) poisoned: Option<Poison>,
    /// Set by `Journal::drop`: the committer finishes the queue and exits.
    pub(crate) shutdown: bool,
}

/// Why the journal stopped, and what of it is known to be on disk.
#[derive(Debug, Clone)]
pub(crate) struct Poison {
    /// The failed write or fsync, repeated to every later appender.
    pub(crate) cause: String,
    /// Recovery cuts the journal back to here before appending again.
    pub(crate) synced: SyncedEnd,
}

/// The end of the last committed batch: every byte before it was written and
/// fsynced, every record before it acknowledged. What lies after it after a
/// failure may exist only in the page cache.
///
/// It moves per committed batch, not per fsync: a batch that synced one
/// segment and failed in the next is cut whole, so an append that returned
/// an error leaves no record behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyncedEnd {
    /// Base sequence number of the segment it is in.
    pub(crate) segment: u64,
    /// The segment's synced length.
    pub(crate) len: u64,
    /// The committed end: the sequence number of the next record.
    pub(crate) next_seq: u64,
}

/// The committer's end of the active segment.
pub(crate) struct Writer {
    file: Box<dyn AppendFile>,
    /// Base sequence number of the active segment.
    segment: u64,
    /// Bytes in the active segment.
    segment_len: u64,
    /// Sequence number of the next record written.
    next_seq: u64,
    /// Where recovery cuts back to if a write or fsync fails.
    synced: SyncedEnd,
}

impl Writer {
    /// The writer at the end of a segment whose content is durable.
    pub(crate) fn new(file: Box<dyn AppendFile>, synced: SyncedEnd) -> Self {
        Writer {
            file,
            segment: synced.segment,
            segment_len: synced.len,
            next_seq: synced.next_seq,
            synced,
        }
    }

    fn position(&self) -> SyncedEnd {
        SyncedEnd {
            segment: self.segment,
            len: self.segment_len,
            next_seq: self.next_seq,
        }
    }
}

/// The committer thread's loop.
pub(crate) fn run(shared: Arc<Shared>, mut writer: Writer) {
    while let Some((batch, poisoned)) = next_batch(&shared) {
        if let Some(cause) = poisoned {
            reply_poisoned(batch, &cause);
            continue;
        }
        match commit(&shared, &mut writer, &batch) {
            Ok(ranges) => {
                for (request, range) in batch.into_iter().zip(ranges) {
                    // The appender may have given up waiting; its records are durable anyway.
                    let _ = request.reply.send(Ok(range));
                }
            }
            Err(error) => {
                // fsyncgate: after a failed fsync the kernel may have dropped the dirty
                // pages and a retry could "succeed" without writing them. Nothing
                // written from now on can be trusted, so stop acknowledging for good.
                let cause = error.to_string();
                tracing::error!(%error, "journal commit failed; the journal is poisoned and must be reopened");
                let rest = {
                    let mut queue = shared.lock_queue();
                    queue.poisoned = Some(Poison {
                        cause: cause.clone(),
                        synced: writer.synced,
                    });
                    queue.bytes = 0;
                    std::mem::take(&mut queue.requests)
                };
                reply_poisoned(batch, &cause);
                reply_poisoned(rest.into_iter().collect(), &cause);
            }
        }
    }
}

/// Tells the observer, in sequence order, what this batch committed: readers
/// that follow the journal live get every record once and in order, without
/// reading it back from disk.
fn announce(shared: &Shared, batch: &[Request], ranges: &[Range<u64>]) {
    let Some(observer) = shared.observer.get() else {
        return;
    };
    for (request, range) in batch.iter().zip(ranges) {
        if let Some(attachment) = &request.attachment {
            observer(range.clone(), attachment, request.bytes);
        }
    }
}

fn reply_poisoned(batch: Vec<Request>, cause: &str) {
    for request in batch {
        let _ = request.reply.send(Err(JournalError::Poisoned {
            cause: cause.to_owned(),
        }));
    }
}

/// Waits for requests, lets more gather for up to `commit_ms`, and takes a batch
/// of at most `max_batch_bytes` (always at least one request). `None` on shutdown.
fn next_batch(shared: &Shared) -> Option<(Vec<Request>, Option<String>)> {
    let mut queue = shared.lock_queue();
    while queue.requests.is_empty() {
        if queue.shutdown {
            return None;
        }
        queue = shared
            .wake
            .wait(queue)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }
    let deadline = Instant::now() + Duration::from_millis(shared.config.commit_ms);
    while queue.bytes < shared.config.max_batch_bytes && !queue.shutdown {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        queue = shared
            .wake
            .wait_timeout(queue, deadline - now)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0;
    }
    let mut batch = Vec::new();
    let mut bytes = 0;
    while let Some(request) = queue.requests.front() {
        if !batch.is_empty() && bytes + request.bytes > shared.config.max_batch_bytes {
            break;
        }
        bytes += request.bytes;
        if let Some(request) = queue.requests.pop_front() {
            batch.push(request);
        }
    }
    queue.bytes -= bytes;
    let poisoned = queue.poisoned.as_ref().map(|poison| poison.cause.clone());
    Some((batch, poisoned))
}

/// Writes a batch and makes it durable; returns each request's sequence numbers.
fn commit(
    shared: &Shared,
    writer: &mut Writer,
    batch: &[Request],
) -> Result<Vec<Range<u64>>, JournalError> {
    let mut buf = Vec::new();
    let mut ranges = Vec::with_capacity(batch.len());
    let mut records = 0u64;
    let mut bytes = 0u64;
    for request in batch {
        let start = writer.next_seq;
        for record in &request.records {
            let framed = segment::framed_len(record.len());
            if writer.segment_len + buf.len() as u64 > 0
                && writer.segment_len + buf.len() as u64 + framed > shared.config.segment_bytes
            {
                bytes += buf.len() as u64;
                roll(shared, writer, &mut buf)?;
            }
            segment::encode(record, &mut buf);
            writer.next_seq += 1;
            records += 1;
        }
        ranges.push(start..writer.next_seq);
    }
    bytes += buf.len() as u64;
    write_and_sync(shared, writer, &buf)?;
    // Before the committed end moves: it must never pass what recovery keeps.
    writer.synced = writer.position();
    // Observers hear of a batch before readers can see it committed, so a
    // reader that finds the committed end past its position and nothing
    // announced knows the announcement was lost, not late.
    announce(shared, batch, &ranges);
    shared.committed.store(writer.next_seq, Ordering::Release);
    let metrics = &shared.metrics;
    metrics.records.fetch_add(records, Ordering::Relaxed);
    metrics.bytes.fetch_add(bytes, Ordering::Relaxed);
    metrics.commits.fetch_add(1, Ordering::Relaxed);
    Ok(ranges)
}

fn write_and_sync(shared: &Shared, writer: &mut Writer, buf: &[u8]) -> Result<(), JournalError> {
    writer
        .file
        .write_all(buf)
        .map_err(|source| JournalError::io("write to the active segment", source))?;
    writer.segment_len += buf.len() as u64;
    let started = Instant::now();
    writer
        .file
        .sync()
        .map_err(|source| JournalError::io("fsync the active segment", source))?;
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    shared.metrics.fsyncs.fetch_add(1, Ordering::Relaxed);
    shared
        .metrics
        .fsync_max_us
        .fetch_max(micros, Ordering::Relaxed);
    Ok(())
}

/// Makes the active segment durable and starts a new one at `writer.next_seq`.
fn roll(shared: &Shared, writer: &mut Writer, buf: &mut Vec<u8>) -> Result<(), JournalError> {
    // The old segment is complete and durable before the new one exists, so only
    // the last segment can ever hold a torn record.
    write_and_sync(shared, writer, buf)?;
    buf.clear();
    let name = segment::file_name(writer.next_seq);
    writer.file = shared
        .storage
        .create(&name)
        .map_err(|source| JournalError::io(format!("create segment {name}"), source))?;
    shared
        .storage
        .sync_dir()
        .map_err(|source| JournalError::io("fsync the journal directory", source))?;
    writer.segment = writer.next_seq;
    writer.segment_len = 0;
    if writer.synced.next_seq == writer.next_seq {
        // Nothing of this batch precedes the roll, so the new, empty segment
        // ends the same records. Moving there before `retire` can see the new
        // segment keeps the synced end out of the segments it may delete.
        writer.synced = writer.position();
    }
    shared.lock_segments().push(writer.next_seq);
    Ok(())
}
