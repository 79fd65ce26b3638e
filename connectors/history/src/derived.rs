//! What the engine derives from the records and the node keeps: closed
//! trips, in their own keyspace.
//!
//! ```text
//! trips: u8 len, device, u64 start   (start: time_ms with the sign bit flipped, big-endian)
//!        → the trip as the node encoded it (opaque here)
//! ```
//!
//! One device's trips are one contiguous range in start order. A trip is
//! identified by its device and start, so a trip derived again (after a
//! restart that replayed the journal) overwrites itself.

use fjall::{Keyspace, PersistMode};

use crate::keys::{self, DeviceKey};
use crate::{History, HistoryError};

/// The trips keyspace's name.
pub(crate) const TRIPS: &str = "trips";

/// One closed trip to store.
#[derive(Debug, Clone, Copy)]
pub struct TripEntry<'a> {
    pub device: &'a str,
    pub start_ms: i64,
    /// The trip's encoding, chosen by the caller and handed back as is.
    pub encoded: &'a [u8],
}

fn trip_key(device: DeviceKey<'_>, start_ms: i64) -> Vec<u8> {
    let bytes = device.bytes();
    let mut key = Vec::with_capacity(1 + bytes.len() + 8);
    key.push(bytes.len() as u8);
    key.extend_from_slice(bytes);
    key.extend_from_slice(&keys::time_bytes(start_ms));
    key
}

impl History {
    /// Stores `trips` durably, in one fsynced commit; storing a trip again
    /// replaces it. Returns how many were stored: a trip of a device id that
    /// cannot be a key (empty, over 255 bytes) is left out with a warning.
    pub fn write_trips(&self, trips: &[TripEntry<'_>]) -> Result<usize, HistoryError> {
        let mut commit = self.db.batch().durability(Some(PersistMode::SyncAll));
        let mut stored = 0;
        for trip in trips {
            let Some(device) = DeviceKey::new(trip.device) else {
                tracing::warn!(device = %trip.device, "trip not stored: device id is empty or longer than 255 bytes");
                continue;
            };
            commit.insert(&self.trips, trip_key(device, trip.start_ms), trip.encoded);
            stored += 1;
        }
        commit
            .commit()
            .map_err(HistoryError::engine("commit trips"))?;
        Ok(stored)
    }

    /// The encodings of `device`'s trips that started in `[from_ms, to_ms)`,
    /// in start order, at most `limit`.
    pub fn trips(
        &self,
        device: &str,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, HistoryError> {
        let Some(device) = DeviceKey::new(device) else {
            return Ok(Vec::new());
        };
        if from_ms >= to_ms {
            return Ok(Vec::new());
        }
        read(
            &self.trips,
            trip_key(device, from_ms)..trip_key(device, to_ms),
            limit,
        )
    }
}

fn read(
    keyspace: &Keyspace,
    range: std::ops::Range<Vec<u8>>,
    limit: usize,
) -> Result<Vec<Vec<u8>>, HistoryError> {
    let mut found = Vec::new();
    for entry in keyspace.range(range).take(limit) {
        let value = entry.value().map_err(HistoryError::engine("read trips"))?;
        found.push(value.to_vec());
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use crate::{History, HistoryConfig};

    use super::TripEntry;

    fn entry<'a>(device: &'a str, start_ms: i64, encoded: &'a [u8]) -> TripEntry<'a> {
        TripEntry {
            device,
            start_ms,
            encoded,
        }
    }

    #[test]
    fn trips_come_back_by_device_in_start_order_and_a_rewrite_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path(), HistoryConfig::default()).unwrap();
        history
            .write_trips(&[
                entry("a", 2_000, b"a2"),
                entry("a", -5, b"a-5"),
                entry("ab", 1_000, b"ab1"),
                entry("a", 1_000, b"a1"),
            ])
            .unwrap();
        history.write_trips(&[entry("a", 2_000, b"a2'")]).unwrap();
        let a = history.trips("a", i64::MIN, i64::MAX, 10).unwrap();
        assert_eq!(a, [b"a-5".to_vec(), b"a1".to_vec(), b"a2'".to_vec()]);
        assert_eq!(history.trips("a", 0, 2_000, 10).unwrap(), [b"a1".to_vec()]);
        assert_eq!(history.trips("a", i64::MIN, i64::MAX, 1).unwrap().len(), 1);
        assert_eq!(
            history.trips("ab", 0, i64::MAX, 10).unwrap(),
            [b"ab1".to_vec()]
        );
        assert!(history.trips("", 0, i64::MAX, 10).unwrap().is_empty());
        assert!(history.trips("a", 5, 5, 10).unwrap().is_empty());
    }

    #[test]
    fn trips_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let history = History::open(dir.path(), HistoryConfig::default()).unwrap();
            assert_eq!(
                history
                    .write_trips(&[entry("d", 7, b"t"), entry("", 1, b"x")])
                    .unwrap(),
                1
            );
        }
        let history = History::open(dir.path(), HistoryConfig::default()).unwrap();
        assert_eq!(history.trips("d", 0, 8, 10).unwrap(), [b"t".to_vec()]);
    }
}
