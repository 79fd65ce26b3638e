//! Only registered trackers are served: the real binary, with
//! `devices.register_unknown=false`, refuses an unknown IMEI at its login
//! over raw TCP, closes the connection, counts it on `/health` and lists it
//! at `/api/v1/devices/unknown`; registered through the API it is served,
//! disabled its connection is closed and it is refused again.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support;

/// A GT06 login as a tracker sends it (serial 9), and the server's ack.
const GT06_LOGIN: &str = "78780d01086471700328358100093f040d0a";
const GT06_IMEI: &str = "864717003283581";
const GT06_LOGIN_ACK: &str = "78780501000955940d0a";

const TELTONIKA_IMEI: &str = "356307042441013";
/// A Codec 8 AVL packet of one record; acked with the count, 1.
const TELTONIKA_PACKET: &str = "000000000000002808010000016b40d9ad80010000000000000000000000000000000103021503010101425e100000010000f22a";

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Teltonika's IMEI handshake: the length, then the digits.
fn teltonika_login() -> Vec<u8> {
    let mut login = vec![0x00, 0x0f];
    login.extend_from_slice(TELTONIKA_IMEI.as_bytes());
    login
}

fn refusing() -> Vec<String> {
    vec!["devices.register_unknown=false".to_owned()]
}

fn connect(port: u16) -> TcpStream {
    let socket = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    socket
}

/// Sends `login` on a new connection to `port`; everything the server
/// answers before it closes the connection (fails if it stays open).
fn answer_then_close(port: u16, login: &[u8]) -> Vec<u8> {
    let mut socket = connect(port);
    socket.write_all(login).expect("send the login");
    let mut answer = Vec::new();
    socket
        .read_to_end(&mut answer)
        .expect("the server closes the connection");
    answer
}

/// Sends `frame` and reads the `len` bytes of its answer.
fn exchange(socket: &mut TcpStream, frame: &[u8], len: usize) -> Vec<u8> {
    socket.write_all(frame).expect("send");
    let mut answer = vec![0; len];
    socket.read_exact(&mut answer).expect("an answer");
    answer
}

/// `refused_devices` of the `protocol` listener on `/health`.
fn refused_devices(http: u16, protocol: &str) -> u64 {
    let (status, health) = support::http_get(http, "/health");
    assert_eq!(status, 200, "{health}");
    health["listeners"]
        .as_array()
        .and_then(|all| all.iter().find(|l| l["protocol"] == protocol))
        .and_then(|l| l["stats"]["refused_devices"].as_u64())
        .unwrap_or_else(|| panic!("no refused_devices for {protocol}: {health}"))
}

/// The trackers listed as refused, by id.
fn unknown(http: u16) -> Vec<Value> {
    let (status, body) = support::http_get(http, "/api/v1/devices/unknown");
    assert_eq!(status, 200, "{body}");
    body["devices"].as_array().expect("devices").clone()
}

fn assert_refused(ports: support::Ports) {
    let gt06 = answer_then_close(ports.gt06, &hex(GT06_LOGIN));
    assert!(
        gt06.is_empty(),
        "GT06 has no refusal, and no login ack is sent: {gt06:02x?}"
    );
    let teltonika = answer_then_close(ports.teltonika, &teltonika_login());
    assert_eq!(teltonika, [0x00], "Teltonika's refusal, nothing more");
}

#[test]
fn unregistered_trackers_are_refused_at_login_closed_counted_and_listed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, ports) = support::drover_serve(dir.path(), &refusing());
    assert_refused(ports);

    assert_eq!(refused_devices(ports.http, "gt06"), 1);
    assert_eq!(refused_devices(ports.http, "teltonika"), 1);
    let listed = unknown(ports.http);
    for (imei, protocol) in [(GT06_IMEI, "gt06"), (TELTONIKA_IMEI, "teltonika")] {
        let entry = listed
            .iter()
            .find(|d| d["id"] == imei)
            .unwrap_or_else(|| panic!("{imei} is not listed: {listed:?}"));
        assert_eq!(entry["protocol"], protocol, "{entry}");
        assert_eq!(entry["attempts"], 1, "{entry}");
        assert!(
            entry["peer"]
                .as_str()
                .is_some_and(|p| p.starts_with("127.0.0.1:")),
            "{entry}"
        );
    }
}

#[test]
fn a_tracker_is_served_once_registered_and_cut_off_and_refused_once_disabled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, ports) = support::drover_serve(dir.path(), &refusing());
    let http = ports.http;
    assert_refused(ports);
    assert_eq!(unknown(http).len(), 2);

    let token = support::admin_token(http);
    for imei in [GT06_IMEI, TELTONIKA_IMEI] {
        let device = json!({ "id": imei });
        let (status, body) =
            support::http(http, "POST", "/api/v1/devices", Some(&token), Some(&device));
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(
        unknown(http),
        Vec::<Value>::new(),
        "registered devices leave the list"
    );

    let mut gt06 = connect(ports.gt06);
    assert_eq!(
        exchange(&mut gt06, &hex(GT06_LOGIN), 10),
        hex(GT06_LOGIN_ACK)
    );
    let mut teltonika = connect(ports.teltonika);
    assert_eq!(exchange(&mut teltonika, &teltonika_login(), 1), [0x01]);
    assert_eq!(
        exchange(&mut teltonika, &hex(TELTONIKA_PACKET), 4),
        [0, 0, 0, 1],
        "a served device's records are acked"
    );

    for imei in [GT06_IMEI, TELTONIKA_IMEI] {
        let path = format!("/api/v1/devices/{imei}");
        let patch = json!({ "disabled": true });
        let (status, body) = support::http(http, "PATCH", &path, Some(&token), Some(&patch));
        assert_eq!(status, 200, "{body}");
    }
    // Disabling closes the connections the devices still hold.
    for (name, mut socket) in [("gt06", gt06), ("teltonika", teltonika)] {
        let mut rest = Vec::new();
        socket.read_to_end(&mut rest).unwrap_or_else(|e| {
            panic!("{name}: the server closes a disabled device's connection: {e}")
        });
    }
    assert_refused(ports);
    assert_eq!(refused_devices(http, "gt06"), 2);
    assert_eq!(refused_devices(http, "teltonika"), 2);
    assert_eq!(
        unknown(http),
        Vec::<Value>::new(),
        "a disabled device is registered, not unknown"
    );
}
