//! The tick thread: the engine core driven by a bounded inbox.
//!
//! The loop ticks as soon as input is waiting and at least every `tick_ms`, so
//! latency stays low when traffic is light and batches grow by themselves when
//! it is heavy (inputs pile up while a tick runs). Two ticks start at least
//! `min_tick_ms` apart: between them the thread sleeps instead of waiting on
//! the inbox, so senders do not wake it once per input (a futex call each, and
//! a whole tick for one record). The inbox is bounded: when
//! the engine falls behind, senders wait, and the device servers stop reading
//! their sockets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::io::{Delta, DeviceState, Input};
use crate::tick::Engine;
use drover_protocols::model::DeviceId;

/// Settings of the tick thread.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeConfig {
    /// Longest time between two ticks.
    pub tick_ms: u64,
    /// Shortest time between the starts of two ticks (0: tick per arrival).
    pub min_tick_ms: u64,
    /// Most inputs applied in one tick.
    pub batch_max: usize,
    /// Inputs waiting for the engine before senders have to wait.
    pub inbox_capacity: usize,
    /// Deltas waiting for their consumer before the tick thread waits.
    pub outbox_capacity: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            tick_ms: 10,
            min_tick_ms: 1,
            batch_max: 100_000,
            inbox_capacity: 65_536,
            outbox_capacity: 65_536,
        }
    }
}

/// Counters of the tick loop, readable from any thread.
#[derive(Debug)]
pub struct EngineStats {
    pub ticks: AtomicU64,
    pub inputs: AtomicU64,
    pub deltas: AtomicU64,
    pub tick_ns_total: AtomicU64,
    pub tick_ns_max: AtomicU64,
    pub devices: AtomicU64,
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
            devices: zero(),
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
    /// Where the edges send their inputs. The engine stops once every clone is dropped.
    pub inbox: flume::Sender<Input>,
    /// Deltas out of Emit. Must be drained, or the engine stops ticking.
    pub deltas: flume::Receiver<Delta>,
    pub stats: Arc<EngineStats>,
    /// Reads of the live state, answered between ticks.
    pub live: LiveState,
    /// Ends with the engine once the inbox is closed and drained.
    pub thread: JoinHandle<Engine>,
}

/// A question about the live state, answered by the tick thread.
enum Query {
    Device(DeviceId, flume::Sender<Option<DeviceState>>),
    All(flume::Sender<Vec<DeviceState>>),
}

/// Asks the tick thread for the live state of devices. The answer is as of
/// the end of a tick; it comes within one `tick_ms`. Cheap to clone.
#[derive(Clone)]
pub struct LiveState {
    queries: flume::Sender<Query>,
}

/// The engine has stopped and answers no more questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the engine has stopped")]
pub struct EngineStopped;

impl LiveState {
    /// One device's live state; `None` for a device the engine never saw.
    pub async fn device(&self, id: DeviceId) -> Result<Option<DeviceState>, EngineStopped> {
        let (tx, rx) = flume::bounded(1);
        self.ask(Query::Device(id, tx))?;
        rx.recv_async().await.map_err(|_| EngineStopped)
    }

    /// Every device's live state, sorted by device id.
    pub async fn all(&self) -> Result<Vec<DeviceState>, EngineStopped> {
        let (tx, rx) = flume::bounded(1);
        self.ask(Query::All(tx))?;
        rx.recv_async().await.map_err(|_| EngineStopped)
    }

    fn ask(&self, query: Query) -> Result<(), EngineStopped> {
        // Bounded: a flood of API reads waits here rather than growing memory.
        self.queries.try_send(query).map_err(|_| EngineStopped)
    }
}

/// Queries waiting for the tick thread; past this a read fails fast.
const QUERY_QUEUE: usize = 1024;

/// Starts the tick loop on its own thread.
pub fn spawn(engine: Engine, config: RuntimeConfig) -> std::io::Result<RunningEngine> {
    let (inbox, inputs) = flume::bounded(config.inbox_capacity.max(1));
    let (outbox, deltas) = flume::bounded(config.outbox_capacity.max(1));
    let (queries, questions) = flume::bounded(QUERY_QUEUE);
    let stats = Arc::new(EngineStats::default());
    let loop_stats = stats.clone();
    let channels = Channels {
        inputs,
        outbox,
        questions,
    };
    let thread = std::thread::Builder::new()
        .name("drover-engine".to_owned())
        .spawn(move || run(engine, config, channels, &loop_stats))?;
    Ok(RunningEngine {
        inbox,
        deltas,
        stats,
        live: LiveState { queries },
        thread,
    })
}

