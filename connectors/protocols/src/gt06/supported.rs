//! The common layout most location, status and alarm types share:
//! `[GPS] [cell] [status] [type-specific tail]`, each part present or not
//! depending on the type, the frame's variant and the device model.

use crate::DecodeError;
use crate::model::{Record, RecordKind, attr};
use crate::wire::reader::Reader;
use crate::wire::text::{ascii, hex, trim};

use super::FRAME;
use super::alarm;
use super::basic::{ADC, hundredths, rfid};
use super::decode::{Ctx, Done, Reply, settle_kind};
use super::gps::{self, GpsLayout};
use super::types::*;
use super::variant::{Model, Variant};

pub(crate) fn is_supported(ctx: &Ctx<'_>) -> bool {
    let (kind, v) = (ctx.kind(), ctx.variant);
    has_gps(kind, v) || has_lbs(kind, v) || has_status(kind, v, ctx.model)
}

fn has_gps(kind: u8, v: Variant) -> bool {
    match kind {
        GPS | GPS_LBS_1 | GPS_LBS_2 | GPS_LBS_DRIVER | GPS_LBS_3 | GPS_LBS_4 | GPS_LBS_5
        | GPS_LBS_6 | GPS_LBS_STATUS_1 | GPS_LBS_STATUS_2 | GPS_LBS_STATUS_3 | GPS_LBS_STATUS_4
        | GPS_LBS_STATUS_5 | GPS_PHONE | GPS_LBS_EXTEND | GPS_LBS_7 | GPS_LBS_RFID
        | FENCE_MULTI | ALARM_MODULE => true,
        FENCE_SINGLE => v != Variant::Seeworld,
        _ => false,
    }
}

fn has_lbs(kind: u8, v: Variant) -> bool {
    match kind {
        LBS_STATUS | GPS_LBS_1 | GPS_LBS_2 | GPS_LBS_DRIVER | GPS_LBS_3 | GPS_LBS_4 | GPS_LBS_5
        | GPS_LBS_6 | GPS_LBS_STATUS_1 | GPS_LBS_STATUS_2 | GPS_LBS_STATUS_3 | GPS_LBS_STATUS_4
        | GPS_LBS_STATUS_5 | GPS_LBS_7 | GPS_LBS_RFID | FENCE_MULTI | ALARM_MODULE | LBS_ALARM
        | LBS_ADDRESS => true,
        FENCE_SINGLE => v != Variant::Seeworld,
        _ => false,
    }
}

fn has_status(kind: u8, v: Variant, model: Model) -> bool {
    match kind {
        STATUS | STATUS_2 | LBS_STATUS | GPS_LBS_STATUS_1 | GPS_LBS_STATUS_2 | GPS_LBS_STATUS_3
        | GPS_LBS_STATUS_4 | GPS_LBS_STATUS_5 | FENCE_MULTI | ALARM_MODULE | LBS_ALARM => true,
        GPS_LBS_2 | GPS_LBS_DRIVER => model.nt,
        STATUS_3 => v == Variant::Seeworld,
        _ => false,
    }
}

/// Types whose purpose is to report an alarm.
fn is_alarm_frame(kind: u8, v: Variant) -> bool {
    match kind {
        GPS_LBS_STATUS_1 | GPS_LBS_STATUS_2 | GPS_LBS_STATUS_3 | LBS_STATUS | FENCE_MULTI
        | LBS_ALARM | ALARM_MODULE => true,
        FENCE_SINGLE => v != Variant::Seeworld,
        _ => false,
    }
}

/// NT-family locations carry IMEI, device time, power, odometer and hours.
fn nt_location(ctx: &Ctx<'_>) -> bool {
    ctx.model.nt && matches!(ctx.kind(), GPS_LBS_2 | GPS_LBS_DRIVER)
}

