//! Framing: start and stop bits, the length header, CRC-ITU, and reply frames.
//!
//! ```text
//! 0x7878 | len u8  | type u8 | content | serial u16 | crc u16 | 0x0D0A
//! 0x7979 | len u16 | type u8 | content | serial u16 | crc u16 | 0x0D0A
//! ```
//! `len` counts type..crc; the CRC (CRC-16/X-25) covers len..serial.

use crate::{Check, DecodeError};

pub(crate) const SHORT_START: [u8; 2] = [0x78, 0x78];
pub(crate) const LONG_START: [u8; 2] = [0x79, 0x79];
pub(crate) const STOP: [u8; 2] = [0x0d, 0x0a];

/// The longest frame a 16-bit length can declare.
pub const MAX_FRAME_LEN: usize = 4 + 0xffff + 2;

// Slice-by-16: every frame is checked, and the reply to most is CRC-ed too.
const X25: crc::Crc<u16, crc::Table<16>> =
    crc::Crc::<u16, crc::Table<16>>::new(&crc::CRC_16_IBM_SDLC);

/// CRC-ITU as GT06 devices compute it (CRC-16/X-25).
pub(crate) fn crc16(bytes: &[u8]) -> u16 {
    X25.checksum(bytes)
}

/// The fixed part at the front of every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// 0x7979 framing with a 16-bit length.
    pub extended: bool,
    /// The length field as sent (type..crc), which some devices misuse.
    pub length: usize,
    /// Message type (protocol number).
    pub kind: u8,
}

impl Header {
    pub(crate) fn parse(frame: &[u8]) -> Result<Header, DecodeError> {
        let truncated = DecodeError::Truncated {
            what: "GT06 header",
        };
        match frame {
            [0x78, 0x78, len, kind, ..] => Ok(Header {
                extended: false,
                length: usize::from(*len),
                kind: *kind,
            }),
            [0x79, 0x79, hi, lo, kind, ..] => Ok(Header {
                extended: true,
                length: usize::from(u16::from_be_bytes([*hi, *lo])),
                kind: *kind,
            }),
            [0x78, 0x78, ..] | [0x79, 0x79, ..] => Err(truncated),
            _ => Err(DecodeError::Invalid {
                what: "GT06 start bits",
            }),
        }
    }

    /// Bytes before the type field: start bits and length.
    pub(crate) fn prefix_len(&self) -> usize {
        if self.extended { 4 } else { 3 }
    }

    /// The whole frame length the header announces, stop bits included.
    pub(crate) fn declared_total(&self) -> usize {
        self.prefix_len() + self.length + STOP.len()
    }
}

/// Says whether `buf` starts with a whole frame (see [`crate::Session::check`]).
pub(crate) fn check(buf: &[u8]) -> Check {
    let start = match buf.get(..2) {
        None if buf.first().is_none_or(|b| is_start_byte(*b)) => return Check::Incomplete(None),
        None => return Check::Garbage(1),
        Some(start) => start,
    };
    if start != SHORT_START && start != LONG_START {
        return Check::Garbage(garbage_len(buf));
    }
    let Some((prefix_len, total)) = declared(buf) else {
        return Check::Incomplete(None);
    };
    if buf.get(total.saturating_sub(STOP.len())..total) == Some(&STOP[..]) {
        return Check::Frame(total);
    }
    // Some devices put a count, not a length, in the length field (Wi-Fi
    // reports), or send fewer bytes than they declare. Like Traccar, end the
    // frame at the stop bits then; unlike Traccar, only at stop bits that are
    // followed by the next frame or by the end of what has arrived, so that
    // 0x0D0A inside the data does not cut a frame short.
    if let Some(end) = boundary_stop(buf, prefix_len) {
        return Check::Frame(end);
    }
    if buf.len() < total {
        Check::Incomplete(Some(total))
    } else if buf.len() >= MAX_FRAME_LEN {
        Check::Garbage(SHORT_START.len())
    } else {
        Check::Incomplete(None)
    }
}

/// Prefix length and declared total of a frame, once its length field is in.
fn declared(buf: &[u8]) -> Option<(usize, usize)> {
    match buf {
        [0x78, 0x78, len, ..] => Some((3, 3 + usize::from(*len) + STOP.len())),
        [0x79, 0x79, hi, lo, ..] => Some((
            4,
            4 + usize::from(u16::from_be_bytes([*hi, *lo])) + STOP.len(),
        )),
        _ => None,
    }
}

