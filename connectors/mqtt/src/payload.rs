//! Topics and JSON payloads (documented in docs/mqtt.md).

use std::fmt;

use drover_protocols::model::{Attributes, DeviceMessage, RecordKind};
use serde::{Serialize, Serializer};
use time::OffsetDateTime;

/// Room for a typical payload (a position with a dozen attributes is
/// ~400 bytes), so serializing it rarely grows the buffer.
const PAYLOAD_CAPACITY: usize = 512;

/// `{prefix}/devices/{device}/position`: one per record with a fix.
#[derive(Debug, Serialize)]
pub struct PositionPayload<'a> {
    pub device: &'a str,
    pub protocol: &'a str,
    /// RFC 3339, UTC, milliseconds.
    pub time: Rfc3339Ms,
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

impl<'a> PositionPayload<'a> {
    /// The payload of a record with a fix; `None` without one.
    pub fn of(message: &'a DeviceMessage) -> Option<Self> {
        let r = &message.record;
        let fix = r.fix.as_ref()?;
        Some(PositionPayload {
            device: message.device.as_str(),
            protocol: message.protocol,
            time: Rfc3339Ms(r.time_ms),
            lat: fix.lat,
            lon: fix.lon,
            speed_kmh: fix.speed_kmh,
            course_deg: fix.course_deg,
            altitude_m: fix.altitude_m,
            satellites: fix.satellites,
            valid: fix.valid,
            archived: r.archived,
            attributes: &r.attributes,
        })
    }
}

/// `{prefix}/devices/{device}/event`: records without a fix (status,
/// alarms without location, command results).
#[derive(Debug, Serialize)]
pub struct EventPayload<'a> {
    pub device: &'a str,
    pub protocol: &'a str,
    pub time: Rfc3339Ms,
    pub kind: RecordKind,
    pub archived: bool,
    pub attributes: &'a Attributes,
}

/// `{prefix}/devices/{device}/trip`: a trip opened (`open`, no `end`) or
/// closed.
#[derive(Debug, Serialize)]
pub struct TripPayload<'a> {
    /// Stable: the device and the start time.
    pub id: &'a str,
    pub device: &'a str,
    pub start: PlacePayload,
    pub end: Option<PlacePayload>,
    pub open: bool,
    pub distance_m: f64,
    pub duration_s: f64,
    pub max_speed_kmh: f64,
    pub avg_speed_kmh: f64,
    /// Standing with the ignition on.
    pub idle_s: f64,
    /// Fuel level at the start minus at the end, in percent points, when
    /// the device reports a level.
    pub fuel_used_pct: Option<f64>,
}

/// Where and when a trip started or ended.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PlacePayload {
    pub time: Rfc3339Ms,
    pub lat: f64,
    pub lon: f64,
}

/// The topic and payload of a trip that opened or closed.
pub fn trip(prefix: &str, trip: &TripPayload<'_>) -> (String, Vec<u8>) {
    // Numbers and strings only: serializing cannot fail.
    let json = serde_json::to_vec(trip).unwrap_or_default();
    (device_topic(prefix, trip.device, "trip"), json)
}

/// `{prefix}/devices/{device}/stop`: a stop opened (where a trip ended;
/// `open`, no `end`) or closed (where the next trip started).
#[derive(Debug, Serialize)]
pub struct StopPayload<'a> {
    /// Stable: the device and the start time.
    pub id: &'a str,
    pub device: &'a str,
    pub start: PlacePayload,
    pub end: Option<PlacePayload>,
    pub open: bool,
    /// Until the end; `null` while open.
    pub duration_s: Option<f64>,
}

/// The topic and payload of a stop that opened or closed.
pub fn stop(prefix: &str, stop: &StopPayload<'_>) -> (String, Vec<u8>) {
    // Numbers and strings only: serializing cannot fail.
    let json = serde_json::to_vec(stop).unwrap_or_default();
    (device_topic(prefix, stop.device, "stop"), json)
}

/// `{prefix}/devices/{device}/alert`: an alert opened, was acknowledged or
/// closed; the newest state of its `id` is the alert's.
#[derive(Debug, Serialize)]
pub struct AlertPayload<'a> {
    /// Stable: the device, kind, subject and opening time.
    pub id: &'a str,
    pub device: &'a str,
    /// snake_case: `overspeed`, `offline`, `sos`, `fuel_drop`, …
    pub kind: &'a str,
    /// What within the kind: a geofence id, a DTC code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<&'a str>,
    /// `info`, `warning` or `critical`.
    pub severity: &'a str,
    /// `open`, `acknowledged` or `closed`.
    pub state: &'a str,
    pub opened_at: Rfc3339Ms,
    pub acknowledged_at: Option<Rfc3339Ms>,
    pub closed_at: Option<Rfc3339Ms>,
    pub details: &'a serde_json::Map<String, serde_json::Value>,
}

