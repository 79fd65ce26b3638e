//! The stored form of a [`DeviceMessage`]: a compact, versioned binary
//! encoding shared by the journal and the history store.
//!
//! Hand-written rather than derived because this format outlives builds: a
//! journal written by one version is replayed by the next, so every byte is
//! specified here and a new layout gets a new version byte. [`encode`]
//! writes version 2; [`decode`] reads both.
//!
//! Version 2 (about a third of version 1 for a Teltonika record with 13 IO
//! elements: 110 bytes instead of 334):
//!
//! ```text
//! u8 version = 2
//! u8 protocol              (see PROTOCOLS)
//! varint len, device       (UTF-8)
//! zigzag varint time_ms
//! u8 kind                  (see KINDS)
//! u8 flags                 bit 0 fix, 1 archived, 2 altitude, 3 satellites, 4 fix valid
//! [fix] num lat, lon, speed_kmh, course_deg, [num altitude_m], [u8 satellites]
//! varint attribute count, then per attribute:
//!     u8 name              n ≥ 1: the well-known name attr::ALL[n - 1]; 0: str8 name follows
//!     u8 tag               0 false, 1 true, 2 int, 3 float, 4 text
//!     int: zigzag varint · float: num · text: varint len + UTF-8
//! num: u8 scale 0..=9, zigzag varint m: the value is exactly m / 10^scale
//!      (what decoders produce from devices' fixed-point fields), or
//!      u8 0xff, f64 LE: any other value
//! ```
//!
//! Varints are LEB128 (at most 10 bytes), zigzag maps signed to unsigned.
//! Every table is append-only: a byte once written keeps its meaning
//! (`attr::ALL` too: a test pins its first 27 names).
//!
//! Version 1, integers little-endian (still read; and the layout of the
//! content hash in history keys, [`content_hash`]):
//!
//! ```text
//! u8 version = 1
//! str8 protocol            (u8 length + UTF-8)
//! str16 device             (u16 length + UTF-8)
//! i64 time_ms
//! u8 kind                  (see KINDS)
//! u8 flags                 as in version 2
//! [fix] f64 lat, lon, speed_kmh, course_deg, [f64 altitude_m], [u8 satellites]
//! u16 attribute count, then per attribute:
//!     str8 name, u8 tag (0 bool, 1 int, 2 float, 3 text),
//!     u8 | i64 | f64 | str32 value
//! ```

use std::borrow::Cow;

use drover_protocols::model::{
    Attributes, DeviceId, DeviceMessage, Fix, Record, RecordKind, Value, attr,
};

const V1: u8 = 1;
const V2: u8 = 2;

/// Every kind, in the order of its byte on disk. Never reorder: append.
const KINDS: [RecordKind; 6] = [
    RecordKind::Position,
    RecordKind::Status,
    RecordKind::Alarm,
    RecordKind::Network,
    RecordKind::CommandResult,
    RecordKind::Event,
];

/// Every protocol, in the order of its byte in version 2. Append only.
const PROTOCOLS: [&str; 2] = [
    drover_protocols::gt06::NAME,
    drover_protocols::teltonika::NAME,
];

const FIX: u8 = 1;
const ARCHIVED: u8 = 1 << 1;
const ALTITUDE: u8 = 1 << 2;
const SATELLITES: u8 = 1 << 3;
const VALID: u8 = 1 << 4;

