//! Commands to devices, wired into the node: the durable queue
//! (`drover-commands`) with everything around it that knows about
//! connections, time and MQTT.
//!
//! ```text
//! REST / MQTT …/command ─▶ CommandService::submit ─▶ queue (fsync) ─▶ deliver ─▶ Registry → session → device
//! session: a device connects ─▶ Intake::connected ─try_send─┐
//! pipeline: a committed answer ─▶ Intake::answers ─try_send─┤
//! clock (1 s): expire, re-deliver what it queued again ─────┴─▶ the service task
//! every status change ─try_send─▶ results task ─▶ MQTT …/command/result
//! ```
//!
//! Every queue call waits for an fsync, so it runs on `spawn_blocking`,
//! never on a session's task or the ack path: sessions and the pipeline
//! only `try_send` to the service, and count what a full channel drops. A
//! lost connection notice or a device whose outgoing channel was full leaves
//! commands nobody would deliver; the next clock tick then sweeps every
//! device with open commands.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use drover_api::history::BoxFuture;
use drover_commands::{
    CommandError, CommandId, CommandQueue, CommandRecord, CommandRequest, Delivery, QueueConfig,
    Status,
};
use drover_devices::{Connection, Registry, ToDevice};
use drover_mqtt::{Publisher, ReceivedCommand};
use drover_protocols::command;
use drover_protocols::model::{DeviceId, DeviceMessage, now_ms};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, warn};

use crate::config::Config;
use crate::supervise::Fatal;

/// Devices whose connection the service has not looked at yet; a burst of
/// reconnections beyond it is caught by the next sweep.
const CONNECTED_QUEUE: usize = 4096;
/// Answers waiting for the service; one dropped leaves its command to the
/// answer timeout, which sends it again.
const ANSWER_QUEUE: usize = 1024;
/// Status changes waiting to be published.
const RESULT_QUEUE: usize = 4096;
/// Most notices taken into one blocking queue call.
const BATCH: usize = 256;
const CLOCK: Duration = Duration::from_secs(1);

/// Counters for `/health`.
#[derive(Debug, Default)]
pub struct CommandStats {
    /// Commands queued (REST or MQTT).
    pub submitted: AtomicU64,
    /// Requests refused: bad JSON, invalid, or too many open for the device.
    pub refused: AtomicU64,
    /// Commands written to a device's connection (every attempt).
    pub sent: AtomicU64,
    /// Unanswered in time and queued again.
    pub requeued: AtomicU64,
    pub answered: AtomicU64,
    pub failed: AtomicU64,
    pub expired: AtomicU64,
    /// Connection notices a full channel dropped (a sweep follows).
    pub connects_dropped: AtomicU64,
    /// Answers a full channel dropped (their commands time out and are sent again).
    pub answers_dropped: AtomicU64,
    /// Status changes not published because the MQTT side fell behind.
    pub results_dropped: AtomicU64,
    /// Queue calls that failed on storage.
    pub storage_errors: AtomicU64,
    /// Set when a device may hold due commands nobody is about to deliver:
    /// the next clock tick sweeps every device with open commands.
    sweep: AtomicBool,
}

impl CommandStats {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a status change by what it became.
    fn note(&self, record: &CommandRecord) {
        Self::add(match record.status {
            Status::Queued if record.attempts_made == 0 => &self.submitted,
            Status::Queued => &self.requeued,
            Status::Sent => &self.sent,
            Status::Answered => &self.answered,
            Status::Failed => &self.failed,
            Status::Expired => &self.expired,
        });
    }

    pub fn snapshot(&self) -> serde_json::Value {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        json!({
            "submitted": load(&self.submitted),
            "refused": load(&self.refused),
            "sent": load(&self.sent),
            "requeued": load(&self.requeued),
            "answered": load(&self.answered),
            "failed": load(&self.failed),
            "expired": load(&self.expired),
            "connects_dropped": load(&self.connects_dropped),
            "answers_dropped": load(&self.answers_dropped),
            "results_dropped": load(&self.results_dropped),
            "storage_errors": load(&self.storage_errors),
        })
    }
}

