//! `[mqtt]` settings.

use serde::{Deserialize, Serialize};

/// `[mqtt]`: the embedded broker and where Drover publishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Address of the embedded broker; empty disables it (use an external broker).
    pub embedded_listen: String,
    /// Broker to publish to, `mqtt://[user:password@]host:port`. Empty means the
    /// embedded broker.
    pub url: String,
    /// Every topic starts with this.
    pub topic_prefix: String,
    /// QoS of published messages: 0 or 1 (2 is accepted and treated as 1).
    pub qos: u8,
    /// MQTT client id of the publisher.
    pub client_id: String,
    /// Unacknowledged QoS 1 publishes in flight at once.
    pub max_inflight: u16,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            embedded_listen: "127.0.0.1:1883".to_owned(),
            url: String::new(),
            topic_prefix: "drover".to_owned(),
            qos: 1,
            client_id: "drover".to_owned(),
            max_inflight: 1000,
        }
    }
}

impl MqttConfig {
    /// The broker URL to publish to, resolving "empty" to the embedded broker.
    pub fn publish_url(&self) -> Result<String, crate::MqttError> {
        match (self.url.trim(), self.embedded_listen.trim()) {
            ("", "") => Err(crate::MqttError::NoBroker),
            ("", embedded) => Ok(format!("mqtt://{embedded}")),
            (url, _) => Ok(url.to_owned()),
        }
    }
}
