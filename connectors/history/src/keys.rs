//! The key layout of the history store.
//!
//! Records live in one keyspace per UTC day (see `partitions`), under
//!
//! ```text
//! u8 class          b'p' position (the record has a fix), b'e' event
//! u8 hour           hour of the day, 0–23
//! u8 len, device    the device id, length-prefixed so no id is a prefix of another's key
//! u64 time          time_ms with the sign bit flipped, big-endian: byte order = time order
//! u8 kind           the record kind (`record::kind_byte`, append-only)
//! u32 hash          CRC-32C of the record's content, big-endian
//! ```
//!
//! Hour first, device second: the records written now land in one small key
//! region (this hour's), which is what keeps LSM writes fast, and one device's
//! hour is still one contiguous range, so a day of one device is 24 short
//! range reads. The kind and hash keep two different records of one device in
//! the same millisecond apart, while a resent record gets the same key and
//! overwrites itself.
//!
//! The `latest` keyspace is keyed by `class, device` (no length prefix: the
//! device is the whole rest of the key).

use std::ops::Bound;

pub(crate) const DAY_MS: i64 = 86_400_000;
pub(crate) const HOUR_MS: i64 = 3_600_000;

/// `class, hour, len, device` before the time; 1 + 1 + 1 + 255 at most.
const SUFFIX_LEN: usize = 8 + 1 + 4;

/// Which of the two histories a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Class {
    /// Records with a fix.
    Position,
    /// Everything else: statuses, alarms, events, command results.
    Event,
}

impl Class {
    pub(crate) fn byte(self) -> u8 {
        match self {
            Class::Position => b'p',
            Class::Event => b'e',
        }
    }
}

/// Where a record sorts within its device's history: what a page cursor holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub time_ms: i64,
    pub kind: u8,
    pub hash: u32,
}

/// A device id as it appears in keys: at most 255 bytes, not empty.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeviceKey<'a>(&'a [u8]);

impl<'a> DeviceKey<'a> {
    /// `None` for an id that cannot be a key (empty or longer than 255 bytes).
    pub(crate) fn new(device: &'a str) -> Option<Self> {
        let bytes = device.as_bytes();
        (!bytes.is_empty() && bytes.len() <= usize::from(u8::MAX)).then_some(DeviceKey(bytes))
    }

    pub(crate) fn bytes(self) -> &'a [u8] {
        self.0
    }
}

/// A key's kind byte is the stored record format's.
pub(crate) use drover_journal::record::kind_byte;

/// The UTC day (days since the Unix epoch) that holds `time_ms`.
pub(crate) fn day_of(time_ms: i64) -> i64 {
    time_ms.div_euclid(DAY_MS)
}

pub(crate) fn time_bytes(time_ms: i64) -> [u8; 8] {
    ((time_ms as u64) ^ (1 << 63)).to_be_bytes()
}

fn hour_of_day(time_ms: i64) -> u8 {
    // rem_euclid keeps it in 0..24 for times before 1970 too.
    (time_ms.rem_euclid(DAY_MS) / HOUR_MS) as u8
}

/// `class, hour, len, device, time`: every key of that device, hour and
/// millisecond starts with it.
/// The hour is explicit so that the end of an hour's range can name the
/// first millisecond after it while staying in that hour's key region.
fn prefix(class: Class, hour: u8, device: DeviceKey<'_>, time_ms: i64) -> Vec<u8> {
    let mut key = Vec::with_capacity(3 + device.0.len() + SUFFIX_LEN);
    key.push(class.byte());
    key.push(hour);
    key.push(device.0.len() as u8);
    key.extend_from_slice(device.0);
    key.extend_from_slice(&time_bytes(time_ms));
    key
}

/// The key of one record, within the partition of its day.
pub(crate) fn record_key(class: Class, device: DeviceKey<'_>, at: Position) -> Vec<u8> {
    let mut key = prefix(class, hour_of_day(at.time_ms), device, at.time_ms);
    key.push(at.kind);
    key.extend_from_slice(&at.hash.to_be_bytes());
    key
}

/// Time, kind and hash from the end of a record key, `None` when it is too short.
pub(crate) fn position_of(key: &[u8]) -> Option<Position> {
    let tail: &[u8; SUFFIX_LEN] = key
        .get(key.len().checked_sub(SUFFIX_LEN)?..)?
        .try_into()
        .ok()?;
    let [t0, t1, t2, t3, t4, t5, t6, t7, kind, h0, h1, h2, h3] = *tail;
    let time = u64::from_be_bytes([t0, t1, t2, t3, t4, t5, t6, t7]) ^ (1 << 63);
    Some(Position {
        time_ms: time as i64,
        kind,
        hash: u32::from_be_bytes([h0, h1, h2, h3]),
    })
}

