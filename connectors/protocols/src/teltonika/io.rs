//! IO element ids → named attributes.
//!
//! The table follows Traccar's (`tests/vectors/teltonika_io_map.json`), model
//! conditions included, so a dashboard written for Traccar reads the same names
//! and units.
//!
//! Traccar maps model-specific ids only when it knows the model. Teltonika
//! devices never say their model on the wire, so Drover assumes the FMB family
//! (FMB/FMC/FMM/FMP…, by far the common case) unless a model is configured:
//! that is what gives OBD dongles their `rpm`, `coolantTemp` and the rest.

use std::borrow::Cow;

use super::avl::{IoElement, Width};
use crate::model::{Record, Value, attr};
use crate::wire::text;

/// The model families Traccar's conditions tell apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Models {
    fmb: bool,
    fm6: bool,
    tat: bool,
    fmb003: bool,
}

impl Models {
    pub(crate) fn of(model: Option<&str>) -> Self {
        let Some(model) = model else {
            return Models {
                fmb: true,
                ..Models::default()
            };
        };
        let c: Vec<char> = model.chars().collect();
        let at = |i: usize, f: fn(&char) -> bool| c.get(i).is_some_and(f);
        let six = c.len() == 6;
        Models {
            fmb: (six && model.starts_with("FM") && at(2, |c| ('B'..='Z').contains(c)))
                || model == "MTB100"
                || model == "MSP500",
            fm6: six && model.starts_with("FM") && at(3, |c| *c == '6'),
            tat: six && at(0, |c| *c == 'T') && at(2, |c| *c == 'T'),
            fmb003: model == "FMB003",
        }
    }

    fn allow(self, when: When) -> bool {
        match when {
            When::Any => true,
            When::Fmb => self.fmb,
            When::FmbNot6 => self.fmb && !self.fm6,
            When::Fm6 => self.fm6,
            When::FmbOrTat => self.fmb || self.tat,
            When::Fmb003 => self.fmb003,
        }
    }
}

/// Which models an id means this on (Traccar's predicates).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum When {
    Any,
    /// `FM[B-Z]...`, MTB100, MSP500.
    Fmb,
    /// FMB family but not `FM.6..` (the FM6 series numbers these differently).
    FmbNot6,
    Fm6,
    /// FMB family or `T.T...` (TAT asset trackers).
    FmbOrTat,
    Fmb003,
}

