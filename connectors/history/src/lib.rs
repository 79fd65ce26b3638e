//! # drover-history
//!
//! The embedded history store: every record of every device, queryable by
//! device and time, with retention. The default backend, in the role Traccar
//! gives H2, on [fjall] (an LSM tree) because it writes time-ordered tracker
//! data fastest of the engines measured (`docs/storage.md`).
//!
//! * **Positions and events**: records with a fix are positions, the others
//!   (status, alarm, network, event, command result) are events; each is its
//!   own history, read with [`History::positions`] and [`History::events`].
//! * **Durable writes**: [`History::write`] commits a whole batch in one
//!   fsynced transaction and returns only then, so the journal sink that feeds
//!   it can advance its cursor as soon as it returns.
//! * **Idempotent**: a record's key is its device, time, kind and a hash of
//!   its content, so a resent record overwrites itself while two different
//!   records of a device in the same millisecond are both kept. The archived
//!   flag is left out of the hash: a record resent from the device's memory is
//!   the record it was live.
//! * **Latest**: a small `latest` keyspace holds each device's newest position
//!   and newest event, updated in the same commit and never moved back in time
//!   by a late (archived) record. [`History::latest_all`] reads it whole.
//! * **Retention**: one keyspace per UTC day; [`History::expire`] deletes whole
//!   days, which costs a file deletion, not a tombstone per record. The
//!   `latest` entries survive retention: a device's last known place stays known.
//! * **Rollups**: [`History::apply_retention`] rolls days past retention up
//!   (one position per device per interval, every change point and event)
//!   into a second tier read transparently, then deletes them past the
//!   rollup's own retention (`rollup.rs`).
//! * **Errors** are [`HistoryError`]s; a stored value that does not decode is
//!   [`HistoryError::Corrupt`], never a panic. After a failed commit fjall
//!   refuses further writes (as the journal does after a failed fsync): drop
//!   the store and open it again.
//!
//! * **Trips and alerts**: closed trips the engine derived, by device and
//!   start ([`History::write_trips`], [`History::trips`]), and alerts' newest
//!   states in opening order ([`History::write_alerts`], [`History::alerts`],
//!   [`History::alert`]), in `derived.rs`; kept apart from retention, as
//!   the `latest` entries are.
//!
//! The key layout is in `keys.rs`, the day partitions in `partitions.rs`.
//!
//! ```no_run
//! use drover_history::{History, HistoryConfig};
//!
//! let history = History::open("/var/lib/drover/history", HistoryConfig::default())?;
//! # let batch = Vec::new();
//! history.write(&batch)?; // durable: the sink may advance its journal cursor
//! let mut page = history.positions("356307042441013", 0, i64::MAX, 500, None)?;
//! while let Some(next) = page.next {
//!     page = history.positions("356307042441013", 0, i64::MAX, 500, Some(&next))?;
//! }
//! # Ok::<(), drover_history::HistoryError>(())
//! ```

mod cursor;
mod derived;
mod keys;
mod partitions;
mod rollup;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use drover_protocols::model::{DeviceId, DeviceMessage, Record};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, OwnedWriteBatch, PersistMode};

pub use cursor::PageCursor;
pub use derived::{AlertEntry, AlertPage, TripEntry};
use keys::{Class, DeviceKey, Position, day_of};
use partitions::{Partitions, Tier};

use drover_journal::record::{self, RecordError};

/// Tuning of a [`History`] store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Days of full-resolution history [`History::apply_retention`] keeps
    /// (default 90); 0 keeps everything. Whole UTC days go, so up to one
    /// more day is kept. Older days are rolled up, or deleted when
    /// `rollup_interval_ms` is 0.
    pub retention_days: u32,
    /// Of a day past `retention_days`, one position per device per this
    /// many milliseconds is kept (default 60 s), with every position where
    /// ignition or motion changed or an alarm was reported, and every
    /// event. 0: such days are deleted instead.
    pub rollup_interval_ms: u64,
    /// Days (from now) rolled-up history is kept (default 730); 0 keeps it
    /// for ever.
    pub rollup_retention_days: u32,
    /// Memory for cached blocks of the store (default 64 MiB). Reads of recent
    /// history come from it; fjall recommends 20–25 % of the memory to spare.
    pub cache_bytes: u64,
    /// Records a day partition holds in memory before writing them out
    /// (default 64 MiB). Writes go to today's partition (and yesterday's
    /// around midnight), so about twice this is in memory. Applies to days
    /// created from now on.
    pub memtable_bytes: u64,
    /// Disk for fjall's own write-ahead journal, whose older files go once
    /// the memtables they hold are written out (default 512 MiB, at least
    /// 64 MiB).
    pub journal_bytes: u64,
}

