//! A bounds-checked cursor over one frame.
//!
//! Every read returns [`DecodeError::Truncated`] instead of panicking, so the
//! decoders can follow the device's own length fields without trusting them.

use crate::DecodeError;

const TRUNCATED: DecodeError = DecodeError::Truncated { what: "GT06 frame" };

/// Big-endian reads from a byte slice, advancing a position.
///
/// `remaining` counts up to the end of the whole frame (serial number, CRC and
/// stop bits included), because the layout rules of the protocol are written
/// relative to that end: "the last six bytes are serial, CRC and stop bits".
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], pos: usize) -> Self {
        Reader { buf, pos }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(TRUNCATED)?;
        let out = self.buf.get(self.pos..end).ok_or(TRUNCATED)?;
        self.pos = end;
        Ok(out)
    }

    /// The bytes from here up to `tail` bytes before the end of the frame.
    pub(crate) fn bytes_before_tail(&mut self, tail: usize) -> Result<&'a [u8], DecodeError> {
        let n = self.remaining().checked_sub(tail).ok_or(TRUNCATED)?;
        self.bytes(n)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.bytes(n).map(drop)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn i8(&mut self) -> Result<i8, DecodeError> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u24(&mut self) -> Result<u32, DecodeError> {
        let [a, b, c] = self.array()?;
        Ok(u32::from_be_bytes([0, a, b, c]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32_le(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub(crate) fn peek_u8(&self) -> Result<u8, DecodeError> {
        self.buf.get(self.pos).copied().ok_or(TRUNCATED)
    }
}

/// The big-endian `u16` at an absolute index of `buf`.
pub(crate) fn u16_at(buf: &[u8], at: usize) -> Result<u16, DecodeError> {
    Reader::new(buf, at).u16()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_end_are_errors_not_panics() {
        let mut r = Reader::new(&[1, 2, 3], 0);
        assert_eq!(r.u16(), Ok(0x0102));
        assert_eq!(r.u16(), Err(TRUNCATED));
        assert_eq!(r.u8(), Ok(3));
        assert_eq!(r.u8(), Err(TRUNCATED));
        assert_eq!(r.skip(usize::MAX), Err(TRUNCATED));
        assert_eq!(r.bytes_before_tail(1), Err(TRUNCATED));
        assert_eq!(Reader::new(&[], 5).remaining(), 0);
    }

    #[test]
    fn multi_byte_reads_are_big_endian_unless_named() {
        let bytes = [0xff, 0xfe, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06];
        assert_eq!(Reader::new(&bytes, 0).i16(), Ok(-2));
        assert_eq!(Reader::new(&bytes, 2).u24(), Ok(0x010203));
        assert_eq!(Reader::new(&bytes, 2).u32_le(), Ok(0x04030201));
        assert_eq!(
            Reader::new(&bytes, 0).i64(),
            Ok(0xfffe_0102_0304_0506_u64 as i64)
        );
    }
}
