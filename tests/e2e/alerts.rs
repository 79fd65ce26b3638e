//! Alerts over real TCP with the real binary, on both history backends: a
//! Teltonika tracker speeds and presses SOS; the alerts arrive on MQTT
//! (read by `mosquitto_sub`), are listed by the API, acknowledged and
//! closed by an operator (a viewer may not), and an open alert survives a
//! restart without being raised twice.

use std::path::Path;
use std::time::Duration;

use drover_protocols::model::{Record, attr, now_ms};
use drover_testkit::Influxd;
use serde_json::{Value, json};

use crate::support::{self, Ports, Subscriber, admin_token, assert_error, http, login_as};
use crate::trips::{IMEI, Tracker};

fn settings() -> Vec<String> {
    vec![
        "analytics.overspeed.limit_kmh=90".to_owned(),
        "analytics.overspeed.min_duration_secs=10".to_owned(),
    ]
}

fn fix(time_ms: i64, speed_kmh: f64) -> Record {
    support::position(time_ms, 54.68, speed_kmh, 0.0)
}

fn alert_messages(subscriber: &Subscriber) -> Vec<Value> {
    subscriber
        .messages()
        .into_iter()
        .filter(|(topic, _)| topic == &format!("drover/devices/{IMEI}/alert"))
        .map(|(_, alert)| alert)
        .collect()
}

fn list(http_port: u16, query: &str) -> Vec<Value> {
    let (status, body) = support::http_get(http_port, &format!("/api/v1/alerts?{query}"));
    assert_eq!(status, 200, "{body}");
    body["alerts"].as_array().expect("alerts").clone()
}

fn by_kind<'a>(alerts: &'a [Value], kind: &str) -> &'a Value {
    alerts
        .iter()
        .find(|a| a["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} alert in {alerts:?}"))
}

/// Ten seconds and more over the limit, then an SOS, all just now.
fn speed_and_press_sos(tracker: &mut Tracker) {
    let now = now_ms();
    let mut records: Vec<Record> = (0..4)
        .map(|i| fix(now - 40_000 + i * 5_000, 120.0))
        .collect();
    let mut sos = fix(now - 5_000, 118.0);
    sos.attributes.set(attr::ALARM, "sos");
    records.push(sos);
    tracker.send_records(&records);
}