/// What the store holds in memory and in its write-ahead journal, for
/// `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreUsage {
    pub cache_capacity_bytes: u64,
    pub cache_bytes: u64,
    /// Records in memtables, not yet written out to tables.
    pub memtable_bytes: u64,
    pub journal_bytes: u64,
    /// Days at full resolution.
    pub full_days: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            retention_days: 90,
            rollup_interval_ms: 60_000,
            rollup_retention_days: 730,
            cache_bytes: 64 * 1024 * 1024,
            memtable_bytes: 64 * 1024 * 1024,
            journal_bytes: 512 * 1024 * 1024,
        }
    }
}

/// One stored record of a known device.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// The protocol the device spoke.
    pub protocol: &'static str,
    pub record: Record,
}

/// One page of a device's history, oldest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    pub records: Vec<StoredRecord>,
    /// Where the next page starts; `None` when this page is the last.
    pub next: Option<PageCursor>,
}

/// Everything that can go wrong in the history store.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history store: cannot {what}: {source}")]
    Engine {
        what: &'static str,
        #[source]
        source: fjall::Error,
    },
    #[error("history store holds an unreadable record ({place}): {source}")]
    Corrupt {
        place: String,
        #[source]
        source: RecordError,
    },
    #[error("history store holds a malformed key ({place})")]
    CorruptKey { place: String },
    #[error("invalid page cursor {cursor:?}: {reason}")]
    InvalidCursor {
        cursor: String,
        reason: &'static str,
    },
}

impl HistoryError {
    fn engine(what: &'static str) -> impl FnOnce(fjall::Error) -> HistoryError {
        move |source| HistoryError::Engine { what, source }
    }
}

/// The history store. Cheap to share behind an `Arc`; reads run in parallel
/// with each other and with a write.
pub struct History {
    db: Database,
    /// `class, device` → `time_ms (i64 BE), encoded record` of the newest record.
    latest: Keyspace,
    /// Closed trips and alerts (`derived.rs`).
    trips: Keyspace,
    alerts: Keyspace,
    alert_ids: Keyspace,
    partitions: Partitions,
    config: HistoryConfig,
    /// Writes and expiry take turns: a write compares with `latest` before
    /// replacing it, and must not insert into a day partition that expiry is
    /// deleting. The guarded value remembers the time of each `latest` entry
    /// once read, because a point read per device and batch cost more than
    /// half of the write time (docs/storage.md).
    writer: Mutex<LatestTimes>,
}

impl History {
    /// Opens the store in `dir`, creating it if needed.
    pub fn open(dir: impl AsRef<Path>, config: HistoryConfig) -> Result<History, HistoryError> {
        let dir = dir.as_ref();
        let db = Database::builder(dir)
            .cache_size(config.cache_bytes)
            .max_journaling_size(config.journal_bytes.max(MIN_JOURNAL_BYTES))
            .open()
            .map_err(HistoryError::engine("open the database"))?;
        let latest = db
            .keyspace("latest", latest_options)
            .map_err(HistoryError::engine("open the latest keyspace"))?;
        let trips = db
            .keyspace(derived::TRIPS, KeyspaceCreateOptions::default)
            .map_err(HistoryError::engine("open the trips keyspace"))?;
        let alerts = db
            .keyspace(derived::ALERTS, KeyspaceCreateOptions::default)
            .map_err(HistoryError::engine("open the alerts keyspace"))?;
        let alert_ids = db
            .keyspace(derived::ALERT_IDS, KeyspaceCreateOptions::default)
            .map_err(HistoryError::engine("open the alert index"))?;
        let partitions = Partitions::open(&db, config.memtable_bytes)?;
        tracing::info!(path = %dir.display(), days = partitions.len(), "history store opened");
        Ok(History {
            db,
            latest,
            trips,
            alerts,
            alert_ids,
            partitions,
            config,
            writer: Mutex::new(LatestTimes::default()),
        })
    }

