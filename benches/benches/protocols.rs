//! Decoder throughput: what one core can frame and decode.
//!
//! Each iteration walks a buffer of back-to-back frames the way the device
//! server does: `check` says how long the next frame is, `decode` turns it
//! into records and the ack, and the output is cleared for the next frame
//! (one reused `Decoded`, as the server keeps one per connection). The frames
//! are built by the protocols' own device encoders from simulated vehicles'
//! records, so they carry realistic coordinates, speeds and OBD values.
//!
//! Throughput is in elements per second: messages for GT06 (one record per
//! message), records for Teltonika (messages/s = records/s ÷ records per
//! packet, which the benchmark name gives).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use drover_benches::{device_id, fleet_records};
use drover_protocols::gt06::{self, Gt06, Gt06Session};
use drover_protocols::model::Record;
use drover_protocols::teltonika::{self, Teltonika, device::Codec};
use drover_protocols::{Check, DecodeOptions, Decoded, Session};

/// Records decoded per iteration, whatever the packet size.
const RECORDS_PER_ITERATION: usize = 256;

/// Realistic records: 32 vehicles reporting every 10 s.
fn records() -> Vec<Record> {
    let per_vehicle = RECORDS_PER_ITERATION / 32;
    fleet_records(32, per_vehicle, Duration::from_secs(10))
}

/// Frames `stream` with `session` and decodes every frame; returns the
/// number of records decoded so the work cannot be optimised away.
fn churn(session: &mut impl Session, stream: &[u8], out: &mut Decoded) -> usize {
    let mut at = 0;
    let mut decoded = 0;
    while at < stream.len() {
        let rest = &stream[at..];
        let Check::Frame(n) = session.check(rest) else {
            panic!("the bench stream holds whole frames only");
        };
        out.clear();
        session.decode(&rest[..n], out).unwrap();
        decoded += out.records.len();
        black_box(&*out);
        at += n;
    }
    decoded
}

fn gt06(c: &mut Criterion) {
    let records = records();
    let stream: Vec<u8> = records
        .iter()
        .enumerate()
        .flat_map(|(serial, r)| gt06::device::location(r, serial as u16))
        .collect();
    let protocol = Gt06::new(DecodeOptions::default());
    let mut session = Gt06Session::identified(&protocol, device_id(0));
    let mut out = Decoded::default();
    assert_eq!(churn(&mut session, &stream, &mut out), records.len());

    let mut group = c.benchmark_group("gt06");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("location_0x22", |b| {
        b.iter(|| churn(&mut session, black_box(&stream), &mut out));
    });
    group.finish();
}

fn teltonika(c: &mut Criterion) {
    let records = records();
    let protocol = Teltonika::new(DecodeOptions::default());
    let mut out = Decoded::default();

    let mut group = c.benchmark_group("teltonika");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(records.len() as u64));
    for (codec, name) in [(Codec::Codec8E, "codec8e"), (Codec::Codec8, "codec8")] {
        for per_packet in [1, 8] {
            let stream: Vec<u8> = records
                .chunks(per_packet)
                .flat_map(|chunk| teltonika::device::avl_packet(codec, chunk))
                .collect();
            let mut session = protocol.session_for(device_id(0));
            assert_eq!(churn(&mut session, &stream, &mut out), records.len());
            let label = if per_packet == 1 { "record" } else { "records" };
            group.bench_function(format!("{name}/{per_packet}_{label}_per_packet"), |b| {
                b.iter(|| churn(&mut session, black_box(&stream), &mut out));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, gt06, teltonika);
criterion_main!(benches);
