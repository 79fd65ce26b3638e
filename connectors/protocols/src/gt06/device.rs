//! Frames a GT06 *device* sends, for the simulator, benchmarks and tests.

use crate::command::Command;
use crate::model::{Record, attr};
use crate::wire::reader::Reader;
use crate::wire::text::ascii;

use super::calendar::Civil;
use super::command::from_text;
use super::frame::{self, Header, STOP};
use super::types::{COMMAND_0, GPS_LBS_2, LOGIN, STATUS, STRING};

/// Wraps `body` (type and content) into a 0x7878 frame with serial and CRC.
fn short_frame(body: &[u8], serial: u16) -> Vec<u8> {
    let (kind, content) = body.split_first().map_or((0, &[][..]), |(k, c)| (*k, c));
    let mut out = Vec::with_capacity(body.len() + 9);
    frame::write_reply(&mut out, false, kind, content, serial);
    out
}

/// A login (0x01) with the IMEI as 16 BCD digits (a leading zero, then 15).
pub fn login(imei: &str, serial: u16) -> Vec<u8> {
    let digits: Vec<u8> = imei
        .chars()
        .filter_map(|c| c.to_digit(16))
        .map(|d| d as u8)
        .collect();
    let mut nibbles = [0u8; 16];
    let take = digits.len().min(16);
    nibbles[16 - take..].copy_from_slice(&digits[digits.len() - take..]);
    let mut body = [0u8; 9];
    body[0] = LOGIN;
    for (i, pair) in nibbles.chunks(2).enumerate() {
        body[1 + i] = pair[0] << 4 | pair[1];
    }
    short_frame(&body, serial)
}

/// A status frame (0x13): charging, battery level 6 of 6, strong GSM, no alarm.
pub fn heartbeat(serial: u16) -> Vec<u8> {
    short_frame(&[STATUS, 0x04, 0x06, 0x04, 0x00, 0x02], serial)
}

/// A GPS+LBS frame (0x22) of `record`: its time, fix and ignition, and
/// `archived` as the re-upload flag. Without a fix it says "not positioned"
/// at 0,0.
pub fn location(record: &Record, serial: u16) -> Vec<u8> {
    let mut body = [0u8; 30];
    body[0] = GPS_LBS_2;
    body[1..7].copy_from_slice(&date_bytes(record.time_ms));
    let fix = record.fix.unwrap_or_default();
    let satellites = fix.satellites.unwrap_or(0).min(15);
    body[7] = 0xc0 | satellites; // GPS info length 12
    body[8..12].copy_from_slice(&raw_coordinate(fix.lat).to_be_bytes());
    body[12..16].copy_from_slice(&raw_coordinate(fix.lon).to_be_bytes());
    body[16] = fix.speed_kmh.round().clamp(0.0, 255.0) as u8;
    body[17..19].copy_from_slice(&course_status(&fix, record.fix.is_some()).to_be_bytes());
    // Bytes 19..27 are the serving cell (MCC, MNC, LAC, cell id), left unknown.
    let ignition = record
        .attributes
        .get(attr::IGNITION)
        .and_then(|v| v.as_bool());
    body[27] = u8::from(ignition.unwrap_or(false));
    body[28] = 0; // upload mode: timed
    body[29] = u8::from(record.archived);
    short_frame(&body, serial)
}

fn date_bytes(time_ms: i64) -> [u8; 6] {
    let c = Civil::from_epoch_ms(time_ms);
    let byte = |v: i64| v.clamp(0, 255) as u8;
    [
        byte(c.year - 2000),
        byte(c.month),
        byte(c.day),
        byte(c.hour),
        byte(c.minute),
        byte(c.second),
    ]
}

/// Degrees as minutes × 30000, the magnitude only (the sign is in the flags).
fn raw_coordinate(degrees: f64) -> u32 {
    (degrees.abs() * 1_800_000.0)
        .round()
        .clamp(0.0, f64::from(u32::MAX)) as u32
}

fn course_status(fix: &crate::model::Fix, has_fix: bool) -> u16 {
    let course = (fix.course_deg.rem_euclid(360.0).round() as u16) % 360;
    let mut flags = course & 0x03ff;
    if fix.lat >= 0.0 {
        flags |= 0x0400;
    }
    if fix.lon < 0.0 {
        flags |= 0x0800;
    }
    if has_fix && fix.valid {
        flags |= 0x1000;
    }
    flags
}

/// The type and serial of a reply frame the server sent, if it is one.
///
/// The Wi-Fi acknowledgement (a zero length and a BCD time, no CRC) has no
/// serial; it gives 0.
pub fn parse_reply(frame: &[u8]) -> Option<(u8, u16)> {
    let header = Header::parse(frame).ok()?;
    if !header.extended && header.length == 0 {
        return (frame.len() == 12 && frame.ends_with(&STOP)).then_some((header.kind, 0));
    }
    if frame.len() != header.declared_total() || !frame.ends_with(&STOP) {
        return None;
    }
    frame::verify_crc(frame, &header).ok()?;
    let at = frame.len().checked_sub(6)?;
    let serial = frame.get(at..at + 2)?;
    Some((header.kind, u16::from_be_bytes([serial[0], serial[1]])))
}

/// A command as the device reads it from a 0x80 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCommand {
    pub command: Command,
    /// Echoed in the answer, so a server may match it to the command.
    pub server_flag: u32,
}

/// The command a 0x80 frame from the server carries; `None` for any other
/// frame, a bad CRC or text no command could carry.
pub fn parse_command(frame: &[u8]) -> Option<ServerCommand> {
    let header = Header::parse(frame).ok()?;
    if header.kind != COMMAND_0 || frame.len() != header.declared_total() {
        return None;
    }
    frame::verify_crc(frame, &header).ok()?;
    let mut r = Reader::at(frame, header.prefix_len() + 1);
    let length = usize::from(r.u8("command length").ok()?);
    let server_flag = r.u32("server flag").ok()?;
    let text = r.take(length.checked_sub(4)?, "command").ok()?;
    let command = from_text(&ascii(text))?;
    Some(ServerCommand {
        command,
        server_flag,
    })
}

/// English, in the language field devices put after an answer's text.
const ENGLISH: u16 = 2;

/// A device's text answer (0x15) to the command that carried `server_flag`.
/// ASCII only, at most 240 bytes: longer or other text is cut or replaced
/// by `?`, as a device with a small buffer would.
pub fn command_answer(text: &str, server_flag: u32, serial: u16) -> Vec<u8> {
    let text: Vec<u8> = text
        .chars()
        .take(240)
        .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
        .collect();
    let mut body = Vec::with_capacity(text.len() + 8);
    body.push(STRING);
    body.push(u8::try_from(4 + text.len()).unwrap_or(u8::MAX));
    body.extend_from_slice(&server_flag.to_be_bytes());
    body.extend_from_slice(&text);
    body.extend_from_slice(&ENGLISH.to_be_bytes());
    short_frame(&body, serial)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_matches_a_captured_frame() {
        let frame = login("864717003283581", 0x0009);
        assert_eq!(
            crate::wire::text::hex(&frame),
            "78780d01086471700328358100093f040d0a"
        );
    }

    #[test]
    fn replies_parse() {
        assert_eq!(parse_reply(&login("123456789012345", 7)), Some((0x01, 7)));
        assert_eq!(parse_reply(&[0x78, 0x78, 0x05, 0x01]), None);
        let mut bad = heartbeat(3);
        bad[4] ^= 0xff;
        assert_eq!(parse_reply(&bad), None);
    }
}
