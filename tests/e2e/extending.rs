//! The two example plugins (`examples/idling.rs`, `examples/cornering.rs`)
//! as users run them: the example binary serving, a tracker over TCP, and
//! what the plugin raises and derives read back through the API and MQTT.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use drover_protocols::model::{Record, attr, now_ms};
use serde_json::Value;

use crate::support::{self, Ports, Process, Subscriber};
use crate::trips::{IMEI, Tracker};

/// An example's binary: `cargo test` builds the examples next to the tests.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary");
    let debug = exe.parent().and_then(Path::parent).expect("target/debug");
    let path = debug.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built: run the tests with `cargo xtask test`",
        path.display()
    );
    path
}

fn serve_example(name: &str, dir: &Path, ports: Ports, env: (&str, &str)) -> Process {
    let mut command = Command::new(example(name));
    command.arg("serve").env(env.0, env.1);
    for setting in support::serve_settings(dir, ports, &[]) {
        command.args(["--set", &setting]);
    }
    command
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(support::log_file(dir, "drover.log"));
    support::serving("an example plugin", dir, ports, &mut command)
}

fn fix(time_ms: i64, speed_kmh: f64, course_deg: f64, ignition: bool) -> Record {
    let mut record = support::position(time_ms, 54.68, speed_kmh, course_deg);
    record.attributes.set(attr::IGNITION, ignition);
    record
}

fn alerts_of_kind(http: u16, kind: &str) -> Vec<Value> {
    let (status, body) = support::http_get(http, &format!("/api/v1/alerts?kind={kind}"));
    assert_eq!(status, 200, "{body}");
    body["alerts"].as_array().expect("alerts").clone()
}

fn events(subscriber: &Subscriber) -> Vec<Value> {
    subscriber
        .messages()
        .into_iter()
        .filter(|(topic, _)| topic == &format!("drover/devices/{IMEI}/event"))
        .map(|(_, event)| event)
        .collect()
}

#[test]
fn the_idling_plugin_raises_idling_and_derives_how_long() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ports = Ports::free();
    let _node = serve_example("idling", dir.path(), ports, ("IDLING_MIN_SECS", "60"));
    let subscriber = Subscriber::start(dir.path(), ports.mqtt, &["drover/devices/+/event"]);
    let mut tracker = Tracker::connect(ports.teltonika, now_ms());
    let start = now_ms() - 120_000;
    // Ninety seconds standing with the engine on, then away.
    let mut records: Vec<Record> = (0..10)
        .map(|i| fix(start + i * 10_000, 0.0, 0.0, true))
        .collect();
    records.push(fix(start + 100_000, 40.0, 0.0, true));
    tracker.send_records(&records);

    assert!(
        support::eventually(Duration::from_secs(15), || {
            alerts_of_kind(ports.http, "idling")
                .iter()
                .any(|a| a["state"] == "closed")
        }),
        "an idling alert opened and closed: {:?}",
        alerts_of_kind(ports.http, "idling")
    );
    let alert = &alerts_of_kind(ports.http, "idling")[0];
    assert_eq!(alert["severity"], "warning");
    let (_, device) = support::http_get(ports.http, &format!("/api/v1/devices/{IMEI}"));
    assert_eq!(
        device["state"]["attributes"]["idling_s"], 100,
        "the stay's length, live: {device}"
    );
    assert!(
        support::eventually(Duration::from_secs(10), || {
            events(&subscriber)
                .iter()
                .any(|e| e["attributes"]["idling_s"] == 100)
        }),
        "the derived attribute on MQTT: {:?}",
        events(&subscriber)
    );
}

#[test]
fn the_cornering_plugin_raises_harsh_cornering() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ports = Ports::free();
    let _node = serve_example("cornering", dir.path(), ports, ("CORNERING_MS2", "4.0"));
    let mut tracker = Tracker::connect(ports.teltonika, now_ms());
    let start = now_ms() - 10_000;
    // A gentle bend at 50 km/h (5° a second: 1.2 m/s²), then a 45° swerve
    // in a second (10.9 m/s²).
    tracker.send_records(&[
        fix(start, 50.0, 0.0, true),
        fix(start + 1_000, 50.0, 5.0, true),
        fix(start + 2_000, 50.0, 10.0, true),
        fix(start + 3_000, 50.0, 55.0, true),
    ]);
    assert!(
        support::eventually(Duration::from_secs(15), || !alerts_of_kind(
            ports.http,
            "harsh_cornering"
        )
        .is_empty()),
        "no harsh_cornering alert"
    );
    let alerts = alerts_of_kind(ports.http, "harsh_cornering");
    assert_eq!(alerts.len(), 1, "the bend is not harsh: {alerts:?}");
    let lateral = alerts[0]["details"]["lateral_ms2"]
        .as_f64()
        .expect("lateral_ms2");
    assert!((lateral - 10.9).abs() < 0.2, "{lateral}");
    let (_, device) = support::http_get(ports.http, &format!("/api/v1/devices/{IMEI}"));
    assert!(
        device["state"]["attributes"]["lateral_ms2"]
            .as_f64()
            .is_some(),
        "{device}"
    );
}
