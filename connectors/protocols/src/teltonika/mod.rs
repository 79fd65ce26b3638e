//! Teltonika FMB/FMC/FMM/GH trackers and OBD dongles.
//!
//! # Frames (TCP)
//!
//! A connection opens with the IMEI handshake; the server answers `0x01` to
//! accept it:
//!
//! ```text
//! IMEI length u16 | IMEI (15 ASCII digits)
//! ```
//!
//! Then AVL packets, each acked with the number of records it carried
//! (4 bytes, big-endian):
//!
//! ```text
//! 0x00000000 | data length u32 | data | CRC u32 (CRC-16/IBM of data)
//! data = codec id u8 | record count u8 | records … | record count u8
//! ```
//!
//! A lone `0xFF` is a keep-alive. Over UDP there is no handshake and no CRC:
//! every datagram names its device (see [`udp`]).
//!
//! # What is decoded
//!
//! - Codecs 8, 8 Extended and 16 ([`avl`]): per record the time (ms), the
//!   priority (`priority`; panic raises alarm `sos`), the GPS element (a fix;
//!   invalid with no satellites or at 0,0), the event IO id (`event`) and the
//!   IO elements of every width, 8E's variable-length ones included. Known ids
//!   become named attributes (`io.rs`, Traccar's table: `ignition`, `power`,
//!   `rpm`, `coolantTemp`, …), others `io{id}`. Without a configured model
//!   the FMB family is assumed, and an element whose width is not its id's
//!   stays `io{id}` (another family numbering its ids differently).
//! - Codec 7 (GH3000): location and IO masks, float coordinates.
//! - Codecs 12, 13, 14 ([`command`]): the device's replies to commands and
//!   its serial-port messages, as [`RecordKind::CommandResult`] records with
//!   the text in `result` and the message `type` (6 for a reply). Camera
//!   transfers are `Unsupported`. [`Protocol::encode_command`] builds the
//!   codec 12 commands a server sends.
//!
//! Checksums are enforced unless [`DecodeOptions::accept_bad_checksum`] is
//! set. [`device`] builds what a device sends, for the simulator and tests.
//!
//! [`RecordKind::CommandResult`]: crate::model::RecordKind::CommandResult

pub mod avl;
mod beacons;
pub mod command;
pub mod device;
mod frame;
mod gh3000;
mod io;
pub mod udp;

use io::Models;

/// The protocol's name in logs, metrics, configuration and stored records.
pub const NAME: &str = "teltonika";

use crate::command::{Command, EncodeError};
use crate::model::{DeviceId, Record};
use crate::{Check, DecodeError, DecodeOptions, Decoded, Protocol, Session};

/// The server's answer to an accepted IMEI handshake.
pub const LOGIN_ACCEPTED: u8 = 0x01;
/// The answer to a refused one ([`Session::refusal`]): the decoder always
/// accepts a well-formed IMEI, and whether the device may be served is the
/// server's decision.
pub const LOGIN_REFUSED: u8 = 0x00;

/// What a whole TCP frame (as cut by [`Session::check`]) asks of a server
/// that only acks: its envelope and CRC are checked, its records are not
/// decoded. For the simulator's null server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// A 0xFF keep-alive: no answer.
    Ping,
    /// The IMEI handshake: answer [`LOGIN_ACCEPTED`].
    Login,
    /// An AVL packet of this many records: answer the count as a big-endian u32.
    Data { records: u8 },
}

/// Reads `frame`'s envelope (see [`Envelope`]); `None` when it is not a
/// well-formed frame with a matching CRC.
pub fn envelope(frame: &[u8]) -> Option<Envelope> {
    match frame::parse(frame, false).ok()? {
        frame::Frame::Ping => Some(Envelope::Ping),
        frame::Frame::Login(_) => Some(Envelope::Login),
        // The data field starts with the codec id, then the record count.
        frame::Frame::Data(data) => data.get(1).map(|&records| Envelope::Data { records }),
    }
}

/// Everything a session needs to know, fixed when the protocol is set up.
#[derive(Clone, Copy, Debug)]
struct Config {
    options: DecodeOptions,
    models: Models,
    extended: bool,
    connectionless: bool,
}

impl Config {
    /// Decodes a data field (codec id … second record count) into `out`.
    /// Returns the record count to ack, or none for codecs that are not acked.
    fn decode_data(&self, data: &[u8], out: &mut Vec<Record>) -> Result<Option<u8>, DecodeError> {
        let start = out.len();
        let acked = match data.first() {
            None => Err(DecodeError::Truncated { what: "codec" }),
            Some(&(avl::CODEC_8 | avl::CODEC_8E | avl::CODEC_16)) => {
                avl::decode(data, self.extended, self.models, out).map(Some)
            }
            Some(&gh3000::CODEC_7) => gh3000::decode(data, self.extended, out).map(Some),
            Some(&(command::CODEC_12 | command::CODEC_13 | command::CODEC_14)) => {
                command::decode(data, out).map(|()| None)
            }
            Some(&codec) => Err(DecodeError::Unsupported(codec.into())),
        };
        acked.inspect_err(|_| out.truncate(start))
    }
}

