//! The history store through its public API, on a real directory.

use std::collections::HashSet;
use std::sync::Arc;

use drover_history::{History, HistoryConfig, HistoryError, Page, PageCursor};
use drover_protocols::model::{DeviceMessage, Fix, Record, RecordKind, attr};
use tempfile::TempDir;

const DAY_MS: i64 = 86_400_000;
/// 2025-11-26 00:00 UTC, the start of a day.
const T0: i64 = 1_764_115_200_000;
const DEVICE: &str = "356307042441013";

fn open() -> (TempDir, History) {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(dir.path(), HistoryConfig::default()).unwrap();
    (dir, history)
}

fn message(device: &str, record: Record) -> Arc<DeviceMessage> {
    Arc::new(DeviceMessage {
        device: device.into(),
        protocol: "teltonika",
        record,
    })
}

fn position(device: &str, time_ms: i64) -> Arc<DeviceMessage> {
    let fix = Fix {
        lat: 52.0 + (time_ms % 1_000) as f64 * 1e-5,
        lon: 13.0,
        speed_kmh: 42.0,
        valid: true,
        ..Fix::default()
    };
    message(
        device,
        Record {
            time_ms,
            fix: Some(fix),
            ..Record::default()
        },
    )
}

fn event(device: &str, time_ms: i64, kind: RecordKind) -> Arc<DeviceMessage> {
    let mut record = Record {
        time_ms,
        kind,
        ..Record::default()
    };
    record.attributes.set(attr::EVENT, 7i64);
    message(device, record)
}

fn archived(message: &DeviceMessage) -> Arc<DeviceMessage> {
    let mut resent = message.clone();
    resent.record.archived = true;
    Arc::new(resent)
}

fn times(page: &Page) -> Vec<i64> {
    page.records.iter().map(|r| r.record.time_ms).collect()
}

fn all_positions(history: &History, device: &str) -> Vec<i64> {
    times(
        &history
            .positions(device, i64::MIN, i64::MAX, usize::MAX, None)
            .unwrap(),
    )
}

/// Every page of a query, following cursors; the records in the order seen.
fn walk(history: &History, from: i64, to: i64, limit: usize) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut cursor: Option<PageCursor> = None;
    let mut pages = 0;
    loop {
        let page = history
            .positions(DEVICE, from, to, limit, cursor.as_ref())
            .unwrap();
        pages += 1;
        assert!(page.records.len() <= limit);
        records.extend(page.records.into_iter().map(|r| r.record));
        match page.next {
            // Through its text form, as an API client would hand it back.
            Some(next) => cursor = Some(next.to_string().parse().unwrap()),
            None => return (records, pages),
        }
    }
}

#[test]
fn a_range_includes_from_and_excludes_to() {
    let (_dir, history) = open();
    let batch: Vec<_> = (0..10).map(|i| position(DEVICE, T0 + i * 1_000)).collect();
    history.write(&batch).unwrap();
    let page = history
        .positions(DEVICE, T0 + 2_000, T0 + 5_000, 100, None)
        .unwrap();
    assert_eq!(times(&page), vec![T0 + 2_000, T0 + 3_000, T0 + 4_000]);
    assert_eq!(page.next, None);
    assert_eq!(page.records[0].protocol, "teltonika");
    assert_eq!(page.records[0].record, batch[2].record);
}

#[test]
fn ranges_cross_hours_and_days() {
    let (_dir, history) = open();
    // Every 20 minutes for three days, minus the edges of the query below.
    let batch: Vec<_> = (0..216)
        .map(|i| position(DEVICE, T0 + i * 1_200_000))
        .collect();
    history.write(&batch).unwrap();
    let (from, to) = (T0 + DAY_MS - 3_600_000, T0 + 2 * DAY_MS + 1);
    let expected: Vec<i64> = batch
        .iter()
        .map(|m| m.record.time_ms)
        .filter(|t| (from..to).contains(t))
        .collect();
    assert_eq!(expected.len(), 76);
    assert_eq!(
        times(&history.positions(DEVICE, from, to, 1_000, None).unwrap()),
        expected
    );
}

