//! Types with a layout of their own, tried before the common location layout.

use crate::DecodeError;
use crate::model::{DeviceId, Record, RecordKind, attr};
use crate::wire::reader::Reader;
use crate::wire::text::{ascii, hex, trim};

use super::FRAME;
use super::alarm;
use super::calendar::Civil;
use super::decode::{Ctx, Done, Login, Reply, settle_kind, status_record};
use super::gps::{self, Cell, GpsLayout, set_network};
use super::types::*;
use super::variant::Variant;

/// Names of numbered attributes, so that they need no allocation.
pub(crate) const ADC: [&str; 15] = [
    "adc1", "adc2", "adc3", "adc4", "adc5", "adc6", "adc7", "adc8", "adc9", "adc10", "adc11",
    "adc12", "adc13", "adc14", "adc15",
];
const BATTERY_CELL: [&str; 14] = [
    "batteryCell1",
    "batteryCell2",
    "batteryCell3",
    "batteryCell4",
    "batteryCell5",
    "batteryCell6",
    "batteryCell7",
    "batteryCell8",
    "batteryCell9",
    "batteryCell10",
    "batteryCell11",
    "batteryCell12",
    "batteryCell13",
    "batteryCell14",
];

/// Most analog values (volts, humidity, accuracy) come in hundredths.
pub(crate) fn hundredths(raw: impl Into<f64>) -> f64 {
    raw.into() / 100.0
}

/// The IMEI is 15 BCD digits after a leading zero nibble.
pub(crate) fn login(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let mut r = ctx.reader();
    let imei = hex_digits::<16>(r.take(8, FRAME)?);
    r.u16(FRAME)?; // device type
    let mut offset_s = 0;
    if ctx.data_length() > 10 {
        offset_s = time_zone(r.u16(FRAME)?);
    }
    let digits = std::str::from_utf8(&imei).unwrap_or_default();
    let device = DeviceId::new(digits.get(1..).unwrap_or_default());
    let login = Login { device, offset_s };
    Ok(Done {
        record: None,
        reply: Reply::Ack,
        login: Some(login),
    })
}

/// The time-zone word of a login: `HHMM` in bits 4..16, west in bit 3.
fn time_zone(bits: u16) -> i64 {
    let hhmm = i64::from(bits >> 4);
    let offset = (hhmm / 100 * 60 + hhmm % 100) * 60;
    if bits & 0x08 != 0 { -offset } else { offset }
}

/// Lowercase hex digits of `bytes` in a fixed buffer (no allocation).
fn hex_digits<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let digit = |nibble: u8| char::from_digit(nibble.into(), 16).map_or(b'0', |c| c as u8);
    let mut out = [b'0'; N];
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&[digit(b >> 4), digit(b & 0x0f)]);
    }
    out
}

pub(crate) fn heartbeat(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let mut r = ctx.reader();
    let mut rec = status_record(RecordKind::Status, 0);
    let status = r.u8(FRAME)?;
    let attrs = &mut rec.attributes;
    attrs.set("armed", status & 0x01 != 0);
    attrs.set(attr::IGNITION, status & 0x02 != 0);
    attrs.set(attr::CHARGE, status & 0x04 != 0);
    // Optional fields, present when more than serial, CRC and stop bits remain.
    if r.remaining() >= 2 + 6 {
        attrs.set(attr::BATTERY, hundredths(r.u16(FRAME)?));
    }
    if r.remaining() > 6 {
        attrs.set(attr::RSSI, i64::from(r.u8(FRAME)?));
    }
    Ok(Done::record(rec, Reply::Ack))
}