/// What the ack path hands to the service, never waiting: sessions call
/// [`Intake::connected`], the pipeline [`Intake::answers`] after a commit.
#[derive(Clone)]
pub struct Intake {
    connected: flume::Sender<DeviceId>,
    answers: flume::Sender<(DeviceId, String)>,
    stats: Arc<CommandStats>,
}

impl Intake {
    /// `device` has a connection now: its due commands can go.
    pub fn connected(&self, device: DeviceId) {
        if let Err(flume::TrySendError::Full(device)) = self.connected.try_send(device) {
            CommandStats::add(&self.stats.connects_dropped);
            self.stats.sweep.store(true, Ordering::Relaxed);
            debug!(imei = %device, "connection notice dropped; the next sweep delivers");
        }
    }

    /// Hands over the devices' answers to commands among `messages`, which
    /// the journal has taken: an answer counts only once it is durable, like
    /// any record.
    pub fn answers(&self, messages: &[Arc<DeviceMessage>]) {
        for message in messages {
            let Some(text) = command::answer(&message.record) else {
                continue;
            };
            let answer = (message.device.clone(), text.to_owned());
            if let Err(flume::TrySendError::Full((device, _))) = self.answers.try_send(answer) {
                CommandStats::add(&self.stats.answers_dropped);
                warn!(imei = %device, "command answer dropped: the command service is behind; the command will be sent again");
            }
        }
    }
}

/// The service's ends of the [`Intake`] channels.
pub struct Inbox {
    connected: flume::Receiver<DeviceId>,
    answers: flume::Receiver<(DeviceId, String)>,
}

/// The channels between the ack path and the service.
pub fn intake(stats: Arc<CommandStats>) -> (Intake, Inbox) {
    let (connected, connected_rx) = flume::bounded(CONNECTED_QUEUE);
    let (answers, answers_rx) = flume::bounded(ANSWER_QUEUE);
    let intake = Intake {
        connected,
        answers,
        stats,
    };
    let inbox = Inbox {
        connected: connected_rx,
        answers: answers_rx,
    };
    (intake, inbox)
}

/// A status change (a command's record as JSON, or `{"error": …}` for a
/// request that could not be queued) for `{prefix}/devices/{device}/command/result`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub device: String,
    pub json: Vec<u8>,
}

/// Commands in, status changes out; cheap to clone.
#[derive(Clone)]
pub struct CommandService {
    queue: Arc<CommandQueue>,
    registry: Registry,
    results: flume::Sender<Outcome>,
    pub stats: Arc<CommandStats>,
}

impl CommandService {
    /// Opens the queue in `dir` (blocking: call it from `spawn_blocking`).
    /// The receiver gets every status change, for [`publish_results`].
    pub fn open(
        dir: &std::path::Path,
        config: QueueConfig,
        registry: Registry,
        stats: Arc<CommandStats>,
    ) -> Result<(CommandService, flume::Receiver<Outcome>), CommandError> {
        let queue = Arc::new(CommandQueue::open(dir, config)?);
        let (results, outcomes) = flume::bounded(RESULT_QUEUE);
        let service = CommandService {
            queue,
            registry,
            results,
            stats,
        };
        Ok((service, outcomes))
    }

    /// Queues `request` for `device` and sends it at once if the device is
    /// connected. Returns the record as it stands after that.
    pub async fn submit(
        &self,
        device: DeviceId,
        request: CommandRequest,
    ) -> Result<CommandRecord, CommandError> {
        let queue = Arc::clone(&self.queue);
        let target = device.clone();
        let queued =
            self.watch(blocking(move || queue.submit(&target, request, now_ms())).await)?;
        self.publish(&queued);
        let delivered = self.deliver(vec![device], now_ms()).await;
        Ok(delivered
            .into_iter()
            .find(|record| record.id == queued.id)
            .unwrap_or(queued))
    }

    pub async fn get(&self, id: CommandId) -> Result<Option<CommandRecord>, CommandError> {
        let queue = Arc::clone(&self.queue);
        self.watch(blocking(move || queue.get(id)).await)
    }

