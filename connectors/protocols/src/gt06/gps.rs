//! The GPS block and the serving-cell (LBS) block shared by most location types.

use std::fmt::Write;

use crate::DecodeError;
use crate::model::{Fix, Record, attr};
use crate::wire::reader::Reader;

use super::FRAME;
use super::calendar::Civil;
use super::types::*;
use super::variant::Variant;

/// Units of the raw coordinates: minutes × 30000.
const RAW_PER_DEGREE: f64 = 60.0 * 30_000.0;

/// Which optional fields a GPS block has; the common layout has all but
/// `length`, and JC400 alarms swap speed and course.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GpsLayout {
    pub has_length: bool,
    pub has_satellites: bool,
    pub has_speed: bool,
    pub long_speed: bool,
    pub swap_flags: bool,
}

impl GpsLayout {
    pub(crate) const STANDARD: GpsLayout = GpsLayout {
        has_length: false,
        has_satellites: true,
        has_speed: true,
        long_speed: false,
        swap_flags: false,
    };
}

/// Reads six bytes `YY MM DD hh mm ss` of device local time.
pub(crate) fn date(r: &mut Reader<'_>, offset_s: i64) -> Result<i64, DecodeError> {
    let [year, month, day, hour, minute, second] = [
        r.u8(FRAME)?,
        r.u8(FRAME)?,
        r.u8(FRAME)?,
        r.u8(FRAME)?,
        r.u8(FRAME)?,
        r.u8(FRAME)?,
    ];
    let civil = Civil {
        year: year.into(),
        month: month.into(),
        day: day.into(),
        hour: hour.into(),
        minute: minute.into(),
        second: second.into(),
    };
    Ok(civil.to_epoch_ms(offset_s))
}

/// Reads a GPS block into `record`: its time, and its fix unless the block
/// says it has none (zero length).
pub(crate) fn decode(
    r: &mut Reader<'_>,
    layout: GpsLayout,
    offset_s: i64,
    record: &mut Record,
) -> Result<bool, DecodeError> {
    if layout == GpsLayout::STANDARD {
        standard(r.array(FRAME)?, offset_s, record);
        return Ok(true);
    }
    record.time_ms = date(r, offset_s)?;
    if layout.has_length && r.u8(FRAME)? == 0 {
        return Ok(false);
    }
    let satellites = if layout.has_satellites {
        Some(r.u8(FRAME)? & 0x0f)
    } else {
        None
    };
    let lat = f64::from(r.u32(FRAME)?) / RAW_PER_DEGREE;
    let lon = f64::from(r.u32(FRAME)?) / RAW_PER_DEGREE;
    let mut flags = if layout.swap_flags { r.u16(FRAME)? } else { 0 };
    let speed_kmh = match (layout.has_speed, layout.long_speed) {
        (false, _) => 0.0,
        (true, false) => f64::from(r.u8(FRAME)?),
        (true, true) => f64::from(r.u16(FRAME)?),
    };
    if !layout.swap_flags {
        flags = r.u16(FRAME)?;
    }
    let fix = course_status(flags, lat, lon, speed_kmh, satellites);
    record.fix = Some(fix);
    if flags & 0x4000 != 0 {
        record.attributes.set(attr::IGNITION, flags & 0x8000 != 0);
    }
    Ok(true)
}

/// The common 18-byte block, read at once: it is on every location's path.
fn standard(b: [u8; 18], offset_s: i64, record: &mut Record) {
    let [
        y,
        mo,
        d,
        h,
        mi,
        s,
        sats,
        la0,
        la1,
        la2,
        la3,
        lo0,
        lo1,
        lo2,
        lo3,
        speed,
        f0,
        f1,
    ] = b;
    let field = i64::from;
    let civil = Civil {
        year: field(y),
        month: field(mo),
        day: field(d),
        hour: field(h),
        minute: field(mi),
        second: field(s),
    };
    record.time_ms = civil.to_epoch_ms(offset_s);
    let lat = f64::from(u32::from_be_bytes([la0, la1, la2, la3])) / RAW_PER_DEGREE;
    let lon = f64::from(u32::from_be_bytes([lo0, lo1, lo2, lo3])) / RAW_PER_DEGREE;
    let flags = u16::from_be_bytes([f0, f1]);
    record.fix = Some(course_status(
        flags,
        lat,
        lon,
        speed.into(),
        Some(sats & 0x0f),
    ));
    if flags & 0x4000 != 0 {
        record.attributes.set(attr::IGNITION, flags & 0x8000 != 0);
    }
}

/// Applies the course/status word: course in bits 0..10, north in bit 10,
/// west in bit 11, positioned in bit 12.
pub(crate) fn course_status(
    flags: u16,
    lat: f64,
    lon: f64,
    speed_kmh: f64,
    satellites: Option<u8>,
) -> Fix {
    // `0.0 - x` rather than `-x`, so that a zero coordinate is not -0.0.
    Fix {
        lat: if flags & 0x0400 == 0 { 0.0 - lat } else { lat },
        lon: if flags & 0x0800 != 0 { 0.0 - lon } else { lon },
        speed_kmh,
        course_deg: f64::from(flags & 0x03ff),
        altitude_m: None,
        satellites,
        valid: flags & 0x1000 != 0,
    }
}

