//! The history store (`drover_history`) on Drover's workload
//! (docs/storage.md).
//!
//! 1M position records from 10,000 simulated devices, one per device every
//! 14.4 minutes for one UTC day, arrive in time order and are written with
//! `History::write` in batches of 5,000 (one fsynced commit each), as the
//! history sink writes them. Then: one day of one device (100 records, 24 hour
//! ranges), the latest position of every device, and expiring the day.
//!
//! The engine comparison that chose fjall (fjall, redb, SQLite under three key
//! layouts) is in this file's history; its figures are in docs/storage.md.
//! Not a Criterion bench: one load of 1M records is the measurement.
//! `cargo bench -p drover-benches --bench storage` takes about 15 s on 2 cores.

use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_benches::{START_MS, device_id, disk_bytes, fleet_records};
use drover_history::{History, HistoryConfig};
use drover_protocols::model::DeviceMessage;

const DEVICES: u64 = 10_000;
const PER_DEVICE: usize = 100;
const BATCH: usize = 5_000;
const DAY_MS: i64 = 86_400_000;
/// One report per device every 14.4 min: 100 reports span exactly one day.
const INTERVAL_MS: i64 = DAY_MS / PER_DEVICE as i64;
const QUERIES: usize = 200;

fn main() {
    let messages = workload();
    let bytes: usize = messages
        .iter()
        .map(|m| drover_journal::record::encode(m).map_or(0, |v| v.len()))
        .sum();
    println!(
        "{} records from {DEVICES} devices, {:.0} encoded bytes on average, batches of {BATCH}",
        messages.len(),
        bytes as f64 / messages.len() as f64
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let history = History::open(dir.path(), HistoryConfig::default()).expect("open history");

    let started = Instant::now();
    for batch in messages.chunks(BATCH) {
        history.write(batch).expect("write");
    }
    let elapsed = started.elapsed();
    println!(
        "write: {:.0}k records/s ({:.2} s)",
        messages.len() as f64 / elapsed.as_secs_f64() / 1e3,
        elapsed.as_secs_f64()
    );

    let day = day_query(&history);
    println!("one day of one device (100 records): median {}", human(day));
    let started = Instant::now();
    let latest = history.latest_all().expect("latest_all");
    assert_eq!(latest.len(), DEVICES as usize);
    println!(
        "latest position of {DEVICES} devices: {}",
        human(started.elapsed())
    );

    drop(history);
    println!(
        "disk after closing: {:.0} MB",
        disk_bytes(dir.path()) as f64 / 1e6
    );
    let history = History::open(dir.path(), HistoryConfig::default()).expect("reopen");
    let started = Instant::now();
    let days = history.expire(START_MS + 2 * DAY_MS).expect("expire");
    println!(
        "expire {days} day(s) of 1M records: {}",
        human(started.elapsed())
    );
}

/// The messages in arrival order (by time, devices interleaved).
fn workload() -> Vec<Arc<DeviceMessage>> {
    // The simulator steps every 10 s; the timestamps are then spread over the day.
    let records = fleet_records(DEVICES, PER_DEVICE, Duration::from_secs(10));
    let mut messages = Vec::with_capacity(records.len());
    for round in 0..PER_DEVICE {
        for device in 0..DEVICES {
            let mut record = records[device as usize * PER_DEVICE + round].clone();
            record.time_ms = START_MS + round as i64 * INTERVAL_MS + device as i64 * 86;
            messages.push(Arc::new(DeviceMessage {
                device: device_id(device),
                protocol: drover_protocols::teltonika::NAME,
                record,
            }));
        }
    }
    messages
}

fn day_query(history: &History) -> Duration {
    let mut times = Vec::with_capacity(QUERIES);
    let mut device = 17u64;
    for _ in 0..QUERIES {
        device = (device * 7_919 + 13) % DEVICES;
        let id = device_id(device);
        let started = Instant::now();
        let page = history
            .positions(id.as_str(), START_MS, START_MS + DAY_MS, 1_000, None)
            .expect("positions");
        times.push(started.elapsed());
        assert_eq!(page.records.len(), PER_DEVICE);
    }
    times.sort();
    times[times.len() / 2]
}

fn human(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.1} ms", us / 1_000.0)
    }
}
