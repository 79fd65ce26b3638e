//! The queue on fjall: three keyspaces, changed together in one fsynced
//! batch per call.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use drover_protocols::model::DeviceId;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, OwnedWriteBatch, PersistMode};
use tracing::{debug, info, warn};

use crate::CommandError;
use crate::id::CommandId;
use crate::record::{CommandRecord, CommandRequest, InvalidRequest, Status};

/// The value of index entries: their keys say it all.
const NOTHING: &[u8] = &[];

/// How the queue treats commands once queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// How long a sent command waits for its answer before it is sent
    /// again (or fails, its attempts spent).
    pub answer_timeout: Duration,
    /// Open (queued or sent) commands one device may have; more are refused.
    pub max_open_per_device: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            answer_timeout: Duration::from_secs(60),
            max_open_per_device: 32,
        }
    }
}

/// What [`CommandQueue::deliver`]'s `send` did with a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Its bytes are on their way to the device: it becomes `sent`.
    Sent,
    /// The device has no connection (or it is closing): it stays queued,
    /// and so do the commands after it.
    Offline,
    /// The device's protocol cannot carry it: it fails with this reason.
    Refused(String),
}

/// The durable queue of commands for devices. Share it behind an `Arc`:
/// reads run in parallel, changes take turns.
pub struct CommandQueue {
    db: Database,
    /// Id → the record as JSON.
    commands: Keyspace,
    /// Device key ‖ id → nothing: every command of a device, for `list`.
    by_device: Keyspace,
    /// Device key ‖ id → nothing: the queued and sent ones, so that
    /// `due`, `answered` and `expire` never read ended commands.
    open: Keyspace,
    config: QueueConfig,
    /// Held by every change from its read to its commit, so two changes
    /// of one command cannot interleave and a command is sent once. Holds
    /// the last id handed out.
    writer: Mutex<Option<CommandId>>,
}

impl CommandQueue {
    /// Opens the queue in `dir` (created if needed), as it was left.
    pub fn open(dir: impl AsRef<Path>, config: QueueConfig) -> Result<CommandQueue, CommandError> {
        let dir = dir.as_ref();
        let db = Database::builder(dir)
            .open()
            .map_err(CommandError::engine("open the database"))?;
        let keyspace = |name| {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .map_err(CommandError::engine("open a keyspace"))
        };
        let (commands, by_device, open) = (
            keyspace("commands")?,
            keyspace("by_device")?,
            keyspace("open")?,
        );
        let last = match commands.last_key_value() {
            None => None,
            Some(entry) => {
                let key = entry
                    .key()
                    .map_err(CommandError::engine("read the last id"))?;
                Some(CommandId::from_key(&key).ok_or(CommandError::CorruptKey("commands"))?)
            }
        };
        let queue = CommandQueue {
            db,
            commands,
            by_device,
            open,
            config,
            writer: Mutex::new(last),
        };
        info!(path = %dir.display(), open = queue.open.approximate_len(), "command queue opened");
        Ok(queue)
    }

    /// Queues `request` for `device`, durably.
    pub fn submit(
        &self,
        device: &DeviceId,
        request: CommandRequest,
        now_ms: i64,
    ) -> Result<CommandRecord, CommandError> {
        request.check()?;
        let device_key = device_key(device)?;
        let mut last = self.lock();
        let open = self.open_ids(&device_key)?.len();
        if open >= self.config.max_open_per_device {
            return Err(CommandError::TooMany {
                device: device.clone(),
                open,
            });
        }
        let id = CommandId::next_after(*last, now_ms);
        let record = CommandRecord::queued(id, device.clone(), request, now_ms);
        let mut batch = self.batch();
        self.stage(&mut batch, &record)?;
        batch.insert(&self.by_device, index_key(&device_key, id), NOTHING);
        self.commit(batch)?;
        *last = Some(id);
        info!(command_id = %id, imei = %device, command = record.command.name(), expires_ms = record.expires_ms, "command queued");
        Ok(record)
    }

