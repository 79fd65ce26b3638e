//! Bounded memory: a node whose destinations are all down keeps taking
//! records into its journal, and its memory does not grow with them.
//!
//! The node runs in this process (the `drover-node` library), with the
//! InfluxDB backend and the MQTT broker pointed at closed ports, so every
//! sink falls behind and only the journal and the engine take the records.
//! 2 GB of records later the process holds about what it held before.

use std::sync::Arc;

use drover_devices::Ingest;
use drover_node::Node;
use drover_node::config::{Backend, Config};
use drover_protocols::model::{DeviceId, DeviceMessage, Fix, Record, attr};

/// What the test journals.
const TOTAL_BYTES: u64 = 2_000_000_000;
/// The test fails if the process grew by more than this meanwhile.
const RSS_LIMIT: u64 = 512 << 20;
const DEVICES: u64 = 100;
const BATCH: usize = 500;

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

fn config(dir: &std::path::Path) -> Config {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    config.devices.gt06.listen = String::new();
    config.devices.teltonika.listen = String::new();
    config.http.listen = String::new();
    config.mqtt.embedded_listen = String::new();
    config.mqtt.url = format!("mqtt://127.0.0.1:{}", closed_port());
    config.storage.backend = Backend::Influxdb;
    config.storage.influxdb.url = format!("http://127.0.0.1:{}", closed_port());
    config.journal.max_backlog_mb = 4_000;
    config
}

/// A realistic position with a long text attribute, about 2 KB journaled.
fn message(n: u64) -> DeviceMessage {
    let mut record = Record {
        time_ms: 1_764_000_000_000 + n as i64,
        fix: Some(Fix {
            lat: 52.5 + (n % 1000) as f64 * 1e-4,
            lon: 13.4,
            speed_kmh: 40.0,
            course_deg: 90.0,
            altitude_m: Some(30.0),
            satellites: Some(9),
            valid: true,
        }),
        ..Record::default()
    };
    record.attributes.set(attr::IGNITION, true);
    record.attributes.set(attr::RPM, 2_000i64);
    record.attributes.set(attr::FUEL_LEVEL, 50.0);
    record.attributes.set("note", "x".repeat(1_900));
    DeviceMessage {
        device: DeviceId::new(&format!("35000000000{:04}", n % DEVICES)),
        protocol: drover_protocols::teltonika::NAME,
        record,
    }
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS");
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_sinks_are_down_journals_2_gb_in_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(&config(dir.path()))
        .await
        .expect("the node starts");
    let ingest = node.ingest();
    let journal = Arc::clone(&ingest.journal);
    let baseline = rss_bytes();
    let started = std::time::Instant::now();
    let mut peak = baseline;
    let mut n = 0;
    while journal.current().disk_bytes() < TOTAL_BYTES {
        let batch: Vec<DeviceMessage> = (n..n + BATCH as u64).map(message).collect();
        n += BATCH as u64;
        ingest.submit(batch).await.expect("journaled and acked");
        peak = peak.max(rss_bytes());
    }
    let grown = peak.saturating_sub(baseline);
    println!(
        "journaled {} MB in {n} records in {:.0} s; RSS {} MB at start, peak {} MB (+{} MB)",
        journal.current().disk_bytes() / 1_000_000,
        started.elapsed().as_secs_f64(),
        baseline >> 20,
        peak >> 20,
        grown >> 20
    );
    assert!(
        grown < RSS_LIMIT,
        "the process grew by {} MB while journaling",
        grown >> 20
    );
    node.shutdown().await.expect("a clean stop");
}
