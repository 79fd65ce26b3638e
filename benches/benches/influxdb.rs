//! InfluxDB line-protocol encoding: what one core can turn into lines.
//!
//! Each iteration encodes a batch of 5,000 messages into one reused buffer,
//! as the InfluxDB client does for a chunk. Throughput is messages per second.
//!
//! - `seven_fields`: the sink benchmark's points (`influx_points`): one
//!   `position` line of 7 fields each.
//! - `simulated_with_obd`: the simulator's records as they come, attributes
//!   included: a `position` line plus an `obd` line each.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use drover_benches::{device_id, fleet_records, influx_points};
use drover_influxdb::line;
use drover_protocols::model::DeviceMessage;

const BATCH: usize = 5000;

fn encode_all(messages: &[Arc<DeviceMessage>], out: &mut String) -> usize {
    out.clear();
    messages
        .iter()
        .map(|m| line::encode(m, out).expect("benchmark ids are encodable"))
        .sum()
}

fn simulated(devices: u64, per_device: usize) -> Vec<Arc<DeviceMessage>> {
    fleet_records(devices, per_device, Duration::from_secs(10))
        .into_iter()
        .enumerate()
        .map(|(i, record)| {
            Arc::new(DeviceMessage {
                device: device_id(i as u64 / per_device as u64),
                protocol: "teltonika",
                record,
            })
        })
        .collect()
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("influxdb/encode");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut out = String::new();
    for (name, messages) in [
        ("seven_fields", influx_points(1000, BATCH / 1000)),
        ("simulated_with_obd", simulated(1000, BATCH / 1000)),
    ] {
        assert_eq!(messages.len(), BATCH);
        group.bench_function(name, |b| {
            b.iter(|| black_box(encode_all(black_box(&messages), &mut out)))
        });
    }
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