pub(crate) fn decode(ctx: &Ctx<'_>) -> Result<Done, DecodeError> {
    let (kind, v) = (ctx.kind(), ctx.variant);
    if kind == LBS_STATUS && v == Variant::Space10x {
        // Multi-cell reports of this device are not decoded (nor acknowledged).
        return Ok(Done::default());
    }
    let mut r = ctx.reader();
    let mut rec = Record::default();
    if kind == GPS_LBS_1 && ctx.model.qh302r {
        r.skip(8, FRAME)?; // imei
    }
    if nt_location(ctx) {
        r.skip(1 + 8 + 6, FRAME)?; // location source, imei, device time
    }
    if has_gps(kind, v) {
        gps::decode(&mut r, GpsLayout::STANDARD, ctx.offset_s, &mut rec)?;
    }
    let mut cell = None;
    if has_lbs(kind, v) && r.remaining() > 6 {
        cell = gps::lbs(&mut r, kind, v, lbs_has_length(ctx))?;
    }
    if has_status(kind, v, ctx.model) {
        status(ctx, &mut r, &mut rec)?;
    }
    middle(ctx, &mut r, &mut rec)?;
    gps_lbs_1_tail(ctx, &mut r, &mut rec)?;
    tail(ctx, &mut r, &mut rec)?;
    settle_kind(&mut rec, is_alarm_frame(kind, v), RecordKind::Status);
    if let (None, Some(cell)) = (&rec.fix, cell) {
        gps::set_network(&mut rec, &[cell], &[]);
        if rec.kind == RecordKind::Status {
            rec.kind = RecordKind::Network;
        }
    }
    Ok(Done::record(rec, Reply::Ack))
}

fn lbs_has_length(ctx: &Ctx<'_>) -> bool {
    let (kind, v) = (ctx.kind(), ctx.variant);
    has_status(kind, v, ctx.model)
        && !matches!(
            kind,
            LBS_STATUS | LBS_ALARM | ALARM_MODULE | GPS_LBS_STATUS_5
        )
        && !(kind == GPS_LBS_STATUS_1 && v == Variant::Vxt01)
}

fn status(ctx: &Ctx<'_>, r: &mut Reader<'_>, rec: &mut Record) -> Result<(), DecodeError> {
    if ctx.kind() == GPS_LBS_STATUS_5 {
        r.u8(FRAME)?; // network indicator
    }
    alarm::status_byte(r, ctx.variant, &mut rec.attributes)?;
    match ctx.variant {
        Variant::Obd6 => obd6_status(ctx, r, rec),
        Variant::Seeworld if ctx.header.length == 0x18 => seeworld_status(r, rec),
        _ => common_status(ctx, r, rec),
    }
}

fn obd6_status(ctx: &Ctx<'_>, r: &mut Reader<'_>, rec: &mut Record) -> Result<(), DecodeError> {
    let attrs = &mut rec.attributes;
    let signal = r.u16(FRAME)?;
    attrs.set(
        "sat",
        i64::from(((signal >> 10) & 0x1f) + ((signal >> 5) & 0x1f)),
    );
    attrs.set(attr::RSSI, i64::from(signal & 0x1f));
    alarm::add(
        attrs,
        alarm::from_code(r.u8(FRAME)?.into(), ctx.model, ctx.variant),
    );
    r.u8(FRAME)?; // language
    attrs.set(attr::BATTERY_LEVEL, i64::from(r.u8(FRAME)?));
    let mode = r.u8(FRAME)?;
    attrs.set(attr::POWER, hundredths(r.u16(FRAME)?));
    r.skip(1 + 2, FRAME)?; // reserved, working time
    if mode == 4 {
        attrs.set("temp1", f64::from(r.i16(FRAME)?) / 10.0);
    }
    Ok(())
}

fn seeworld_status(r: &mut Reader<'_>, rec: &mut Record) -> Result<(), DecodeError> {
    let attrs = &mut rec.attributes;
    r.skip(2 + 1, FRAME)?; // extension bits, voltage level
    attrs.set(attr::RSSI, i64::from(r.u8(FRAME)?));
    attrs.set(attr::POWER, f64::from(r.u8(FRAME)?));
    r.skip(3, FRAME)?; // language, sound and light switches
    attrs.set("steps", r.u32(FRAME)?);
    attrs.set(attr::BATTERY_LEVEL, i64::from(r.u8(FRAME)?));
    attrs.set(attr::CHARGE, r.u8(FRAME)? == 1);
    attrs.set(attr::MOTION, r.u8(FRAME)? == 1);
    Ok(())
}

