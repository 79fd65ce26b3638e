//! One keyspace per UTC day: the unit of retention, in two tiers.
//!
//! An LSM tree deletes a key by writing a tombstone, and a tombstone costs as
//! much as the record it hides until compaction drops both. Expiring 90 days
//! of a large fleet one key at a time would write as much as it deletes.
//! Deleting a whole keyspace removes its files instead, so retention costs
//! the same for ten records as for ten million.
//!
//! A day is first `records-<day>`, every record (the full tier). Past the
//! retention window its rollup, `rollup-<day>`, is written beside it (the
//! rolled-up tier, same keys, fewer of them), and only once that is
//! durable is the full day deleted. A day with both is read from its full
//! keyspace, so a rollup cut short by a crash shows neither a gap nor a
//! duplicate, and is simply written again by the next run.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use fjall::config::{CompressionPolicy, FilterPolicy};
use fjall::{CompressionType, Database, Keyspace, KeyspaceCreateOptions};

use super::HistoryError;

/// The two tiers a day can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tier {
    Full,
    RolledUp,
}

impl Tier {
    const ALL: [Tier; 2] = [Tier::Full, Tier::RolledUp];

    fn prefix(self) -> &'static str {
        match self {
            Tier::Full => "records-",
            Tier::RolledUp => "rollup-",
        }
    }

    fn name(self, day: i64) -> String {
        format!("{}{day}", self.prefix())
    }

    fn day_of_name(self, name: &str) -> Option<i64> {
        name.strip_prefix(self.prefix())?.parse().ok()
    }
}

/// The day keyspaces that exist, by tier and day number (days since the
/// Unix epoch).
pub(crate) struct Partitions {
    tiers: RwLock<Tiers>,
    memtable_bytes: u64,
}

#[derive(Default)]
struct Tiers {
    full: BTreeMap<i64, Keyspace>,
    rolled_up: BTreeMap<i64, Keyspace>,
}

impl Tiers {
    fn of(&mut self, tier: Tier) -> &mut BTreeMap<i64, Keyspace> {
        match tier {
            Tier::Full => &mut self.full,
            Tier::RolledUp => &mut self.rolled_up,
        }
    }
}

/// How a day's records are stored: compressed at every level (a device's
/// records sit side by side and repeat each other; by default fjall leaves
/// the first two levels, where a day spends its first hours, uncompressed)
/// and without Bloom filters, which serve reads by key: records are only
/// read by range. Applies to days created from now on; a day keeps the
/// options it was created with.
fn day_options(memtable_bytes: u64) -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default()
        .data_block_compression_policy(CompressionPolicy::all(CompressionType::Lz4))
        .filter_policy(FilterPolicy::disabled())
        .max_memtable_size(memtable_bytes.max(MIN_MEMTABLE_BYTES))
}

/// Smaller memtables only make more, smaller tables to compact.
const MIN_MEMTABLE_BYTES: u64 = 1024 * 1024;

impl Partitions {
    /// Finds the day keyspaces already in `db`.
    pub(crate) fn open(db: &Database, memtable_bytes: u64) -> Result<Self, HistoryError> {
        let mut tiers = Tiers::default();
        for name in db.list_keyspace_names() {
            let Some((tier, day)) = Tier::ALL
                .into_iter()
                .find_map(|tier| Some((tier, tier.day_of_name(&name)?)))
            else {
                continue;
            };
            let keyspace = db
                .keyspace(&name, || day_options(memtable_bytes))
                .map_err(HistoryError::engine("open a day partition"))?;
            tiers.of(tier).insert(day, keyspace);
        }
        Ok(Partitions {
            tiers: RwLock::new(tiers),
            memtable_bytes,
        })
    }

    /// Days held at full resolution.
    pub(crate) fn len(&self) -> usize {
        self.read().full.len()
    }

