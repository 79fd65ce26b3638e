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

use std::io;

use crc::{CRC_32_ISCSI, Crc};

use super::storage::{ReadFile, Storage};

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

/// Bytes a [`SegmentReader`] reads at a time. A record larger than this is
/// read whole, so a reader holds at most this or one record.
pub(crate) const READ_CHUNK: usize = 1024 * 1024;

/// Reads a segment's records front to back through a bounded buffer, so that
/// neither recovery nor a replaying sink holds a whole segment (64 MiB by
/// default) in memory.
pub(crate) struct SegmentReader {
    file: Box<dyn ReadFile>,
    /// The file's length when opened. The active segment grows behind a
    /// reader, but only with records past those committed when it started.
    len: u64,
    /// File bytes from `buf_offset` on.
    buf: Vec<u8>,
    buf_offset: u64,
    /// Where the next record starts in `buf`.
    pos: usize,
}

impl SegmentReader {
    pub(crate) fn open(storage: &dyn Storage, name: &str) -> io::Result<Self> {
        let mut file = storage.open_read(name)?;
        let len = file.size()?;
        Ok(SegmentReader {
            file,
            len,
            buf: Vec::new(),
            buf_offset: 0,
            pos: 0,
        })
    }

    /// The file length when it was opened.
    pub(crate) fn file_len(&self) -> u64 {
        self.len
    }

    /// Byte offset of the next record.
    pub(crate) fn offset(&self) -> u64 {
        self.buf_offset + self.pos as u64
    }

    /// Moves to `offset`, where a record starts (the caller knows it: a
    /// reader was there before). Past the end of the file, stays put.
    pub(crate) fn seek(&mut self, offset: u64) -> bool {
        if offset > self.len {
            return false;
        }
        self.buf.clear();
        self.buf_offset = offset;
        self.pos = 0;
        true
    }

    /// The next record's payload, or why the bytes at [`SegmentReader::offset`]
    /// are not a record (then the reader stays there).
    pub(crate) fn next_record(
        &mut self,
        max_record_bytes: u32,
    ) -> io::Result<Result<&[u8], Invalid>> {
        let rest = self.len - self.offset();
        if rest < HEADER_LEN as u64 {
            return Ok(Err(Invalid::Short));
        }
        self.fill(HEADER_LEN)?;
        let header = &self.buf[self.pos..self.pos + HEADER_LEN];
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if rest < framed_len(len as usize) {
            // A huge length is reported as short: at the tail it is a torn write.
            return Ok(Err(Invalid::Short));
        }
        if len == 0 || len > max_record_bytes {
            return Ok(Err(Invalid::BadLength(len)));
        }
        let framed = HEADER_LEN + len as usize;
        self.fill(framed)?;
        let start = self.pos + HEADER_LEN;
        let end = self.pos + framed;
        if CRC32C.checksum(&self.buf[start..end]) != crc {
            return Ok(Err(Invalid::Checksum));
        }
        self.pos = end;
        Ok(Ok(&self.buf[start..end]))
    }

    /// Whether the invalid record at [`SegmentReader::offset`] is a write cut
    /// short rather than damage: it reaches the end of the file, or nothing
    /// but zeroes follows (the file grew but its data never arrived).
    pub(crate) fn is_torn(&mut self, invalid: Invalid) -> io::Result<bool> {
        let reaches_the_end = match invalid {
            Invalid::Short => true,
            Invalid::Checksum => self.offset() + framed_len(self.declared_len()) == self.len,
            Invalid::BadLength(_) => false,
        };
        Ok(reaches_the_end || self.zeroes_to_the_end()?)
    }

    /// The length field at the current offset; only valid after
    /// [`SegmentReader::next_record`] read the header there.
    fn declared_len(&self) -> usize {
        match self.buf.get(self.pos..self.pos + 4) {
            Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize,
            None => 0,
        }
    }

    /// Whether the rest of the file is all zeroes; reads (and consumes) it a
    /// chunk at a time.
    fn zeroes_to_the_end(&mut self) -> io::Result<bool> {
        while self.offset() < self.len {
            let chunk = usize::try_from(self.len - self.offset())
                .map_or(READ_CHUNK, |left| left.min(READ_CHUNK));
            self.fill(chunk)?;
            if self.buf[self.pos..self.pos + chunk].iter().any(|&b| b != 0) {
                return Ok(false);
            }
            self.pos += chunk;
        }
        Ok(true)
    }

