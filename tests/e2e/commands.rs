//! Commands to simulated trackers through the real node: over REST and MQTT,
//! to connected and offline devices, answered, and expired.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{self, Ports, Sim, Subscriber};

/// What the simulator's trackers answer to an engine stop.
const GT06_STOPPED: &str = "Cut off the fuel supply: Success!";
const TELTONIKA_STOPPED: &str = "DOUT1:1 Timeout:INFINITY";

/// `count` simulated trackers from IMEI `base` (`teltonika_share` of them
/// Teltonika), reporting every second for long enough, without MQTT.
fn trackers(
    dir: &std::path::Path,
    ports: &Ports,
    base: u64,
    count: u32,
    teltonika_share: &str,
) -> Sim {
    let args = [
        "--devices",
        &count.to_string(),
        "--teltonika-share",
        teltonika_share,
        "--imei-base",
        &base.to_string(),
        "--duration",
        "120",
        "--rate",
        "1",
        "--no-mqtt",
    ];
    Sim::start(dir, ports, &args.map(str::to_owned))
}

fn wait_connected(http: u16, count: u64) {
    let connected = support::eventually(Duration::from_secs(30), || {
        support::http_get(http, "/health").1["devices"]["connected"] == count
    });
    assert!(
        connected,
        "{count} trackers did not connect: {}",
        support::http_get(http, "/health").1
    );
}

fn submit(http: u16, device: &str, body: &Value) -> (u16, Value) {
    let token = support::admin_token(http);
    let path = format!("/api/v1/devices/{device}/commands");
    support::http(http, "POST", &path, Some(&token), Some(body))
}

/// Submits `body` to `device` and returns the command's id.
fn accepted(http: u16, device: &str, body: &Value) -> (String, Value) {
    let (status, json) = submit(http, device, body);
    assert_eq!(status, 202, "{json}");
    (json["id"].as_str().expect("an id").to_owned(), json)
}

/// Polls the command until its status is `wanted`; returns its record.
fn until_status(http: u16, id: &str, wanted: &str) -> Value {
    let path = format!("/api/v1/commands/{id}");
    let reached = support::eventually(Duration::from_secs(30), || {
        support::http_get(http, &path).1["status"] == wanted
    });
    let record = support::http_get(http, &path).1;
    assert!(reached, "command {id} never became {wanted}: {record}");
    record
}

fn register(http: u16, device: &str) {
    let token = support::admin_token(http);
    let body = json!({ "id": device });
    let (status, json) = support::http(http, "POST", "/api/v1/devices", Some(&token), Some(&body));
    assert_eq!(status, 201, "{json}");
}

#[test]
fn gt06_and_teltonika_trackers_answer_commands_over_rest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let (server, ports) = support::drover_serve(dir, &[]);
    let http = ports.http;
    // Device 0 speaks GT06, device 1 Teltonika.
    let base = 351_000_000_000_000_u64;
    let (gt06, teltonika) = (base.to_string(), (base + 1).to_string());
    let _sim = trackers(dir, &ports, base, 2, "0.5");
    wait_connected(http, 2);

    let stop = json!({ "type": "engine_stop" });
    let (gt06_id, first) = accepted(http, &gt06, &stop);
    assert_eq!(first["status"], "sent", "the tracker is connected: {first}");
    let (teltonika_id, _) = accepted(http, &teltonika, &stop);

    let answered = until_status(http, &gt06_id, "answered");
    assert_eq!(answered["result"], GT06_STOPPED, "{answered}");
    assert_eq!(answered["device"], gt06.as_str());
    assert_eq!(answered["attempts_made"], 1, "{answered}");
    let answered = until_status(http, &teltonika_id, "answered");
    assert_eq!(answered["result"], TELTONIKA_STOPPED, "{answered}");

    let (status, listed) = support::http_get(http, &format!("/api/v1/devices/{gt06}/commands"));
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["commands"][0]["id"], gt06_id.as_str(), "{listed}");
    let health = support::http_get(http, "/health").1;
    assert_eq!(health["commands"]["answered"], 2, "{health}");

    refusals(http, &gt06);
    assert!(server.interrupt().success());
}