    /// Stores every record of `batch` durably: one fsynced commit, done when
    /// this returns. Writing a record again stores it once.
    ///
    /// A record that cannot be stored at all (a device id that is empty or
    /// longer than 255 bytes, a field too long for the record format) is left
    /// out with a warning rather than failing the batch forever.
    pub fn write(&self, batch: &[Arc<DeviceMessage>]) -> Result<(), HistoryError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut latest_times = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let started = Instant::now();
        let mut commit = self.db.batch().durability(Some(PersistMode::SyncAll));
        let mut newest = Newest::default();
        let mut skipped = 0usize;
        for (index, message) in batch.iter().enumerate() {
            match self.stage(&mut commit, message)? {
                Some(class) => newest.offer(class, &message.device, message.record.time_ms, index),
                None => skipped += 1,
            }
        }
        let moved = self.stage_latest(&mut commit, batch, newest, &mut latest_times)?;
        commit
            .commit()
            .map_err(HistoryError::engine("commit a batch"))?;
        // Only now: a failed commit must leave the remembered times as stored.
        for (class, device, time_ms) in moved {
            latest_times.set(class, device, time_ms);
        }
        tracing::debug!(
            records = batch.len() - skipped,
            skipped,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "history batch committed"
        );
        Ok(())
    }

    /// Adds one record to `commit`; `None` when it cannot be stored.
    fn stage(
        &self,
        commit: &mut OwnedWriteBatch,
        message: &DeviceMessage,
    ) -> Result<Option<Class>, HistoryError> {
        let Some(device) = DeviceKey::new(message.device.as_str()) else {
            tracing::warn!(device = %message.device, "record not stored: device id is empty or longer than 255 bytes");
            return Ok(None);
        };
        let (value, hash) = match encode_and_hash(message) {
            Ok(encoded) => encoded,
            Err(error) => {
                tracing::warn!(device = %message.device, %error, "record not stored");
                return Ok(None);
            }
        };
        let record = &message.record;
        let class = class_of(record);
        let at = Position {
            time_ms: record.time_ms,
            kind: keys::kind_byte(record.kind),
            hash,
        };
        let partition = self
            .partitions
            .for_writing(&self.db, day_of(record.time_ms))?;
        commit.insert(&partition, keys::record_key(class, device, at), value);
        Ok(Some(class))
    }

    /// Adds to `commit` the `latest` entries the batch moves forward and
    /// returns their new times.
    fn stage_latest<'a>(
        &self,
        commit: &mut OwnedWriteBatch,
        batch: &[Arc<DeviceMessage>],
        newest: Newest<'a>,
        latest_times: &mut LatestTimes,
    ) -> Result<Vec<(Class, &'a str, i64)>, HistoryError> {
        let mut moved = Vec::with_capacity(newest.0.len());
        for ((class, device), (time_ms, index)) in newest.0 {
            let Some(device_key) = DeviceKey::new(device) else {
                continue;
            };
            let key = keys::latest_key(class, device_key);
            let current = match latest_times.get(class, device) {
                Some(time) => Some(time),
                None => self.stored_latest_time(&key)?,
            };
            if let Some(time) = current {
                latest_times.set(class, device, time);
                if time > time_ms {
                    continue;
                }
            }
            // The record was encoded once already; encoding the few winners
            // again is cheaper than keeping every encoding of the batch.
            let Ok(encoded) = record::encode(&batch[index]) else {
                continue;
            };
            let mut value = Vec::with_capacity(8 + encoded.len());
            value.extend_from_slice(&time_ms.to_be_bytes());
            value.extend_from_slice(&encoded);
            commit.insert(&self.latest, key, value);
            moved.push((class, device, time_ms));
        }
        Ok(moved)
    }

    fn stored_latest_time(&self, key: &[u8]) -> Result<Option<i64>, HistoryError> {
        let value = self
            .latest
            .get(key)
            .map_err(HistoryError::engine("read the latest record"))?;
        // An unreadable entry counts as absent, so the next record repairs it.
        Ok(value.and_then(|value| latest_time(&value)))
    }

    /// `device`'s positions with `from_ms <= time < to_ms`, oldest first, at
    /// most `limit`, starting after `cursor` (from a previous page of the same
    /// query). An unknown device or an empty range gives an empty page; so
    /// does `limit` 0, without a cursor.
    pub fn positions(
        &self,
        device: &str,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
        cursor: Option<&PageCursor>,
    ) -> Result<Page, HistoryError> {
        self.page(Class::Position, device, from_ms..to_ms, limit, cursor)
    }

    /// `device`'s events (every record without a fix) like [`History::positions`].
    pub fn events(
        &self,
        device: &str,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
        cursor: Option<&PageCursor>,
    ) -> Result<Page, HistoryError> {
        self.page(Class::Event, device, from_ms..to_ms, limit, cursor)
    }

    fn page(
        &self,
        class: Class,
        device: &str,
        range: std::ops::Range<i64>,
        limit: usize,
        cursor: Option<&PageCursor>,
    ) -> Result<Page, HistoryError> {
        let Some(device_key) = DeviceKey::new(device) else {
            return Ok(Page::default());
        };
        if limit == 0 || range.is_empty() {
            return Ok(Page::default());
        }
        let after = cursor.map(|cursor| cursor.0);
        let mut page = Page::default();
        let mut last = None;
        for (day, partition) in self
            .partitions
            .between(day_of(range.start), day_of(range.end - 1))
        {
            for (from, to) in keys::hours(day, range.start, range.end) {
                let Some(bounds) = keys::hour_range(class, device_key, from, to, after) else {
                    continue;
                };
                for entry in partition.range(bounds) {
                    let (key, value) = entry
                        .into_inner()
                        .map_err(HistoryError::engine("read history"))?;
                    if page.records.len() == limit {
                        page.next = last.map(PageCursor);
                        return Ok(page);
                    }
                    let place = || format!("device {device}, day {day}");
                    last = Some(
                        keys::position_of(&key)
                            .ok_or_else(|| HistoryError::CorruptKey { place: place() })?,
                    );
                    page.records.push(decode(&value, place)?.1);
                }
            }
        }
        Ok(page)
    }

    /// `device`'s newest position, `None` for a device without one.
    pub fn latest(&self, device: &str) -> Result<Option<StoredRecord>, HistoryError> {
        let Some(device_key) = DeviceKey::new(device) else {
            return Ok(None);
        };
        let value = self
            .latest
            .get(keys::latest_key(Class::Position, device_key))
            .map_err(HistoryError::engine("read the latest record"))?;
        value
            .map(|value| decode_latest(&value, || format!("latest of device {device}")))
            .transpose()
            .map(|found| found.map(|(_, stored)| stored))
    }

    /// The newest position of every device that has one, by device id.
    pub fn latest_all(&self) -> Result<Vec<(DeviceId, StoredRecord)>, HistoryError> {
        let mut all = Vec::new();
        for entry in self.latest.prefix([Class::Position.byte()]) {
            let (key, value) = entry
                .into_inner()
                .map_err(HistoryError::engine("read the latest records"))?;
            let device = keys::latest_device(Class::Position, &key).ok_or_else(|| {
                HistoryError::CorruptKey {
                    place: "latest".to_owned(),
                }
            })?;
            let (device, stored) = decode_latest(&value, || format!("latest of device {device}"))?;
            all.push((device, stored));
        }
        Ok(all)
    }

    /// Every device with a stored position or event, sorted by id.
    pub fn devices(&self) -> Result<Vec<DeviceId>, HistoryError> {
        let mut devices = BTreeSet::new();
        for class in [Class::Position, Class::Event] {
            for entry in self.latest.prefix([class.byte()]) {
                let key = entry
                    .key()
                    .map_err(HistoryError::engine("read the latest records"))?;
                let device =
                    keys::latest_device(class, &key).ok_or_else(|| HistoryError::CorruptKey {
                        place: "latest".to_owned(),
                    })?;
                devices.insert(device.to_owned());
            }
        }
        Ok(devices.iter().map(|id| DeviceId::new(id)).collect())
    }

    /// Deletes every record of the UTC days that ended at or before
    /// `older_than_ms`; returns how many days were deleted. Records of the day
    /// `older_than_ms` falls in stay until that day is wholly older.
    ///
    /// Costs one keyspace deletion per day, whatever the day held.
    pub fn expire(&self, older_than_ms: i64) -> Result<u64, HistoryError> {
        let _turn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let (days, records) =
            self.partitions
                .drop_before(&self.db, Tier::Full, day_of(older_than_ms))?;
        if days > 0 {
            tracing::info!(days, records, older_than_ms, "history expired");
        }
        Ok(days)
    }

    /// What the store holds in memory and in its journal now.
    pub fn usage(&self) -> StoreUsage {
        StoreUsage {
            cache_capacity_bytes: self.db.cache_capacity(),
            cache_bytes: self.db.cache_size(),
            memtable_bytes: self.db.write_buffer_size(),
            // Listing the journal's files fails only with the directory gone.
            journal_bytes: self.db.journal_disk_space().unwrap_or(0),
            full_days: self.partitions.len(),
        }
    }

    /// Writes every keyspace's memtable out and compacts each into a single
    /// run: the store as it settles once writes stop. Rewrites every table,
    /// so it is for maintenance and measurement, not the write path.
    pub fn compact(&self) -> Result<(), HistoryError> {
        let days = self.partitions.all();
        let derived = [&self.latest, &self.trips, &self.alerts, &self.alert_ids];
        for keyspace in days.iter().chain(derived) {
            keyspace
                .rotate_memtable_and_wait()
                .map_err(HistoryError::engine("flush a keyspace"))?;
            keyspace
                .major_compact()
                .map_err(HistoryError::engine("compact a keyspace"))?;
        }
        Ok(())
    }

    /// The configured retention, for the scheduled job: the full days that
    /// ended more than `retention_days` before `now_ms` are rolled up (or
    /// deleted, without rollups), and rolled-up days past
    /// `rollup_retention_days` deleted. Returns how many full days left
    /// the full tier.
    ///
    /// Idempotent and resumable: a full day is deleted only once its rollup
    /// is durable, and is read instead of the rollup while it exists, so a
    /// run cut short shows no gap and no duplicate and the next run
    /// finishes it.
    pub fn apply_retention(&self, now_ms: i64) -> Result<u64, HistoryError> {
        if self.config.retention_days == 0 {
            return Ok(0);
        }
        let keep_ms = i64::from(self.config.retention_days) * keys::DAY_MS;
        let cutoff = now_ms.saturating_sub(keep_ms);
        if self.config.rollup_interval_ms == 0 {
            return self.expire(cutoff);
        }
        let days = self.partitions.full_before(day_of(cutoff));
        for day in &days {
            self.roll_up(*day)?;
        }
        if self.config.rollup_retention_days > 0 {
            let keep_ms = i64::from(self.config.rollup_retention_days) * keys::DAY_MS;
            let older_than = day_of(now_ms.saturating_sub(keep_ms));
            let _turn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let (days, records) =
                self.partitions
                    .drop_before(&self.db, Tier::RolledUp, older_than)?;
            if days > 0 {
                tracing::info!(days, records, "rolled-up history expired");
            }
        }
        Ok(days.len() as u64)
    }
}

