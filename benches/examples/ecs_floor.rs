//! The floor under the engine's tick: what bevy_ecs itself costs when
//! `SYSTEMS` independent systems each update one component of the devices a
//! tick touched, found by change detection as the engine's systems find
//! them, and do no other work.
//!
//! `cargo run --release -p drover-benches --example ecs_floor -- [DEVICES]
//! [UPDATES] [SYSTEMS...]` (defaults 1,000,000, 100,000 and 0 1 5 10 20)
//! spawns `DEVICES` entities with twenty 32-byte components each, then for
//! each count of systems runs 20 ticks that mark `UPDATES` devices spread
//! over the fleet (sorted, as Ingest visits them) and prints the median
//! tick. The difference between two counts is the price of one more
//! system-and-component per update; the count 0 is marking alone.

use std::time::Instant;

use bevy_ecs::prelude::*;
use bevy_ecs::schedule::{ScheduleConfigs, SingleThreadedExecutor};
use bevy_ecs::system::ScheduleSystem;

/// Spreads a tick's devices over the fleet (prime, so no repeats).
const STRIDE: usize = 7_919;
const TICKS: usize = 20;

/// What Ingest would write: the device reported this tick.
#[derive(Component, Default)]
struct Reported(u64);

/// The devices a tick marks.
#[derive(Resource, Default)]
struct Batch(Vec<Entity>);

macro_rules! owned_state {
    ($($component:ident => $system:ident),* $(,)?) => {
        $(
            /// One system's own per-device state, the size of a small
            /// analytics component.
            #[derive(Component, Default)]
            struct $component([u64; 4]);

            fn $system(mut devices: Query<&mut $component, Changed<Reported>>) {
                for mut state in &mut devices {
                    state.0[0] += 1;
                }
            }
        )*

        fn spawn_device(world: &mut World) -> Entity {
            let entity = world.spawn(Reported::default()).id();
            let mut device = world.entity_mut(entity);
            $( device.insert($component::default()); )*
            entity
        }

        fn owned_systems() -> Vec<ScheduleConfigs<ScheduleSystem>> {
            vec![$( $system.into_configs() ),*]
        }
    };
}

owned_state!(
    S0 => s0, S1 => s1, S2 => s2, S3 => s3, S4 => s4,
    S5 => s5, S6 => s6, S7 => s7, S8 => s8, S9 => s9,
    S10 => s10, S11 => s11, S12 => s12, S13 => s13, S14 => s14,
    S15 => s15, S16 => s16, S17 => s17, S18 => s18, S19 => s19,
);

fn mark(batch: Res<Batch>, mut devices: Query<&mut Reported>) {
    for &entity in &batch.0 {
        if let Ok(mut reported) = devices.get_mut(entity) {
            reported.0 += 1;
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>())
        .collect::<Result<Vec<_>, _>>()?;
    let devices = args.first().copied().unwrap_or(1_000_000);
    let updates = args.get(1).copied().unwrap_or(100_000).min(devices);
    let counts = match args.get(2..) {
        Some(counts) if !counts.is_empty() => counts.to_vec(),
        _ => vec![0, 1, 5, 10, 20],
    };

    let mut world = World::new();
    let fleet: Vec<Entity> = (0..devices).map(|_| spawn_device(&mut world)).collect();
    world.insert_resource(Batch::default());
    for systems in counts {
        let mut schedule = Schedule::default();
        schedule.set_executor(SingleThreadedExecutor::new());
        schedule.add_systems(mark);
        for system in owned_systems().into_iter().take(systems) {
            schedule.add_systems(system.after(mark));
        }
        let mut ms = Vec::with_capacity(TICKS);
        for tick in 0..TICKS {
            let mut batch: Vec<Entity> = (0..updates)
                .map(|i| fleet[(tick * updates + i) * STRIDE % devices])
                .collect();
            batch.sort_unstable();
            world.resource_mut::<Batch>().0 = batch;
            let started = Instant::now();
            schedule.run(&mut world);
            ms.push(started.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(f64::total_cmp);
        let p50 = ms[TICKS / 2];
        println!(
            "{devices} devices, {updates} updates, {systems:>2} systems: p50 {p50:.1} ms ({:.0} ns per update)",
            p50 * 1e6 / updates as f64
        );
    }
    Ok(())
}
