//! Segment files and record framing.
//!
//! A segment is named after the sequence number of its first record, zero-padded
//! to 20 digits so that names sort like numbers. Each record is framed as:
//!
//! ```text
//! +----------------+------------------------+-----------------+
//! | length: u32 LE | CRC-32C(payload): u32 LE | payload (length) |
//! +----------------+------------------------+-----------------+
//! ```
//!
//! Empty payloads are refused: a zero header checksums correctly (the CRC of
//! nothing is 0), so a run of zeroes left by a crash after the file grew would
//! otherwise decode as valid records.

use crc::{CRC_32_ISCSI, Crc};

/// CRC-32C (Castagnoli), the checksum of every payload.
pub(crate) const CRC32C: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

/// Bytes before the payload: length and checksum.
pub(crate) const HEADER_LEN: usize = 8;

/// File name extension of segments.
pub(crate) const EXTENSION: &str = ".seg";

/// The file name of the segment whose first record is `base`.
pub(crate) fn file_name(base: u64) -> String {
    format!("{base:020}{EXTENSION}")
}

/// The base sequence number of a segment file name, or `None` for other files.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(EXTENSION)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Appends the framed `payload` to `out`.
pub(crate) fn encode(payload: &[u8], out: &mut Vec<u8>) {
    // Callers bound payloads by `max_record_bytes` (a u32), so this cannot truncate.
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&CRC32C.checksum(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Bytes one record takes in a segment.
pub(crate) fn framed_len(payload_len: usize) -> u64 {
    (HEADER_LEN + payload_len) as u64
}

/// Why the bytes at some offset are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// The file ends inside the header or the payload.
    Short,
    /// The length field is zero or above the configured limit.
    BadLength(u32),
    /// The payload does not match its checksum.
    Checksum,
}

impl Invalid {
    pub(crate) fn describe(self) -> String {
        match self {
            Invalid::Short => "the file ends inside a record".to_owned(),
            Invalid::BadLength(len) => format!("invalid record length {len}"),
            Invalid::Checksum => "record checksum (CRC-32C) mismatch".to_owned(),
        }
    }
}

/// Decodes the record at `offset`: its payload range and the offset of the next record.
pub(crate) fn decode_at(
    buf: &[u8],
    offset: usize,
    max_record_bytes: u32,
) -> Result<(std::ops::Range<usize>, usize), Invalid> {
    let rest = &buf[offset.min(buf.len())..];
    if rest.len() < HEADER_LEN {
        return Err(Invalid::Short);
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if rest.len() < HEADER_LEN + len as usize {
        // A huge length is reported as short: at the tail it is a torn write.
        return Err(if len == 0 {
            Invalid::BadLength(len)
        } else {
            Invalid::Short
        });
    }
    if len == 0 || len > max_record_bytes {
        return Err(Invalid::BadLength(len));
    }
    let start = offset + HEADER_LEN;
    let end = start + len as usize;
    if CRC32C.checksum(&buf[start..end]) != crc {
        return Err(Invalid::Checksum);
    }
    Ok((start..end, end))
}
