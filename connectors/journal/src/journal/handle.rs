//! A journal that can be reopened in place after it was poisoned.
//!
//! A failed write or fsync poisons a [`Journal`] for good (see the crate
//! docs): the only safe way on is to drop it and recover from what really is
//! on disk. [`JournalHandle`] owns that step so that the node keeps one
//! handle for its whole life while the journal behind it is replaced: when
//! the disk was full, recovery succeeds once space is back and appends are
//! acknowledged again.

use std::sync::{Arc, Mutex, RwLock};

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

    /// If the current journal is poisoned, opens the directory again and
    /// swaps the recovered journal in. `Ok(None)` when there was nothing to do.
    /// On error the poisoned journal stays and the caller tries again later
    /// (a full disk, say, may have room by then).
    pub fn recover(&self) -> Result<Option<Recovery>, JournalError> {
        let _one_at_a_time = self
            .recovering
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !self.current().is_poisoned() {
            return Ok(None);
        }
        let (journal, recovery) = open(&self.storage, &self.config, self.observer.as_ref())?;
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
