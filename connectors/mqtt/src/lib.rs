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
//! // Once, before anything connects: the node account ([mqtt] username and
//! // password; a password generated into data_dir/mqtt_password when unset).
//! let account = drover_mqtt::credentials::load_or_create(&config.data_dir, &config.mqtt)?;
//!
//! // The embedded broker, unless mqtt.embedded_listen is empty. It replaces
//! // `spawn_blocking(move || start_embedded(listen)).await??`: now async,
//! // it returns a handle whose `stats` belong in /health and whose `task`
//! // is a core task to supervise.
//! let broker = drover_mqtt::broker::start_embedded(Embedded {
//!     api_keys: Arc::new(ApiKeys(Arc::clone(&catalog))),
//!     ..Embedded::new(listen, &config.mqtt, account.clone())
//! })
//! .await?;
//!
//! // Every connection takes the account (on an external broker it is sent
//! // only if [mqtt] password is set and the URL has no user:password).
//! let (publisher, task) = publisher::connect(&config.mqtt, &account, Role::Main, stop.clone())?;
//! let (records, task) = publisher::connect(&config.mqtt, &account, Role::Records, stop.clone())?;
//! let (commands, task) = drover_mqtt::commands::subscribe(&config.mqtt, &account, stop.clone())?;
//!
//! // API keys: the key's digest looked up in the catalog, its role mapped to
//! // rights. Keep slow work (a password hash) off the runtime.
//! struct ApiKeys(Arc<Catalog>);
//! impl CredentialCheck for ApiKeys {
//!     fn check<'a>(&'a self, _user: &'a str, key: &'a str) -> Verdict<'a> {
//!         Box::pin(async move {
//!             let key = self.0.keys.find_by_secret(key)?; // the node's own lookup
//!             Some(match key.role {
//!                 Role::Viewer => Rights::Read,
//!                 Role::Operator | Role::Admin => Rights::ReadAndCommand,
//!             })
//!         })
//!     }
//! }
//!
//! // Commands in: the same JSON as POST /api/v1/devices/{id}/commands, into
//! // the queue (its calls fsync: spawn_blocking); every status change of the
//! // record goes out on the Main publisher, as docs/mqtt.md promises.
//! while let Some(ReceivedCommand { device, payload }) = commands.recv().await {
//!     let answer = match serde_json::from_slice::<CommandRequest>(&payload) {
//!         Ok(request) => serde_json::to_vec(&submit_and_deliver(&device, request).await?)?,
//!         Err(error) => serde_json::to_vec(&json!({ "error": error.to_string() }))?,
//!     };
//!     publisher.command_result(&device, answer).await?;
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
