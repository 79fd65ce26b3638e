//! `drover replay` on the journal of a real node that served a tracker:
//! the trips and alerts the node published come out again, the same lines
//! every time and with either executor.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use drover_protocols::model::{Record, attr, now_ms};
use serde_json::Value;

use crate::support::{self, Ports};
use crate::trips::{IMEI, Tracker};

fn fix(time_ms: i64, lat: f64, speed_kmh: f64) -> Record {
    let mut record = support::position(time_ms, lat, speed_kmh, 0.0);
    record.attributes.set(attr::IGNITION, speed_kmh > 0.0);
    record
}

/// `drover replay` of the node's journal in `dir`, with the settings the
/// node ran with and `extra`.
fn replay(dir: &Path, extra: &[&str]) -> Vec<Value> {
    let mut settings = vec![
        "analytics.trips.min_stop_secs=60",
        "analytics.overspeed.limit_kmh=90",
    ];
    settings.extend(extra);
    replay_with(dir, &[], &settings)
}

/// `drover replay` with `args` and `settings`.
fn replay_with(dir: &Path, args: &[&str], settings: &[&str]) -> Vec<Value> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_drover"));
    command
        .args(["replay", "--flush-secs", "3600"])
        .args(args)
        .arg("--set");
    command.arg(format!("data_dir={}", dir.join("data").display()));
    for setting in settings {
        command.args(["--set", setting]);
    }
    let output = command
        .env("RUST_LOG", "warn")
        .output()
        .expect("drover replay");
    assert!(
        output.status.success(),
        "drover replay failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

#[test]
fn a_replayed_journal_gives_the_same_trips_and_alerts_every_time() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ports = Ports::free();
    let settings = [
        "analytics.trips.min_stop_secs=60".to_owned(),
        "analytics.overspeed.limit_kmh=90".to_owned(),
    ];
    let node = support::drover_serve_on(dir.path(), ports, &settings);
    let mut tracker = Tracker::connect(ports.teltonika, now_ms());
    let start = now_ms() - 600_000;
    // Five minutes north at 100 km/h (over the limit), an SOS, then parked.
    let mut records: Vec<Record> = (0..30)
        .map(|i| fix(start + i * 10_000, 54.68 + i as f64 * 0.0025, 100.0))
        .collect();
    let mut sos = fix(start + 300_000, 54.755, 0.0);
    sos.attributes.set(attr::ALARM, "sos");
    records.push(sos);
    records.extend((31..40).map(|i| fix(start + i * 10_000, 54.755, 0.0)));
    tracker.send_records(&records);
    support::wait_for_engine(ports.http);
    std::thread::sleep(Duration::from_millis(500));
    assert!(node.interrupt().success());

    let lines = replay(dir.path(), &[]);
    let kinds: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            let what = l["kind"]
                .as_str()
                .or(l["type"].as_str())
                .map_or_else(String::new, str::to_owned);
            let state = l["state"].as_str().map_or_else(
                || if l["open"] == true { "open" } else { "closed" }.to_owned(),
                str::to_owned,
            );
            (what, state)
        })
        .collect();
    for expected in [
        ("trip", "open"),
        ("trip", "closed"),
        ("overspeed", "open"),
        ("overspeed", "closed"),
        ("sos", "open"),
    ] {
        assert!(
            kinds.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} missing from {kinds:?}"
        );
    }
    let trip = lines
        .iter()
        .find(|l| l["type"] == "trip" && l["open"] == false)
        .expect("a closed trip");
    assert_eq!(trip["device"], IMEI);
    assert_eq!(
        replay(dir.path(), &[]),
        lines,
        "the same journal, the same lines"
    );
    assert_eq!(
        replay(dir.path(), &["engine.executor=multi_threaded"]),
        lines,
        "with the parallel executor too"
    );
}

/// The changes of one device, as (type or kind, state) in order.
fn changes_of(lines: &[Value], device: &str) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| l["device"] == device)
        .cloned()
        .collect()
}

#[test]
fn a_scenario_from_the_simulator_replays_to_the_trips_stops_and_alerts_it_scripts() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("scenario.jsonl");
    let status = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["sim", "--devices", "3", "--scenario"])
        .arg(&file)
        .env("RUST_LOG", "warn")
        .status()
        .expect("drover sim --scenario");
    assert!(status.success());
    let scenario = ["--scenario", file.to_str().expect("a UTF-8 path")];
    let lines = replay_with(dir.path(), &scenario, &[]);
    let expected = drover_sim::scenario::expected();
    for vehicle in 1..=3 {
        let device = format!("35630704244000{vehicle}");
        let changes = changes_of(&lines, &device);
        let closed_trips: Vec<&Value> = changes
            .iter()
            .filter(|l| l["type"] == "trip" && l["open"] == false)
            .collect();
        assert_eq!(closed_trips.len(), 2, "{device}: {changes:#?}");
        for (trip, metres) in closed_trips.iter().zip(expected.trip_m) {
            let distance = trip["distance_m"].as_f64().expect("distance_m");
            assert!(
                (distance - metres).abs() <= metres * 0.02,
                "{device}: {distance} m, scripted {metres} m"
            );
        }
        // The stop between them lasts from one to the other.
        let stop = changes
            .iter()
            .find(|l| l["type"] == "stop" && l["open"] == false)
            .expect("a closed stop");
        assert_eq!(stop["start"], closed_trips[0]["end"]);
        assert_eq!(stop["end"], closed_trips[1]["start"]);
        let opened = |kind: &str| {
            changes
                .iter()
                .any(|l| l["kind"] == kind && l["state"] == "open")
        };
        for kind in ["geofence_enter", "geofence_exit", "overspeed", "fuel_drop"] {
            assert!(opened(kind), "{device}: no {kind} in {changes:#?}");
        }
        let overspeed = changes
            .iter()
            .find(|l| l["kind"] == "overspeed")
            .expect("overspeed");
        assert_eq!(
            overspeed["details"]["limit_kmh"],
            drover_sim::scenario::ZONE_LIMIT_KMH
        );
    }
    assert_eq!(
        replay_with(dir.path(), &scenario, &["engine.executor=multi_threaded"]),
        lines,
        "the same scenario, the same lines, with either executor"
    );
}