pub(crate) fn x1_gps(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let mut r = ctx.reader();
    let mut rec = Record::default();
    r.u32(FRAME)?; // data and alarm
    gps::decode(&mut r, GpsLayout::STANDARD, ctx.offset_s, &mut rec)?;
    r.u16(FRAME)?; // terminal info
    let attrs = &mut rec.attributes;
    attrs.set(attr::ODOMETER, r.u32(FRAME)?);
    r.skip(2 + 1 + 2 + 4, FRAME)?; // cell
    let driver = r.u32(FRAME)?;
    if driver > 0 {
        attrs.set(attr::DRIVER_ID, driver.to_string());
    }
    attrs.set(attr::BATTERY, hundredths(r.u16(FRAME)?));
    attrs.set(attr::POWER, hundredths(r.u16(FRAME)?));
    let ports = r.u32(FRAME)?;
    attrs.set("input", i64::from(r.u8(FRAME)?));
    attrs.set("output", i64::from(r.u8(FRAME)?));
    let adc_count = (ports >> 20) & 0x0f;
    for name in ADC.iter().take(adc_count as usize) {
        attrs.set(*name, hundredths(r.u16(FRAME)?));
    }
    settle_kind(&mut rec, false, RecordKind::Status);
    Ok(Done::record(rec, Reply::None))
}

/// Wi-Fi and cell report whose length field holds the access point count.
pub(crate) fn wifi(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let kind = ctx.kind();
    let mut r = ctx.reader();
    let time = r.take(6, FRAME)?;
    let mut bcd = time
        .iter()
        .map(|b| i64::from(b >> 4) * 10 + i64::from(b & 0x0f));
    let mut field = || bcd.next().unwrap_or_default();
    let civil = Civil {
        year: field(),
        month: field(),
        day: field(),
        hour: field(),
        minute: field(),
        second: field(),
    };
    let mut rec = status_record(RecordKind::Network, civil.to_epoch_ms(0));
    let count = if kind == WIFI_4 {
        r.u8(FRAME)?
    } else {
        ctx.frame.get(2).copied().unwrap_or(0)
    };
    let mut points = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        if kind == WIFI_4 {
            r.skip(2, FRAME)?;
        }
        let mac = mac(&mut r)?;
        let rssi = if kind == WIFI_4 {
            None
        } else {
            Some(i32::from(r.u8(FRAME)?))
        };
        points.push((mac, rssi));
    }
    if kind == WIFI_4 {
        set_network(&mut rec, &[], &points);
        return Ok(Done::record(rec, Reply::None));
    }
    let cells = wifi_cells(&mut r)?;
    set_network(&mut rec, &cells, &points);
    let mut echo = [0u8; 6];
    echo.copy_from_slice(time);
    Ok(Done::record(rec, Reply::WifiTime(echo)))
}

fn wifi_cells(r: &mut Reader<'_>) -> Result<Vec<Cell>, DecodeError> {
    let count = r.u8(FRAME)?;
    let mcc = r.u16(FRAME)?;
    let mnc = r.u8(FRAME)?.into();
    let mut cells = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let (lac, cid, rssi) = (r.u16(FRAME)?, r.u16(FRAME)?, r.u8(FRAME)?);
        cells.push(Cell {
            mcc,
            mnc,
            lac: lac.into(),
            cid: cid.into(),
            rssi: Some(rssi.into()),
        });
    }
    Ok(cells)
}

fn mac(r: &mut Reader<'_>) -> Result<[u8; 6], DecodeError> {
    let mut mac = [0u8; 6];
    mac.copy_from_slice(r.take(6, FRAME)?);
    Ok(mac)
}

/// External power on an 0x7878 information frame.
pub(crate) fn short_info(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let mut r = ctx.reader();
    let mut rec = status_record(RecordKind::Status, 0);
    rec.attributes.set(attr::POWER, hundredths(r.i16(FRAME)?));
    Ok(Done::record(rec, Reply::None))
}