fn common_status(ctx: &Ctx<'_>, r: &mut Reader<'_>, rec: &mut Record) -> Result<(), DecodeError> {
    let (kind, model) = (ctx.kind(), ctx.model);
    let attrs = &mut rec.attributes;
    if kind == GPS_LBS_STATUS_5 || nt_location(ctx) {
        attrs.set(attr::POWER, hundredths(r.u16(FRAME)?));
    }
    if kind == STATUS && model.r11 {
        attrs.set(attr::POWER, hundredths(r.u16(FRAME)?));
    } else {
        let battery = r.u8(FRAME)?;
        if nt_location(ctx) {
            attrs.set(attr::BATTERY, f64::from(battery) / 10.0);
        } else if battery <= 6 {
            // A voltage level 0..6 rather than a percentage.
            attrs.set(attr::BATTERY_LEVEL, i64::from(battery) * 100 / 6);
        } else if battery <= 100 {
            attrs.set(attr::BATTERY_LEVEL, i64::from(battery));
        }
    }
    attrs.set(attr::RSSI, i64::from(r.u8(FRAME)?));
    if kind == STATUS && model.lw {
        attrs.set(attr::POWER, f64::from(r.u16(FRAME)? & 0x0fff) / 10.0);
        return Ok(());
    }
    let mut extension = u32::from(r.u8(FRAME)?);
    if matches!(kind, GPS_LBS_STATUS_3 | FENCE_MULTI | ALARM_MODULE) {
        // The language byte's high nibble extends the alarm code.
        extension += u32::from(r.peek_u8(FRAME)? >> 4) << 8;
    }
    if kind == STATUS && model.seeworld {
        attrs.set(attr::POWER, f64::from(extension));
    } else if ctx.variant != Variant::Vxt01 {
        alarm::add(attrs, alarm::from_code(extension, model, ctx.variant));
        if ctx.variant == Variant::Trx16i {
            attrs.set(attr::EVENT, i64::from(extension));
        }
    }
    Ok(())
}

/// Language byte, RFID, status modules and the LW4G tail.
fn middle(ctx: &Ctx<'_>, r: &mut Reader<'_>, rec: &mut Record) -> Result<(), DecodeError> {
    let kind = ctx.kind();
    if matches!(
        kind,
        STATUS_2 | GPS_LBS_STATUS_5 | GPS_LBS_STATUS_3 | FENCE_MULTI | ALARM_MODULE
    ) || nt_location(ctx)
    {
        r.u8(FRAME)?; // language
    }
    if kind == GPS_LBS_STATUS_1 && ctx.variant == Variant::Trx16i {
        r.u8(FRAME)?; // language
        rfid(r, rec)?;
    }
    if matches!(kind, STATUS_2 | ALARM_MODULE) {
        status_modules(r, rec)?;
    }
    if kind == GPS_LBS_STATUS_5 {
        let attrs = &mut rec.attributes;
        attrs.set(attr::ODOMETER, r.u32(FRAME)?);
        attrs.set(attr::HOURS, i64::from(r.u32(FRAME)?) * 1000);
        r.skip(8, FRAME)?; // terminal id
        attrs.set("input", i64::from(r.u16(FRAME)?));
    }
    Ok(())
}

fn status_modules(r: &mut Reader<'_>, rec: &mut Record) -> Result<(), DecodeError> {
    let attrs = &mut rec.attributes;
    while r.remaining() > 6 {
        let module = r.u16(FRAME)?;
        let length = r.u8(FRAME)?;
        match module {
            0x0018 => attrs.set(attr::BATTERY, hundredths(r.u16(FRAME)?)),
            0x0032 => attrs.set("startupStatus", i64::from(r.u8(FRAME)?)),
            0x006a => attrs.set(attr::BATTERY_LEVEL, i64::from(r.u8(FRAME)?)),
            _ => r.skip(length.into(), FRAME)?,
        }
    }
    Ok(())
}

