//! The stored form of a [`DeviceMessage`]: a compact, versioned binary
//! encoding shared by the journal and the history store.
//!
//! Hand-written rather than derived because this format outlives builds: a
//! journal written by one version is replayed by the next, so every byte is
//! specified here and a new layout gets a new version byte.
//!
//! Version 1, integers little-endian:
//!
//! ```text
//! u8 version = 1
//! str8 protocol            (u8 length + UTF-8)
//! str16 device             (u16 length + UTF-8)
//! i64 time_ms
//! u8 kind                  (see KINDS)
//! u8 flags                 bit 0 fix, 1 archived, 2 altitude, 3 satellites, 4 fix valid
//! [fix] f64 lat, lon, speed_kmh, course_deg, [f64 altitude_m], [u8 satellites]
//! u16 attribute count, then per attribute:
//!     str8 name, u8 tag (0 bool, 1 int, 2 float, 3 text),
//!     u8 | i64 | f64 | str32 value
//! ```

use std::borrow::Cow;

use drover_protocols::model::{
    Attributes, DeviceId, DeviceMessage, Fix, Record, RecordKind, Value, attr,
};

const VERSION: u8 = 1;

/// Every kind, in the order of its byte on disk. Never reorder: append.
const KINDS: [RecordKind; 6] = [
    RecordKind::Position,
    RecordKind::Status,
    RecordKind::Alarm,
    RecordKind::Network,
    RecordKind::CommandResult,
    RecordKind::Event,
];

const FIX: u8 = 1;
const ARCHIVED: u8 = 1 << 1;
const ALTITUDE: u8 = 1 << 2;
const SATELLITES: u8 = 1 << 3;
const VALID: u8 = 1 << 4;