/// The time of each `latest` entry, by class and device.
#[derive(Default)]
struct LatestTimes([HashMap<Box<str>, i64>; 2]);

impl LatestTimes {
    fn class(&mut self, class: Class) -> &mut HashMap<Box<str>, i64> {
        match class {
            Class::Position => &mut self.0[0],
            Class::Event => &mut self.0[1],
        }
    }

    fn get(&mut self, class: Class, device: &str) -> Option<i64> {
        self.class(class).get(device).copied()
    }

    fn set(&mut self, class: Class, device: &str, time_ms: i64) {
        self.class(class).insert(device.into(), time_ms);
    }
}

/// The newest record of each device and class in a batch, by batch index.
#[derive(Default)]
struct Newest<'a>(HashMap<(Class, &'a str), (i64, usize)>);

impl<'a> Newest<'a> {
    fn offer(&mut self, class: Class, device: &'a DeviceId, time_ms: i64, index: usize) {
        let entry = self
            .0
            .entry((class, device.as_str()))
            .or_insert((time_ms, index));
        // Ties go to the later record, as they would across batches.
        if time_ms >= entry.0 {
            *entry = (time_ms, index);
        }
    }
}

fn class_of(record: &Record) -> Class {
    if record.fix.is_some() {
        Class::Position
    } else {
        Class::Event
    }
}