/// Vendor extensions of type 0x12, told apart by frame length.
fn gps_lbs_1_tail(ctx: &Ctx<'_>, r: &mut Reader<'_>, rec: &mut Record) -> Result<(), DecodeError> {
    if ctx.kind() != GPS_LBS_1 {
        return Ok(());
    }
    let attrs = &mut rec.attributes;
    match ctx.variant {
        Variant::Gt06eCard => {
            attrs.set(attr::ODOMETER, r.u32(FRAME)?);
            let length = r.u8(FRAME)?;
            let card = ascii(r.take(length.into(), FRAME)?);
            r.skip(2, FRAME)?; // alarm, swiped
            attrs.set("card", trim(&card).to_owned());
        }
        Variant::Benway => benway(r.u16(FRAME)?, rec),
        Variant::Vxt01 => {
            alarm::status_byte(r, ctx.variant, attrs)?;
            attrs.set(attr::POWER, hundredths(r.u16(FRAME)?));
            attrs.set(attr::RSSI, i64::from(r.u8(FRAME)?));
            r.u8(FRAME)?; // alarm extension
        }
        Variant::S5 => s5(ctx, r, rec)?,
        Variant::Wetrust => {
            attrs.set(attr::ODOMETER, r.u32(FRAME)?);
            let length = r.u8(FRAME)?;
            attrs.set("card", ascii(r.take(length.into(), FRAME)?));
            alarm::add(attrs, (r.u8(FRAME)? > 0).then_some(alarm::GENERAL));
            attrs.set("cardStatus", i64::from(r.u8(FRAME)?));
            attrs.set("drivingTime", i64::from(r.u16(FRAME)?));
        }
        _ => {}
    }
    Ok(())
}

/// Benway's word: ACC, input 2, and either a temperature or an ADC value.
fn benway(mask: u16, rec: &mut Record) {
    let attrs = &mut rec.attributes;
    attrs.set(attr::IGNITION, mask & 0x8000 != 0);
    attrs.set("in2", mask & 0x4000 != 0);
    if mask & 0x1000 != 0 {
        let value = i64::from(mask & 0x01ff);
        attrs.set("temp1", if mask & 0x0200 != 0 { -value } else { value });
    } else {
        let value = mask & 0x03ff;
        if mask & 0x2000 != 0 {
            attrs.set(ADC[0], i64::from(value));
        } else {
            attrs.set(ADC[0], f64::from(value) / 10.0);
        }
    }
}

fn s5(ctx: &Ctx<'_>, r: &mut Reader<'_>, rec: &mut Record) -> Result<(), DecodeError> {
    let attrs = &mut rec.attributes;
    alarm::status_byte(r, ctx.variant, attrs)?;
    attrs.set(attr::POWER, hundredths(r.u16(FRAME)?));
    attrs.set(attr::RSSI, i64::from(r.u8(FRAME)?));
    alarm::add(
        attrs,
        alarm::from_code(r.u8(FRAME)?.into(), ctx.model, ctx.variant),
    );
    attrs.set("oil", i64::from(r.u16(FRAME)?));
    let raw = r.u8(FRAME)?;
    let temperature = if raw & 0x80 != 0 {
        -i64::from(raw & 0x7f)
    } else {
        i64::from(raw)
    };
    attrs.set("temp1", temperature);
    attrs.set(attr::ODOMETER, i64::from(r.u32(FRAME)?) * 10);
    Ok(())
}

/// Everything after the status: ACC/upload reason/re-upload bytes, modules,
/// odometers and driver ids, depending on type, variant and model.
fn tail(ctx: &Ctx<'_>, r: &mut Reader<'_>, rec: &mut Record) -> Result<(), DecodeError> {
    let (kind, v) = (ctx.kind(), ctx.variant);
    if kind == GPS_LBS_2 && v == Variant::Seeworld {
        seeworld_location(r, rec)?;
    }
    if kind == GPS_LBS_STATUS_4 && v == Variant::Sl4x {
        set_altitude(rec, r.i16(FRAME)?);
    }
    if matches!(kind, GPS_LBS_2 | GPS_LBS_3 | GPS_LBS_4 | GPS_LBS_5)
        && r.remaining() >= 3 + 6
        && !ctx.model.nt
    {
        realtime_tail(ctx, r, rec)?;
    }
    if kind == GPS_LBS_3 {
        gps_lbs_3_module(r, rec)?;
    }
    if kind == GPS_LBS_RFID {
        rec.attributes.set(attr::DRIVER_ID, hex(r.take(8, FRAME)?));
        r.u8(FRAME)?; // validity
    }
    nt_tail(ctx, r, rec)?;
    generic_tail(r, rec)?;
    if matches!(kind, GPS_LBS_STATUS_3 | FENCE_MULTI) {
        rec.attributes.set("geofence", i64::from(r.u8(FRAME)?));
    }
    Ok(())
}

