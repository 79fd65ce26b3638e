//! Codecs 12, 13 and 14: text commands to the device and what it answers.
//!
//! A codec 12 frame carries one message of a type (5 a command, 6 a response)
//! and a length-prefixed body. Codec 13 adds a timestamp before the body
//! (device-initiated messages), codec 14 an 8-byte BCD IMEI (responses to
//! commands addressed to one IMEI; type 0x11 means "not my IMEI").
//!
//! Replies carry no time: their records have `time_ms` 0, which the caller
//! may replace with the time it received them. Every record carries the
//! message `type`, as in Traccar, so a device's own messages (codec 13,
//! type 5) are not taken for answers.
//!
//! [`encode_command`] sends Traccar's texts for engine stop and resume
//! (`setdigout 1`, `setdigout 0`, the first digital output driving the
//! relay) and Teltonika's `cpureset` to reboot. There is no interval
//! command: FMB devices set it through `setparam` with ids that depend on
//! the model and the data acquisition mode, so it is a custom command.

use super::NAME;
use super::avl::end_of_records;
use super::frame;
use crate::DecodeError;
use crate::command::{Command, CommandKind, EncodeError};
use crate::model::{Record, RecordKind, attr};
use crate::wire::reader::Reader;
use crate::wire::text;

type Result<T> = std::result::Result<T, DecodeError>;

pub const CODEC_12: u8 = 0x0c;
pub const CODEC_13: u8 = 0x0d;
pub const CODEC_14: u8 = 0x0e;

/// Message types.
pub const TYPE_COMMAND: u8 = 0x05;
pub const TYPE_RESPONSE: u8 = 0x06;
/// Codec 12 camera transfers (photo chunks), which Drover does not assemble.
const TYPE_CAMERA: u8 = 0x0d;

/// The attribute carrying the message type.
const TYPE: &str = "type";

const ENGINE_STOP: &str = "setdigout 1";
const ENGINE_RESUME: &str = "setdigout 0";
const REBOOT: &str = "cpureset";

/// The codec 12 frame carrying `command`.
pub(crate) fn encode_command(command: &Command) -> std::result::Result<Vec<u8>, EncodeError> {
    let text = match command.kind() {
        CommandKind::EngineStop => ENGINE_STOP,
        CommandKind::EngineResume => ENGINE_RESUME,
        CommandKind::Reboot => REBOOT,
        CommandKind::SetInterval { .. } => {
            return Err(EncodeError::Unsupported {
                protocol: NAME,
                command: command.name(),
            });
        }
        // Traccar sends other characters as `?`; a command that is not
        // what was asked for is worse than a refusal.
        CommandKind::Custom { text } if !text.is_ascii() => {
            return Err(EncodeError::Text {
                protocol: NAME,
                reason: "Teltonika commands are ASCII",
            });
        }
        CommandKind::Custom { text } => text,
    };
    Ok(encode(text))
}

/// The command a device reads in a codec 12 command's text: the inverse
/// of [`encode_command`], anything else being custom text. `None` for
/// text no command could carry.
pub(crate) fn from_text(text: &str) -> Option<Command> {
    let kind = match text {
        ENGINE_STOP => CommandKind::EngineStop,
        ENGINE_RESUME => CommandKind::EngineResume,
        REBOOT => CommandKind::Reboot,
        _ => CommandKind::Custom {
            text: text.to_owned(),
        },
    };
    Command::new(kind).ok()
}

/// The text of a server→device codec 12 frame (printable, else hex), if
/// `frame` is one with a valid CRC.
pub(crate) fn command_text(frame: &[u8]) -> Option<String> {
    let frame::Frame::Data(data) = frame::parse(frame, false).ok()? else {
        return None;
    };
    let mut r = Reader::new(data);
    let header = (r.u8("codec").ok()?, r.u8("count").ok()?, r.u8("type").ok()?);
    if header != (CODEC_12, 1, TYPE_COMMAND) {
        return None;
    }
    let size = usize::try_from(r.u32("message size").ok()?).ok()?;
    let body = r.take(size, "message").ok()?;
    end_of_records(&mut r, 1).ok()?;
    Some(text::printable_or_hex(body))
}

/// Builds the server→device codec 12 frame for a command.
///
/// Text made only of hex digit pairs is sent as the bytes it spells (binary
/// commands), anything else as ASCII, with non-ASCII characters as `?`: this
/// is how Traccar's encoder reads a custom command's `data`.
pub fn encode(text: &str) -> Vec<u8> {
    let content = hex_bytes(text).unwrap_or_else(|| {
        text.chars()
            .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
            .collect()
    });
    message(TYPE_COMMAND, &content)
}

