//! GT06 / Concox binary protocol (Jimi, Wanway, Seeworld and many clones).
//!
//! [`Gt06`] is the [`Protocol`]; each connection gets a [`Gt06Session`] that
//! splits frames, checks their CRC, decodes them and builds the replies
//! devices wait for. [`device`] builds the frames a device sends (and reads
//! the commands it receives); [`Protocol::encode_command`] builds the
//! commands a server sends (`command.rs` has the texts).
//!
//! Decoding follows Traccar's `Gt06ProtocolDecoder` (its test captures are
//! this module's vectors), including its per-frame variant detection and
//! per-model layouts ([`Gt06::with_model`]).
//!
//! Records without a time of their own (heartbeats, command answers, most
//! information frames) have `time_ms == 0`: the I/O layer, which owns the
//! clock, stamps them with the receive time. Cell towers and Wi-Fi access
//! points have no field in the model; records without a fix carry them as
//! text attributes `cellTowers` (`mcc,mnc,lac,cid[,rssi];…`) and
//! `wifiAccessPoints` (`mac[,rssi];…`).
//!
//! # Frame layout
//!
//! ```text
//! 0x7878 | len u8  | type u8 | content | serial u16 | crc u16 | 0x0D0A
//! 0x7979 | len u16 | type u8 | content | serial u16 | crc u16 | 0x0D0A
//! ```
//!
//! `len` counts type..crc. The CRC is CRC-ITU (CRC-16/X-25) over len..serial;
//! a wrong one rejects the frame unless
//! [`DecodeOptions::accept_bad_checksum`] is set. Some devices misuse `len`
//! (Wi-Fi reports 0x17/0x69 put the access-point count there and carry no
//! serial or CRC); when the declared end holds no stop bits, the splitter
//! ends the frame at the first stop bits that are followed by the next
//! frame's start bits or by the end of what has arrived.
//!
//! # Decoded types
//!
//! - login 0x01 (IMEI, time zone); heartbeat 0x23; status 0x13, 0x36, 0xA3;
//! - GPS+LBS locations 0x10, 0x11, 0x12, 0x1A, 0x1E, 0x22, 0x25, 0x2D, 0x31,
//!   0x34, 0x36, 0x37, 0x38, 0x61, 0xA0, and 0x21 "Current position!" text;
//! - GPS+LBS+status and alarms 0x16, 0x19, 0x26, 0x27, 0x32, 0x33, 0x39,
//!   0x95, 0xA2, 0xA3, 0xA4, 0xA5, 0xA7, 0xA9;
//! - cell and Wi-Fi lists 0x17, 0x18, 0x24, 0x28, 0x2C, 0x2E, 0x33, 0x34,
//!   0x69, 0xA1, 0xA2, 0xF3;
//! - command answers and texts 0x15, 0x21, 0x9B; information 0x94; modular
//!   0x70; OBD 0x8C; BMS 0x40; peripherals 0xF1, 0xF2; Bluetooth clock 0xB2.
//!
//! Replies are Traccar's: an echo of type and serial (0x7878 framing, also
//! for 0x7979 frames) for login, heartbeat, status, alarm and most location
//! types, 0x7979 for AZ735 (0x32/0x33 in 0x7979), the BCD time for Wi-Fi
//! reports, "no address" for address requests (0x2A); no reply to 0x21,
//! 0x24 (SR411), 0x34, 0x38, 0x8C, 0x94, 0x9B. Other 0x7878 types are
//! acknowledged without being decoded; other 0x7979 types are
//! [`DecodeError::Unsupported`]. Not supported either: photos and media
//! (0x35, 0x36 in 0x7979, 0x41: Drover stores no media) and the time request
//! (0x8A: a sans-IO decoder has no clock; the device keeps its GPS time).

mod alarm;
mod basic;
mod calendar;
mod command;
mod decode;
pub mod device;
mod extended;
mod frame;
mod gps;
mod supported;
mod text;
mod types;
mod variant;

pub(crate) use command::encode_command;
pub use frame::MAX_FRAME_LEN;

/// Appends the short ack a server sends for a frame of type `kind` with
/// `serial` (login, heartbeat, alarm): what [`Session::decode`] replies,
/// for servers that only frame and ack (the simulator's null server).
pub fn write_ack(out: &mut Vec<u8>, kind: u8, serial: u16) {
    frame::write_reply(out, false, kind, &[], serial);
}

/// The protocol's name in logs, metrics, configuration and stored records.
pub const NAME: &str = "gt06";

use crate::command::{Command, EncodeError};
use crate::model::DeviceId;
use crate::{Check, DecodeError, DecodeOptions, Decoded, Protocol, Session};

use decode::Ctx;
use frame::Header;
use variant::{Model, Variant};

/// The `what` of every truncated read: GT06 errors name the frame, not a field.
const FRAME: &str = "GT06 frame";

/// The GT06 protocol with its decoding options.
#[derive(Debug, Clone, Default)]
pub struct Gt06 {
    options: DecodeOptions,
    model: Model,
}

impl Gt06 {
    pub fn new(options: DecodeOptions) -> Self {
        Gt06 {
            options,
            model: Model::default(),
        }
    }

    /// Decodes every device as this model (Traccar's model override), for
    /// models whose frames cannot be told apart by their content.
    pub fn with_model(mut self, name: &str) -> Self {
        self.model = Model::from_name(name);
        self
    }
}

