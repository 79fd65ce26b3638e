//! Engine tick cost: one tick applying a batch of position updates to a
//! fleet that already exists.
//!
//! For each fleet size (10k, 100k, 1M devices) and [`VARIANTS`] entry
//! (executor, full-state deltas or not), an engine is populated once, outside
//! the measurement: every device connects and reports one record. Then each
//! measured iteration is one [`Engine::tick`] over a batch of updates for
//! distinct devices spread over the whole fleet. The batch is built in the
//! `iter_batched` setup (not measured); dropping the deltas is not measured
//! either. Each batch carries newer timestamps and the next point of each
//! vehicle's simulated track, so every update really changes the state (and,
//! with state deltas on, yields one), as live traffic does.
//!
//! The engine clock advances 10 ms per tick (the runtime's default tick
//! period), so the presence sweep (every 1 s of clock time, a pass over the
//! whole fleet) lands in one tick of a hundred, as in the server; the
//! `sweep` benchmark measures an empty tick that runs it, for its share.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput};
use criterion::{criterion_group, criterion_main};
use drover_benches::{START_MS, count_label, device_id, fleet_records};
use drover_engine::{Engine, EngineConfig, Executor, Input, default_threads, init_compute_pool};
use drover_protocols::model::{DeviceId, DeviceMessage, Record};

/// The engines compared at each fleet size: name, executor, and whether Emit
/// produces full-state deltas. The server runs without them until a consumer
/// (the live view) exists, so that is the default here; the last variant shows
/// what they add.
const VARIANTS: [(&str, Executor, bool); 3] = [
    ("single_threaded", Executor::SingleThreaded, false),
    ("multi_threaded", Executor::MultiThreaded, false),
    (
        "single_threaded_state_deltas",
        Executor::SingleThreaded,
        true,
    ),
];

/// Simulated vehicles whose tracks the fleet replays (device `d` drives
/// vehicle `d % VEHICLES`'s track).
const VEHICLES: usize = 64;
/// Points of each track, one per second; the track repeats after them.
const TRACK_LEN: usize = 64;
/// Devices connected and reported per tick while populating.
const POPULATE_CHUNK: usize = 100_000;
/// Multiplier that scatters a batch's devices over the fleet (a prime, so
/// coprime with the power-of-ten fleet sizes: a batch never repeats a device).
const STRIDE: usize = 7_919;
/// Engine clock advance per tick: the runtime's default tick period.
const TICK_MS: i64 = 10;

/// The simulated tracks and the fleet's identities.
struct Fleet {
    /// `TRACK_LEN` consecutive records of each of `VEHICLES` vehicles.
    tracks: Vec<Record>,
    ids: Vec<DeviceId>,
}

impl Fleet {
    fn new(devices: usize) -> Self {
        Fleet {
            tracks: fleet_records(VEHICLES as u64, TRACK_LEN, Duration::from_secs(1)),
            ids: (0..devices as u64).map(device_id).collect(),
        }
    }

    /// Device `d`'s report for step `step` of its track, made at `time_ms`.
    fn record(&self, d: usize, step: usize, time_ms: i64) -> Input {
        let vehicle = d % VEHICLES;
        let mut record = self.tracks[vehicle * TRACK_LEN + step % TRACK_LEN].clone();
        record.time_ms = time_ms;
        Input::Record(Arc::new(DeviceMessage {
            device: self.ids[d].clone(),
            protocol: "teltonika",
            record,
        }))
    }
}

/// An engine holding the whole fleet, and where its inputs are at.
struct Populated {
    engine: Engine,
    cursor: Cursor,
}

/// The engine clock and the batches built so far: what the next batch is.
struct Cursor {
    now_ms: i64,
    /// Picks the next devices and track points.
    batches: usize,
}

fn populate(name: &str, executor: Executor, emit_state: bool, fleet: &Fleet) -> Populated {
    let started = Instant::now();
    let mut engine = Engine::new(EngineConfig {
        executor,
        emit_state,
        ..EngineConfig::default()
    });
    let mut now_ms = START_MS;
    let (mut inputs, mut deltas) = (Vec::new(), Vec::new());
    for first in (0..fleet.ids.len()).step_by(POPULATE_CHUNK) {
        now_ms += TICK_MS;
        for d in first..(first + POPULATE_CHUNK).min(fleet.ids.len()) {
            inputs.push(Input::Connected {
                device: fleet.ids[d].clone(),
                protocol: "teltonika",
            });
            inputs.push(fleet.record(d, 0, now_ms - 500));
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
fn next_batch(cursor: &mut Cursor, fleet: &Fleet, size: usize) -> (i64, Vec<Input>) {
    cursor.now_ms += TICK_MS;
    let devices = fleet.ids.len();
    let first = cursor.batches * size;
    let mut inputs = Vec::with_capacity(size);
    for i in 0..size {
        let d = ((first + i) % devices) * STRIDE % devices;
        // Device d's previous report was at most one batch cycle ago; the
        // track advances one point per report.
        let step = 1 + (first + i) / devices;
        inputs.push(fleet.record(d, step, cursor.now_ms - 500));
    }
    cursor.batches += 1;
    (cursor.now_ms, inputs)
}

fn ticks(c: &mut Criterion) {
    // Sized like the server's: leave a core to the I/O runtime.
    init_compute_pool(default_threads());

    let cases: [(usize, &[usize]); 3] = [
        (10_000, &[10_000]),
        (100_000, &[10_000]),
        (1_000_000, &[10_000, 100_000]),
    ];
    for (devices, batches) in cases {
        let fleet = Fleet::new(devices);
        let mut group = c.benchmark_group(format!("tick_{}_devices", count_label(devices)));
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(if devices >= 1_000_000 {
            10
        } else {
            3
        }));
        for (name, executor, emit_state) in VARIANTS {
            // Populated on first use, so a filter that skips these cases
            // skips the setup too; dropped before the next variant's.
            let mut state: Option<Populated> = None;
            for &size in batches {
                group.throughput(Throughput::Elements(size as u64));
                let id = BenchmarkId::new(name, format!("{}_updates", count_label(size)));
                group.bench_function(id, |b| {
                    let Populated { engine, cursor } =
                        state.get_or_insert_with(|| populate(name, executor, emit_state, &fleet));
                    b.iter_batched(
                        || {
                            let (now, inputs) = next_batch(cursor, &fleet, size);
                            (now, inputs, Vec::with_capacity(size + 16))
                        },
                        |(now, mut inputs, mut deltas)| {
                            engine.tick(now, &mut inputs, &mut deltas);
                            (inputs, deltas)
                        },
                        BatchSize::PerIteration,
                    );
                });
            }
            if emit_state {
                continue; // the sweep emits nothing here: measured once per executor
            }
            // An empty tick one second of clock later: the presence sweep alone.
            group.throughput(Throughput::Elements(devices as u64));
            group.bench_function(BenchmarkId::new(name, "sweep"), |b| {
                let Populated { engine, cursor } =
                    state.get_or_insert_with(|| populate(name, executor, emit_state, &fleet));
                b.iter_batched(
                    || {
                        cursor.now_ms += 1_000;
                        (cursor.now_ms, Vec::new(), Vec::new())
                    },
                    |(now, mut inputs, mut deltas)| {
                        engine.tick(now, &mut inputs, &mut deltas);
                        deltas
                    },
                    BatchSize::PerIteration,
                );
            });
        }
        group.finish();
    }
}

criterion_group!(benches, ticks);
criterion_main!(benches);
