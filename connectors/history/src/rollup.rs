//! Rolling a day past retention up: what of it is kept, and how the
//! rollup replaces the day without a gap or a duplicate.
//!
//! Of a day's positions, each device keeps the first of every
//! `rollup_interval_ms` window and every position where something an
//! operator looks back for changed: ignition, motion, an alarm. Events
//! (statuses, alarms, command results) are few and all kept. Kept records
//! stay under their own keys and bytes, so a rolled-up day reads exactly
//! like a full one with fewer points.

use std::collections::HashMap;
use std::sync::PoisonError;

use drover_journal::record;
use drover_protocols::model::{Record, Value, attr};
use fjall::{Keyspace, PersistMode};

use crate::keys::Class;
use crate::{History, HistoryError};

/// Records written to a rollup per fsynced commit.
const BATCH: usize = 10_000;
/// A position without the device's own motion flag counts as moving from
/// this speed (GNSS drift of a parked vehicle stays below it).
const MOVING_KMH: f64 = 5.0;

impl History {
    /// Rolls `day` up: writes its rollup, then deletes its full records.
    /// Returns how many records the rollup kept.
    pub(crate) fn roll_up(&self, day: i64) -> Result<u64, HistoryError> {
        let started = {
            // Under the writer lock: from here on the day's new records go
            // to its rollup, so none lands in the full day after it is read.
            let _turn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            self.partitions.start_rollup(&self.db, day)?
        };
        let Some((full, rolled_up)) = started else {
            return Ok(0);
        };
        tracing::info!(day, "rolling a history day up");
        let (read, kept) = self.copy_kept(day, &full, &rolled_up)?;
        let _turn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.partitions.drop_full(&self.db, day)?;
        tracing::info!(day, read, kept, "history day rolled up");
        Ok(kept)
    }

    /// Copies what `day`'s rollup keeps from `full` into `rolled_up`, in
    /// fsynced commits; returns the records read and kept.
    fn copy_kept(
        &self,
        day: i64,
        full: &Keyspace,
        rolled_up: &Keyspace,
    ) -> Result<(u64, u64), HistoryError> {
        let mut filter = Thinning::new(self.config.rollup_interval_ms);
        let (mut read, mut kept) = (0u64, 0u64);
        let mut commit = self.db.batch().durability(Some(PersistMode::SyncAll));
        let mut staged = 0;
        for entry in full.iter() {
            let (key, value) = entry
                .into_inner()
                .map_err(HistoryError::engine("read a day to roll up"))?;
            read += 1;
            let keep = match key.first() {
                Some(&class) if class == Class::Position.byte() => match record::decode(&value) {
                    Ok(message) => filter.keeps(message.device.as_str(), &message.record),
                    // Kept as it is: it must neither stop every later run
                    // nor vanish unread.
                    Err(error) => {
                        tracing::warn!(day, %error, "a stored record does not decode; kept whole");
                        true
                    }
                },
                _ => true,
            };
            if keep {
                commit.insert(rolled_up, key, value);
                (kept, staged) = (kept + 1, staged + 1);
            }
            if staged == BATCH {
                commit
                    .commit()
                    .map_err(HistoryError::engine("write a rollup"))?;
                commit = self.db.batch().durability(Some(PersistMode::SyncAll));
                staged = 0;
            }
        }
        commit
            .commit()
            .map_err(HistoryError::engine("write a rollup"))?;
        Ok((read, kept))
    }
}

/// Which positions of a day a rollup keeps. Fed each device's positions
/// in time order (the day's keys put a device's hour in order, and hours
/// follow each other).
struct Thinning {
    interval_ms: i64,
    devices: HashMap<String, Kept>,
}

/// What a device's rollup last kept.
struct Kept {
    window: i64,
    ignition: Option<bool>,
    moving: bool,
}

impl Thinning {
    fn new(interval_ms: u64) -> Thinning {
        Thinning {
            interval_ms: i64::try_from(interval_ms).unwrap_or(i64::MAX).max(1),
            devices: HashMap::new(),
        }
    }

    fn keeps(&mut self, device: &str, record: &Record) -> bool {
        let window = record.time_ms.div_euclid(self.interval_ms);
        let ignition = match record.attributes.get(attr::IGNITION) {
            Some(Value::Bool(on)) => Some(*on),
            _ => None,
        };
        let moving = moving(record);
        let alarm = record.attributes.get(attr::ALARM).is_some();
        let Some(last) = self.devices.get_mut(device) else {
            let first = Kept {
                window,
                ignition,
                moving,
            };
            self.devices.insert(device.to_owned(), first);
            return true;
        };
        let keep = alarm
            || window != last.window
            || (ignition.is_some() && ignition != last.ignition)
            || moving != last.moving;
        // A change is measured against the device's last position, kept or not.
        if keep {
            last.window = window;
        }
        last.ignition = ignition.or(last.ignition);
        last.moving = moving;
        keep
    }
}

/// Whether the vehicle moved: the device's own flag, else its speed.
fn moving(record: &Record) -> bool {
    match record.attributes.get(attr::MOTION) {
        Some(Value::Bool(moving)) => *moving,
        _ => record.fix.is_some_and(|fix| fix.speed_kmh >= MOVING_KMH),
    }
}

