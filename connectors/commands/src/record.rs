//! What the queue stores and what it is asked to queue.

use drover_protocols::command::Command;
use drover_protocols::model::DeviceId;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use crate::id::CommandId;

/// How long a command waits for its device by default: a day.
pub const DEFAULT_TTL_SECS: u64 = 86_400;
/// The longest a command may wait: 30 days.
pub const MAX_TTL_SECS: u64 = 30 * 86_400;
/// How many times a command is sent by default before it fails.
pub const DEFAULT_ATTEMPTS: u32 = 3;
/// The most sends a command may ask for.
pub const MAX_ATTEMPTS: u32 = 10;

/// Where a command is in its life.
///
/// ```text
/// queued ──send──▶ sent ──answer──▶ answered
///   ▲               │
///   └─no answer, ───┤ no answer, no attempts left ─▶ failed
///     attempts left │ (or the protocol cannot carry it, from queued)
///                   └ past its ttl (from queued or sent) ─▶ expired
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for its device to be online (or to be sent again).
    Queued,
    /// Written to the device's connection; waiting for the answer.
    Sent,
    /// The device answered; the text is in `result`.
    Answered,
    /// Never answered in its attempts, or refused by the protocol; why is in `error`.
    Failed,
    /// Its time to live ran out before an answer.
    Expired,
}

impl Status {
    /// Whether the command may still be sent or answered.
    pub fn is_open(self) -> bool {
        matches!(self, Status::Queued | Status::Sent)
    }
}

/// One command and everything that happened to it. Stored as JSON: fields
/// added later read back from older records with their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    pub id: CommandId,
    pub device: DeviceId,
    pub command: Command,
    pub status: Status,
    /// When it was submitted (ms since the Unix epoch, as every time here).
    pub created_ms: i64,
    /// When its status last changed.
    pub updated_ms: i64,
    /// When it was last written to the device.
    #[serde(default)]
    pub sent_ms: Option<i64>,
    #[serde(default)]
    pub answered_ms: Option<i64>,
    /// Past this it expires, answered or not.
    pub expires_ms: i64,
    /// How many times it may be sent.
    pub attempts: u32,
    /// How many times it was sent.
    #[serde(default)]
    pub attempts_made: u32,
    /// The device's answer.
    #[serde(default)]
    pub result: Option<String>,
    /// Why it failed or expired.
    #[serde(default)]
    pub error: Option<String>,
}

impl CommandRecord {
    pub fn attempts_left(&self) -> u32 {
        self.attempts.saturating_sub(self.attempts_made)
    }

    /// A new command, queued.
    pub(crate) fn queued(
        id: CommandId,
        device: DeviceId,
        request: CommandRequest,
        now_ms: i64,
    ) -> CommandRecord {
        let ttl_ms = i64::try_from(request.ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        CommandRecord {
            id,
            device,
            command: request.command,
            status: Status::Queued,
            created_ms: now_ms,
            updated_ms: now_ms,
            sent_ms: None,
            answered_ms: None,
            expires_ms: now_ms.saturating_add(ttl_ms),
            attempts: request.attempts,
            attempts_made: 0,
            result: None,
            error: None,
        }
    }

    /// Whether it waits to be sent at `now_ms`.
    pub(crate) fn is_due(&self, now_ms: i64) -> bool {
        self.status == Status::Queued && now_ms < self.expires_ms
    }

    pub(crate) fn mark_sent(&mut self, now_ms: i64) {
        self.status = Status::Sent;
        self.sent_ms = Some(now_ms);
        self.attempts_made = self.attempts_made.saturating_add(1);
        self.updated_ms = now_ms;
    }

    pub(crate) fn answer(&mut self, text: &str, now_ms: i64) {
        self.status = Status::Answered;
        self.result = Some(text.to_owned());
        self.answered_ms = Some(now_ms);
        self.updated_ms = now_ms;
    }

    pub(crate) fn fail(&mut self, error: String, now_ms: i64) {
        self.status = Status::Failed;
        self.error = Some(error);
        self.updated_ms = now_ms;
    }

    /// Moves an open command on by the clock alone: past its ttl it
    /// expires; sent and unanswered for `answer_timeout_ms`, it is queued
    /// again while attempts remain, else it fails. Returns whether it changed.
    pub(crate) fn tick(&mut self, now_ms: i64, answer_timeout_ms: i64) -> bool {
        if !self.status.is_open() {
            return false;
        }
        if now_ms >= self.expires_ms {
            let ttl_secs = self.expires_ms.saturating_sub(self.created_ms) / 1000;
            self.status = Status::Expired;
            self.error = Some(format!("not answered within its ttl of {ttl_secs} s"));
            self.updated_ms = now_ms;
            return true;
        }
        let unanswered = self.status == Status::Sent
            && self
                .sent_ms
                .is_some_and(|sent| now_ms >= sent.saturating_add(answer_timeout_ms));
        if !unanswered {
            return false;
        }
        if self.attempts_left() > 0 {
            self.status = Status::Queued;
            self.updated_ms = now_ms;
        } else {
            let attempts = self.attempts_made;
            self.fail(format!("no answer after {attempts} attempts"), now_ms);
        }
        true
    }
}

/// A request to queue a command, as the API and MQTT receive it: the
/// command's JSON form (see [`Command`]) plus optional `ttl_secs` and
/// `attempts`, every other field refused.
///
/// ```json
/// {"type": "set_interval", "secs": 30, "ttl_secs": 3600, "attempts": 1}
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRequest {
    pub command: Command,
    /// How long the command may wait for its device and its answer,
    /// 1..=[`MAX_TTL_SECS`].
    pub ttl_secs: u64,
    /// How many times it may be sent, 1..=[`MAX_ATTEMPTS`].
    pub attempts: u32,
}

/// Why a request cannot be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    #[error("ttl_secs {0} is outside 1..={MAX_TTL_SECS}")]
    Ttl(u64),
    #[error("attempts {0} is outside 1..={MAX_ATTEMPTS}")]
    Attempts(u32),
    #[error("device id of {0} bytes is outside 1..=255")]
    Device(usize),
}