    /// `device`'s latest `limit` commands, newest first.
    pub async fn list(
        &self,
        device: DeviceId,
        limit: usize,
    ) -> Result<Vec<CommandRecord>, CommandError> {
        let queue = Arc::clone(&self.queue);
        self.watch(blocking(move || queue.list(&device, limit)).await)
    }

    /// Runs until `shutdown`: deliveries on connection, answers, the clock
    /// and, when given, commands from MQTT.
    pub async fn run(
        self,
        inbox: Inbox,
        mqtt: Option<drover_mqtt::Commands>,
        shutdown: CancellationToken,
    ) {
        let mut clock = tokio::time::interval(CLOCK);
        clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                Ok(device) = inbox.connected.recv_async() => {
                    let devices = batch(device, &inbox.connected);
                    self.deliver(devices, now_ms()).await;
                }
                Ok(answer) = inbox.answers.recv_async() => {
                    let answers = batch(answer, &inbox.answers);
                    self.answered(answers, now_ms()).await;
                }
                _ = clock.tick() => self.tick(now_ms()).await,
                Some(received) = next_command(mqtt.as_ref()) => self.take(received).await,
            }
        }
    }

    /// A command from MQTT: the same JSON as the REST POST. What cannot be
    /// queued is answered on the result topic, never fatal.
    async fn take(&self, received: ReceivedCommand) {
        let device = DeviceId::new(&received.device);
        let request = serde_json::from_slice::<CommandRequest>(&received.payload);
        let refusal = match request {
            Err(error) => error.to_string(),
            Ok(request) => match self.submit(device.clone(), request).await {
                Ok(_) => return,
                Err(error) => error.to_string(),
            },
        };
        CommandStats::add(&self.stats.refused);
        warn!(imei = %device, error = %refusal, "MQTT command refused");
        let json = json!({ "error": refusal }).to_string().into_bytes();
        self.send_outcome(Outcome {
            device: received.device,
            json,
        });
    }

    /// Sends what is due to those of `devices` that are connected; returns
    /// the records that changed.
    async fn deliver(&self, devices: Vec<DeviceId>, now: i64) -> Vec<CommandRecord> {
        let connected: Vec<(DeviceId, Connection)> = devices
            .into_iter()
            .filter_map(|device| Some((device.clone(), self.registry.get(&device)?)))
            .collect();
        if connected.is_empty() {
            return Vec::new();
        }
        let (queue, stats) = (Arc::clone(&self.queue), Arc::clone(&self.stats));
        let changed = blocking(move || {
            let mut changed = Vec::new();
            for (device, connection) in connected {
                let sent = queue.deliver(&device, now, |record| send(&connection, record, &stats));
                match sent {
                    Ok(records) => changed.extend(records),
                    Err(error) => storage_error(&stats, &device, &error),
                }
            }
            changed
        })
        .await;
        changed.iter().for_each(|record| self.publish(record));
        changed
    }

    /// Completes the commands the devices answered.
    async fn answered(&self, answers: Vec<(DeviceId, String)>, now: i64) {
        let (queue, stats) = (Arc::clone(&self.queue), Arc::clone(&self.stats));
        let completed = blocking(move || {
            let mut completed = Vec::new();
            for (device, text) in answers {
                match queue.answered(&device, &text, now) {
                    Ok(record) => completed.extend(record),
                    Err(error) => storage_error(&stats, &device, &error),
                }
            }
            completed
        })
        .await;
        completed.iter().for_each(|record| self.publish(record));
    }

    /// Moves commands on by the clock and sends again what it queued again;
    /// sweeps when a delivery may have been missed.
    pub(crate) async fn tick(&self, now: i64) {
        let queue = Arc::clone(&self.queue);
        let changed = match blocking(move || queue.expire(now)).await {
            Ok(changed) => changed,
            Err(error) => {
                CommandStats::add(&self.stats.storage_errors);
                error!(%error, "command queue: cannot expire commands");
                Vec::new()
            }
        };
        changed.iter().for_each(|record| self.publish(record));
        let mut devices: Vec<DeviceId> = changed
            .into_iter()
            .filter(|record| record.status == Status::Queued)
            .map(|record| record.device)
            .collect();
        if self.stats.sweep.swap(false, Ordering::Relaxed) {
            devices.extend(self.open_devices().await);
        }
        devices.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        devices.dedup();
        self.deliver(devices, now).await;
    }

    async fn open_devices(&self) -> Vec<DeviceId> {
        let queue = Arc::clone(&self.queue);
        blocking(move || queue.open_devices())
            .await
            .unwrap_or_else(|error| {
                CommandStats::add(&self.stats.storage_errors);
                error!(%error, "command queue: cannot list devices with open commands");
                Vec::new()
            })
    }

    /// Counts a status change and hands it to the results task.
    fn publish(&self, record: &CommandRecord) {
        self.stats.note(record);
        match serde_json::to_vec(record) {
            Ok(json) => self.send_outcome(Outcome {
                device: record.device.as_str().to_owned(),
                json,
            }),
            Err(error) => {
                warn!(command_id = %record.id, imei = %record.device, %error, "command result not published")
            }
        }
    }

    fn send_outcome(&self, outcome: Outcome) {
        if let Err(flume::TrySendError::Full(outcome)) = self.results.try_send(outcome) {
            CommandStats::add(&self.stats.results_dropped);
            debug!(imei = %outcome.device, "command result not published: MQTT is behind");
        }
    }

    /// Counts and logs the queue's own failures; the request's are the
    /// caller's to report.
    fn watch<T>(&self, result: Result<T, CommandError>) -> Result<T, CommandError> {
        if let Err(error) = &result
            && is_storage(error)
        {
            CommandStats::add(&self.stats.storage_errors);
            error!(%error, "command queue failed");
        }
        result
    }
}

