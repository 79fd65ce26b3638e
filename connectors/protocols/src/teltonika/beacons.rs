//! Codec 8E's variable-length IO elements: VIN, trouble codes, and the
//! Bluetooth beacons and sensor tags the device has heard.
//!
//! Beacon and tag lists are parsed in full before any attribute is set, so a
//! malformed list falls back to its hex dump rather than half its values.

use std::borrow::Cow;

use super::avl::IoElement;
use super::io;
use crate::DecodeError;
use crate::model::{Record, Value, attr};
use crate::wire::reader::Reader;
use crate::wire::text;

const VIN: &str = "vin";

type Found = Vec<(Cow<'static, str>, Value)>;

pub(crate) fn apply_variable(record: &mut Record, e: &IoElement<'_>) {
    let found = match e.id {
        256 | 325 => return record.attributes.set(VIN, text::ascii(e.bytes)),
        281 => {
            return record
                .attributes
                .set(attr::DTCS, text::ascii(e.bytes).replace(',', " "));
        }
        385 => beacons(e.bytes),
        548 | 10828 | 10829 | 10831 | 11317 => tags(e.bytes),
        _ => return io::set_unmapped_hex(record, e),
    };
    match found {
        Ok(found) => found
            .into_iter()
            .for_each(|(k, v)| record.attributes.set(k, v)),
        Err(_) => io::set_unmapped_hex(record, e),
    }
}

fn key(prefix: &str, index: usize, field: &str) -> Cow<'static, str> {
    Cow::Owned(format!("{prefix}{index}{field}"))
}

/// iBeacon and Eddystone frames (IO 385).
fn beacons(bytes: &[u8]) -> Result<Found, DecodeError> {
    let mut r = Reader::new(bytes);
    r.u8("beacon data part")?;
    let mut found = Found::new();
    let mut index = 1;
    while !r.is_empty() {
        let flags = r.u8("beacon flags")?;
        let mut put = |field: &str, v: Value| found.push((key("beacon", index, field), v));
        if flags >> 4 > 0 {
            put("Uuid", text::hex(r.take(16, "beacon uuid")?).into());
            put("Major", u32::from(r.u16("beacon major")?).into());
            put("Minor", u32::from(r.u16("beacon minor")?).into());
        } else {
            put(
                "Namespace",
                text::hex(r.take(10, "beacon namespace")?).into(),
            );
            put("Instance", text::hex(r.take(6, "beacon instance")?).into());
        }
        put("Rssi", i64::from(r.u8("beacon rssi")? as i8).into());
        if flags & 0x02 != 0 {
            put(
                "Battery",
                (f64::from(r.u16("beacon battery")?) / 100.0).into(),
            );
        }
        if flags & 0x04 != 0 {
            put("Temp", u32::from(r.u16("beacon temperature")?).into());
        }
        index += 1;
    }
    Ok(found)
}

/// Teltonika EYE sensors and other BLE tags (IO 548, 10828, 10829, 10831, 11317).
fn tags(bytes: &[u8]) -> Result<Found, DecodeError> {
    let mut r = Reader::new(bytes);
    r.u8("tag header")?;
    let mut found = Found::new();
    let mut index = 1;
    while !r.is_empty() {
        let len = r.u8("tag length")?;
        let mut tag = Reader::new(r.take(usize::from(len), "tag")?);
        while !tag.is_empty() {
            let id = tag.u8("tag parameter")?;
            let len = tag.u8("tag parameter length")?;
            let param = tag.take(usize::from(len), "tag parameter")?;
            tag_parameter(id, Reader::new(param), &mut |field, v| {
                found.push((key("tag", index, field), v));
            })?;
        }
        index += 1;
    }
    Ok(found)
}

fn tag_parameter(
    id: u8,
    mut p: Reader<'_>,
    put: &mut impl FnMut(&'static str, Value),
) -> Result<(), DecodeError> {
    match id {
        0 => put("Rssi", i64::from(p.u8("tag rssi")? as i8).into()),
        1 => put("Id", text::hex(p.rest()).into()),
        2 => {
            let flags = p.u8("tag flags")?;
            if flags & 0x40 != 0 {
                put("LowBattery", true.into());
            }
            if flags & 0x80 != 0 {
                put(
                    "Voltage",
                    (u32::from(p.u8("tag voltage")?) * 10 + 2000).into(),
                );
            }
        }
        5 => put(
            "Name",
            String::from_utf8_lossy(p.rest()).into_owned().into(),
        ),
        6 => put("Temp", i64::from(p.i16("tag temperature")?).into()),
        7 => put("Humidity", u32::from(p.u8("tag humidity")?).into()),
        8 => put("Magnet", (p.u8("tag magnet")? > 0).into()),
        9 => put("Motion", (p.u8("tag motion")? > 0).into()),
        10 => put("MotionCount", u32::from(p.u16("tag motion count")?).into()),
        11 => put("Pitch", i64::from(p.u8("tag pitch")? as i8).into()),
        12 => put("AngleRoll", i64::from(p.i16("tag roll")?).into()),
        13 => put("LowBattery", u32::from(p.u8("tag low battery")?).into()),
        14 => put("Battery", u32::from(p.u16("tag battery")?).into()),
        15 => put("Mac", text::hex(p.take(6, "tag mac")?).into()),
        _ => {}
    }
    Ok(())
}