fn raise_and_handle(dir: &Path, settings: &[String]) {
    let ports = Ports::free();
    let node = support::drover_serve_on(dir, ports, settings);
    let subscriber = Subscriber::start(dir, ports.mqtt, &["drover/devices/+/alert"]);
    let mut tracker = Tracker::connect(ports.teltonika, now_ms());
    speed_and_press_sos(&mut tracker);

    assert!(
        support::eventually(Duration::from_secs(15), || alert_messages(&subscriber)
            .len()
            >= 2),
        "two alerts on MQTT; got {:?}",
        alert_messages(&subscriber)
    );
    let published = alert_messages(&subscriber);
    let sos = by_kind(&published, "sos");
    assert_eq!(
        (sos["state"].as_str(), sos["severity"].as_str()),
        (Some("open"), Some("critical"))
    );
    assert_eq!(sos["device"], IMEI);
    let overspeed = by_kind(&published, "overspeed");
    assert_eq!(overspeed["details"]["limit_kmh"], 90.0, "{overspeed}");

    // Published as they open, stored a moment after.
    let query = format!("device={IMEI}&state=open");
    assert!(
        support::eventually(Duration::from_secs(10), || list(ports.http, &query).len()
            == 2),
        "{:?}",
        list(ports.http, &query)
    );
    let open = list(ports.http, &query);
    let stored = by_kind(&open, "sos");
    for field in ["id", "kind", "severity", "state", "opened_at"] {
        assert_eq!(stored[field], sos[field], "{field}: {stored} vs {sos}");
    }
    let id = sos["id"].as_str().expect("an id").to_owned();

    // A viewer may read but not act.
    let admin = admin_token(ports.http);
    let viewer = json!({"username": "vic", "password": "vic's password", "role": "viewer"});
    assert_eq!(
        http(
            ports.http,
            "POST",
            "/api/v1/users",
            Some(&admin),
            Some(&viewer)
        )
        .0,
        201
    );
    let vic = login_as(ports.http, "vic", "vic's password");
    let acknowledge = format!("/api/v1/alerts/{id}/acknowledge");
    let close = format!("/api/v1/alerts/{id}/close");
    assert_error(
        &http(ports.http, "POST", &acknowledge, Some(&vic), None),
        403,
        "forbidden",
        "viewer",
    );

    let (status, acked) = http(ports.http, "POST", &acknowledge, Some(&admin), None);
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["state"], "acknowledged");
    assert!(acked["acknowledged_at"].is_string(), "{acked}");
    let listed = list(ports.http, "state=acknowledged");
    assert_eq!(listed.len(), 1, "stored before the answer: {listed:?}");
    assert_eq!(listed[0]["id"], id.as_str());

    let (status, closed) = http(ports.http, "POST", &close, Some(&admin), None);
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["state"], "closed");
    assert_eq!(closed["acknowledged_at"], acked["acknowledged_at"]);
    assert_eq!(list(ports.http, "state=closed&kind=sos").len(), 1);
    let (status, again) = http(ports.http, "POST", &close, Some(&admin), None);
    assert_eq!(
        (status, &again["state"]),
        (200, &json!("closed")),
        "closing twice answers it as it is"
    );
    assert_error(
        &http(ports.http, "POST", &acknowledge, Some(&admin), None),
        409,
        "conflict",
        "closed",
    );
    assert_error(
        &http(
            ports.http,
            "POST",
            "/api/v1/alerts/nope/close",
            Some(&admin),
            None,
        ),
        404,
        "not_found",
        "unknown alert",
    );
    for bad in ["state=shut", "limit=0", "from=yesterday", "cursor=zz%20"] {
        let answer = http(
            ports.http,
            "GET",
            &format!("/api/v1/alerts?{bad}"),
            Some(&admin),
            None,
        );
        assert_error(&answer, 400, "bad_request", bad);
    }
    assert!(
        support::eventually(Duration::from_secs(10), || alert_messages(&subscriber)
            .len()
            >= 4),
        "acknowledged and closed on MQTT too: {:?}",
        alert_messages(&subscriber)
    );
    let states: Vec<_> = alert_messages(&subscriber)
        .into_iter()
        .filter(|a| a["id"] == id.as_str())
        .map(|a| a["state"].clone())
        .collect();
    assert_eq!(states, ["open", "acknowledged", "closed"]);

    // Restarted, the overspeed alert is still open and not raised again;
    // back under the limit, it closes.
    assert!(node.interrupt().success());
    let _node = support::drover_serve_on(dir, ports, settings);
    let mut tracker = Tracker::connect(ports.teltonika, now_ms());
    let now = now_ms();
    tracker.send_records(&[fix(now - 2_000, 125.0), fix(now - 1_000, 60.0)]);
    let overspeed_id = overspeed["id"].as_str().expect("an id");
    assert!(
        support::eventually(Duration::from_secs(15), || {
            list(ports.http, "kind=overspeed")
                .iter()
                .any(|a| a["id"] == overspeed_id && a["state"] == "closed")
        }),
        "the overspeed alert closes after the restart: {:?}",
        list(ports.http, "")
    );
    assert_eq!(list(ports.http, "kind=overspeed").len(), 1, "raised once");
}

#[test]
fn alerts_reach_mqtt_the_store_and_operators() {
    let dir = tempfile::tempdir().expect("temporary directory");
    raise_and_handle(dir.path(), &settings());
}

#[test]
fn alerts_are_stored_in_influxdb_too() {
    let influxd = Influxd::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut settings = settings();
    settings.push("storage.backend=influxdb".to_owned());
    settings.push(format!("storage.influxdb.url={}", influxd.url()));
    raise_and_handle(dir.path(), &settings);
}

#[test]
fn crossing_a_geofence_made_through_the_api_raises_enter_and_exit() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (_node, ports) = support::drover_serve(dir.path(), &[]);
    let admin = admin_token(ports.http);
    let depot = json!({
        "name": "Depot",
        "geometry": {"type": "Point", "coordinates": [25.28, 54.70]},
        "radius_m": 1000,
    });
    let (status, created) = http(
        ports.http,
        "POST",
        "/api/v1/geofences",
        Some(&admin),
        Some(&depot),
    );
    assert_eq!(status, 201, "{created}");
    let geofence = created["id"].as_str().expect("an id").to_owned();
    // The engine takes the catalog's geofences within a second.
    std::thread::sleep(Duration::from_millis(1_500));

    let mut tracker = Tracker::connect(ports.teltonika, now_ms());
    let start = now_ms() - 180_000;
    let route: Vec<Record> = (0..18)
        .map(|i| {
            let mut record = fix(start + i * 10_000, 40.0);
            if let Some(fix) = record.fix.as_mut() {
                fix.lat = 54.68 + i as f64 * 0.002;
            }
            record
        })
        .collect();
    tracker.send_records(&route);
    let crossed = |alerts: &[Value]| {
        ["geofence_enter", "geofence_exit"].iter().all(|kind| {
            alerts
                .iter()
                .any(|a| a["kind"] == *kind && a["subject"] == geofence.as_str())
        })
    };
    assert!(
        support::eventually(Duration::from_secs(15), || crossed(&list(
            ports.http,
            &format!("device={IMEI}")
        ))),
        "enter and exit: {:?}",
        list(ports.http, "")
    );
    let enter = by_kind(&list(ports.http, "kind=geofence_enter"), "geofence_enter").clone();
    assert_eq!(enter["details"]["name"], "Depot", "{enter}");
    assert_eq!(enter["severity"], "info");
}