/// A cell tower as the device reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Cell {
    pub mcc: u16,
    pub mnc: u16,
    pub lac: i64,
    pub cid: i64,
    pub rssi: Option<i32>,
}

/// Reads the serving-cell block; its field widths depend on type and variant.
/// `None` when a length-prefixed block is empty.
pub(crate) fn lbs(
    r: &mut Reader<'_>,
    kind: u8,
    variant: Variant,
    has_length: bool,
) -> Result<Option<Cell>, DecodeError> {
    let mut length = 0;
    if has_length {
        length = r.u8(FRAME)?;
        if length == 0 {
            skip_zeroed_lbs(r)?;
            return Ok(None);
        }
    }
    let cell_type = if kind == GPS_LBS_8 || kind == ALARM_MODULE {
        r.u8(FRAME)?
    } else {
        0
    };
    let mcc = r.u16(FRAME)?;
    let mnc = if mcc & 0x8000 != 0 || kind == GPS_LBS_6 || variant == Variant::Sl4x {
        r.u16(FRAME)?
    } else {
        r.u8(FRAME)?.into()
    };
    let wide = cell_type >= 3 || matches!(kind, LBS_ALARM | GPS_LBS_7 | GPS_LBS_STATUS_5);
    let lac = if wide {
        r.i32(FRAME)?.into()
    } else {
        r.u16(FRAME)?.into()
    };
    let cid = if wide || variant == Variant::Sl4x {
        r.i64(FRAME)?
    } else if matches!(kind, GPS_LBS_6 | IBUTTON | GPS_LBS_DRIVER)
        || variant == Variant::Seeworld
        || (variant == Variant::Trx16i && kind == LOCATION_RFID)
    {
        r.u32(FRAME)?.into()
    } else {
        r.u24(FRAME)?.into()
    };
    if cell_type >= 3 {
        r.u16(FRAME)?;
    } else if kind == GPS_LBS_8 || kind == ALARM_MODULE {
        r.u8(FRAME)?;
    }
    if length > 9 {
        r.skip(usize::from(length) - 9, FRAME)?;
    }
    Ok(Some(Cell {
        mcc: mcc & 0x7fff,
        mnc,
        lac,
        cid,
        rssi: None,
    }))
}

/// Some devices send an empty cell block followed by 45 zero bytes of
/// padding; skip it when it is there.
fn skip_zeroed_lbs(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    let mut probe = r.clone();
    let window = probe.take(r.remaining().min(45), FRAME)?;
    if window.iter().skip(9).all(|&b| b == 0) {
        r.skip(window.len(), FRAME)?;
    }
    Ok(())
}

/// Sets `cellTowers` and `wifiAccessPoints` when there are any.
pub(crate) fn set_network(record: &mut Record, cells: &[Cell], points: &[([u8; 6], Option<i32>)]) {
    if !cells.is_empty() {
        record.attributes.set("cellTowers", cells_text(cells));
    }
    if !points.is_empty() {
        record.attributes.set("wifiAccessPoints", wifi_text(points));
    }
}

/// `mcc,mnc,lac,cid[,rssi]` per tower, `;`-separated: the model has no
/// network field, so Network records carry their towers as text.
fn cells_text(cells: &[Cell]) -> String {
    let mut out = String::new();
    for (i, c) in cells.iter().enumerate() {
        let sep = if i == 0 { "" } else { ";" };
        let _ = write!(out, "{sep}{},{},{},{}", c.mcc, c.mnc, c.lac, c.cid);
        if let Some(rssi) = c.rssi {
            let _ = write!(out, ",{rssi}");
        }
    }
    out
}

/// `mac,rssi` per access point, `;`-separated (see [`cells_text`]).
fn wifi_text(points: &[([u8; 6], Option<i32>)]) -> String {
    let mut out = String::new();
    for (i, (mac, rssi)) in points.iter().enumerate() {
        let sep = if i == 0 { "" } else { ";" };
        let [a, b, c, d, e, f] = mac;
        let _ = write!(out, "{sep}{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}");
        if let Some(rssi) = rssi {
            let _ = write!(out, ",{rssi}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn course_status_word_sets_signs_and_validity() {
        let fix = course_status(0x1400 | 90, 1.0, 2.0, 10.0, Some(7));
        assert_eq!(
            (fix.lat, fix.lon, fix.course_deg, fix.valid),
            (1.0, 2.0, 90.0, true)
        );
        let fix = course_status(0x0800, 1.0, 2.0, 0.0, None);
        assert_eq!((fix.lat, fix.lon, fix.valid), (-1.0, -2.0, false));
    }

    #[test]
    fn network_text() {
        let cell = Cell {
            mcc: 460,
            mnc: 0,
            lac: 10173,
            cid: 7950,
            rssi: Some(-43),
        };
        assert_eq!(
            cells_text(&[cell, Cell { rssi: None, ..cell }]),
            "460,0,10173,7950,-43;460,0,10173,7950"
        );
        assert_eq!(
            wifi_text(&[([0xa, 0xb, 0xc, 0xd, 0xe, 0xf], Some(-50))]),
            "0a:0b:0c:0d:0e:0f,-50"
        );
    }
}
