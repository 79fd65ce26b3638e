//! Commands a server sends to devices, in vendor-neutral terms.
//!
//! A [`Command`] says what to do (`engine_stop`, `set_interval`, …); each
//! protocol's [`Protocol::encode_command`](crate::Protocol::encode_command)
//! turns it into the bytes its devices expect, and [`encode`] does the same
//! from a protocol's name, which is all a connection registry knows. A
//! device's reply comes back through the decoder as a
//! [`RecordKind::CommandResult`] record; [`answer`] reads its text.
//!
//! JSON form (the API's and MQTT's request bodies), unknown fields refused:
//!
//! ```json
//! {"type": "engine_stop"}
//! {"type": "set_interval", "secs": 30}
//! {"type": "custom", "text": "WHERE#"}
//! ```

use serde::{Deserialize, Serialize};

use crate::model::{Record, RecordKind, Value, attr};
use crate::{gt06, teltonika};

/// Longest reporting interval a command may set: a day.
pub const MAX_INTERVAL_SECS: u32 = 86_400;
/// Longest custom text, in characters: room for any vendor's command while
/// staying within one GT06 frame (245 bytes of text).
pub const MAX_TEXT_CHARS: usize = 200;

/// A command that passed validation (see [`Command::new`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Wire", into = "CommandKind")]
pub struct Command {
    kind: CommandKind,
}

/// What a command asks of the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CommandKind {
    /// Cut the engine (fuel pump or starter relay).
    EngineStop,
    /// Undo an engine stop.
    EngineResume,
    /// Report every `secs` seconds.
    SetInterval { secs: u32 },
    /// Restart the device.
    Reboot,
    /// Vendor text sent as is.
    Custom { text: String },
}

/// Why a command is refused before any protocol sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCommand {
    #[error("interval of {secs} s is outside 1..={MAX_INTERVAL_SECS}")]
    Interval { secs: u32 },
    #[error("custom text of {chars} characters is outside 1..={MAX_TEXT_CHARS}")]
    TextLength { chars: usize },
    #[error("{command} needs `{field}`")]
    Missing {
        command: &'static str,
        field: &'static str,
    },
    #[error("{command} takes no `{field}`")]
    Unexpected {
        command: &'static str,
        field: &'static str,
    },
}

impl Command {
    pub fn new(kind: CommandKind) -> Result<Command, InvalidCommand> {
        match &kind {
            CommandKind::SetInterval { secs } if !(1..=MAX_INTERVAL_SECS).contains(secs) => {
                return Err(InvalidCommand::Interval { secs: *secs });
            }
            CommandKind::Custom { text } => {
                let chars = text.chars().count();
                if !(1..=MAX_TEXT_CHARS).contains(&chars) {
                    return Err(InvalidCommand::TextLength { chars });
                }
            }
            _ => {}
        }
        Ok(Command { kind })
    }

    pub fn kind(&self) -> &CommandKind {
        &self.kind
    }

    /// The `type` of its JSON form, for logs and error messages.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }
}

impl CommandKind {
    fn name(&self) -> &'static str {
        let wire = match self {
            CommandKind::EngineStop => WireType::EngineStop,
            CommandKind::EngineResume => WireType::EngineResume,
            CommandKind::SetInterval { .. } => WireType::SetInterval,
            CommandKind::Reboot => WireType::Reboot,
            CommandKind::Custom { .. } => WireType::Custom,
        };
        wire.name()
    }
}

impl From<Command> for CommandKind {
    fn from(command: Command) -> CommandKind {
        command.kind
    }
}

/// The JSON form as read: every field any command has, so that a field the
/// command does not take is refused (serde ignores extra fields of unit
/// variants in tagged enums).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    #[serde(rename = "type")]
    kind: WireType,
    secs: Option<u32>,
    text: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WireType {
    EngineStop,
    EngineResume,
    SetInterval,
    Reboot,
    Custom,
}

impl TryFrom<Wire> for Command {
    type Error = InvalidCommand;

    fn try_from(wire: Wire) -> Result<Command, InvalidCommand> {
        let kind = match (wire.kind, wire.secs, wire.text) {
            (WireType::SetInterval, Some(secs), None) => CommandKind::SetInterval { secs },
            (WireType::Custom, None, Some(text)) => CommandKind::Custom { text },
            (WireType::EngineStop, None, None) => CommandKind::EngineStop,
            (WireType::EngineResume, None, None) => CommandKind::EngineResume,
            (WireType::Reboot, None, None) => CommandKind::Reboot,
            (kind, secs, text) => return Err(kind.misfit(secs.is_some(), text.is_some())),
        };
        Command::new(kind)
    }
}

impl WireType {
    /// The `type` in JSON.
    fn name(self) -> &'static str {
        match self {
            WireType::EngineStop => "engine_stop",
            WireType::EngineResume => "engine_resume",
            WireType::SetInterval => "set_interval",
            WireType::Reboot => "reboot",
            WireType::Custom => "custom",
        }
    }

    /// What is wrong with a command of this type that has (or lacks)
    /// `secs` and `text`.
    fn misfit(self, secs: bool, text: bool) -> InvalidCommand {
        let command = self.name();
        let (needs, field) = match self {
            WireType::SetInterval if !secs => (true, "secs"),
            WireType::Custom if !text => (true, "text"),
            _ if secs && !matches!(self, WireType::SetInterval) => (false, "secs"),
            _ => (false, "text"),
        };
        if needs {
            InvalidCommand::Missing { command, field }
        } else {
            InvalidCommand::Unexpected { command, field }
        }
    }
}