/// The opening both SR411 and RFID locations share: a standard fix, one
/// cell, then the ACC byte.
fn fix_cell_ignition<'a>(ctx: &'a Ctx<'_>) -> Result<(Reader<'a>, Record), DecodeError> {
    let mut r = ctx.reader();
    let mut rec = Record::default();
    gps::decode(&mut r, GpsLayout::STANDARD, ctx.offset_s, &mut rec)?;
    gps::lbs(&mut r, ctx.kind(), ctx.variant, false)?;
    rec.attributes.set(attr::IGNITION, r.u8(FRAME)? > 0);
    Ok((r, rec))
}

pub(crate) fn sr411_mini(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let (mut r, mut rec) = fix_cell_ignition(ctx)?;
    let attrs = &mut rec.attributes;
    attrs.set(attr::POWER, hundredths(r.u16(FRAME)?));
    attrs.set(attr::BATTERY, hundredths(r.u16(FRAME)?));
    settle_kind(&mut rec, false, RecordKind::Status);
    Ok(Done::record(rec, Reply::None))
}

/// Several cell towers (and for some types Wi-Fi access points) in place of a fix.
pub(crate) fn cell_list(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let (kind, v) = (ctx.kind(), ctx.variant);
    let mut r = ctx.reader();
    let mut rec = status_record(RecordKind::Network, gps::date(&mut r, ctx.offset_s)?);
    let ta_first = v == Variant::WanwayS20 || v == Variant::Sl4x;
    if ta_first {
        r.u8(FRAME)?; // timing advance
    }
    let cells = cell_list_towers(ctx, &mut r)?;
    if !ta_first {
        r.u8(FRAME)?; // timing advance
    }
    let mut points = Vec::new();
    if !matches!(
        kind,
        LBS_MULTIPLE_1 | LBS_MULTIPLE_2 | LBS_MULTIPLE_3 | LBS_2 | LBS_3
    ) {
        let count = r.u8(FRAME)?;
        points.reserve(usize::from(count));
        for _ in 0..count {
            points.push((mac(&mut r)?, Some(i32::from(r.u8(FRAME)?))));
        }
    }
    set_network(&mut rec, &cells, &points);
    if kind == WIFI_ALARM {
        let (code, language) = (r.u8(FRAME)?, r.u8(FRAME)?);
        let code = u32::from(language >> 4) << 8 | u32::from(code);
        alarm::add(&mut rec.attributes, alarm::from_code(code, ctx.model, v));
    }
    settle_kind(&mut rec, kind == WIFI_ALARM, RecordKind::Network);
    Ok(Done::record(rec, Reply::Ack))
}

fn cell_list_towers(ctx: &Ctx<'_>, r: &mut Reader<'_>) -> Result<Vec<Cell>, DecodeError> {
    let (kind, v) = (ctx.kind(), ctx.variant);
    let mcc = r.u16(FRAME)?;
    let mnc = if mcc & 0x8000 != 0 || v == Variant::Sl4x {
        r.u16(FRAME)?
    } else {
        r.u8(FRAME)?.into()
    };
    let cell_4g = kind == WIFI_ALARM && r.u8(FRAME)? > 0;
    let count = match (v, kind) {
        (Variant::WanwayS20, _) | (_, WIFI_ALARM) => r.u8(FRAME)?,
        (_, WIFI_5) => 6,
        _ => 7,
    };
    let mut cells = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        // Traccar keeps cell ids as Java ints: wider ones wrap.
        let (lac, cid) = if matches!(kind, LBS_2 | WIFI_3) || cell_4g {
            (i64::from(r.i32(FRAME)?), i64::from(r.i64(FRAME)? as i32))
        } else if matches!(kind, WIFI_5 | LBS_3) {
            (i64::from(r.u16(FRAME)?), i64::from(r.u32(FRAME)? as i32))
        } else {
            (i64::from(r.u16(FRAME)?), i64::from(r.u24(FRAME)?))
        };
        let rssi = -i32::from(r.u8(FRAME)?);
        if lac > 0 {
            cells.push(Cell {
                mcc: mcc & 0x7fff,
                mnc,
                lac,
                cid,
                rssi: Some(rssi),
            });
        }
    }
    Ok(cells)
}

