//! Commands the server sends to a device (type 0x80, "online command").
//!
//! Engine stop and resume are Traccar's texts (`Relay,1#`, `Relay,0#`).
//! Traccar sends nothing else but custom text; for reboot and the reporting
//! interval Drover sends the texts Concox-family manuals give for them,
//! `RESET#` and `TIMER,<secs>#`. Devices answer with type 0x15 (or 0x21 on
//! newer ones), echoing the server flag, which Drover leaves at 0 as Traccar
//! does: devices answer in order.

use super::NAME;
use super::frame;
use super::types::COMMAND_0;
use crate::command::{Command, CommandKind, EncodeError};

const ENGINE_STOP: &str = "Relay,1#";
const ENGINE_RESUME: &str = "Relay,0#";
const REBOOT: &str = "RESET#";
const INTERVAL_PREFIX: &str = "TIMER,";

/// Server flag of commands; devices echo it in their answer.
const SERVER_FLAG: u32 = 0;
/// Type, command length, server flag, serial and CRC around the text, all
/// counted by the frame's one-byte length.
const OVERHEAD: usize = 1 + 1 + 4 + 2 + 2;

/// The text a device receives for `command`.
fn text(command: &Command) -> String {
    match command.kind() {
        CommandKind::EngineStop => ENGINE_STOP.to_owned(),
        CommandKind::EngineResume => ENGINE_RESUME.to_owned(),
        CommandKind::Reboot => REBOOT.to_owned(),
        CommandKind::SetInterval { secs } => format!("{INTERVAL_PREFIX}{secs}#"),
        CommandKind::Custom { text } => text.clone(),
    }
}

/// The command a device reads in `text`: the inverse of [`text`], anything
/// else (an interval out of range included) being custom text. `None` for
/// text no command could carry.
pub(crate) fn from_text(text: &str) -> Option<Command> {
    let interval = text
        .strip_prefix(INTERVAL_PREFIX)
        .and_then(|rest| rest.strip_suffix('#'))
        .and_then(|secs| secs.parse().ok());
    let kind = match (text, interval) {
        (ENGINE_STOP, _) => CommandKind::EngineStop,
        (ENGINE_RESUME, _) => CommandKind::EngineResume,
        (REBOOT, _) => CommandKind::Reboot,
        (_, Some(secs)) => CommandKind::SetInterval { secs },
        _ => return custom(text),
    };
    Command::new(kind).ok().or_else(|| custom(text))
}

fn custom(text: &str) -> Option<Command> {
    Command::new(CommandKind::Custom {
        text: text.to_owned(),
    })
    .ok()
}

/// The 0x7878 frame carrying `command`, with serial 0 as Traccar sends it.
pub fn encode_command(command: &Command) -> Result<Vec<u8>, EncodeError> {
    let text = text(command);
    if !text.is_ascii() {
        return Err(EncodeError::Text {
            protocol: NAME,
            reason: "GT06 commands are ASCII",
        });
    }
    let too_long = EncodeError::Text {
        protocol: NAME,
        reason: "longer than one GT06 frame holds (245 bytes)",
    };
    u8::try_from(OVERHEAD + text.len()).map_err(|_| too_long.clone())?;
    let command_len = u8::try_from(4 + text.len()).map_err(|_| too_long)?;
    let mut content = Vec::with_capacity(1 + usize::from(command_len));
    content.push(command_len);
    content.extend_from_slice(&SERVER_FLAG.to_be_bytes());
    content.extend_from_slice(text.as_bytes());
    let mut out = Vec::with_capacity(content.len() + 10);
    frame::write_reply(&mut out, false, COMMAND_0, &content, 0);
    Ok(out)
}

// invariant: test code (cfg(test) only): the unwraps and expects below never see device input.
#[cfg(test)]
mod tests {
    use super::*;

    fn text_command(text: &str) -> Command {
        Command::new(CommandKind::Custom { text: text.into() }).unwrap()
    }

    #[test]
    fn non_ascii_text_is_refused() {
        assert!(matches!(
            encode_command(&text_command("é#")),
            Err(EncodeError::Text { .. })
        ));
        assert!(encode_command(&text_command(&"x".repeat(200))).is_ok());
    }

    #[test]
    fn texts_read_back_as_their_commands() {
        for kind in [
            CommandKind::EngineStop,
            CommandKind::EngineResume,
            CommandKind::Reboot,
            CommandKind::SetInterval { secs: 30 },
            CommandKind::Custom {
                text: "WHERE#".into(),
            },
        ] {
            let command = Command::new(kind).unwrap();
            assert_eq!(from_text(&text(&command)), Some(command));
        }
        assert_eq!(from_text("TIMER,0#"), Some(text_command("TIMER,0#")));
        assert_eq!(from_text("TIMER,x#"), Some(text_command("TIMER,x#")));
        assert_eq!(from_text(""), None);
    }
}