#[test]
fn a_device_registered_with_its_own_speed_limit_is_held_to_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (_node, ports) = support::drover_serve(dir.path(), &settings());
    let admin = admin_token(ports.http);
    let truck = json!({"id": IMEI, "name": "Truck", "speed_limit_kmh": 60});
    let (status, created) = http(
        ports.http,
        "POST",
        "/api/v1/devices",
        Some(&admin),
        Some(&truck),
    );
    assert_eq!((status, &created["speed_limit_kmh"]), (201, &json!(60.0)));
    for bad in [
        json!({"speed_limit_kmh": 0}),
        json!({"speed_limit_kmh": -5}),
    ] {
        let path = format!("/api/v1/devices/{IMEI}");
        assert_error(
            &http(ports.http, "PATCH", &path, Some(&admin), Some(&bad)),
            422,
            "unprocessable",
            "speed_limit_kmh",
        );
    }
    // The engine takes the catalog's limits within a second.
    std::thread::sleep(Duration::from_millis(1_500));

    // 75 km/h: within the fleet's 90, over the truck's own 60.
    let mut tracker = Tracker::connect(ports.teltonika, now_ms());
    let now = now_ms();
    let records: Vec<Record> = (0..4)
        .map(|i| fix(now - 30_000 + i * 5_000, 75.0))
        .collect();
    tracker.send_records(&records);
    assert!(
        support::eventually(Duration::from_secs(15), || !list(
            ports.http,
            "kind=overspeed"
        )
        .is_empty()),
        "an overspeed alert: {:?}",
        list(ports.http, "")
    );
    let overspeed = by_kind(&list(ports.http, "kind=overspeed"), "overspeed").clone();
    assert_eq!(overspeed["details"]["limit_kmh"], 60.0, "{overspeed}");
}

#[test]
fn an_acknowledged_alert_stays_acknowledged_after_a_kill_before_any_snapshot() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ports = Ports::free();
    // No snapshot: the restart rebuilds every alert from the journal.
    let settings = ["engine.snapshot_secs=0".to_owned()];
    let node = support::drover_serve_on(dir.path(), ports, &settings);
    let mut tracker = Tracker::connect(ports.teltonika, now_ms());
    let mut sos = fix(now_ms() - 1_000, 0.0);
    sos.attributes.set(attr::ALARM, "sos");
    tracker.send_records(&[sos]);
    assert!(
        support::eventually(Duration::from_secs(15), || list(ports.http, "kind=sos")
            .len()
            == 1),
        "no sos alert"
    );
    let id = list(ports.http, "kind=sos")[0]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let admin = admin_token(ports.http);
    let (status, acked) = http(
        ports.http,
        "POST",
        &format!("/api/v1/alerts/{id}/acknowledge"),
        Some(&admin),
        None,
    );
    assert_eq!(
        (status, acked["state"].as_str()),
        (200, Some("acknowledged"))
    );
    drop(tracker);
    node.kill9();

    let _node = support::drover_serve_on(dir.path(), ports, &settings);
    support::wait_for_engine(ports.http);
    std::thread::sleep(Duration::from_secs(1));
    let stored = list(ports.http, "kind=sos");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["state"], "acknowledged", "{stored:?}");
    assert_eq!(stored[0]["acknowledged_at"], acked["acknowledged_at"]);
    // The engine holds it acknowledged too: closing it works as before.
    let admin = admin_token(ports.http);
    let (status, closed) = http(
        ports.http,
        "POST",
        &format!("/api/v1/alerts/{id}/close"),
        Some(&admin),
        None,
    );
    assert_eq!(
        (status, closed["state"].as_str()),
        (200, Some("closed")),
        "{closed}"
    );
    assert_eq!(
        closed["acknowledged_at"], acked["acknowledged_at"],
        "{closed}"
    );
}
