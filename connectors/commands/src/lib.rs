//! # drover-commands
//!
//! The durable queue of commands for devices and their lifecycle, without
//! sockets or a clock: every time is passed in (ms since the Unix epoch),
//! every state change is fsynced before the call returns, and a node wires
//! the rest.
//!
//! ```text
//! queued ──deliver/mark_sent──▶ sent ──answered──▶ answered
//!   ▲                             │
//!   └── expire: no answer within ─┤ expire: no answer, attempts spent ─▶ failed
//!       answer_timeout, attempts  │ deliver: the protocol cannot carry it ─▶ failed
//!       left                      └ expire: past ttl_secs (queued or sent) ─▶ expired
//! ```
//!
//! A [`CommandRequest`] (the command's JSON form plus `ttl_secs`, default a
//! day, and `attempts`, default 3) becomes a [`CommandRecord`] with a
//! [`CommandId`] that sorts by creation. Records are JSON in fjall
//! (`data_dir/commands`), so fields added later read back from older ones.
//!
//! ```
//! # use drover_commands::*;
//! # use drover_protocols::command::{Command, CommandKind};
//! # use drover_protocols::model::DeviceId;
//! # let dir = tempfile::tempdir().unwrap();
//! let queue = CommandQueue::open(dir.path(), QueueConfig::default())?;
//! let device = DeviceId::new("359339075005244");
//! let request: CommandRequest = serde_json::from_str(r#"{"type":"engine_stop"}"#)?;
//! let queued = queue.submit(&device, request, 1_000)?;
//! queue.deliver(&device, 2_000, |_record| Delivery::Sent)?;
//! let answered = queue.answered(&device, "Cut off the fuel supply: Success!", 3_000)?;
//! assert_eq!(answered.map(|r| r.status), Some(Status::Answered));
//! assert_eq!(queue.get(queued.id)?.and_then(|r| r.result).as_deref(), Some("Cut off the fuel supply: Success!"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Wiring it into a node
//!
//! Open one queue per node, `CommandQueue::open(data_dir.join("commands"),
//! QueueConfig::default())`, and share it in an `Arc`. Every call that
//! changes something waits for an fsync: call it from `spawn_blocking` or a
//! thread of its own, never from a device session's task or the ack path.
//!
//! - **Send what is due to a device** (the one delivery routine; run it
//!   after a submit, when a device connects — `Ingest::connected` — and
//!   for the devices of commands [`CommandQueue::expire`] queued again):
//!
//!   ```ignore
//!   queue.deliver(&device, now_ms(), |record| {
//!       let Some(connection) = registry.get(&device) else { return Delivery::Offline };
//!       match drover_protocols::command::encode(connection.protocol, &record.command) {
//!           Err(refused) => Delivery::Refused(refused.to_string()),
//!           // Never `send`: the closure runs under the queue's lock.
//!           Ok(bytes) => match connection.outgoing.try_send(bytes) {
//!               Ok(()) => Delivery::Sent,
//!               Err(_) => Delivery::Offline,
//!           },
//!       }
//!   })?;
//!   ```
//!
//! - **Complete from the device's answers**: for each decoded record, once
//!   the journal took it, `if let Some(text) =
//!   drover_protocols::command::answer(&message.record)` then
//!   `queue.answered(&message.device, text, now_ms())` — handed to the
//!   commands task through a bounded channel, not called on the ack path.
//!   Not from a journal consumer: a replay after a restart would answer
//!   newer commands with old text.
//! - **Run the clock**: every second or so, `queue.expire(now_ms())`;
//!   deliver to the devices of the records it returns in `Queued`.
//! - **REST**: `POST /api/v1/devices/{id}/commands` deserializes the body
//!   as a [`CommandRequest`] (serde errors → 400), calls
//!   [`CommandQueue::submit`], delivers, and answers `202 {"id", "status"}`
//!   from the returned record. `GET /api/v1/commands/{id}` parses the id
//!   with [`CommandId`]'s `FromStr` (→ 404 when malformed) and calls
//!   [`CommandQueue::get`]; `GET /api/v1/devices/{id}/commands` calls
//!   [`CommandQueue::list`], newest first. A [`CommandRecord`] serializes
//!   as the response body. Errors: [`CommandError::Invalid`] → 400,
//!   [`CommandError::TooMany`] → 429, the storage ones → 500.
//! - **MQTT** `…/devices/{id}/command`: the same body as the POST, then
//!   submit and deliver.

mod id;
mod queue;
mod record;

use drover_protocols::model::DeviceId;

pub use id::{BadCommandId, CommandId};
pub use queue::{CommandQueue, Delivery, QueueConfig};
pub use record::{
    CommandRecord, CommandRequest, DEFAULT_ATTEMPTS, DEFAULT_TTL_SECS, InvalidRequest,
    MAX_ATTEMPTS, MAX_TTL_SECS, Status,
};

/// Everything that can go wrong in the command queue.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("command queue: cannot {what}: {source}")]
    Engine {
        what: &'static str,
        #[source]
        source: fjall::Error,
    },
    #[error("command queue holds an unreadable command {id}: {source}")]
    Corrupt {
        id: CommandId,
        #[source]
        source: serde_json::Error,
    },
    #[error("command queue holds a malformed key in its {0} keyspace")]
    CorruptKey(&'static str),
    #[error("command queue lists command {0} but does not hold it")]
    Missing(CommandId),
    #[error("cannot store command {id}: {source}")]
    Encode {
        id: CommandId,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Invalid(#[from] InvalidRequest),
    #[error("device {device} already has {open} commands waiting; wait for them to end")]
    TooMany { device: DeviceId, open: usize },
    #[error("no command {0}")]
    NotFound(CommandId),
    #[error("command {id} is {status:?}, not queued")]
    NotQueued { id: CommandId, status: Status },
}

impl CommandError {
    fn engine(what: &'static str) -> impl FnOnce(fjall::Error) -> CommandError {
        move |source| CommandError::Engine { what, source }
    }
}
