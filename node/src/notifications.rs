//! Alert changes to the notification rules of the catalog: each change the
//! analytics consumer has stored is matched against every rule, and goes
//! out by the rule's channel — MQTT through the node's publisher, webhooks
//! and email through the [`Notifier`]'s workers, which retry on their own
//! so the consumer never waits for a receiver.

use std::sync::Arc;

use drover_catalog::{Catalog, Channel};
use drover_engine::systems::alerts::AlertSummary;
use drover_mqtt::Publisher;
use drover_notify::{Notice, Notifier, matches};
use tracing::warn;

use crate::alerts;

/// What matching and delivery need.
pub struct Notifications {
    pub notifier: Notifier,
    pub catalog: Arc<Catalog>,
    pub publisher: Publisher,
}

impl Notifications {
    /// Notifies every rule `alert`'s change matches.
    pub async fn alert(&self, alert: &AlertSummary) {
        let rules = self.catalog.notifications.list();
        if rules.is_empty() {
            return;
        }
        let notice = Arc::new(notice(alert, &self.catalog));
        for rule in rules.iter().filter(|rule| matches(rule, &notice)) {
            match rule.channel {
                Channel::Mqtt => {
                    if let Err(error) = self
                        .publisher
                        .notification(&rule.id, notice.json.clone())
                        .await
                    {
                        warn!(%error, rule = %rule.id, alert = %alert.id, "notification not published");
                    }
                }
                Channel::Webhook { .. } | Channel::Email { .. } => {
                    self.notifier.send(rule, Arc::clone(&notice));
                }
            }
        }
    }
}

/// The notification of `alert`'s change: its JSON, and words for people.
fn notice(alert: &AlertSummary, catalog: &Catalog) -> Notice {
    let payload = alerts::payload(alert);
    // Strings, numbers and JSON values: serializing cannot fail.
    let json = serde_json::to_vec(&payload).unwrap_or_default();
    let registered = catalog.devices.get(alert.device.as_str());
    let name = registered
        .as_ref()
        .and_then(|d| d.name.clone())
        .unwrap_or_else(|| alert.device.as_str().to_owned());
    let severity = alerts::severity_name(alert.severity);
    let state = alert.state.as_str();
    let title = format!("[Drover] {severity}: {} on {name} ({state})", alert.kind);
    let details = serde_json::to_string_pretty(&alert.details).unwrap_or_default();
    let text = format!(
        "Alert {kind} on {name} (device {device}) is {state}.\n\n\
         Severity: {severity}\nOpened: {opened}\nAlert id: {id}\n\nDetails:\n{details}\n",
        kind = alert.kind,
        device = alert.device,
        opened = payload.opened_at,
        id = alert.id,
    );
    Notice {
        id: alert.id.clone(),
        device: alert.device.as_str().to_owned(),
        group: registered.and_then(|d| d.group),
        kind: alert.kind.clone().into_owned(),
        severity: severity.to_owned(),
        state: state.to_owned(),
        json,
        title,
        text,
    }
}
