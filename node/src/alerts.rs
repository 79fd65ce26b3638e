//! How alerts are kept on each history backend — JSON of the engine's
//! [`AlertSummary`] in the embedded store, points of the `alert`
//! measurement in InfluxDB (docs/influxdb.md) — and their MQTT and stream
//! JSON.

use drover_api::history::History;
use drover_engine::Engine;
use drover_engine::systems::alerts::{
    AlertAction, AlertOp, AlertState, AlertSummary, Details, Severity,
};
use drover_influxdb::Row;
use drover_influxdb::line::Point;
use drover_mqtt::payload::{AlertPayload, Rfc3339Ms};
use drover_protocols::model::{DeviceId, Value};

/// The InfluxDB measurement of alerts.
pub const MEASUREMENT: &str = "alert";

/// The embedded store's encoding: self-describing, so fields can be added.
pub fn encode(alert: &AlertSummary) -> Vec<u8> {
    // Strings, numbers and JSON values: serializing into memory cannot fail.
    serde_json::to_vec(alert).unwrap_or_default()
}

pub fn decode(bytes: &[u8]) -> Result<AlertSummary, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// Operators' actions the restored engine has not seen: an alert
/// acknowledged or closed after the last snapshot is stored that way, but
/// open in the snapshot. Each is applied again, at its stored time, on the
/// engine's first tick (no one waits for the answer: ticket `u64::MAX`).
pub async fn reconcile(engine: &mut Engine, history: &dyn History) {
    for open in engine.open_alerts() {
        let stored = match history.alert(&open.id).await {
            Ok(Some(stored)) => stored,
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(%error, alert = %open.id, "alert not checked against the store");
                continue;
            }
        };
        if let Some((op, time_ms)) = catch_up(open.state, &stored) {
            tracing::info!(alert = %open.id, ?op, "an operator's action after the snapshot applied again");
            engine.act_on_alert(AlertAction {
                ticket: u64::MAX,
                id: open.id,
                op,
                time_ms,
            });
        }
    }
}

/// The operator's action, with its stored time, that takes an alert in
/// state `current` to where `stored` is; `None` unless the store is
/// further along.
pub fn catch_up(current: AlertState, stored: &AlertSummary) -> Option<(AlertOp, i64)> {
    match (current, stored.state) {
        (AlertState::Open, AlertState::Acknowledged) => {
            Some((AlertOp::Acknowledge, stored.acknowledged_ms?))
        }
        (AlertState::Open | AlertState::Acknowledged, AlertState::Closed) => {
            Some((AlertOp::Close, stored.closed_ms?))
        }
        _ => None,
    }
}

pub fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

fn parse_severity(name: &str) -> Option<Severity> {
    Some(match name {
        "info" => Severity::Info,
        "warning" => Severity::Warning,
        "critical" => Severity::Critical,
        _ => return None,
    })
}

pub fn parse_state(name: &str) -> Option<AlertState> {
    Some(match name {
        "open" => AlertState::Open,
        "acknowledged" => AlertState::Acknowledged,
        "closed" => AlertState::Closed,
        _ => return None,
    })
}

/// The fields of an alert's point, whose time is its opening and whose
/// tags are its device, kind and subject: one point per alert, replaced by
/// each new state.
pub fn fields(alert: &AlertSummary) -> Vec<(&'static str, Value)> {
    let mut fields = vec![
        ("id", Value::Text(alert.id.clone())),
        (
            "severity",
            Value::Text(severity_name(alert.severity).to_owned()),
        ),
        ("state", Value::Text(alert.state.as_str().to_owned())),
        (
            "details",
            // A map of plain values: serializing cannot fail.
            Value::Text(serde_json::to_string(&*alert.details).unwrap_or_default()),
        ),
    ];
    if let Some(at) = alert.acknowledged_ms {
        fields.push(("acknowledged_ms", Value::Int(at)));
    }
    if let Some(at) = alert.closed_ms {
        fields.push(("closed_ms", Value::Int(at)));
    }
    fields
}

/// The tags of an alert's point.
pub fn tags(alert: &AlertSummary) -> Vec<(&'static str, &str)> {
    let mut tags = vec![("kind", &*alert.kind)];
    if let Some(subject) = alert.subject.as_deref().filter(|s| !s.is_empty()) {
        tags.push(("subject", subject));
    }
    tags
}

pub fn point<'a>(
    alert: &'a AlertSummary,
    tags: &'a [(&'static str, &'a str)],
    fields: &'a [(&'static str, Value)],
) -> Point<'a> {
    Point {
        measurement: MEASUREMENT,
        device: alert.device.as_str(),
        tags,
        time_ms: alert.opened_ms,
        fields,
    }
}

