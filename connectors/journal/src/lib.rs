//! # drover-journal
//!
//! The durable journal every record enters before its tracker is acked, the
//! record format it stores, and the runner of the sinks that drain it:
//!
//! * the journal ([`Journal`], [`JournalHandle`]): the append-only log that
//!   lets the server acknowledge a tracker only once its records are safe on
//!   disk. A tracker deletes a record from its memory when the server acks
//!   it, so an ack given before the data is durable is a promise that a crash
//!   breaks.
//! * [`record`]: the versioned binary form of a message, in the journal and
//!   in the history store.
//! * [`sink`]: consumers of the journal, each with its own durable cursor,
//!   following committed batches live and replaying from disk when behind,
//!   retrying a failed batch with one backoff policy ([`Backoff`]).
//!
//! ## The journal in one page
//!
//! * **Records** are opaque byte strings (1 byte to `max_record_bytes`). Each gets
//!   a global sequence number (u64), implicit from its position.
//! * **Segments**: files named after the sequence number of their first record,
//!   zero-padded (`00000000000000000042.seg`), rolled at `segment_bytes`
//!   (64 MiB by default). A record is framed as `length: u32 LE`,
//!   `CRC-32C(payload): u32 LE`, `payload`.
//! * **Group commit**: [`Journal::append`] blocks until its records are
//!   written *and fsynced*. A single committer thread lets appenders gather for
//!   up to `commit_ms` (2 ms by default) or `max_batch_bytes`, writes them all,
//!   fsyncs once and wakes every one of them: one fsync costs ~3–4 ms on the
//!   development machine, so sharing it is what makes fsync-before-ack fast.
//!   [`Journal::append_async`] returns a [`Ticket`] that can be
//!   awaited from async code (the journal does not depend on tokio).
//! * **Recovery** ([`Journal::open`]) validates every record. Only a torn
//!   last record of the last segment is cut (it was never acknowledged, as its
//!   fsync never returned) and reported in [`Recovery`]. A checksum
//!   failure anywhere else is [`JournalError::Corrupt`]: the journal
//!   refuses to open rather than silently drop acknowledged data (etcd's WAL
//!   behaves the same way).
//! * **fsync errors poison the journal.** After a failed fsync Linux may mark the
//!   dirty pages clean, so a retry can "succeed" without writing anything
//!   ("fsyncgate"). The failing append and every later one return
//!   [`JournalError::Poisoned`]; the owner recovers it with
//!   [`JournalHandle::recover`], which cuts the journal back to the end of its
//!   last committed batch — never trusting bytes whose fsync failed — before
//!   reopening it.
//! * **Readers and cursors**: [`Journal::read_from`] iterates over
//!   committed records across segments. Each sink keeps a durable cursor (the next
//!   sequence number it wants) with [`Journal::set_cursor`];
//!   [`Journal::retire`] deletes segments every cursor has passed.
//! * **Fault injection**: all file access goes through
//!   [`storage::Storage`]. Tests (and other crates with the
//!   `fault-injection` feature) use `FaultyStorage`, which fails fsync with EIO on
//!   demand and simulates power loss by dropping unsynced bytes.
//!
//! ```no_run
//! use drover_journal::{Journal, JournalConfig};
//!
//! let (journal, recovery) = Journal::open("/var/lib/drover/journal", JournalConfig::default())?;
//! println!("recovered {} records, cut {} torn bytes", recovery.records, recovery.truncated_bytes);
//! let seqs = journal.append(vec![b"position".to_vec()])?; // durable: safe to ack now
//! for record in journal.read_from(seqs.start) {
//!     let (seq, payload) = record?;
//!     println!("{seq}: {} bytes", payload.len());
//! }
//! journal.set_cursor("history", seqs.end)?;
//! journal.retire()?;
//! # Ok::<(), drover_journal::JournalError>(())
//! ```
//!
//! Known limits: a corrupted length field in the very last record of the last
//! segment is indistinguishable from a torn write and is cut like one; a
//! process that restarts after a failed fsync, instead of recovering through
//! [`JournalHandle::recover`], cannot tell what that fsync left in the page
//! cache from synced bytes.

mod backoff;
mod journal;
pub mod record;
pub mod sink;

pub use backoff::Backoff;
pub use journal::*;