/// A codec 12 frame of one message (the device's responses use type 6).
pub(crate) fn message(kind: u8, content: &[u8]) -> Vec<u8> {
    let size = u32::try_from(content.len()).unwrap_or(u32::MAX);
    let mut data = Vec::with_capacity(content.len() + 8);
    data.extend_from_slice(&[CODEC_12, 1, kind]);
    data.extend_from_slice(&size.to_be_bytes());
    data.extend_from_slice(content);
    data.push(1);
    frame::envelope(&data)
}

fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
        })
        .collect()
}

/// Decodes a codec 12, 13 or 14 data field into `out`.
pub(crate) fn decode(data: &[u8], out: &mut Vec<Record>) -> Result<()> {
    let mut r = Reader::new(data);
    let codec = r.u8("codec")?;
    let count = r.u8("record count")?;
    let start = out.len();
    for _ in 0..count {
        match read_message(&mut r, codec, count) {
            Ok(record) => out.push(record),
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        }
    }
    end_of_records(&mut r, count).inspect_err(|_| out.truncate(start))
}

fn read_message(r: &mut Reader<'_>, codec: u8, count: u8) -> Result<Record> {
    let kind = r.u8("message type")?;
    if codec == CODEC_12 && kind == TYPE_CAMERA {
        return Err(DecodeError::Unsupported(TYPE_CAMERA.into()));
    }
    let mut size = usize::try_from(r.u32("message size")?).unwrap_or(usize::MAX);
    // Codec 13's size counts its timestamp, but some firmware leaves it out;
    // with one message, where the packet ends tells which.
    if codec == CODEC_13 && count == 1 && r.remaining() == size.saturating_add(5) {
        size += 4;
    }
    let mut body = Reader::new(r.take(size, "message")?);
    match codec {
        CODEC_12 => Ok(response(kind, body.rest())),
        CODEC_13 => {
            let seconds = body.u32("message timestamp")?;
            let mut record = device_message(i64::from(seconds) * 1000, body.rest());
            record.attributes.set(TYPE, u32::from(kind));
            Ok(record)
        }
        _ => {
            body.take(8, "imei")?;
            Ok(response(kind, body.rest()))
        }
    }
}

fn response(kind: u8, body: &[u8]) -> Record {
    let mut record = Record {
        kind: RecordKind::CommandResult,
        ..Record::default()
    };
    record.attributes.set(TYPE, u32::from(kind));
    if !axle_loads(&mut record, body) {
        record
            .attributes
            .set(attr::RESULT, text::printable_or_hex(body));
    }
    record
}

/// Codec 13 messages come from the device's serial port; one kind Traccar
/// knows is a driver card reader's `GTSL|…|id|…` line.
fn device_message(time_ms: i64, body: &[u8]) -> Record {
    let mut record = Record {
        time_ms,
        kind: RecordKind::CommandResult,
        ..Record::default()
    };
    let result = text::printable_or_hex(body);
    match result
        .strip_prefix("GTSL")
        .and_then(|_| result.split('|').nth(4))
    {
        Some(driver) => {
            record.kind = RecordKind::Event;
            record.attributes.set(attr::DRIVER_ID, driver.to_owned());
        }
        _ => record.attributes.set(attr::RESULT, result),
    }
    record
}

const AXLES: [&str; 8] = [
    "axle1", "axle2", "axle3", "axle4", "axle5", "axle6", "axle7", "axle8",
];
const LOADS: [&str; 4] = ["loadTruck", "loadTrailer", "totalTruck", "totalTrailer"];

/// A truck scale on the serial port answers `UUUUww` then twelve `;`-separated
/// weights then `SSS`; returns false for anything else.
fn axle_loads(record: &mut Record, body: &[u8]) -> bool {
    if !text::printable(body) {
        return false;
    }
    let data = text::ascii(body);
    let data = text::trim(&data);
    let Some(inner) = data
        .strip_prefix("UUUUww")
        .and_then(|d| d.strip_suffix(";SSS"))
    else {
        return false;
    };
    let values: Vec<f64> = inner
        .split(';')
        .map_while(|v| v.trim().parse().ok())
        .collect();
    if values.len() < AXLES.len() + LOADS.len() {
        return false;
    }
    for (name, value) in AXLES.iter().chain(LOADS.iter()).zip(values) {
        record.attributes.set(*name, value);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_hex_commands() {
        let text = encode("setdigout 11");
        assert_eq!(
            hex::encode(&text),
            "00000000000000140c01050000000c7365746469676f7574203131010000bed5"
        );
        let binary = encode("03030000000185E8");
        assert_eq!(
            hex::encode(&binary),
            "00000000000000100c01050000000803030000000185e8010000da8b"
        );
        assert_eq!(hex_bytes("0g"), None);
        assert_eq!(hex_bytes("abc"), None);
    }

    #[test]
    fn the_documented_getinfo_command() {
        assert_eq!(
            hex::encode(encode("getinfo")),
            "000000000000000f0c010500000007676574696e666f0100004312"
        );
    }
}
