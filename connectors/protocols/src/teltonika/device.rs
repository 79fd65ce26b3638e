//! What a Teltonika device sends, built from model records: for the
//! simulator, the benches and the tests.
//!
//! [`avl_packet`] is the inverse of the decoder for what it encodes: the
//! time (ms), the fix (coordinates to 10⁻⁷ degree; speed, course and altitude
//! as whole numbers), `priority` and `event`, and these attributes as their IO
//! elements: `ignition` 239, `motion` 240, `power` 66, `battery` 67,
//! `odometer` 16, `rssi` 21, `rpm` 36, `coolantTemp` 32, `engineLoad` 31,
//! `fuelLevel` 89, `throttle` 82, `obdSpeed` 81, `obdOdometer` 87, `faultCount` 30,
//! and `io{id}` integers as themselves (ids above 255 only in 8E and 16).
//! Other attributes are not sent. Decoding adds `priority` and `event` (0
//! unless given), alarm `sos` for priority 2, and turns a missing fix into an
//! invalid all-zero one; attributes come back grouped by value width, so
//! compare them as sets.

use super::avl::{CODEC_8, CODEC_8E, CODEC_16, PRIORITY};
use super::command::{self, TYPE_RESPONSE};
use super::frame;
use crate::command::Command;
use crate::model::{Fix, Record, Value, attr};

/// The IMEI handshake.
pub fn login(imei: &str) -> Vec<u8> {
    let len = u16::try_from(imei.len()).unwrap_or(u16::MAX);
    let imei = imei.as_bytes().get(..usize::from(len)).unwrap_or_default();
    [&len.to_be_bytes()[..], imei].concat()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Codec8,
    Codec8E,
    Codec16,
}

impl Codec {
    fn id(self) -> u8 {
        match self {
            Codec::Codec8 => CODEC_8,
            Codec::Codec8E => CODEC_8E,
            Codec::Codec16 => CODEC_16,
        }
    }

    fn wide_ids(self) -> bool {
        self != Codec::Codec8
    }

    fn wide_counts(self) -> bool {
        self == Codec::Codec8E
    }
}

/// An AVL packet of these records (at most 255, the count being one byte).
pub fn avl_packet(codec: Codec, records: &[Record]) -> Vec<u8> {
    let records = records.get(..255).unwrap_or(records);
    let count = u8::try_from(records.len()).unwrap_or(u8::MAX);
    let mut data = vec![codec.id(), count];
    for record in records {
        write_record(&mut data, codec, record);
    }
    data.push(count);
    frame::envelope(&data)
}

/// The record count in the server's ack.
pub fn parse_ack(reply: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(reply).ok().map(u32::from_be_bytes)
}

/// The server→device codec 12 frame for a text command (see [`command::encode`]).
pub fn command(text: &str) -> Vec<u8> {
    command::encode(text)
}

/// The device's codec 12 answer to a command.
pub fn command_response(text: &str) -> Vec<u8> {
    command::message(TYPE_RESPONSE, text.as_bytes())
}

/// The command a codec 12 frame from the server carries; `None` for any
/// other frame, a bad CRC or text no command could carry. Binary commands
/// read back as custom hex text.
pub fn parse_command(frame: &[u8]) -> Option<Command> {
    command::command_text(frame).and_then(|text| command::from_text(&text))
}

fn write_record(out: &mut Vec<u8>, codec: Codec, record: &Record) {
    out.extend_from_slice(&u64::try_from(record.time_ms).unwrap_or(0).to_be_bytes());
    out.push(priority(record));
    write_gps(out, record.fix.as_ref());
    let event = number(record, attr::EVENT).unwrap_or(0.0);
    write_id(out, codec, clamp_to(event, 0.0, f64::from(u16::MAX)) as u16);
    if codec == Codec::Codec16 {
        // "On change" for event records, "periodic" for the others.
        out.push(if event > 0.0 { 5 } else { 7 });
    }
    write_io(out, codec, record);
}

fn priority(record: &Record) -> u8 {
    match (number(record, PRIORITY), record.attributes.get(attr::ALARM)) {
        (Some(p), _) => clamp_to(p, 0.0, 2.0) as u8,
        (None, Some(Value::Text(alarm))) if alarm.split(',').any(|a| a == "sos") => 2,
        _ => 0,
    }
}

fn number(record: &Record, key: &str) -> Option<f64> {
    record.attributes.get(key).and_then(Value::as_f64)
}

fn clamp_to(v: f64, min: f64, max: f64) -> f64 {
    v.round().clamp(min, max)
}