#[test]
fn pages_return_every_record_once() {
    let (_dir, history) = open();
    let mut batch: Vec<_> = (0..250)
        .map(|i| position(DEVICE, T0 + i * 1_000_003))
        .collect();
    // Same millisecond, different content: the cursor must separate them too.
    batch.push(event(DEVICE, T0 + 5 * 1_000_003, RecordKind::Status));
    let mut twin = (*position(DEVICE, T0 + 7 * 1_000_003)).clone();
    twin.record.fix.as_mut().unwrap().lat = -10.0;
    batch.push(Arc::new(twin));
    history.write(&batch).unwrap();

    for limit in [1, 7, 50, 251, 252, 1_000] {
        let (records, pages) = walk(&history, T0, T0 + 3 * DAY_MS, limit);
        assert_eq!(records.len(), 251, "limit {limit}");
        assert_eq!(pages, 251usize.div_ceil(limit).max(1), "limit {limit}");
        assert!(records.windows(2).all(|w| w[0].time_ms <= w[1].time_ms));
        let distinct: HashSet<String> = records.iter().map(|r| format!("{r:?}")).collect();
        assert_eq!(distinct.len(), 251, "limit {limit}: a record came twice");
    }
}

#[test]
fn the_last_full_page_has_no_cursor() {
    let (_dir, history) = open();
    let batch: Vec<_> = (0..4).map(|i| position(DEVICE, T0 + i)).collect();
    history.write(&batch).unwrap();
    let page = history.positions(DEVICE, T0, T0 + 4, 4, None).unwrap();
    assert_eq!(page.records.len(), 4);
    assert_eq!(page.next, None);
    let page = history.positions(DEVICE, T0, T0 + 4, 2, None).unwrap();
    let rest = history
        .positions(DEVICE, T0, T0 + 4, 2, page.next.as_ref())
        .unwrap();
    assert_eq!(times(&rest), vec![T0 + 2, T0 + 3]);
    assert_eq!(rest.next, None);
}

#[test]
fn empty_results() {
    let (_dir, history) = open();
    assert_eq!(
        history
            .positions(DEVICE, T0, T0 + DAY_MS, 10, None)
            .unwrap(),
        Page::default()
    );
    history.write(&[position(DEVICE, T0 + 10)]).unwrap();
    for (from, to) in [
        (T0 + 11, T0 + DAY_MS),
        (T0, T0 + 10),
        (T0 + 10, T0 + 10),
        (T0 + 20, T0),
    ] {
        let page = history.positions(DEVICE, from, to, 10, None).unwrap();
        assert_eq!(page, Page::default(), "{from}..{to}");
    }
    assert_eq!(
        history
            .events(DEVICE, i64::MIN, i64::MAX, 10, None)
            .unwrap(),
        Page::default()
    );
}

#[test]
fn limit_zero_and_huge() {
    let (_dir, history) = open();
    let batch: Vec<_> = (0..30).map(|i| position(DEVICE, T0 + i)).collect();
    history.write(&batch).unwrap();
    assert_eq!(
        history.positions(DEVICE, T0, T0 + 30, 0, None).unwrap(),
        Page::default()
    );
    let page = history
        .positions(DEVICE, T0, T0 + 30, usize::MAX, None)
        .unwrap();
    assert_eq!(page.records.len(), 30);
    assert_eq!(page.next, None);
}

#[test]
fn a_bad_cursor_is_a_clear_error() {
    for text in [
        "",
        "not-a-cursor",
        "00",
        "ff00000000000000000000000000",
        "01000000000000000000000000000000",
    ] {
        let error = text.parse::<PageCursor>().unwrap_err();
        assert!(
            matches!(error, HistoryError::InvalidCursor { .. }),
            "{text:?}"
        );
        assert!(
            error.to_string().starts_with("invalid page cursor"),
            "{error}"
        );
    }
}

#[test]
fn an_unknown_device_has_no_history() {
    let (_dir, history) = open();
    history.write(&[position(DEVICE, T0)]).unwrap();
    for device in ["356307042441014", "", &"9".repeat(300)] {
        assert_eq!(
            history
                .positions(device, i64::MIN, i64::MAX, 10, None)
                .unwrap(),
            Page::default()
        );
        assert_eq!(
            history
                .events(device, i64::MIN, i64::MAX, 10, None)
                .unwrap(),
            Page::default()
        );
        assert_eq!(history.latest(device).unwrap(), None);
    }
}

#[test]
fn a_record_written_twice_is_stored_once() {
    let (_dir, history) = open();
    let batch = vec![position(DEVICE, T0), event(DEVICE, T0, RecordKind::Alarm)];
    history.write(&batch).unwrap();
    history.write(&batch).unwrap();
    // A resend from the device's memory is the same record.
    history
        .write(&[archived(&batch[0]), batch[1].clone()])
        .unwrap();
    assert_eq!(all_positions(&history, DEVICE), vec![T0]);
    let events = history
        .events(DEVICE, i64::MIN, i64::MAX, 10, None)
        .unwrap();
    assert_eq!(events.records.len(), 1);
}

