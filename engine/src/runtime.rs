//! The tick thread: the engine core driven by the committed journal.
//!
//! The engine is a consumer of the journal like the sinks: the node's engine
//! sink hands it committed records in [`Batch`]es with their sequence
//! numbers, through a bounded inbox. A full inbox makes that sink wait and
//! fall back to reading the journal — it never holds back a device's ack,
//! which depends on the fsync alone. Connection changes come from the device
//! servers through the [`Connections`] board, also without waiting.
//!
//! The loop ticks as soon as input is waiting and at least every `tick_ms`, so
//! latency stays low when traffic is light and batches grow by themselves when
//! it is heavy (inputs pile up while a tick runs). Two ticks start at least
//! `min_tick_ms` apart: between them the thread sleeps instead of waiting on
//! the inbox, so senders do not wake it once per batch.
//!
//! What a tick produces never waits for its consumers: device state goes
//! into the [`LiveView`] read model, published after each tick; statuses go
//! to the coalescing [`StatusBoard`] and, with other events, to a drop-oldest
//! [`DeltaQueue`].
//! Every `snapshot_every` the thread captures a [`Snapshot`] between ticks and
//! offers it to the writer (skipped, and counted, while the writer is busy).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use drover_protocols::model::{DeviceId, DeviceMessage};

use crate::connections::Connections;
use crate::desk::{AlertDesk, Answer, DeskInbox};
use crate::io::{Delta, Input};
use crate::outputs::{DeltaQueue, StatusBoard};
use crate::snapshot::Snapshot;
use crate::systems::alerts::SystemCondition;
use crate::systems::geofences::FenceSpec;
use crate::tick::Engine;
use crate::view::LiveView;

/// Settings of the tick thread.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeConfig {
    /// Longest time between two ticks.
    pub tick_ms: u64,
    /// Shortest time between the starts of two ticks (0: tick per arrival).
    pub min_tick_ms: u64,
    /// Most records applied in one tick.
    pub batch_max: usize,
    /// Batches waiting for the engine before the engine sink waits (and
    /// then reads the journal instead).
    pub inbox_capacity: usize,
    /// Deltas waiting for their consumer before the oldest are dropped.
    pub outbox_capacity: usize,
    /// How often a snapshot is offered to the writer; `None`: never.
    pub snapshot_every: Option<Duration>,
    /// The journal's committed end when the node started: records before
    /// it are replays, whose arrival time is unknown ([`Input::Replayed`]).
    pub replay_until: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            tick_ms: 10,
            min_tick_ms: 1,
            batch_max: 100_000,
            inbox_capacity: 16,
            outbox_capacity: 65_536,
            snapshot_every: None,
            replay_until: 0,
        }
    }
}

/// Committed journal records, in sequence order from `first`.
#[derive(Debug, Clone)]
pub struct Batch {
    pub first: u64,
    pub messages: Vec<Arc<DeviceMessage>>,
}

/// Counters of the tick loop, readable from any thread.
#[derive(Debug)]
pub struct EngineStats {
    pub ticks: AtomicU64,
    pub inputs: AtomicU64,
    pub deltas: AtomicU64,
    pub tick_ns_total: AtomicU64,
    pub tick_ns_max: AtomicU64,
    /// The longest tick since the last [`EngineStats::take_recent_max_ns`].
    tick_ns_recent_max: AtomicU64,
    pub devices: AtomicU64,
    /// The journal position the live state covers.
    pub position: AtomicU64,
    /// Records of batches skipped because the world had them already (a
    /// replay after a restart starts at or before the snapshot's position).
    pub duplicates: AtomicU64,
    /// Snapshots handed to the writer, and those skipped while it was busy.
    pub snapshots: AtomicU64,
    pub snapshots_skipped: AtomicU64,
    /// Tick durations in µs since the start: a mean hides the slow ticks
    /// that delay acks, so `/health` and benchmarks report percentiles. One
    /// uncontended lock per tick.
    tick_us: Mutex<hdrhistogram::Histogram<u64>>,
}

/// Longest tick the histogram tells apart, µs (a minute; longer ones saturate).
const MAX_TICK_US: u64 = 60_000_000;

impl Default for EngineStats {
    fn default() -> Self {
        let zero = || AtomicU64::new(0);
        EngineStats {
            ticks: zero(),
            inputs: zero(),
            deltas: zero(),
            tick_ns_total: zero(),
            tick_ns_max: zero(),
            tick_ns_recent_max: zero(),
            devices: zero(),
            position: zero(),
            duplicates: zero(),
            snapshots: zero(),
            snapshots_skipped: zero(),
            tick_us: Mutex::new(
                hdrhistogram::Histogram::new_with_bounds(1, MAX_TICK_US, 2)
                    .expect("constant bounds: low ≥ 1, high ≥ 2 × low, 2 significant digits"),
            ),
        }
    }
}

