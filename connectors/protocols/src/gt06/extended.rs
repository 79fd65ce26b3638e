//! Types that newer devices send, mostly in 0x7979 frames: text answers,
//! information transmissions, modular and OBD reports.

use crate::DecodeError;
use crate::model::{Fix, KMH_PER_KNOT, Record, RecordKind, attr};
use crate::wire::reader::Reader;
use crate::wire::text::{ascii, hex, printable_or_hex, trim};

use super::FRAME;
use super::alarm;
use super::basic::{ADC, hundredths};
use super::calendar::Civil;
use super::decode::{Ctx, Done, Reply, settle_kind, status_record};
use super::gps::{self, Cell, GpsLayout};
use super::text::{fuel_sensor, is_latin1_letter, java_split, text_location, utf16be};
use super::types::*;

/// A text answer, which may be a "where are you" location.
pub(crate) fn text_info(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let mut r = ctx.reader();
    r.u32(FRAME)?; // server flag
    let encoding = r.u8(FRAME)?;
    let bytes = r.take_before_tail(6, FRAME)?;
    let data = if encoding == 1 {
        ascii(bytes)
    } else {
        utf16be(bytes)
    };
    let Some(loc) = text_location(&data) else {
        let mut rec = status_record(RecordKind::CommandResult, 0);
        rec.attributes.set(attr::RESULT, data);
        return Ok(Done::record(rec, Reply::None));
    };
    let [year, month, day, hour, minute, second] = loc.time;
    let mut rec = status_record(
        RecordKind::Position,
        Civil {
            year,
            month,
            day,
            hour,
            minute,
            second,
        }
        .to_epoch_ms(0),
    );
    rec.fix = Some(Fix {
        lat: loc.lat,
        lon: loc.lon,
        // Traccar reads this speed as knots.
        speed_kmh: loc.speed * KMH_PER_KNOT,
        course_deg: loc.course,
        altitude_m: None,
        satellites: None,
        valid: true,
    });
    Ok(Done::record(rec, Reply::None))
}

/// Information transmission: one of several sub-types.
pub(crate) fn info(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let mut r = ctx.reader();
    let sub = r.u8(FRAME)?;
    let mut rec = status_record(RecordKind::Status, 0);
    match sub {
        0x00 => rec.attributes.set(ADC[0], hundredths(r.u16(FRAME)?)),
        0x04 => device_settings(&ascii(r.take_before_tail(6, FRAME)?), &mut rec),
        0x05 => door(ctx, &mut r, &mut rec)?,
        0x0a => {
            r.skip(8 + 8, FRAME)?; // imei, imsi
            let iccid = hex(r.take(10, FRAME)?);
            rec.attributes
                .set(attr::ICCID, iccid.trim_end_matches('f').to_owned());
        }
        0x0b => match ctx.header.length.checked_sub(6) {
            Some(1) => rec.attributes.set(
                "networkTechnology",
                if r.i8(FRAME)? > 0 { "4G" } else { "2G" },
            ),
            Some(2) => rec.attributes.set(attr::POWER, hundredths(r.u16(FRAME)?)),
            _ => {}
        },
        0x0d => fuel(&mut r, &mut rec)?,
        0x1b => rfid_reader(&mut r, &mut rec)?,
        0x1e => {
            rec.attributes.set("temp1", f64::from(r.i32(FRAME)?) / 10.0);
            rec.attributes
                .set("humidity", f64::from(r.i32(FRAME)?) / 10.0);
        }
        _ => {
            return Err(DecodeError::Unsupported(
                u32::from(INFO) << 8 | u32::from(sub),
            ));
        }
    }
    Ok(Done::record(rec, Reply::None))
}

/// `ALM1=C5;ALM2=CC;STA1=C0;DYD=01;…`: alarm switches and relay state, in hex.
fn device_settings(text: &str, rec: &mut Record) {
    const ALARM_STATUS: [&str; 4] = [
        "alarm1Status",
        "alarm2Status",
        "alarm3Status",
        "alarm4Status",
    ];
    for item in java_split(text, ';') {
        let mut pair = java_split(item, '=');
        let (Some(key), Some(value)) = (pair.next(), pair.next()) else {
            continue;
        };
        let name = match key {
            "ALM1" => ALARM_STATUS[0],
            "ALM2" => ALARM_STATUS[1],
            "ALM3" => ALARM_STATUS[2],
            "ALM4" => ALARM_STATUS[3],
            "STA1" => "otherStatus",
            "DYD" => "engineStatus",
            _ => continue,
        };
        if let Some(value) = java_hex_int(value) {
            rec.attributes.set(name, value);
        }
    }
}