/// What a client gets wrong is answered with the right status.
fn refusals(http: u16, device: &str) {
    let unknown = submit(http, "359999999999999", &json!({ "type": "reboot" }));
    assert_eq!(unknown.0, 404, "{}", unknown.1);
    let invalid = submit(http, device, &json!({ "type": "set_interval", "secs": 0 }));
    assert_eq!(invalid.0, 422, "{}", invalid.1);
    let ttl = submit(http, device, &json!({ "type": "reboot", "ttl_secs": 0 }));
    assert_eq!(ttl.0, 422, "{}", ttl.1);
    let missing = support::http_get(http, "/api/v1/commands/not-a-command-id");
    assert_eq!(missing.0, 404, "{}", missing.1);

    // A viewer reads commands but may not send one.
    let admin = support::admin_token(http);
    let viewer = json!({ "username": "watcher", "password": "watcher password", "role": "viewer" });
    let (status, json) = support::http(http, "POST", "/api/v1/users", Some(&admin), Some(&viewer));
    assert_eq!(status, 201, "{json}");
    let token = support::login_as(http, "watcher", "watcher password");
    let path = format!("/api/v1/devices/{device}/commands");
    let body = json!({ "type": "reboot" });
    let (status, json) = support::http(http, "POST", &path, Some(&token), Some(&body));
    assert_eq!(status, 403, "{json}");
    let (status, json) = support::http(http, "GET", &path, Some(&token), None);
    assert_eq!(status, 200, "{json}");
}

#[test]
fn a_command_for_an_offline_tracker_goes_when_it_connects() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let (server, ports) = support::drover_serve(dir, &[]);
    let http = ports.http;
    let base = 352_000_000_000_000_u64;
    let device = base.to_string();
    register(http, &device);

    let (id, first) = accepted(http, &device, &json!({ "type": "engine_stop" }));
    assert_eq!(first["status"], "queued", "{first}");
    let _sim = trackers(dir, &ports, base, 1, "0");
    let answered = until_status(http, &id, "answered");
    assert_eq!(answered["result"], GT06_STOPPED, "{answered}");
    assert!(server.interrupt().success());
}

#[test]
fn a_command_nobody_takes_expires() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let (server, ports) = support::drover_serve(dir, &[]);
    let http = ports.http;
    let device = "353000000000000";
    register(http, device);

    let body = json!({ "type": "reboot", "ttl_secs": 2 });
    let (id, _) = accepted(http, device, &body);
    let expired = until_status(http, &id, "expired");
    assert!(
        expired["error"].as_str().is_some_and(|e| e.contains("ttl")),
        "{expired}"
    );
    assert!(server.interrupt().success());
}

#[test]
fn commands_over_mqtt_report_every_status_change() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let (server, ports) = support::drover_serve(dir, &[]);
    let base = 354_000_000_000_000_u64;
    let device = base.to_string();
    let results = Subscriber::start(dir, ports.mqtt, &["drover/devices/+/command/result"]);
    let _sim = trackers(dir, &ports, base, 1, "1");
    wait_connected(ports.http, 1);

    let topic = format!("drover/devices/{device}/command");
    mosquitto_pub(ports.mqtt, &topic, r#"{"type":"engine_stop"}"#);
    let result_topic = format!("{topic}/result");
    let statuses = || -> Vec<Value> {
        results
            .messages()
            .into_iter()
            .filter(|(t, _)| *t == result_topic)
            .map(|(_, json)| json)
            .collect()
    };
    let answered = support::eventually(Duration::from_secs(30), || {
        statuses().iter().any(|r| r["status"] == "answered")
    });
    let seen = statuses();
    assert!(answered, "no answer on {result_topic}: {seen:?}");
    let order: Vec<&str> = seen.iter().filter_map(|r| r["status"].as_str()).collect();
    assert_eq!(order, ["queued", "sent", "answered"], "{seen:?}");
    assert!(seen.iter().all(|r| r["id"] == seen[0]["id"]), "{seen:?}");
    assert_eq!(seen[2]["result"], TELTONIKA_STOPPED);

    mosquitto_pub(ports.mqtt, &topic, "{not json");
    let refused = support::eventually(Duration::from_secs(10), || {
        statuses().iter().any(|r| r["error"].is_string())
    });
    assert!(refused, "bad JSON was not answered: {:?}", statuses());
    let health = support::http_get(ports.http, "/health").1;
    assert_eq!(health["commands"]["refused"], 1, "{health}");
    assert!(server.interrupt().success());
}

fn mosquitto_pub(port: u16, topic: &str, message: &str) {
    support::require("mosquitto_pub");
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-u", "drover", "-P", support::MQTT_PASSWORD])
        .args(["-t", topic, "-m", message])
        .stdout(Stdio::null())
        .status()
        .expect("mosquitto_pub runs");
    assert!(status.success(), "mosquitto_pub to {topic} failed");
}
