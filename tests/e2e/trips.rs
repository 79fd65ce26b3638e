//! Trips over real TCP with the real binary: a Teltonika tracker drives,
//! stops and parks; the trip opens and closes on MQTT (read by
//! `mosquitto_sub`) with the distance of the drive, is stored and served by
//! the API (the open one while driving, the closed one after) on both
//! history backends, and a kill -9 in the middle of the trip loses none of
//! it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use drover_protocols::model::{Fix, Record, RecordKind, attr};
use drover_protocols::teltonika::device::{Codec, avl_packet};
use drover_testkit::Influxd;
use serde_json::Value;

use crate::support::{self, Ports, Subscriber};

pub(crate) const IMEI: &str = "356307042441013";
const STEP_MS: i64 = 10_000;
const M_PER_DEG: f64 = 111_195.0;

/// A stop of a minute ends a trip, so the test parks for only a little
/// longer.
fn settings() -> Vec<String> {
    vec!["analytics.trips.min_stop_secs=60".to_owned()]
}

/// A tracker on a straight road north: 10 s between fixes.
pub(crate) struct Tracker {
    socket: TcpStream,
    time_ms: i64,
    lat: f64,
    /// Along the fixes sent, from the first.
    driven_m: f64,
    sent: usize,
}

impl Tracker {
    pub(crate) fn connect(port: u16, start_ms: i64) -> Tracker {
        let mut socket = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a read timeout");
        let mut login = vec![0x00, 0x0f];
        login.extend_from_slice(IMEI.as_bytes());
        socket.write_all(&login).expect("login");
        let mut accepted = [0u8; 1];
        socket.read_exact(&mut accepted).expect("login answer");
        assert_eq!(accepted, [1], "the tracker is accepted");
        Tracker {
            socket,
            time_ms: start_ms,
            lat: 54.68,
            driven_m: 0.0,
            sent: 0,
        }
    }

    /// `count` fixes, each `metres` further north at `kmh`, in one packet,
    /// and waits for its ack.
    fn send(&mut self, count: usize, kmh: f64, ignition: bool) {
        let metres = kmh / 3.6 * (STEP_MS as f64 / 1000.0);
        let records: Vec<Record> = (0..count)
            .map(|_| {
                self.time_ms += STEP_MS;
                self.lat += metres / M_PER_DEG;
                if self.sent > 0 {
                    self.driven_m += metres;
                }
                self.sent += 1;
                let mut record = Record {
                    time_ms: self.time_ms,
                    kind: RecordKind::Position,
                    fix: Some(Fix {
                        lat: self.lat,
                        lon: 25.28,
                        speed_kmh: kmh,
                        course_deg: 0.0,
                        altitude_m: Some(100.0),
                        satellites: Some(9),
                        valid: true,
                    }),
                    ..Record::default()
                };
                record.attributes.set(attr::IGNITION, ignition);
                record
            })
            .collect();
        self.send_records(&records);
    }

    /// `records` in one packet; waits for its ack.
    pub(crate) fn send_records(&mut self, records: &[Record]) {
        self.socket
            .write_all(&avl_packet(Codec::Codec8, records))
            .expect("send the packet");
        let mut ack = [0u8; 4];
        self.socket.read_exact(&mut ack).expect("the packet's ack");
        assert_eq!(
            u32::from_be_bytes(ack) as usize,
            records.len(),
            "acked by count"
        );
    }
}

/// Device time an hour ago, so the whole drive is in the past like a
/// buffer the tracker sends; trips follow the device's clock.
fn an_hour_ago() -> i64 {
    drover_protocols::model::now_ms() - 3_600_000
}

/// The trip messages `subscriber` got, in order.
fn trips(subscriber: &Subscriber) -> Vec<Value> {
    subscriber
        .messages()
        .into_iter()
        .filter(|(topic, _)| topic == &format!("drover/devices/{IMEI}/trip"))
        .map(|(_, trip)| trip)
        .collect()
}

fn closed(subscriber: &Subscriber) -> Vec<Value> {
    trips(subscriber)
        .into_iter()
        .filter(|t| t["open"] == false)
        .collect()
}

fn assert_distance(trip: &Value, expected_m: f64) {
    let distance = trip["distance_m"].as_f64().expect("distance_m");
    assert!(
        (distance - expected_m).abs() <= expected_m * 0.02,
        "distance {distance} m, driven {expected_m} m: {trip}"
    );
}

/// The device's trips through the API, from a day before `start`.
fn api_trips(http: u16, start: i64) -> Vec<Value> {
    let from = time::OffsetDateTime::from_unix_timestamp((start - 86_400_000) / 1000)
        .expect("a time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339");
    let (status, body) =
        support::http_get(http, &format!("/api/v1/devices/{IMEI}/trips?from={from}"));
    assert_eq!(status, 200, "{body}");
    body["trips"].as_array().expect("trips").clone()
}

