//! `[mqtt]` settings.

use std::fmt;

use serde::{Deserialize, Serialize};

/// `[mqtt]`: the embedded broker and where Drover publishes.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
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
    /// The node account's user name: what the embedded broker accepts with
    /// full rights and what the publisher logs in with. Unset: `drover`.
    pub username: Option<String>,
    /// The node account's password. Unset: generated at first start and kept
    /// in `data_dir/mqtt_password` (see [`crate::credentials`]).
    pub password: Option<String>,
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
            username: None,
            password: None,
        }
    }
}

/// Written by hand so that printing a configuration never shows the password.
impl fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttConfig")
            .field("embedded_listen", &self.embedded_listen)
            .field("url", &redact_url(&self.url))
            .field("topic_prefix", &self.topic_prefix)
            .field("qos", &self.qos)
            .field("client_id", &self.client_id)
            .field("max_inflight", &self.max_inflight)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .finish()
    }
}

/// `mqtt://user:secret@host` → `mqtt://user:…@host`.
pub(crate) fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    match rest.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:…@{host}")
        }
        _ => url.to_owned(),
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

    /// The configured password, an empty one counting as unset (an empty
    /// password would let anyone who knows the user name in).
    pub(crate) fn configured_password(&self) -> Option<&str> {
        self.password.as_deref().filter(|p| !p.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_passwords() {
        let config = MqttConfig {
            url: "mqtt://bob:s3cret@broker:1883".to_owned(),
            password: Some("hunter2".to_owned()),
            ..MqttConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(shown.contains("mqtt://bob:…@broker:1883"), "{shown}");
    }
}