/// A `num` stored as its 8 bytes rather than as a scaled integer.
const RAW_FLOAT: u8 = 0xff;
/// 10^scale for each scale a `num` may have.
const POW10: [f64; 10] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
/// Integers up to this magnitude are exact in an f64.
const EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// Why stored bytes are not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("stored record ends early (needed {needed} more bytes at offset {offset})")]
    Truncated { offset: usize, needed: usize },
    #[error("stored record has format version {0}; this build reads versions {V1} and {V2}")]
    Version(u8),
    #[error("stored record has an unknown {what} ({value})")]
    Unknown { what: &'static str, value: String },
    #[error("stored record has {0} bytes after its end")]
    Trailing(usize),
    #[error("stored record sets attribute {0} twice")]
    Repeated(String),
    #[error("stored record has text that is not UTF-8")]
    Utf8,
    #[error("stored record has a varint longer than 64 bits at offset {0}")]
    Varint(usize),
    #[error("record cannot be stored: {0}")]
    TooLong(&'static str),
}

/// Appends the (version 2) encoding of `message` to `out`.
pub fn encode_into(message: &DeviceMessage, out: &mut Vec<u8>) -> Result<(), RecordError> {
    let record = &message.record;
    let protocol = PROTOCOLS
        .iter()
        .position(|p| *p == message.protocol)
        .ok_or_else(|| RecordError::Unknown {
            what: "protocol",
            value: message.protocol.to_owned(),
        })?;
    out.push(V2);
    out.push(protocol as u8);
    let device = message.device.as_str();
    put_varint(out, device.len() as u64);
    out.extend_from_slice(device.as_bytes());
    put_varint(out, zigzag(record.time_ms));
    out.push(kind_byte(record.kind));
    out.push(flags(record, record.archived));
    if let Some(fix) = &record.fix {
        for v in [fix.lat, fix.lon, fix.speed_kmh, fix.course_deg] {
            put_num(out, v);
        }
        if let Some(altitude) = fix.altitude_m {
            put_num(out, altitude);
        }
        if let Some(satellites) = fix.satellites {
            out.push(satellites);
        }
    }
    put_attributes(out, &record.attributes)
}

/// The encoding of `message` in a new buffer.
pub fn encode(message: &DeviceMessage) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::with_capacity(48 + 6 * message.record.attributes.len());
    encode_into(message, &mut out)?;
    Ok(out)
}

/// CRC-32C of `message`'s version 1 encoding with the archived flag clear:
/// the content hash in history keys. Pinned to version 1's layout so that a
/// record resent after an upgrade still lands on the key it was stored
/// under; computed without building the encoding.
pub fn content_hash(message: &DeviceMessage) -> Result<u32, RecordError> {
    const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
    let mut digest = CRC32C.digest();
    put_v1(message, false, &mut digest)?;
    Ok(digest.finalize())
}

/// Decodes what [`encode`] wrote, or what version 1 wrote. Never panics,
/// whatever the bytes.
pub fn decode(bytes: &[u8]) -> Result<DeviceMessage, RecordError> {
    let mut r = Cursor { bytes, at: 0 };
    let message = match r.u8()? {
        V2 => decode_v2(&mut r)?,
        V1 => decode_v1(&mut r)?,
        version => return Err(RecordError::Version(version)),
    };
    if r.at != bytes.len() {
        return Err(RecordError::Trailing(bytes.len() - r.at));
    }
    Ok(message)
}

fn decode_v2(r: &mut Cursor<'_>) -> Result<DeviceMessage, RecordError> {
    let protocol = r.u8()?;
    let protocol = *PROTOCOLS
        .get(usize::from(protocol))
        .ok_or_else(|| RecordError::Unknown {
            what: "protocol",
            value: protocol.to_string(),
        })?;
    let device_len = r.len()?;
    let device = DeviceId::new(r.text(device_len)?);
    let time_ms = unzigzag(r.varint()?);
    let kind = decode_kind(r.u8()?)?;
    let flags = r.u8()?;
    let fix = if flags & FIX != 0 {
        Some(decode_fix(r, flags, Cursor::num)?)
    } else {
        None
    };
    let attributes = decode_attributes_v2(r)?;
    Ok(message(
        device, protocol, time_ms, kind, flags, fix, attributes,
    ))
}

fn decode_v1(r: &mut Cursor<'_>) -> Result<DeviceMessage, RecordError> {
    let protocol_text = r.str8()?;
    let protocol =
        drover_protocols::protocol_name(protocol_text).ok_or_else(|| RecordError::Unknown {
            what: "protocol",
            value: protocol_text.to_owned(),
        })?;
    let device_len = usize::from(r.u16()?);
    let device = DeviceId::new(r.text(device_len)?);
    let time_ms = r.i64()?;
    let kind = decode_kind(r.u8()?)?;
    let flags = r.u8()?;
    let fix = if flags & FIX != 0 {
        Some(decode_fix(r, flags, Cursor::f64)?)
    } else {
        None
    };
    let attributes = decode_attributes_v1(r)?;
    Ok(message(
        device, protocol, time_ms, kind, flags, fix, attributes,
    ))
}

