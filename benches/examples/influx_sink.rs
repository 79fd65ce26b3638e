//! InfluxDB sink throughput against a real, private `influxd` (started by
//! `drover-testkit`, so Debian's `influxdb` package must be installed).
//!
//! ```sh
//! cargo run --release -p drover-benches --example influx_sink              # 1,000 devices, 200k points
//! cargo run --release -p drover-benches --example influx_sink -- 500000   # more points
//! ```
//!
//! For 1 and 2 concurrent writers, each on a fresh database: 1,000 devices,
//! 7-field `position` points, `batch_lines` = 5,000, no gzip. The writers share
//! the points (writer `w` takes every batch `b` with `b % writers == w`), so
//! both runs store the same points. Prints points/s from the first request to
//! the last answer, then checks that InfluxDB holds every point.

use std::sync::Arc;
use std::time::Instant;

use drover_benches::influx_points;
use drover_influxdb::{InfluxClient, InfluxConfig};
use drover_protocols::model::DeviceMessage;
use drover_testkit::Influxd;

const DEVICES: u64 = 1000;
const BATCH: usize = 5000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 200_000,
    };
    let per_device = total.div_ceil(DEVICES as usize);
    let points = Arc::new(influx_points(DEVICES, per_device));
    let influxd = Influxd::start()?;
    println!(
        "influxd {} — {} points, {DEVICES} devices, 7 fields, {BATCH}-line batches",
        influxd.url(),
        points.len()
    );
    for writers in [1, 2] {
        let database = format!("bench_{writers}");
        influxd.create_database(&database)?;
        let seconds = run(&influxd, &database, &points, writers).await?;
        let stored = influxd.count(&database, "position", "lat")?;
        println!(
            "{writers} writer(s): {:>9.0} points/s ({:.2} s), {stored} stored",
            points.len() as f64 / seconds,
            seconds
        );
        if stored != points.len() as u64 {
            return Err(format!("{stored} points stored of {}", points.len()).into());
        }
    }
    Ok(())
}

async fn run(
    influxd: &Influxd,
    database: &str,
    points: &Arc<Vec<Arc<DeviceMessage>>>,
    writers: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let client = InfluxClient::new(InfluxConfig {
        url: influxd.url(),
        database: database.to_owned(),
        batch_lines: BATCH,
        ..InfluxConfig::default()
    })?;
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let client = client.clone();
            let points = Arc::clone(points);
            tokio::spawn(async move {
                for (b, batch) in points.chunks(BATCH).enumerate() {
                    if b % writers == w {
                        let report = client.write(batch).await?;
                        assert_eq!(report.stored(), batch.len(), "{report:?}");
                    }
                }
                Ok::<_, drover_influxdb::InfluxError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed().as_secs_f64())
}
