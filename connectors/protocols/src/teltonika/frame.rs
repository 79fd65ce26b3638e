//! TCP framing: where a frame ends, and the checks on its envelope (preamble,
//! declared length, CRC) before its content is read.

use crc::{CRC_16_ARC, Crc};

use crate::wire::reader::Reader;
use crate::{Check, DecodeError};

/// CRC-16/IBM, which Teltonika's documentation calls CRC-16/ARC's table.
const CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_ARC);

/// A single 0xFF byte is a keep-alive some firmware sends between packets.
pub(crate) const PING: u8 = 0xff;

/// Longest IMEI frame accepted as one: IMEIs are 15 digits, so a larger
/// declared length means we are not looking at a handshake.
const MAX_IMEI_LEN: usize = 32;

/// Longest AVL data field taken for a frame. Devices send at most a few
/// kilobytes (camera chunks); a declared megabyte is line noise.
pub(crate) const MAX_DATA_LEN: usize = 1 << 20;

/// Preamble, data length, and the CRC after the data.
const AVL_OVERHEAD: usize = 12;

pub(crate) fn crc16(data: &[u8]) -> u16 {
    CRC16.checksum(data)
}

pub(crate) fn check(buf: &[u8]) -> Check {
    match (buf.first(), buf.get(1)) {
        (None, _) => Check::Incomplete(None),
        (Some(&PING), _) => Check::Frame(1),
        (Some(&0), None) => Check::Incomplete(None),
        (Some(&0), Some(&0)) => check_avl(buf),
        (Some(&0), Some(&len)) => check_imei(buf, usize::from(len)),
        (Some(_), _) => Check::Garbage(garbage_len(buf)),
    }
}

/// Skips to the next byte that could start a frame.
fn garbage_len(buf: &[u8]) -> usize {
    buf.iter()
        .skip(1)
        .position(|&b| b == 0 || b == PING)
        .map_or(buf.len(), |at| at + 1)
}

fn check_imei(buf: &[u8], len: usize) -> Check {
    if len > MAX_IMEI_LEN {
        return Check::Garbage(1);
    }
    whole(buf, 2 + len)
}

fn check_avl(buf: &[u8]) -> Check {
    if buf.iter().take(4).any(|&b| b != 0) {
        return Check::Garbage(1);
    }
    let Some(len) = buf.get(4..8).and_then(|b| <[u8; 4]>::try_from(b).ok()) else {
        return Check::Incomplete(None);
    };
    match usize::try_from(u32::from_be_bytes(len)) {
        Ok(len) if len <= MAX_DATA_LEN => whole(buf, AVL_OVERHEAD + len),
        _ => Check::Garbage(1),
    }
}

fn whole(buf: &[u8], total: usize) -> Check {
    if buf.len() >= total {
        Check::Frame(total)
    } else {
        Check::Incomplete(Some(total))
    }
}

/// What a whole frame (as cut by [`check`]) is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    Ping,
    /// The handshake: the IMEI bytes, not yet validated.
    Login(&'a [u8]),
    /// An AVL packet's data field (codec id to second record count), with
    /// its envelope checked.
    Data(&'a [u8]),
}

pub(crate) fn parse(frame: &[u8], accept_bad_checksum: bool) -> Result<Frame<'_>, DecodeError> {
    if frame == [PING] {
        return Ok(Frame::Ping);
    }
    let mut r = Reader::new(frame);
    match r.u16("frame header")? {
        0 => data_field(r, accept_bad_checksum).map(Frame::Data),
        len => login(r, usize::from(len)).map(Frame::Login),
    }
}

fn login(mut r: Reader<'_>, len: usize) -> Result<&[u8], DecodeError> {
    let imei = r.take(len, "imei")?;
    if !r.is_empty() {
        return Err(DecodeError::Invalid {
            what: "imei length",
        });
    }
    Ok(imei)
}

/// Checks the envelope after the first two preamble bytes.
///
/// Devices known to send bad checksums get more slack: Traccar's vectors
/// from such devices include a zero data length and frames cut short inside
/// their CRC. That mode takes the declared length when the frame holds it,
/// and otherwise everything before the last four bytes.
fn data_field(mut r: Reader<'_>, accept_bad: bool) -> Result<&[u8], DecodeError> {
    if r.u16("preamble")? != 0 {
        return Err(DecodeError::Invalid { what: "preamble" });
    }
    let declared = usize::try_from(r.u32("data length")?).unwrap_or(usize::MAX);
    let body = r.rest();
    let (data, crc) = match body.split_at_checked(declared) {
        Some((data, crc)) if crc.len() == 4 => (data, crc),
        Some((data, crc)) if accept_bad && declared > 0 => (data, crc),
        _ if accept_bad => body
            .split_at_checked(body.len().saturating_sub(4))
            .ok_or(DecodeError::Truncated { what: "crc" })?,
        Some(_) => {
            return Err(DecodeError::Invalid {
                what: "data length",
            });
        }
        None => return Err(DecodeError::Truncated { what: "data" }),
    };
    let actual = u32::from(crc16(data));
    match Reader::new(crc).u32("crc") {
        Ok(expected) if expected == actual => Ok(data),
        _ if accept_bad => Ok(data),
        Ok(expected) => Err(DecodeError::BadChecksum { expected, actual }),
        Err(e) => Err(e),
    }
}

