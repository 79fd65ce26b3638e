//! A journal that can be reopened in place after it was poisoned.
//!
//! A failed write or fsync poisons a [`Journal`] for good (see the crate
//! docs): the only safe way on is to drop it and recover from what really is
//! on disk. [`JournalHandle`] owns that step so that the node keeps one
//! handle for its whole life while the journal behind it is replaced: when
//! the disk was full, recovery succeeds once space is back and appends are
//! acknowledged again.
//!
//! What is on disk is not what a read returns. Linux marks the pages of a
//! failed writeback clean: reads keep returning the bytes until the kernel
//! evicts them, no later fsync writes them, and a power cut leaves a hole
//! where they were. Reopening on top of them would put acknowledged records
//! behind that hole, and the journal would refuse to open after the next
//! crash. So recovery first cuts the journal back to the end of the last
//! committed batch, which the committer knows was synced, and makes the cut
//! durable.

use std::sync::{Arc, Mutex, RwLock};

use super::commit::SyncedEnd;
use super::segment;
use super::storage::Storage;
use super::{Journal, JournalConfig, JournalError, Observer, Recovery};

/// Makes the observer for each journal opened by the handle.
pub type ObserverFactory = Box<dyn Fn() -> Observer + Send + Sync>;

/// The node's journal, replaced by [`JournalHandle::recover`] after a failure.
pub struct JournalHandle {
    storage: Arc<dyn Storage>,
    config: JournalConfig,
    observer: Option<ObserverFactory>,
    current: RwLock<Arc<Journal>>,
    /// Serialises recoveries: two at once would open the directory twice.
    recovering: Mutex<()>,
}

impl std::fmt::Debug for JournalHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalHandle")
            .field("journal", &self.current())
            .finish_non_exhaustive()
    }
}

impl JournalHandle {
    /// Opens the journal on `storage`, with `observer` installed on it and on
    /// every journal a recovery opens later.
    pub fn open(
        storage: Arc<dyn Storage>,
        config: JournalConfig,
        observer: Option<ObserverFactory>,
    ) -> Result<(JournalHandle, Recovery), JournalError> {
        let (journal, recovery) = open(&storage, &config, observer.as_ref())?;
        let handle = JournalHandle {
            storage,
            config,
            observer,
            current: RwLock::new(journal),
            recovering: Mutex::new(()),
        };
        Ok((handle, recovery))
    }

    /// The journal to append to and read from now.
    pub fn current(&self) -> Arc<Journal> {
        let guard = self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(&guard)
    }

    /// If the current journal is poisoned, cuts off what it wrote after its
    /// last committed batch, opens the directory again and swaps the
    /// recovered journal in. `Ok(None)` when there was nothing to do.
    /// On error the poisoned journal stays and the caller tries again later
    /// (a full disk, say, may have room by then).
    pub fn recover(&self) -> Result<Option<Recovery>, JournalError> {
        let _one_at_a_time = self
            .recovering
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(synced) = self.current().synced_end_if_poisoned() else {
            return Ok(None);
        };
        let cut = cut_back(self.storage.as_ref(), synced)?;
        let (journal, mut recovery) = open(&self.storage, &self.config, self.observer.as_ref())?;
        recovery.truncated_bytes += cut;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = journal;
        tracing::warn!(
            records = recovery.records,
            next_seq = recovery.next_seq,
            truncated_bytes = recovery.truncated_bytes,
            "journal reopened after a failure; acknowledging again"
        );
        Ok(Some(recovery))
    }
}

/// Cuts the journal back to `synced` and makes the cut durable; returns the
/// bytes cut. Idempotent, so a recovery that failed half-way can run again.
///
/// The cut is in place rather than a roll to a new segment starting at
/// `synced.next_seq`: a roll would leave the unsynced bytes inside a segment
/// that is no longer the last, where opening takes them for corruption, so
/// they would have to be cut anyway; once they are, the segment can go on.
fn cut_back(storage: &dyn Storage, synced: SyncedEnd) -> Result<u64, JournalError> {
    let mut cut = 0;
    // Newest first, so that a crash half-way leaves no gap between segments.
    for base in segments_after(storage, synced.segment)?.into_iter().rev() {
        let name = segment::file_name(base);
        cut += size(storage, &name)?;
        storage
            .remove(&name)
            .map_err(|source| JournalError::io(format!("delete segment {name}"), source))?;
    }
    // The deletions are durable before the cut, or a crash could bring a
    // segment back after a shortened one. This also makes the kept segment's
    // own entry durable, in case its creation's directory fsync failed.
    storage
        .sync_dir()
        .map_err(|source| JournalError::io("fsync the journal directory", source))?;
    let name = segment::file_name(synced.segment);
    let len = size(storage, &name)?;
    if len < synced.len {
        return Err(JournalError::Corrupt {
            segment: name,
            offset: len,
            reason: format!(
                "the segment is shorter than the {} bytes fsynced into it",
                synced.len
            ),
        });
    }
    storage
        .truncate(&name, synced.len)
        .map_err(|source| JournalError::io(format!("truncate segment {name}"), source))?;
    if cut + len > synced.len {
        tracing::warn!(
            segment = %name,
            offset = synced.len,
            bytes = cut + len - synced.len,
            "journal: cutting what was written after the last committed batch (never acknowledged)"
        );
    }
    Ok(cut + len - synced.len)
}

/// Segments on disk after the one with base `base`, oldest first: created
/// by a batch that failed, they hold no committed record. Listed from the
/// directory, not the journal's list, which does not have a segment whose
/// creation failed half-way.
fn segments_after(storage: &dyn Storage, base: u64) -> Result<Vec<u64>, JournalError> {
    let names = storage
        .list()
        .map_err(|source| JournalError::io("list the journal directory", source))?;
    let mut later: Vec<u64> = names
        .iter()
        .filter_map(|name| segment::parse_name(name))
        .filter(|&later| later > base)
        .collect();
    later.sort_unstable();
    Ok(later)
}

fn size(storage: &dyn Storage, name: &str) -> Result<u64, JournalError> {
    storage
        .open_read(name)
        .and_then(|mut file| file.size())
        .map_err(|source| JournalError::io(format!("read segment {name}"), source))
}

fn open(
    storage: &Arc<dyn Storage>,
    config: &JournalConfig,
    observer: Option<&ObserverFactory>,
) -> Result<(Arc<Journal>, Recovery), JournalError> {
    let (journal, recovery) = Journal::open_with_storage(Arc::clone(storage), config.clone())?;
    if let Some(make) = observer {
        journal.observe(make());
    }
    Ok((Arc::new(journal), recovery))
}

impl crate::sink::JournalSource for Arc<JournalHandle> {
    fn journal(&self) -> Arc<Journal> {
        self.current()
    }
}