fn is_start_byte(b: u8) -> bool {
    b == SHORT_START[0] || b == LONG_START[0]
}

/// How many leading bytes cannot begin a frame: up to the next start bits,
/// keeping a last byte that may be the first half of them.
fn garbage_len(buf: &[u8]) -> usize {
    (1..buf.len())
        .find(|&i| match buf.get(i..i + 2) {
            Some(pair) => pair == SHORT_START || pair == LONG_START,
            None => buf.get(i).is_some_and(|b| is_start_byte(*b)),
        })
        .unwrap_or(buf.len())
}

/// The end (exclusive) of the first stop bits at or after `from` that are
/// followed by nothing or by (the beginning of) start bits.
fn boundary_stop(buf: &[u8], from: usize) -> Option<usize> {
    let tail = buf.get(from..)?;
    let mut ends = tail
        .windows(2)
        .enumerate()
        .filter(|(_, w)| *w == STOP)
        .map(|(i, _)| from + i + 2);
    ends.find(|&end| match buf.get(end..) {
        None | Some([]) => true,
        Some([b]) => is_start_byte(*b),
        Some([a, b, ..]) => [*a, *b] == SHORT_START || [*a, *b] == LONG_START,
    })
}

/// Checks the CRC where the length field says it is.
///
/// When the frame is shorter than declared (some captures lose the stop
/// bits), the CRC is taken from the end of the frame instead.
pub(crate) fn verify_crc(frame: &[u8], header: &Header) -> Result<(), DecodeError> {
    let total = header.declared_total();
    let at = if total - STOP.len() <= frame.len() {
        total - 4
    } else {
        frame.len().saturating_sub(4)
    };
    let expected = frame
        .get(at..at + 2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let actual = frame.get(2..at).map(crc16);
    match actual {
        Some(actual) if actual == expected && at >= header.prefix_len() => Ok(()),
        _ => Err(DecodeError::BadChecksum {
            expected: u32::from(expected),
            actual: u32::from(actual.unwrap_or(0)),
        }),
    }
}

/// Appends a reply frame: header, `kind`, `content`, `serial`, CRC, stop bits.
pub(crate) fn write_reply(
    out: &mut Vec<u8>,
    extended: bool,
    kind: u8,
    content: &[u8],
    serial: u16,
) {
    if !extended && content.is_empty() {
        return write_ack(out, kind, serial);
    }
    let start = out.len();
    let length = 5 + content.len();
    if extended {
        out.extend_from_slice(&LONG_START);
        out.extend_from_slice(&u16::try_from(length).unwrap_or(u16::MAX).to_be_bytes());
    } else {
        out.extend_from_slice(&SHORT_START);
        out.push(u8::try_from(length).unwrap_or(u8::MAX));
    }
    out.push(kind);
    out.extend_from_slice(content);
    out.extend_from_slice(&serial.to_be_bytes());
    let crc = crc16(out.get(start + 2..).unwrap_or_default());
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(&STOP);
}

/// [`write_reply`] without content: the reply to nearly every frame, built
/// on the stack and appended at once.
fn write_ack(out: &mut Vec<u8>, kind: u8, serial: u16) {
    let [s0, s1] = serial.to_be_bytes();
    let mut ack = [
        SHORT_START[0],
        SHORT_START[1],
        5,
        kind,
        s0,
        s1,
        0,
        0,
        STOP[0],
        STOP[1],
    ];
    let [c0, c1] = crc16(&ack[2..6]).to_be_bytes();
    ack[6] = c0;
    ack[7] = c1;
    out.extend_from_slice(&ack);
}

// invariant: test code (cfg(test) only): the unwraps and expects below never see device input.
#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN: &str = "78780d01086471700328358100093f040d0a";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn a_whole_frame_is_found() {
        let login = hex(LOGIN);
        assert_eq!(check(&login), Check::Frame(login.len()));
        let mut two = login.clone();
        two.extend_from_slice(&login);
        assert_eq!(check(&two), Check::Frame(login.len()));
    }

    #[test]
    fn a_frame_split_across_reads_waits_with_its_declared_length() {
        let login = hex(LOGIN);
        assert_eq!(check(&[]), Check::Incomplete(None));
        assert_eq!(check(&login[..1]), Check::Incomplete(None));
        assert_eq!(check(&login[..2]), Check::Incomplete(None));
        for cut in 3..login.len() {
            assert_eq!(
                check(&login[..cut]),
                Check::Incomplete(Some(login.len())),
                "cut {cut}"
            );
        }
        let long = hex("79790008940b02e3048614200d0a");
        assert_eq!(check(&long[..3]), Check::Incomplete(None));
        assert_eq!(check(&long[..4]), Check::Incomplete(Some(long.len())));
    }

    #[test]
    fn garbage_before_a_frame_is_skipped_up_to_the_start_bits() {
        let mut buf = vec![0x00, 0x78, 0x0d, 0x0a, 0x79];
        buf.extend_from_slice(&hex(LOGIN));
        assert_eq!(check(&buf), Check::Garbage(5));
        assert_eq!(check(&buf[5..]), Check::Frame(buf.len() - 5));
        assert_eq!(check(&[0x01, 0x02, 0x03]), Check::Garbage(3));
        assert_eq!(check(&[0x01, 0x02, 0x78]), Check::Garbage(2));
        assert_eq!(check(&[0x01]), Check::Garbage(1));
        assert_eq!(check(&[0x78, 0x79]), Check::Garbage(1));
    }

    #[test]
    fn an_oversized_declared_length_is_reported_before_the_bytes_arrive() {
        let buf = [0x79, 0x79, 0xff, 0xff, 0x94, 0x00];
        assert_eq!(check(&buf), Check::Incomplete(Some(MAX_FRAME_LEN)));
        let buf = [0x78, 0x78, 0xff, 0x13, 0x00];
        assert_eq!(check(&buf), Check::Incomplete(Some(0xff + 5)));
    }

    #[test]
    fn a_lying_length_falls_back_to_the_stop_bits() {
        let wifi = hex("787800171710231108290200cc080c4e2fa5640c4e2fa5640d0a");
        assert_eq!(check(&wifi), Check::Frame(wifi.len()));
        assert_eq!(check(&wifi[..wifi.len() - 1]), Check::Incomplete(None));
    }

    #[test]
    fn stop_bits_inside_the_data_do_not_end_a_frame() {
        let serial = hex("797900109b0344373532304136320d0a000f87f00d0a");
        assert_eq!(check(&serial), Check::Frame(serial.len()));
        assert_eq!(check(&serial[..18]), Check::Incomplete(Some(serial.len())));
        let short_login = hex("78780d0103563140414198583c0d0a");
        assert_eq!(check(&short_login), Check::Frame(short_login.len()));
        let mut then_next = short_login.clone();
        then_next.extend_from_slice(&hex(LOGIN));
        assert_eq!(check(&then_next), Check::Frame(short_login.len()));
    }

    #[test]
    fn endless_bytes_without_stop_bits_are_dropped_eventually() {
        let mut buf = vec![0x78, 0x78, 0x00, 0x69];
        buf.resize(MAX_FRAME_LEN, 0x55);
        assert_eq!(check(&buf), Check::Garbage(2));
    }

    #[test]
    fn crc_is_checked_where_the_header_puts_it() {
        let login = hex(LOGIN);
        let header = Header::parse(&login).unwrap();
        assert_eq!(verify_crc(&login, &header), Ok(()));
        let mut bad = login.clone();
        bad[5] ^= 1;
        assert!(matches!(
            verify_crc(&bad, &header),
            Err(DecodeError::BadChecksum { .. })
        ));
    }

    #[test]
    fn replies_carry_length_serial_and_crc() {
        let mut out = Vec::new();
        write_reply(&mut out, false, 0x01, &[], 0x0001);
        assert_eq!(out, hex("787805010001d9dc0d0a"));
        out.clear();
        write_reply(&mut out, true, 0x01, &[], 0x0001);
        assert_eq!(&out[..7], &hex("79790005010001")[..]);
        assert_eq!(crc16(&out[2..7]).to_be_bytes(), out[7..9]);
    }
}