/// The `latest` keyspace: one entry per device and class, rewritten with
/// every newer record. A small memtable is flushed (and its stale versions
/// compacted away) often, so reading every device's entry does not step
/// over hundreds of superseded ones.
fn latest_options() -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default().max_memtable_size(LATEST_MEMTABLE_BYTES)
}

/// fjall refuses a smaller bound on its journal.
const MIN_JOURNAL_BYTES: u64 = 64 * 1024 * 1024;

/// A few thousand devices' entries (a record is about 100 bytes).
const LATEST_MEMTABLE_BYTES: u64 = 4 * 1024 * 1024;

/// The stored bytes of `message` and the hash of its content.
fn encode_and_hash(message: &DeviceMessage) -> Result<(Vec<u8>, u32), RecordError> {
    Ok((record::encode(message)?, record::content_hash(message)?))
}

fn decode(
    bytes: &[u8],
    place: impl FnOnce() -> String,
) -> Result<(DeviceId, StoredRecord), HistoryError> {
    let message = record::decode(bytes).map_err(|source| HistoryError::Corrupt {
        place: place(),
        source,
    })?;
    let stored = StoredRecord {
        protocol: message.protocol,
        record: message.record,
    };
    Ok((message.device, stored))
}

fn latest_time(value: &[u8]) -> Option<i64> {
    let time: [u8; 8] = value.get(..8)?.try_into().ok()?;
    Some(i64::from_be_bytes(time))
}