/// Wraps a data field in the TCP envelope: preamble, length, data, CRC.
pub(crate) fn envelope(data: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(data.len() + AVL_OVERHEAD);
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
    frame.extend_from_slice(data);
    frame.extend_from_slice(&u32::from(crc16(data)).to_be_bytes());
    frame
}

// invariant: test code (cfg(test) only): the unwraps and expects below never see device input.
#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN: &str = "000f333536333037303432343431303133";
    const CODEC8: &str = "000000000000002808010000016b40d9ad80010000000000000000000000000000000103021503010101425e100000010000f22a";

    fn bytes(hex: &str) -> Vec<u8> {
        hex::decode(hex).unwrap()
    }

    /// Feeds the stream a byte at a time, as a slow socket would.
    fn frames_of(stream: &[u8]) -> Vec<Vec<u8>> {
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        for &b in stream {
            buf.push(b);
            while let Check::Frame(n) = check(&buf) {
                frames.push(buf.drain(..n).collect());
            }
        }
        assert!(buf.is_empty(), "left over: {buf:02x?}");
        frames
    }

    #[test]
    fn splits_a_stream_read_a_byte_at_a_time() {
        let stream = [bytes(LOGIN), vec![PING], bytes(CODEC8), bytes(CODEC8)].concat();
        let frames = frames_of(&stream);
        assert_eq!(
            frames,
            vec![bytes(LOGIN), vec![PING], bytes(CODEC8), bytes(CODEC8)]
        );
    }

    #[test]
    fn declares_the_frame_length_once_the_header_is_in() {
        let frame = bytes(CODEC8);
        assert_eq!(check(&frame[..7]), Check::Incomplete(None));
        assert_eq!(check(&frame[..8]), Check::Incomplete(Some(frame.len())));
        assert_eq!(
            check(&frame[..frame.len() - 1]),
            Check::Incomplete(Some(frame.len()))
        );
        assert_eq!(check(&bytes(LOGIN)[..2]), Check::Incomplete(Some(17)));
    }

    #[test]
    fn skips_garbage_up_to_a_possible_frame_start() {
        assert_eq!(check(b"GET / HTTP/1.1\r\n\0"), Check::Garbage(16));
        assert_eq!(check(b"abc"), Check::Garbage(3));
        // A broken preamble is not a frame.
        assert_eq!(check(&[0, 0, 0, 7, 0, 0, 0, 1]), Check::Garbage(1));
        assert_eq!(check(&[0, 0, 7]), Check::Garbage(1));
        // Too long for an IMEI.
        assert_eq!(check(&[0, 0x40, b'1']), Check::Garbage(1));
    }

    #[test]
    fn refuses_an_oversized_declared_length_without_waiting() {
        assert_eq!(
            check(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
            Check::Garbage(1)
        );
        let big = u32::try_from(MAX_DATA_LEN).unwrap().to_be_bytes();
        let header = [[0, 0, 0, 0], big].concat();
        assert_eq!(check(&header), Check::Incomplete(Some(MAX_DATA_LEN + 12)));
    }

    #[test]
    fn checks_the_envelope() {
        let frame = bytes(CODEC8);
        assert!(matches!(parse(&frame, false), Ok(Frame::Data(d)) if d.len() == 40));
        let mut bad_crc = frame.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        assert_eq!(
            parse(&bad_crc, false),
            Err(DecodeError::BadChecksum {
                expected: 0xf22b,
                actual: 0xf22a
            })
        );
        assert!(matches!(parse(&bad_crc, true), Ok(Frame::Data(_))));
        let mut bad_len = frame.clone();
        bad_len[7] += 5;
        assert_eq!(
            parse(&bad_len, false),
            Err(DecodeError::Truncated { what: "data" })
        );
        bad_len[7] -= 6;
        assert_eq!(
            parse(&bad_len, false),
            Err(DecodeError::Invalid {
                what: "data length"
            })
        );
        assert_eq!(
            parse(&frame[..10], false),
            Err(DecodeError::Truncated { what: "data" })
        );
        assert!(
            matches!(parse(&frame[..frame.len() - 2], true), Ok(Frame::Data(d)) if d.len() == 40)
        );
        assert_eq!(
            parse(&[0], false),
            Err(DecodeError::Truncated {
                what: "frame header"
            })
        );
        assert_eq!(parse(&[PING], false), Ok(Frame::Ping));
    }

    #[test]
    fn a_login_must_be_exactly_its_declared_length() {
        let login = bytes(LOGIN);
        assert_eq!(parse(&login, false), Ok(Frame::Login(b"356307042441013")));
        assert_eq!(
            parse(&login[..10], false),
            Err(DecodeError::Truncated { what: "imei" })
        );
        let longer = [login.clone(), vec![b'1']].concat();
        assert_eq!(
            parse(&longer, false),
            Err(DecodeError::Invalid {
                what: "imei length"
            })
        );
    }

    #[test]
    fn the_envelope_round_trips() {
        let frame = bytes(CODEC8);
        assert_eq!(envelope(&frame[8..frame.len() - 4]), frame);
    }
}