// invariant: test code (cfg(test) only): the unwraps below never see outside input.
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use drover_protocols::model::{DeviceId, DeviceMessage, Fix};

    use super::*;
    use crate::{HistoryConfig, keys};

    const T0: i64 = 1_764_115_200_000;
    const DEVICE: &str = "356307042441013";

    fn position(time_ms: i64, speed_kmh: f64, ignition: bool) -> Record {
        let mut record = Record {
            time_ms,
            fix: Some(Fix {
                speed_kmh,
                valid: true,
                ..Fix::default()
            }),
            ..Record::default()
        };
        record.attributes.set(attr::IGNITION, ignition);
        record
    }

    #[test]
    fn keeps_one_position_a_window_and_every_change() {
        let mut thinning = Thinning::new(60_000);
        let mut kept = Vec::new();
        // Driving, one report every 10 s for 3 minutes.
        for t in (0..180_000).step_by(10_000) {
            if thinning.keeps("a", &position(t, 50.0, true)) {
                kept.push(t);
            }
        }
        assert_eq!(kept, [0, 60_000, 120_000]);
        // Stops at 185 s (motion changes), ignition off at 195 s.
        assert!(thinning.keeps("a", &position(185_000, 0.0, true)));
        assert!(!thinning.keeps("a", &position(190_000, 0.0, true)));
        assert!(thinning.keeps("a", &position(195_000, 0.0, false)));
        assert!(!thinning.keeps("a", &position(200_000, 0.0, false)));
        // An alarm is kept whatever the window.
        let mut sos = position(205_000, 0.0, false);
        sos.attributes.set(attr::ALARM, "sos");
        assert!(thinning.keeps("a", &sos));
        // Devices are thinned apart.
        assert!(thinning.keeps("b", &position(205_000, 0.0, false)));
    }

    fn times(history: &History) -> Vec<i64> {
        let page = history
            .positions(DEVICE, i64::MIN, i64::MAX, usize::MAX, None)
            .unwrap();
        page.records.iter().map(|r| r.record.time_ms).collect()
    }

    #[test]
    fn a_rollup_cut_short_shows_no_gap_or_duplicate_and_the_next_run_finishes_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = HistoryConfig {
            retention_days: 1,
            rollup_interval_ms: 60_000,
            rollup_retention_days: 0,
            ..HistoryConfig::default()
        };
        let open = || History::open(dir.path(), config.clone()).unwrap();
        let day = T0.div_euclid(keys::DAY_MS);
        let history = open();
        let drive: Vec<_> = (0..600)
            .map(|i| {
                Arc::new(DeviceMessage {
                    device: DeviceId::new(DEVICE),
                    protocol: drover_protocols::teltonika::NAME,
                    record: position(T0 + i * 1_000, 40.0, true),
                })
            })
            .collect();
        history.write(&drive).unwrap();
        let every = times(&history);
        assert_eq!(every.len(), 600);

        // Cut short with three of the rollup's records written.
        let (full, rolled_up) = history
            .partitions
            .start_rollup(&history.db, day)
            .unwrap()
            .unwrap();
        let mut thinning = Thinning::new(60_000);
        let kept = full.iter().filter_map(|entry| {
            let (key, value) = entry.into_inner().unwrap();
            let message = record::decode(&value).unwrap();
            thinning
                .keeps(DEVICE, &message.record)
                .then_some((key, value))
        });
        for (key, value) in kept.take(3) {
            rolled_up.insert(key, value).unwrap();
        }
        drop((full, rolled_up, history));
        let history = open();
        assert_eq!(
            times(&history),
            every,
            "the full day is read while it exists"
        );

        // Cut short with the rollup written and the day not yet deleted.
        let (full, rolled_up) = history
            .partitions
            .start_rollup(&history.db, day)
            .unwrap()
            .unwrap();
        assert_eq!(
            history.copy_kept(day, &full, &rolled_up).unwrap(),
            (600, 10)
        );
        drop((full, rolled_up, history));
        let history = open();
        assert_eq!(times(&history), every);

        // The next run finishes it.
        assert_eq!(history.apply_retention(T0 + 2 * keys::DAY_MS).unwrap(), 1);
        let minutes: Vec<i64> = (0..10).map(|m| T0 + m * 60_000).collect();
        assert_eq!(times(&history), minutes);
        drop(history);
        assert_eq!(times(&open()), minutes);
    }

    #[test]
    fn a_record_that_does_not_decode_is_kept_whole_and_stops_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let config = HistoryConfig {
            retention_days: 1,
            rollup_interval_ms: 60_000,
            ..HistoryConfig::default()
        };
        let history = History::open(dir.path(), config).unwrap();
        let message = Arc::new(DeviceMessage {
            device: DeviceId::new(DEVICE),
            protocol: drover_protocols::teltonika::NAME,
            record: position(T0, 40.0, true),
        });
        history.write(&[message]).unwrap();
        let day = T0.div_euclid(keys::DAY_MS);
        let full = history.partitions.for_writing(&history.db, day).unwrap();
        let at = keys::Position {
            time_ms: T0 + 1_000,
            kind: 0,
            hash: 7,
        };
        let device = keys::DeviceKey::new(DEVICE).unwrap();
        let damaged = keys::record_key(Class::Position, device, at);
        full.insert(&damaged, [9u8, 9, 9]).unwrap();

        assert_eq!(history.apply_retention(T0 + 2 * keys::DAY_MS).unwrap(), 1);
        let (_, rolled_up) = history.partitions.between(day, day).pop().unwrap();
        assert_eq!(
            rolled_up.get(&damaged).unwrap().as_deref(),
            Some(&[9u8, 9, 9][..])
        );
        assert_eq!(rolled_up.len().unwrap(), 2);
    }
}