fn decode_latest(
    value: &[u8],
    place: impl Fn() -> String,
) -> Result<(DeviceId, StoredRecord), HistoryError> {
    match value.get(8..) {
        Some(record) => decode(record, place),
        None => Err(HistoryError::Corrupt {
            place: place(),
            source: RecordError::Truncated {
                offset: value.len(),
                needed: 8 - value.len(),
            },
        }),
    }
}

// invariant: test code (cfg(test) only): the unwraps below never see outside input.
#[cfg(test)]
mod tests {
    use drover_protocols::model::{Fix, RecordKind, attr};

    use super::*;

    /// A Teltonika position with attributes, as version 1 stored it.
    fn written_by_version_1(history: &History, message: &DeviceMessage) {
        let device = DeviceKey::new(message.device.as_str()).unwrap();
        let record = &message.record;
        let at = Position {
            time_ms: record.time_ms,
            kind: keys::kind_byte(record.kind),
            hash: record::content_hash(message).unwrap(),
        };
        let v1 = record::encode_v1(message).unwrap();
        let day = history
            .partitions
            .for_writing(&history.db, day_of(record.time_ms))
            .unwrap();
        day.insert(keys::record_key(Class::Position, device, at), &v1)
            .unwrap();
        let mut latest = record.time_ms.to_be_bytes().to_vec();
        latest.extend_from_slice(&v1);
        history
            .latest
            .insert(keys::latest_key(Class::Position, device), latest)
            .unwrap();
    }

    #[test]
    fn records_stored_by_version_1_read_back_and_a_resend_overwrites_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = Record {
            time_ms: 1_764_115_200_000,
            kind: RecordKind::Position,
            fix: Some(Fix {
                lat: 54.687_157,
                lon: 25.279_652,
                speed_kmh: 63.0,
                valid: true,
                ..Fix::default()
            }),
            ..Record::default()
        };
        record.attributes.set(attr::IGNITION, true);
        record.attributes.set(attr::FUEL_LEVEL, 61.5);
        record.attributes.set("io239", 1i64);
        let message = Arc::new(DeviceMessage {
            device: DeviceId::new("356307042441013"),
            protocol: drover_protocols::teltonika::NAME,
            record,
        });
        {
            let history = History::open(dir.path(), HistoryConfig::default()).unwrap();
            written_by_version_1(&history, &message);
        }
        let history = History::open(dir.path(), HistoryConfig::default()).unwrap();
        let read = |history: &History| {
            history
                .positions(message.device.as_str(), 0, i64::MAX, 10, None)
                .unwrap()
                .records
        };
        let stored = read(&history);
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].record, message.record);
        assert_eq!(history.latest_all().unwrap()[0].1.record, message.record);

        // The device resends it from its memory: the same key, now version 2.
        let mut resent = (*message).clone();
        resent.record.archived = true;
        history.write(&[Arc::new(resent.clone())]).unwrap();
        let stored = read(&history);
        assert_eq!(
            stored.len(),
            1,
            "a resend after the upgrade is not a second record"
        );
        assert_eq!(stored[0].record, resent.record);
    }
}