#[test]
fn two_records_of_one_millisecond_are_both_kept() {
    let (_dir, history) = open();
    let first = position(DEVICE, T0);
    let mut second = (*first).clone();
    second.record.fix.as_mut().unwrap().speed_kmh = 80.0;
    let status = event(DEVICE, T0, RecordKind::Status);
    let alarm = event(DEVICE, T0, RecordKind::Alarm);
    history
        .write(&[first, Arc::new(second), status, alarm])
        .unwrap();
    assert_eq!(all_positions(&history, DEVICE), vec![T0, T0]);
    let events = history.events(DEVICE, T0, T0 + 1, 10, None).unwrap();
    let mut kinds: Vec<_> = events
        .records
        .iter()
        .map(|r| format!("{:?}", r.record.kind))
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["Alarm", "Status"]);
}

#[test]
fn positions_and_events_are_separate_histories() {
    let (_dir, history) = open();
    history
        .write(&[
            position(DEVICE, T0),
            event(DEVICE, T0 + 1, RecordKind::Status),
            event(DEVICE, T0 + 2, RecordKind::CommandResult),
            position(DEVICE, T0 + 3),
            event(DEVICE, T0 + 4, RecordKind::Event),
        ])
        .unwrap();
    assert_eq!(all_positions(&history, DEVICE), vec![T0, T0 + 3]);
    let events = history
        .events(DEVICE, i64::MIN, i64::MAX, 10, None)
        .unwrap();
    assert_eq!(times(&events), vec![T0 + 1, T0 + 2, T0 + 4]);
    assert!(events.records.iter().all(|r| r.record.fix.is_none()));
    // A position record kind without a fix (a status-only report) is an event.
    let (_dir, history) = open();
    history
        .write(&[event(DEVICE, T0, RecordKind::Position)])
        .unwrap();
    assert_eq!(all_positions(&history, DEVICE), Vec::<i64>::new());
    assert_eq!(history.latest(DEVICE).unwrap(), None);
}

#[test]
fn an_archived_record_does_not_move_latest_back() {
    let (_dir, history) = open();
    history.write(&[position(DEVICE, T0 + 60_000)]).unwrap();
    history.write(&[archived(&position(DEVICE, T0))]).unwrap();
    let latest = history.latest(DEVICE).unwrap().unwrap();
    assert_eq!(latest.record.time_ms, T0 + 60_000);
    // Within one batch too, whatever the order.
    history
        .write(&[
            position(DEVICE, T0 + 120_000),
            archived(&position(DEVICE, T0 + 90_000)),
        ])
        .unwrap();
    assert_eq!(
        history.latest(DEVICE).unwrap().unwrap().record.time_ms,
        T0 + 120_000
    );
    // But a newer archived record is newer.
    history
        .write(&[archived(&position(DEVICE, T0 + 180_000))])
        .unwrap();
    let latest = history.latest(DEVICE).unwrap().unwrap();
    assert_eq!(latest.record.time_ms, T0 + 180_000);
    assert!(latest.record.archived);
    assert_eq!(all_positions(&history, DEVICE).len(), 5);
}

#[test]
fn latest_all_has_every_device_once() {
    let (_dir, history) = open();
    let devices: Vec<String> = (0..2_000).map(|i| format!("35000000000{i:04}")).collect();
    for round in 0..3 {
        let batch: Vec<_> = devices
            .iter()
            .enumerate()
            .map(|(i, d)| position(d, T0 + round * 30_000 + i as i64))
            .collect();
        history.write(&batch).unwrap();
    }
    // Events only: listed among devices, without a latest position.
    history
        .write(&[event("events-only", T0, RecordKind::Status)])
        .unwrap();
    let all = history.latest_all().unwrap();
    assert_eq!(all.len(), devices.len());
    for (device, stored) in &all {
        let index: i64 = device.as_str()[11..].parse().unwrap();
        assert_eq!(stored.record.time_ms, T0 + 60_000 + index);
    }
    let listed = history.devices().unwrap();
    assert_eq!(listed.len(), devices.len() + 1);
    assert!(listed.windows(2).all(|w| w[0] < w[1]));
    assert!(listed.iter().any(|d| d.as_str() == "events-only"));
}