fn set_altitude(rec: &mut Record, altitude: i16) {
    if let Some(fix) = rec.fix.as_mut() {
        fix.altitude_m = Some(altitude.into());
    }
}

fn seeworld_location(r: &mut Reader<'_>, rec: &mut Record) -> Result<(), DecodeError> {
    let attrs = &mut rec.attributes;
    attrs.set(attr::IGNITION, r.u8(FRAME)? > 0);
    r.skip(2, FRAME)?; // reporting mode, supplementary transmission
    attrs.set(attr::ODOMETER, r.u32(FRAME)?);
    r.u32(FRAME)?; // travel time
    let raw = r.u16(FRAME)?;
    let centidegrees = if raw & 0x8000 != 0 {
        -i64::from(raw & 0x7fff)
    } else {
        i64::from(raw)
    };
    attrs.set("temp1", centidegrees as f64 / 100.0);
    attrs.set("humidity", hundredths(r.u16(FRAME)?));
    Ok(())
}

/// ACC, upload reason, and whether the point is re-sent from memory.
fn realtime_tail(ctx: &Ctx<'_>, r: &mut Reader<'_>, rec: &mut Record) -> Result<(), DecodeError> {
    rec.attributes.set(attr::IGNITION, r.u8(FRAME)? > 0);
    rec.attributes.set(attr::EVENT, i64::from(r.u8(FRAME)?));
    rec.archived = r.u8(FRAME)? > 0;
    if ctx.variant == Variant::Sl4x {
        if r.remaining() > 2 + 6 {
            rec.attributes.set(attr::ODOMETER, r.u32(FRAME)?);
        }
        set_altitude(rec, r.i16(FRAME)?);
    }
    Ok(())
}

fn gps_lbs_3_module(r: &mut Reader<'_>, rec: &mut Record) -> Result<(), DecodeError> {
    let module = r.u16(FRAME)?;
    let length = r.u8(FRAME)?;
    match module {
        0x0027 => rec.attributes.set(attr::POWER, hundredths(r.u16(FRAME)?)),
        0x002e => rec.attributes.set(attr::ODOMETER, r.u32(FRAME)?),
        0x003b => rec.attributes.set("accuracy", hundredths(r.u16(FRAME)?)),
        _ => r.skip(length.into(), FRAME)?,
    }
    Ok(())
}

fn nt_tail(ctx: &Ctx<'_>, r: &mut Reader<'_>, rec: &mut Record) -> Result<(), DecodeError> {
    if !nt_location(ctx) {
        return Ok(());
    }
    rec.attributes.set(attr::ODOMETER, r.u24(FRAME)?);
    rec.attributes
        .set(attr::HOURS, i64::from(r.u24(FRAME)?) * 60_000);
    if ctx.kind() == GPS_LBS_DRIVER {
        let length = usize::from(r.u8(FRAME)?);
        if length > 0 {
            r.u8(FRAME)?; // identifier type
            rec.attributes
                .set(attr::DRIVER_ID, hex(r.take(length - 1, FRAME)?));
        }
    }
    Ok(())
}

/// Devices that add ACC and re-upload bytes (and maybe an odometer) to
/// other types are recognised by how many bytes are left.
fn generic_tail(r: &mut Reader<'_>, rec: &mut Record) -> Result<(), DecodeError> {
    if matches!(r.remaining(), 9 | 13) {
        rec.attributes.set(attr::IGNITION, r.u8(FRAME)? > 0);
        r.u8(FRAME)?; // upload mode
        if r.u8(FRAME)? > 0 {
            rec.archived = true;
        }
    }
    if r.remaining() == 10 {
        rec.attributes.set(attr::ODOMETER, r.u32(FRAME)?);
    }
    Ok(())
}
