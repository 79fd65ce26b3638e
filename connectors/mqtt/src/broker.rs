//! The embedded broker (rumqttd), so a single `drover` process is a complete
//! installation. At scale, point `mqtt.url` at an external broker cluster
//! and disable this one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use tracing::{error, info};

use crate::MqttError;

/// Bounds of the embedded broker, sized for a laptop and for tens of
/// thousands of messages per second.
const MAX_CONNECTIONS: usize = 10_000;
const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
const MAX_INFLIGHT: usize = 1_000;
/// Per-filter commit log kept by the broker: 10 segments of 16 MiB.
const SEGMENT_BYTES: usize = 16 * 1024 * 1024;
const SEGMENTS: usize = 10;

/// Starts the broker on its own threads (rumqttd blocks the thread it starts
/// on and runs until the process ends) and waits until it accepts connections.
pub fn start_embedded(listen: SocketAddr) -> Result<(), MqttError> {
    let config = broker_config(listen)?;
    // rumqttd only logs a failed bind from inside its threads; find out here,
    // and with a clear error, whether the address is free.
    drop(std::net::TcpListener::bind(listen).map_err(|e| MqttError::Bind(listen, e))?);
    std::thread::Builder::new()
        .name("drover-mqtt-broker".to_owned())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(error) = broker.start() {
                error!(%error, "embedded MQTT broker stopped");
            }
        })
        .map_err(MqttError::Thread)?;
    wait_until_listening(listen, Duration::from_secs(10))?;
    info!(%listen, "embedded MQTT broker ready");
    Ok(())
}

fn broker_config(listen: SocketAddr) -> Result<rumqttd::Config, MqttError> {
    let server = json!({
        "name": "drover-v4",
        "listen": listen,
        "next_connection_delay_ms": 1,
        "connections": {
            "connection_timeout_ms": 60_000,
            "max_payload_size": MAX_PAYLOAD_BYTES,
            "max_inflight_count": MAX_INFLIGHT,
            "dynamic_filters": true,
        }
    });
    let config = json!({
        "id": 0,
        "router": {
            "id": 0,
            "max_connections": MAX_CONNECTIONS,
            "max_outgoing_packet_count": 200,
            "max_segment_size": SEGMENT_BYTES,
            "max_segment_count": SEGMENTS,
        },
        "v4": HashMap::from([("1", server)]),
    });
    serde_json::from_value(config).map_err(|e| MqttError::BrokerConfig(e.to_string()))
}

fn wait_until_listening(addr: SocketAddr, limit: Duration) -> Result<(), MqttError> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if mqtt_handshake(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(MqttError::BrokerNotListening(addr))
}

/// A real MQTT 3.1.1 CONNECT → CONNACK → DISCONNECT, waiting for the broker to
/// close, so it sees a well-behaved client rather than a probe to complain about.
fn mqtt_handshake(addr: SocketAddr) -> std::io::Result<()> {
    use std::io::{Read, Write};
    const CLIENT: &[u8] = b"drover-probe";
    let mut connect = vec![0x10, (10 + 2 + CLIENT.len()) as u8];
    connect.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 10]);
    connect.extend_from_slice(&[0, CLIENT.len() as u8]);
    connect.extend_from_slice(CLIENT);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.write_all(&connect)?;
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack)?;
    if connack[0] != 0x20 || connack[3] != 0 {
        return Err(std::io::Error::other("broker refused the probe"));
    }
    stream.write_all(&[0xE0, 0])?;
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    Ok(())
}
