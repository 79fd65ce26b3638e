//! The live stream, `GET /api/v1/stream`, over a real WebSocket client
//! (tungstenite, blocking): the handshake's checks, the snapshot, live
//! positions and statuses from simulated trackers, subscriptions, and a
//! client that stops reading while the fleet reports.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use time::OffsetDateTime;
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::{Message, WebSocket};

use crate::durability::{teltonika_load, time_ms};
use crate::outage::{ack_rate, into_run};
use crate::support::{self, Ports, Sim};

type Client = WebSocket<TcpStream>;

/// How a test opens the stream.
#[derive(Default, Clone, Copy)]
struct Open<'a> {
    /// In `Authorization: Bearer`.
    header_token: Option<&'a str>,
    /// In `?token=`, as a browser must.
    query_token: Option<&'a str>,
    origin: Option<&'a str>,
    /// More of the query (`devices=…`), after the token.
    subscribe: Option<&'a str>,
    /// A small receive buffer, so that a client that stops reading soon
    /// stops the server's writes too.
    small_buffer: bool,
}

/// The handshake's outcome: a client, or the HTTP status it was refused with.
fn open(http: u16, how: &Open<'_>) -> Result<Client, u16> {
    let query: Vec<String> = how
        .query_token
        .map(|t| format!("token={t}"))
        .into_iter()
        .chain(how.subscribe.map(str::to_owned))
        .collect();
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    let mut request = format!("ws://127.0.0.1:{http}/api/v1/stream{query}")
        .into_client_request()
        .expect("a WebSocket request");
    let headers = request.headers_mut();
    if let Some(token) = how.header_token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("a header");
        headers.insert("authorization", value);
    }
    if let Some(origin) = how.origin {
        headers.insert("origin", HeaderValue::from_str(origin).expect("a header"));
    }
    let stream = tcp(http, how.small_buffer);
    match tungstenite::client::client(request, stream) {
        Ok((client, _)) => Ok(client),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            Err(response.status().as_u16())
        }
        Err(error) => panic!("WebSocket handshake: {error}"),
    }
}

fn tcp(port: u16, small_buffer: bool) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    if small_buffer {
        socket.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    socket.connect(&addr.into()).expect("connecting");
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a read timeout");
    stream
}

fn admin(http: u16) -> String {
    support::admin_token(http)
}

/// The next JSON message; panics on anything else (a close among them).
fn next(client: &mut Client) -> Value {
    loop {
        match client.read().expect("a message from the stream") {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads until a message of `kind` arrives, within `limit`.
fn next_of(client: &mut Client, kind: &str, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < limit,
            "no {kind} message within {limit:?}"
        );
        let message = next(client);
        if message["type"] == kind {
            return message;
        }
    }
}

fn send(client: &mut Client, message: &str) {
    client
        .send(Message::text(message))
        .expect("sending to the stream");
}

/// Devices the node lists, once `n` of them reported.
fn wait_for_devices(http: u16, n: usize) {
    let listed = support::eventually(Duration::from_secs(30), || {
        let (_, list) = support::http_get(http, "/api/v1/devices?limit=1000");
        list["devices"].as_array().is_some_and(|d| d.len() >= n)
    });
    assert!(listed, "{n} devices never reported");
}

/// A node with ten simulated Teltonika trackers reporting for 8 s, once
/// all ten have: the node, its HTTP port and the simulator.
fn ten_reporting(dir: &Path) -> (support::Process, u16, Sim) {
    let ports = Ports::free();
    let server = support::drover_serve_on(dir, ports, &[]);
    let sim = Sim::start(dir, &ports, &teltonika_load(10, 8));
    wait_for_devices(ports.http, 10);
    (server, ports.http, sim)
}

/// The stream's messages, as `read` gives them, until all ten devices of
/// [`ten_reporting`] went offline (the simulator closed every connection).
fn until_ten_offline(mut read: impl FnMut() -> Vec<Value>) -> Vec<Value> {
    let mut messages = Vec::new();
    let mut offline = BTreeSet::new();
    let started = Instant::now();
    while offline.len() < 10 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "offline: {offline:?}"
        );
        for message in read() {
            if message["type"] == "status" && message["online"] == false {
                offline.insert(message["device"].as_str().expect("a device").to_owned());
            }
            messages.push(message);
        }
    }
    messages
}

/// Positions and trips; statuses and alerts (the simulated vehicles brake
/// hard) are expected and dropped, anything else fails.
fn by_type(messages: Vec<Value>) -> (Vec<Value>, Vec<Value>) {
    let (mut positions, mut trips) = (Vec::new(), Vec::new());
    for message in messages {
        match message["type"].as_str() {
            Some("position") => positions.push(message),
            Some("trip") => trips.push(message),
            Some("status" | "alert") => {}
            other => panic!("unexpected message type {other:?}: {message}"),
        }
    }
    (positions, trips)
}

