//! InfluxDB line protocol for Drover's messages, written by hand into one
//! reusable buffer (no allocation per point once the buffer has grown).
//!
//! The schema (also in `docs/influxdb.md`), tags `device` and `protocol` only:
//!
//! * `position`: a record with a fix. Fields `lat`, `lon`, `speed_kmh`,
//!   `course_deg`, `altitude_m` and `satellites` (when reported), `valid`,
//!   `archived`, `kind`, then the record's non-OBD attributes.
//! * `event`: a record without a fix (status, alarm, command result, …).
//!   Fields `kind`, `archived`, then its non-OBD attributes.
//! * `obd`: the record's OBD attributes ([`OBD_ATTRIBUTES`]), when it has any.
//!
//! Timestamps are the record's `time_ms`, written with `precision=ms`. The same
//! (measurement, tags, time) overwrites, so replaying a batch is harmless.
//!
//! Escaping follows the InfluxDB 1.x parser, checked against a real server:
//! in measurements `,` and space; in tag keys, tag values and field keys `,`,
//! `=` and space; in string field values `"` and `\`. A backslash elsewhere in
//! a tag or key is kept as is (the parser only unescapes the characters above),
//! which leaves two things that cannot be written at all: a newline, and a
//! backslash at the very end (it would escape the separator after it).

use std::fmt::Write as _;

use drover_protocols::model::{DeviceMessage, Fix, Record, RecordKind, Value, attr};

/// Measurement of records with a fix.
pub const POSITION: &str = "position";
/// Measurement of records without a fix.
pub const EVENT: &str = "event";
/// Measurement of OBD readings.
pub const OBD: &str = "obd";

/// Attributes that go to the `obd` measurement rather than `position`/`event`.
pub const OBD_ATTRIBUTES: &[&str] = &[
    attr::RPM,
    attr::COOLANT_TEMP,
    attr::ENGINE_LOAD,
    attr::FUEL_LEVEL,
    attr::FUEL,
    attr::THROTTLE,
    attr::OBD_SPEED,
    attr::OBD_ODOMETER,
    attr::FAULT_COUNT,
    attr::DTCS,
];

/// Names an attribute may not take as a field: the encoder's own fields (whose
/// type must never change), the tags (a field named like a tag comes back as
/// `device_1` from queries) and `time`, which InfluxDB refuses as a field key.
const RESERVED: &[&str] = &[
    "time",
    "device",
    "protocol",
    "lat",
    "lon",
    "speed_kmh",
    "course_deg",
    "altitude_m",
    "satellites",
    "valid",
    "archived",
    "kind",
];

/// Why a message cannot be expressed in line protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unencodable {
    #[error("the device id (or another tag) is empty")]
    EmptyDevice,
    #[error("the device id contains a newline")]
    NewlineInDevice,
    #[error("the device id ends with a backslash, which line protocol cannot express in a tag")]
    TrailingBackslash,
}

/// A point of a measurement the node derives (`trip`, `alert`): tag
/// `device` and `tags` (keys sorted after `device`), fields typed by their
/// [`Value`] (always the same way for one name, as for attributes).
#[derive(Debug, Clone, Copy)]
pub struct Point<'a> {
    pub measurement: &'a str,
    pub device: &'a str,
    pub tags: &'a [(&'a str, &'a str)],
    pub time_ms: i64,
    pub fields: &'a [(&'a str, Value)],
}

/// Appends the line of `point` to `out`. A point left without fields (all
/// NaN) writes nothing; on error `out` is unchanged.
pub fn encode_point(point: &Point<'_>, out: &mut String) -> Result<usize, Unencodable> {
    check_tag_value(point.device)?;
    let mut tags = vec![("device", point.device)];
    for &(key, value) in point.tags {
        check_tag_value(value)?;
        tags.push((key, value));
    }
    let mut line = Line::with_tags(out, point.measurement, &tags);
    for (key, value) in point.fields {
        line.value(key, value);
    }
    if line.fields == 0 {
        line.abandon();
        return Ok(0);
    }
    line.finish(point.time_ms);
    Ok(1)
}

