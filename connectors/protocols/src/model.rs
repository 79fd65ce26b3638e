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
/// are built once, read a few times. Each well-known name carries its
/// [`attr::Known`] slot, resolved when it is set.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attributes(Vec<Entry>);

/// One attribute: its name, its slot if the name is well known, its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    key: Cow<'static, str>,
    known: Option<attr::Known>,
    value: Value,
}

impl Entry {
    /// The name as stored: copying it costs nothing for the common
    /// `&'static str` names.
    pub fn key(&self) -> &Cow<'static, str> {
        &self.key
    }

    pub fn known(&self) -> Option<attr::Known> {
        self.known
    }

    pub fn value(&self) -> &Value {
        &self.value
    }

    fn is(&self, key: &str, known: Option<attr::Known>) -> bool {
        match (self.known, known) {
            (Some(a), Some(b)) => a == b,
            (None, None) => self.key == key,
            _ => false,
        }
    }
}

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
        let known = attr::Known::of(&key);
        self.put(key, known, value.into());
    }

    /// Sets a well-known attribute by its slot.
    pub fn set_known(&mut self, known: attr::Known, value: impl Into<Value>) {
        self.put(Cow::Borrowed(known.name()), Some(known), value.into());
    }

    /// Sets `entry`'s key (with its slot) to its value.
    pub fn set_entry(&mut self, entry: &Entry) {
        self.put(entry.key.clone(), entry.known, entry.value.clone());
    }

    fn put(&mut self, key: Cow<'static, str>, known: Option<attr::Known>, value: Value) {
        match self.0.iter_mut().find(|e| e.is(&key, known)) {
            Some(entry) => entry.value = value,
            None => self.0.push(Entry { key, known, value }),
        }
    }

    /// Appends `key`, which the caller knows is not set yet (a reader of
    /// stored records checks that cheaply): [`Attributes::set`] without
    /// its search, which costs more than the rest of decoding a record.
    pub fn push_new(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        let key = key.into();
        debug_assert!(self.get(&key).is_none(), "attribute {key} set twice");
        let known = attr::Known::of(&key);
        self.0.push(Entry {
            key,
            known,
            value: value.into(),
        });
    }

    /// [`Attributes::push_new`] of a well-known attribute.
    pub fn push_known(&mut self, known: attr::Known, value: impl Into<Value>) {
        debug_assert!(
            self.get(known.name()).is_none(),
            "attribute {known:?} set twice"
        );
        self.0.push(Entry {
            key: Cow::Borrowed(known.name()),
            known: Some(known),
            value: value.into(),
        });
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|e| e.key == key).map(|e| &e.value)
    }

    /// The value of `entry`'s key, found by slot when it has one.
    pub fn get_like(&self, entry: &Entry) -> Option<&Value> {
        self.0
            .iter()
            .find(|e| e.is(&entry.key, entry.known))
            .map(|e| &e.value)
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let at = self.0.iter().position(|e| e.key == key)?;
        Some(self.0.remove(at).value)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|e| (e.key.as_ref(), &e.value))
    }

    /// The entries with their keys as stored and their slots.
    pub fn entries(&self) -> &[Entry] {
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
        for e in &self.0 {
            map.serialize_entry(e.key.as_ref(), &e.value)?;
        }
        map.end()
    }
}