/// Tick duration percentiles, µs (zeros before the first tick).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TickPercentiles {
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
    pub max: u64,
}

impl EngineStats {
    /// The longest tick since the last call, in ns (0 when none ran).
    pub fn take_recent_max_ns(&self) -> u64 {
        self.tick_ns_recent_max.swap(0, Ordering::Relaxed)
    }

    pub fn tick_percentiles(&self) -> TickPercentiles {
        let h = self.tick_us.lock().unwrap_or_else(PoisonError::into_inner);
        if h.is_empty() {
            return TickPercentiles::default();
        }
        TickPercentiles {
            p50: h.value_at_quantile(0.50),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

/// A running engine.
pub struct RunningEngine {
    /// Where the engine sink sends committed records. The engine stops once
    /// every clone is dropped.
    pub inbox: flume::Sender<Batch>,
    /// Where device sessions note connections opened and closed.
    pub connections: Connections,
    /// Devices' newest online/offline status, for the status publisher.
    pub status: StatusBoard,
    /// Presence changes and other events out of Emit, for stream consumers
    /// (oldest dropped when nobody takes them).
    pub deltas: DeltaQueue,
    /// Trips and alerts that changed, for the node's analytics outputs
    /// (storage, MQTT), apart from the stream's so that neither consumer
    /// takes the other's.
    pub analytics: DeltaQueue,
    /// The live state of every device, published after each tick.
    pub view: LiveView,
    /// Where operators' actions on alerts go.
    pub alerts: AlertDesk,
    /// Where the fleet's geofences go when they change.
    pub geofences: GeofenceBoard,
    /// Where the devices' own speed limits go when they change.
    pub speed_limits: SpeedLimitBoard,
    /// Where the node's sentinels report its own conditions.
    pub system: SystemBoard,
    /// Snapshots for the writer, every `snapshot_every`, and a last one when
    /// the engine stops.
    pub snapshots: flume::Receiver<SnapshotOffer>,
    pub stats: Arc<EngineStats>,
    /// Ends with the engine once the inbox is closed and drained.
    pub thread: JoinHandle<Engine>,
}

/// Settings of the fleet the node hands the tick thread (geofences,
/// speed limits): only the newest value counts, taken before the next tick.
pub struct Board<T>(Arc<Mutex<Option<T>>>);

impl<T> Clone for Board<T> {
    fn clone(&self) -> Self {
        Board(Arc::clone(&self.0))
    }
}

impl<T> Default for Board<T> {
    fn default() -> Self {
        Board(Arc::new(Mutex::new(None)))
    }
}

impl<T> Board<T> {
    /// Replaces the value from the next tick on.
    pub fn replace(&self, value: T) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
    }

    fn take(&self) -> Option<T> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// The fleet's geofences.
pub type GeofenceBoard = Board<Vec<FenceSpec>>;

/// The devices' own speed limits, in km/h.
pub type SpeedLimitBoard = Board<Vec<(DeviceId, f64)>>;

/// Conditions of the node itself (from its sentinels), for the tick
/// thread to hand to the engine before its next tick.
#[derive(Clone, Default)]
pub struct SystemBoard(Arc<Mutex<Vec<SystemCondition>>>);

impl SystemBoard {
    pub fn report(&self, condition: SystemCondition) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(condition);
    }

    fn take(&self) -> Vec<SystemCondition> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A snapshot for the writer, with how many outputs the analytics queue
/// had received when it was taken: a writer that stores it only once its
/// consumer handled that many never lets a restart skip an output.
#[derive(Debug)]
pub struct SnapshotOffer {
    pub snapshot: Snapshot,
    pub analytics_through: u64,
}

/// Starts the tick loop on its own thread.
pub fn spawn(mut engine: Engine, config: RuntimeConfig) -> std::io::Result<RunningEngine> {
    let (inbox, batches) = flume::bounded(config.inbox_capacity.max(1));
    let (snapshot_tx, snapshots) = flume::bounded(1);
    let stats = Arc::new(EngineStats::default());
    let (alerts, desk) = crate::desk::desk();
    let geofences = GeofenceBoard::default();
    let speed_limits = SpeedLimitBoard::default();
    let loop_speed_limits = speed_limits.clone();
    let system = SystemBoard::default();
    let loop_system = system.clone();
    let outputs = Outputs {
        connections: Connections::default(),
        status: StatusBoard::default(),
        deltas: DeltaQueue::new(config.outbox_capacity),
        analytics: DeltaQueue::new(config.outbox_capacity),
        view: LiveView::default(),
        snapshots: snapshot_tx,
    };
    // A restored snapshot arrives without deltas: readers see it from the start.
    let mut edit = outputs.view.edit();
    for state in engine.snapshot() {
        edit.upsert(state);
    }
    edit.publish();
    let running_outputs = outputs.clone();
    let loop_geofences = geofences.clone();
    let loop_stats = Arc::clone(&stats);
    let thread = std::thread::Builder::new()
        .name("drover-engine".to_owned())
        .spawn(move || {
            let mut tick_loop = TickLoop {
                engine,
                config,
                batches,
                outputs,
                stats: loop_stats,
                analytics_pushed: 0,
                desk,
                answers: Vec::new(),
                geofences: loop_geofences,
                speed_limits: loop_speed_limits,
                system: loop_system,
            };
            tick_loop.run();
            tick_loop.engine
        })?;
    Ok(RunningEngine {
        inbox,
        connections: running_outputs.connections,
        status: running_outputs.status,
        deltas: running_outputs.deltas,
        analytics: running_outputs.analytics,
        view: running_outputs.view,
        alerts,
        geofences,
        speed_limits,
        system,
        snapshots,
        stats,
        thread,
    })
}

/// The tick thread's ends of the boards and channels.
#[derive(Clone)]
struct Outputs {
    connections: Connections,
    status: StatusBoard,
    deltas: DeltaQueue,
    analytics: DeltaQueue,
    view: LiveView,
    snapshots: flume::Sender<SnapshotOffer>,
}

struct TickLoop {
    engine: Engine,
    config: RuntimeConfig,
    batches: flume::Receiver<Batch>,
    outputs: Outputs,
    stats: Arc<EngineStats>,
    /// Outputs pushed into the analytics queue so far.
    analytics_pushed: u64,
    desk: DeskInbox,
    /// Where the answers to the actions of the coming tick go, by ticket.
    answers: Vec<(u64, flume::Sender<Answer>)>,
    geofences: GeofenceBoard,
    speed_limits: SpeedLimitBoard,
    system: SystemBoard,
}

impl TickLoop {
    fn run(&mut self) {
        let period = Duration::from_millis(self.config.tick_ms.max(1));
        let gap = Duration::from_millis(self.config.min_tick_ms).min(period);
        let mut inputs = Vec::with_capacity(1024);
        let mut deltas = Vec::with_capacity(1024);
        let mut deadline = Instant::now() + period;
        let every = self.config.snapshot_every;
        let mut next_snapshot = every.map(|every| Instant::now() + every);
        let mut open = true;
        while open {
            open = self.gather(deadline, &mut inputs);
            let started = Instant::now();
            let n = inputs.len() as u64;
            self.take_actions();
            self.engine.tick(wall_clock_ms(), &mut inputs, &mut deltas);
            let took = started.elapsed();
            record_tick(&self.stats, took, n, deltas.len() as u64, &self.engine);
            self.route(&mut deltas);
            self.answer_actions();
            if let (Some(at), Some(every)) = (next_snapshot, every)
                && Instant::now() >= at
            {
                self.offer_snapshot();
                next_snapshot = Some(Instant::now() + every);
            }
            deadline = Instant::now() + period;
            // Batches arriving meanwhile queue up without waking the thread.
            std::thread::sleep((started + gap).saturating_duration_since(Instant::now()));
        }
        if every.is_some() {
            // The last word on a clean stop: a restart replays nothing.
            let last = self.capture();
            let _ = self.outputs.snapshots.send(last);
        }
    }

    /// Hands the operators' waiting actions (and changed fleet settings) to the
    /// engine for this tick.
    fn take_actions(&mut self) {
        if let Some(specs) = self.geofences.take() {
            self.engine.set_geofences(specs);
        }
        if let Some(limits) = self.speed_limits.take() {
            self.engine.set_speed_limits(limits);
        }
        for condition in self.system.take() {
            self.engine.system_condition(condition);
        }
        for (action, reply) in self.desk.take() {
            self.answers.push((action.ticket, reply));
            self.engine.act_on_alert(action);
        }
    }

    /// Answers the actions of the tick, now that its outputs are queued.
    fn answer_actions(&mut self) {
        for outcome in self.engine.take_alert_outcomes() {
            let Some(at) = self.answers.iter().position(|(t, _)| *t == outcome.ticket) else {
                continue;
            };
            let (_, reply) = self.answers.swap_remove(at);
            let _ = reply.send(Answer {
                alert: outcome.alert,
                analytics_through: self.analytics_pushed,
            });
        }
    }

    /// Fills `inputs` with up to `batch_max` records and the connection
    /// changes, waiting for the first batch until `deadline`. `false` once
    /// the inbox is closed.
    fn gather(&mut self, deadline: Instant, inputs: &mut Vec<Input>) -> bool {
        let mut open = true;
        match self.batches.recv_deadline(deadline) {
            Ok(batch) => self.take(batch, inputs),
            Err(flume::RecvTimeoutError::Timeout) => {}
            Err(flume::RecvTimeoutError::Disconnected) => open = false,
        }
        while inputs.len() < self.config.batch_max {
            match self.batches.try_recv() {
                Ok(batch) => self.take(batch, inputs),
                Err(flume::TryRecvError::Empty) => break,
                Err(flume::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        self.outputs.connections.drain_into(inputs);
        open
    }

    /// Appends the records of `batch` the world does not have yet.
    fn take(&mut self, batch: Batch, inputs: &mut Vec<Input>) {
        let position = self.engine.position();
        let count = batch.messages.len() as u64;
        if batch.first > position {
            tracing::warn!(
                from = position,
                to = batch.first,
                "journal records missing from the live state (retired before the engine took them)"
            );
        }
        let skip = position.saturating_sub(batch.first).min(count);
        self.stats.duplicates.fetch_add(skip, Ordering::Relaxed);
        let replay_until = self.config.replay_until;
        inputs.extend((batch.first..).zip(batch.messages).skip(skip as usize).map(
            |(seq, message)| {
                if seq < replay_until {
                    Input::Replayed(message)
                } else {
                    Input::Record(message)
                }
            },
        ));
        self.engine.set_position(position.max(batch.first + count));
    }

    /// State into the view (published once for the tick), statuses to the
    /// board and, as events, to the queue: none of them waits.
    fn route(&mut self, deltas: &mut Vec<Delta>) {
        let mut view = self.outputs.view.edit();
        for delta in deltas.drain(..) {
            match delta {
                Delta::State(state) => view.upsert(*state),
                Delta::Removed { device } => view.remove(&device),
                Delta::Presence {
                    ref device, online, ..
                } => {
                    self.outputs.status.set(device.clone(), online);
                    self.outputs.deltas.push(delta);
                }
                Delta::Trip(_) | Delta::Stop(_) | Delta::Alert(_) => {
                    self.outputs.deltas.push(delta.clone());
                    self.outputs.analytics.push(delta);
                    self.analytics_pushed += 1;
                }
                Delta::Derived(_) | Delta::JobDue(_) => {
                    self.outputs.analytics.push(delta);
                    self.analytics_pushed += 1;
                }
            }
        }
        view.publish();
    }

    fn capture(&mut self) -> SnapshotOffer {
        SnapshotOffer {
            snapshot: self.engine.capture(wall_clock_ms()),
            analytics_through: self.analytics_pushed,
        }
    }

    fn offer_snapshot(&mut self) {
        let offer = self.capture();
        let counter = match self.outputs.snapshots.try_send(offer) {
            Ok(()) => &self.stats.snapshots,
            Err(_) => &self.stats.snapshots_skipped,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn record_tick(stats: &EngineStats, took: Duration, inputs: u64, deltas: u64, engine: &Engine) {
    let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
    stats.ticks.fetch_add(1, Ordering::Relaxed);
    stats.inputs.fetch_add(inputs, Ordering::Relaxed);
    stats.deltas.fetch_add(deltas, Ordering::Relaxed);
    stats.tick_ns_total.fetch_add(ns, Ordering::Relaxed);
    stats.tick_ns_max.fetch_max(ns, Ordering::Relaxed);
    stats.tick_ns_recent_max.fetch_max(ns, Ordering::Relaxed);
    stats
        .tick_us
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .saturating_record((ns / 1000).clamp(1, MAX_TICK_US));
    stats
        .devices
        .store(engine.device_count() as u64, Ordering::Relaxed);
    stats.position.store(engine.position(), Ordering::Relaxed);
}

/// The shell is the only place that reads the wall clock.
fn wall_clock_ms() -> i64 {
    drover_protocols::model::now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EngineConfig;
    use drover_protocols::model::{DeviceId, Record};

    fn message(device: &str, time_ms: i64) -> Arc<DeviceMessage> {
        Arc::new(DeviceMessage {
            device: DeviceId::new(device),
            protocol: "gt06",
            record: Record {
                time_ms,
                ..Record::default()
            },
        })
    }

    fn wait_for_inputs(stats: &EngineStats, n: u64) {
        while stats.inputs.load(Ordering::Relaxed) < n {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn batches_arriving_within_min_tick_ms_share_one_tick() {
        let config = RuntimeConfig {
            tick_ms: 1_000,
            min_tick_ms: 500,
            ..RuntimeConfig::default()
        };
        let running = spawn(Engine::new(EngineConfig::default()), config).unwrap();
        let batch = |n: u64| Batch {
            first: n,
            messages: vec![message(&n.to_string(), 1)],
        };
        running.inbox.send(batch(0)).unwrap();
        wait_for_inputs(&running.stats, 1);
        // The thread now sleeps until 500 ms after that tick began: these
        // queue up without waking it, and are applied together.
        for n in 1..=9 {
            running.inbox.send(batch(n)).unwrap();
        }
        wait_for_inputs(&running.stats, 10);
        assert_eq!(running.stats.ticks.load(Ordering::Relaxed), 2);
        drop(running.inbox);
        let engine = running.thread.join().unwrap();
        assert_eq!(engine.device_count(), 10);
        assert_eq!(engine.position(), 10);
    }

    #[test]
    fn records_the_world_already_has_are_skipped() {
        let mut engine = Engine::new(EngineConfig::default());
        engine.set_position(5);
        let running = spawn(engine, RuntimeConfig::default()).unwrap();
        let messages = (0..8).map(|i| message(&format!("d{i}"), 1)).collect();
        running.inbox.send(Batch { first: 2, messages }).unwrap();
        drop(running.inbox);
        let engine = running.thread.join().unwrap();
        assert_eq!(engine.position(), 10);
        assert_eq!(engine.device_count(), 5, "records 5..10 only");
        assert_eq!(running.stats.duplicates.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn statuses_reach_the_board_even_when_nobody_reads_deltas() {
        let running = spawn(
            Engine::new(EngineConfig::default()),
            RuntimeConfig::default(),
        )
        .unwrap();
        for n in 0..100 {
            running
                .connections
                .opened(DeviceId::new(&n.to_string()), "gt06");
        }
        while running.status.len() < 100 {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(running.inbox);
        let engine = running.thread.join().unwrap();
        assert_eq!(engine.device_count(), 100);
        assert!(running.status.take().values().all(|online| *online));
    }

    #[test]
    fn the_view_shows_restored_devices_and_each_tick_after_it() {
        // Seen now, or the first tick's sweep would forget it.
        let now = wall_clock_ms();
        let mut restored = Engine::new(EngineConfig::default());
        let mut deltas = Vec::new();
        restored.tick(
            now,
            &mut vec![Input::Record(message("old", now))],
            &mut deltas,
        );
        let snapshot = restored.capture(now);
        let mut engine = Engine::new(EngineConfig::default());
        engine.restore(snapshot).unwrap();
        let running = spawn(engine, RuntimeConfig::default()).unwrap();
        let before = running.view.load();
        assert_eq!(
            before.len(),
            1,
            "restored devices are visible before any tick"
        );

        running
            .inbox
            .send(Batch {
                first: 1,
                messages: vec![message("new", 2_000)],
            })
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while running.view.load().len() < 2 {
            assert!(Instant::now() < deadline, "the tick was never published");
            std::thread::sleep(Duration::from_millis(1));
        }
        let after = running.view.load();
        assert!(after.version() > before.version());
        let new = after.get(&DeviceId::new("new")).expect("published");
        assert!(new.presence.online);
        assert_eq!(before.len(), 1, "an old fleet stays as it was");
        drop(running.inbox);
        running.thread.join().unwrap();
    }

    #[test]
    fn a_stopping_engine_hands_over_a_last_snapshot() {
        let config = RuntimeConfig {
            snapshot_every: Some(Duration::from_secs(3600)),
            ..RuntimeConfig::default()
        };
        let running = spawn(Engine::new(EngineConfig::default()), config).unwrap();
        running
            .inbox
            .send(Batch {
                first: 0,
                messages: vec![message("a", 1_000)],
            })
            .unwrap();
        drop(running.inbox);
        let snapshot = running.snapshots.recv().expect("a last snapshot").snapshot;
        assert_eq!(snapshot.position, 1);
        assert_eq!(snapshot.devices.len(), 1);
        running.thread.join().unwrap();
    }
}