/// The Teltonika protocol and its settings.
#[derive(Clone, Debug)]
pub struct Teltonika {
    config: Config,
}

impl Teltonika {
    pub fn new(options: DecodeOptions) -> Self {
        Teltonika {
            config: Config {
                options,
                models: Models::of(None),
                extended: false,
                connectionless: false,
            },
        }
    }

    /// The devices' model (e.g. `FMB130`): some IO ids mean different things
    /// on different models. Without it the FMB family is assumed.
    pub fn with_model(mut self, model: &str) -> Self {
        self.config.models = Models::of(Some(model));
        self
    }

    /// Reads a section of 16-byte IO values after the 8-byte ones, which some
    /// firmware sends (Traccar's `teltonika.extended`).
    pub fn with_extended(mut self, extended: bool) -> Self {
        self.config.extended = extended;
        self
    }

    /// Sessions take UDP datagrams (each one a frame) instead of a TCP stream.
    pub fn with_connectionless(mut self, connectionless: bool) -> Self {
        self.config.connectionless = connectionless;
        self
    }

    /// A session for a device already known, as if it had sent its IMEI.
    pub fn session_for(&self, device: DeviceId) -> TeltonikaSession {
        TeltonikaSession {
            config: self.config,
            device: Some(device),
        }
    }
}

impl Protocol for Teltonika {
    type Session = TeltonikaSession;

    fn name(&self) -> &'static str {
        NAME
    }

    fn session(&self) -> TeltonikaSession {
        TeltonikaSession {
            config: self.config,
            device: None,
        }
    }

    fn encode_command(&self, command: &Command) -> Result<Vec<u8>, EncodeError> {
        command::encode_command(command)
    }
}

/// One device connection (or, connectionless, one peer's datagrams).
#[derive(Clone, Debug)]
pub struct TeltonikaSession {
    config: Config,
    device: Option<DeviceId>,
}

impl Session for TeltonikaSession {
    fn check(&self, buf: &[u8]) -> Check {
        if !self.config.connectionless {
            return frame::check(buf);
        }
        match udp::declared_len(buf) {
            None => Check::Incomplete(None),
            Some(len) if buf.len() >= len => Check::Frame(len),
            Some(len) => Check::Incomplete(Some(len)),
        }
    }

    fn decode(&mut self, frame: &[u8], out: &mut Decoded) -> Result<(), DecodeError> {
        if self.config.connectionless {
            return self.datagram(frame, out);
        }
        match frame::parse(frame, self.config.options.accept_bad_checksum)? {
            frame::Frame::Ping => Ok(()),
            frame::Frame::Login(imei) => self.login(imei, out),
            frame::Frame::Data(data) => self.data(data, out),
        }
    }

    fn device(&self) -> Option<&DeviceId> {
        self.device.as_ref()
    }

    fn refusal(&self) -> Option<&'static [u8]> {
        // Over UDP there is no handshake to answer.
        (!self.config.connectionless).then_some(&[LOGIN_REFUSED])
    }
}

impl TeltonikaSession {
    fn login(&mut self, imei: &[u8], out: &mut Decoded) -> Result<(), DecodeError> {
        let device = device_id(imei)?;
        self.device = Some(device.clone());
        out.identified = Some(device);
        out.reply.push(LOGIN_ACCEPTED);
        Ok(())
    }

    fn data(&mut self, data: &[u8], out: &mut Decoded) -> Result<(), DecodeError> {
        if self.device.is_none() {
            return Err(DecodeError::NotIdentified);
        }
        if let Some(count) = self.config.decode_data(data, &mut out.records)? {
            out.reply.extend_from_slice(&u32::from(count).to_be_bytes());
        }
        Ok(())
    }

    fn datagram(&mut self, datagram: &[u8], out: &mut Decoded) -> Result<(), DecodeError> {
        let device = udp::decode(&self.config, datagram, out)?;
        if self.device.as_ref() != Some(&device) {
            self.device = Some(device.clone());
            out.identified = Some(device);
        }
        Ok(())
    }
}

/// An IMEI (15 digits, or 16 for an IMEISV) as the device's id.
fn device_id(imei: &[u8]) -> Result<DeviceId, DecodeError> {
    let digits = (15..=16).contains(&imei.len()) && imei.iter().all(u8::is_ascii_digit);
    match std::str::from_utf8(imei) {
        Ok(imei) if digits => Ok(DeviceId::new(imei)),
        _ => Err(DecodeError::Invalid { what: "imei" }),
    }
}

// invariant: test code (cfg(test) only): the unwraps and expects below never see device input.
#[cfg(test)]
mod tests;
