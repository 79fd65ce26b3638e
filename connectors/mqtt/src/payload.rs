//! Topics and JSON payloads (documented in docs/mqtt.md).

use drover_protocols::model::{Attributes, DeviceMessage, RecordKind};
use serde::Serialize;
use time::OffsetDateTime;
use time::macros::format_description;

/// `{prefix}/devices/{device}/position`: one per record with a fix.
#[derive(Debug, Serialize)]
pub struct PositionPayload<'a> {
    pub device: &'a str,
    pub protocol: &'a str,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub lat: f64,
    pub lon: f64,
    pub speed_kmh: f64,
    pub course_deg: f64,
    pub altitude_m: Option<f64>,
    pub satellites: Option<u8>,
    pub valid: bool,
    pub archived: bool,
    pub attributes: &'a Attributes,
}

/// `{prefix}/devices/{device}/event`: records without a fix (status,
/// alarms without location, command results).
#[derive(Debug, Serialize)]
pub struct EventPayload<'a> {
    pub device: &'a str,
    pub protocol: &'a str,
    pub time: String,
    pub kind: RecordKind,
    pub archived: bool,
    pub attributes: &'a Attributes,
}

/// The topic and payload of one record.
pub fn record(prefix: &str, message: &DeviceMessage) -> (String, Vec<u8>) {
    let device = message.device.as_str();
    let r = &message.record;
    let time = rfc3339_ms(r.time_ms);
    let (leaf, json) = match &r.fix {
        Some(fix) => (
            "position",
            serde_json::to_vec(&PositionPayload {
                device,
                protocol: message.protocol,
                time,
                lat: fix.lat,
                lon: fix.lon,
                speed_kmh: fix.speed_kmh,
                course_deg: fix.course_deg,
                altitude_m: fix.altitude_m,
                satellites: fix.satellites,
                valid: fix.valid,
                archived: r.archived,
                attributes: &r.attributes,
            }),
        ),
        None => (
            "event",
            serde_json::to_vec(&EventPayload {
                device,
                protocol: message.protocol,
                time,
                kind: r.kind,
                archived: r.archived,
                attributes: &r.attributes,
            }),
        ),
    };
    // Serializing plain structs of numbers and strings cannot fail; non-finite
    // floats become null.
    (device_topic(prefix, device, leaf), json.unwrap_or_default())
}

/// `{prefix}/devices/{device}/status`, retained: `online` or `offline`.
pub fn status(prefix: &str, device: &str, online: bool) -> (String, &'static [u8]) {
    let payload: &[u8] = if online { b"online" } else { b"offline" };
    (device_topic(prefix, device, "status"), payload)
}

fn device_topic(prefix: &str, device: &str, leaf: &str) -> String {
    // A device id with MQTT wildcard or level characters would escape its topic.
    let safe: String = device
        .chars()
        .map(|c| if matches!(c, '/' | '+' | '#') { '_' } else { c })
        .collect();
    format!("{prefix}/devices/{safe}/{leaf}")
}

/// RFC 3339 in UTC with exactly three fractional digits.
pub fn rfc3339_ms(time_ms: i64) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(time_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_owned())
}

#[cfg(test)]
mod tests {
    use drover_protocols::model::{DeviceId, Fix, Record, attr};

    use super::*;

    #[test]
    fn position_payload_has_the_documented_fields() {
        let mut record = Record {
            time_ms: 1_764_133_200_123,
            fix: Some(Fix {
                lat: 52.5,
                lon: 13.4,
                speed_kmh: 42.0,
                course_deg: 180.0,
                altitude_m: Some(35.0),
                satellites: Some(8),
                valid: true,
            }),
            ..Record::default()
        };
        record.attributes.set(attr::IGNITION, true);
        let message = DeviceMessage {
            device: DeviceId::new("356307042441013"),
            protocol: "gt06",
            record,
        };
        let (topic, payload) = super::record("drover", &message);
        assert_eq!(topic, "drover/devices/356307042441013/position");
        let json: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(json["device"], "356307042441013");
        assert_eq!(json["time"], "2025-11-26T05:00:00.123Z");
        assert_eq!(json["lat"], 52.5);
        assert_eq!(json["speed_kmh"], 42.0);
        assert_eq!(json["satellites"], 8);
        assert_eq!(json["valid"], true);
        assert_eq!(json["attributes"]["ignition"], true);
    }

    #[test]
    fn device_ids_cannot_escape_their_topic() {
        assert_eq!(status("p", "a/+#", true).0, "p/devices/a___/status");
    }
}