    /// Makes `need` bytes from the current offset available in `buf`
    /// (the caller checked that the file has them), reading at least a chunk.
    fn fill(&mut self, need: usize) -> io::Result<()> {
        if self.buf.len() - self.pos >= need {
            return Ok(());
        }
        self.buf.drain(..self.pos);
        self.buf_offset += self.pos as u64;
        self.pos = 0;
        let left = usize::try_from(self.len - self.buf_offset).unwrap_or(usize::MAX);
        let want = need.max(READ_CHUNK).min(left);
        if want <= READ_CHUNK {
            // Give back the memory of a record larger than a chunk.
            self.buf.shrink_to(READ_CHUNK);
        }
        let have = self.buf.len();
        // Exactly: growing by doubling would hold up to twice a large record.
        self.buf.reserve_exact(want - have);
        self.buf.resize(want, 0);
        let read = self
            .file
            .read_exact_at(self.buf_offset + have as u64, &mut self.buf[have..]);
        if read.is_err() {
            self.buf.truncate(have);
        }
        read
    }
}

#[cfg(test)]
mod tests {
    use super::super::storage::{FaultyStorage, Storage};
    use super::*;

    fn segment_of(payloads: &[Vec<u8>]) -> FaultyStorage {
        let storage = FaultyStorage::new();
        let mut data = Vec::new();
        for payload in payloads {
            encode(payload, &mut data);
        }
        let mut file = storage.create("s.seg").expect("create");
        file.write_all(&data).expect("write");
        storage
    }

    #[test]
    fn a_reader_holds_a_chunk_or_one_record_however_long_the_segment() {
        let small = |i: usize| vec![(i % 251) as u8 + 1; 40_000];
        let mut payloads: Vec<Vec<u8>> = (0..60).map(small).collect();
        payloads.insert(30, vec![7; READ_CHUNK + READ_CHUNK / 2]);
        let storage = segment_of(&payloads);
        let mut reader = SegmentReader::open(&storage, "s.seg").expect("open");
        let largest = framed_len(READ_CHUNK + READ_CHUNK / 2) as usize;
        for (i, expected) in payloads.iter().enumerate() {
            let payload = reader.next_record(1 << 24).expect("read");
            assert_eq!(payload.ok(), Some(expected.as_slice()), "record {i}");
            // Back to a chunk once past the large record.
            let bound = if i == 30 { largest } else { READ_CHUNK };
            assert!(
                reader.buf.capacity() <= bound,
                "record {i}: {}",
                reader.buf.capacity()
            );
        }
        assert_eq!(reader.offset(), reader.file_len());
        assert_eq!(
            reader.next_record(1 << 24).expect("read"),
            Err(Invalid::Short)
        );
    }

    #[test]
    fn damage_past_the_first_chunk_is_found_at_its_offset() {
        let payloads: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8 + 1; 50_000]).collect();
        let storage = segment_of(&payloads);
        let framed = framed_len(50_000);
        let damaged = 30 * framed + HEADER_LEN as u64 + 10;
        storage.modify("s.seg", |data| data[damaged as usize] ^= 1);
        let mut reader = SegmentReader::open(&storage, "s.seg").expect("open");
        for _ in 0..30 {
            assert!(reader.next_record(1 << 24).expect("read").is_ok());
        }
        assert_eq!(reader.offset(), 30 * framed);
        let invalid = reader.next_record(1 << 24).expect("read");
        assert_eq!(invalid, Err(Invalid::Checksum));
        assert_eq!(
            reader.offset(),
            30 * framed,
            "the reader stays at the bad record"
        );
        assert!(!reader.is_torn(Invalid::Checksum).expect("read"));
    }

    #[test]
    fn zeroes_longer_than_a_chunk_are_a_torn_tail_unless_data_follows() {
        for data_after in [false, true] {
            let storage = segment_of(&[b"kept".to_vec()]);
            storage.modify("s.seg", |data| {
                data.resize(data.len() + 2 * READ_CHUNK, 0);
                if data_after {
                    data.push(1);
                }
            });
            let mut reader = SegmentReader::open(&storage, "s.seg").expect("open");
            assert!(reader.next_record(1 << 24).expect("read").is_ok());
            let invalid = reader.next_record(1 << 24).expect("read");
            assert_eq!(invalid, Err(Invalid::BadLength(0)));
            assert_eq!(
                reader.is_torn(Invalid::BadLength(0)).expect("read"),
                !data_after
            );
        }
    }
}
