//! `drover bench`: a short smoke run of every scenario (a few seconds, small
//! fleets). Each report must be complete — every field present and sane —
//! and the pipeline must have lost nothing: every record the simulator saw
//! acked was committed by the journal, written by every sink and, when MQTT
//! is watched, published. Never a speed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::Process;

/// Runs `drover bench ARGS --out DIR` to its end and returns the report of `scenario`.
fn bench(dir: &Path, args: &[&str], scenarios: &[&str]) -> Vec<Value> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_drover"));
    command
        .arg("bench")
        .args(scenarios)
        .args(args)
        .arg("--out")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("bench.err")).expect("creating bench.err"));
    let status = Process::spawn("drover bench", &mut command).wait_exit(Duration::from_secs(300));
    let err = || std::fs::read_to_string(dir.join("bench.err")).unwrap_or_default();
    assert!(
        status.success(),
        "drover bench failed ({status}):\n{}",
        err()
    );
    scenarios
        .iter()
        .map(|name| {
            let path = dir.join(format!("{name}.json"));
            let report: Value =
                serde_json::from_slice(&std::fs::read(&path).expect("report written"))
                    .expect("report is JSON");
            assert!(
                dir.join(format!("{name}.txt")).exists(),
                "summary of {name}"
            );
            report
        })
        .collect()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Percentiles present, ordered and from some samples.
fn check_latency(l: &Value, what: &str) {
    assert!(u(&l["count"]) > 0, "{what}: no samples: {l}");
    let (p50, p95, p99, max) = (u(&l["p50"]), u(&l["p95"]), u(&l["p99"]), u(&l["max"]));
    assert!(
        p50 > 0 && p50 <= p95 && p95 <= p99 && p99 <= max,
        "{what}: {l}"
    );
}

fn check_common(report: &Value) {
    let machine = &report["machine"];
    assert!(u(&machine["cores"]) >= 1, "{machine}");
    assert!(u(&machine["memory_bytes"]) > 0, "{machine}");
    assert!(u(&machine["nofile_limit"]) > 0, "{machine}");
    assert!(
        report["date"].as_str().is_some_and(|d| d.len() >= 20),
        "{report}"
    );
    assert!(!report["runs"].as_array().expect("runs").is_empty());
}

