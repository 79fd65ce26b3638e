//! Every acknowledged position reaches MQTT, with the coordinates the device
//! sent, whether Drover publishes to its embedded broker or to Mosquitto.

use std::time::Duration;

use serde_json::Value;

use crate::support::{self, Subscriber};

/// 200 simulated devices (half GT06, half Teltonika) for 10 s, then checks
/// with a real `mosquitto_sub` that every acked position was published.
fn every_acked_position_arrives(dir: &std::path::Path, mqtt_port: u16, serve_settings: &[String]) {
    let (server, ports) = support::drover_serve(dir, serve_settings);
    let subscriber = Subscriber::start(
        dir,
        mqtt_port,
        &["drover/devices/+/position", "drover/devices/+/status"],
    );
    let (report, records) = support::drover_sim(
        dir,
        &ports,
        mqtt_port,
        &[
            "--devices",
            "200",
            "--duration",
            "10",
            "--ramp",
            "2",
            "--rate",
            "1",
        ],
    );

    let acked: Vec<&Value> = records.iter().filter(|r| r["acked"] == true).collect();
    assert_eq!(report["connections"]["established"], 200, "{report}");
    // A floor, not a speed: 200 devices × 10 s × 1 msg/s send about 2,000.
    assert!(
        acked.len() >= 200 * 5,
        "too few acked positions: {}",
        acked.len()
    );
    assert_eq!(
        report["records_acked"].as_u64(),
        Some(acked.len() as u64),
        "{report}"
    );

    let complete = support::eventually(Duration::from_secs(15), || {
        let seen = support::positions_by_key(&subscriber.messages());
        acked.iter().all(|r| seen.contains_key(&key(r)))
    });
    let seen = support::positions_by_key(&subscriber.messages());
    let missing: Vec<_> = acked
        .iter()
        .filter(|r| !seen.contains_key(&key(r)))
        .take(5)
        .collect();
    assert!(
        complete,
        "{} acked positions never reached MQTT, e.g. {missing:?}",
        acked.iter().filter(|r| !seen.contains_key(&key(r))).count()
    );
    for record in &acked {
        let (lat, lon) = seen[&key(record)];
        let sent = (
            record["lat"].as_f64().unwrap_or(f64::NAN),
            record["lon"].as_f64().unwrap_or(f64::NAN),
        );
        // GT06 resolves 1/1,800,000 of a degree; Teltonika 1e-7.
        assert!(
            (lat - sent.0).abs() < 1e-5 && (lon - sent.1).abs() < 1e-5,
            "{record}: MQTT says {lat},{lon}"
        );
    }
    // Each device went online when it logged in and offline when the
    // simulator closed its connection at the end.
    let went_offline = support::eventually(Duration::from_secs(10), || {
        last_status_by_device(&subscriber.lines())
            .values()
            .filter(|s| s.as_str() == "offline")
            .count()
            == 200
    });
    let statuses = last_status_by_device(&subscriber.lines());
    assert_eq!(statuses.len(), 200, "devices with a status");
    assert!(went_offline, "not every device went offline: {statuses:?}");
    assert!(
        subscriber
            .lines()
            .iter()
            .filter(|(t, p)| t.ends_with("/status") && p == "online")
            .count()
            >= 200,
        "every device announced online"
    );

    let status = server.interrupt();
    assert!(status.success(), "drover serve exited with {status}");
}

/// The last status payload per device topic.
fn last_status_by_device(lines: &[(String, String)]) -> std::collections::HashMap<String, String> {
    lines
        .iter()
        .filter(|(topic, _)| topic.ends_with("/status"))
        .map(|(topic, payload)| (topic.clone(), payload.clone()))
        .collect()
}

fn key(record: &Value) -> (String, i64) {
    (
        record["device"].as_str().unwrap_or_default().to_owned(),
        record["time_ms"].as_i64().unwrap_or_default(),
    )
}

#[test]
fn embedded_broker_delivers_every_acked_position() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mqtt_port = support::free_port();
    every_acked_position_arrives(
        dir.path(),
        mqtt_port,
        &[format!("mqtt.embedded_listen=127.0.0.1:{mqtt_port}")],
    );
}

#[test]
fn external_mosquitto_delivers_every_acked_position() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_mosquitto, mqtt_port) = support::mosquitto(dir.path());
    every_acked_position_arrives(
        dir.path(),
        mqtt_port,
        &[
            "mqtt.embedded_listen=".to_owned(),
            format!("mqtt.url=mqtt://127.0.0.1:{mqtt_port}"),
        ],
    );
}
