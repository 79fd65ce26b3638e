//! A bounds-checked cursor over device bytes: every read returns
//! [`DecodeError::Truncated`] naming what was being read instead of
//! panicking, so decoders can follow the device's own length fields without
//! trusting them.

use crate::DecodeError;

type Result<T> = std::result::Result<T, DecodeError>;

/// Big-endian reads (unless a name says otherwise) from a byte slice,
/// advancing a position.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader::at(buf, 0)
    }

    /// A reader starting `pos` bytes into `buf`, for layouts whose offsets
    /// are counted from the start of the whole frame.
    pub(crate) fn at(buf: &'a [u8], pos: usize) -> Self {
        Reader { buf, pos }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The bytes between two positions this reader has passed.
    pub(crate) fn since(&self, start: usize) -> &'a [u8] {
        self.buf.get(start..self.pos).unwrap_or_default()
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(DecodeError::Truncated { what })?;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or(DecodeError::Truncated { what })?;
        self.pos = end;
        Ok(bytes)
    }

    /// The bytes from here up to `tail` bytes before the end, for layouts
    /// written relative to the end ("the last six bytes are serial, CRC and
    /// stop bits").
    pub(crate) fn take_before_tail(&mut self, tail: usize, what: &'static str) -> Result<&'a [u8]> {
        let n = self
            .remaining()
            .checked_sub(tail)
            .ok_or(DecodeError::Truncated { what })?;
        self.take(n, what)
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let bytes = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        bytes
    }

    pub(crate) fn skip(&mut self, n: usize, what: &'static str) -> Result<()> {
        self.take(n, what).map(drop)
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let bytes = self.take(N, what)?;
        <[u8; N]>::try_from(bytes).map_err(|_| DecodeError::Truncated { what })
    }

    pub(crate) fn peek_u8(&self, what: &'static str) -> Result<u8> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::Truncated { what })
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(u8::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i8(&mut self, what: &'static str) -> Result<i8> {
        Ok(i8::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i16(&mut self, what: &'static str) -> Result<i16> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u24(&mut self, what: &'static str) -> Result<u32> {
        let [a, b, c] = self.array(what)?;
        Ok(u32::from_be_bytes([0, a, b, c]))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u32_le(&mut self, what: &'static str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn f32(&mut self, what: &'static str) -> Result<f32> {
        Ok(f32::from_be_bytes(self.array(what)?))
    }

    /// One byte, or two when the codec widens the field.
    pub(crate) fn u8_or_u16(&mut self, wide: bool, what: &'static str) -> Result<u16> {
        if wide {
            self.u16(what)
        } else {
            self.u8(what).map(u16::from)
        }
    }
}

/// The big-endian `u16` at an absolute index of `buf`.
pub(crate) fn u16_at(buf: &[u8], at: usize, what: &'static str) -> Result<u16> {
    Reader::at(buf, at).u16(what)
}

// invariant: test code (cfg(test) only): the unwraps and expects below never see device input.
#[cfg(test)]
mod tests {
    use super::*;

    fn truncated(what: &'static str) -> Result<u8> {
        Err(DecodeError::Truncated { what })
    }

    #[test]
    fn reads_past_the_end_are_errors_naming_the_field_not_panics() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16("a"), Ok(0x0102));
        assert_eq!(r.u16("b"), Err(DecodeError::Truncated { what: "b" }));
        assert_eq!(r.u8("c"), Ok(3));
        assert!(r.is_empty());
        assert_eq!(r.u8("d"), truncated("d"));
        assert_eq!(r.peek_u8("e"), truncated("e"));
        assert_eq!(
            r.take(usize::MAX, "f"),
            Err(DecodeError::Truncated { what: "f" })
        );
        assert_eq!(
            r.skip(usize::MAX, "g"),
            Err(DecodeError::Truncated { what: "g" })
        );
        assert_eq!(
            r.take_before_tail(1, "h"),
            Err(DecodeError::Truncated { what: "h" })
        );
        assert_eq!(Reader::at(&[], 5).remaining(), 0);
        assert_eq!(Reader::at(&[], 5).rest(), &[] as &[u8]);
        assert_eq!(
            u16_at(&[1, 2, 3], 2, "i"),
            Err(DecodeError::Truncated { what: "i" })
        );
    }

    #[test]
    fn multi_byte_reads_are_big_endian_unless_named() {
        let bytes = [0xff, 0xfe, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06];
        assert_eq!(Reader::at(&bytes, 0).i16("x"), Ok(-2));
        assert_eq!(Reader::at(&bytes, 2).u24("x"), Ok(0x010203));
        assert_eq!(Reader::at(&bytes, 2).u32_le("x"), Ok(0x04030201));
        assert_eq!(
            Reader::at(&bytes, 0).i64("x"),
            Ok(0xfffe_0102_0304_0506_u64 as i64)
        );
        assert_eq!(Reader::new(&bytes).u8_or_u16(true, "x"), Ok(0xfffe));
        assert_eq!(Reader::new(&bytes).u8_or_u16(false, "x"), Ok(0xff));
    }

    #[test]
    fn since_and_rest_cover_what_was_and_is_left() {
        let bytes = [1, 2, 3, 4];
        let mut r = Reader::new(&bytes);
        r.skip(1, "x").unwrap();
        let start = r.pos();
        r.take(2, "x").unwrap();
        assert_eq!(r.since(start), &[2, 3]);
        assert_eq!(r.rest(), &[4]);
        assert!(r.is_empty());
    }
}
