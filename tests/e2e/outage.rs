//! A broker outage under load: devices are acknowledged at the same rate
//! while Mosquitto is down, and every acknowledged position is published once
//! it is back.
//!
//! The node publishes to a broker that goes down; the subscriber reads a
//! second broker that stays up, bridged to the first with a persistent
//! session, which keeps what the node publishes again before the bridge is
//! back. The first broker stops cleanly and keeps that session on disk,
//! so whatever it acknowledged to the node reaches the subscriber: a broker
//! killed with SIGKILL would lose what it had acknowledged and not yet
//! forwarded, which is the broker's durability, not the node's. For the node
//! the outage is the same: its connection drops with publications
//! unacknowledged, and nothing answers for 10 s.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use crate::durability::{assert_all_published, external_broker, teltonika_load};
use crate::support::{self, Ports, Process, Sim, Subscriber};

/// Lets a burst of replayed positions wait at a broker for as long as it
/// takes: past `max_queued_messages` Mosquitto drops QoS 1 messages.
const UNBOUNDED_QUEUES: &str = "max_queued_messages 0\n";

/// Mosquitto on `port` with `conf` appended to its configuration, logging to
/// `dir/{name}.log`.
fn mosquitto(dir: &Path, name: &str, port: u16, conf: &str) -> Process {
    support::require("mosquitto");
    let path = dir.join(format!("{name}.conf"));
    let common = format!("listener {port} 127.0.0.1\nallow_anonymous true\nlog_dest stderr\n");
    std::fs::write(&path, common + UNBOUNDED_QUEUES + conf).expect("writing a mosquitto.conf");
    let process = Process::spawn(
        "mosquitto",
        Command::new("mosquitto")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(support::log_file(dir, &format!("{name}.log"))),
    );
    support::wait_for_port(port, name);
    process
}

/// The broker the node publishes to, its sessions saved in `dir` when it stops.
fn outage_broker(dir: &Path, port: u16) -> Process {
    // Started as root, Mosquitto would switch to a user that cannot write to
    // the test's directory; `user` is ignored otherwise.
    let conf = format!(
        "persistence true\npersistence_location {}/\nuser root\n",
        dir.display()
    );
    mosquitto(dir, "outage-broker", port, &conf)
}

/// The subscriber's broker, taking the node's positions from `outage_port`
/// over a bridge whose session outlives the outage broker's restart.
fn subscriber_broker(dir: &Path, port: u16, outage_port: u16) -> Process {
    let conf = format!(
        "connection outage\naddress 127.0.0.1:{outage_port}\n\
         topic drover/devices/+/position in 1\ncleansession false\n\
         clientid drover-test-bridge\nrestart_timeout 1\nnotifications false\n"
    );
    mosquitto(dir, "subscriber-broker", port, &conf)
}

/// Records acked per second between `from` and `to` (seconds into the run),
/// from the samples of the report's timeline that fall in between.
pub fn ack_rate(report: &Value, from: f64, to: f64) -> f64 {
    let samples: Vec<(f64, f64)> = report["timeline"]
        .as_array()
        .expect("a timeline")
        .iter()
        .map(|s| {
            let t = s["t_s"].as_f64().expect("t_s");
            (t, s["records_acked_total"].as_f64().expect("a total"))
        })
        .filter(|(t, _)| (from..=to).contains(t))
        .collect();
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        panic!("no timeline samples between {from} s and {to} s: {report}");
    };
    assert!(
        last.0 - first.0 >= 5.0,
        "too few samples between {from} s and {to} s"
    );
    (last.1 - first.1) / (last.0 - first.0)
}