    /// Where a record of `day` is written: the day's rollup once one was
    /// started (a late record of a day past retention is kept whole there,
    /// never in a full day about to be deleted), else the full day, created
    /// with its first record. Called under the store's writer lock, as
    /// [`Partitions::start_rollup`] is.
    pub(crate) fn for_writing(&self, db: &Database, day: i64) -> Result<Keyspace, HistoryError> {
        {
            let tiers = self.read();
            if let Some(keyspace) = tiers.rolled_up.get(&day).or_else(|| tiers.full.get(&day)) {
                return Ok(keyspace.clone());
            }
        }
        self.create(db, Tier::Full, day)
    }

    fn create(&self, db: &Database, tier: Tier, day: i64) -> Result<Keyspace, HistoryError> {
        let mut tiers = self.write();
        if let Some(keyspace) = tiers.of(tier).get(&day) {
            return Ok(keyspace.clone());
        }
        let keyspace = db
            .keyspace(&tier.name(day), || day_options(self.memtable_bytes))
            .map_err(HistoryError::engine("create a day partition"))?;
        tracing::debug!(day, ?tier, "history partition created");
        tiers.of(tier).insert(day, keyspace.clone());
        Ok(keyspace)
    }

    /// The keyspace to read each day of `first..=last` from, oldest first:
    /// its full records while they exist, else its rollup.
    pub(crate) fn between(&self, first: i64, last: i64) -> Vec<(i64, Keyspace)> {
        if first > last {
            return Vec::new();
        }
        let tiers = self.read();
        let mut days: BTreeMap<i64, Keyspace> = tiers
            .rolled_up
            .range(first..=last)
            .map(|(day, keyspace)| (*day, keyspace.clone()))
            .collect();
        days.extend(
            tiers
                .full
                .range(first..=last)
                .map(|(day, keyspace)| (*day, keyspace.clone())),
        );
        days.into_iter().collect()
    }

    /// Every keyspace of both tiers.
    pub(crate) fn all(&self) -> Vec<Keyspace> {
        let tiers = self.read();
        tiers
            .full
            .values()
            .chain(tiers.rolled_up.values())
            .cloned()
            .collect()
    }

    /// The full days before `day`, oldest first.
    pub(crate) fn full_before(&self, day: i64) -> Vec<i64> {
        self.read().full.range(..day).map(|(day, _)| *day).collect()
    }

    /// Starts rolling `day` up: its full keyspace (to read) and its rollup
    /// (to write), which from now on also takes the day's new records.
    /// `None` when the day has no full records.
    pub(crate) fn start_rollup(
        &self,
        db: &Database,
        day: i64,
    ) -> Result<Option<(Keyspace, Keyspace)>, HistoryError> {
        let Some(full) = self.read().full.get(&day).cloned() else {
            return Ok(None);
        };
        let rolled_up = self.create(db, Tier::RolledUp, day)?;
        Ok(Some((full, rolled_up)))
    }

    /// Deletes the keyspaces of `tier` of every day before `day`; returns
    /// the days deleted and about how many records they held.
    pub(crate) fn drop_before(
        &self,
        db: &Database,
        tier: Tier,
        day: i64,
    ) -> Result<(u64, u64), HistoryError> {
        let mut tiers = self.write();
        let days = tiers.of(tier);
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

    /// Deletes `day`'s full keyspace (its rollup is written).
    pub(crate) fn drop_full(&self, db: &Database, day: i64) -> Result<(), HistoryError> {
        if let Some(keyspace) = self.write().full.remove(&day) {
            db.delete_keyspace(keyspace)
                .map_err(HistoryError::engine("delete a rolled-up day"))?;
        }
        Ok(())
    }

    // The maps are never left half-updated, so a panic elsewhere does not spoil them.
    fn read(&self) -> RwLockReadGuard<'_, Tiers> {
        self.tiers.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tiers> {
        self.tiers.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip() {
        for tier in Tier::ALL {
            for day in [0, 20_418, -3] {
                assert_eq!(tier.day_of_name(&tier.name(day)), Some(day));
            }
            assert_eq!(tier.day_of_name("latest"), None);
        }
        assert_eq!(Tier::Full.day_of_name("records-x"), None);
        assert_eq!(Tier::Full.day_of_name("rollup-3"), None);
    }
}