/// Why stored bytes are not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("stored record ends early (needed {needed} more bytes at offset {offset})")]
    Truncated { offset: usize, needed: usize },
    #[error("stored record has format version {0}; this build reads version {VERSION}")]
    Version(u8),
    #[error("stored record has an unknown {what} ({value})")]
    Unknown { what: &'static str, value: String },
    #[error("stored record has {0} bytes after its end")]
    Trailing(usize),
    #[error("stored record sets attribute {0} twice")]
    Repeated(String),
    #[error("stored record has text that is not UTF-8")]
    Utf8,
    #[error("record cannot be stored: {0}")]
    TooLong(&'static str),
}

/// Appends the encoding of `message` to `out`.
pub fn encode_into(message: &DeviceMessage, out: &mut Vec<u8>) -> Result<(), RecordError> {
    let record = &message.record;
    out.push(VERSION);
    put_str8(out, message.protocol, "protocol name")?;
    let device = message.device.as_str();
    let len = u16::try_from(device.len()).map_err(|_| RecordError::TooLong("device id"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(device.as_bytes());
    out.extend_from_slice(&record.time_ms.to_le_bytes());
    out.push(kind_byte(record.kind));
    out.push(flags(record));
    if let Some(fix) = &record.fix {
        for v in [fix.lat, fix.lon, fix.speed_kmh, fix.course_deg] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        if let Some(altitude) = fix.altitude_m {
            out.extend_from_slice(&altitude.to_le_bytes());
        }
        if let Some(satellites) = fix.satellites {
            out.push(satellites);
        }
    }
    put_attributes(out, &record.attributes)
}

/// The encoding of `message` in a new buffer.
pub fn encode(message: &DeviceMessage) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::with_capacity(96 + 24 * message.record.attributes.len());
    encode_into(message, &mut out)?;
    Ok(out)
}

/// Decodes what [`encode`] wrote. Never panics, whatever the bytes.
pub fn decode(bytes: &[u8]) -> Result<DeviceMessage, RecordError> {
    let mut r = Cursor { bytes, at: 0 };
    let version = r.u8()?;
    if version != VERSION {
        return Err(RecordError::Version(version));
    }
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
        Some(decode_fix(&mut r, flags)?)
    } else {
        None
    };
    let attributes = decode_attributes(&mut r)?;
    if r.at != bytes.len() {
        return Err(RecordError::Trailing(bytes.len() - r.at));
    }
    Ok(DeviceMessage {
        device,
        protocol,
        record: Record {
            time_ms,
            kind,
            fix,
            archived: flags & ARCHIVED != 0,
            attributes,
        },
    })
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

fn flags(record: &Record) -> u8 {
    let mut flags = if record.archived { ARCHIVED } else { 0 };
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

fn decode_fix(r: &mut Cursor<'_>, flags: u8) -> Result<Fix, RecordError> {
    Ok(Fix {
        lat: r.f64()?,
        lon: r.f64()?,
        speed_kmh: r.f64()?,
        course_deg: r.f64()?,
        altitude_m: if flags & ALTITUDE != 0 {
            Some(r.f64()?)
        } else {
            None
        },
        satellites: if flags & SATELLITES != 0 {
            Some(r.u8()?)
        } else {
            None
        },
        valid: flags & VALID != 0,
    })
}

fn put_str8(out: &mut Vec<u8>, s: &str, what: &'static str) -> Result<(), RecordError> {
    let len = u8::try_from(s.len()).map_err(|_| RecordError::TooLong(what))?;
    out.push(len);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_attributes(out: &mut Vec<u8>, attributes: &Attributes) -> Result<(), RecordError> {
    let count =
        u16::try_from(attributes.len()).map_err(|_| RecordError::TooLong("attribute count"))?;
    out.extend_from_slice(&count.to_le_bytes());
    for (name, value) in attributes.iter() {
        put_str8(out, name, "attribute name")?;
        match value {
            Value::Bool(b) => out.extend_from_slice(&[0, u8::from(*b)]),
            Value::Int(i) => {
                out.push(1);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Float(f) => {
                out.push(2);
                out.extend_from_slice(&f.to_le_bytes());
            }
            Value::Text(text) => {
                out.push(3);
                let len = u32::try_from(text.len())
                    .map_err(|_| RecordError::TooLong("attribute text"))?;
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
    Ok(())
}

fn decode_attributes(r: &mut Cursor<'_>) -> Result<Attributes, RecordError> {
    let count = r.u16()?;
    let mut attributes = Attributes::with_capacity(usize::from(count));
    // Which well-known names were read: a repeat of one is found without
    // a search. Other names are searched for.
    const _: () = assert!(attr::ALL.len() <= 64, "one bit per well-known name");
    let mut known = 0u64;
    for _ in 0..count {
        let name = r.str8()?;
        let value = decode_value(r)?;
        match attr::Known::of(name) {
            Some(slot) => {
                let bit = 1u64 << slot as u32;
                if known & bit != 0 {
                    return Err(RecordError::Repeated(name.to_owned()));
                }
                known |= bit;
                attributes.push_known(slot, value);
            }
            None if attributes.get(name).is_some() => {
                return Err(RecordError::Repeated(name.to_owned()));
            }
            None => attributes.push_new(Cow::Owned(name.to_owned()), value),
        }
    }
    Ok(attributes)
}

fn decode_value(r: &mut Cursor<'_>) -> Result<Value, RecordError> {
    Ok(match r.u8()? {
        0 => Value::Bool(r.u8()? != 0),
        1 => Value::Int(r.i64()?),
        2 => Value::Float(r.f64()?),
        3 => {
            let len = r.u32()? as usize;
            Value::Text(r.text(len)?.to_owned())
        }
        tag => {
            return Err(RecordError::Unknown {
                what: "attribute type",
                value: tag.to_string(),
            });
        }
    })
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
        let bytes = encode(&sample()).unwrap();
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

    #[test]
    fn other_names_round_trip_and_a_repeated_name_is_an_error() {
        let mut message = sample();
        message.record.attributes.set(attr::ODOMETER, 12_000i64);
        message.record.attributes.set("io1", 1i64);
        message.record.attributes.set("io2", 2i64);
        let bytes = encode(&message).unwrap();
        assert_eq!(decode(&bytes).unwrap(), message);

        let renamed = |from: &[u8], to: &[u8]| {
            let mut bytes = bytes.clone();
            let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
            bytes[at..at + to.len()].copy_from_slice(to);
            decode(&bytes)
        };
        assert_eq!(
            renamed(b"odometer", b"ignition"),
            Err(RecordError::Repeated("ignition".into()))
        );
        assert_eq!(
            renamed(b"io2", b"io1"),
            Err(RecordError::Repeated("io1".into()))
        );
    }

    #[test]
    fn unknown_version_and_protocol_are_named() {
        let mut bytes = encode(&sample()).unwrap();
        bytes[0] = 9;
        assert_eq!(decode(&bytes), Err(RecordError::Version(9)));

        let mut message = sample();
        message.protocol = "acme";
        let bytes = encode(&message).unwrap();
        assert!(matches!(
            decode(&bytes),
            Err(RecordError::Unknown {
                what: "protocol",
                ..
            })
        ));
    }
}