    pub fn get(&self, id: CommandId) -> Result<Option<CommandRecord>, CommandError> {
        let Some(value) = self
            .commands
            .get(id.to_key())
            .map_err(CommandError::engine("read a command"))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&value)
            .map(Some)
            .map_err(|source| CommandError::Corrupt { id, source })
    }

    /// `device`'s latest `limit` commands, newest first.
    pub fn list(
        &self,
        device: &DeviceId,
        limit: usize,
    ) -> Result<Vec<CommandRecord>, CommandError> {
        // An id no device can have has no commands.
        let Ok(device_key) = device_key(device) else {
            return Ok(Vec::new());
        };
        let mut records = Vec::new();
        for entry in self.by_device.prefix(&device_key).rev().take(limit) {
            let key = entry.key().map_err(CommandError::engine("list commands"))?;
            records.push(self.must_get(id_of(&key, "by_device")?)?);
        }
        Ok(records)
    }

    /// `device`'s queued commands that may be sent at `now_ms`, oldest
    /// first: what to send when it connects.
    pub fn due(&self, device: &DeviceId, now_ms: i64) -> Result<Vec<CommandRecord>, CommandError> {
        let mut due = self.open_records(device)?;
        due.retain(|record| record.is_due(now_ms));
        Ok(due)
    }

    /// The devices with open (queued or sent) commands, each once, in key
    /// order: where to look for commands that nobody delivered, e.g. after
    /// a connection notice was lost.
    pub fn open_devices(&self) -> Result<Vec<DeviceId>, CommandError> {
        let mut devices = Vec::new();
        let mut last: Option<Vec<u8>> = None;
        for entry in self.open.iter() {
            let key = entry
                .key()
                .map_err(CommandError::engine("read open commands"))?;
            let prefix = device_prefix(&key).ok_or(CommandError::CorruptKey("open"))?;
            if last.as_deref() == Some(prefix) {
                continue;
            }
            let id =
                std::str::from_utf8(&prefix[1..]).map_err(|_| CommandError::CorruptKey("open"))?;
            devices.push(DeviceId::new(id));
            last = Some(prefix.to_vec());
        }
        Ok(devices)
    }

    /// Records that command `id` was written to its device.
    pub fn mark_sent(&self, id: CommandId, now_ms: i64) -> Result<CommandRecord, CommandError> {
        let _turn = self.lock();
        let mut record = self.get(id)?.ok_or(CommandError::NotFound(id))?;
        if record.status != Status::Queued {
            return Err(CommandError::NotQueued {
                id,
                status: record.status,
            });
        }
        record.mark_sent(now_ms);
        self.save(&[record.clone()])?;
        Ok(record)
    }

    /// Offers `device`'s due commands, oldest first, to `send`, which
    /// writes each to the device's connection without waiting, and records
    /// what it did; returns the commands that changed. One caller at a
    /// time, so a command is never sent twice by two callers.
    ///
    /// The bytes leave before the change is durable: a crash in between
    /// sends the command again after the restart (at least once).
    pub fn deliver(
        &self,
        device: &DeviceId,
        now_ms: i64,
        mut send: impl FnMut(&CommandRecord) -> Delivery,
    ) -> Result<Vec<CommandRecord>, CommandError> {
        let _turn = self.lock();
        let mut changed = Vec::new();
        for mut record in self.due(device, now_ms)? {
            match send(&record) {
                Delivery::Offline => break,
                Delivery::Sent => record.mark_sent(now_ms),
                Delivery::Refused(reason) => record.fail(reason, now_ms),
            }
            changed.push(record);
        }
        self.save(&changed)?;
        Ok(changed)
    }

    /// Completes `device`'s oldest sent command with its answer `text`
    /// (devices answer in order). A late answer, to a command already
    /// queued again for want of one, completes that command instead of
    /// sending it again. `None` when nothing waits for an answer.
    pub fn answered(
        &self,
        device: &DeviceId,
        text: &str,
        now_ms: i64,
    ) -> Result<Option<CommandRecord>, CommandError> {
        let _turn = self.lock();
        let open = self.open_records(device)?;
        let sent = open.iter().position(|r| r.status == Status::Sent);
        let late = || open.iter().position(|r| r.attempts_made > 0);
        let Some(at) = sent.or_else(late) else {
            debug!(imei = %device, answer = text, "answer with no command waiting for it");
            return Ok(None);
        };
        let mut record = open[at].clone();
        record.answer(text, now_ms);
        self.save(&[record.clone()])?;
        Ok(Some(record))
    }

    /// Moves every open command on by the clock (see [`Status`]): past
    /// their ttl they expire; sent and unanswered for the answer timeout
    /// they are queued again, or fail with no attempts left. Returns those
    /// that changed; the ones queued again are due for their devices.
    pub fn expire(&self, now_ms: i64) -> Result<Vec<CommandRecord>, CommandError> {
        let _turn = self.lock();
        let timeout_ms = i64::try_from(self.config.answer_timeout.as_millis()).unwrap_or(i64::MAX);
        let mut changed = Vec::new();
        for entry in self.open.iter() {
            let key = entry
                .key()
                .map_err(CommandError::engine("read open commands"))?;
            let mut record = self.must_get(id_of(&key, "open")?)?;
            if record.tick(now_ms, timeout_ms) {
                changed.push(record);
            }
        }
        self.save(&changed)?;
        Ok(changed)
    }

    fn lock(&self) -> MutexGuard<'_, Option<CommandId>> {
        // The guarded id is only replaced after a commit: a panic cannot
        // leave it behind the disk.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn batch(&self) -> OwnedWriteBatch {
        self.db.batch().durability(Some(PersistMode::SyncAll))
    }

    fn commit(&self, batch: OwnedWriteBatch) -> Result<(), CommandError> {
        batch
            .commit()
            .map_err(CommandError::engine("commit a change"))
    }

    /// Stores changed records in one durable batch, and says so in the log.
    fn save(&self, records: &[CommandRecord]) -> Result<(), CommandError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut batch = self.batch();
        for record in records {
            self.stage(&mut batch, record)?;
        }
        self.commit(batch)?;
        records.iter().for_each(log_change);
        Ok(())
    }

    /// Adds `record` to `batch`, in the open index while it is open.
    fn stage(
        &self,
        batch: &mut OwnedWriteBatch,
        record: &CommandRecord,
    ) -> Result<(), CommandError> {
        let value = serde_json::to_vec(record).map_err(|source| CommandError::Encode {
            id: record.id,
            source,
        })?;
        batch.insert(&self.commands, record.id.to_key(), value);
        let open_key = index_key(&device_key(&record.device)?, record.id);
        if record.status.is_open() {
            batch.insert(&self.open, open_key, NOTHING);
        } else {
            batch.remove(&self.open, open_key);
        }
        Ok(())
    }

    fn must_get(&self, id: CommandId) -> Result<CommandRecord, CommandError> {
        self.get(id)?.ok_or(CommandError::Missing(id))
    }

    /// `device`'s open commands, oldest first.
    fn open_records(&self, device: &DeviceId) -> Result<Vec<CommandRecord>, CommandError> {
        let Ok(device_key) = device_key(device) else {
            return Ok(Vec::new());
        };
        self.open_ids(&device_key)?
            .into_iter()
            .map(|id| self.must_get(id))
            .collect()
    }

    fn open_ids(&self, device_key: &[u8]) -> Result<Vec<CommandId>, CommandError> {
        self.open
            .prefix(device_key)
            .map(|entry| {
                let key = entry
                    .key()
                    .map_err(CommandError::engine("read open commands"))?;
                id_of(&key, "open")
            })
            .collect()
    }
}

