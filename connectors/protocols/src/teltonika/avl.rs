//! AVL data of codecs 8, 8 Extended and 16: the records as the device laid
//! them out, before any mapping to Drover's model.
//!
//! [`AvlData::parse`] walks the whole data field once to check its structure
//! (every length in bounds, both record counts equal, nothing left over); the
//! records are then read again lazily, without allocating.

use super::io::{self, Models};
use crate::DecodeError;
use crate::model::{Attributes, Fix, Record, RecordKind, attr};
use crate::wire::reader::Reader;

type Result<T> = std::result::Result<T, DecodeError>;

pub const CODEC_8: u8 = 0x08;
pub const CODEC_8E: u8 = 0x8e;
pub const CODEC_16: u8 = 0x10;

/// Record priority meaning "panic" in Teltonika's documentation.
const PRIORITY_PANIC: u8 = 2;

/// The attribute carrying the record priority (0 low, 1 high, 2 panic).
pub const PRIORITY: &str = "priority";

/// Field widths that differ between codecs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    /// Event id and IO ids on two bytes (8E, 16).
    wide_ids: bool,
    /// Element counts on two bytes (8E).
    wide_counts: bool,
    /// A generation-type byte after the event id (16).
    generation: bool,
    /// A section of 16-byte values after the 8-byte ones (Traccar's
    /// "extended" setting, for firmware that sends one).
    sixteen: bool,
    /// A final section of variable-length values (8E).
    variable: bool,
}

impl Layout {
    fn of(codec: u8, extended: bool) -> Option<Self> {
        let (wide_ids, wide_counts, generation, variable) = match codec {
            CODEC_8 => (false, false, false, false),
            CODEC_8E => (true, true, false, true),
            CODEC_16 => (true, false, true, false),
            _ => return None,
        };
        Some(Layout {
            wide_ids,
            wide_counts,
            generation,
            sixteen: extended,
            variable,
        })
    }
}

/// The section an IO element came in, which fixes its value's width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Width {
    W1,
    W2,
    W4,
    W8,
    W16,
    /// Codec 8E's variable-length section.
    Var,
}

impl Width {
    fn fixed_len(self) -> usize {
        match self {
            Width::W1 => 1,
            Width::W2 => 2,
            Width::W4 => 4,
            Width::W8 => 8,
            Width::W16 => 16,
            Width::Var => 0,
        }
    }
}

/// One IO element: an id and its raw big-endian value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoElement<'a> {
    pub id: u16,
    pub width: Width,
    pub bytes: &'a [u8],
}

impl IoElement<'_> {
    /// The value as an unsigned integer (the first eight bytes of longer ones).
    pub fn value(&self) -> u64 {
        self.bytes
            .iter()
            .take(8)
            .fold(0, |acc, &b| acc << 8 | u64::from(b))
    }

    /// The value sign-extended from its width.
    pub fn signed(&self) -> i64 {
        let bits = self.bytes.len().clamp(1, 8) * 8;
        let shift = u32::try_from(64 - bits).unwrap_or(0);
        ((self.value() << shift) as i64) >> shift
    }
}

/// The GPS element of a record, raw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct GpsElement {
    /// Degrees × 10⁷.
    pub longitude: i32,
    /// Degrees × 10⁷.
    pub latitude: i32,
    /// Metres.
    pub altitude: i16,
    /// Degrees clockwise from north.
    pub angle: u16,
    pub satellites: u8,
    /// km/h.
    pub speed: u16,
}

/// One AVL record, raw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvlRecord<'a> {
    /// Milliseconds since the Unix epoch, UTC.
    pub time_ms: i64,
    pub priority: u8,
    pub gps: GpsElement,
    /// The IO id whose change caused the record, 0 for periodic records.
    pub event_id: u16,
    /// Codec 16 only: on exit, on entrance, on change, periodic… (0–7).
    pub generation_type: Option<u8>,
    /// The total the device declared; the sections are what is read.
    pub io_total: u16,
    io: &'a [u8],
    layout: Layout,
}

impl<'a> AvlRecord<'a> {
    fn read(r: &mut Reader<'a>, layout: Layout) -> Result<Self> {
        let time = r.u64("timestamp")?;
        let time_ms =
            i64::try_from(time).map_err(|_| DecodeError::Invalid { what: "timestamp" })?;
        let priority = r.u8("priority")?;
        let gps = GpsElement {
            longitude: r.i32("longitude")?,
            latitude: r.i32("latitude")?,
            altitude: r.i16("altitude")?,
            angle: r.u16("angle")?,
            satellites: r.u8("satellites")?,
            speed: r.u16("speed")?,
        };
        let event_id = r.u8_or_u16(layout.wide_ids, "event io id")?;
        let generation_type = layout
            .generation
            .then(|| r.u8("generation type"))
            .transpose()?;
        let io_total = r.u8_or_u16(layout.wide_counts, "io count")?;
        let start = r.pos();
        walk_io(r, layout, &mut |_| {})?;
        let io = r.since(start);
        Ok(AvlRecord {
            time_ms,
            priority,
            gps,
            event_id,
            generation_type,
            io_total,
            io,
            layout,
        })
    }