/// Every streamed position was acked to its device (so durable first).
fn assert_acked(positions: &[Value], sim: Sim) {
    let (_, records) = sim.finish();
    let acked = support::acked_by_device(&records);
    assert!(positions.len() >= 10, "{} positions", positions.len());
    for position in positions {
        let device = position["device"].as_str().expect("a device");
        let time = time_ms(&position["time"]);
        assert!(
            acked
                .get(device)
                .is_some_and(|t| t.binary_search(&time).is_ok()),
            "streamed but never acked (so maybe never durable): {position}"
        );
    }
}

#[test]
fn the_handshake_refuses_bad_tokens_and_foreign_origins_before_upgrading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, ports) = support::drover_serve(dir.path(), &[]);
    let http = ports.http;
    let token = admin(http);
    let refused = |how: Open<'_>| open(http, &how).err();
    assert_eq!(refused(Open::default()), Some(401));
    assert_eq!(
        refused(Open {
            header_token: Some("not-a-token"),
            ..Open::default()
        }),
        Some(401)
    );
    assert_eq!(
        refused(Open {
            query_token: Some("not-a-token"),
            ..Open::default()
        }),
        Some(401)
    );
    assert_eq!(
        refused(Open {
            header_token: Some(&token),
            origin: Some("https://evil.example"),
            ..Open::default()
        }),
        Some(403)
    );
    // The server's own page is welcome, and so is a client without Origin.
    let own = format!("http://127.0.0.1:{http}");
    for origin in [Some(own.as_str()), None] {
        let mut client = open(
            http,
            &Open {
                query_token: Some(&token),
                origin,
                ..Open::default()
            },
        )
        .expect("admitted");
        assert_eq!(next(&mut client)["type"], "snapshot");
    }
    assert!(server.interrupt().success());
}

#[test]
fn a_client_gets_a_snapshot_then_live_positions_and_statuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, http, sim) = ten_reporting(dir.path());

    let token = admin(http);
    let how = Open {
        header_token: Some(&token),
        ..Open::default()
    };
    let mut client = open(http, &how).expect("admitted");
    let snapshot = next(&mut client);
    assert_eq!(snapshot["type"], "snapshot", "the first message");
    let devices = snapshot["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), 10, "{snapshot}");
    let first = &devices[0];
    let (status, one) = support::http_get(
        http,
        &format!("/api/v1/devices/{}", first["id"].as_str().expect("an id")),
    );
    assert_eq!(status, 200);
    assert_eq!(
        one.as_object().map(|o| o.keys().collect::<BTreeSet<_>>()),
        first.as_object().map(|o| o.keys().collect::<BTreeSet<_>>()),
        "a device reads as GET /api/v1/devices/{{id}} shows it"
    );

    let (positions, trips) = by_type(until_ten_offline(|| vec![next(&mut client)]));
    for trip in &trips {
        let device = trip["device"].as_str().expect("a device");
        assert!(
            trip["id"]
                .as_str()
                .is_some_and(|id| id.starts_with(&format!("{device}-"))),
            "{trip}"
        );
        assert!(
            trip["start"]["time"].is_string() && trip["open"].is_boolean(),
            "{trip}"
        );
    }
    assert_acked(&positions, sim);
    for position in &positions {
        for field in [
            "lat",
            "lon",
            "speed_kmh",
            "course_deg",
            "protocol",
            "attributes",
        ] {
            assert!(!position[field].is_null(), "{field} missing: {position}");
        }
    }
    assert!(server.interrupt().success());
}

#[test]
fn batched_summaries_carry_every_position_in_fewer_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, http, sim) = ten_reporting(dir.path());

    let token = admin(http);
    let with = |query: &'static str| Open {
        query_token: Some(&token),
        subscribe: Some(query),
        ..Open::default()
    };
    for bad in ["batch_ms=1001", "batch_ms=-1", "snapshot=everything"] {
        assert_eq!(open(http, &with(bad)).err(), Some(400), "{bad}");
    }
    let mut plain = open(http, &with("snapshot=full")).expect("admitted");
    let mut client = open(http, &with("batch_ms=200&snapshot=summary")).expect("admitted");

    let summary = next(&mut client);
    assert_eq!(summary["type"], "snapshot", "the first message");
    let devices = summary["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), 10, "{summary}");
    let keys = |value: &Value| {
        value
            .as_object()
            .map(|o| o.keys().cloned().collect::<BTreeSet<_>>())
            .unwrap_or_default()
    };
    for device in devices {
        assert_eq!(
            keys(&device["state"]),
            ["kinematics", "last_fix", "protocol"]
                .map(str::to_owned)
                .into(),
            "{device}"
        );
        for field in ["id", "registered", "status", "last_seen"] {
            assert!(!device[field].is_null(), "{field} missing: {device}");
        }
        assert!(
            device["state"]["last_fix"]["fix"]["lat"].is_number(),
            "{device}"
        );
    }
    let full = next(&mut plain);
    drop(plain);
    let (small, large) = (summary.to_string().len(), full.to_string().len());
    assert!(
        small * 2 < large,
        "a summary ({small} bytes) is a fraction of the full snapshot ({large})"
    );

    let mut batches = 0;
    let messages = until_ten_offline(|| {
        let batch = next(&mut client);
        assert_eq!(batch["type"], "batch", "{batch}");
        let inner = batch["messages"].as_array().expect("messages").clone();
        assert!(!inner.is_empty(), "a batch is never empty");
        batches += 1;
        inner
    });
    assert!(
        batches < messages.len(),
        "{} messages came in {batches} batches",
        messages.len()
    );
    let (positions, _) = by_type(messages);
    assert_acked(&positions, sim);
    assert!(server.interrupt().success());
}

