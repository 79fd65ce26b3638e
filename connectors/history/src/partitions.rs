//! One keyspace per UTC day: the unit of retention.
//!
//! An LSM tree deletes a key by writing a tombstone, and a tombstone costs as
//! much as the record it hides until compaction drops both. Expiring 90 days
//! of a large fleet one key at a time would write as much as it deletes.
//! Deleting a whole keyspace removes its files instead, so retention costs
//! the same for ten records as for ten million.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use fjall::config::{CompressionPolicy, FilterPolicy};
use fjall::{CompressionType, Database, Keyspace, KeyspaceCreateOptions};

use super::HistoryError;

const PREFIX: &str = "records-";

/// The day keyspaces that exist, by day number (days since the Unix epoch).
pub(crate) struct Partitions {
    days: RwLock<BTreeMap<i64, Keyspace>>,
}

/// How a day's records are stored: compressed at every level (a device's
/// records sit side by side and repeat each other; by default fjall leaves
/// the first two levels, where a day spends its first hours, uncompressed)
/// and without Bloom filters, which serve reads by key: records are only
/// read by range. Applies to days created from now on; a day keeps the
/// options it was created with.
fn day_options() -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default()
        .data_block_compression_policy(CompressionPolicy::all(CompressionType::Lz4))
        .filter_policy(FilterPolicy::disabled())
}

fn name(day: i64) -> String {
    format!("{PREFIX}{day}")
}

fn day_of_name(name: &str) -> Option<i64> {
    name.strip_prefix(PREFIX)?.parse().ok()
}

impl Partitions {
    /// Finds the day keyspaces already in `db`.
    pub(crate) fn open(db: &Database) -> Result<Self, HistoryError> {
        let mut days = BTreeMap::new();
        for name in db.list_keyspace_names() {
            let Some(day) = day_of_name(&name) else {
                continue;
            };
            let keyspace = db
                .keyspace(&name, day_options)
                .map_err(HistoryError::engine("open a day partition"))?;
            days.insert(day, keyspace);
        }
        Ok(Partitions {
            days: RwLock::new(days),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.read().len()
    }

    /// The keyspace of `day`, created if it is the day's first record.
    pub(crate) fn get_or_create(&self, db: &Database, day: i64) -> Result<Keyspace, HistoryError> {
        if let Some(keyspace) = self.read().get(&day) {
            return Ok(keyspace.clone());
        }
        let mut days = self.days.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(keyspace) = days.get(&day) {
            return Ok(keyspace.clone());
        }
        let keyspace = db
            .keyspace(&name(day), day_options)
            .map_err(HistoryError::engine("create a day partition"))?;
        tracing::debug!(day, "history partition created");
        days.insert(day, keyspace.clone());
        Ok(keyspace)
    }

    /// The keyspaces of the days `first..=last` that exist, oldest first.
    pub(crate) fn between(&self, first: i64, last: i64) -> Vec<(i64, Keyspace)> {
        if first > last {
            return Vec::new();
        }
        self.read()
            .range(first..=last)
            .map(|(day, keyspace)| (*day, keyspace.clone()))
            .collect()
    }

    /// Deletes the keyspaces of every day before `day`; returns the days
    /// deleted and about how many records they held.
    pub(crate) fn drop_before(&self, db: &Database, day: i64) -> Result<(u64, u64), HistoryError> {
        let mut days = self.days.write().unwrap_or_else(PoisonError::into_inner);
        let expired: Vec<i64> = days.range(..day).map(|(day, _)| *day).collect();
        let mut records = 0u64;
        for expired_day in &expired {
            if let Some(keyspace) = days.remove(expired_day) {
                records += keyspace.approximate_len() as u64;
                db.delete_keyspace(keyspace)
                    .map_err(HistoryError::engine("delete a day partition"))?;
            }
        }
        Ok((expired.len() as u64, records))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<i64, Keyspace>> {
        // The map is never left half-updated, so a panic elsewhere does not spoil it.
        self.days.read().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip() {
        for day in [0, 20_418, -3] {
            assert_eq!(day_of_name(&name(day)), Some(day));
        }
        assert_eq!(day_of_name("latest"), None);
        assert_eq!(day_of_name("records-x"), None);
    }
}