#[test]
fn retention_without_rollups_deletes_old_days_and_keeps_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = HistoryConfig {
        retention_days: 2,
        rollup_interval_ms: 0,
        ..HistoryConfig::default()
    };
    let history = History::open(dir.path(), config).unwrap();
    let batch: Vec<_> = (0..5)
        .flat_map(|day| {
            [
                position(DEVICE, T0 + day * DAY_MS),
                event(DEVICE, T0 + day * DAY_MS + 5, RecordKind::Alarm),
            ]
        })
        .collect();
    history.write(&batch).unwrap();

    // Mid-day 2: days 0 and 1 are wholly older, day 2 is kept whole.
    assert_eq!(history.expire(T0 + 2 * DAY_MS + 1_000).unwrap(), 2);
    assert_eq!(
        all_positions(&history, DEVICE),
        vec![T0 + 2 * DAY_MS, T0 + 3 * DAY_MS, T0 + 4 * DAY_MS]
    );
    assert_eq!(
        history
            .events(DEVICE, i64::MIN, i64::MAX, 10, None)
            .unwrap()
            .records
            .len(),
        3
    );
    assert_eq!(history.expire(T0).unwrap(), 0);

    // Two days kept before "now" on day 5: day 2 goes.
    assert_eq!(history.apply_retention(T0 + 5 * DAY_MS + 1).unwrap(), 1);
    assert_eq!(
        all_positions(&history, DEVICE),
        vec![T0 + 3 * DAY_MS, T0 + 4 * DAY_MS]
    );
    assert_eq!(
        history.latest(DEVICE).unwrap().unwrap().record.time_ms,
        T0 + 4 * DAY_MS
    );

    // Expired days can be written again (a device resending old records).
    history.write(&[position(DEVICE, T0)]).unwrap();
    assert_eq!(all_positions(&history, DEVICE)[0], T0);
    drop(history);
    let history = History::open(dir.path(), HistoryConfig::default()).unwrap();
    assert_eq!(all_positions(&history, DEVICE).len(), 3);
}

/// A drive: a position every 10 s for 10 minutes, stopped with the
/// ignition off from 5:30, an SOS at 7:20, an event a minute.
fn drive(device: &str, start: i64) -> Vec<Arc<DeviceMessage>> {
    let mut batch = Vec::new();
    for i in 0..60 {
        let time_ms = start + i * 10_000;
        let mut record = position(device, time_ms).record.clone();
        let parked = i >= 33;
        if let Some(fix) = record.fix.as_mut() {
            fix.speed_kmh = if parked { 0.0 } else { 40.0 };
        }
        record.attributes.set(attr::IGNITION, !parked);
        if i == 44 {
            record.attributes.set(attr::ALARM, "sos");
        }
        batch.push(message(device, record));
        if i % 6 == 0 {
            batch.push(event(device, time_ms + 1, RecordKind::Status));
        }
    }
    batch
}

fn rolling(retention_days: u32) -> HistoryConfig {
    HistoryConfig {
        retention_days,
        rollup_interval_ms: 60_000,
        rollup_retention_days: 10,
        ..HistoryConfig::default()
    }
}

#[test]
fn days_past_retention_are_rolled_up_and_read_across_tiers() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(dir.path(), rolling(2)).unwrap();
    history.write(&drive(DEVICE, T0)).unwrap();
    history.write(&drive(DEVICE, T0 + 3 * DAY_MS)).unwrap();

    assert_eq!(history.apply_retention(T0 + 3 * DAY_MS + 1).unwrap(), 1);
    let minute = |m: i64| T0 + m * 60_000;
    let rolled = [
        minute(0),
        minute(1),
        minute(2),
        minute(3),
        minute(4),
        minute(5),
        minute(5) + 30_000, // stopped, ignition off
        minute(6),
        minute(7),
        minute(7) + 20_000, // the SOS
        minute(8),
        minute(9),
    ];
    let full: Vec<i64> = (0..60).map(|i| T0 + 3 * DAY_MS + i * 10_000).collect();
    let positions = all_positions(&history, DEVICE);
    assert_eq!(positions[..positions.len() - 60], rolled[..]);
    assert_eq!(positions[positions.len() - 60..], full[..]);
    // Events are all kept; pages cross from the rolled-up day to the full one.
    let events = history
        .events(DEVICE, i64::MIN, i64::MAX, 100, None)
        .unwrap();
    assert_eq!(events.records.len(), 20);
    let (records, pages) = walk(&history, i64::MIN, i64::MAX, 7);
    assert_eq!(records.len(), positions.len());
    assert!(pages > 2);

    // Reopened, the tiers are found again; a late record of the rolled-up
    // day is kept whole in its rollup.
    drop(history);
    let history = History::open(dir.path(), rolling(2)).unwrap();
    history.write(&[position(DEVICE, T0 + 5_000)]).unwrap();
    let positions = all_positions(&history, DEVICE);
    assert_eq!(positions[..2], [T0, T0 + 5_000]);
    assert_eq!(positions.len(), rolled.len() + 1 + 60);

    // Past rollup retention the rolled-up day goes too.
    assert_eq!(history.apply_retention(T0 + 14 * DAY_MS + 1).unwrap(), 1);
    assert!(all_positions(&history, DEVICE).is_empty());
}

