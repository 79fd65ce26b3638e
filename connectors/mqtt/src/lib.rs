//! # drover-mqtt
//!
//! Live data out over MQTT:
//!
//! - [`broker::start_embedded`] runs an embedded broker (rumqttd) so that one
//!   `drover` process is a complete installation. At scale, disable it and
//!   point `mqtt.url` at an external broker or cluster.
//! - [`publisher::connect`] gives a [`Publisher`] that publishes every record
//!   on `{prefix}/devices/{id}/position` (or `/event` for records without a
//!   fix) and each device's retained `online`/`offline` on `/status`.
//!
//! Topics and payloads are in [`payload`] and documented in `docs/mqtt.md`.

pub mod broker;
mod config;
pub mod payload;
pub mod publisher;

use std::net::SocketAddr;

pub use config::MqttConfig;
pub use publisher::{Publisher, PublisherStats};

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("no MQTT broker: set mqtt.url or mqtt.embedded_listen")]
    NoBroker,
    #[error("bad MQTT broker URL {0:?}: expected mqtt://[user:password@]host[:port]")]
    BadUrl(String),
    #[error("embedded MQTT broker cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("embedded MQTT broker did not start listening on {0}")]
    BrokerNotListening(SocketAddr),
    #[error("embedded MQTT broker configuration: {0}")]
    BrokerConfig(String),
    #[error("starting the broker thread: {0}")]
    Thread(std::io::Error),
    #[error("the MQTT publisher has stopped")]
    PublisherClosed,
    #[error("the broker did not acknowledge {0} publications (connection lost or too slow)")]
    Unconfirmed(u64),
}
