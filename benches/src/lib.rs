//! Inputs shared by the Criterion benchmarks in `benches/benches/`.
//!
//! The benches measure Drover's hot paths on realistic data: records come
//! from the simulator's seeded vehicle model ([`drover_sim::vehicle`]), so
//! coordinates, speeds and OBD attributes look like a real city fleet's and
//! every run sees the same bytes. See `benches/README.md` for how to run them.

pub mod engine_fleet;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use drover_protocols::model::{DeviceId, DeviceMessage, Record};
use drover_sim::route::City;
use drover_sim::vehicle::Vehicle;

/// Clock start of every simulated vehicle (2025-11-26 05:00 UTC).
pub const START_MS: i64 = 1_764_133_200_000;

/// Seed of the simulated fleet: same seed, same records.
pub const SEED: u64 = 0x00d2_07e2;

/// First IMEI of the benchmark fleet; device `i` is `IMEI_BASE + i`.
const IMEI_BASE: u64 = 350_000_000_000_000;

/// The records `vehicles` simulated vehicles report, `per_vehicle` each,
/// one every `interval`, ordered vehicle by vehicle and oldest first.
pub fn fleet_records(vehicles: u64, per_vehicle: usize, interval: Duration) -> Vec<Record> {
    let city = City::default();
    let mut records = Vec::with_capacity(vehicles as usize * per_vehicle);
    for index in 0..vehicles {
        let mut vehicle = Vehicle::new(SEED, index, &city, START_MS);
        for _ in 0..per_vehicle {
            vehicle.step(interval);
            records.push(vehicle.record());
        }
    }
    records
}

/// The identity of device number `index` of the benchmark fleet: a 15-digit IMEI.
pub fn device_id(index: u64) -> DeviceId {
    DeviceId::new(&(IMEI_BASE + index).to_string())
}

/// Human-readable count for benchmark names: 10k, 100k, 1M.
pub fn count_label(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// The InfluxDB sink's benchmark points: `devices` devices × `per_device`
/// records, device after device interleaved by time (as a fleet reports),
/// each a `position` line of 7 fields (lat, lon, speed_kmh, course_deg,
/// valid, archived, kind): the simulated fix without altitude, satellites or
/// attributes.
pub fn influx_points(devices: u64, per_device: usize) -> Vec<Arc<DeviceMessage>> {
    let records = fleet_records(devices, per_device, Duration::from_secs(10));
    let mut messages = Vec::with_capacity(records.len());
    for step in 0..per_device {
        for device in 0..devices {
            let mut record = records[device as usize * per_device + step].clone();
            record.attributes = Default::default();
            if let Some(fix) = record.fix.as_mut() {
                fix.altitude_m = None;
                fix.satellites = None;
            }
            messages.push(Arc::new(DeviceMessage {
                device: device_id(device),
                protocol: "teltonika",
                record,
            }));
        }
    }
    messages
}

/// Bytes the files under `dir` take on disk: allocated blocks, as `du`
/// counts them (journals preallocate their files sparsely, so their length
/// says little).
pub fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => disk_bytes(&entry.path()),
            Ok(meta) => meta.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}