/// The API's view: the same calls, boxed.
impl drover_api::commands::CommandStore for CommandService {
    fn submit(
        &self,
        device: DeviceId,
        request: CommandRequest,
    ) -> BoxFuture<'_, Result<CommandRecord, CommandError>> {
        Box::pin(CommandService::submit(self, device, request))
    }

    fn get(&self, id: CommandId) -> BoxFuture<'_, Result<Option<CommandRecord>, CommandError>> {
        Box::pin(CommandService::get(self, id))
    }

    fn list(
        &self,
        device: DeviceId,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<CommandRecord>, CommandError>> {
        Box::pin(CommandService::list(self, device, limit))
    }
}

/// Whether `error` is the queue's own failure rather than the request's.
fn is_storage(error: &CommandError) -> bool {
    !matches!(
        error,
        CommandError::Invalid(_) | CommandError::TooMany { .. } | CommandError::NotFound(_)
    )
}

fn storage_error(stats: &CommandStats, device: &DeviceId, error: &CommandError) {
    CommandStats::add(&stats.storage_errors);
    error!(imei = %device, %error, "command queue failed");
}

/// Writes `record`'s bytes to the device without waiting: this runs under
/// the queue's lock.
fn send(connection: &Connection, record: &CommandRecord, stats: &CommandStats) -> Delivery {
    let bytes = match command::encode(connection.protocol, &record.command) {
        Ok(bytes) => bytes,
        Err(refused) => return Delivery::Refused(refused.to_string()),
    };
    match connection.outgoing.try_send(ToDevice::Bytes(bytes)) {
        Ok(()) => Delivery::Sent,
        Err(flume::TrySendError::Full(_)) => {
            // The session is busy writing: try again at the next tick.
            stats.sweep.store(true, Ordering::Relaxed);
            Delivery::Offline
        }
        Err(flume::TrySendError::Disconnected(_)) => Delivery::Offline,
    }
}

/// `first` and what else waits in `rx`, up to [`BATCH`].
fn batch<T>(first: T, rx: &flume::Receiver<T>) -> Vec<T> {
    let mut items = vec![first];
    items.extend(rx.try_iter().take(BATCH - 1));
    items
}

/// The next MQTT command; never, without a subscription or once it ended.
async fn next_command(mqtt: Option<&drover_mqtt::Commands>) -> Option<ReceivedCommand> {
    match mqtt {
        Some(commands) => commands.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs a queue call (which waits for an fsync) off the async threads.
async fn blocking<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(call).await {
        Ok(value) => value,
        // A panic in the queue is a bug: it goes on to whoever called (a
        // request ends, the service task fails the node).
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(cancelled) => panic!("command queue call abandoned: {cancelled}"),
        },
    }
}

