//! # drover-mqtt
//!
//! Live data out, and commands in, over MQTT:
//!
//! - [`broker::start_embedded`] runs an embedded broker (rumqttd behind
//!   Drover's gateway, which logs clients in and applies the ACL) so that one
//!   `drover` process is a complete installation. At scale, disable it and
//!   point `mqtt.url` at an external broker or cluster.
//! - [`publisher::connect`] gives a [`Publisher`] that publishes every record
//!   on `{prefix}/devices/{id}/position` (or `/event` for records without a
//!   fix), each device's retained `online`/`offline` on `/status`, and
//!   command results on `/command/result`.
//! - [`commands::subscribe`] receives commands sent on
//!   `{prefix}/devices/{id}/command`.
//! - [`credentials`]: the node account and the [`CredentialCheck`] through
//!   which users' API keys log in.
//!
//! Topics, payloads and the security model are in [`payload`] and
//! documented in `docs/mqtt.md`.
//!
//! ## Wiring a node
//!
//! ```ignore
//! // Once, before anything connects: the node account (generated into
//! // data_dir/mqtt_password at first start when [mqtt] password is unset).
//! let account = drover_mqtt::credentials::load_or_create(&config.data_dir, &config.mqtt)?;
//!
//! // The embedded broker, unless mqtt.embedded_listen is empty. `ApiKeys`
//! // implements CredentialCheck with the node's API-key store; keep
//! // `broker.stats` for /health and supervise `broker.task`.
//! let broker = drover_mqtt::broker::start_embedded(Embedded {
//!     api_keys: Arc::new(ApiKeys(store.clone())),
//!     ..Embedded::new(listen, &config.mqtt, account.clone())
//! })
//! .await?;
//!
//! // Every connection logs in with the same account (on an external broker:
//! // the URL's user:password, else the account if [mqtt] password is set).
//! let (publisher, task) = publisher::connect(&config.mqtt, &account, Role::Main, shutdown.clone())?;
//! let (records, task) = publisher::connect(&config.mqtt, &account, Role::Records, shutdown.clone())?;
//! let (commands, task) = drover_mqtt::commands::subscribe(&config.mqtt, &account, shutdown.clone())?;
//!
//! // Feed the command queue; answer on the Main publisher.
//! while let Some(ReceivedCommand { device, payload }) = commands.recv().await {
//!     let result = queue.submit_json(&device, &payload).await; // the node's own
//!     publisher.command_result(&device, serde_json::to_vec(&result)?).await?;
//! }
//! ```

pub mod broker;
pub mod commands;
mod config;
pub mod credentials;
mod gateway;
pub mod payload;
pub mod publisher;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use commands::{Commands, ReceivedCommand};
pub use config::MqttConfig;
pub use credentials::{CredentialCheck, Credentials, Rights};
pub use publisher::{Publisher, PublisherStats};

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("no MQTT broker: set mqtt.url or mqtt.embedded_listen")]
    NoBroker,
    #[error("bad MQTT broker URL {0:?}: expected mqtt://[user:password@]host[:port]")]
    BadUrl(String),
    #[error(
        "bad mqtt.topic_prefix {0:?}: it must be a non-empty topic without `+`, `#` or a leading `$`"
    )]
    BadPrefix(String),
    #[error("embedded MQTT broker cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("embedded MQTT broker did not start listening on {0}")]
    BrokerNotListening(SocketAddr),
    #[error("embedded MQTT broker configuration: {0}")]
    BrokerConfig(String),
    #[error("starting the broker thread: {0}")]
    Thread(std::io::Error),
    #[error("MQTT password file {path}: {source}")]
    PasswordFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "MQTT password file {0} is empty: delete it to have a new password generated, or set mqtt.password"
    )]
    EmptyPasswordFile(PathBuf),
    #[error("reading random bytes for a password from /dev/urandom: {0}")]
    Random(std::io::Error),
    #[error("the MQTT publisher has stopped")]
    PublisherClosed,
    #[error("the broker did not acknowledge {0} publications (connection lost or too slow)")]
    Unconfirmed(u64),
}