impl CommandRequest {
    /// `command` with the default time to live and attempts.
    pub fn new(command: Command) -> CommandRequest {
        CommandRequest {
            command,
            ttl_secs: DEFAULT_TTL_SECS,
            attempts: DEFAULT_ATTEMPTS,
        }
    }

    pub(crate) fn check(&self) -> Result<(), InvalidRequest> {
        if !(1..=MAX_TTL_SECS).contains(&self.ttl_secs) {
            return Err(InvalidRequest::Ttl(self.ttl_secs));
        }
        if !(1..=MAX_ATTEMPTS).contains(&self.attempts) {
            return Err(InvalidRequest::Attempts(self.attempts));
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for CommandRequest {
    /// Takes `ttl_secs` and `attempts` out and reads the rest as the
    /// command, which refuses fields it does not know: serde's `flatten`
    /// would let them through.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<CommandRequest, D::Error> {
        let mut fields = serde_json::Map::deserialize(deserializer)?;
        let mut take = |name| fields.remove(name).filter(|v| !v.is_null());
        let ttl_secs = take("ttl_secs")
            .map(serde_json::from_value)
            .transpose()
            .map_err(D::Error::custom)?;
        let attempts = take("attempts")
            .map(serde_json::from_value)
            .transpose()
            .map_err(D::Error::custom)?;
        let command =
            Command::deserialize(serde_json::Value::Object(fields)).map_err(D::Error::custom)?;
        let request = CommandRequest {
            command,
            ttl_secs: ttl_secs.unwrap_or(DEFAULT_TTL_SECS),
            attempts: attempts.unwrap_or(DEFAULT_ATTEMPTS),
        };
        request.check().map_err(D::Error::custom)?;
        Ok(request)
    }
}

// invariant: test code (cfg(test) only): the unwraps and expects below never see outside input.
#[cfg(test)]
mod tests {
    use drover_protocols::command::CommandKind;

    use super::*;

    fn parse(json: &str) -> Result<CommandRequest, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn requests_take_defaults_and_limits() {
        let request = parse(r#"{"type":"engine_stop"}"#).unwrap();
        assert_eq!(request.command.kind(), &CommandKind::EngineStop);
        assert_eq!((request.ttl_secs, request.attempts), (86_400, 3));
        let request =
            parse(r#"{"type":"set_interval","secs":30,"ttl_secs":60,"attempts":1}"#).unwrap();
        assert_eq!(
            request.command.kind(),
            &CommandKind::SetInterval { secs: 30 }
        );
        assert_eq!((request.ttl_secs, request.attempts), (60, 1));
        let nulls = parse(r#"{"type":"reboot","ttl_secs":null,"attempts":null}"#).unwrap();
        assert_eq!((nulls.ttl_secs, nulls.attempts), (86_400, 3));
    }

    #[test]
    fn bad_requests_are_refused() {
        for json in [
            r#"{"type":"engine_stop","ttl":60}"#,
            r#"{"type":"engine_stop","ttl_secs":0}"#,
            r#"{"type":"engine_stop","ttl_secs":2592001}"#,
            r#"{"type":"engine_stop","attempts":0}"#,
            r#"{"type":"engine_stop","attempts":11}"#,
            r#"{"type":"engine_stop","attempts":"3"}"#,
            r#"{"type":"custom"}"#,
            r#"["engine_stop"]"#,
        ] {
            assert!(parse(json).is_err(), "{json} accepted");
        }
    }
}