/// Appends the lines of `message` to `out` and returns how many (1 or 2).
/// On error `out` is unchanged.
pub fn encode(message: &DeviceMessage, out: &mut String) -> Result<usize, Unencodable> {
    check_tag_value(message.device.as_str())?;
    let record = &message.record;
    match &record.fix {
        Some(fix) => position_line(message, fix, out),
        None => event_line(message, out),
    }
    Ok(1 + usize::from(obd_line(message, out)))
}

/// The name written in the `kind` field.
pub fn kind_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Position => "position",
        RecordKind::Status => "status",
        RecordKind::Alarm => "alarm",
        RecordKind::Network => "network",
        RecordKind::CommandResult => "command_result",
        RecordKind::Event => "event",
    }
}

/// The inverse of [`kind_name`].
pub fn parse_kind(name: &str) -> Option<RecordKind> {
    Some(match name {
        "position" => RecordKind::Position,
        "status" => RecordKind::Status,
        "alarm" => RecordKind::Alarm,
        "network" => RecordKind::Network,
        "command_result" => RecordKind::CommandResult,
        "event" => RecordKind::Event,
        _ => return None,
    })
}

/// Whether `name` goes to the `obd` measurement.
pub fn is_obd(name: &str) -> bool {
    OBD_ATTRIBUTES.contains(&name)
}

fn check_tag_value(value: &str) -> Result<(), Unencodable> {
    if value.is_empty() {
        Err(Unencodable::EmptyDevice)
    } else if value.contains('\n') {
        Err(Unencodable::NewlineInDevice)
    } else if value.ends_with('\\') {
        Err(Unencodable::TrailingBackslash)
    } else {
        Ok(())
    }
}

fn position_line(message: &DeviceMessage, fix: &Fix, out: &mut String) {
    let record = &message.record;
    let mut line = Line::start(out, POSITION, message);
    line.float("lat", fix.lat);
    line.float("lon", fix.lon);
    line.float("speed_kmh", fix.speed_kmh);
    line.float("course_deg", fix.course_deg);
    if let Some(altitude) = fix.altitude_m {
        line.float("altitude_m", altitude);
    }
    if let Some(satellites) = fix.satellites {
        line.int("satellites", satellites.into());
    }
    line.bool("valid", fix.valid);
    common_fields(&mut line, record);
    line.finish(record.time_ms);
}

fn event_line(message: &DeviceMessage, out: &mut String) {
    let record = &message.record;
    let mut line = Line::start(out, EVENT, message);
    common_fields(&mut line, record);
    line.finish(record.time_ms);
}

/// `archived`, `kind` (which also guarantees every line has a field even when
/// all the floats were NaN) and the non-OBD attributes.
fn common_fields(line: &mut Line<'_>, record: &Record) {
    line.bool("archived", record.archived);
    line.string("kind", kind_name(record.kind));
    for (key, value) in record.attributes.iter() {
        if !is_obd(key) && !RESERVED.contains(&key) {
            line.value(key, value);
        }
    }
}

/// Writes the `obd` line when the record has at least one writable OBD value.
fn obd_line(message: &DeviceMessage, out: &mut String) -> bool {
    let record = &message.record;
    if !record.attributes.iter().any(|(key, _)| is_obd(key)) {
        return false;
    }
    let mut line = Line::start(out, OBD, message);
    for (key, value) in record.attributes.iter() {
        if is_obd(key) {
            line.value(key, value);
        }
    }
    if line.fields == 0 {
        // Only NaN/infinite values: a line without fields would be refused.
        line.abandon();
        return false;
    }
    line.finish(record.time_ms);
    true
}

/// One line being written; fields that cannot be written are skipped.
struct Line<'a> {
    out: &'a mut String,
    /// Where the line starts, to take it back if it ends up without fields.
    start: usize,
    fields: usize,
}

impl<'a> Line<'a> {
    /// Writes `measurement,device=…,protocol=… ` (tags sorted by key, as
    /// InfluxDB would otherwise sort them itself on every point).
    fn start(out: &'a mut String, measurement: &str, message: &DeviceMessage) -> Self {
        let tags = [
            ("device", message.device.as_str()),
            ("protocol", message.protocol),
        ];
        Line::with_tags(out, measurement, &tags)
    }