/// Bounds of a range read, as fjall takes them.
pub(crate) type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// The key range of `device`'s records of `class` in `[from_ms, to_ms)` and
/// strictly after `after`, all within one hour of one day; `None` when `after`
/// is past it.
///
/// `from_ms..to_ms` must not span more than that hour.
pub(crate) fn hour_range(
    class: Class,
    device: DeviceKey<'_>,
    from_ms: i64,
    to_ms: i64,
    after: Option<Position>,
) -> Option<KeyRange> {
    if after.is_some_and(|at| at.time_ms >= to_ms) {
        return None;
    }
    let hour = hour_of_day(from_ms);
    let low = match after {
        Some(at) if at.time_ms >= from_ms => Bound::Excluded(record_key(class, device, at)),
        _ => Bound::Included(prefix(class, hour, device, from_ms)),
    };
    // A key at `to_ms` has a kind and hash after this prefix, so it sorts after
    // it and is excluded, as `to` must be.
    Some((low, Bound::Excluded(prefix(class, hour, device, to_ms))))
}

/// The hours of `day` that overlap `[from_ms, to_ms)`, each clipped to it.
pub(crate) fn hours(day: i64, from_ms: i64, to_ms: i64) -> impl Iterator<Item = (i64, i64)> {
    let day_start = day.saturating_mul(DAY_MS);
    (0..24i64).filter_map(move |hour| {
        let start = day_start.saturating_add(hour * HOUR_MS);
        let end = start.saturating_add(HOUR_MS);
        let (from, to) = (from_ms.max(start), to_ms.min(end));
        (from < to).then_some((from, to))
    })
}

/// The `latest` keyspace key of `device`'s newest record of `class`.
pub(crate) fn latest_key(class: Class, device: DeviceKey<'_>) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + device.0.len());
    key.push(class.byte());
    key.extend_from_slice(device.0);
    key
}

/// The device of a `latest` key, `None` when it is not one of `class`.
pub(crate) fn latest_device(class: Class, key: &[u8]) -> Option<&str> {
    let (&first, device) = key.split_first()?;
    if first != class.byte() {
        return None;
    }
    std::str::from_utf8(device).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(time_ms: i64) -> Position {
        Position {
            time_ms,
            kind: 0,
            hash: 7,
        }
    }

    #[test]
    fn keys_sort_by_time_within_a_device_and_hour() {
        let device = DeviceKey::new("356307042441013").unwrap();
        let times = [-1, 0, 1, 1_000, 3_599_999];
        let keys: Vec<_> = times
            .iter()
            .map(|&t| record_key(Class::Position, device, at(t)))
            .collect();
        // -1 is the last hour of the previous day: compare within hours only.
        assert!(keys[1] < keys[2] && keys[2] < keys[3] && keys[3] < keys[4]);
    }

    #[test]
    fn no_device_key_is_a_prefix_of_another() {
        let short = record_key(Class::Event, DeviceKey::new("12").unwrap(), at(5));
        let long = record_key(Class::Event, DeviceKey::new("123").unwrap(), at(5));
        assert!(!long.starts_with(&short[..4]));
    }

    #[test]
    fn device_ids_that_cannot_be_keys() {
        assert!(DeviceKey::new("").is_none());
        assert!(DeviceKey::new(&"x".repeat(256)).is_none());
        assert!(DeviceKey::new(&"x".repeat(255)).is_some());
    }

    #[test]
    fn hours_clip_the_range_to_the_day() {
        let hours: Vec<_> = hours(1, DAY_MS + 30 * 60_000, DAY_MS + 2 * HOUR_MS).collect();
        assert_eq!(
            hours,
            vec![
                (DAY_MS + 30 * 60_000, DAY_MS + HOUR_MS),
                (DAY_MS + HOUR_MS, DAY_MS + 2 * HOUR_MS)
            ]
        );
        assert_eq!(super::hours(0, i64::MIN, i64::MAX).count(), 24);
    }

    #[test]
    fn the_position_comes_back_from_a_key() {
        for time_ms in [-9, 0, 1_764_133_200_000] {
            let at = Position {
                time_ms,
                kind: 3,
                hash: 0xdead_beef,
            };
            let key = record_key(Class::Position, DeviceKey::new("a").unwrap(), at);
            assert_eq!(position_of(&key), Some(at));
        }
        assert_eq!(position_of(&[1, 2]), None);
    }
}