    /// Calls `f` with every IO element, in the order sent.
    pub fn for_each_io(&self, mut f: impl FnMut(IoElement<'a>)) {
        // The bytes were walked once already, so this cannot fail.
        let _ = walk_io(&mut Reader::new(self.io), self.layout, &mut f);
    }
}

fn walk_io<'a>(
    r: &mut Reader<'a>,
    layout: Layout,
    f: &mut impl FnMut(IoElement<'a>),
) -> Result<()> {
    let fixed = [Width::W1, Width::W2, Width::W4, Width::W8, Width::W16];
    let sections = if layout.sixteen {
        &fixed[..]
    } else {
        &fixed[..4]
    };
    for &width in sections {
        let count = r.u8_or_u16(layout.wide_counts, "io count")?;
        for _ in 0..count {
            let id = r.u8_or_u16(layout.wide_ids, "io id")?;
            let bytes = r.take(width.fixed_len(), "io value")?;
            f(IoElement { id, width, bytes });
        }
    }
    if layout.variable {
        let count = r.u16("io count")?;
        for _ in 0..count {
            let id = r.u16("io id")?;
            let len = r.u16("io length")?;
            let bytes = r.take(usize::from(len), "io value")?;
            f(IoElement {
                id,
                width: Width::Var,
                bytes,
            });
        }
    }
    Ok(())
}

/// A checked AVL data field (codec id to second record count).
#[derive(Clone, Copy, Debug)]
pub struct AvlData<'a> {
    pub codec: u8,
    /// Records in the packet: the device expects this number back.
    pub count: u8,
    records: &'a [u8],
    layout: Layout,
}

impl<'a> AvlData<'a> {
    /// `extended` reads a 16-byte IO section (see [`super::Teltonika::with_extended`]).
    pub fn parse(data: &'a [u8], extended: bool) -> Result<Self> {
        let mut r = Reader::new(data);
        let codec = r.u8("codec")?;
        let layout = Layout::of(codec, extended).ok_or(DecodeError::Unsupported(codec.into()))?;
        let count = r.u8("record count")?;
        let start = r.pos();
        for _ in 0..count {
            AvlRecord::read(&mut r, layout)?;
        }
        let records = r.since(start);
        end_of_records(&mut r, count)?;
        Ok(AvlData {
            codec,
            count,
            records,
            layout,
        })
    }

    pub fn records(&self) -> impl Iterator<Item = AvlRecord<'a>> + use<'a> {
        let mut r = Reader::new(self.records);
        let layout = self.layout;
        (0..self.count).map_while(move |_| AvlRecord::read(&mut r, layout).ok())
    }
}

/// The second record count closes every data field and must repeat the first.
pub(crate) fn end_of_records(r: &mut Reader<'_>, count: u8) -> Result<()> {
    if r.u8("record count")? != count {
        return Err(DecodeError::Invalid {
            what: "record count",
        });
    }
    if !r.is_empty() {
        return Err(DecodeError::Invalid {
            what: "data length",
        });
    }
    Ok(())
}

/// Decodes a data field of codec 8, 8E or 16 into `out`; returns the count to ack.
pub(crate) fn decode(
    data: &[u8],
    extended: bool,
    models: Models,
    out: &mut Vec<Record>,
) -> Result<u8> {
    let avl = AvlData::parse(data, extended)?;
    out.extend(avl.records().map(|rec| to_record(&rec, models)));
    Ok(avl.count)
}

/// The attributes a record gets besides its IO elements (priority, event,
/// an alarm).
const FIXED_ATTRIBUTES: usize = 3;
/// Presized room for IO elements at most: the count is the device's word.
const IO_CAPACITY_MAX: usize = 32;

pub(crate) fn to_record(rec: &AvlRecord<'_>, models: Models) -> Record {
    let io = usize::from(rec.io_total).min(IO_CAPACITY_MAX);
    let mut record = Record {
        time_ms: rec.time_ms,
        kind: RecordKind::Position,
        fix: fix(&rec.gps),
        attributes: Attributes::with_capacity(FIXED_ATTRIBUTES + io),
        ..Record::default()
    };
    record.attributes.set(PRIORITY, i64::from(rec.priority));
    if rec.priority == PRIORITY_PANIC {
        io::add_alarm(&mut record, "sos");
    }
    record.attributes.set(attr::EVENT, i64::from(rec.event_id));
    rec.for_each_io(|e| io::apply(&mut record, &e, io::TABLE, models));
    record
}

/// The fix, or none when the coordinates are impossible (they would poison
/// every distance computed from them). No satellites or the all-zero "no
/// fix yet" position make the fix invalid, as Traccar has it.
fn fix(gps: &GpsElement) -> Option<Fix> {
    let lat = f64::from(gps.latitude) / 1e7;
    let lon = f64::from(gps.longitude) / 1e7;
    if lat.abs() > 90.0 || lon.abs() > 180.0 {
        return None;
    }
    let altitude = f64::from(gps.altitude);
    Some(Fix {
        lat,
        lon,
        speed_kmh: f64::from(gps.speed),
        course_deg: f64::from(gps.angle % 360),
        altitude_m: (-12262.0..=18000.0).contains(&altitude).then_some(altitude),
        satellites: Some(gps.satellites),
        valid: gps.satellites != 0 && (gps.latitude, gps.longitude) != (0, 0),
    })
}