    /// `tags` sorted by key.
    fn with_tags(out: &'a mut String, measurement: &str, tags: &[(&str, &str)]) -> Self {
        let start = out.len();
        escape(out, measurement, &[',', ' ']);
        for (key, value) in tags {
            out.push(',');
            out.push_str(key);
            out.push('=');
            escape(out, value, TAG_SPECIALS);
        }
        out.push(' ');
        Line {
            out,
            start,
            fields: 0,
        }
    }

    fn key(&mut self, key: &str) {
        if self.fields > 0 {
            self.out.push(',');
        }
        self.fields += 1;
        escape(self.out, key, TAG_SPECIALS);
        self.out.push('=');
    }

    fn float(&mut self, key: &str, value: f64) {
        // InfluxDB has no NaN or infinity; skipping the field keeps the point.
        if value.is_finite() {
            self.key(key);
            // Display never uses an exponent and round-trips; without an `i`
            // suffix InfluxDB reads even `12` as a float.
            let _ = write!(self.out, "{value}");
        }
    }

    fn int(&mut self, key: &str, value: i64) {
        self.key(key);
        let _ = write!(self.out, "{value}i");
    }

    fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
    }

    fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        self.out.push('"');
        escape(self.out, value, &['"', '\\']);
        self.out.push('"');
    }

    /// An attribute: its type decides the field type, always the same way, so
    /// one attribute keeps one field type.
    fn value(&mut self, key: &str, value: &Value) {
        if !writable_key(key) {
            return;
        }
        match value {
            Value::Bool(b) => self.bool(key, *b),
            Value::Int(i) => self.int(key, *i),
            Value::Float(f) => self.float(key, *f),
            Value::Text(s) => self.string(key, s),
        }
    }

    fn finish(self, time_ms: i64) {
        let _ = writeln!(self.out, " {time_ms}");
    }

    fn abandon(self) {
        self.out.truncate(self.start);
    }
}

const TAG_SPECIALS: &[char] = &[',', '=', ' '];

/// Attribute names come from decoders, but a vendor-defined one could be
/// anything: skip what no escaping can express.
fn writable_key(key: &str) -> bool {
    !key.is_empty() && !key.contains('\n') && !key.ends_with('\\')
}