/// `Integer.parseInt(s, 16)`: a signed 32-bit value or nothing.
fn java_hex_int(s: &str) -> Option<i64> {
    i64::from_str_radix(s, 16)
        .ok()
        .filter(|v| i32::try_from(*v).is_ok())
}

fn door(ctx: &Ctx<'_>, r: &mut Reader<'_>, rec: &mut Record) -> Result<(), DecodeError> {
    if r.remaining() >= 6 + 1 + 6 {
        rec.time_ms = gps::date(r, ctx.offset_s)?;
    }
    let flags = r.u8(FRAME)?;
    rec.attributes.set("door", flags & 0x01 != 0);
    rec.attributes.set("io1", flags & 0x04 != 0);
    Ok(())
}

fn fuel(r: &mut Reader<'_>, rec: &mut Record) -> Result<(), DecodeError> {
    if r.peek_u8(FRAME)? != b'!' {
        r.skip(6, FRAME)?; // time
    }
    let line = ascii(r.take_before_tail(6, FRAME)?);
    let (temperature, level) = fuel_sensor(&line).ok_or(DecodeError::Invalid {
        what: "GT06 fuel sensor line",
    })?;
    rec.attributes.set("temp1", temperature);
    rec.attributes.set(attr::FUEL_LEVEL, level);
    Ok(())
}

/// An RFID reader's line, as text or as a binary frame of its own.
fn rfid_reader(r: &mut Reader<'_>, rec: &mut Record) -> Result<(), DecodeError> {
    if is_latin1_letter(r.peek_u8(FRAME)?) {
        let line = ascii(r.take_before_tail(6, FRAME)?);
        rec.attributes.set("serial", trim(&line).to_owned());
    } else {
        r.skip(2, FRAME)?; // header, type
        rec.attributes.set(attr::DRIVER_ID, hex(r.take(4, FRAME)?));
        r.skip(2, FRAME)?; // checksum, footer
    }
    Ok(())
}

/// AZ735 location and alarm, with length-prefixed GPS and cell blocks.
pub(crate) fn az735(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let mut r = ctx.reader();
    let mut rec = Record::default();
    let layout = GpsLayout {
        has_length: true,
        ..GpsLayout::STANDARD
    };
    gps::decode(&mut r, layout, ctx.offset_s, &mut rec)?;
    let cell = gps::lbs(&mut r, ctx.kind(), ctx.variant, true)?;
    if cell.is_some() {
        rec.attributes.set(attr::RSSI, i64::from(r.u8(FRAME)?));
    }
    let extra_cells = r.u8(FRAME)?;
    r.skip(extra_cells.into(), FRAME)?;
    let wifi = r.u8(FRAME)?;
    r.skip(wifi.into(), FRAME)?;
    let status = r.u8(FRAME)?;
    rec.attributes.set("status", i64::from(status));
    if ctx.kind() == AZ735_ALARM {
        az735_alarm(status, &mut rec);
    }
    let reserved = r.u8(FRAME)?;
    r.skip(reserved.into(), FRAME)?;
    settle_kind(&mut rec, ctx.kind() == AZ735_ALARM, RecordKind::Status);
    attach_cell(&mut rec, cell);
    Ok(Done::record(rec, Reply::AckExtended))
}

fn az735_alarm(status: u8, rec: &mut Record) {
    let attrs = &mut rec.attributes;
    match status {
        0xa0 => attrs.set("armed", true),
        0xa1 => attrs.set("armed", false),
        0xa2 | 0xa3 => alarm::add(attrs, Some(alarm::LOW_BATTERY)),
        0xa4 => alarm::add(attrs, Some(alarm::GENERAL)),
        0xa5 => alarm::add(attrs, Some(alarm::DOOR)),
        _ => {}
    }
}

/// Without a fix, the serving cell is what locates the record.
fn attach_cell(rec: &mut Record, cell: Option<Cell>) {
    if let (None, Some(cell)) = (&rec.fix, cell) {
        gps::set_network(rec, &[cell], &[]);
        if rec.kind == RecordKind::Status {
            rec.kind = RecordKind::Network;
        }
    }
}

/// OBD values as `PID=hex` pairs (FM08ABC).
pub(crate) fn obd(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let mut r = ctx.reader();
    let mut rec = status_record(RecordKind::Status, gps::date(&mut r, ctx.offset_s)?);
    rec.attributes.set(attr::IGNITION, r.u8(FRAME)? > 0);
    let data = ascii(r.take_before_tail(18, FRAME)?);
    for item in java_split(&data, ',') {
        let mut pair = java_split(item, '=');
        let (Some(key), Some(value)) = (pair.next(), pair.next()) else {
            continue;
        };
        let Some(pid) = key.get(..2).and_then(java_hex_int) else {
            continue;
        };
        obd_value(pid, value, &mut rec);
    }
    Ok(Done::record(rec, Reply::None))
}

