//! What the engine derives from the records and the node keeps: closed
//! trips and alerts, each in their own keyspace.
//!
//! ```text
//! trips:     u8 len, device, u64 start   (times: time_ms with the sign bit flipped, big-endian)
//!            → the trip as the node encoded it (opaque here)
//! alerts:    u64 opened, id              → the alert's newest state as the node encoded it
//! alert_ids: id                          → u64 opened (where the alert is in `alerts`)
//! ```
//!
//! One device's trips are one contiguous range in start order; alerts are
//! in opening order across the fleet. A trip is identified by its device
//! and start, an alert by its id, so either derived again (after a restart
//! that replayed the journal) overwrites itself, and an alert's later
//! states replace its earlier ones.

use std::ops::Bound;

use fjall::{Keyspace, PersistMode};

use crate::keys::{self, DeviceKey};
use crate::{History, HistoryError};

/// The keyspaces' names.
pub(crate) const TRIPS: &str = "trips";
pub(crate) const ALERTS: &str = "alerts";
pub(crate) const ALERT_IDS: &str = "alert_ids";

/// One alert state to store.
#[derive(Debug, Clone, Copy)]
pub struct AlertEntry<'a> {
    pub id: &'a str,
    pub opened_ms: i64,
    /// The alert's encoding, chosen by the caller and handed back as is.
    pub encoded: &'a [u8],
}

/// A page of alerts, and where the next one starts (opaque, hex).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertPage {
    pub alerts: Vec<Vec<u8>>,
    pub next: Option<String>,
}

fn alert_key(opened_ms: i64, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + id.len());
    key.extend_from_slice(&keys::time_bytes(opened_ms));
    key.extend_from_slice(id.as_bytes());
    key
}

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

impl History {
    /// Stores `alerts` (each replacing the alert's earlier state) durably, in
    /// one fsynced commit.
    pub fn write_alerts(&self, alerts: &[AlertEntry<'_>]) -> Result<(), HistoryError> {
        let mut commit = self.db.batch().durability(Some(PersistMode::SyncAll));
        for alert in alerts {
            commit.insert(
                &self.alerts,
                alert_key(alert.opened_ms, alert.id),
                alert.encoded,
            );
            commit.insert(
                &self.alert_ids,
                alert.id.as_bytes(),
                keys::time_bytes(alert.opened_ms),
            );
        }
        commit
            .commit()
            .map_err(HistoryError::engine("commit alerts"))
    }

    /// The alert `id`'s newest state, if it was stored.
    pub fn alert(&self, id: &str) -> Result<Option<Vec<u8>>, HistoryError> {
        let Some(opened) = self
            .alert_ids
            .get(id.as_bytes())
            .map_err(HistoryError::engine("read the alert index"))?
        else {
            return Ok(None);
        };
        let mut key = opened.to_vec();
        key.extend_from_slice(id.as_bytes());
        Ok(self
            .alerts
            .get(key)
            .map_err(HistoryError::engine("read an alert"))?
            .map(|value| value.to_vec()))
    }

    /// Alerts opened in `[from_ms, to_ms)`, oldest first, after `cursor` (a
    /// previous page's `next`), for which `keep` is true: at most `limit`.
    /// The caller filters, since it alone can read the encodings.
    pub fn alerts(
        &self,
        from_ms: i64,
        to_ms: i64,
        cursor: Option<&str>,
        limit: usize,
        mut keep: impl FnMut(&[u8]) -> bool,
    ) -> Result<AlertPage, HistoryError> {
        let mut page = AlertPage::default();
        if from_ms >= to_ms || limit == 0 {
            return Ok(page);
        }
        let start = match cursor {
            Some(cursor) => {
                let after = hex::decode(cursor).map_err(|_| HistoryError::InvalidCursor {
                    cursor: cursor.to_owned(),
                    reason: "not a cursor of an alert page",
                })?;
                Bound::Excluded(after)
            }
            None => Bound::Included(keys::time_bytes(from_ms).to_vec()),
        };
        let end = Bound::Excluded(keys::time_bytes(to_ms).to_vec());
        let mut last = None;
        for entry in self.alerts.range((start, end)) {
            let (key, value) = entry
                .into_inner()
                .map_err(HistoryError::engine("read alerts"))?;
            if !keep(&value) {
                continue;
            }
            if page.alerts.len() == limit {
                // One more exists: the page is full and not the last.
                page.next = last.take();
                break;
            }
            page.alerts.push(value.to_vec());
            last = Some(hex::encode(&key));
        }
        Ok(page)
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

    use super::{AlertEntry, TripEntry};

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

    fn alert<'a>(id: &'a str, opened_ms: i64, encoded: &'a [u8]) -> AlertEntry<'a> {
        AlertEntry {
            id,
            opened_ms,
            encoded,
        }
    }

    #[test]
    fn alerts_page_in_opening_order_and_a_new_state_replaces_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path(), HistoryConfig::default()).unwrap();
        history
            .write_alerts(&[
                alert("b", 20, b"b open"),
                alert("a", 10, b"a open"),
                alert("c", 30, b"c open"),
            ])
            .unwrap();
        history
            .write_alerts(&[alert("b", 20, b"b closed")])
            .unwrap();
        assert_eq!(history.alert("b").unwrap(), Some(b"b closed".to_vec()));
        assert_eq!(history.alert("zz").unwrap(), None);

        let all = |_: &[u8]| true;
        let first = history.alerts(0, 100, None, 2, all).unwrap();
        assert_eq!(first.alerts, [b"a open".to_vec(), b"b closed".to_vec()]);
        let next = first.next.expect("more");
        let second = history.alerts(0, 100, Some(&next), 2, all).unwrap();
        assert_eq!(second.alerts, [b"c open".to_vec()]);
        assert_eq!(second.next, None);
        let exactly = history.alerts(0, 30, None, 2, all).unwrap();
        assert_eq!((exactly.alerts.len(), exactly.next), (2, None));

        let open = history
            .alerts(0, 100, None, 10, |v| v.ends_with(b"open"))
            .unwrap();
        assert_eq!(open.alerts, [b"a open".to_vec(), b"c open".to_vec()]);
        assert!(history.alerts(0, 100, Some("xyz"), 2, all).is_err());
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
