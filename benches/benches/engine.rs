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

use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput};
use criterion::{criterion_group, criterion_main};
use drover_benches::engine_fleet::{
    Fleet, GEOFENCES, Populated, Setup, geofences, next_batch, populate,
};
use drover_benches::{count_label, fleet_records};
use drover_engine::systems::geofences::Geofences;
use drover_engine::{Executor, default_threads, init_compute_pool};

/// The engines compared at each fleet size: name, executor, and whether Emit
/// produces full-state deltas. The server runs with them (its live view is
/// built from them); the variants without show the core's own cost and
/// compare the executors.
const VARIANTS: [(&str, Executor, bool); 3] = [
    ("single_threaded", Executor::SingleThreaded, false),
    ("multi_threaded", Executor::MultiThreaded, false),
    (
        "single_threaded_state_deltas",
        Executor::SingleThreaded,
        true,
    ),
];

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
                    let Populated { engine, cursor } = state.get_or_insert_with(|| {
                        populate(
                            name,
                            Setup {
                                executor,
                                emit_state,
                                geofences: GEOFENCES,
                            },
                            &fleet,
                        )
                    });
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
                let Populated { engine, cursor } = state.get_or_insert_with(|| {
                    populate(
                        name,
                        Setup {
                            executor,
                            emit_state,
                            geofences: GEOFENCES,
                        },
                        &fleet,
                    )
                });
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

/// One fix against the fleet's 10k geofences: the index, then the exact
/// tests of the few whose box holds it.
fn geofence_checks(c: &mut Criterion) {
    let fences = Geofences::new(geofences(GEOFENCES));
    let fixes = fleet_records(64, 64, Duration::from_secs(1));
    let mut group = c.benchmark_group("geofences_10k");
    group.throughput(Throughput::Elements(fixes.len() as u64));
    group.bench_function("containing", |b| {
        b.iter(|| {
            fixes
                .iter()
                .filter_map(|r| r.fix)
                .map(|f| fences.containing(f.lat, f.lon).len())
                .sum::<usize>()
        });
    });
    group.finish();
}

criterion_group!(benches, ticks, geofence_checks);
criterion_main!(benches);