/// Well-known attribute names. They follow Traccar's names so that
/// integrations written for it read Drover's payloads unchanged.
pub mod attr {
    /// Defines each name as a constant and [`well_known`] over all of them,
    /// so the list cannot drift from the constants.
    macro_rules! names {
        ($($(#[doc = $doc:literal])* $name:ident / $known:ident = $value:literal;)*) => {
            $($(#[doc = $doc])* pub const $name: &str = $value;)*

            /// Every well-known name.
            pub const ALL: &[&str] = &[$($name),*];

            /// A well-known name as a slot: what the engine dispatches on
            /// (one byte, a jump table) instead of comparing names for
            /// every attribute of every record. Decoders and the journal
            /// reader resolve it once, when they set the attribute.
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
            #[repr(u8)]
            pub enum Known {
                $($known),*
            }

            impl Known {
                /// In the order of [`ALL`].
                const EVERY: &[Known] = &[$(Known::$known),*];

                /// The name this slot stands for.
                pub fn name(self) -> &'static str {
                    ALL[self as usize]
                }

                /// The slot of a well-known name.
                pub fn of(name: &str) -> Option<Known> {
                    match name {
                        $($value => Some(Known::$known),)*
                        _ => None,
                    }
                }

                /// The slot at `index` of [`ALL`].
                pub fn at(index: usize) -> Option<Known> {
                    Known::EVERY.get(index).copied()
                }
            }

            /// `name`'s place in [`ALL`] and its static form, so that reading
            /// a stored record back allocates no string for it.
            pub fn well_known(name: &str) -> Option<(usize, &'static str)> {
                let known = Known::of(name)?;
                Some((known as usize, known.name()))
            }
        };
    }

    names! {
        /// Engine ignition (bool).
        IGNITION / Ignition = "ignition";
        /// Device is moving, as the device itself reports (bool).
        MOTION / Motion = "motion";
        /// Alarm name (text), e.g. `sos`, `powerCut`, `vibration`.
        ALARM / Alarm = "alarm";
        /// Vehicle (external) power in volts.
        POWER / Power = "power";
        /// Device battery in volts.
        BATTERY / Battery = "battery";
        /// Device battery charge in percent.
        BATTERY_LEVEL / BatteryLevel = "batteryLevel";
        /// Whether the device is charging (bool).
        CHARGE / Charge = "charge";
        /// GSM signal strength as the device reports it.
        RSSI / Rssi = "rssi";
        /// Satellites in view (not necessarily used).
        SATELLITES_VISIBLE / SatellitesVisible = "satVisible";
        /// Horizontal dilution of precision.
        HDOP / Hdop = "hdop";
        /// Odometer in metres, as the device counts it.
        ODOMETER / Odometer = "odometer";
        /// Total engine hours in milliseconds.
        HOURS / Hours = "hours";
        /// Device event code (vendor-specific integer).
        EVENT / Event = "event";
        /// Frame serial number.
        INDEX / Index = "index";
        /// Driver identification (RFID / iButton).
        DRIVER_ID / DriverId = "driverUniqueId";
        /// Reply text to a command.
        RESULT / Result = "result";
        /// SIM card ICCID.
        ICCID / Iccid = "iccid";
        /// Engine speed in rpm (OBD).
        RPM / Rpm = "rpm";
        /// Engine coolant temperature in °C (OBD).
        COOLANT_TEMP / CoolantTemp = "coolantTemp";
        /// Calculated engine load in percent (OBD).
        ENGINE_LOAD / EngineLoad = "engineLoad";
        /// Fuel level in percent (OBD).
        FUEL_LEVEL / FuelLevel = "fuelLevel";
        /// Fuel in the tank in litres.
        FUEL / Fuel = "fuel";
        /// Throttle position in percent (OBD).
        THROTTLE / Throttle = "throttle";
        /// Vehicle speed from the OBD bus in km/h.
        OBD_SPEED / ObdSpeed = "obdSpeed";
        /// Odometer from the OBD bus in metres.
        OBD_ODOMETER / ObdOdometer = "obdOdometer";
        /// Number of diagnostic trouble codes stored (OBD).
        FAULT_COUNT / FaultCount = "faultCount";
        /// Diagnostic trouble codes, space separated (OBD).
        DTCS / Dtcs = "dtcs";
    }
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

    #[test]
    fn well_known_names_are_found_and_others_are_not() {
        assert_eq!(attr::ALL.len(), 27);
        for (at, name) in attr::ALL.iter().enumerate() {
            assert_eq!(attr::well_known(name), Some((at, *name)));
        }
        for (at, name) in attr::ALL.iter().enumerate() {
            let known = attr::Known::at(at).unwrap();
            assert_eq!((known.name(), attr::Known::of(name)), (*name, Some(known)));
        }
        assert_eq!(attr::Known::at(attr::ALL.len()), None);
        // Set by name or by slot, an attribute is the same one.
        let mut a = Attributes::new();
        a.set(attr::FUEL_LEVEL, 50i64);
        a.set_known(attr::Known::FuelLevel, 40i64);
        a.set("io239", 1i64);
        assert_eq!(a.len(), 2);
        assert_eq!(a.entries()[0].known(), Some(attr::Known::FuelLevel));
        assert_eq!(a.entries()[1].known(), None);
        assert_eq!(a.get_like(&a.entries()[0]), Some(&Value::Int(40)));
        assert_eq!(attr::well_known("io239"), None);
        assert_eq!(attr::well_known(""), None);
        assert_eq!(attr::well_known("ignition\0"), None);
    }
}
