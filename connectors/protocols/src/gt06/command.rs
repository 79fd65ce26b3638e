//! Commands the server sends to a device (type 0x80, "online command").

use super::frame;
use super::types::COMMAND_0;

/// A command for a GT06 device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Cut the fuel/engine relay (`Relay,1#`).
    EngineStop,
    /// Restore the relay (`Relay,0#`).
    EngineResume,
    /// Any text command, sent as is (e.g. `WHERE#`, `RESET#`).
    Custom(String),
}

impl Command {
    fn text(&self) -> &str {
        match self {
            Command::EngineStop => "Relay,1#",
            Command::EngineResume => "Relay,0#",
            Command::Custom(text) => text,
        }
    }
}

/// Server flag of commands; devices echo it in their answer (type 0x15).
const SERVER_FLAG: u32 = 0;

/// The 0x7878 frame carrying `command`, with serial 0 as Traccar sends it.
///
/// `None` when the text is not ASCII or too long for a one-byte length.
pub fn encode_command(command: &Command) -> Option<Vec<u8>> {
    let text = command.text();
    if !text.is_ascii() {
        return None;
    }
    let command_len = u8::try_from(4 + text.len()).ok()?;
    // Type, command length, content, serial and CRC must fit the length byte.
    u8::try_from(1 + 1 + usize::from(command_len) + 2 + 2).ok()?;
    let mut content = Vec::with_capacity(1 + usize::from(command_len));
    content.push(command_len);
    content.extend_from_slice(&SERVER_FLAG.to_be_bytes());
    content.extend_from_slice(text.as_bytes());
    let mut out = Vec::with_capacity(content.len() + 10);
    frame::write_reply(&mut out, false, COMMAND_0, &content, 0);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_commands_that_do_not_fit_are_refused() {
        assert!(encode_command(&Command::Custom("x".repeat(245))).is_some());
        assert_eq!(encode_command(&Command::Custom("x".repeat(246))), None);
        assert_eq!(encode_command(&Command::Custom("é#".into())), None);
    }
}
