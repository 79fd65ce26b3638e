//! The node's sentinels with the real binary: a nearly full disk and an
//! InfluxDB that goes away raise `system_…` alerts on the node's own
//! entity (`drover`), published on MQTT even while the history backend is
//! down, handled through the API, and closed when the condition ends.

use std::time::Duration;

use drover_protocols::model::{Record, now_ms};
use drover_testkit::Influxd;
use serde_json::Value;

use crate::support::{self, Ports, Subscriber, admin_token, http};
use crate::trips::Tracker;

fn system_alerts(subscriber: &Subscriber) -> Vec<Value> {
    subscriber
        .messages()
        .into_iter()
        .filter(|(topic, _)| topic == "drover/devices/drover/alert")
        .map(|(_, alert)| alert)
        .collect()
}

fn fix(time_ms: i64) -> Record {
    support::position(time_ms, 54.68, 30.0, 0.0)
}

#[test]
fn a_nearly_full_disk_raises_system_disk_low_which_an_operator_can_close() {
    let dir = tempfile::tempdir().expect("temporary directory");
    // Any disk is "nearly full" when less than 100% free is too little.
    let settings = [
        "analytics.sentinel.every_secs=1".to_owned(),
        "analytics.sentinel.disk_free_pct=100".to_owned(),
    ];
    let (_node, ports) = support::drover_serve(dir.path(), &settings);
    let listed = |query: &str| {
        let (status, body) = support::http_get(ports.http, &format!("/api/v1/alerts?{query}"));
        assert_eq!(status, 200, "{body}");
        body["alerts"].as_array().expect("alerts").clone()
    };
    assert!(
        support::eventually(Duration::from_secs(15), || !listed("kind=system_disk_low")
            .is_empty()),
        "no system_disk_low alert"
    );
    let alert = listed("kind=system_disk_low")[0].clone();
    assert_eq!(
        (alert["device"].as_str(), alert["severity"].as_str()),
        (Some("drover"), Some("critical"))
    );
    assert!(alert["details"]["free_pct"].as_f64().is_some(), "{alert}");
    let id = alert["id"].as_str().expect("an id");
    let (status, closed) = http(
        ports.http,
        "POST",
        &format!("/api/v1/alerts/{id}/close"),
        Some(&admin_token(ports.http)),
        None,
    );
    assert_eq!(
        (status, closed["state"].as_str()),
        (200, Some("closed")),
        "{closed}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        listed("kind=system_disk_low").len(),
        1,
        "closed while it lasts: not raised again"
    );
    let (_, devices) = support::http_get(ports.http, "/api/v1/devices");
    assert!(
        !devices.to_string().contains("\"drover\""),
        "the node is not a device: {devices}"
    );
}

#[test]
fn influxdb_going_away_raises_system_sink_failing_on_mqtt_and_it_closes_when_back() {
    let mut influxd = Influxd::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().expect("temporary directory");
    let ports = Ports::free();
    let settings = [
        "analytics.sentinel.every_secs=1".to_owned(),
        "storage.backend=influxdb".to_owned(),
        format!("storage.influxdb.url={}", influxd.url()),
        "storage.influxdb.flush_ms=100".to_owned(),
    ];
    let _node = support::drover_serve_on(dir.path(), ports, &settings);
    let subscriber = Subscriber::start(dir.path(), ports.mqtt, &["drover/devices/drover/alert"]);
    std::thread::sleep(Duration::from_millis(500));
    influxd.stop().unwrap_or_else(|e| panic!("{e}"));
    let mut tracker = Tracker::connect(ports.teltonika, now_ms());
    tracker.send_records(&[fix(now_ms() - 1_000), fix(now_ms())]);

    let failing = |state: &str| {
        system_alerts(&subscriber).iter().any(|a| {
            a["kind"] == "system_sink_failing" && a["subject"] == "influxdb" && a["state"] == state
        })
    };
    assert!(
        support::eventually(Duration::from_secs(30), || failing("open")),
        "no system_sink_failing on MQTT while InfluxDB is down: {:?}",
        system_alerts(&subscriber)
    );
    influxd.restart().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        support::eventually(Duration::from_secs(60), || failing("closed")),
        "system_sink_failing did not close once InfluxDB was back: {:?}",
        system_alerts(&subscriber)
    );
}

#[test]
fn a_broker_that_goes_away_raises_system_broker_unreachable_until_it_is_back() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (mosquitto, port) = support::mosquitto(dir.path());
    let settings = [
        "analytics.sentinel.every_secs=1".to_owned(),
        "mqtt.embedded_listen=".to_owned(),
        format!("mqtt.url=mqtt://127.0.0.1:{port}"),
    ];
    let (_node, ports) = support::drover_serve(dir.path(), &settings);
    let listed = |state: &str| {
        let (status, body) = support::http_get(
            ports.http,
            &format!("/api/v1/alerts?kind=system_broker_unreachable&state={state}"),
        );
        assert_eq!(status, 200, "{body}");
        body["alerts"].as_array().expect("alerts").len()
    };
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(listed("open"), 0, "connected: nothing to say");

    mosquitto.kill9();
    assert!(
        support::eventually(Duration::from_secs(20), || listed("open") == 1),
        "no system_broker_unreachable while the broker is down"
    );
    // The same broker again, on the same port.
    let _back = support::Process::spawn(
        "mosquitto",
        std::process::Command::new("mosquitto")
            .arg("-c")
            .arg(dir.path().join("mosquitto.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    assert!(
        support::eventually(Duration::from_secs(30), || listed("closed") == 1),
        "system_broker_unreachable did not close once the broker was back"
    );
}