fn escape(out: &mut String, text: &str, specials: &[char]) {
    // Most names and ids need no escaping: copy them in one go.
    if !text.contains(specials) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        if specials.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_protocols::model::{Attributes, DeviceId};

    fn message(device: &str, fix: Option<Fix>, attributes: Attributes) -> DeviceMessage {
        DeviceMessage {
            device: DeviceId::new(device),
            protocol: "gt06",
            record: Record {
                time_ms: 1_700_000_000_123,
                kind: if fix.is_some() {
                    RecordKind::Position
                } else {
                    RecordKind::Status
                },
                fix,
                archived: false,
                attributes,
            },
        }
    }

    fn fix() -> Fix {
        Fix {
            lat: 48.85,
            lon: 2.35,
            speed_kmh: 42.5,
            course_deg: 90.0,
            altitude_m: Some(35.0),
            satellites: Some(9),
            valid: true,
        }
    }

    fn lines(m: &DeviceMessage) -> String {
        let mut out = String::new();
        let n = encode(m, &mut out).expect("encodable");
        assert_eq!(n, out.matches(" 1700000000123\n").count());
        out
    }

    #[test]
    fn position_with_obd_attributes_becomes_two_lines() {
        let mut a = Attributes::new();
        a.set(attr::IGNITION, true);
        a.set(attr::RPM, 1500i64);
        a.set(attr::POWER, 12.5);
        a.set(attr::DTCS, "P0300 P0171");
        let out = lines(&message("359632101234567", Some(fix()), a));
        assert_eq!(
            out,
            "position,device=359632101234567,protocol=gt06 lat=48.85,lon=2.35,speed_kmh=42.5,\
             course_deg=90,altitude_m=35,satellites=9i,valid=true,archived=false,\
             kind=\"position\",ignition=true,power=12.5 1700000000123\n\
             obd,device=359632101234567,protocol=gt06 rpm=1500i,dtcs=\"P0300 P0171\" 1700000000123\n"
        );
    }

    #[test]
    fn record_without_fix_is_an_event() {
        let mut a = Attributes::new();
        a.set(attr::ALARM, "sos");
        a.set(attr::EVENT, 42i64);
        let out = lines(&message("1", None, a));
        assert_eq!(
            out,
            "event,device=1,protocol=gt06 archived=false,kind=\"status\",alarm=\"sos\",event=42i 1700000000123\n"
        );
    }

    #[test]
    fn tag_values_and_field_keys_escape_comma_equals_space() {
        let mut a = Attributes::new();
        a.set("we ird,k=ey", 1i64);
        a.set("back\\slash", 2i64);
        let out = lines(&message("a b,c=d\"'\\x", None, a));
        assert_eq!(
            out,
            "event,device=a\\ b\\,c\\=d\"'\\x,protocol=gt06 archived=false,kind=\"status\",\
             we\\ ird\\,k\\=ey=1i,back\\slash=2i 1700000000123\n"
        );
    }

    #[test]
    fn string_fields_escape_quote_and_backslash_only() {
        let mut a = Attributes::new();
        a.set(attr::RESULT, "say \"hi\" C:\\ ok, a=b\nnext");
        let out = lines(&message("1", None, a));
        assert!(out.contains(r#"result="say \"hi\" C:\\ ok, a=b"#), "{out}");
        assert!(out.ends_with("next\" 1700000000123\n"), "{out}");
    }

    #[test]
    fn non_finite_floats_are_skipped_and_the_point_stays_valid() {
        let mut f = fix();
        f.lat = f64::NAN;
        f.altitude_m = Some(f64::INFINITY);
        let mut a = Attributes::new();
        a.set(attr::BATTERY, f64::NEG_INFINITY);
        a.set(attr::FUEL, f64::NAN);
        let out = lines(&message("1", Some(f), a));
        assert_eq!(
            out,
            "position,device=1,protocol=gt06 lon=2.35,speed_kmh=42.5,course_deg=90,\
             satellites=9i,valid=true,archived=false,kind=\"position\" 1700000000123\n",
            "no obd line: its only value was NaN"
        );
    }

    #[test]
    fn field_types_are_stable_per_value_type() {
        let mut a = Attributes::new();
        a.set("i", 3i64);
        a.set("f", 3.0);
        a.set("neg", -0.5);
        a.set("big", 1e21);
        a.set("b", false);
        let out = lines(&message("1", None, a));
        assert!(
            out.contains(",i=3i,f=3,neg=-0.5,big=1000000000000000000000,b=false "),
            "{out}"
        );
    }

    #[test]
    fn reserved_and_unwritable_attribute_names_are_skipped() {
        let mut a = Attributes::new();
        a.set("time", 1i64);
        a.set("kind", "x");
        a.set("device", "x");
        a.set("lat", 1.0);
        a.set("", 1i64);
        a.set("new\nline", 1i64);
        a.set("ends\\", 1i64);
        a.set(attr::IGNITION, true);
        let out = lines(&message("1", Some(fix()), a));
        assert!(
            out.ends_with("kind=\"position\",ignition=true 1700000000123\n"),
            "{out}"
        );
        assert_eq!(out.matches("lat=").count(), 1);
    }

    #[test]
    fn unencodable_device_ids_leave_the_buffer_untouched() {
        for (id, why) in [
            ("", Unencodable::EmptyDevice),
            ("a\nb", Unencodable::NewlineInDevice),
            ("ab\\", Unencodable::TrailingBackslash),
        ] {
            let mut out = String::from("before\n");
            assert_eq!(
                encode(&message(id, None, Attributes::new()), &mut out),
                Err(why)
            );
            assert_eq!(out, "before\n");
        }
    }

    #[test]
    fn lines_append_to_the_same_buffer() {
        let mut out = String::new();
        encode(&message("1", None, Attributes::new()), &mut out).unwrap();
        encode(&message("2", None, Attributes::new()), &mut out).unwrap();
        assert_eq!(out.lines().count(), 2);
        assert!(out.lines().nth(1).unwrap().starts_with("event,device=2,"));
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in [
            RecordKind::Position,
            RecordKind::Status,
            RecordKind::Alarm,
            RecordKind::Network,
            RecordKind::CommandResult,
            RecordKind::Event,
        ] {
            assert_eq!(parse_kind(kind_name(kind)), Some(kind));
        }
        assert_eq!(parse_kind("nope"), None);
    }
}
