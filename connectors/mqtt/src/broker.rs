//! The embedded broker, so a single `drover` process is a complete
//! installation: rumqttd on a private loopback port behind Drover's own
//! gateway on `mqtt.embedded_listen`, which logs clients in and applies the
//! ACL (rumqttd 0.20 has no authorization hook). At scale, point `mqtt.url`
//! at an external broker cluster and disable this one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rumqttc::mqttbytes;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Disconnect, Packet};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::{error, info};

pub use crate::gateway::{GatewayStats, Limits};

use crate::credentials::{CredentialCheck, Credentials, NodeAccountOnly};
use crate::gateway::{Acl, Gateway};
use crate::{MqttConfig, MqttError};

/// Bounds of the embedded broker, sized for a laptop and for tens of
/// thousands of messages per second.
pub(crate) const MAX_CONNECTIONS: usize = 10_000;
pub(crate) const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
const MAX_INFLIGHT: usize = 1_000;
/// Per-filter commit log kept by the broker: 10 segments of 16 MiB.
const SEGMENT_BYTES: usize = 16 * 1024 * 1024;
const SEGMENTS: usize = 10;
/// The user name the gateway logs in to the internal broker with.
const GATEWAY_USERNAME: &str = "drover-gateway";
/// How long the internal broker may take to start listening.
const START_LIMIT: Duration = Duration::from_secs(10);

/// What [`start_embedded`] needs.
pub struct Embedded {
    /// Where clients connect: `mqtt.embedded_listen` (port 0 picks one).
    pub listen: SocketAddr,
    /// `mqtt.topic_prefix`: API-key clients read under it and send commands.
    pub topic_prefix: String,
    /// The node account ([`crate::credentials::load_or_create`]).
    pub account: Credentials,
    /// Other logins, for API-key clients.
    pub api_keys: Arc<dyn CredentialCheck>,
    pub limits: Limits,
}

impl Embedded {
    /// `[mqtt]`'s prefix, the node account as the only login, default limits.
    pub fn new(listen: SocketAddr, config: &MqttConfig, account: Credentials) -> Self {
        Embedded {
            listen,
            topic_prefix: config.topic_prefix.clone(),
            account,
            api_keys: Arc::new(NodeAccountOnly),
            limits: Limits::default(),
        }
    }
}

/// A running embedded broker.
pub struct EmbeddedBroker {
    /// The address clients connect to (the one bound, if `listen` had port 0).
    pub addr: SocketAddr,
    pub stats: Arc<GatewayStats>,
    /// The gateway's accept loop. It only ends if it panics: supervise it.
    pub task: JoinHandle<()>,
}

/// Starts the internal broker on its own threads (rumqttd blocks the thread
/// it starts on and runs until the process ends), waits until it accepts
/// the gateway's login, then accepts clients on `settings.listen`.
pub async fn start_embedded(settings: Embedded) -> Result<EmbeddedBroker, MqttError> {
    let acl = Acl::new(&settings.topic_prefix)?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| MqttError::Bind(settings.listen, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| MqttError::Bind(settings.listen, e))?;
    let internal_login = Credentials::random(GATEWAY_USERNAME)?;
    let internal = start_internal(&internal_login).await?;
    let stats = Arc::new(GatewayStats::default());
    let gateway = Arc::new(Gateway {
        acl,
        account: settings.account,
        api_keys: settings.api_keys,
        internal,
        internal_login,
        limits: settings.limits,
        stats: Arc::clone(&stats),
    });
    let task = tokio::spawn(crate::gateway::run(listener, gateway));
    info!(%addr, "embedded MQTT broker ready");
    Ok(EmbeddedBroker { addr, stats, task })
}

/// rumqttd on a free loopback port, accepting the gateway's login only.
async fn start_internal(login: &Credentials) -> Result<SocketAddr, MqttError> {
    // rumqttd binds by itself and only logs a failure from inside its
    // threads; a port free a moment ago is the best it can be given. Should
    // another process take it meanwhile, the login below fails and says so.
    let internal = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| MqttError::Bind(SocketAddr::from(([127, 0, 0, 1], 0)), e))?;
    let config = broker_config(internal, login)?;
    std::thread::Builder::new()
        .name("drover-mqtt-broker".to_owned())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(error) = broker.start() {
                error!(%error, "embedded MQTT broker stopped");
            }
        })
        .map_err(MqttError::Thread)?;
    wait_until_listening(internal, login).await?;
    Ok(internal)
}

fn broker_config(listen: SocketAddr, login: &Credentials) -> Result<rumqttd::Config, MqttError> {
    let server = json!({
        "name": "drover-v4",
        "listen": listen,
        "next_connection_delay_ms": 1,
        "connections": {
            "connection_timeout_ms": 60_000,
            "max_payload_size": MAX_PAYLOAD_BYTES,
            "max_inflight_count": MAX_INFLIGHT,
            "dynamic_filters": true,
            "auth": { login.username.as_str(): login.password() },
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

async fn wait_until_listening(addr: SocketAddr, login: &Credentials) -> Result<(), MqttError> {
    let started = Instant::now();
    while started.elapsed() < START_LIMIT {
        let probe = tokio::time::timeout(Duration::from_millis(500), handshake(addr, login));
        if let Ok(Ok(())) = probe.await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(MqttError::BrokerNotListening(addr))
}

/// CONNECT → CONNACK (accepted) → DISCONNECT, waiting for the broker to
/// close, so it sees a well-behaved client rather than a probe to complain
/// about.
async fn handshake(addr: SocketAddr, login: &Credentials) -> std::io::Result<()> {
    let mut connect = Connect::new("drover-probe");
    connect.set_login(login.username.as_str(), login.password());
    let mut out = BytesMut::new();
    connect.write(&mut out).map_err(std::io::Error::other)?;
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(&out).await?;
    let mut buf = BytesMut::with_capacity(16);
    let connack = loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        match Packet::read(&mut buf, 16) {
            Ok(Packet::ConnAck(connack)) => break connack,
            Err(mqttbytes::Error::InsufficientBytes(_)) => continue,
            _ => return Err(std::io::Error::other("not a CONNACK")),
        }
    };
    if connack.code != ConnectReturnCode::Success {
        return Err(std::io::Error::other("the broker refused the probe"));
    }
    out.clear();
    Disconnect.write(&mut out).map_err(std::io::Error::other)?;
    stream.write_all(&out).await?;
    let _ = stream.read_buf(&mut buf).await;
    Ok(())
}
