//! Durable cursors: how far each sink has taken records from the journal.
//!
//! One small file per sink, `NAME.cursor`, holding the next sequence number the
//! sink wants (u64 LE) and a CRC-32C of those 8 bytes. It is replaced atomically
//! (temp file, fsync, rename, fsync of the directory), so after a crash a sink
//! resumes from a position it really reached — possibly an older one, which
//! only re-delivers records (sinks are idempotent), never skips them.

use super::segment::CRC32C;

/// File name extension of cursor files.
pub(crate) const EXTENSION: &str = ".cursor";

/// Whether `name` may name a cursor: it becomes part of a file name.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) fn file_name(name: &str) -> String {
    format!("{name}{EXTENSION}")
}

/// The cursor name of a file name, or `None` for other files.
pub(crate) fn parse_name(file: &str) -> Option<&str> {
    file.strip_suffix(EXTENSION).filter(|name| valid_name(name))
}

pub(crate) fn encode(seq: u64) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&seq.to_le_bytes());
    let crc = CRC32C.checksum(&out[..8]);
    out[8..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The sequence number in a cursor file, or `None` if it is damaged.
pub(crate) fn decode(data: &[u8]) -> Option<u64> {
    if data.len() != 12 {
        return None;
    }
    let crc = u32::from_le_bytes([data[8], data[9], data[10], data[11]]);
    if CRC32C.checksum(&data[..8]) != crc {
        return None;
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&data[..8]);
    Some(u64::from_le_bytes(seq))
}

impl super::Journal {
    /// Every consumer's cursor: name and position.
    pub fn cursors(&self) -> Vec<(String, u64)> {
        self.shared
            .lock_cursors()
            .iter()
            .map(|(name, seq)| (name.clone(), *seq))
            .collect()
    }

    /// Forgets consumer `name`'s cursor (its file too), so it no longer holds
    /// segments back. `false` if there was none.
    pub fn remove_cursor(&self, name: &str) -> Result<bool, super::JournalError> {
        let mut cursors = self.shared.lock_cursors();
        if cursors.remove(name).is_none() {
            return Ok(false);
        }
        let file = file_name(name);
        let storage = &self.shared.storage;
        storage
            .remove(&file)
            .and_then(|()| storage.sync_dir())
            .map_err(|source| super::JournalError::io(format!("remove {file}"), source))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use crate::journal::storage::FaultyStorage;
    use crate::journal::{Journal, JournalConfig};
    use std::sync::Arc;

    #[test]
    fn a_removed_cursor_no_longer_holds_segments_back_after_a_reopen() {
        let storage = FaultyStorage::new();
        let config = JournalConfig {
            segment_bytes: 64,
            ..JournalConfig::default()
        };
        let open = || {
            Journal::open_with_storage(Arc::new(storage.clone()), config.clone())
                .unwrap()
                .0
        };
        let journal = open();
        for _ in 0..10 {
            journal.append(vec![vec![7u8; 40]]).unwrap();
        }
        journal.set_cursor("history", 0).unwrap();
        journal.set_cursor("influxdb", 10).unwrap();
        assert_eq!(journal.retire().unwrap(), 0, "history holds everything");
        assert!(journal.remove_cursor("history").unwrap());
        assert!(!journal.remove_cursor("history").unwrap());
        drop(journal);
        let journal = open();
        assert_eq!(journal.cursors(), vec![("influxdb".to_owned(), 10)]);
        assert!(journal.retire().unwrap() > 0);
    }
}
