//! The vendor-neutral message model.
//!
//! Every decoder turns its vendor's frames into [`Record`]s. Units are SI and
//! named in the field (`speed_kmh`, `course_deg`, `altitude_m`); times are
//! milliseconds since the Unix epoch, UTC. Whatever a vendor reports beyond the
//! fix goes into [`Attributes`] under the names in [`attr`], so a dashboard or
//! an analytics system reads `rpm` whoever made the dongle.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

/// A device's identity as it announces itself, usually its 15-digit IMEI.
///
/// Clones share one allocation: a session's id, its messages' and the
/// engine's index key are usually the same `Arc`, which equality checks
/// first, so a lookup over a large fleet need not fetch the stored key's
/// bytes from memory.
#[derive(Clone, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceId(Arc<str>);

impl PartialEq for DeviceId {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

// By content, as equality is: two allocations of one id hash alike.
impl std::hash::Hash for DeviceId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl DeviceId {
    pub fn new(id: &str) -> Self {
        DeviceId(Arc::from(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl From<&str> for DeviceId {
    fn from(s: &str) -> Self {
        DeviceId::new(s)
    }
}

/// A decoded record together with who sent it and over which protocol.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceMessage {
    pub device: DeviceId,
    pub protocol: &'static str,
    pub record: Record,
}

/// One report from a device: a position, a status, an alarm or an event.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Record {
    /// When the device says this happened (ms since the Unix epoch, UTC).
    pub time_ms: i64,
    /// What the record is about.
    pub kind: RecordKind,
    /// The location, when the record carries one (status-only reports don't).
    pub fix: Option<Fix>,
    /// True when the device sends this from its memory after the fact
    /// (buffered while offline). It updates history but must not raise live alerts.
    pub archived: bool,
    /// Everything else the device reported.
    pub attributes: Attributes,
}

/// What a record is about. Positions and statuses may still carry alarms in
/// their attributes; `Alarm` is for frames whose purpose is the alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A periodic location report.
    #[default]
    Position,
    /// Heartbeat or status without a new location.
    Status,
    /// An alarm frame (SOS, power cut, …); the alarm is in `attributes[alarm]`.
    Alarm,
    /// Cell towers / Wi-Fi networks instead of a GNSS fix.
    Network,
    /// A reply to a command sent to the device; the text is in `attributes[result]`.
    CommandResult,
    /// Any other device-reported event.
    Event,
}

/// A GNSS fix.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Fix {
    /// Degrees, WGS 84, north positive.
    pub lat: f64,
    /// Degrees, WGS 84, east positive.
    pub lon: f64,
    /// Ground speed in km/h.
    pub speed_kmh: f64,
    /// Heading in degrees clockwise from true north, [0, 360).
    pub course_deg: f64,
    /// Altitude above sea level in metres, when reported.
    pub altitude_m: Option<f64>,
    /// Satellites used for the fix, when reported.
    pub satellites: Option<u8>,
    /// Whether the device considers the fix valid (GPS positioned).
    pub valid: bool,
}

/// The system clock in the model's unit, ms since the Unix epoch: the one
/// clock the shells read (device servers stamping a heartbeat, the engine's
/// tick thread, the API's default ranges). Decoders never call it: their times
/// come from the frames.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Knots to km/h (1 knot = 1.852 km/h).
pub const KMH_PER_KNOT: f64 = 1.852;

/// An attribute value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Value {
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            Value::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
            Value::Text(_) => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            Value::Int(i) => Some(i != 0),
            _ => None,
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(v.into())
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

/// Named values beyond the fix, in the order the device sent them.
///
/// A small vector rather than a map: records carry a handful of attributes and
/// are built once, read a few times.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attributes(Vec<(Cow<'static, str>, Value)>);

impl Attributes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `n` attributes, so a decoder that knows how many it will set
    /// allocates once.
    pub fn with_capacity(n: usize) -> Self {
        Attributes(Vec::with_capacity(n))
    }

    /// Sets `key`, replacing an earlier value of the same key.
    pub fn set(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let at = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(at).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// The entries with their keys as stored, so copying a key into another
    /// `Attributes` costs nothing for the common `&'static str` names.
    pub fn entries(&self) -> &[(Cow<'static, str>, Value)] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Attributes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k.as_ref(), v)?;
        }
        map.end()
    }
}

/// Well-known attribute names. They follow Traccar's names so that
/// integrations written for it read Drover's payloads unchanged.
pub mod attr {
    /// Engine ignition (bool).
    pub const IGNITION: &str = "ignition";
    /// Device is moving, as the device itself reports (bool).
    pub const MOTION: &str = "motion";
    /// Alarm name (text), e.g. `sos`, `powerCut`, `vibration`.
    pub const ALARM: &str = "alarm";
    /// Vehicle (external) power in volts.
    pub const POWER: &str = "power";
    /// Device battery in volts.
    pub const BATTERY: &str = "battery";
    /// Device battery charge in percent.
    pub const BATTERY_LEVEL: &str = "batteryLevel";
    /// Whether the device is charging (bool).
    pub const CHARGE: &str = "charge";
    /// GSM signal strength as the device reports it.
    pub const RSSI: &str = "rssi";
    /// Satellites in view (not necessarily used).
    pub const SATELLITES_VISIBLE: &str = "satVisible";
    /// Horizontal dilution of precision.
    pub const HDOP: &str = "hdop";
    /// Odometer in metres, as the device counts it.
    pub const ODOMETER: &str = "odometer";
    /// Total engine hours in milliseconds.
    pub const HOURS: &str = "hours";
    /// Device event code (vendor-specific integer).
    pub const EVENT: &str = "event";
    /// Frame serial number.
    pub const INDEX: &str = "index";
    /// Driver identification (RFID / iButton).
    pub const DRIVER_ID: &str = "driverUniqueId";
    /// Reply text to a command.
    pub const RESULT: &str = "result";
    /// SIM card ICCID.
    pub const ICCID: &str = "iccid";
    /// Engine speed in rpm (OBD).
    pub const RPM: &str = "rpm";
    /// Engine coolant temperature in °C (OBD).
    pub const COOLANT_TEMP: &str = "coolantTemp";
    /// Calculated engine load in percent (OBD).
    pub const ENGINE_LOAD: &str = "engineLoad";
    /// Fuel level in percent (OBD).
    pub const FUEL_LEVEL: &str = "fuelLevel";
    /// Fuel in the tank in litres.
    pub const FUEL: &str = "fuel";
    /// Throttle position in percent (OBD).
    pub const THROTTLE: &str = "throttle";
    /// Vehicle speed from the OBD bus in km/h.
    pub const OBD_SPEED: &str = "obdSpeed";
    /// Odometer from the OBD bus in metres.
    pub const OBD_ODOMETER: &str = "obdOdometer";
    /// Number of diagnostic trouble codes stored (OBD).
    pub const FAULT_COUNT: &str = "faultCount";
    /// Diagnostic trouble codes, space separated (OBD).
    pub const DTCS: &str = "dtcs";
}

// invariant: test code (cfg(test) only): the unwraps and expects below never see device input.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_replace_and_serialize_as_a_map() {
        let mut a = Attributes::new();
        a.set(attr::IGNITION, true);
        a.set(attr::RPM, 900i64);
        a.set(attr::RPM, 1200i64);
        assert_eq!(a.len(), 2);
        assert_eq!(a.get(attr::RPM), Some(&Value::Int(1200)));
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#"{"ignition":true,"rpm":1200}"#);
    }
}
