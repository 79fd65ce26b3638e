//! The API's heaviest read: one device's day of history, a page of 1,000
//! positions (`GET /api/v1/devices/{id}/positions` with its defaults).
//!
//! Three steps of the route, each on its own so a change can be pinned to
//! one: reading the page from the embedded history store (fjall range scan
//! and record decoding), decoding alone, and writing the JSON answer. The
//! records are simulated vehicles' (13 OBD attributes each), as the fleet
//! bench's devices send them.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use drover_benches::{START_MS, device_id, fleet_records};
use drover_history::{History, HistoryConfig};
use drover_protocols::model::DeviceMessage;

const PAGE: usize = 1_000;
const DAY_MS: i64 = 86_400_000;

/// One device's page: a record every 10 s from `START_MS`.
fn messages() -> Vec<Arc<DeviceMessage>> {
    fleet_records(1, PAGE, Duration::from_secs(10))
        .into_iter()
        .enumerate()
        .map(|(i, mut record)| {
            record.time_ms = START_MS + i as i64 * 10_000;
            Arc::new(DeviceMessage {
                device: device_id(0),
                protocol: drover_protocols::teltonika::NAME,
                record,
            })
        })
        .collect()
}

fn positions_page(c: &mut Criterion) {
    let messages = messages();
    let mut group = c.benchmark_group("positions_page");
    group.throughput(Throughput::Elements(PAGE as u64));

    let dir = tempfile::tempdir().expect("temporary directory");
    let history = History::open(dir.path(), HistoryConfig::default()).expect("open history");
    history.write(&messages).expect("write");
    let device = device_id(0);
    group.bench_function("store_read_1000", |b| {
        b.iter(|| {
            let page = history
                .positions(device.as_str(), START_MS, START_MS + DAY_MS, PAGE, None)
                .expect("read");
            black_box(page.records.len())
        })
    });

    let encoded: Vec<Vec<u8>> = messages
        .iter()
        .map(|m| drover_journal::record::encode(m).expect("encode"))
        .collect();
    group.bench_function("decode_1000", |b| {
        b.iter(|| {
            encoded
                .iter()
                .map(|bytes| drover_journal::record::decode(bytes).expect("decode"))
                .filter(|m| m.record.fix.is_some())
                .count()
        })
    });

    let records: Vec<_> = messages.iter().map(|m| m.record.clone()).collect();
    group.bench_function("json_1000", |b| {
        b.iter(|| {
            let json = drover_api::positions::page_json(
                device.as_str(),
                START_MS,
                START_MS + DAY_MS,
                &records,
                None,
            )
            .expect("serialize");
            black_box(json.len())
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = positions_page
}
criterion_main!(benches);
