//! An embedded rumqttd broker on a free loopback port, one per test.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Starts a broker on its own thread (rumqttd blocks it) and returns its
/// port once it accepts connections.
pub fn start() -> u16 {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(0, |a| a.port());
    let server = serde_json::json!({
        "name": "sim-test",
        "listen": format!("127.0.0.1:{port}"),
        "next_connection_delay_ms": 1,
        "connections": {
            "connection_timeout_ms": 60_000,
            "max_payload_size": 65_536,
            "max_inflight_count": 1_000,
            "dynamic_filters": true,
        }
    });
    let config = serde_json::json!({
        "id": 0,
        "router": {
            "id": 0,
            "max_connections": 100,
            "max_outgoing_packet_count": 200,
            "max_segment_size": 1_048_576,
            "max_segment_count": 10,
        },
        "v4": HashMap::from([("1", server)]),
    });
    let config: rumqttd::Config =
        serde_json::from_value(config).unwrap_or_else(|e| panic!("broker config: {e}"));
    std::thread::spawn(move || {
        let mut broker = rumqttd::Broker::new(config);
        let _ = broker.start();
    });
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "broker did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    port
}
