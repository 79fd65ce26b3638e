//! `drover replay`: a journal's records through a fresh engine, with every
//! trip and alert change it produces written as JSON lines — the same JSON
//! as the live stream's `trip` and `alert` messages.
//!
//! The engine's clock follows the records (the newest device time so far),
//! so timeouts — a trip closed by silence, a device gone offline — happen
//! where the recorded data puts them, and the same journal always gives
//! the same lines, with either executor. Records go through in journal
//! order, in ticks of at most [`TICK_RECORDS`] and [`TICK_MS`] of device
//! time. A scenario file (`drover sim --scenario`) replays the same way.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use drover_engine::systems::geofences::FenceSpec;
use drover_engine::{Delta, Engine, Input};
use drover_journal::Journal;
use drover_journal::record;
use drover_protocols::model::DeviceMessage;
use serde::Serialize;

use crate::config::Config;
use crate::{alerts, analytics};

/// Records per tick at most: a few live ticks' worth.
const TICK_RECORDS: usize = 1_000;
/// Device time per tick at most: a live node takes a second's records in
/// about a hundred ticks, never hours of them in one.
const TICK_MS: i64 = 1_000;

/// What a replay saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    pub records: u64,
    pub lines: u64,
}

/// One output line.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line<'a> {
    Trip(drover_mqtt::payload::TripPayload<'a>),
    Stop(drover_mqtt::payload::StopPayload<'a>),
    Alert(drover_mqtt::payload::AlertPayload<'a>),
}

/// Replays the journal in `dir` (of a stopped node: opening it recovers a
/// torn tail, as a start would) with `config`'s analytics, the geofences
/// and speed limits of `catalog` if given, and `flush_ms` of clock after
/// the last record (to let silences end trips); writes the lines to `out`.
pub fn replay(
    dir: &Path,
    config: &Config,
    catalog: Option<&Path>,
    flush_ms: i64,
    out: &mut dyn Write,
) -> anyhow::Result<Replayed> {
    let (journal, _) = Journal::open(dir, config.journal.journal_config())
        .with_context(|| format!("opening the journal in {}", dir.display()))?;
    let mut engine = crate::node::new_engine(config)?;
    if let Some(catalog) = catalog {
        let catalog = drover_catalog::Catalog::open(catalog)
            .with_context(|| format!("opening the catalog in {}", catalog.display()))?;
        crate::fleet_rules::apply(&catalog, &mut engine);
    }
    let records = journal.read_from(journal.first_seq()).map(|entry| {
        let (seq, bytes) = entry.context("reading the journal")?;
        let message = record::decode(&bytes).with_context(|| format!("journal record {seq}"))?;
        Ok(Arc::new(message))
    });
    run(&mut engine, records, flush_ms, out)
}

/// Replays a scenario's records (see `drover_sim::scenario`) with its
/// geofences and `config`'s analytics, like [`replay`].
pub fn replay_records(
    records: Vec<Arc<DeviceMessage>>,
    geofences: Vec<FenceSpec>,
    config: &Config,
    flush_ms: i64,
    out: &mut dyn Write,
) -> anyhow::Result<Replayed> {
    let mut engine = crate::node::new_engine(config)?;
    engine.set_geofences(geofences);
    run(&mut engine, records.into_iter().map(Ok), flush_ms, out)
}

/// Feeds `records` to `engine` in ticks as a live node would take them:
/// at most [`TICK_RECORDS`] and [`TICK_MS`] of device time each, the clock
/// at the newest record so far (so a record counts as live, as it did when
/// it arrived).
fn run(
    engine: &mut Engine,
    records: impl Iterator<Item = anyhow::Result<Arc<DeviceMessage>>>,
    flush_ms: i64,
    out: &mut dyn Write,
) -> anyhow::Result<Replayed> {
    let mut replayed = Replayed::default();
    let (mut inputs, mut deltas) = (Vec::with_capacity(TICK_RECORDS), Vec::new());
    let mut clock = i64::MIN;
    let mut tick_start = i64::MIN;
    for message in records {
        let message = message?;
        let time_ms = message.record.time_ms;
        if !inputs.is_empty() && time_ms.saturating_sub(tick_start) >= TICK_MS {
            engine.tick(clock, &mut inputs, &mut deltas);
            replayed.lines += write(&mut deltas, out)?;
        }
        if inputs.is_empty() {
            tick_start = time_ms;
        }
        clock = clock.max(time_ms);
        inputs.push(Input::Record(message));
        replayed.records += 1;
        if inputs.len() == TICK_RECORDS {
            engine.tick(clock, &mut inputs, &mut deltas);
            replayed.lines += write(&mut deltas, out)?;
        }
    }
    if clock == i64::MIN {
        return Ok(replayed);
    }
    engine.tick(clock, &mut inputs, &mut deltas);
    if flush_ms > 0 {
        engine.tick(clock.saturating_add(flush_ms), &mut inputs, &mut deltas);
    }
    replayed.lines += write(&mut deltas, out)?;
    Ok(replayed)
}

fn write(deltas: &mut Vec<Delta>, out: &mut dyn Write) -> anyhow::Result<u64> {
    let mut lines = 0;
    for delta in deltas.drain(..) {
        let line = match &delta {
            Delta::Trip(trip) => {
                let id = trip.id();
                serde_json::to_string(&Line::Trip(analytics::trip_payload(trip, &id)))?
            }
            Delta::Stop(stop) => {
                let id = stop.id();
                serde_json::to_string(&Line::Stop(analytics::stop_payload(stop, &id)))?
            }
            Delta::Alert(alert) => serde_json::to_string(&Line::Alert(alerts::payload(alert)))?,
            _ => continue,
        };
        writeln!(out, "{line}")?;
        lines += 1;
    }
    Ok(lines)
}