/// Why a protocol cannot carry a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The protocol has no such command; a `custom` one with the vendor's
    /// text may still do it.
    #[error(
        "{protocol} devices have no {command} command; send the vendor's text as a custom command"
    )]
    Unsupported {
        protocol: &'static str,
        command: &'static str,
    },
    /// The custom text cannot be put on this protocol's wire.
    #[error("{protocol} cannot carry this text: {reason}")]
    Text {
        protocol: &'static str,
        reason: &'static str,
    },
    /// No protocol of this build has this name.
    #[error("no protocol is named {0:?}")]
    UnknownProtocol(String),
}

/// The bytes that carry `command` to a device speaking `protocol` (a
/// [`Protocol::name`](crate::Protocol::name), as a connection registry
/// records it).
pub fn encode(protocol: &str, command: &Command) -> Result<Vec<u8>, EncodeError> {
    match protocol {
        gt06::NAME => gt06::encode_command(command),
        teltonika::NAME => teltonika::command::encode_command(command),
        other => Err(EncodeError::UnknownProtocol(other.to_owned())),
    }
}

/// The message type Teltonika gives a device's own serial-port messages
/// (codec 13), which answer no command.
const TELTONIKA_UNSOLICITED: i64 = teltonika::command::TYPE_COMMAND as i64;

/// The text of a device's answer to a command, if `record` is one: a
/// [`RecordKind::CommandResult`] with a text `result`, other than the
/// messages Teltonika devices send on their own (codec 13, `type` 5).
pub fn answer(record: &Record) -> Option<&str> {
    if record.kind != RecordKind::CommandResult {
        return None;
    }
    if record.attributes.get("type") == Some(&Value::Int(TELTONIKA_UNSOLICITED)) {
        return None;
    }
    match record.attributes.get(attr::RESULT) {
        Some(Value::Text(text)) => Some(text),
        _ => None,
    }
}

// invariant: test code (cfg(test) only): the unwraps and expects below never see device input.
#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Command, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn json_form_round_trips() {
        for json in [
            r#"{"type":"engine_stop"}"#,
            r#"{"type":"engine_resume"}"#,
            r#"{"type":"set_interval","secs":30}"#,
            r#"{"type":"reboot"}"#,
            r#"{"type":"custom","text":"WHERE#"}"#,
        ] {
            let command = parse(json).unwrap();
            assert_eq!(serde_json::to_string(&command).unwrap(), json);
        }
        assert_eq!(
            parse(r#"{"type":"set_interval","secs":30}"#)
                .unwrap()
                .kind(),
            &CommandKind::SetInterval { secs: 30 }
        );
    }

    #[test]
    fn invalid_json_is_refused() {
        for json in [
            r#"{"type":"engine_stop","secs":1}"#,
            r#"{"type":"set_interval","secs":30,"extra":true}"#,
            r#"{"type":"set_interval"}"#,
            r#"{"type":"set_interval","secs":0}"#,
            r#"{"type":"set_interval","secs":86401}"#,
            r#"{"type":"set_interval","secs":-1}"#,
            r#"{"type":"custom","text":""}"#,
            r#"{"type":"custom","text":"x","secs":1}"#,
            r#"{"type":"reboot","text":"now"}"#,
            r#"{"type":"launch"}"#,
            r#"{"secs":30}"#,
        ] {
            assert!(parse(json).is_err(), "{json} accepted");
        }
    }

    #[test]
    fn misfit_fields_are_named() {
        let error = |json| parse(json).unwrap_err().to_string();
        assert!(
            error(r#"{"type":"engine_stop","secs":1}"#).contains("engine_stop takes no `secs`")
        );
        assert!(error(r#"{"type":"custom"}"#).contains("custom needs `text`"));
        assert!(
            error(r#"{"type":"set_interval","text":"x"}"#).contains("set_interval needs `secs`")
        );
    }

    #[test]
    fn limits_are_inclusive_and_count_characters() {
        let interval = |secs| Command::new(CommandKind::SetInterval { secs });
        assert!(interval(1).is_ok() && interval(MAX_INTERVAL_SECS).is_ok());
        assert_eq!(interval(0), Err(InvalidCommand::Interval { secs: 0 }));
        let custom = |text: String| Command::new(CommandKind::Custom { text });
        assert!(custom("é".repeat(MAX_TEXT_CHARS)).is_ok());
        assert_eq!(
            custom("x".repeat(MAX_TEXT_CHARS + 1)),
            Err(InvalidCommand::TextLength { chars: 201 })
        );
    }

    #[test]
    fn unknown_protocols_are_named() {
        let stop = Command::new(CommandKind::EngineStop).unwrap();
        assert_eq!(
            encode("h02", &stop),
            Err(EncodeError::UnknownProtocol("h02".into()))
        );
    }

    #[test]
    fn only_replies_with_text_are_answers() {
        let mut record = Record {
            kind: RecordKind::CommandResult,
            ..Record::default()
        };
        assert_eq!(answer(&record), None);
        record.attributes.set(attr::RESULT, "OK");
        assert_eq!(answer(&record), Some("OK"));
        record.attributes.set("type", 6u32);
        assert_eq!(answer(&record), Some("OK"));
        record.attributes.set("type", 5u32);
        assert_eq!(answer(&record), None);
        record.attributes.set("type", 6u32);
        record.kind = RecordKind::Event;
        assert_eq!(answer(&record), None);
    }
}
