//! Engine-only load: simulated records fed straight into an engine in this
//! process as if from the journal, blocking on its bounded inbox. Used by
//! `drover sim --in-process` and the `engine-1m` scenario.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use drover_engine::runtime::{Batch, TickPercentiles};
use drover_engine::systems::geofences::FenceSpec;
use drover_sim::scenario::ScenarioFence;
use drover_sim::{InProcessReport, SimConfig};

use drover_node::config::Config;
use drover_node::node;

/// What the simulator fed and what the engine did with it.
#[derive(Debug, Clone)]
pub struct EngineLoad {
    pub sim: InProcessReport,
    pub ticks: u64,
    pub inputs: u64,
    pub devices: u64,
    pub tick_us_mean: u64,
    pub tick_us: TickPercentiles,
}

/// Runs `sim` into a fresh engine configured by `config`, with `geofences`
/// geofences over the simulated city, to the end.
pub fn engine_load(
    config: &Config,
    sim: &SimConfig,
    geofences: usize,
) -> anyhow::Result<EngineLoad> {
    let mut engine = node::new_engine(config)?;
    engine.set_geofences(fence_specs(&sim.city.geofence_grid(geofences)));
    let engine = node::spawn_engine(config, engine, 0)?;
    let mut next = 0;
    let report = drover_sim::run_in_process(sim, |batch| {
        let messages: Vec<_> = batch.into_iter().map(Arc::new).collect();
        let first = next;
        next += messages.len() as u64;
        engine.inbox.send(Batch { first, messages }).is_ok()
    })?;
    drop(engine.inbox);
    let _ = engine.thread.join();
    let s = &engine.stats;
    let ticks = s.ticks.load(Relaxed);
    Ok(EngineLoad {
        sim: report,
        ticks,
        inputs: s.inputs.load(Relaxed),
        devices: s.devices.load(Relaxed),
        tick_us_mean: s.tick_ns_total.load(Relaxed) / ticks.max(1) / 1000,
        tick_us: s.tick_percentiles(),
    })
}

/// The engine's form of a scenario's geofences.
pub fn fence_specs(fences: &[ScenarioFence]) -> Vec<FenceSpec> {
    fences
        .iter()
        .map(|f| {
            FenceSpec::circle(
                &f.id,
                &f.name,
                (f.lat, f.lon),
                f.radius_m,
                f.speed_limit_kmh,
            )
        })
        .collect()
}

impl fmt::Display for EngineLoad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.tick_us;
        write!(
            f,
            "{}\n  engine: {} ticks, {} inputs, {} devices, tick mean {} µs, p50 {} p95 {} p99 {} max {} µs",
            self.sim,
            self.ticks,
            self.inputs,
            self.devices,
            self.tick_us_mean,
            t.p50,
            t.p95,
            t.p99,
            t.max,
        )
    }
}