#[test]
fn a_subscription_narrows_the_stream_and_bad_messages_do_not_end_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let ports = Ports::free();
    let server = support::drover_serve_on(dir, ports, &[]);
    let http = ports.http;
    let sim = Sim::start(dir, &ports, &teltonika_load(10, 10));
    wait_for_devices(http, 10);
    let token = admin(http);
    let how = Open {
        query_token: Some(&token),
        ..Open::default()
    };
    let mut client = open(http, &how).expect("admitted");
    let snapshot = next(&mut client);
    let chosen = snapshot["devices"][3]["id"]
        .as_str()
        .expect("a device")
        .to_owned();

    send(&mut client, "{\"subscribe\":\"some\"}");
    let error = next_of(&mut client, "error", Duration::from_secs(10));
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("subscribe")),
        "{error}"
    );
    send(
        &mut client,
        &json!({ "subscribe": { "devices": [chosen] } }).to_string(),
    );
    let selected = next_of(&mut client, "snapshot", Duration::from_secs(10));
    let ids: Vec<&str> = selected["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(ids, [chosen.as_str()]);

    let mut positions = 0;
    let started = Instant::now();
    while positions < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{positions} positions"
        );
        let message = next(&mut client);
        assert_eq!(
            message["device"],
            chosen.as_str(),
            "after the subscription: {message}"
        );
        positions += usize::from(message["type"] == "position");
    }

    // The same subscription given with the handshake: no fleet snapshot first.
    let by_query = format!("devices={chosen}");
    let mut narrow = open(
        http,
        &Open {
            subscribe: Some(&by_query),
            ..how
        },
    )
    .expect("admitted");
    let first = next(&mut narrow);
    assert_eq!(first["type"], "snapshot");
    assert_eq!(
        first["devices"].as_array().map(Vec::len),
        Some(1),
        "{first}"
    );
    assert_eq!(first["devices"][0]["id"], chosen.as_str());
    let message = next_of(&mut narrow, "position", Duration::from_secs(30));
    assert_eq!(message["device"], chosen.as_str(), "{message}");
    let both = Open {
        subscribe: Some("devices=a&groups=b"),
        ..how
    };
    assert_eq!(
        open(http, &both).err(),
        Some(400),
        "devices and groups at once"
    );
    sim.finish();
    assert!(server.interrupt().success());
}

/// Positions a reading client received, by when.
#[derive(Default)]
struct Received {
    at: Vec<Instant>,
    closed: Option<String>,
}

/// Reads `client` on a thread until `stop`, noting each position.
fn keep_reading(
    mut client: Client,
    stop: Arc<AtomicBool>,
) -> (Arc<Mutex<Received>>, std::thread::JoinHandle<()>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let into = Arc::clone(&received);
    let thread = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let message = client.read();
            let mut into = into
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match message {
                Ok(Message::Text(text)) if text.contains("\"type\":\"position\"") => {
                    into.at.push(Instant::now());
                }
                Ok(Message::Close(frame)) => into.closed = Some(format!("{frame:?}")),
                Ok(_) => {}
                Err(error) => {
                    into.closed.get_or_insert_with(|| error.to_string());
                    return;
                }
            }
        }
    });
    (received, thread)
}

