//! Codec 7, the GH3000 personal trackers' own layout: masks say which
//! location fields and IO sections follow, coordinates are floats and time
//! counts seconds from 2007.

use super::avl::{IoElement, Width, end_of_records};
use super::io::{self, Models};
use crate::DecodeError;
use crate::model::{Fix, Record, RecordKind, attr};
use crate::wire::reader::Reader;

type Result<T> = std::result::Result<T, DecodeError>;

pub const CODEC_7: u8 = 0x07;

/// 2007-01-01T00:00:00Z, the GH3000 epoch, in Unix seconds.
const EPOCH_2007: i64 = 1_167_609_600;

/// The two top bits of the time field are not time.
const TIME_MASK: u32 = 0x3fff_ffff;

/// Decodes a codec 7 data field into `out`; returns the count to ack.
pub(crate) fn decode(data: &[u8], extended: bool, out: &mut Vec<Record>) -> Result<u8> {
    let mut r = Reader::new(data);
    r.u8("codec")?;
    let count = r.u8("record count")?;
    let start = out.len();
    for _ in 0..count {
        if let Some(record) = read_record(&mut r, extended)? {
            out.push(record);
        }
    }
    if let Err(e) = end_of_records(&mut r, count) {
        out.truncate(start);
        return Err(e);
    }
    Ok(count)
}

/// A record, or none when it says nothing: no location and no IO (Traccar
/// drops those too).
fn read_record(r: &mut Reader<'_>, extended: bool) -> Result<Option<Record>> {
    let seconds = i64::from(r.u32("timestamp")? & TIME_MASK);
    let mut record = Record {
        time_ms: (EPOCH_2007 + seconds) * 1000,
        kind: RecordKind::Status,
        ..Record::default()
    };
    let global = r.u8("global mask")?;
    if global & 0x01 != 0 {
        read_location(r, &mut record)?;
    }
    let sections = [(0x02, Width::W1), (0x04, Width::W2), (0x08, Width::W4)];
    for (bit, width) in sections {
        if global & bit != 0 {
            read_io(r, width, &mut record)?;
        }
    }
    if extended {
        read_io(r, Width::W16, &mut record)?;
    }
    let located = global & 0x01 != 0;
    Ok((located || !record.attributes.is_empty()).then_some(record))
}

fn read_location(r: &mut Reader<'_>, record: &mut Record) -> Result<()> {
    let mask = r.u8("location mask")?;
    let has = |bit: u8| mask & (1 << bit) != 0;
    let coords = if has(0) {
        Some((r.f32("latitude")?, r.f32("longitude")?))
    } else {
        None
    };
    let altitude = if has(1) {
        Some(f64::from(r.u16("altitude")?))
    } else {
        None
    };
    let course = if has(2) {
        f64::from(r.u8("course")?) * 360.0 / 256.0
    } else {
        0.0
    };
    let speed = if has(3) {
        f64::from(r.u8("speed")?)
    } else {
        0.0
    };
    let satellites = if has(4) {
        Some(r.u8("satellites")?)
    } else {
        None
    };
    let attrs = &mut record.attributes;
    if has(5) {
        attrs.set("lac", u32::from(r.u16("lac")?));
        attrs.set("cid", u32::from(r.u16("cell id")?));
    }
    if has(6) {
        attrs.set(attr::RSSI, u32::from(r.u8("signal")?));
    }
    if has(7) {
        attrs.set("operator", r.u32("operator")?);
    }
    let Some((lat, lon)) = coords.map(|(a, b)| (f64::from(a), f64::from(b))) else {
        return Ok(());
    };
    if !(lat.abs() <= 90.0 && lon.abs() <= 180.0) {
        return Ok(());
    }
    record.kind = RecordKind::Position;
    record.fix = Some(Fix {
        lat,
        lon,
        speed_kmh: speed,
        course_deg: course,
        altitude_m: altitude.filter(|a| *a <= 18000.0),
        satellites,
        valid: satellites != Some(0),
    });
    Ok(())
}

fn read_io(r: &mut Reader<'_>, width: Width, record: &mut Record) -> Result<()> {
    let count = r.u8("io count")?;
    let len = match width {
        Width::W1 => 1,
        Width::W2 => 2,
        Width::W4 => 4,
        _ => 16,
    };
    for _ in 0..count {
        let id = u16::from(r.u8("io id")?);
        let bytes = r.take(len, "io value")?;
        let e = IoElement { id, width, bytes };
        io::apply(record, &e, io::GH3000_TABLE, Models::default());
    }
    Ok(())
}