fn write_gps(out: &mut Vec<u8>, fix: Option<&Fix>) {
    let Some(fix) = fix else {
        out.extend_from_slice(&[0; 15]);
        return;
    };
    let satellites = match (fix.valid, fix.satellites) {
        (false, _) => 0,
        (true, n) => n.unwrap_or(0).max(1),
    };
    out.extend_from_slice(&((fix.lon * 1e7).round() as i32).to_be_bytes());
    out.extend_from_slice(&((fix.lat * 1e7).round() as i32).to_be_bytes());
    out.extend_from_slice(&(fix.altitude_m.unwrap_or(0.0).round() as i16).to_be_bytes());
    out.extend_from_slice(&((fix.course_deg.round() as i64).rem_euclid(360) as u16).to_be_bytes());
    out.push(satellites);
    out.extend_from_slice(
        &(clamp_to(fix.speed_kmh, 0.0, f64::from(u16::MAX)) as u16).to_be_bytes(),
    );
}

fn write_id(out: &mut Vec<u8>, codec: Codec, id: u16) {
    if codec.wide_ids() {
        out.extend_from_slice(&id.to_be_bytes());
    } else {
        out.push(u8::try_from(id).unwrap_or(u8::MAX));
    }
}

fn write_count(out: &mut Vec<u8>, codec: Codec, n: usize) {
    if codec.wide_counts() {
        out.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
    } else {
        out.push(u8::try_from(n).unwrap_or(u8::MAX));
    }
}

/// An IO element to send: id, width in bytes, value.
type Element = (u16, usize, u64);

fn write_io(out: &mut Vec<u8>, codec: Codec, record: &Record) {
    let max = if codec.wide_counts() {
        usize::from(u16::MAX)
    } else {
        usize::from(u8::MAX)
    };
    let sections: Vec<Vec<Element>> = [1, 2, 4, 8]
        .iter()
        .map(|&width| {
            let fits = |e: &Element| e.1 == width && (codec.wide_ids() || e.0 <= 0xff);
            let all = record.attributes.iter().filter_map(|(k, v)| element(k, v));
            all.filter(fits).take(max).collect()
        })
        .collect();
    write_count(out, codec, sections.iter().map(Vec::len).sum());
    for section in &sections {
        write_count(out, codec, section.len());
        for &(id, width, value) in section {
            write_id(out, codec, id);
            out.extend_from_slice(value.to_be_bytes().get(8 - width..).unwrap_or_default());
        }
    }
    if codec == Codec::Codec8E {
        write_count(out, codec, 0);
    }
}

/// How a named attribute goes back into its IO element.
#[derive(Clone, Copy)]
enum Enc {
    Flag,
    Unsigned,
    Signed,
    /// Volts sent as millivolts.
    Milli,
}

const ELEMENTS: &[(&str, u16, usize, Enc)] = &[
    (attr::IGNITION, 239, 1, Enc::Flag),
    (attr::MOTION, 240, 1, Enc::Flag),
    (attr::POWER, 66, 2, Enc::Milli),
    (attr::BATTERY, 67, 2, Enc::Milli),
    (attr::ODOMETER, 16, 4, Enc::Unsigned),
    (attr::RSSI, 21, 1, Enc::Unsigned),
    (attr::RPM, 36, 2, Enc::Unsigned),
    (attr::COOLANT_TEMP, 32, 1, Enc::Signed),
    (attr::ENGINE_LOAD, 31, 1, Enc::Unsigned),
    (attr::FUEL_LEVEL, 89, 1, Enc::Unsigned),
    (attr::THROTTLE, 82, 1, Enc::Unsigned),
    (attr::OBD_SPEED, 81, 1, Enc::Unsigned),
    (attr::OBD_ODOMETER, 87, 4, Enc::Unsigned),
    (attr::FAULT_COUNT, 30, 1, Enc::Unsigned),
];

fn element(key: &str, value: &Value) -> Option<Element> {
    if let Some(id) = key.strip_prefix("io").and_then(|id| id.parse::<u16>().ok()) {
        return raw_element(id, value);
    }
    let &(_, id, width, enc) = ELEMENTS.iter().find(|e| e.0 == key)?;
    let bits = u32::try_from(width * 8).unwrap_or(64);
    let max = u64::MAX >> (64 - bits);
    let raw = match enc {
        Enc::Flag => u64::from(value.as_bool()?),
        Enc::Unsigned => clamp_to(value.as_f64()?, 0.0, max as f64) as u64,
        Enc::Milli => clamp_to(value.as_f64()? * 1000.0, 0.0, max as f64) as u64,
        Enc::Signed => {
            let half = (max / 2) as f64;
            (clamp_to(value.as_f64()?, -half - 1.0, half) as i64 as u64) & max
        }
    };
    Some((id, width, raw))
}

/// `io{id}` integers go in the narrowest section that holds them (negative
/// ones in the 8-byte section, the only one decoded as signed).
fn raw_element(id: u16, value: &Value) -> Option<Element> {
    let &Value::Int(v) = value else { return None };
    let width = match u64::try_from(v) {
        Ok(v) if v <= 0xff => 1,
        Ok(v) if v <= 0xffff => 2,
        Ok(v) if v <= 0xffff_ffff => 4,
        _ => 8,
    };
    Some((id, width, v as u64))
}

