//! The runner's counts against what the fake servers saw.

use std::time::{Duration, Instant};

use drover_sim::{Report, SimConfig, SimError, run};

use crate::fake_server::{Acks, closed_port, get, start};

pub async fn run_ok(config: SimConfig) -> Report {
    let started = Instant::now();
    let limit = config.duration + config.mqtt_grace + Duration::from_secs(4);
    let report = run(config)
        .await
        .unwrap_or_else(|e| panic!("run failed: {e}"));
    assert!(
        started.elapsed() < limit,
        "run overran: {:?}",
        started.elapsed()
    );
    report
}

pub fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("drover-sim-{}-{name}", std::process::id()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_sent_is_received_and_every_position_acked() {
    let s = start(Acks::Normal, None).await;
    let log_path = temp_path("records.jsonl");
    let report_path = temp_path("report.json");
    let config = SimConfig {
        record_log: Some(log_path.clone()),
        report: Some(report_path.clone()),
        ..s.config.clone()
    };
    let r = run_ok(config).await;
    println!("{r}");

    assert_eq!(r.errors.len(), 0, "{:?}", r.errors);
    assert_eq!(
        (
            r.connections.attempted,
            r.connections.established,
            r.connections.failed
        ),
        (8, 8, 0)
    );
    assert_eq!(r.connections.reconnects, 0);
    assert_eq!((r.devices.gt06, r.devices.teltonika), (4, 4));
    assert_eq!(get(&s.gt06.logins) + get(&s.teltonika.logins), 8);
    assert_eq!(r.login_latency_us.count, 8);

    assert_eq!(r.messages_sent, s.sent_frames());
    assert_eq!(r.records_sent, s.positions());
    assert_eq!(r.acks_received, s.acks());
    assert_eq!(r.records_acked, r.records_sent, "every position acked");
    // Every GT06 tracker's closing heartbeat is acked during the drain,
    // counted but not timed.
    assert!(r.acks_drained >= 4, "{}", r.acks_drained);
    assert_eq!(r.ack_latency_us.count + r.acks_drained, r.acks_received);
    assert!(r.ack_latency_us.p50 > 0 && r.ack_latency_us.max >= r.ack_latency_us.p99);
    // Teltonika: 3 records per packet, one ack each.
    let packets = get(&s.teltonika.frames);
    assert_eq!(get(&s.teltonika.positions), 3 * packets);
    assert_eq!(get(&s.teltonika.acks), packets);
    // About 10 messages/s per device for 1.3–1.5 s each.
    assert!((40..=80).contains(&packets), "{packets} Teltonika packets");
    // GT06: a heartbeat every 4 locations and a final one per device.
    let locations = get(&s.gt06.positions);
    let heartbeats = get(&s.gt06.acks);
    assert!(
        (locations.saturating_sub(12) / 4 + 4..=locations / 4 + 4).contains(&heartbeats),
        "{heartbeats} heartbeats"
    );

    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(lines.len() as u64, r.records_sent);
    assert!(
        lines
            .iter()
            .all(|l| l["acked"] == true && l["lat"].as_f64().is_some())
    );
    let gt06_lines = lines.iter().filter(|l| l["protocol"] == "gt06").count() as u64;
    assert_eq!(gt06_lines, locations);

    let json = std::fs::read_to_string(&report_path).unwrap_or_default();
    let report: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    assert_eq!(report["records_acked"], r.records_acked);
    assert_eq!(report["config"]["codec"], "8e");
    let _ = std::fs::remove_file(log_path);
    let _ = std::fs::remove_file(report_path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_sends_after_each_ack() {
    let s = start(Acks::Normal, None).await;
    let config = SimConfig {
        closed_loop: true,
        duration: Duration::from_millis(800),
        ..s.config.clone()
    };
    let r = run_ok(config).await;
    assert_eq!(r.errors.len(), 0, "{:?}", r.errors);
    assert_eq!(r.messages_sent, s.sent_frames());
    assert_eq!(r.records_acked, r.records_sent);
    // Far beyond the 10 msg/s of the paced runs.
    println!("{r}");
    assert!(r.rates.messages_per_s > 500.0, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_acks_times_out_and_is_retried() {
    let s = start(Acks::LoginOnly, None).await;
    let config = SimConfig {
        ack_timeout: Duration::from_millis(300),
        ..s.config.clone()
    };
    let r = run_ok(config).await;
    assert_eq!(r.records_acked, 0);
    assert!(r.records_sent > 0);
    assert!(
        r.errors.get("ack_timeout").copied().unwrap_or(0) >= 8,
        "{:?}",
        r.errors
    );
    assert!(r.connections.reconnects >= 8, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_listening_is_counted_not_fatal() {
    let closed = closed_port().await;
    let config = SimConfig {
        gt06_port: closed,
        teltonika_port: closed,
        devices: 4,
        duration: Duration::from_millis(1000),
        ramp: Duration::ZERO,
        mqtt: None,
        progress: false,
        ..SimConfig::default()
    };
    let r = run_ok(config).await;
    assert_eq!(r.connections.established, 0);
    assert!(r.connections.failed >= 8, "{r}");
    assert_eq!(r.connections.failed, r.connections.attempted);
    assert_eq!(r.errors.get("connect_refused"), Some(&r.connections.failed));
    assert_eq!(r.messages_sent, 0);
}

#[tokio::test]
async fn an_unreachable_broker_is_an_error() {
    let closed = closed_port().await;
    let config = SimConfig {
        mqtt: Some(format!("mqtt://127.0.0.1:{closed}")),
        progress: false,
        ..SimConfig::default()
    };
    let started = Instant::now();
    assert!(matches!(run(config).await, Err(SimError::Mqtt(_))));
    assert!(started.elapsed() < Duration::from_secs(6));
}
