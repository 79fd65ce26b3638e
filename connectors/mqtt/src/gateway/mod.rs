//! The embedded broker's front door. rumqttd 0.20 checks passwords but has
//! no authorization hook, so Drover listens on `mqtt.embedded_listen`
//! itself: it reads each client's packets with rumqttc's MQTT 3.1.1 codec,
//! logs the client in (the node account, or an API key through a
//! [`CredentialCheck`]), enforces the ACL on what API-key clients send, and
//! relays everything else to rumqttd on a private loopback port that only
//! the gateway can log in to.
//!
//! One task per connection; a connection's trouble (malformed or oversized
//! packets, no CONNECT in time, a forbidden publish) closes that connection
//! only, with a counter and a log line.

mod acl;
mod connect;
mod relay;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::{self, v4::ConnAck, v4::ConnectReturnCode};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

pub(crate) use acl::Acl;

use crate::credentials::{CredentialCheck, Credentials, Rights};

/// Bytes read from a socket at a time; a buffer grows past it only to hold
/// one packet, up to [`Limits::max_packet_bytes`].
const READ_CHUNK: usize = 4096;
/// Pause after a failed accept (typically out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Bounds on client connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A client must have sent CONNECT and been logged in within this.
    pub connect_timeout: Duration,
    /// Largest packet (its remaining length) accepted from a client, and
    /// relayed to one.
    pub max_packet_bytes: usize,
    /// Client connections open at once; more are closed on accept.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout: Duration::from_secs(10),
            max_packet_bytes: crate::broker::MAX_PAYLOAD_BYTES,
            max_connections: crate::broker::MAX_CONNECTIONS,
        }
    }
}

/// Counters of the gateway, for `/health`.
#[derive(Debug, Default)]
pub struct GatewayStats {
    /// Clients logged in.
    pub accepted: AtomicU64,
    /// Client connections open now, logged in or not.
    pub open: AtomicU64,
    /// Closed on accept: `max_connections` reached.
    pub over_limit: AtomicU64,
    /// Refused: no credentials, or wrong ones.
    pub refused_logins: AtomicU64,
    /// Refused: not MQTT 3.1.1.
    pub refused_protocol: AtomicU64,
    /// Closed: no CONNECT (or no login decision) within `connect_timeout`.
    pub connect_timeouts: AtomicU64,
    /// Closed: a packet the codec could not read, or not CONNECT first.
    pub malformed: AtomicU64,
    /// Closed: a packet over `max_packet_bytes`.
    pub oversized: AtomicU64,
    /// Closed or refused: a publish or last will where the client may not
    /// publish.
    pub forbidden_publishes: AtomicU64,
    /// Subscriptions answered with a failure code (outside the prefix).
    pub refused_filters: AtomicU64,
    /// Refused: the internal broker could not be reached.
    pub broker_unavailable: AtomicU64,
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// How a client logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// The node account: everything, relayed without a look.
    Node,
    /// Accepted by the [`CredentialCheck`]: the ACL applies.
    ApiKey(Rights),
}

/// Why the gateway closed a client connection.
#[derive(Debug, thiserror::Error)]
enum Close {
    #[error("the client left")]
    Gone,
    #[error("no login within the connect timeout")]
    ConnectTimeout,
    #[error("the first packet is not CONNECT")]
    NotConnect,
    #[error("a second CONNECT")]
    SecondConnect,
    #[error("not MQTT 3.1.1")]
    Protocol,
    #[error("no user name and password")]
    NoLogin,
    #[error("wrong user name or password")]
    BadLogin,
    #[error("a last will on {0:?}, where the client may not publish")]
    ForbiddenWill(String),
    #[error("a PUBLISH on {0:?}, where the client may not publish (or retained)")]
    ForbiddenPublish(String),
    #[error("malformed packet: {0}")]
    Malformed(mqttbytes::Error),
    #[error("a packet of {0} bytes, over the limit")]
    Oversized(usize),
    #[error("too many SUBSCRIBEs awaiting their SUBACK")]
    TooManySubscribes,
    #[error("the internal broker is unreachable: {0}")]
    BrokerUnavailable(std::io::Error),
    #[error("{0}")]
    Io(std::io::Error),
}

impl Close {
    fn from_codec(error: mqttbytes::Error) -> Close {
        match error {
            mqttbytes::Error::PayloadSizeLimitExceeded(n) => Close::Oversized(n),
            error => Close::Malformed(error),
        }
    }