/// How the element's value becomes the attribute's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Conv {
    /// Non-zero → true.
    Flag,
    /// Exactly 1 → true (GH3000 ids).
    IsOne,
    Unsigned,
    Signed,
    /// Unsigned value divided by this.
    Scaled(f64),
    /// Signed value divided by this.
    SignedScaled(f64),
    /// Unsigned value multiplied by this.
    Times(i64),
    /// Signed value as decimal text (ICCIDs overflow JSON's integers).
    DecimalText,
    /// Little-endian value as 16 hex digits, absent when zero (iButton).
    DriverId,
    /// Raises this alarm when non-zero.
    Alarm(&'static str),
    /// Raises this alarm when exactly 1.
    AlarmIfOne(&'static str),
    /// 1, 2, 3: harsh acceleration, braking, cornering.
    Maneuver,
    /// Non-zero: geofence entered, zero: left.
    Geofence,
    /// Overrides the fix's speed (km/h).
    Speed,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct IoDef {
    pub(crate) id: u16,
    pub(crate) when: When,
    /// The value's width in bytes on the models the id is defined for. An
    /// element of another width comes from a device that numbers its ids
    /// differently (an FM63 sends a 4-byte IO 113, which an FMB's 1-byte
    /// battery level is not), so it stays `io{id}`.
    pub(crate) width: usize,
    pub(crate) name: &'static str,
    pub(crate) conv: Conv,
}

/// GH3000 ids are read at whatever width they come.
const ANY_WIDTH: usize = 0;

const fn def(id: u16, when: When, width: usize, name: &'static str, conv: Conv) -> IoDef {
    IoDef {
        id,
        when,
        width,
        name,
        conv,
    }
}

use Conv::*;
use When::*;

/// Codec 8, 8E and 16 ids, sorted by id.
pub(crate) static TABLE: &[IoDef] = &[
    def(1, Any, 1, "in1", Flag),
    def(2, Any, 1, "in2", Flag),
    def(3, Any, 1, "in3", Flag),
    def(4, Any, 1, "in4", Flag),
    def(9, Fmb, 2, "adc1", Scaled(1000.0)),
    def(10, Fmb, 2, "adc2", Scaled(1000.0)),
    def(11, Fmb, 8, attr::ICCID, DecimalText),
    def(12, Fmb, 4, "fuelUsed", Scaled(1000.0)),
    def(13, Fmb, 2, "fuelConsumption", Scaled(100.0)),
    def(16, Any, 4, attr::ODOMETER, Unsigned),
    def(17, Any, 2, "axisX", Signed),
    def(18, Any, 2, "axisY", Signed),
    def(19, Any, 2, "axisZ", Signed),
    def(21, Any, 1, attr::RSSI, Unsigned),
    def(24, Fmb, 2, "speed", Speed),
    def(25, Any, 2, "bleTemp1", SignedScaled(100.0)),
    def(26, Any, 2, "bleTemp2", SignedScaled(100.0)),
    def(27, Any, 2, "bleTemp3", SignedScaled(100.0)),
    def(28, Any, 2, "bleTemp4", SignedScaled(100.0)),
    def(30, Fmb, 1, attr::FAULT_COUNT, Unsigned),
    def(31, Fmb, 1, attr::ENGINE_LOAD, Unsigned),
    def(32, Fmb, 1, attr::COOLANT_TEMP, Signed),
    def(36, Fmb, 2, attr::RPM, Unsigned),
    def(43, Fmb, 2, "milDistance", Unsigned),
    def(57, Fmb, 1, "hybridBatteryLevel", Signed),
    def(66, Any, 2, attr::POWER, Scaled(1000.0)),
    def(67, Any, 2, attr::BATTERY, Scaled(1000.0)),
    def(68, Fmb, 2, "batteryCurrent", Scaled(1000.0)),
    def(72, Fmb, 4, "temp1", SignedScaled(10.0)),
    def(73, Fmb, 4, "temp2", SignedScaled(10.0)),
    def(74, Fmb, 4, "temp3", SignedScaled(10.0)),
    def(75, Fmb, 4, "temp4", SignedScaled(10.0)),
    def(78, Any, 8, attr::DRIVER_ID, DriverId),
    def(80, FmbNot6, 1, "dataMode", Unsigned),
    def(81, FmbNot6, 1, attr::OBD_SPEED, Unsigned),
    def(82, FmbNot6, 1, attr::THROTTLE, Unsigned),
    def(83, FmbNot6, 4, "fuelUsed", Scaled(10.0)),
    def(84, FmbNot6, 2, attr::FUEL, Scaled(10.0)),
    def(85, FmbNot6, 2, attr::RPM, Unsigned),
    def(87, FmbNot6, 4, attr::OBD_ODOMETER, Unsigned),
    def(89, FmbNot6, 1, attr::FUEL_LEVEL, Unsigned),
    def(107, Fmb, 4, "fuelUsed", Scaled(10.0)),
    def(110, Fmb, 2, "fuelConsumption", Scaled(10.0)),
    def(113, Fmb, 1, attr::BATTERY_LEVEL, Unsigned),
    def(115, Fmb, 2, "engineTemp", SignedScaled(10.0)),
    def(175, Fmb, 1, attr::ALARM, Geofence),
    def(179, Any, 1, "out1", Flag),
    def(180, Any, 1, "out2", Flag),
    def(181, Any, 2, "pdop", Scaled(10.0)),
    def(182, Any, 2, attr::HDOP, Scaled(10.0)),
    def(199, Any, 4, "tripOdometer", Unsigned),
    def(200, Fmb, 1, "sleepMode", Unsigned),
    def(205, FmbOrTat, 2, "cid2g", Unsigned),
    def(206, FmbOrTat, 2, "lac", Unsigned),
    def(236, Any, 1, attr::ALARM, Alarm("general")),
    def(239, Any, 1, attr::IGNITION, Flag),
    def(240, Any, 1, attr::MOTION, Flag),
    def(241, Any, 4, "operator", Unsigned),
    def(246, Fmb, 1, attr::ALARM, Alarm("tow")),
    def(247, Fmb, 1, attr::ALARM, Alarm("accident")),
    def(249, Fmb, 1, attr::ALARM, Alarm("jamming")),
    def(251, Fmb, 1, attr::ALARM, Alarm("idle")),
    def(252, Fmb, 1, attr::ALARM, Alarm("powerCut")),
    def(253, Any, 1, attr::ALARM, Maneuver),
    def(389, Fmb003, 4, attr::OBD_ODOMETER, Times(1000)),
    def(636, FmbOrTat, 4, "cid4g", Unsigned),
    def(662, Fmb, 1, "door", Flag),
    def(701, Fm6, 2, "bleTemp1", SignedScaled(10.0)),
    def(702, Fm6, 2, "bleTemp2", SignedScaled(10.0)),
    def(703, Fm6, 2, "bleTemp3", SignedScaled(10.0)),
    def(704, Fm6, 2, "bleTemp4", SignedScaled(10.0)),
    def(10644, Fmb, 2, "tempProbe1", SignedScaled(100.0)),
    def(10645, Fmb, 2, "tempProbe2", SignedScaled(100.0)),
    def(10646, Fmb, 2, "tempProbe3", SignedScaled(100.0)),
    def(10647, Fmb, 2, "tempProbe4", SignedScaled(100.0)),
    def(10648, Fmb, 2, "tempProbe5", SignedScaled(100.0)),
    def(10649, Fmb, 2, "tempProbe6", SignedScaled(100.0)),
    def(10800, Fmb, 2, "eyeTemp1", SignedScaled(100.0)),
    def(10801, Fmb, 2, "eyeTemp2", SignedScaled(100.0)),
    def(10802, Fmb, 2, "eyeTemp3", SignedScaled(100.0)),
    def(10803, Fmb, 2, "eyeTemp4", SignedScaled(100.0)),
    def(10832, Fmb, 2, "eyeRoll1", Signed),
    def(10833, Fmb, 2, "eyeRoll2", Signed),
    def(10834, Fmb, 2, "eyeRoll3", Signed),
    def(10835, Fmb, 2, "eyeRoll4", Signed),
];

/// Codec 7 (GH3000 personal trackers) numbers its ids differently.
pub(crate) static GH3000_TABLE: &[IoDef] = &[
    def(1, Any, ANY_WIDTH, attr::BATTERY_LEVEL, Unsigned),
    def(2, Any, ANY_WIDTH, "usbConnected", IsOne),
    def(5, Any, ANY_WIDTH, "uptime", Unsigned),
    def(20, Any, ANY_WIDTH, attr::HDOP, Scaled(10.0)),
    def(21, Any, ANY_WIDTH, "vdop", Scaled(10.0)),
    def(22, Any, ANY_WIDTH, "pdop", Scaled(10.0)),
    def(67, Any, ANY_WIDTH, attr::BATTERY, Scaled(1000.0)),
    def(221, Any, ANY_WIDTH, "button", Unsigned),
    def(222, Any, ANY_WIDTH, attr::ALARM, AlarmIfOne("sos")),
    def(240, Any, ANY_WIDTH, attr::MOTION, IsOne),
    def(244, Any, ANY_WIDTH, "roaming", IsOne),
];

fn lookup(table: &'static [IoDef], e: &IoElement<'_>, models: Models) -> Option<&'static IoDef> {
    let at = table.binary_search_by_key(&e.id, |d| d.id).ok()?;
    let def = table.get(at)?;
    let width_ok = def.width == ANY_WIDTH || def.width == e.bytes.len();
    (width_ok && models.allow(def.when)).then_some(def)
}

/// Sets the attribute(s) one IO element stands for.
pub(crate) fn apply(
    record: &mut Record,
    e: &IoElement<'_>,
    table: &'static [IoDef],
    models: Models,
) {
    match e.width {
        Width::Var => super::beacons::apply_variable(record, e),
        Width::W16 => set_unmapped_hex(record, e),
        _ => match lookup(table, e, models) {
            Some(def) => apply_def(record, def, e),
            None => record.attributes.set(io_key(e.id), e.value() as i64),
        },
    }
}

pub(crate) fn io_key(id: u16) -> Cow<'static, str> {
    Cow::Owned(format!("io{id}"))
}