#[test]
fn a_client_that_stops_reading_slows_neither_acks_nor_other_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let ports = Ports::free();
    let server = support::drover_serve_on(dir, ports, &[]);
    let http = ports.http;
    let token = admin(http);
    let how = |small_buffer| Open {
        header_token: Some(&token),
        small_buffer,
        ..Open::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let reader = open(http, &how(false)).expect("admitted");
    let (received, reading) = keep_reading(reader, Arc::clone(&stop));

    // 60 trackers sending ~1,000 positions/s for 50 s: megabytes a second
    // to each client, more than socket buffers hold for long.
    let sim = Sim::start(dir, &ports, &teltonika_load(60, 50));
    std::thread::sleep(Duration::from_secs(10));
    let stalled = open(http, &how(true)).expect("admitted");
    let (stall_from, stall_started) = (OffsetDateTime::now_utc(), Instant::now());
    std::thread::sleep(Duration::from_secs(30));
    let stall_to = OffsetDateTime::now_utc();
    let (report, _) = sim.finish();
    stop.store(true, Ordering::Relaxed);
    let stats = support::http_get(http, "/health").1["stream"].clone();

    assert_eq!(
        report["records_acked"], report["records_sent"],
        "every record was acked: {report}"
    );
    let (from, to) = (into_run(&report, stall_from), into_run(&report, stall_to));
    let before = ack_rate(&report, 2.0, from);
    let during = ack_rate(&report, from, to);
    assert!(
        (during - before).abs() <= 0.25 * before,
        "acks per second: {before:.0} before the stalled client, {during:.0} with it"
    );

    let received = received
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    assert_eq!(
        received.closed, None,
        "the reading client was let go: {stats}"
    );
    // Positions kept coming to the reading client through the whole stall.
    for window in 0..6 {
        let from = stall_started + Duration::from_secs(5 * window);
        let to = from + Duration::from_secs(5);
        let n = received
            .at
            .iter()
            .filter(|t| (from..to).contains(*t))
            .count();
        assert!(
            n > 0,
            "no positions from {}s to {}s of the stall",
            5 * window,
            5 * window + 5
        );
    }
    drop(received);
    // The stalled client was let go and counted, not waited for.
    let dropped = support::eventually(Duration::from_secs(30), || {
        support::http_get(http, "/health").1["stream"]["dropped_clients"].as_u64() >= Some(1)
    });
    assert!(dropped, "the stalled client is still served: {stats}");
    drop(stalled);
    assert!(server.interrupt().success());
    let _ = reading.join();
}

#[test]
fn health_counts_stream_clients_and_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, ports) = support::drover_serve(dir.path(), &[]);
    let http = ports.http;
    let token = admin(http);
    let mut client = open(
        http,
        &Open {
            header_token: Some(&token),
            ..Open::default()
        },
    )
    .expect("admitted");
    assert_eq!(next(&mut client)["type"], "snapshot");
    let counted = support::eventually(Duration::from_secs(10), || {
        let stream = &support::http_get(http, "/health").1["stream"];
        stream["clients"] == 1 && stream["messages_sent"].as_u64() >= Some(1)
    });
    assert!(counted, "{}", support::http_get(http, "/health").1);
    client.close(None).expect("closing");
    let left = support::eventually(Duration::from_secs(10), || {
        support::http_get(http, "/health").1["stream"]["clients"] == 0
    });
    assert!(left, "{}", support::http_get(http, "/health").1);
    assert!(server.interrupt().success());
}

#[test]
fn a_client_that_answers_no_pings_is_closed_and_one_that_does_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = ["http.stream_ping_secs=1".to_owned()];
    let (_server, ports) = support::drover_serve(dir.path(), &settings);
    let http = ports.http;
    let token = admin(http);
    let how = Open {
        header_token: Some(&token),
        ..Open::default()
    };
    let mut silent = open(http, &how).expect("admitted");
    let mut awake = open(http, &how).expect("admitted");
    assert_eq!(next(&mut silent)["type"], "snapshot");
    assert_eq!(next(&mut awake)["type"], "snapshot");

    // The awake client reads (and so answers each ping) for 4 s; the
    // silent one reads nothing meanwhile, like a peer that vanished.
    let started = Instant::now();
    let mut pings = 0;
    awake
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("a read timeout");
    while started.elapsed() < Duration::from_secs(4) {
        match awake.read() {
            Ok(Message::Ping(_)) => pings += 1,
            Ok(Message::Close(frame)) => panic!("the awake client was closed: {frame:?}"),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => panic!("the awake client's stream failed: {error}"),
        }
    }
    assert!(pings >= 2, "{pings} pings in 4 s");

    let closed = loop {
        match silent.read() {
            Ok(Message::Close(frame)) => break frame,
            Ok(_) => {}
            Err(error) => panic!("no close frame: {error}"),
        }
    };
    let frame = closed.expect("a close frame with a code");
    assert_eq!(u16::from(frame.code), 1001);
    assert_eq!(frame.reason.as_str(), "no answer to pings");
    let stream = &support::http_get(http, "/health").1["stream"];
    assert_eq!(stream["unresponsive_clients"], 1, "{stream}");
    assert_eq!(stream["clients"], 1, "the awake one: {stream}");
}