pub(crate) fn bluetooth_clock(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let mut r = ctx.reader();
    let mut rec = status_record(RecordKind::Event, gps::date(&mut r, ctx.offset_s)?);
    let attrs = &mut rec.attributes;
    attrs.set(attr::RSSI, i64::from(r.i8(FRAME)?));
    attrs.set("tagMac", hex(r.take(6, FRAME)?));
    attrs.set("tagUuid", hex(r.take(16, FRAME)?));
    attrs.set("tagMajor", i64::from(r.u16(FRAME)?));
    attrs.set("tagMinor", i64::from(r.u16(FRAME)?));
    attrs.set("tagBattery", hundredths(r.u16(FRAME)?));
    attrs.set("clock", i64::from((r.u8(FRAME)? >> 2) & 0x0f));
    Ok(Done::record(rec, Reply::Ack))
}

/// A command's text answer, or the SIM's ICCID.
pub(crate) fn text(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let mut r = ctx.reader();
    let mut rec = status_record(RecordKind::CommandResult, 0);
    let length = usize::from(r.u8(FRAME)?);
    if length > 0 {
        r.u32(FRAME)?; // server flag
        let text_len = length.checked_sub(4).ok_or(DecodeError::Invalid {
            what: "GT06 text length",
        })?;
        let data = ascii(r.take(text_len, FRAME)?);
        match data.strip_prefix("<ICCID:") {
            Some(rest) => rec
                .attributes
                .set(attr::ICCID, rest.chars().take(20).collect::<String>()),
            None => rec.attributes.set(attr::RESULT, data),
        }
    }
    Ok(Done::record(rec, Reply::Ack))
}

/// Battery management system report (WD-209 scooters).
pub(crate) fn bms(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let mut r = ctx.reader();
    r.skip(8, FRAME)?; // serial number
    let mut rec = status_record(RecordKind::Status, i64::from(r.u32(FRAME)?) * 1000);
    let attrs = &mut rec.attributes;
    attrs.set("relativeCapacity", i64::from(r.u8(FRAME)?));
    attrs.set("remainingCapacity", i64::from(r.u16(FRAME)?));
    attrs.set("absoluteCapacity", i64::from(r.u8(FRAME)?));
    attrs.set("fullCapacity", i64::from(r.u16(FRAME)?));
    attrs.set("batteryHealth", i64::from(r.u8(FRAME)?));
    attrs.set("batteryTemp", f64::from(r.u16(FRAME)?) / 10.0 - 273.1);
    attrs.set("current", i64::from(r.u16(FRAME)?));
    attrs.set(attr::BATTERY, f64::from(r.u16(FRAME)?) / 1000.0);
    attrs.set("cycleIndex", i64::from(r.u16(FRAME)?));
    for name in BATTERY_CELL {
        attrs.set(name, f64::from(r.u16(FRAME)?) / 1000.0);
    }
    attrs.set("currentChargeInterval", i64::from(r.u16(FRAME)?));
    attrs.set("maxChargeInterval", i64::from(r.u16(FRAME)?));
    attrs.set("barcode", trim(&ascii(r.take(16, FRAME)?)).to_owned());
    attrs.set("batteryVersion", i64::from(r.u16(FRAME)?));
    attrs.set("manufacturer", trim(&ascii(r.take(16, FRAME)?)).to_owned());
    attrs.set("batteryStatus", r.u32(FRAME)?);
    attrs.set("controllerStatus", r.u32(FRAME)?);
    attrs.set("controllerFault", r.u32(FRAME)?);
    Ok(Done::record(rec, Reply::Ack))
}