fn message(
    device: DeviceId,
    protocol: &'static str,
    time_ms: i64,
    kind: RecordKind,
    flags: u8,
    fix: Option<Fix>,
    attributes: Attributes,
) -> DeviceMessage {
    DeviceMessage {
        device,
        protocol,
        record: Record {
            time_ms,
            kind,
            fix,
            archived: flags & ARCHIVED != 0,
            attributes,
        },
    }
}

/// The byte of `kind` on disk (also in history keys).
pub fn kind_byte(kind: RecordKind) -> u8 {
    // KINDS lists every variant; the fallback only satisfies the type.
    KINDS.iter().position(|k| *k == kind).unwrap_or(0) as u8
}

fn decode_kind(byte: u8) -> Result<RecordKind, RecordError> {
    KINDS
        .get(usize::from(byte))
        .copied()
        .ok_or(RecordError::Unknown {
            what: "record kind",
            value: byte.to_string(),
        })
}

fn flags(record: &Record, archived: bool) -> u8 {
    let mut flags = if archived { ARCHIVED } else { 0 };
    if let Some(fix) = &record.fix {
        flags |= FIX;
        if fix.altitude_m.is_some() {
            flags |= ALTITUDE;
        }
        if fix.satellites.is_some() {
            flags |= SATELLITES;
        }
        if fix.valid {
            flags |= VALID;
        }
    }
    flags
}

/// A fix whose numbers `number` reads (each version has its own form).
fn decode_fix<'a>(
    r: &mut Cursor<'a>,
    flags: u8,
    number: fn(&mut Cursor<'a>) -> Result<f64, RecordError>,
) -> Result<Fix, RecordError> {
    let (lat, lon, speed_kmh, course_deg) = (number(r)?, number(r)?, number(r)?, number(r)?);
    let altitude_m = if flags & ALTITUDE != 0 {
        Some(number(r)?)
    } else {
        None
    };
    let satellites = if flags & SATELLITES != 0 {
        Some(r.u8()?)
    } else {
        None
    };
    Ok(Fix {
        lat,
        lon,
        speed_kmh,
        course_deg,
        altitude_m,
        satellites,
        valid: flags & VALID != 0,
    })
}

