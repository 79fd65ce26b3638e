//! Tick cost at engine-1m's target shape, in CPU time of the tick thread.
//!
//! `cargo run --release -p drover-benches --example engine_ticks -- [DEVICES]
//! [UPDATES] [TICKS] [GEOFENCES]` (defaults 1,000,000, 100,000, 30 and
//! 10,000; `EXECUTOR=multi_threaded` for the parallel executor) populates an
//! engine with every system on, runs `TICKS` ticks of `UPDATES` updates each and prints the
//! percentiles of each tick's wall-clock time and of the CPU time the thread
//! spent in it. On a shared machine the CPU time is the steadier figure: it
//! leaves out the time the thread waited for a core.

use std::time::Instant;

use drover_benches::engine_fleet::{Fleet, GEOFENCES, Setup, next_batch, populate};
use drover_engine::Executor;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let devices = args.next().transpose()?.unwrap_or(1_000_000);
    let updates = args.next().transpose()?.unwrap_or(100_000);
    let ticks = args.next().transpose()?.unwrap_or(30);
    let geofences = args.next().transpose()?.unwrap_or(GEOFENCES);
    let multi = std::env::var("EXECUTOR").is_ok_and(|e| e == "multi_threaded");

    let fleet = Fleet::new(devices);
    let setup = Setup {
        executor: if multi {
            Executor::MultiThreaded
        } else {
            Executor::SingleThreaded
        },
        emit_state: false,
        geofences,
    };
    let mut populated = populate("engine", setup, &fleet);
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    let mut deltas = Vec::new();
    for _ in 0..ticks {
        let (now, mut inputs) = next_batch(&mut populated.cursor, &fleet, updates);
        let (started, cpu_before) = (Instant::now(), thread_cpu_ns()?);
        populated.engine.tick(now, &mut inputs, &mut deltas);
        cpu.push(thread_cpu_ns()? - cpu_before);
        wall.push(started.elapsed().as_nanos() as u64);
        deltas.clear();
    }
    report("wall", &mut wall, updates);
    report("thread CPU", &mut cpu, updates);
    Ok(())
}

/// Nanoseconds this thread has run on a CPU (`/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let first = stat.split_whitespace().next().unwrap_or_default();
    Ok(first.parse()?)
}

fn report(what: &str, ns: &mut [u64], updates: usize) {
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize] as f64 / 1e6;
    println!(
        "{what:>10}: p50 {:.1} ms  p90 {:.1} ms  min {:.1} ms  max {:.1} ms  ({:.0} ns per update at p50)",
        at(0.5),
        at(0.9),
        at(0.0),
        at(1.0),
        at(0.5) * 1e6 / updates as f64
    );
}
