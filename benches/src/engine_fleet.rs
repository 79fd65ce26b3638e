//! A populated engine and its next inputs, shared by the `engine` bench and
//! the `engine_ticks` example. Every built-in system is on: trips, alerts
//! with a fleet-wide speed limit, 10k geofences over the fleet's city.
//!
//! Every device of the fleet connects and reports once while populating;
//! after that each batch updates distinct devices spread over the whole
//! fleet with the next point of each vehicle's simulated track, so every
//! update really changes the state, as live traffic does. A report's device
//! time is its track point's (one second apart), so speed, acceleration and
//! distance over time are the track's own, and the engine clock follows
//! the reports.

use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_engine::systems::geofences::FenceSpec;
use drover_engine::systems::overspeed::OverspeedRules;
use drover_engine::{AlertConfig, Engine, EngineConfig, Executor, Input};
use drover_protocols::model::{DeviceId, DeviceMessage, Record};
use drover_sim::route::City;

use crate::{START_MS, device_id, fleet_records};

/// Simulated vehicles whose tracks the fleet replays (device `d` drives
/// vehicle `d % VEHICLES`'s track).
const VEHICLES: usize = 64;
/// Points of each track, one per second; the track repeats after them.
const TRACK_LEN: usize = 64;
/// Device time between two points of a track.
const STEP_MS: i64 = 1_000;
/// Devices connected and reported per tick while populating.
const POPULATE_CHUNK: usize = 100_000;
/// Multiplier that scatters a batch's devices over the fleet (a prime, so
/// coprime with the power-of-ten fleet sizes: a batch never repeats a device).
const STRIDE: usize = 7_919;
/// Engine clock advance per tick: the runtime's default tick period.
pub const TICK_MS: i64 = 10;

/// The simulated tracks and the fleet's identities.
pub struct Fleet {
    /// `TRACK_LEN` consecutive records of each of `VEHICLES` vehicles.
    tracks: Vec<Record>,
    pub ids: Vec<DeviceId>,
}

impl Fleet {
    pub fn new(devices: usize) -> Self {
        Fleet {
            tracks: fleet_records(VEHICLES as u64, TRACK_LEN, Duration::from_secs(1)),
            ids: (0..devices as u64).map(device_id).collect(),
        }
    }

    /// Device `d`'s report for step `step` of its track, made at the step's
    /// time.
    pub fn record(&self, d: usize, step: usize) -> Input {
        let vehicle = d % VEHICLES;
        let mut record = self.tracks[vehicle * TRACK_LEN + step % TRACK_LEN].clone();
        record.time_ms = step_time(step);
        Input::Record(Arc::new(DeviceMessage {
            device: self.ids[d].clone(),
            protocol: "teltonika",
            record,
        }))
    }
}

/// Device time of step `step` of every track.
fn step_time(step: usize) -> i64 {
    START_MS + step as i64 * STEP_MS
}

/// An engine holding the whole fleet, and where its inputs are at.
pub struct Populated {
    pub engine: Engine,
    pub cursor: Cursor,
}

/// The engine clock and the batches built so far: what the next batch is.
pub struct Cursor {
    pub now_ms: i64,
    /// Picks the next devices and track points.
    batches: usize,
}

/// Geofences over the fleet's city ([`City::geofence_grid`]).
pub fn geofences(count: usize) -> Vec<FenceSpec> {
    drover_bench::engine::fence_specs(&City::default().geofence_grid(count))
}

/// Geofences in every benchmark engine: the 10k.
pub const GEOFENCES: usize = 10_000;

/// Every built-in system on: the fleet-wide speed limit set, `geofences`
/// geofences ([`GEOFENCES`] in the benches).
pub fn engine(executor: Executor, emit_state: bool, geofences_n: usize) -> Engine {
    let mut engine = Engine::new(EngineConfig {
        executor,
        emit_state,
        alerts: AlertConfig {
            overspeed: OverspeedRules {
                limit_kmh: 50.0,
                ..OverspeedRules::default()
            },
            ..AlertConfig::default()
        },
        ..EngineConfig::default()
    });
    engine.set_geofences(geofences(geofences_n));
    engine
}

/// What a benchmark engine runs: its executor, whether Emit produces full
/// states, and how many geofences it holds.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub executor: Executor,
    pub emit_state: bool,
    pub geofences: usize,
}

pub fn populate(name: &str, setup: Setup, fleet: &Fleet) -> Populated {
    let started = Instant::now();
    let mut engine = engine(setup.executor, setup.emit_state, setup.geofences);
    let mut now_ms = step_time(0);
    let (mut inputs, mut deltas) = (Vec::new(), Vec::new());
    for first in (0..fleet.ids.len()).step_by(POPULATE_CHUNK) {
        now_ms += TICK_MS;
        for d in first..(first + POPULATE_CHUNK).min(fleet.ids.len()) {
            inputs.push(Input::Connected {
                device: fleet.ids[d].clone(),
                protocol: "teltonika",
            });
            inputs.push(fleet.record(d, 0));
        }
        engine.tick(now_ms, &mut inputs, &mut deltas);
        deltas.clear();
    }
    assert_eq!(engine.device_count(), fleet.ids.len());
    eprintln!(
        "populated {name} with {} devices in {:.1} s",
        fleet.ids.len(),
        started.elapsed().as_secs_f64()
    );
    Populated {
        engine,
        cursor: Cursor { now_ms, batches: 0 },
    }
}

/// The inputs of the next tick: `size` updates of distinct devices.
///
/// Every device reports once per pass over the fleet and its track advances
/// one point per report, so a pass is one `STEP_MS` of device time; the
/// engine clock is where the pass has got to, never behind a report.
pub fn next_batch(cursor: &mut Cursor, fleet: &Fleet, size: usize) -> (i64, Vec<Input>) {
    let devices = fleet.ids.len();
    let first = cursor.batches * size;
    let mut inputs = Vec::with_capacity(size);
    for i in 0..size {
        let d = ((first + i) % devices) * STRIDE % devices;
        inputs.push(fleet.record(d, 1 + (first + i) / devices));
    }
    let reached = step_time(1) + ((first + size) as i64 * STEP_MS) / devices as i64;
    cursor.now_ms = reached.max(cursor.now_ms + 1);
    cursor.batches += 1;
    (cursor.now_ms, inputs)
}