/// Publishes status changes on MQTT in order until `shutdown`, then what
/// is still queued. Its own task, so that a broker outage holds back
/// results only, never deliveries.
pub async fn publish_results(
    outcomes: flume::Receiver<Outcome>,
    publisher: Publisher,
    shutdown: CancellationToken,
) {
    loop {
        let outcome = tokio::select! {
            () = shutdown.cancelled() => break,
            Ok(outcome) = outcomes.recv_async() => outcome,
        };
        publish_one(&publisher, outcome).await;
    }
    for outcome in outcomes.drain() {
        publish_one(&publisher, outcome).await;
    }
}

async fn publish_one(publisher: &Publisher, outcome: Outcome) {
    if let Err(error) = publisher
        .command_result(&outcome.device, outcome.json)
        .await
    {
        warn!(imei = %outcome.device, %error, "command result not published");
    }
}

/// A node's command service, started.
pub struct Started {
    pub service: CommandService,
    /// For the pipeline.
    pub intake: Intake,
    /// The MQTT commands connection, stopped with the node's other MQTT
    /// connections (after the service).
    pub mqtt_task: tokio::task::JoinHandle<()>,
    pub tasks: CommandTasks,
}

/// The service's core tasks: the service itself and its results publisher.
pub struct CommandTasks {
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl CommandTasks {
    /// Stops the service, then publishes the results it left.
    pub async fn stop(self) {
        self.stop.cancel();
        self.tracker.wait().await;
    }
}

/// Opens `data_dir/commands`, subscribes to MQTT commands and starts the
/// service and its results publisher as core tasks.
pub async fn start(
    config: &Config,
    account: &drover_mqtt::Credentials,
    registry: &Registry,
    publisher: &Publisher,
    mqtt_shutdown: CancellationToken,
    fatal: &Fatal,
) -> anyhow::Result<Started> {
    let dir = config.data_dir.join("commands");
    let stats = Arc::new(CommandStats::default());
    let (service, outcomes) = {
        let (at, queue) = (dir.clone(), config.commands.queue_config());
        let (registry, stats) = (registry.clone(), Arc::clone(&stats));
        tokio::task::spawn_blocking(move || CommandService::open(&at, queue, registry, stats))
            .await?
            .with_context(|| format!("opening the command queue in {}", dir.display()))?
    };
    let (mqtt, mqtt_task) = drover_mqtt::commands::subscribe(&config.mqtt, account, mqtt_shutdown)?;
    let (intake, inbox) = intake(stats);
    let (stop, tracker) = (CancellationToken::new(), TaskTracker::new());
    let run = service.clone().run(inbox, Some(mqtt), stop.clone());
    fatal.spawn(&tracker, "commands", run);
    let results = publish_results(outcomes, publisher.clone(), stop.clone());
    fatal.spawn(&tracker, "command results", results);
    tracker.close();
    Ok(Started {
        service,
        intake,
        mqtt_task,
        tasks: CommandTasks { stop, tracker },
    })
}

// invariant: test code (cfg(test) only): the unwraps and expects below never see device input.
#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use drover_protocols::model::{Record, RecordKind, Value, attr};
    use serde_json::Value as Json;

    use super::*;

    const GT06: &str = "gt06";
    const TELTONIKA: &str = "teltonika";
    const SECOND: i64 = 1000;

    struct Harness {
        service: CommandService,
        outcomes: flume::Receiver<Outcome>,
        registry: Registry,
        _dir: tempfile::TempDir,
    }