/// The topic and payload of an alert's change.
pub fn alert(prefix: &str, alert: &AlertPayload<'_>) -> (String, Vec<u8>) {
    // Strings, numbers and JSON values: serializing cannot fail.
    let json = serde_json::to_vec(alert).unwrap_or_default();
    (device_topic(prefix, alert.device, "alert"), json)
}

/// The topic and payload of one record.
pub fn record(prefix: &str, message: &DeviceMessage) -> (String, Vec<u8>) {
    let device = message.device.as_str();
    let r = &message.record;
    let time = Rfc3339Ms(r.time_ms);
    let mut json = Vec::with_capacity(PAYLOAD_CAPACITY);
    let (leaf, written) = match PositionPayload::of(message) {
        Some(position) => ("position", serde_json::to_writer(&mut json, &position)),
        None => (
            "event",
            serde_json::to_writer(
                &mut json,
                &EventPayload {
                    device,
                    protocol: message.protocol,
                    time,
                    kind: r.kind,
                    archived: r.archived,
                    attributes: &r.attributes,
                },
            ),
        ),
    };
    // Serializing plain structs of numbers and strings into memory cannot
    // fail; non-finite floats become null.
    if written.is_err() {
        json.clear();
    }
    (device_topic(prefix, device, leaf), json)
}

/// `{prefix}/devices/{device}/status`, retained: `online` or `offline`.
pub fn status(prefix: &str, device: &str, online: bool) -> (String, &'static [u8]) {
    let payload: &[u8] = if online { b"online" } else { b"offline" };
    (device_topic(prefix, device, "status"), payload)
}

/// `{prefix}/devices/{device}/command/result`: the outcome of a command,
/// as JSON the node composes.
/// `{prefix}/notifications/{rule}`: where a notification rule with an MQTT
/// channel publishes the alerts it matches. Rule ids are the server's own
/// (`nr_…`), never a wildcard.
pub fn notification_topic(prefix: &str, rule: &str) -> String {
    format!("{prefix}/notifications/{rule}")
}

pub fn command_result_topic(prefix: &str, device: &str) -> String {
    device_topic(prefix, device, "command/result")
}

/// The device a command topic, `{prefix}/devices/{device}/command`, names:
/// one non-empty level without wildcards. `None` for any other topic.
pub fn command_device<'a>(prefix: &str, topic: &'a str) -> Option<&'a str> {
    let device = topic
        .strip_prefix(prefix)?
        .strip_prefix("/devices/")?
        .strip_suffix("/command")?;
    let valid = !device.is_empty() && !device.contains(['/', '+', '#']);
    valid.then_some(device)
}

/// Built in one allocation: this runs for every record published.
/// `{prefix}/devices/{device}/summary`: the device's newest daily summary.
pub fn summary_topic(prefix: &str, device: &str) -> String {
    device_topic(prefix, device, "summary")
}

fn device_topic(prefix: &str, device: &str, leaf: &str) -> String {
    const DEVICES: &str = "/devices/";
    let mut topic =
        String::with_capacity(prefix.len() + DEVICES.len() + device.len() + 1 + leaf.len());
    topic.push_str(prefix);
    topic.push_str(DEVICES);
    // A device id with MQTT wildcard or level characters would escape its topic.
    topic.extend(
        device
            .chars()
            .map(|c| if matches!(c, '/' | '+' | '#') { '_' } else { c }),
    );
    topic.push('/');
    topic.push_str(leaf);
    topic
}

/// A time (ms since the epoch) shown as RFC 3339 in UTC with exactly three
/// fractional digits, written straight into its destination (no `String`
/// per record). Times `time` cannot represent show as the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc3339Ms(pub i64);

impl fmt::Display for Rfc3339Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }
}

impl Serialize for Rfc3339Ms {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
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
    fn times_are_rfc3339_in_utc_with_milliseconds() {
        assert_eq!(
            Rfc3339Ms(1_764_133_200_123).to_string(),
            "2025-11-26T05:00:00.123Z"
        );
        assert_eq!(Rfc3339Ms(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Rfc3339Ms(-1).to_string(), "1969-12-31T23:59:59.999Z");
        // Past what `time` represents: the epoch, not a panic.
        assert_eq!(Rfc3339Ms(i64::MAX).to_string(), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn command_topics_name_one_device() {
        assert_eq!(command_device("p", "p/devices/42/command"), Some("42"));
        assert_eq!(command_device("a/b", "a/b/devices/42/command"), Some("42"));
        for topic in [
            "p/devices//command",
            "p/devices/4/2/command",
            "p/devices/+/command",
            "p/devices/#/command",
            "p/devices/42/command/result",
            "p/devices/42/position",
            "q/devices/42/command",
            "pp/devices/42/command",
        ] {
            assert_eq!(command_device("p", topic), None, "{topic}");
        }
        assert_eq!(
            command_result_topic("p", "a/b"),
            "p/devices/a_b/command/result"
        );
    }

    #[test]
    fn device_ids_cannot_escape_their_topic() {
        assert_eq!(status("p", "a/+#", true).0, "p/devices/a___/status");
    }
}
