//! # drover-protocols
//!
//! Everything Drover knows about the bytes trackers send, and nothing about
//! sockets, clocks or files.
//!
//! - [`model`] is the vendor-neutral message model every decoder produces:
//!   a [`model::Record`] is one position, status or event report from one
//!   device, with SI units and named attributes.
//! - One module per vendor protocol ([`gt06`], [`teltonika`]). Each offers a
//!   [`Protocol`] whose [`Session`] holds per-connection state, splits a
//!   byte stream into frames ([`Session::check`]) and decodes one frame into
//!   records plus the reply bytes the device expects ([`Session::decode`]).
//!   Each also has a `device` submodule that builds the frames a device would
//!   send, used by the simulator, the benches and the tests.
//! - [`command`] is the vendor-neutral command model: a [`command::Command`]
//!   (engine stop, reporting interval, …) that each protocol encodes
//!   ([`Protocol::encode_command`]), and [`command::answer`], the text of a
//!   device's reply once decoded.
//!
//! The I/O layer (`drover-devices`) only moves bytes: it buffers what the
//! socket gives, asks `check` whether a whole frame is there, hands it to
//! `decode`, and writes the reply once the records are safely accepted.
//!
//! **Invariant:** no function here panics on any input, and decoders do not
//! allocate per byte. Both are exercised by the vector tests and fuzz
//! targets.

pub mod command;
pub mod gt06;
pub mod model;
pub mod teltonika;
pub(crate) mod wire;

use command::{Command, EncodeError};
use model::{DeviceId, Record};

/// The `&'static str` a protocol calls itself ([`Protocol::name`]), found from
/// the name read back from storage; `None` for a protocol this build lacks.
pub fn protocol_name(name: &str) -> Option<&'static str> {
    [gt06::NAME, teltonika::NAME]
        .into_iter()
        .find(|known| *known == name)
}

/// A tracker protocol: a name and a way to start a session per connection.
pub trait Protocol: Clone + Send + Sync + 'static {
    /// Per-connection state: identification, counters, options.
    type Session: Session;

    /// Stable lowercase name used in logs, metrics and configuration.
    fn name(&self) -> &'static str;

    /// A fresh session for a new connection.
    fn session(&self) -> Self::Session;

    /// The bytes that carry `command` to a device, to be written on its
    /// connection as they are; [`command::encode`] does the same by name.
    fn encode_command(&self, command: &Command) -> Result<Vec<u8>, EncodeError>;
}

/// The per-connection half of a protocol.
pub trait Session: Send + 'static {
    /// Looks at the start of `buf` and says whether a whole frame is there.
    fn check(&self, buf: &[u8]) -> Check;

    /// Decodes one whole frame (as delimited by [`Session::check`]), appending
    /// records and reply bytes to `out`.
    ///
    /// On error nothing is appended to `out` and the session state is as before
    /// the call, so the caller may skip the frame and go on.
    fn decode(&mut self, frame: &[u8], out: &mut Decoded) -> Result<(), DecodeError>;

    /// The device this connection has identified itself as, if it has.
    fn device(&self) -> Option<&DeviceId>;

    /// What the server writes, in place of the login's reply, to tell a
    /// device it is refused (not registered, or disabled) before closing;
    /// `None` when the protocol has no such answer and closing is all a
    /// device understands.
    fn refusal(&self) -> Option<&'static [u8]>;
}

/// What [`Session::check`] found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// A whole frame of this many bytes starts the buffer.
    Frame(usize),
    /// Not enough bytes yet. `Some(n)` when the header already declares that the
    /// frame will be `n` bytes long, so callers can refuse oversized frames early.
    Incomplete(Option<usize>),
    /// The first this-many bytes cannot start a frame: drop them and look again.
    Garbage(usize),
}

/// Output of decoding one frame.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decoded {
    /// Records the frame carried, oldest first.
    pub records: Vec<Record>,
    /// Bytes to send back to the device once `records` are safely accepted.
    pub reply: Vec<u8>,
    /// Set when this frame identified the device (a login).
    pub identified: Option<DeviceId>,
}

impl Decoded {
    /// Empties the output for reuse without giving back its memory.
    pub fn clear(&mut self) {
        self.records.clear();
        self.reply.clear();
        self.identified = None;
    }
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame's checksum does not match its content.
    #[error("bad checksum: frame says {expected:#06x}, content gives {actual:#06x}")]
    BadChecksum { expected: u32, actual: u32 },
    /// The frame is shorter than its type requires, or a length field lies.
    #[error("truncated {what}")]
    Truncated { what: &'static str },
    /// A field holds a value the protocol does not allow.
    #[error("invalid {what}")]
    Invalid { what: &'static str },
    /// A data frame arrived before the device identified itself.
    #[error("data before login")]
    NotIdentified,
    /// A well-formed frame of a type Drover does not decode.
    #[error("unsupported message type {0:#04x}")]
    Unsupported(u32),
}

impl DecodeError {
    /// Short stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::BadChecksum { .. } => "bad_checksum",
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::Invalid { .. } => "invalid",
            DecodeError::NotIdentified => "not_identified",
            DecodeError::Unsupported(_) => "unsupported",
        }
    }
}

/// Options every protocol honours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Accept frames whose checksum is wrong (some devices always send bad ones).
    /// Off by default: a bad checksum rejects the frame.
    pub accept_bad_checksum: bool,
}