    fn harness() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::default();
        let config = QueueConfig {
            answer_timeout: Duration::from_secs(1),
            max_open_per_device: 4,
        };
        let (service, outcomes) =
            CommandService::open(dir.path(), config, registry.clone(), Arc::default()).unwrap();
        Harness {
            service,
            outcomes,
            registry,
            _dir: dir,
        }
    }

    impl Harness {
        /// Registers a connection for `device`, as a session does at login;
        /// returns what the session would write to the device.
        fn connect(&self, device: &DeviceId, protocol: &'static str) -> flume::Receiver<ToDevice> {
            let (outgoing, written) = flume::bounded(8);
            let peer = SocketAddr::from(([127, 0, 0, 1], 40_000));
            let connection = Connection {
                id: 1,
                peer,
                protocol,
                outgoing,
            };
            self.registry.register(device.clone(), connection);
            written
        }

        /// Statuses published so far, in order.
        fn published(&self) -> Vec<Json> {
            self.outcomes
                .try_iter()
                .map(|o| serde_json::from_slice(&o.json).unwrap())
                .collect()
        }

        async fn status(&self, id: CommandId) -> CommandRecord {
            self.service.get(id).await.unwrap().unwrap()
        }

        /// Runs the service task until the returned token is cancelled.
        fn run(&self) -> (Intake, CancellationToken) {
            let (intake, inbox) = intake(Arc::clone(&self.service.stats));
            let stop = CancellationToken::new();
            tokio::spawn(self.service.clone().run(inbox, None, stop.clone()));
            (intake, stop)
        }
    }

    fn request(json: &str) -> CommandRequest {
        serde_json::from_str(json).unwrap()
    }

    fn truck() -> DeviceId {
        DeviceId::new("359339075005244")
    }

    fn stop_engine() -> drover_protocols::command::Command {
        serde_json::from_str(r#"{"type":"engine_stop"}"#).unwrap()
    }

    async fn next_write(written: &flume::Receiver<ToDevice>) -> ToDevice {
        tokio::time::timeout(Duration::from_secs(10), written.recv_async())
            .await
            .expect("a command written to the device in time")
            .unwrap()
    }

    /// Polls the record of `id` until `done`.
    async fn until(
        h: &Harness,
        id: CommandId,
        done: impl Fn(&CommandRecord) -> bool,
    ) -> CommandRecord {
        for _ in 0..500 {
            let record = h.status(id).await;
            if done(&record) {
                return record;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("command {id} never got there: {:?}", h.status(id).await);
    }

    fn answer(device: &DeviceId, text: &str) -> Arc<DeviceMessage> {
        let mut record = Record {
            kind: RecordKind::CommandResult,
            ..Record::default()
        };
        record
            .attributes
            .set(attr::RESULT, Value::Text(text.to_owned()));
        Arc::new(DeviceMessage {
            device: device.clone(),
            protocol: TELTONIKA,
            record,
        })
    }

    #[tokio::test]
    async fn a_command_to_a_connected_device_is_written_at_once() {
        let h = harness();
        let written = h.connect(&truck(), GT06);
        let record = h
            .service
            .submit(truck(), request(r#"{"type":"engine_stop"}"#))
            .await
            .unwrap();
        assert_eq!(record.status, Status::Sent);
        let expected = command::encode(GT06, &stop_engine()).unwrap();
        assert_eq!(written.try_recv().unwrap(), ToDevice::Bytes(expected));
        let statuses: Vec<Json> = h
            .published()
            .into_iter()
            .map(|j| j["status"].clone())
            .collect();
        assert_eq!(statuses, ["queued", "sent"]);
        assert_eq!(h.service.stats.sent.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_command_waits_for_its_device_to_connect() {
        let h = harness();
        let queued = h
            .service
            .submit(truck(), request(r#"{"type":"engine_stop"}"#))
            .await
            .unwrap();
        assert_eq!(queued.status, Status::Queued);
        let (intake, stop) = h.run();
        let written = h.connect(&truck(), TELTONIKA);
        intake.connected(truck());
        let expected = command::encode(TELTONIKA, &stop_engine()).unwrap();
        assert_eq!(next_write(&written).await, ToDevice::Bytes(expected));
        until(&h, queued.id, |r| r.status == Status::Sent).await;
        stop.cancel();
    }

    #[tokio::test]
    async fn a_committed_answer_completes_the_command() {
        let h = harness();
        let _written = h.connect(&truck(), TELTONIKA);
        let sent = h
            .service
            .submit(truck(), request(r#"{"type":"engine_stop"}"#))
            .await
            .unwrap();
        let (intake, stop) = h.run();
        let position = Arc::new(DeviceMessage {
            device: truck(),
            protocol: TELTONIKA,
            record: Record::default(),
        });
        intake.answers(&[position, answer(&truck(), "DOUT1:1 Timeout:INFINITY")]);
        let answered = until(&h, sent.id, |r| r.status == Status::Answered).await;
        assert_eq!(answered.result.as_deref(), Some("DOUT1:1 Timeout:INFINITY"));
        stop.cancel();
        let last = h.published().pop().unwrap();
        assert_eq!(last["status"], "answered");
        assert_eq!(last["result"], "DOUT1:1 Timeout:INFINITY");
    }

    #[tokio::test]
    async fn the_clock_sends_unanswered_commands_again_then_fails_them() {
        let h = harness();
        let written = h.connect(&truck(), GT06);
        let sent = h
            .service
            .submit(truck(), request(r#"{"type":"reboot","attempts":2}"#))
            .await
            .unwrap();
        written.try_recv().unwrap();
        let sent_ms = sent.sent_ms.unwrap();

        // The answer timeout (1 s) passes: queued again, and sent again at once.
        h.service.tick(sent_ms + 1500).await;
        assert!(written.try_recv().is_ok(), "sent a second time");
        let again = h.status(sent.id).await;
        assert_eq!((again.status, again.attempts_made), (Status::Sent, 2));

        h.service.tick(sent_ms + 3000).await;
        assert_eq!(h.status(sent.id).await.status, Status::Failed);
        let statuses: Vec<Json> = h
            .published()
            .into_iter()
            .map(|j| j["status"].clone())
            .collect();
        assert_eq!(statuses, ["queued", "sent", "queued", "sent", "failed"]);
        assert_eq!(h.service.stats.requeued.load(Ordering::Relaxed), 1);
        assert_eq!(h.service.stats.failed.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_command_expires_past_its_ttl() {
        let h = harness();
        let queued = h
            .service
            .submit(truck(), request(r#"{"type":"engine_stop","ttl_secs":1}"#))
            .await
            .unwrap();
        h.service.tick(queued.created_ms + 2 * SECOND).await;
        let expired = h.status(queued.id).await;
        assert_eq!(expired.status, Status::Expired);
        assert_eq!(h.published().pop().unwrap()["status"], "expired");
        assert_eq!(h.service.stats.expired.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_lost_connection_notice_is_made_up_by_the_next_tick() {
        let h = harness();
        let queued = h
            .service
            .submit(truck(), request(r#"{"type":"engine_stop"}"#))
            .await
            .unwrap();
        let written = h.connect(&truck(), GT06);
        // Nobody takes notices: the queue fills and the last one is dropped.
        let (intake, _inbox) = intake(Arc::clone(&h.service.stats));
        for _ in 0..=CONNECTED_QUEUE {
            intake.connected(truck());
        }
        assert_eq!(h.service.stats.connects_dropped.load(Ordering::Relaxed), 1);
        h.service.tick(now_ms()).await;
        assert!(written.try_recv().is_ok());
        assert_eq!(h.status(queued.id).await.status, Status::Sent);
    }

    #[tokio::test]
    async fn mqtt_commands_are_queued_and_bad_ones_answered_with_an_error() {
        let h = harness();
        let received = |payload: &str| ReceivedCommand {
            device: truck().as_str().to_owned(),
            payload: payload.as_bytes().to_vec(),
        };
        h.service.take(received(r#"{"type":"reboot"}"#)).await;
        assert_eq!(h.published()[0]["status"], "queued");
        for bad in [
            "{not json",
            r#"{"type":"fly"}"#,
            r#"{"type":"reboot","attempts":0}"#,
        ] {
            h.service.take(received(bad)).await;
            let published = h.published();
            assert_eq!(published.len(), 1, "{bad}");
            assert!(
                published[0]["error"]
                    .as_str()
                    .is_some_and(|e| !e.is_empty()),
                "{bad}"
            );
        }
        assert_eq!(h.service.stats.refused.load(Ordering::Relaxed), 3);
        assert_eq!(h.service.list(truck(), 10).await.unwrap().len(), 1);
    }
}