fn put_attributes(out: &mut Vec<u8>, attributes: &Attributes) -> Result<(), RecordError> {
    put_varint(out, attributes.len() as u64);
    for entry in attributes.entries() {
        match entry.known() {
            Some(known) => out.push(known as u8 + 1),
            None => {
                out.push(0);
                put_str8(out, entry.key(), "attribute name")?;
            }
        }
        match entry.value() {
            Value::Bool(b) => out.push(u8::from(*b)),
            Value::Int(i) => {
                out.push(2);
                put_varint(out, zigzag(*i));
            }
            Value::Float(f) => {
                out.push(3);
                put_num(out, *f);
            }
            Value::Text(text) => {
                out.push(4);
                put_varint(out, text.len() as u64);
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
    Ok(())
}

fn decode_attributes_v2(r: &mut Cursor<'_>) -> Result<Attributes, RecordError> {
    let count = r.len()?;
    // A corrupt count must not reserve memory the bytes cannot fill: an
    // attribute takes at least two bytes.
    let mut attributes = Attributes::with_capacity(count.min(r.left() / 2));
    let mut names = Names::default();
    for _ in 0..count {
        let name = match r.u8()? {
            0 => Name::Other(r.str8()?),
            n => Name::Known(attr::Known::at(usize::from(n) - 1).ok_or_else(|| {
                RecordError::Unknown {
                    what: "attribute name",
                    value: n.to_string(),
                }
            })?),
        };
        let value = match r.u8()? {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            2 => Value::Int(unzigzag(r.varint()?)),
            3 => Value::Float(r.num()?),
            4 => {
                let len = r.len()?;
                Value::Text(r.text(len)?.to_owned())
            }
            tag => return Err(unknown_type(tag)),
        };
        names.push(&mut attributes, name, value)?;
    }
    Ok(attributes)
}

fn decode_attributes_v1(r: &mut Cursor<'_>) -> Result<Attributes, RecordError> {
    let count = r.u16()?;
    let mut attributes = Attributes::with_capacity(usize::from(count));
    let mut names = Names::default();
    for _ in 0..count {
        let name = r.str8()?;
        let name = attr::Known::of(name).map_or(Name::Other(name), Name::Known);
        let value = match r.u8()? {
            0 => Value::Bool(r.u8()? != 0),
            1 => Value::Int(r.i64()?),
            2 => Value::Float(r.f64()?),
            3 => {
                let len = r.u32()? as usize;
                Value::Text(r.text(len)?.to_owned())
            }
            tag => return Err(unknown_type(tag)),
        };
        names.push(&mut attributes, name, value)?;
    }
    Ok(attributes)
}

fn unknown_type(tag: u8) -> RecordError {
    RecordError::Unknown {
        what: "attribute type",
        value: tag.to_string(),
    }
}

/// An attribute's name as read.
enum Name<'a> {
    Known(attr::Known),
    Other(&'a str),
}

/// Which well-known names a record has set, so that a repeat of one is
/// found without a search (other names are searched for).
#[derive(Default)]
struct Names(u64);

const _: () = assert!(attr::ALL.len() <= 64, "one bit per well-known name");

impl Names {
    fn push(
        &mut self,
        attributes: &mut Attributes,
        name: Name<'_>,
        value: Value,
    ) -> Result<(), RecordError> {
        match name {
            Name::Known(slot) => {
                let bit = 1u64 << slot as u32;
                if self.0 & bit != 0 {
                    return Err(RecordError::Repeated(slot.name().to_owned()));
                }
                self.0 |= bit;
                attributes.push_known(slot, value);
            }
            Name::Other(name) if attributes.get(name).is_some() => {
                return Err(RecordError::Repeated(name.to_owned()));
            }
            Name::Other(name) => attributes.push_new(Cow::Owned(name.to_owned()), value),
        }
        Ok(())
    }
}

/// Where version 1 bytes go: a buffer, or a checksum that never holds them.
trait Put {
    fn put(&mut self, bytes: &[u8]);
}

impl Put for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Put for crc::Digest<'_, u32> {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

/// Version 1's encoding of `message`: what builds before version 2 wrote.
/// [`encode`] is what to store; this is for the content hash's layout and
/// for tests that data written by those builds stays readable.
pub fn encode_v1(message: &DeviceMessage) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    put_v1(message, message.record.archived, &mut out)?;
    Ok(out)
}

/// Version 1 of `message` into `out`, its archived flag as `archived`.
fn put_v1(message: &DeviceMessage, archived: bool, out: &mut impl Put) -> Result<(), RecordError> {
    let record = &message.record;
    out.put(&[V1]);
    put_v1_str8(out, message.protocol, "protocol name")?;
    let device = message.device.as_str();
    let len = u16::try_from(device.len()).map_err(|_| RecordError::TooLong("device id"))?;
    out.put(&len.to_le_bytes());
    out.put(device.as_bytes());
    out.put(&record.time_ms.to_le_bytes());
    out.put(&[kind_byte(record.kind), flags(record, archived)]);
    if let Some(fix) = &record.fix {
        for v in [fix.lat, fix.lon, fix.speed_kmh, fix.course_deg] {
            out.put(&v.to_le_bytes());
        }
        if let Some(altitude) = fix.altitude_m {
            out.put(&altitude.to_le_bytes());
        }
        if let Some(satellites) = fix.satellites {
            out.put(&[satellites]);
        }
    }
    let count = u16::try_from(record.attributes.len())
        .map_err(|_| RecordError::TooLong("attribute count"))?;
    out.put(&count.to_le_bytes());
    for (name, value) in record.attributes.iter() {
        put_v1_str8(out, name, "attribute name")?;
        match value {
            Value::Bool(b) => out.put(&[0, u8::from(*b)]),
            Value::Int(i) => {
                out.put(&[1]);
                out.put(&i.to_le_bytes());
            }
            Value::Float(f) => {
                out.put(&[2]);
                out.put(&f.to_le_bytes());
            }
            Value::Text(text) => {
                let len = u32::try_from(text.len())
                    .map_err(|_| RecordError::TooLong("attribute text"))?;
                out.put(&[3]);
                out.put(&len.to_le_bytes());
                out.put(text.as_bytes());
            }
        }
    }
    Ok(())
}

fn put_v1_str8(out: &mut impl Put, s: &str, what: &'static str) -> Result<(), RecordError> {
    let len = u8::try_from(s.len()).map_err(|_| RecordError::TooLong(what))?;
    out.put(&[len]);
    out.put(s.as_bytes());
    Ok(())
}

fn put_str8(out: &mut Vec<u8>, s: &str, what: &'static str) -> Result<(), RecordError> {
    let len = u8::try_from(s.len()).map_err(|_| RecordError::TooLong(what))?;
    out.push(len);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// `v` as the fewest decimal digits that give back exactly its bits, or
/// as its bits.
fn put_num(out: &mut Vec<u8>, v: f64) {
    for (scale, pow) in POW10.iter().enumerate() {
        let m = (v * pow).round();
        // Checked as it will be read back: -0.0 and NaN do not survive it.
        if m.abs() < EXACT_INT && ((m as i64) as f64 / pow).to_bits() == v.to_bits() {
            out.push(scale as u8);
            put_varint(out, zigzag(m as i64));
            return;
        }
    }
    out.push(RAW_FLOAT);
    out.extend_from_slice(&v.to_le_bytes());
}

/// A bounds-checked reader over stored bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(RecordError::Truncated {
                offset: self.at,
                needed: n - (self.bytes.len() - self.at).min(n),
            });
        };
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, RecordError> {
        self.array().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Result<u32, RecordError> {
        self.array().map(u32::from_le_bytes)
    }
    fn i64(&mut self) -> Result<i64, RecordError> {
        self.array().map(i64::from_le_bytes)
    }
    fn f64(&mut self) -> Result<f64, RecordError> {
        self.array().map(f64::from_le_bytes)
    }

    fn varint(&mut self) -> Result<u64, RecordError> {
        let start = self.at;
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                // The tenth byte may only carry the top bit.
                return if shift == 63 && byte > 1 {
                    Err(RecordError::Varint(start))
                } else {
                    Ok(v)
                };
            }
        }
        Err(RecordError::Varint(start))
    }

    /// A varint length, no more than the bytes left can hold.
    fn len(&mut self) -> Result<usize, RecordError> {
        let at = self.at;
        let len = self.varint()?;
        usize::try_from(len).map_err(|_| RecordError::Truncated {
            offset: at,
            needed: usize::MAX,
        })
    }

    fn num(&mut self) -> Result<f64, RecordError> {
        match self.u8()? {
            RAW_FLOAT => self.f64(),
            scale => {
                let pow = POW10.get(usize::from(scale)).ok_or(RecordError::Unknown {
                    what: "number scale",
                    value: scale.to_string(),
                })?;
                Ok(unzigzag(self.varint()?) as f64 / pow)
            }
        }
    }

    fn text(&mut self, len: usize) -> Result<&'a str, RecordError> {
        std::str::from_utf8(self.take(len)?).map_err(|_| RecordError::Utf8)
    }

    fn str8(&mut self) -> Result<&'a str, RecordError> {
        let len = usize::from(self.u8()?);
        self.text(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DeviceMessage {
        let mut attributes = Attributes::new();
        attributes.set(attr::IGNITION, true);
        attributes.set(attr::RPM, 2150i64);
        attributes.set(attr::FUEL_LEVEL, 61.5);
        attributes.set(attr::DTCS, "P0300 P0171".to_owned());
        DeviceMessage {
            device: DeviceId::new("356307042441013"),
            protocol: drover_protocols::teltonika::NAME,
            record: Record {
                time_ms: 1_764_000_000_123,
                kind: RecordKind::Position,
                fix: Some(Fix {
                    lat: 54.687_157,
                    lon: 25.279_652,
                    speed_kmh: 63.0,
                    course_deg: 271.0,
                    altitude_m: Some(112.0),
                    satellites: Some(11),
                    valid: true,
                }),
                archived: true,
                attributes,
            },
        }
    }

    #[test]
    fn round_trips_every_field() {
        let message = sample();
        assert_eq!(decode(&encode(&message).unwrap()).unwrap(), message);
    }

    #[test]
    fn round_trips_records_without_fix_or_optional_parts() {
        let mut message = sample();
        message.protocol = drover_protocols::gt06::NAME;
        message.record.kind = RecordKind::Alarm;
        message.record.fix = None;
        message.record.archived = false;
        assert_eq!(decode(&encode(&message).unwrap()).unwrap(), message);

        let mut message = sample();
        let fix = message.record.fix.as_mut().unwrap();
        fix.altitude_m = None;
        fix.satellites = None;
        fix.valid = false;
        message.record.attributes = Attributes::new();
        assert_eq!(decode(&encode(&message).unwrap()).unwrap(), message);
    }

    #[test]
    fn every_kind_keeps_its_byte() {
        for kind in KINDS {
            let mut message = sample();
            message.record.kind = kind;
            assert_eq!(
                decode(&encode(&message).unwrap()).unwrap().record.kind,
                kind
            );
        }
    }

    #[test]
    fn damaged_bytes_are_errors_not_panics() {
        for bytes in [encode(&sample()).unwrap(), encode_v1(&sample()).unwrap()] {
            for len in 0..bytes.len() {
                assert!(decode(&bytes[..len]).is_err(), "prefix of {len} bytes");
            }
            for i in 0..bytes.len() {
                let mut flipped = bytes.clone();
                flipped[i] ^= 0xff;
                let _ = decode(&flipped);
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(decode(&longer), Err(RecordError::Trailing(1)));
        }
    }

    /// `sample()` as version 1 wrote it (captured from the build before
    /// version 2).
    const SAMPLE_V1: &str = "010974656c746f6e696b610f003335363330373034323434313031337be897b69a\
        010000001fd61bb5c2f4574b40d0420246974739400000000000804f400000000000f07040\
        0000000000005c400b04000869676e6974696f6e00010372706d016608000000000000096675\
        656c4c6576656c020000000000c04e400464746373030b0000005030333030205030313731";

    fn unhex(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn version_1_records_still_decode() {
        let v1 = unhex(SAMPLE_V1);
        assert_eq!(decode(&v1).unwrap(), sample());
        assert_eq!(
            encode_v1(&sample()).unwrap(),
            v1,
            "the hash's layout is version 1's"
        );
    }

    #[test]
    fn the_content_hash_is_version_1s_without_the_archived_flag() {
        const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
        let archived = sample();
        let mut live = sample();
        live.record.archived = false;
        let expected = CRC32C.checksum(&encode_v1(&live).unwrap());
        assert_eq!(content_hash(&archived).unwrap(), expected);
        assert_eq!(content_hash(&live).unwrap(), expected);
        live.record.time_ms += 1;
        assert_ne!(content_hash(&live).unwrap(), expected);
    }

    #[test]
    fn version_2_is_under_half_of_version_1() {
        let (v1, v2) = (
            encode_v1(&sample()).unwrap().len(),
            encode(&sample()).unwrap().len(),
        );
        assert!(v2 * 2 < v1, "version 2 {v2} bytes, version 1 {v1}");
    }

    /// The well-known names as version 2 was made: a name's byte is its
    /// place in `attr::ALL` plus one, so `attr::ALL` may only grow at its end.
    const NAMES: [&str; 27] = [
        "ignition",
        "motion",
        "alarm",
        "power",
        "battery",
        "batteryLevel",
        "charge",
        "rssi",
        "satVisible",
        "hdop",
        "odometer",
        "hours",
        "event",
        "index",
        "driverUniqueId",
        "result",
        "iccid",
        "rpm",
        "coolantTemp",
        "engineLoad",
        "fuelLevel",
        "fuel",
        "throttle",
        "obdSpeed",
        "obdOdometer",
        "faultCount",
        "dtcs",
    ];

    #[test]
    fn well_known_names_keep_their_bytes() {
        assert_eq!(
            &attr::ALL[..NAMES.len()],
            NAMES,
            "attr::ALL may only grow at its end"
        );
    }

    #[test]
    fn numbers_keep_their_exact_bits() {
        let values = [
            54.687_157,
            -33.868_819_7,
            25.279_652,
            0.0,
            -0.0,
            63.0,
            271.5,
            12.5,
            1e-9,
            1.0 / 3.0,
            123_456_789.123,
            54.687_157_f64.mul_add(1.0, 1e-12),
            9e15,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        for v in values {
            let mut out = Vec::new();
            put_num(&mut out, v);
            let mut r = Cursor { bytes: &out, at: 0 };
            assert_eq!(r.num().unwrap().to_bits(), v.to_bits(), "{v:e}");
            assert_eq!(r.at, out.len());
        }
        let mut out = Vec::new();
        put_num(&mut out, 54.687_157);
        assert_eq!(out.len(), 1 + 4, "scale 6 and a 4-byte varint, not 8 bytes");
    }

    #[test]
    fn varints_round_trip_and_overlong_ones_are_errors() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(Cursor { bytes: &out, at: 0 }.varint(), Ok(v));
        }
        for v in [0, -1, 1, i64::MIN, i64::MAX, 1_764_000_000_123] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        let overlong = [0xff; 11];
        assert_eq!(
            Cursor {
                bytes: &overlong,
                at: 0
            }
            .varint(),
            Err(RecordError::Varint(0))
        );
        let too_big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(
            Cursor {
                bytes: &too_big,
                at: 0
            }
            .varint(),
            Err(RecordError::Varint(0))
        );
    }

    #[test]
    fn other_names_round_trip_and_a_repeated_name_is_an_error() {
        let mut message = sample();
        message.record.attributes.set(attr::ODOMETER, 12_000i64);
        message.record.attributes.set("io1", 1i64);
        message.record.attributes.set("io2", 2i64);
        let bytes = encode(&message).unwrap();
        assert_eq!(decode(&bytes).unwrap(), message);

        let replaced = |from: &[u8], to: &[u8]| {
            let mut bytes = bytes.clone();
            let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
            bytes[at..at + to.len()].copy_from_slice(to);
            decode(&bytes)
        };
        let (odometer, ignition) = (
            attr::Known::Odometer as u8 + 1,
            attr::Known::Ignition as u8 + 1,
        );
        // The odometer's name byte, its int tag and 12,000 zigzagged.
        assert_eq!(
            replaced(&[odometer, 2, 0xc0, 0xbb, 0x01], &[ignition]),
            Err(RecordError::Repeated("ignition".into()))
        );
        assert_eq!(
            replaced(b"io2", b"io1"),
            Err(RecordError::Repeated("io1".into()))
        );
        // Version 1 names are text.
        let v1 = encode_v1(&message).unwrap();
        assert_eq!(decode(&v1).unwrap(), message);
        let at = v1.windows(8).position(|w| w == b"odometer").unwrap();
        let mut renamed = v1.clone();
        renamed[at..at + 8].copy_from_slice(b"ignition");
        assert_eq!(
            decode(&renamed),
            Err(RecordError::Repeated("ignition".into()))
        );
    }

    #[test]
    fn unknown_version_protocol_and_name_are_named() {
        let mut bytes = encode(&sample()).unwrap();
        bytes[0] = 9;
        assert_eq!(decode(&bytes), Err(RecordError::Version(9)));

        let mut message = sample();
        message.protocol = "acme";
        assert!(matches!(
            encode(&message),
            Err(RecordError::Unknown {
                what: "protocol",
                ..
            })
        ));
        let mut bytes = encode(&sample()).unwrap();
        bytes[1] = 200;
        assert!(matches!(
            decode(&bytes),
            Err(RecordError::Unknown {
                what: "protocol",
                ..
            })
        ));
        let mut v1 = encode_v1(&sample()).unwrap();
        v1[2..2 + 9].copy_from_slice(b"acmetrack");
        assert!(matches!(
            decode(&v1),
            Err(RecordError::Unknown {
                what: "protocol",
                ..
            })
        ));
    }
}