fn obd_value(pid: i64, value: &str, rec: &mut Record) {
    let name = match pid {
        40 => attr::ODOMETER,
        43 => attr::FUEL_LEVEL,
        45 => attr::COOLANT_TEMP,
        53 => attr::OBD_SPEED,
        54 => attr::RPM,
        71 => "fuelUsed",
        73 => attr::HOURS,
        74 => return rec.attributes.set("vin", value.to_owned()),
        _ => return,
    };
    if let Some(v) = java_hex_int(value) {
        rec.attributes.set(name, v as f64 / 100.0);
    }
}

/// Modular report: a sequence of `type u16, length u16, value` modules.
pub(crate) fn modular(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let mut r = ctx.reader();
    let mut rec = Record::default();
    let mut satellites = None;
    while r.remaining() > 6 {
        let module = r.u16(FRAME)?;
        let length = r.u16(FRAME)?;
        modular_module(module, length, &mut r, &mut rec, &mut satellites)?;
    }
    match (rec.fix.as_mut(), satellites) {
        (Some(fix), sats) => fix.satellites = sats,
        (None, Some(sats)) => rec.attributes.set("sat", i64::from(sats)),
        (None, None) => {}
    }
    let index = r.u16(FRAME)?;
    settle_kind(&mut rec, true, RecordKind::Status);
    Ok(Done::record(rec, Reply::AckIndex(index)))
}

fn modular_module(
    module: u16,
    length: u16,
    r: &mut Reader<'_>,
    rec: &mut Record,
    satellites: &mut Option<u8>,
) -> Result<(), DecodeError> {
    let attrs = &mut rec.attributes;
    match module {
        0x03 => attrs.set(attr::ICCID, hex(r.take(10, FRAME)?)),
        0x09 => *satellites = Some(r.u8(FRAME)?),
        0x0a => attrs.set(attr::SATELLITES_VISIBLE, i64::from(r.u8(FRAME)?)),
        0x11 => r.skip(2 + 2 + 2 + 3 + 1, FRAME)?, // cell tower
        0x18 => attrs.set(attr::BATTERY, hundredths(r.u16(FRAME)?)),
        0x28 => attrs.set(attr::HDOP, f64::from(r.u8(FRAME)?) / 10.0),
        0x29 => attrs.set(attr::INDEX, r.u32(FRAME)?),
        0x2a => {
            let input = r.u8(FRAME)?;
            attrs.set("door", input & 0x0f > 0);
            attrs.set("tamper", input >> 4 > 0);
        }
        0x2b => attrs.set("bootReason", i64::from(r.u8(FRAME)?)),
        0x2e => attrs.set(attr::ODOMETER, r.u32_le(FRAME)?),
        0x33 => modular_fix(r, rec, satellites)?,
        0x34 => {
            let event = r.u8(FRAME)?;
            alarm::add(attrs, alarm::from_module_event(event));
            attrs.set(attr::EVENT, i64::from(event));
            r.u32_le(FRAME)?; // time
            let content = r.u8(FRAME)?;
            r.skip(content.into(), FRAME)?;
        }
        0x7f => ble_tag(r, rec)?,
        _ => r.skip(length.into(), FRAME)?,
    }
    Ok(())
}

fn modular_fix(
    r: &mut Reader<'_>,
    rec: &mut Record,
    satellites: &mut Option<u8>,
) -> Result<(), DecodeError> {
    rec.time_ms = i64::from(r.u32(FRAME)?) * 1000;
    *satellites = Some(r.u8(FRAME)?);
    let altitude = r.i16(FRAME)?;
    let lat = f64::from(r.u32(FRAME)?) / 1_800_000.0;
    let lon = f64::from(r.u32(FRAME)?) / 1_800_000.0;
    let speed = f64::from(r.u8(FRAME)?);
    let mut fix = gps::course_status(r.u16(FRAME)?, lat, lon, speed, None);
    fix.altitude_m = Some(altitude.into());
    rec.fix = Some(fix);
    Ok(())
}