pub(crate) fn set_unmapped_hex(record: &mut Record, e: &IoElement<'_>) {
    record.attributes.set(io_key(e.id), text::hex(e.bytes));
}

fn apply_def(record: &mut Record, def: &IoDef, e: &IoElement<'_>) {
    let raw = e.value();
    let attrs = &mut record.attributes;
    match def.conv {
        Flag => attrs.set(def.name, raw > 0),
        IsOne => attrs.set(def.name, raw == 1),
        Unsigned => attrs.set(def.name, raw as i64),
        Signed => attrs.set(def.name, e.signed()),
        Scaled(by) => attrs.set(def.name, raw as f64 / by),
        SignedScaled(by) => attrs.set(def.name, e.signed() as f64 / by),
        Times(k) => attrs.set(def.name, (raw as i64).wrapping_mul(k)),
        DecimalText => attrs.set(def.name, e.signed().to_string()),
        DriverId => driver_id(record, def.name, e.bytes),
        Alarm(alarm) if raw > 0 => add_alarm(record, alarm),
        AlarmIfOne(alarm) if raw == 1 => add_alarm(record, alarm),
        Alarm(_) | AlarmIfOne(_) => {}
        Maneuver => maneuver(record, raw),
        Geofence if raw > 0 => add_alarm(record, "geofenceEnter"),
        Geofence => add_alarm(record, "geofenceExit"),
        Speed => {
            if let Some(fix) = record.fix.as_mut() {
                fix.speed_kmh = raw as f64;
            }
        }
    }
}