/// A network run against a spawned `drover serve`: every field, no loss.
fn check_network_run(run: &Value, dir: &Path, with_null: bool) {
    let id = run["id"].as_str().expect("id");
    let t = &run["throughput"];
    let positions = u(&t["positions_acked"]);
    assert!(positions > 0, "{id}: nothing acked: {t}");
    for key in [
        "positions_per_s",
        "positions_per_s_sustained",
        "records_per_s",
        "messages_per_s",
    ] {
        assert!(f(&t[key]) > 0.0, "{id}: {key}: {t}");
    }
    check_latency(&run["latency_us"]["ack"], "ack");
    check_latency(&run["latency_us"]["device_to_mqtt"], "device→MQTT");
    let cpu = &run["cpu"];
    assert!(
        f(&cpu["seconds"]) > 0.0 && f(&cpu["seconds_per_1k_positions"]) > 0.0,
        "{id}: {cpu}"
    );
    let m = &run["memory"];
    assert!(u(&m["rss_baseline_bytes"]) > 0, "{id}: {m}");
    assert!(
        u(&m["rss_peak_bytes"]) >= u(&m["rss_baseline_bytes"]),
        "{id}: {m}"
    );
    assert!(u(&m["rss_end_bytes"]) > 0, "{id}: {m}");
    assert!(u(&m["rss_per_connection_bytes"]) > 0, "{id}: {m}");
    let c = &run["connections"];
    assert_eq!(c["established"], run["load"]["devices"], "{id}: {c}");
    assert_eq!(c["failed"], 0, "{id}: {c}");
    let e = &run["engine"];
    assert!(u(&e["ticks"]) > 0 && u(&e["inputs"]) > 0, "{id}: {e}");
    let tick = &e["tick_us"];
    assert!(
        u(&tick["p50"]) <= u(&tick["p99"]) && u(&tick["p99"]) <= u(&tick["max"]),
        "{id}: {e}"
    );
    let j = &run["journal"];
    assert_eq!(j["commit_ms"], 2, "{id}: the default group commit: {j}");
    assert_eq!(j["fsync_before_ack"], true, "{id}: {j}");
    assert!(u(&j["fsyncs"]) > 0 && u(&j["commits"]) > 0, "{id}: {j}");
    let committed = u(&j["acked_records"]);
    assert!(
        committed >= positions,
        "{id}: the journal committed less than was acked: {j}"
    );
    let sinks = run["sinks"].as_array().expect("sinks");
    let names: Vec<&str> = sinks.iter().filter_map(|s| s["name"].as_str()).collect();
    assert!(
        names.contains(&"history") && names.contains(&"mqtt"),
        "{id}: {names:?}"
    );
    for sink in sinks {
        assert_eq!(sink["backlog_end"], 0, "{id}: {sink}");
        assert!(
            u(&sink["written"]) >= committed,
            "{id}: a sink lost records: {sink}"
        );
        assert_eq!(sink["failures"], 0, "{id}: {sink}");
    }
    let i = &run["integrity"];
    assert_eq!(i["sim_positions_acked"], positions, "{id}: {i}");
    assert_eq!(
        i["mqtt_missing"], 0,
        "{id}: acked positions missing on MQTT: {i}"
    );
    assert!(u(&i["mqtt_matched"]) >= positions, "{id}: {i}");
    assert_eq!(i["lost_nothing"], true, "{id}: {i}");
    assert!(
        run["errors"].as_object().is_some_and(|e| e.is_empty()),
        "{id}: {}",
        run["errors"]
    );
    let timeline = run["timeline"].as_array().expect("timeline");
    assert!(timeline.len() >= 2, "{id}: timeline {timeline:?}");
    assert!(
        timeline.iter().any(|p| f(&p["positions_per_s"]) > 0.0),
        "{id}"
    );
    assert!(
        timeline
            .iter()
            .any(|p| p["server_rss_bytes"].as_u64().is_some()),
        "{id}"
    );
    if with_null {
        let ceiling = &run["ceiling"];
        assert!(f(&ceiling["positions_per_s"]) > 0.0, "{id}: {ceiling}");
        check_latency(&ceiling["ack_latency_us"], "null server ack");
        assert!(f(&ceiling["cpu_seconds"]) >= 0.0, "{id}: {ceiling}");
        assert!(f(&run["fraction_of_ceiling"]) > 0.0, "{id}");
    } else {
        assert!(run["ceiling"].is_null(), "{id}");
    }
    let svg = std::fs::read_to_string(dir.join(format!("{id}.svg"))).expect("chart written");
    assert!(
        svg.starts_with("<svg") && svg.contains("polyline"),
        "{id}: chart"
    );
}

#[test]
fn steady_and_max_scenarios_report_everything_and_lose_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scenarios = ["steady-1k", "steady-10k", "max"];
    let reports = bench(
        dir.path(),
        &["--devices", "20", "--duration", "3"],
        &scenarios,
    );
    for report in &reports {
        check_common(report);
        for run in report["runs"].as_array().expect("runs") {
            check_network_run(run, dir.path(), true);
        }
    }
    let max = &reports[2]["runs"];
    assert_eq!(
        max.as_array().map(Vec::len),
        Some(2),
        "max runs 1 and 8 records per packet"
    );
    assert_eq!(max[1]["load"]["records_per_packet"], 8);
    assert_eq!(max[1]["load"]["closed_loop"], true);
}

#[test]
fn connections_scenario_connects_from_several_source_addresses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reports = bench(
        dir.path(),
        &["--devices", "200", "--duration", "4"],
        &["connections-100k"],
    );
    let report = &reports[0];
    check_common(report);
    let run = &report["runs"][0];
    check_network_run(run, dir.path(), false);
    assert_eq!(
        run["load"]["source_addrs"].as_array().map(Vec::len),
        Some(8)
    );
    assert_eq!(
        run["connections"]["peak_connected"], 200,
        "{}",
        run["connections"]
    );
    assert_eq!(
        run["connections"]["server_peak_connected"], 200,
        "{}",
        run["connections"]
    );
}