fn log_change(record: &CommandRecord) {
    let (id, device, command) = (record.id, &record.device, record.command.name());
    match record.status {
        Status::Sent => {
            debug!(command_id = %id, imei = %device, command, attempt = record.attempts_made, "command sent")
        }
        Status::Queued => {
            info!(command_id = %id, imei = %device, command, attempts_left = record.attempts_left(), "command unanswered, queued again")
        }
        Status::Answered => {
            info!(command_id = %id, imei = %device, command, result = record.result.as_deref().unwrap_or(""), "command answered")
        }
        Status::Failed | Status::Expired => {
            warn!(command_id = %id, imei = %device, command, status = ?record.status, error = record.error.as_deref().unwrap_or(""), "command ended unanswered")
        }
    }
}

/// A device's prefix in the index keyspaces: its id's length, then the id,
/// so that no device's prefix is another's.
fn device_key(device: &DeviceId) -> Result<Vec<u8>, InvalidRequest> {
    let id = device.as_str().as_bytes();
    let len = u8::try_from(id.len())
        .ok()
        .filter(|&len| len > 0)
        .ok_or(InvalidRequest::Device(id.len()))?;
    let mut key = Vec::with_capacity(1 + id.len() + 16);
    key.push(len);
    key.extend_from_slice(id);
    Ok(key)
}

fn index_key(device_key: &[u8], id: CommandId) -> Vec<u8> {
    [device_key, &id.to_key()].concat()
}

/// The device prefix at the start of an index key (see [`device_key`]).
fn device_prefix(key: &[u8]) -> Option<&[u8]> {
    let len = usize::from(*key.first()?);
    key.get(..1 + len).filter(|_| len > 0)
}

/// The id at the end of an index key.
fn id_of(key: &[u8], keyspace: &'static str) -> Result<CommandId, CommandError> {
    key.len()
        .checked_sub(16)
        .and_then(|at| CommandId::from_key(&key[at..]))
        .ok_or(CommandError::CorruptKey(keyspace))
}