/// The 22-byte status of personal trackers, with a temperature.
pub(crate) fn long_status(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let mut r = ctx.reader();
    let mut rec = status_record(RecordKind::Status, 0);
    r.skip(1 + 2 + 1 + 1, FRAME)?; // content, satellites, alarm, language
    rec.attributes
        .set(attr::BATTERY_LEVEL, i64::from(r.u8(FRAME)?));
    r.skip(1 + 2 + 1 + 2 + 2, FRAME)?; // mode, voltage, reserved, working times and time
    let value = r.u16(FRAME)?;
    let magnitude = f64::from(value & 0x7fff) / 10.0;
    rec.attributes.set(
        "temp1",
        if value & 0x8000 != 0 {
            magnitude
        } else {
            -magnitude
        },
    );
    Ok(Done::record(rec, Reply::Ack))
}

pub(crate) fn ibutton(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let mut r = ctx.reader();
    r.skip(8, FRAME)?; // imei
    let mut rec = Record::default();
    gps::decode(&mut r, GpsLayout::STANDARD, ctx.offset_s, &mut rec)?;
    gps::lbs(&mut r, ctx.kind(), ctx.variant, false)?;
    let driver = u64::from(r.u32(FRAME)?) << 16 | u64::from(r.u16(FRAME)?);
    rec.attributes.set(attr::DRIVER_ID, driver.to_string());
    settle_kind(&mut rec, false, RecordKind::Status);
    Ok(Done::record(rec, Reply::Ack))
}

/// An RFID card number, unless the device sends zeros for "no card".
pub(crate) fn rfid(r: &mut Reader<'_>, rec: &mut Record) -> Result<(), DecodeError> {
    let card = r.take(8, FRAME)?;
    if card.iter().any(|&b| b != 0) {
        rec.attributes.set(attr::DRIVER_ID, hex(card));
    }
    Ok(())
}

pub(crate) fn location_rfid(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let (mut r, mut rec) = fix_cell_ignition(ctx)?;
    let attrs = &mut rec.attributes;
    attrs.set("uploadMode", i64::from(r.u8(FRAME)?));
    rec.archived = r.u8(FRAME)? > 0;
    attrs.set(attr::ODOMETER, r.u32(FRAME)?);
    attrs.set(attr::POWER, hundredths(r.u16(FRAME)?));
    attrs.set(attr::BATTERY, f64::from(r.u8(FRAME)?) / 10.0);
    attrs.set(attr::HOURS, i64::from(r.u24(FRAME)?) * 60_000);
    rfid(&mut r, &mut rec)?;
    settle_kind(&mut rec, false, RecordKind::Status);
    Ok(Done::record(rec, Reply::Ack))
}

/// JC100/JC400 dashcam alarms, with the names of the recorded clips.
pub(crate) fn alarm(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let mut r = ctx.reader();
    let mut rec = Record::default();
    let jc400 = ctx.variant == Variant::Jc400;
    let with_gps = ctx.data_length() > 7;
    if with_gps {
        if jc400 {
            r.skip(3, FRAME)?; // marker, version
        }
        let layout = GpsLayout {
            has_length: false,
            has_satellites: jc400,
            has_speed: jc400,
            long_speed: jc400,
            swap_flags: jc400,
        };
        gps::decode(&mut r, layout, ctx.offset_s, &mut rec)?;
    } else {
        rec.time_ms = gps::date(&mut r, ctx.offset_s)?;
    }
    if jc400 {
        rec.attributes
            .set(attr::POWER, f64::from(r.u16(FRAME)?) / 10.0);
    }
    let event = r.u8(FRAME)?;
    rec.attributes.set(attr::EVENT, i64::from(event));
    rec.attributes.set("eventData", i64::from(r.u16(FRAME)?));
    alarm::add(&mut rec.attributes, alarm::from_event(event, with_gps));
    let files = r.take_before_tail(6, FRAME).unwrap_or_default();
    if !files.is_empty() {
        rec.attributes.set("eventFiles", ascii(files));
    }
    settle_kind(&mut rec, true, RecordKind::Event);
    Ok(Done::record(rec, Reply::Ack))
}