#[test]
fn engine_scenario_reports_the_engine_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reports = bench(
        dir.path(),
        &["--devices", "10000", "--duration", "3"],
        &["engine-1m"],
    );
    let report = &reports[0];
    check_common(report);
    let run = &report["runs"][0];
    assert_eq!(run["server"], "in_process");
    let t = &run["throughput"];
    assert!(
        u(&t["positions_acked"]) > 0 && f(&t["records_per_s"]) > 0.0,
        "{t}"
    );
    let e = &run["engine"];
    assert_eq!(e["devices"], 10_000, "every device reached the engine: {e}");
    assert_eq!(
        e["inputs"], t["positions_acked"],
        "every record was applied: {e}"
    );
    let tick = &e["tick_us"];
    assert!(
        u(&tick["p50"]) > 0 && u(&tick["p50"]) <= u(&tick["max"]),
        "{e}"
    );
    assert!(f(&run["cpu"]["seconds"]) > 0.0, "{}", run["cpu"]);
    assert!(u(&run["memory"]["rss_peak_bytes"]) > 0, "{}", run["memory"]);
    assert!(run["latency_us"]["ack"].is_null());
}

#[test]
fn api_scenario_reads_the_api_and_compares_ingest_with_its_baseline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reports = bench(
        dir.path(),
        &[
            "--devices",
            "4",
            "--duration",
            "4",
            "--clients",
            "2",
            "--ws-clients",
            "3",
        ],
        &["api"],
    );
    let report = &reports[0];
    check_common(report);
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "a baseline and a loaded run");
    for run in runs {
        check_network_run(run, dir.path(), false);
        let seed = &run["history_seed"];
        assert_eq!(seed["devices"], 4, "{seed}");
        assert_eq!(seed["positions_per_device"], 86_400, "{seed}");
    }
    assert!(runs[0]["api"].is_null(), "the baseline reads nothing");
    let api = &runs[1]["api"]["http"];
    assert_eq!(api["clients"], 2, "{api}");
    let routes = api["routes"].as_array().expect("routes");
    assert_eq!(routes.len(), 2, "{api}");
    for route in routes {
        assert!(u(&route["ok"]) > 0, "{route}");
        assert_eq!(route["requests"], route["ok"], "{route}");
        let l = &route["latency_us"];
        assert!(
            u(&l["p50"]) > 0 && u(&l["p50"]) <= u(&l["p99"]) && u(&l["p99"]) <= u(&l["max"]),
            "{route}"
        );
        assert!(u(&route["body_bytes_mean"]) > 0, "{route}");
    }
    // A day of positions is there to read: a full default page of them.
    assert!(u(&routes[1]["body_bytes_mean"]) > 100_000, "{}", routes[1]);
    let stream = &runs[1]["api"]["stream"];
    assert_eq!(stream["connected"], 3, "{stream}");
    assert!(u(&stream["snapshot_bytes_max"]) > 0, "{stream}");
    assert!(u(&stream["positions"]) > 0, "{stream}");
    assert!(
        stream["ended"].as_object().is_some_and(|e| e.is_empty()),
        "every client listened to the end: {stream}"
    );
    let probe_sent = u(&stream["probe_sent"]);
    assert!(probe_sent > 0, "{stream}");
    assert!(
        u(&stream["probe_received"]) > 0 && u(&stream["probe_received"]) <= 3 * probe_sent,
        "{stream}"
    );
    let lag = &stream["lag_us"];
    assert!(
        u(&lag["p50"]) > 0 && u(&lag["p50"]) <= u(&lag["max"]),
        "{stream}"
    );
    let effect = &report["api_effect"];
    assert_eq!(effect["baseline"], "api-baseline", "{effect}");
    assert_eq!(effect["loaded"], "api-load", "{effect}");
    for key in ["ack_p99_us", "device_to_mqtt_p99_us"] {
        assert!(f(&effect[key]["ratio"]) > 0.0, "{key}: {effect}");
    }
}