// invariant: test code (cfg(test) only): the unwraps and expects below never see device input.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeviceId, RecordKind};
    use crate::teltonika::Teltonika;
    use crate::{DecodeOptions, Decoded, Session};

    fn moving() -> Record {
        let mut record = Record {
            time_ms: 1_700_000_000_123,
            kind: RecordKind::Position,
            fix: Some(Fix {
                lat: 54.6872001,
                lon: -25.2796514,
                speed_kmh: 63.0,
                course_deg: 271.0,
                altitude_m: Some(-12.0),
                satellites: Some(11),
                valid: true,
            }),
            ..Record::default()
        };
        let a = &mut record.attributes;
        a.set(PRIORITY, 1i64);
        a.set(attr::EVENT, 239i64);
        a.set(attr::IGNITION, true);
        a.set(attr::MOTION, false);
        a.set(attr::POWER, 12.834);
        a.set(attr::BATTERY, 4.1);
        a.set(attr::ODOMETER, 123_456i64);
        a.set(attr::RSSI, 4i64);
        a.set(attr::RPM, 2150i64);
        a.set(attr::COOLANT_TEMP, -5i64);
        a.set(attr::ENGINE_LOAD, 37i64);
        a.set(attr::FUEL_LEVEL, 64i64);
        a.set(attr::THROTTLE, 18i64);
        a.set(attr::OBD_SPEED, 62i64);
        a.set(attr::OBD_ODOMETER, 98_765_432i64);
        a.set(attr::FAULT_COUNT, 2i64);
        a.set("io5", -3i64);
        a.set("io6", 1i64);
        a.set("io69", 24_602i64);
        record
    }

    fn parked_without_fix() -> Record {
        let mut record = Record {
            time_ms: 1_700_000_060_000,
            fix: Some(Fix {
                satellites: Some(0),
                altitude_m: Some(0.0),
                ..Fix::default()
            }),
            ..Record::default()
        };
        record.attributes.set(PRIORITY, 2i64);
        record.attributes.set(attr::ALARM, "sos");
        record.attributes.set(attr::EVENT, 0i64);
        record.attributes.set(attr::IGNITION, false);
        record
    }

    fn sorted(record: &Record) -> Vec<(String, Value)> {
        let mut all: Vec<_> = record
            .attributes
            .iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    fn decode(frame: &[u8]) -> Decoded {
        let teltonika = Teltonika::new(DecodeOptions::default());
        let mut session = teltonika.session_for(DeviceId::new("356307042441013"));
        assert_eq!(session.check(frame), crate::Check::Frame(frame.len()));
        let mut out = Decoded::default();
        session.decode(frame, &mut out).unwrap();
        out
    }

    fn round_trip(codec: Codec, records: &[Record]) {
        let out = decode(&avl_packet(codec, records));
        assert_eq!(parse_ack(&out.reply), Some(2));
        assert_eq!(out.records.len(), records.len());
        for (sent, got) in records.iter().zip(&out.records) {
            assert_eq!(got.time_ms, sent.time_ms, "{codec:?}");
            assert_eq!(got.kind, sent.kind, "{codec:?}");
            assert_eq!(got.fix, sent.fix, "{codec:?}");
            assert_eq!(sorted(got), sorted(sent), "{codec:?}");
        }
    }

    #[test]
    fn avl_packets_decode_to_the_records_they_were_built_from() {
        let records = [moving(), parked_without_fix()];
        for codec in [Codec::Codec8, Codec::Codec8E, Codec::Codec16] {
            round_trip(codec, &records);
        }
    }

    #[test]
    fn wide_io_ids_need_a_wide_codec() {
        let mut record = moving();
        record.attributes.set("io10800", 1187i64);
        let ids = |codec| {
            let out = decode(&avl_packet(codec, std::slice::from_ref(&record)));
            out.records[0].attributes.get("eyeTemp1").cloned()
        };
        assert_eq!(ids(Codec::Codec8), None);
        assert_eq!(ids(Codec::Codec8E), Some(Value::Float(11.87)));
        assert_eq!(ids(Codec::Codec16), Some(Value::Float(11.87)));
    }

    #[test]
    fn login_and_ack() {
        assert_eq!(
            hex::encode(login("356307042441013")),
            "000f333536333037303432343431303133"
        );
        assert_eq!(parse_ack(&[0, 0, 0, 2]), Some(2));
        assert_eq!(parse_ack(&[1]), None);
    }

    #[test]
    fn a_command_response_decodes_to_its_text() {
        let out = decode(&command_response("DI1:1 DI2:0"));
        assert_eq!(out.records[0].kind, RecordKind::CommandResult);
        assert_eq!(
            out.records[0].attributes.get(attr::RESULT),
            Some(&Value::from("DI1:1 DI2:0"))
        );
        assert!(out.reply.is_empty());
    }
}