/// Drives, stops and parks; checks MQTT, then the API (which reads the
/// closed trip from the history backend).
fn drive_and_stop(settings: &[String]) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (_node, ports) = support::drover_serve(dir.path(), settings);
    let subscriber = Subscriber::start(
        dir.path(),
        ports.mqtt,
        &["drover/devices/+/trip", "drover/devices/+/stop"],
    );
    let start = an_hour_ago();
    let mut tracker = Tracker::connect(ports.teltonika, start);
    tracker.send(30, 36.0, true);
    let driven = tracker.driven_m;
    assert!(
        support::eventually(Duration::from_secs(15), || {
            api_trips(ports.http, start)
                .first()
                .is_some_and(|t| t["open"] == true)
        }),
        "the open trip is not served: {:?}",
        api_trips(ports.http, start)
    );
    tracker.send(9, 0.0, false);

    assert!(
        support::eventually(Duration::from_secs(15), || !closed(&subscriber).is_empty()),
        "no closed trip on MQTT; got {:?}",
        trips(&subscriber)
    );
    let all = trips(&subscriber);
    assert_eq!(all.len(), 2, "opened, then closed: {all:?}");
    let (opened, closed) = (&all[0], &all[1]);
    assert_eq!(opened["open"], true);
    assert_eq!(opened["end"], Value::Null);
    assert_eq!(opened["id"], closed["id"]);
    assert_eq!(closed["device"], IMEI);
    assert_distance(closed, driven);
    assert_eq!(closed["duration_s"].as_f64(), Some(300.0), "{closed}");
    assert_eq!(closed["max_speed_kmh"].as_f64(), Some(36.0));
    let started = time::OffsetDateTime::parse(
        closed["start"]["time"].as_str().expect("start time"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    assert_eq!(
        started.unix_timestamp_nanos() / 1_000_000,
        i128::from(start + STEP_MS)
    );

    // Published as it closes, stored a moment after.
    let closed_and_stored = |trips: &[Value]| trips.len() == 1 && trips[0]["open"] == false;
    assert!(
        support::eventually(Duration::from_secs(10), || closed_and_stored(&api_trips(
            ports.http, start
        ))),
        "one trip, closed: {:?}",
        api_trips(ports.http, start)
    );
    let stored = api_trips(ports.http, start);
    let served = &stored[0];
    assert_eq!(served["open"], false, "{served}");
    for field in [
        "id",
        "device",
        "start",
        "end",
        "duration_s",
        "max_speed_kmh",
    ] {
        assert_eq!(
            served[field], closed[field],
            "{field}: {served} vs {closed}"
        );
    }
    assert_distance(served, driven);
    let (_, health) = support::http_get(ports.http, "/health");
    assert_eq!(health["engine"]["analytics_dropped"], 0, "{health}");

    // The day's summary counts it.
    let day = time::OffsetDateTime::from_unix_timestamp(start / 1000)
        .expect("a time")
        .date()
        .to_string();
    let (status, summaries) = support::http_get(
        ports.http,
        &format!("/api/v1/devices/{IMEI}/summaries?from={day}&to={day}"),
    );
    assert_eq!(status, 200, "{summaries}");
    let summary = &summaries["summaries"][0];
    assert_eq!(
        (summary["date"].as_str(), summary["trips"].as_u64()),
        (Some(day.as_str()), Some(1)),
        "{summaries}"
    );
    assert_distance(summary, driven);
    assert_eq!(summary["max_speed_kmh"].as_f64(), Some(36.0));
    let (status, _) = support::http_get(
        ports.http,
        &format!("/api/v1/devices/{IMEI}/summaries?from=2026-12-31&to=2026-01-01"),
    );
    assert_eq!(status, 400, "a range backwards");

    // The engine ran while the ignition was on: 30 fixes 10 s apart, and
    // the 10 s to the first one with it off.
    let (_, device) = support::http_get(ports.http, &format!("/api/v1/devices/{IMEI}"));
    let usage = &device["state"]["usage"];
    assert_eq!(
        (usage["engine_ms"].as_i64(), &usage["ignition_source"]),
        (Some(300_000), &Value::from("reported")),
        "{device}"
    );
    let odometer = device["state"]["odometer_m"].as_f64().expect("odometer_m");
    assert!(
        (odometer - driven).abs() <= driven * 0.02,
        "{odometer} vs {driven}"
    );
    // The stop it stands in, as `GET …/stops` shows stops.
    let stop = &device["state"]["stop"];
    assert_eq!(stop["start"], closed["end"], "{device}");
    assert_eq!(stop["open"], true, "{device}");

    // Driving off ends the stop where the next trip starts.
    tracker.send(3, 36.0, true);
    let stop_changes = |subscriber: &Subscriber| {
        subscriber
            .messages()
            .into_iter()
            .filter(|(topic, _)| topic == &format!("drover/devices/{IMEI}/stop"))
            .map(|(_, stop)| stop)
            .collect::<Vec<Value>>()
    };
    assert!(
        support::eventually(Duration::from_secs(15), || stop_changes(&subscriber).len()
            == 2),
        "the stop opened and closed: {:?}",
        stop_changes(&subscriber)
    );
    let published = stop_changes(&subscriber);
    assert_eq!(
        (&published[0]["open"], &published[1]["open"]),
        (&Value::from(true), &Value::from(false))
    );
    let from = closed["start"]["time"].as_str().expect("a time");
    let (status, body) = support::http_get(
        ports.http,
        &format!("/api/v1/devices/{IMEI}/stops?from={from}"),
    );
    assert_eq!(status, 200, "{body}");
    let stops = body["stops"].as_array().expect("stops");
    assert_eq!(stops.len(), 1, "{body}");
    for field in ["id", "start", "end", "duration_s"] {
        assert_eq!(stops[0][field], published[1][field], "{field}: {body}");
    }
    assert_eq!(stops[0]["start"], closed["end"]);
    // From the first parked fix to the last one, where the next trip
    // starts: 8 steps.
    assert_eq!(stops[0]["duration_s"].as_f64(), Some(80.0), "{body}");
}

#[test]
fn a_drive_and_a_stop_give_a_trip_on_mqtt_and_in_the_store() {
    drive_and_stop(&settings());
}

#[test]
fn trips_are_stored_in_influxdb_too() {
    let influxd = Influxd::start().unwrap_or_else(|e| panic!("{e}"));
    let mut settings = settings();
    settings.push("storage.backend=influxdb".to_owned());
    settings.push(format!("storage.influxdb.url={}", influxd.url()));
    drive_and_stop(&settings);
}

#[test]
fn a_trip_interrupted_by_a_kill_continues_after_the_restart() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ports = Ports::free();
    let node = support::drover_serve_on(dir.path(), ports, &settings());
    let mut tracker = Tracker::connect(ports.teltonika, an_hour_ago());
    tracker.send(20, 50.0, true);
    node.kill9();

    let _node = support::drover_serve_on(dir.path(), ports, &settings());
    let subscriber = Subscriber::start(dir.path(), ports.mqtt, &["drover/devices/+/trip"]);
    let mut tracker = Tracker {
        socket: Tracker::connect(ports.teltonika, tracker.time_ms).socket,
        ..tracker
    };
    tracker.send(20, 50.0, true);
    let driven = tracker.driven_m;
    tracker.send(9, 0.0, false);

    assert!(
        support::eventually(Duration::from_secs(15), || !closed(&subscriber).is_empty()),
        "no closed trip after the restart; got {:?}",
        trips(&subscriber)
    );
    let closed = closed(&subscriber);
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_distance(&closed[0], driven);
}