fn ble_tag(r: &mut Reader<'_>, rec: &mut Record) -> Result<(), DecodeError> {
    let attrs = &mut rec.attributes;
    attrs.set("tag1Id", hex(r.take(6, FRAME)?));
    attrs.set("tag1Battery", f64::from(r.u16(FRAME)?) / 1000.0);
    attrs.set("tag1BatteryLevel", i64::from(r.u8(FRAME)?));
    attrs.set("tag1Temp", f64::from(r.i16(FRAME)?) / 10.0);
    attrs.set("tag1Humidity", i64::from(r.i16(FRAME)?));
    attrs.set("tag1Status", i64::from(r.u8(FRAME)?));
    Ok(())
}

/// Data passed through from a device on the tracker's serial port.
pub(crate) fn serial(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let mut r = ctx.reader();
    r.u8(FRAME)?; // external device type
    let data = r.take_before_tail(6, FRAME)?;
    let mut rec = status_record(RecordKind::CommandResult, 0);
    rec.attributes.set(attr::RESULT, printable_or_hex(data));
    Ok(Done::record(rec, Reply::None))
}

/// Peripheral (0xF2) or device status (0xF1) items after a UTC time.
pub(crate) fn peripheral(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let mut r = ctx.reader();
    let mut rec = status_record(RecordKind::Status, i64::from(r.u32(FRAME)?) * 1000);
    while r.remaining() > 6 {
        let id = r.u16(FRAME)?;
        if ctx.kind() == PERIPHERAL {
            peripheral_item(id, &mut r, &mut rec)?;
        } else {
            device_status_item(id, &mut r, &mut rec)?;
        }
    }
    Ok(Done::record(rec, Reply::Ack))
}

fn peripheral_item(id: u16, r: &mut Reader<'_>, rec: &mut Record) -> Result<(), DecodeError> {
    let attrs = &mut rec.attributes;
    match id {
        0x000a => {
            let length = usize::from(r.u16(FRAME)?);
            r.u8(FRAME)?; // mac address type
            attrs.set("mac", hex(r.take(6, FRAME)?));
            let event = r.u8(FRAME)?;
            attrs.set(attr::EVENT, i64::from(event));
            let data = r.u8(FRAME)?;
            if event > 0 {
                attrs.set("eventData", i64::from(data));
            }
            attrs.set("dataType", i64::from(r.u8(FRAME)?));
            let details = length.checked_sub(10).ok_or(DecodeError::Invalid {
                what: "GT06 peripheral length",
            })?;
            attrs.set("dataDetails", hex(r.take(details, FRAME)?));
        }
        0x000c => {
            r.u8(FRAME)?; // length
            attrs.set("externalBatteryLevel", i64::from(r.u8(FRAME)?));
            if r.u8(FRAME)? > 0 {
                attrs.set("externalBatteryCharge", true);
            }
            attrs.set("externalBatteryCycles", i64::from(r.u16(FRAME)?));
            r.skip(6, FRAME)?;
        }
        _ => {
            let length = r.u8(FRAME)?;
            let length = if length == 0 { r.u8(FRAME)? } else { length };
            r.skip(length.into(), FRAME)?;
        }
    }
    Ok(())
}

fn device_status_item(id: u16, r: &mut Reader<'_>, rec: &mut Record) -> Result<(), DecodeError> {
    let attrs = &mut rec.attributes;
    let length = r.u8(FRAME)?;
    match id {
        0x0001 => {
            let motion = r.u8(FRAME)?;
            attrs.set(attr::MOTION, motion == 0x02 || motion == 0x04);
        }
        0x0002 => attrs.set("armed", r.u8(FRAME)? > 0),
        0x0004 => attrs.set(attr::IGNITION, r.u8(FRAME)? > 0),
        0x0005 => attrs.set(attr::POWER, hundredths(r.u16(FRAME)?)),
        0x0007 => attrs.set(attr::CHARGE, r.u8(FRAME)? > 0),
        0x000a => attrs.set("chargeVoltage", i64::from(r.u16(FRAME)?)),
        0x000b => attrs.set("batteryTemp", f64::from(r.u16(FRAME)?) / 10.0),
        _ => r.skip(length.into(), FRAME)?,
    }
    Ok(())
}

pub(crate) fn gps_lbs_8(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let mut r = ctx.reader();
    let mut rec = Record::default();
    gps::decode(&mut r, GpsLayout::STANDARD, ctx.offset_s, &mut rec)?;
    r.u8(FRAME)?; // upload mode
    rec.archived = r.u8(FRAME)? > 0;
    let cell = gps::lbs(&mut r, ctx.kind(), ctx.variant, false)?;
    settle_kind(&mut rec, false, RecordKind::Status);
    attach_cell(&mut rec, cell);
    Ok(Done::record(rec, Reply::None))
}
