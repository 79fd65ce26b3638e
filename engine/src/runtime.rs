//! The tick thread: the engine core driven by a bounded inbox.
//!
//! The loop ticks as soon as input is waiting and at least every `tick_ms`, so
//! latency stays low when traffic is light and batches grow by themselves when
//! it is heavy (inputs pile up while a tick runs). The inbox is bounded: when
//! the engine falls behind, senders wait, and the device servers stop reading
//! their sockets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::io::{Delta, Input};
use crate::tick::Engine;

/// Settings of the tick thread.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeConfig {
    /// Longest time between two ticks.
    pub tick_ms: u64,
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
            batch_max: 100_000,
            inbox_capacity: 65_536,
            outbox_capacity: 65_536,
        }
    }
}

/// Counters of the tick loop, readable from any thread.
#[derive(Debug, Default)]
pub struct EngineStats {
    pub ticks: AtomicU64,
    pub inputs: AtomicU64,
    pub deltas: AtomicU64,
    pub tick_ns_total: AtomicU64,
    pub tick_ns_max: AtomicU64,
    pub devices: AtomicU64,
}

/// A running engine.
pub struct RunningEngine {
    /// Where the edges send their inputs. The engine stops once every clone is dropped.
    pub inbox: flume::Sender<Input>,
    /// Deltas out of Emit. Must be drained, or the engine stops ticking.
    pub deltas: flume::Receiver<Delta>,
    pub stats: Arc<EngineStats>,
    /// Ends with the engine once the inbox is closed and drained.
    pub thread: JoinHandle<Engine>,
}

/// Starts the tick loop on its own thread.
pub fn spawn(engine: Engine, config: RuntimeConfig) -> std::io::Result<RunningEngine> {
    let (inbox, inputs) = flume::bounded(config.inbox_capacity.max(1));
    let (outbox, deltas) = flume::bounded(config.outbox_capacity.max(1));
    let stats = Arc::new(EngineStats::default());
    let loop_stats = stats.clone();
    let thread = std::thread::Builder::new()
        .name("drover-engine".to_owned())
        .spawn(move || run(engine, config, inputs, outbox, &loop_stats))?;
    Ok(RunningEngine {
        inbox,
        deltas,
        stats,
        thread,
    })
}

fn run(
    mut engine: Engine,
    config: RuntimeConfig,
    inputs: flume::Receiver<Input>,
    outbox: flume::Sender<Delta>,
    stats: &EngineStats,
) -> Engine {
    let period = Duration::from_millis(config.tick_ms.max(1));
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
        engine.tick(wall_clock_ms(), &mut batch, &mut deltas);
        record_tick(stats, started.elapsed(), n, deltas.len() as u64, &engine);
        for delta in deltas.drain(..) {
            // A closed outbox means nobody listens; keep ticking for the state.
            let _ = outbox.send(delta);
        }
        deadline = Instant::now() + period;
    }
    engine
}

fn record_tick(stats: &EngineStats, took: Duration, inputs: u64, deltas: u64, engine: &Engine) {
    let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
    stats.ticks.fetch_add(1, Ordering::Relaxed);
    stats.inputs.fetch_add(inputs, Ordering::Relaxed);
    stats.deltas.fetch_add(deltas, Ordering::Relaxed);
    stats.tick_ns_total.fetch_add(ns, Ordering::Relaxed);
    stats.tick_ns_max.fetch_max(ns, Ordering::Relaxed);
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