#[test]
fn retention_zero_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let config = HistoryConfig {
        retention_days: 0,
        ..HistoryConfig::default()
    };
    let history = History::open(dir.path(), config).unwrap();
    history.write(&[position(DEVICE, 0)]).unwrap();
    assert_eq!(history.apply_retention(T0).unwrap(), 0);
    assert_eq!(all_positions(&history, DEVICE), vec![0]);
}

#[test]
fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let batch: Vec<_> = (0..3_000)
        .map(|i| position(&format!("dev-{}", i % 30), T0 + i * 60_000))
        .chain([event(DEVICE, T0, RecordKind::Alarm)])
        .collect();
    {
        let history = History::open(dir.path(), HistoryConfig::default()).unwrap();
        for chunk in batch.chunks(700) {
            history.write(chunk).unwrap();
        }
    }
    let history = History::open(dir.path(), HistoryConfig::default()).unwrap();
    let stored: usize = (0..30)
        .map(|d| all_positions(&history, &format!("dev-{d}")).len())
        .sum();
    assert_eq!(stored, 3_000);
    assert_eq!(history.latest_all().unwrap().len(), 30);
    assert_eq!(history.devices().unwrap().len(), 31);
    let alarm = history
        .events(DEVICE, i64::MIN, i64::MAX, 10, None)
        .unwrap();
    assert_eq!(alarm.records[0].record, batch[3_000].record);
}

#[test]
fn records_that_cannot_be_stored_do_not_block_the_batch() {
    let (_dir, history) = open();
    let long_name = message(
        DEVICE,
        Record {
            time_ms: T0 + 2,
            attributes: {
                let mut a = drover_protocols::model::Attributes::new();
                a.set("x".repeat(300), 1i64);
                a
            },
            ..Record::default()
        },
    );
    history
        .write(&[
            position("", T0),
            position(&"9".repeat(256), T0),
            long_name,
            position(DEVICE, T0 + 1),
        ])
        .unwrap();
    assert_eq!(all_positions(&history, DEVICE), vec![T0 + 1]);
    assert_eq!(history.devices().unwrap().len(), 1);
}

#[test]
fn times_before_1970_and_far_ahead_are_stored() {
    let (_dir, history) = open();
    let times = [-DAY_MS - 1, -1, 0, 4_102_444_800_000];
    let batch: Vec<_> = times.iter().map(|&t| position(DEVICE, t)).collect();
    history.write(&batch).unwrap();
    assert_eq!(all_positions(&history, DEVICE), times);
    assert_eq!(times_of(&history, -DAY_MS, 1), vec![-1, 0]);
}

fn times_of(history: &History, from: i64, to: i64) -> Vec<i64> {
    times(&history.positions(DEVICE, from, to, 100, None).unwrap())
}

#[test]
fn a_corrupt_value_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let history = History::open(dir.path(), HistoryConfig::default()).unwrap();
        history.write(&[position(DEVICE, T0)]).unwrap();
    }
    {
        // Damage every stored value behind the store's back.
        let db = fjall::Database::builder(dir.path()).open().unwrap();
        for name in db.list_keyspace_names() {
            let keyspace = db
                .keyspace(&name, fjall::KeyspaceCreateOptions::default)
                .unwrap();
            let keys: Vec<_> = keyspace.iter().map(|kv| kv.key().unwrap()).collect();
            for key in keys {
                keyspace.insert(key, [1u8, 200, 3]).unwrap();
            }
        }
    }
    let history = History::open(dir.path(), HistoryConfig::default()).unwrap();
    let error = history
        .positions(DEVICE, i64::MIN, i64::MAX, 10, None)
        .unwrap_err();
    assert!(matches!(error, HistoryError::Corrupt { .. }), "{error}");
    assert!(matches!(
        history.latest(DEVICE),
        Err(HistoryError::Corrupt { .. })
    ));
    assert!(matches!(
        history.latest_all(),
        Err(HistoryError::Corrupt { .. })
    ));
}