struct Channels {
    inputs: flume::Receiver<Input>,
    outbox: flume::Sender<Delta>,
    questions: flume::Receiver<Query>,
}

fn run(
    mut engine: Engine,
    config: RuntimeConfig,
    channels: Channels,
    stats: &EngineStats,
) -> Engine {
    let Channels {
        inputs,
        outbox,
        questions,
    } = channels;
    let period = Duration::from_millis(config.tick_ms.max(1));
    let gap = Duration::from_millis(config.min_tick_ms).min(period);
    let mut batch = Vec::with_capacity(1024);
    let mut deltas = Vec::with_capacity(1024);
    let mut deadline = Instant::now() + period;
    let mut open = true;
    while open {
        match inputs.recv_deadline(deadline) {
            Ok(input) => batch.push(input),
            Err(flume::RecvTimeoutError::Timeout) => {}
            Err(flume::RecvTimeoutError::Disconnected) => open = false,
        }
        while batch.len() < config.batch_max {
            match inputs.try_recv() {
                Ok(input) => batch.push(input),
                Err(flume::TryRecvError::Empty) => break,
                Err(flume::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        let started = Instant::now();
        let n = batch.len() as u64;
        let earliest_next = started + gap;
        engine.tick(wall_clock_ms(), &mut batch, &mut deltas);
        record_tick(stats, started.elapsed(), n, deltas.len() as u64, &engine);
        for delta in deltas.drain(..) {
            // A closed outbox means nobody listens; keep ticking for the state.
            let _ = outbox.send(delta);
        }
        answer(&mut engine, &questions);
        deadline = Instant::now() + period;
        // Inputs arriving meanwhile queue up without waking the thread.
        std::thread::sleep(earliest_next.saturating_duration_since(Instant::now()));
    }
    engine
}

fn answer(engine: &mut Engine, questions: &flume::Receiver<Query>) {
    // The asker may have given up waiting: a failed send is fine.
    for query in questions.try_iter() {
        match query {
            Query::Device(id, reply) => {
                let _ = reply.send(engine.device(&id));
            }
            Query::All(reply) => {
                let _ = reply.send(engine.snapshot());
            }
        }
    }
}

fn record_tick(stats: &EngineStats, took: Duration, inputs: u64, deltas: u64, engine: &Engine) {
    let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
    stats.ticks.fetch_add(1, Ordering::Relaxed);
    stats.inputs.fetch_add(inputs, Ordering::Relaxed);
    stats.deltas.fetch_add(deltas, Ordering::Relaxed);
    stats.tick_ns_total.fetch_add(ns, Ordering::Relaxed);
    stats.tick_ns_max.fetch_max(ns, Ordering::Relaxed);
    stats
        .tick_us
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .saturating_record((ns / 1000).clamp(1, MAX_TICK_US));
    stats
        .devices
        .store(engine.device_count() as u64, Ordering::Relaxed);
}

/// The shell is the only place that reads the wall clock.
fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EngineConfig;
    use drover_protocols::model::DeviceId;

    fn connected(n: usize) -> Input {
        Input::Connected {
            device: DeviceId::new(&n.to_string()),
            protocol: "gt06",
        }
    }

    fn wait_for_inputs(stats: &EngineStats, n: u64) {
        while stats.inputs.load(Ordering::Relaxed) < n {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn inputs_arriving_within_min_tick_ms_share_one_tick() {
        let config = RuntimeConfig {
            tick_ms: 1_000,
            min_tick_ms: 500,
            ..RuntimeConfig::default()
        };
        let running = spawn(Engine::new(EngineConfig::default()), config).unwrap();
        running.inbox.send(connected(0)).unwrap();
        wait_for_inputs(&running.stats, 1);
        // The thread now sleeps until 500 ms after that tick began: these
        // queue up without waking it, and are applied together.
        for n in 1..=9 {
            running.inbox.send(connected(n)).unwrap();
        }
        wait_for_inputs(&running.stats, 10);
        assert_eq!(running.stats.ticks.load(Ordering::Relaxed), 2);
        drop(running.inbox);
        let engine = running.thread.join().unwrap();
        assert_eq!(engine.device_count(), 10);
    }
}
