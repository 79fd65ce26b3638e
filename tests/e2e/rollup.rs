//! Rollups with the real binary: a day past `storage.retention_days` is
//! rolled up when the node starts, a kill -9 during it leaves the history
//! API with neither a gap nor a duplicate, and the restarted node finishes
//! it.

use std::time::{Duration, Instant};

use drover_protocols::model::{Fix, Record, RecordKind, attr};

use crate::durability::stored_times;
use crate::support::{self, Ports, Process};
use crate::trips::{IMEI, Tracker};

const DAY_MS: i64 = 86_400_000;
/// Ten hours of a position a second.
const POSITIONS: i64 = 36_000;
/// The most records a Teltonika packet carries is 255.
const PER_PACKET: usize = 250;

fn keeping(days: u32) -> Vec<String> {
    vec![
        format!("storage.retention_days={days}"),
        "storage.rollup.interval_secs=60".to_owned(),
    ]
}

fn driving(time_ms: i64) -> Record {
    let mut record = Record {
        time_ms,
        kind: RecordKind::Position,
        fix: Some(Fix {
            lat: 54.68 + (time_ms % 3_600_000) as f64 * 1e-7,
            lon: 25.28,
            speed_kmh: 40.0,
            satellites: Some(9),
            valid: true,
            ..Fix::default()
        }),
        ..Record::default()
    };
    record.attributes.set(attr::IGNITION, true);
    record
}

#[test]
fn a_kill_during_a_rollup_leaves_no_gap_or_duplicate_and_the_restart_finishes_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ports = Ports::free();
    // Ten days ago, from 01:00 UTC: a day that two days of retention rolls up.
    let now = drover_protocols::model::now_ms();
    let start = (now - 10 * DAY_MS).div_euclid(DAY_MS) * DAY_MS + 3_600_000;
    let every: Vec<i64> = (0..POSITIONS).map(|s| start + s * 1_000).collect();
    let rolled: Vec<i64> = (0..POSITIONS / 60).map(|m| start + m * 60_000).collect();

    let node = support::drover_serve_on(dir.path(), ports, &keeping(365));
    let mut tracker = Tracker::connect(ports.teltonika, start);
    for chunk in every.chunks(PER_PACKET) {
        let records: Vec<Record> = chunk.iter().map(|t| driving(*t)).collect();
        tracker.send_records(&records);
    }
    drop(tracker);
    assert!(
        support::eventually(Duration::from_secs(60), || {
            stored_times(ports.http, IMEI).len() == every.len()
        }),
        "every position is stored"
    );
    node.interrupt();

    // Two days of retention: the node rolls the day up as it starts, and is
    // killed as soon as it says it began.
    let mut command = support::serve_command(dir.path(), ports, &keeping(2));
    command.env("RUST_LOG", "warn,drover_history=info");
    let node = Process::spawn("drover serve (killed)", &mut command);
    let log = || std::fs::read_to_string(dir.path().join("drover.log")).unwrap_or_default();
    let began = Instant::now();
    while !log().contains("rolling a history day up") {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the rollup starts:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    node.kill9();

    // A read that pages across the moment the rollup replaces the day gets
    // full positions up to its cursor and rolled-up ones after it: what
    // must never be is a duplicate, a position nobody sent, or a minute
    // without one.
    let node = support::drover_serve_on(dir.path(), ports, &keeping(2));
    let finished = support::eventually(Duration::from_secs(60), || {
        let stored = stored_times(ports.http, IMEI);
        assert!(
            stored.windows(2).all(|w| w[0] < w[1]),
            "no duplicate, in time order"
        );
        assert!(
            stored.iter().all(|t| every.binary_search(t).is_ok()),
            "only positions the tracker sent"
        );
        let mut minutes: Vec<i64> = stored.iter().map(|t| (t - start) / 60_000).collect();
        minutes.dedup();
        assert_eq!(minutes.len(), rolled.len(), "no minute without a position");
        stored == rolled
    });
    assert!(finished, "the restarted node rolls the day up:\n{}", log());
    drop(node);
}