fn maneuver(record: &mut Record, raw: u64) {
    let alarm = match raw {
        1 => "hardAcceleration",
        2 => "hardBraking",
        3 => "hardCornering",
        _ => return,
    };
    add_alarm(record, alarm);
}

fn driver_id(record: &mut Record, name: &'static str, bytes: &[u8]) {
    let id = bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| acc << 8 | u64::from(b));
    if id != 0 {
        record.attributes.set(name, format!("{id:016X}"));
    }
}

/// Several alarms in one record are joined with commas, as Traccar does.
pub(crate) fn add_alarm(record: &mut Record, alarm: &'static str) {
    let joined = match record.attributes.get(attr::ALARM) {
        Some(Value::Text(prev)) => format!("{prev},{alarm}"),
        _ => alarm.to_owned(),
    };
    record.attributes.set(attr::ALARM, joined);
}

// invariant: test code (cfg(test) only): the unwraps and expects below never see device input.
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value as Json;

    /// Names the map's Java expressions stand for (Traccar's `Position`).
    fn java_name(expr: &str) -> String {
        if let Some(quoted) = expr.strip_prefix('"') {
            return quoted.trim_end_matches('"').to_owned();
        }
        if let Some((prefix, n)) = expr.split_once(" + ") {
            let prefix = match prefix {
                "Position.PREFIX_IN" => "in",
                "Position.PREFIX_OUT" => "out",
                "Position.PREFIX_ADC" => "adc",
                "Position.PREFIX_TEMP" => "temp",
                other => panic!("prefix {other}"),
            };
            return format!("{prefix}{n}");
        }
        let key = expr.strip_prefix("Position.KEY_").unwrap_or(expr);
        let name = match key {
            "ICCID" => "iccid",
            "FUEL_USED" => "fuelUsed",
            "FUEL_CONSUMPTION" => "fuelConsumption",
            "ODOMETER" => "odometer",
            "RSSI" => "rssi",
            "ENGINE_LOAD" => "engineLoad",
            "COOLANT_TEMP" => "coolantTemp",
            "RPM" => "rpm",
            "POWER" => "power",
            "BATTERY" => "battery",
            "OBD_SPEED" => "obdSpeed",
            "THROTTLE" => "throttle",
            "FUEL" => "fuel",
            "OBD_ODOMETER" => "obdOdometer",
            "FUEL_LEVEL" => "fuelLevel",
            "BATTERY_LEVEL" => "batteryLevel",
            "ENGINE_TEMP" => "engineTemp",
            "PDOP" => "pdop",
            "HDOP" => "hdop",
            "ODOMETER_TRIP" => "tripOdometer",
            "IGNITION" => "ignition",
            "MOTION" => "motion",
            "OPERATOR" => "operator",
            "DOOR" => "door",
            "speed" => "speed",
            other => panic!("key {other}"),
        };
        name.to_owned()
    }

    fn java_conv(conversion: &str) -> Conv {
        let signed = !conversion.contains("readUnsigned");
        let divisor = conversion
            .split_once("/ ")
            .map(|(_, d)| d.trim_end_matches(')').parse().unwrap());
        match divisor {
            _ if conversion.contains("> 0") => Flag,
            _ if conversion.contains("knotsFromKph") => Speed,
            _ if conversion.starts_with("String.valueOf") => DecimalText,
            _ if conversion.ends_with("* 1000") => Times(1000),
            Some(d) if signed => SignedScaled(d),
            Some(d) => Scaled(d),
            None if signed => Signed,
            None => Unsigned,
        }
    }

    /// The width Traccar's read implies.
    fn java_width(conversion: &str) -> usize {
        match conversion {
            c if c.contains("Byte") => 1,
            c if c.contains("Short") => 2,
            c if c.contains("Int") => 4,
            c if c.contains("Long") => 8,
            other => panic!("width of {other}"),
        }
    }

    fn java_when(models: &str) -> When {
        match models {
            "any" => Any,
            "fmbXXX" => Fmb,
            "fmbXXX.and(fmb6XX.negate())" => FmbNot6,
            "fmb6XX" => Fm6,
            "fmbXXX.or(tatXXX)" => FmbOrTat,
            "\"FMB003\"::equals" => Fmb003,
            other => panic!("models {other}"),
        }
    }

    fn java_alarm(alarm: &str) -> &'static str {
        match alarm {
            "ALARM_GENERAL" => "general",
            "ALARM_TOW" => "tow",
            "ALARM_ACCIDENT" => "accident",
            "ALARM_JAMMING" => "jamming",
            "ALARM_IDLE" => "idle",
            "ALARM_POWER_CUT" => "powerCut",
            other => panic!("alarm {other}"),
        }
    }

    /// Ids whose handler is code, not an expression, in Traccar: how it
    /// converts and the width it reads.
    fn special(id: u16) -> (Conv, usize) {
        match id {
            78 => (DriverId, 8),
            175 => (Geofence, 1),
            253 => (Maneuver, 1),
            other => panic!("io {other} has neither attribute nor alarm"),
        }
    }

    /// Where Drover's model names differ from Traccar's: (id, Traccar, Drover).
    const RENAMED: &[(u16, &str, &str)] = &[];

    #[test]
    fn every_entry_of_traccars_map_is_in_the_table_and_agrees() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/teltonika_io_map.json"
        );
        let map: Vec<Json> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for entry in &map {
            let id = u16::try_from(entry["io_id"].as_u64().unwrap()).unwrap();
            let def = TABLE
                .iter()
                .find(|d| d.id == id)
                .unwrap_or_else(|| panic!("io {id} missing"));
            assert_eq!(
                def.when,
                java_when(entry["models"].as_str().unwrap()),
                "io {id} models"
            );
            if let Some(alarm) = entry["alarm"].as_str() {
                let alarm = Alarm(java_alarm(alarm));
                assert_eq!(
                    (def.name, def.conv, def.width),
                    (attr::ALARM, alarm, 1),
                    "io {id}"
                );
            } else if let Some(expr) = entry["attribute"].as_str() {
                let traccar = java_name(expr);
                let expected = match RENAMED.iter().find(|r| r.0 == id) {
                    Some(&(_, was, now)) => {
                        assert_eq!(traccar, was, "io {id} renamed from");
                        now.to_owned()
                    }
                    None => traccar,
                };
                assert_eq!(def.name, expected, "io {id} name");
                let conversion = entry["conversion"].as_str().unwrap();
                assert_eq!(def.conv, java_conv(conversion), "io {id} {conversion}");
                assert_eq!(def.width, java_width(conversion), "io {id} {conversion}");
            } else {
                assert_eq!((def.conv, def.width), special(id), "io {id}");
            }
        }
        assert_eq!(TABLE.len(), map.len(), "the table has ids the map does not");
    }

    #[test]
    fn tables_are_sorted_for_binary_search() {
        for table in [TABLE, GH3000_TABLE] {
            assert!(table.windows(2).all(|w| w[0].id < w[1].id));
        }
    }

    #[test]
    fn models_fall_in_traccars_families() {
        let fmb = Models::of(Some("FMB130"));
        assert!(fmb.allow(FmbNot6) && !fmb.allow(Fm6) && !fmb.allow(Fmb003));
        let fm6 = Models::of(Some("FMB640"));
        assert!(fm6.allow(Fmb) && fm6.allow(Fm6) && !fm6.allow(FmbNot6));
        assert!(Models::of(Some("TAT100")).allow(FmbOrTat));
        assert!(!Models::of(Some("TAT100")).allow(Fmb));
        assert!(Models::of(Some("FMB003")).allow(Fmb003));
        assert!(!Models::of(Some("GH3000")).allow(Fmb));
        assert!(Models::of(Some("MTB100")).allow(Fmb));
        assert!(
            Models::of(None).allow(FmbNot6),
            "unknown models are taken for FMB"
        );
        assert!(!Models::of(None).allow(Fm6) && !Models::of(None).allow(Fmb003));
    }
}