#[test]
fn yesterdays_summary_is_published_at_the_configured_time() {
    use time::OffsetDateTime;
    // Due a little after the node is up: yesterday is the day before then.
    let due = OffsetDateTime::now_utc() + Duration::from_secs(15);
    let yesterday = due.date().previous_day().expect("a day");
    let at = format!("{:02}:{:02}:{:02}", due.hour(), due.minute(), due.second());
    let mut settings = settings();
    settings.extend([
        "analytics.summaries.timezone=UTC".to_owned(),
        format!("analytics.summaries.at={at}"),
    ]);
    let dir = tempfile::tempdir().expect("temporary directory");
    let (_node, ports) = support::drover_serve(dir.path(), &settings);
    let subscriber = Subscriber::start(dir.path(), ports.mqtt, &["drover/devices/+/summary"]);
    let noon = yesterday.midnight().assume_utc() + time::Duration::hours(12);
    let start = i64::try_from(noon.unix_timestamp_nanos() / 1_000_000).expect("ms");
    let mut tracker = Tracker::connect(ports.teltonika, start);
    tracker.send(30, 36.0, true);
    tracker.send(9, 0.0, false);
    let driven = tracker.driven_m;

    let topic = format!("drover/devices/{IMEI}/summary");
    let summary = || {
        subscriber
            .messages()
            .into_iter()
            .find(|(t, _)| *t == topic)
            .map(|(_, summary)| summary)
    };
    assert!(
        support::eventually(Duration::from_secs(40), || summary().is_some()),
        "no summary at {at}: {:?}",
        subscriber.messages()
    );
    let summary = summary().expect("a summary");
    assert_eq!(summary["date"], yesterday.to_string(), "{summary}");
    assert_eq!(
        (
            &summary["device"],
            &summary["timezone"],
            summary["trips"].as_u64()
        ),
        (&Value::from(IMEI), &Value::from("UTC"), Some(1)),
        "{summary}"
    );
    assert_distance(&summary, driven);
}