impl Protocol for Gt06 {
    type Session = Gt06Session;

    fn name(&self) -> &'static str {
        NAME
    }

    fn session(&self) -> Gt06Session {
        Gt06Session {
            options: self.options,
            model: self.model,
            device: None,
            offset_s: 0,
        }
    }

    fn encode_command(&self, command: &Command) -> Result<Vec<u8>, EncodeError> {
        encode_command(command)
    }
}

/// One connection: who the device is and what its login said.
#[derive(Debug, Clone)]
pub struct Gt06Session {
    options: DecodeOptions,
    /// Changes layouts; per session because a server sees many models.
    model: Model,
    device: Option<DeviceId>,
    /// The device's clock offset east of UTC, from its login (0 without).
    offset_s: i64,
}

impl Gt06Session {
    /// A session that decodes data without waiting for a login, for replays
    /// and tests; a login still re-identifies it.
    pub fn identified(protocol: &Gt06, device: DeviceId) -> Self {
        let mut session = protocol.session();
        session.device = Some(device);
        session
    }

    /// Sets the device model once it is known (e.g. looked up after login).
    pub fn set_model(&mut self, name: &str) {
        self.model = Model::from_name(name);
    }
}

impl Session for Gt06Session {
    fn check(&self, buf: &[u8]) -> Check {
        frame::check(buf)
    }

    fn decode(&mut self, frame: &[u8], out: &mut Decoded) -> Result<(), DecodeError> {
        let header = Header::parse(frame)?;
        if let Err(bad) = frame::verify_crc(frame, &header)
            && !self.options.accept_bad_checksum
        {
            return Err(bad);
        }
        let ctx = Ctx {
            frame,
            header,
            variant: Variant::detect(&header, frame),
            model: self.model,
            offset_s: self.offset_s,
        };
        let (records, reply) = (out.records.len(), out.reply.len());
        match decode::decode(&ctx, self.device.is_some(), out) {
            Ok(login) => {
                if let Some(login) = login {
                    self.offset_s = login.offset_s;
                    out.identified = Some(login.device.clone());
                    self.device = Some(login.device);
                }
                Ok(())
            }
            Err(e) => {
                out.records.truncate(records);
                out.reply.truncate(reply);
                Err(e)
            }
        }
    }

    fn device(&self) -> Option<&DeviceId> {
        self.device.as_ref()
    }

    /// GT06 has no negative login answer: a refused device is closed on
    /// without its login ack, and retries later.
    fn refusal(&self) -> Option<&'static [u8]> {
        None
    }
}

// invariant: test code (cfg(test) only): the unwraps and expects below never see device input.
#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn session(accept_bad_checksum: bool) -> Gt06Session {
        let gt06 = Gt06::new(DecodeOptions {
            accept_bad_checksum,
        });
        Gt06Session::identified(&gt06, DeviceId::new("1"))
    }

    const LOCATION: &str =
        "787822220f0c1d023305c9027ac8180c46586000140001cc00287d001f71000001000820860d0a";

    #[test]
    fn truncated_frames_are_errors_and_leave_the_output_alone() {
        let frame = hex(LOCATION);
        let mut out = Decoded::default();
        out.reply.push(0xaa);
        for cut in 0..frame.len() - 2 {
            let result = session(false).decode(&frame[..cut], &mut out);
            assert!(result.is_err(), "cut {cut}");
            assert_eq!((out.records.len(), out.reply.len()), (0, 1), "cut {cut}");
            // Accepting bad checksums, some cuts still decode, as in
            // Traccar; those that don't leave the output alone.
            if session(true).decode(&frame[..cut], &mut out).is_err() {
                assert_eq!((out.records.len(), out.reply.len()), (0, 1), "cut {cut}");
            }
            out.records.clear();
            out.reply.truncate(1);
        }
    }

    #[test]
    fn unknown_extended_types_are_unsupported() {
        let frame = hex("79790005fd0001aaaa0d0a");
        let result = session(true).decode(&frame, &mut Decoded::default());
        assert_eq!(result, Err(DecodeError::Unsupported(0xfd)));
        let info = hex("79790006947700012ccc0d0a");
        let result = session(true).decode(&info, &mut Decoded::default());
        assert_eq!(result, Err(DecodeError::Unsupported(0x9477)));
    }

    #[test]
    fn a_refused_device_is_sent_nothing() {
        assert_eq!(
            Gt06::new(DecodeOptions::default()).session().refusal(),
            None
        );
    }

    #[test]
    fn a_login_sets_the_clock_offset_for_later_frames() {
        // Time zone word 0x190a: 4 h 00 west.
        let login = hex("787811010864717003664467100f190a0002c6d20d0a");
        let mut s = Gt06::new(DecodeOptions::default()).session();
        let mut out = Decoded::default();
        s.decode(&login, &mut out).unwrap();
        assert_eq!(out.identified, Some(DeviceId::new("864717003664467")));
        out.clear();
        s.decode(&hex(LOCATION), &mut out).unwrap();
        // 2015-12-29 02:51:05 at UTC-4 is 06:51:05 UTC.
        assert_eq!(out.records[0].time_ms, 1_451_371_865_000);
    }

    #[test]
    fn the_protocol_is_named_gt06() {
        assert_eq!(Gt06::default().name(), "gt06");
        assert_eq!(Gt06::default().session().device(), None);
    }
}