    /// The CONNACK a refused login gets before the connection closes.
    fn connack(&self) -> Option<ConnectReturnCode> {
        match self {
            Close::Protocol => Some(ConnectReturnCode::RefusedProtocolVersion),
            Close::NoLogin | Close::ForbiddenWill(_) => Some(ConnectReturnCode::NotAuthorized),
            Close::BadLogin => Some(ConnectReturnCode::BadUserNamePassword),
            Close::BrokerUnavailable(_) => Some(ConnectReturnCode::ServiceUnavailable),
            _ => None,
        }
    }

    fn counter<'a>(&self, stats: &'a GatewayStats) -> Option<&'a AtomicU64> {
        match self {
            Close::Gone | Close::Io(_) => None,
            Close::ConnectTimeout => Some(&stats.connect_timeouts),
            Close::NotConnect
            | Close::SecondConnect
            | Close::Malformed(_)
            | Close::TooManySubscribes => Some(&stats.malformed),
            Close::Protocol => Some(&stats.refused_protocol),
            Close::NoLogin | Close::BadLogin => Some(&stats.refused_logins),
            Close::ForbiddenWill(_) | Close::ForbiddenPublish(_) => {
                Some(&stats.forbidden_publishes)
            }
            Close::Oversized(_) => Some(&stats.oversized),
            Close::BrokerUnavailable(_) => Some(&stats.broker_unavailable),
        }
    }
}

/// Everything a connection needs, shared by all of them.
pub(crate) struct Gateway {
    pub(crate) acl: Acl,
    /// The node account: full rights.
    pub(crate) account: Credentials,
    /// Other logins (API keys): the ACL applies.
    pub(crate) api_keys: Arc<dyn CredentialCheck>,
    /// The internal broker, and the login only the gateway knows, so that
    /// a local process cannot walk around the ACL through its port.
    pub(crate) internal: SocketAddr,
    pub(crate) internal_login: Credentials,
    pub(crate) limits: Limits,
    pub(crate) stats: Arc<GatewayStats>,
}

/// Accepts clients until the runtime stops, one task each.
pub(crate) async fn run(listener: TcpListener, gateway: Arc<Gateway>) {
    let slots = Arc::new(Semaphore::new(gateway.limits.max_connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "accepting an MQTT connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            count(&gateway.stats.over_limit);
            warn!(%peer, limit = gateway.limits.max_connections, "MQTT connection refused: limit reached");
            continue;
        };
        let gateway = Arc::clone(&gateway);
        tokio::spawn(async move {
            gateway.serve(stream, peer).await;
            drop(slot);
        });
    }
}

impl Gateway {
    /// Counts and logs before answering and closing, so that whatever a
    /// client sees, the counters already show.
    async fn serve(&self, mut client: TcpStream, peer: SocketAddr) {
        self.stats.open.fetch_add(1, Ordering::Relaxed);
        match self.session(&mut client, peer).await {
            Ok(()) => debug!(%peer, "MQTT connection closed"),
            Err(reason) => {
                self.report(peer, &reason);
                if let Some(code) = reason.connack() {
                    refuse(&mut client, code).await;
                }
            }
        }
        drop(client);
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Logs the client in, then relays until either side closes.
    async fn session(&self, client: &mut TcpStream, peer: SocketAddr) -> Result<(), Close> {
        let _ = client.set_nodelay(true);
        let logging_in = self.log_in(client);
        let (broker, access, early) = tokio::time::timeout(self.limits.connect_timeout, logging_in)
            .await
            .map_err(|_| Close::ConnectTimeout)??;
        count(&self.stats.accepted);
        debug!(%peer, ?access, "MQTT client logged in");
        match access {
            Access::Node => relay::splice(client, broker, early).await,
            Access::ApiKey(rights) => {
                relay::filtered(self, rights, peer, client, broker, early).await
            }
        }
    }

    fn report(&self, peer: SocketAddr, reason: &Close) {
        if let Some(counter) = reason.counter(&self.stats) {
            count(counter);
        }
        match reason {
            Close::Gone => debug!(%peer, "MQTT connection closed"),
            Close::Io(error) => debug!(%peer, %error, "MQTT connection lost"),
            Close::NoLogin | Close::BadLogin | Close::Protocol => {
                info!(%peer, %reason, "MQTT login refused");
            }
            reason => warn!(%peer, %reason, "MQTT connection closed"),
        }
    }
}

/// Answers a refused CONNECT. A CONNACK always encodes, and the client may
/// be gone: neither is worth more than the refusal itself.
async fn refuse(client: &mut TcpStream, code: ConnectReturnCode) {
    let mut connack = BytesMut::with_capacity(4);
    if ConnAck::new(code, false).write(&mut connack).is_ok() {
        let _ = client.write_all(&connack).await;
    }
}