/// An alert read back from its point; `None` when a field it needs is
/// missing or unreadable.
pub fn from_row(row: &Row) -> Option<AlertSummary> {
    let details: Details = match serde_json::from_str(row.str("details")?).ok()? {
        serde_json::Value::Object(details) => details,
        _ => return None,
    };
    Some(AlertSummary {
        id: row.str("id")?.to_owned(),
        device: DeviceId::new(row.str("device")?),
        kind: row.str("kind")?.to_owned().into(),
        subject: row.str("subject").map(str::to_owned),
        severity: parse_severity(row.str("severity")?)?,
        state: parse_state(row.str("state")?)?,
        opened_ms: row.time_ms,
        acknowledged_ms: row.i64("acknowledged_ms"),
        closed_ms: row.i64("closed_ms"),
        details: details.into(),
    })
}

/// The MQTT and stream JSON of `alert` (docs/mqtt.md).
pub fn payload(alert: &AlertSummary) -> AlertPayload<'_> {
    AlertPayload {
        id: &alert.id,
        device: alert.device.as_str(),
        kind: &alert.kind,
        subject: alert.subject.as_deref(),
        severity: severity_name(alert.severity),
        state: alert.state.as_str(),
        opened_at: Rfc3339Ms(alert.opened_ms),
        acknowledged_at: alert.acknowledged_ms.map(Rfc3339Ms),
        closed_at: alert.closed_ms.map(Rfc3339Ms),
        details: &alert.details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> AlertSummary {
        let mut details = Details::new();
        details.insert("code".to_owned(), "P0300".into());
        AlertSummary {
            id: "d-dtc-P0300-1000".to_owned(),
            device: DeviceId::new("d"),
            kind: "dtc".into(),
            subject: Some("P0300".to_owned()),
            severity: Severity::Warning,
            state: AlertState::Acknowledged,
            opened_ms: 1_000,
            acknowledged_ms: Some(2_000),
            closed_ms: None,
            details: details.into(),
        }
    }

    #[test]
    fn the_store_encoding_round_trips() {
        let alert = alert();
        assert_eq!(decode(&encode(&alert)).unwrap(), alert);
    }

    #[test]
    fn a_point_read_back_is_the_alert() {
        let alert = alert();
        let (tags, fields) = (tags(&alert), fields(&alert));
        let mut line = String::new();
        drover_influxdb::line::encode_point(&point(&alert, &tags, &fields), &mut line).unwrap();
        assert!(
            line.starts_with("alert,device=d,kind=dtc,subject=P0300 id=\"d-dtc-P0300-1000\","),
            "{line}"
        );
        let mut columns = vec!["time".to_owned(), "device".to_owned()];
        let mut values: Vec<serde_json::Value> = vec![1_000.into(), "d".into()];
        for (name, value) in tags {
            columns.push(name.to_owned());
            values.push(value.into());
        }
        for (name, value) in fields {
            columns.push(name.to_owned());
            values.push(match value {
                Value::Text(t) => t.into(),
                Value::Int(i) => i.into(),
                Value::Float(f) => f.into(),
                Value::Bool(b) => b.into(),
            });
        }
        let row = Row::from_columns(&columns, &values).unwrap();
        assert_eq!(from_row(&row), Some(alert));
    }

    #[test]
    fn the_payload_names_times_and_states() {
        let alert = alert();
        let json = serde_json::to_value(payload(&alert)).unwrap();
        assert_eq!(json["state"], "acknowledged");
        assert_eq!(json["severity"], "warning");
        assert_eq!(json["opened_at"], "1970-01-01T00:00:01.000Z");
        assert_eq!(json["closed_at"], serde_json::Value::Null);
        assert_eq!(json["details"]["code"], "P0300");
    }

    #[test]
    fn only_a_store_further_along_is_caught_up_with() {
        let acknowledged = alert();
        assert_eq!(
            catch_up(AlertState::Open, &acknowledged),
            Some((AlertOp::Acknowledge, 2_000))
        );
        assert_eq!(catch_up(AlertState::Acknowledged, &acknowledged), None);
        let closed = acknowledged.closed_at(3_000);
        assert_eq!(
            catch_up(AlertState::Acknowledged, &closed),
            Some((AlertOp::Close, 3_000))
        );
        assert_eq!(catch_up(AlertState::Closed, &closed), None);
    }
}