/// Seconds from the simulator's start to `at`.
pub fn into_run(report: &Value, at: OffsetDateTime) -> f64 {
    let started = OffsetDateTime::parse(
        report["started_at"].as_str().expect("started_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("an RFC 3339 start");
    (at - started).as_seconds_f64()
}

/// The MQTT sink's saved journal cursor and the committed end of the journal.
fn mqtt_cursor(http: u16) -> (u64, u64) {
    let (_, health) = support::http_get(http, "/health");
    let journal = &health["journal"];
    match (
        journal["cursors"]["mqtt"].as_u64(),
        journal["committed"].as_u64(),
    ) {
        (Some(cursor), Some(committed)) => (cursor, committed),
        _ => panic!("no MQTT cursor in {health}"),
    }
}

/// What the node showed while its broker was down.
struct Outage {
    down: OffsetDateTime,
    up: OffsetDateTime,
    /// (MQTT cursor, committed) early in the outage and at its end.
    early: (u64, u64),
    late: (u64, u64),
}

/// Stops `broker` for 10 s and starts it again on `port`.
fn broker_outage(dir: &Path, broker: Process, port: u16, http: u16) -> (Process, Outage) {
    assert!(broker.interrupt().success(), "the broker stops cleanly");
    let down = OffsetDateTime::now_utc();
    // Long enough for a confirmation under way when the broker went to fail.
    std::thread::sleep(Duration::from_secs(1));
    let early = mqtt_cursor(http);
    std::thread::sleep(Duration::from_secs(9));
    let late = mqtt_cursor(http);
    let up = OffsetDateTime::now_utc();
    let outage = Outage {
        down,
        up,
        early,
        late,
    };
    (outage_broker(dir, port), outage)
}

/// Acks went on at the rate of the seconds before the outage (±25%).
fn assert_acks_kept_pace(report: &Value, outage: &Outage) {
    let (down, up) = (into_run(report, outage.down), into_run(report, outage.up));
    // From the first full second after the ramp (1 s).
    let before = ack_rate(report, 2.0, down);
    let during = ack_rate(report, down, up);
    assert!(
        (during - before).abs() <= 0.25 * before,
        "acks per second: {before:.0} before the outage, {during:.0} during it"
    );
}

fn assert_mqtt_sink_caught_up(http: u16) {
    let caught_up = support::eventually(Duration::from_secs(30), || {
        let (cursor, committed) = mqtt_cursor(http);
        cursor == committed
    });
    assert!(
        caught_up,
        "the MQTT sink never confirmed every record after the outage: {}",
        support::http_get(http, "/health").1
    );
}

/// Also the regression test of a stall: rumqttc reported a publication as
/// sent just before its connection failed and then dropped it, the publisher
/// counted it in flight for ever, and every confirmation of the MQTT sink
/// timed out (3 runs out of 35 before the fix).
#[test]
fn a_broker_outage_under_load_neither_slows_acks_nor_loses_positions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let outage_port = support::free_port();
    let broker = outage_broker(dir, outage_port);
    let subscriber_port = support::free_port();
    let _bridged = subscriber_broker(dir, subscriber_port, outage_port);
    let subscriber = Subscriber::start(dir, subscriber_port, &["drover/devices/+/position"]);
    let ports = Ports::free();
    let server = support::drover_serve_on(dir, ports, &external_broker(outage_port));
    let sim = Sim::start(dir, &ports, &teltonika_load(60, 30));
    std::thread::sleep(Duration::from_secs(10));
    let (_broker, outage) = broker_outage(dir, broker, outage_port, ports.http);
    let (report, records) = sim.finish();

    let (early, late) = (outage.early, outage.late);
    assert!(
        late.0 == early.0 && late.1 > early.1,
        "records were committed during the outage, but none can count as published: \
         (MQTT cursor, committed) {early:?} then {late:?}"
    );
    assert_eq!(
        report["records_acked"], report["records_sent"],
        "every record was acked: {report}"
    );
    assert_acks_kept_pace(&report, &outage);
    assert_mqtt_sink_caught_up(ports.http);
    assert_all_published(&subscriber, &support::acked_by_device(&records));
    assert!(server.interrupt().success());
}
