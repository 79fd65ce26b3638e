//! A day of past positions for the fleet's first devices, written into a
//! fresh data directory's history store before `drover serve` opens it, so
//! that the API's history reads find what a node that has run for a day
//! holds: one position per second per device.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use drover_history::{History, HistoryConfig};
use drover_protocols::model::{DeviceId, DeviceMessage};
use drover_sim::SimConfig;
use drover_sim::link::Protocol;
use drover_sim::vehicle::Vehicle;

use crate::report::HistorySeed;

/// One position per second, as the fleet reports at 1 msg/s.
const STEP: Duration = Duration::from_secs(1);
const DAY: Duration = Duration::from_secs(24 * 3600);
/// Records per synced commit, as large as the history sink's batches get.
const BATCH: usize = 10_000;

/// Writes the day up to `now_ms` of the first `devices` devices of `fleet`
/// into the history store of `data_dir`, and closes it.
pub fn write_day(
    data_dir: &Path,
    fleet: &SimConfig,
    devices: u32,
    now_ms: i64,
) -> anyhow::Result<HistorySeed> {
    let started = Instant::now();
    // Where `drover serve` keeps its embedded history (node/src/storage.rs).
    let dir = data_dir.join("history");
    let store = History::open(&dir, HistoryConfig::default())
        .with_context(|| format!("opening {} to write past positions", dir.display()))?;
    let start_ms = now_ms - millis(DAY);
    let per_device = DAY.as_secs() / STEP.as_secs();
    for index in 0..devices {
        let device = DeviceId::new(&fleet.imei(index).to_string());
        let protocol = Protocol::of_device(fleet, index).name();
        let mut vehicle = Vehicle::new(fleet.seed, index.into(), &fleet.city, start_ms);
        let mut batch = Vec::with_capacity(BATCH);
        for n in 1..=per_device {
            vehicle.step(STEP);
            batch.push(Arc::new(DeviceMessage {
                device: device.clone(),
                protocol,
                record: vehicle.record(),
            }));
            if batch.len() == BATCH || n == per_device {
                store.write(&batch).context("writing past positions")?;
                batch.clear();
            }
        }
    }
    Ok(HistorySeed {
        devices,
        positions_per_device: per_device,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_written_for_each_device_and_reads_back() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let fleet = SimConfig::default();
        let now_ms = 1_800_000_000_000;
        let seed = write_day(dir.path(), &fleet, 2, now_ms).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((seed.devices, seed.positions_per_device), (2, 86_400));
        let store = History::open(dir.path().join("history"), HistoryConfig::default())
            .unwrap_or_else(|e| panic!("{e}"));
        for index in 0..2 {
            let id = fleet.imei(index).to_string();
            let latest = store.latest(&id).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(latest.map(|r| r.record.time_ms), Some(now_ms), "{id}");
        }
    }
}
