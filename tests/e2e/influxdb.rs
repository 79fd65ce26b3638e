//! The InfluxDB backend against a real, private `influxd`: a SIGKILL under
//! load and a 30-second outage lose no acknowledged record and duplicate none.

use std::collections::HashMap;
use std::time::Duration;

use drover_testkit::Influxd;
use serde_json::Value;

use crate::durability::{
    assert_all_stored, assert_live_state_rebuilt, sigkill_mid_run, teltonika_load,
};
use crate::support::{self, Ports, Sim};

fn influxd() -> Influxd {
    Influxd::start().unwrap_or_else(|e| panic!("{e}"))
}

fn backend(influxd: &Influxd) -> Vec<String> {
    vec![
        "storage.backend=influxdb".to_owned(),
        format!("storage.influxdb.url={}", influxd.url()),
        "storage.influxdb.flush_ms=200".to_owned(),
    ]
}

/// Points of `position` per device, counted by InfluxDB itself.
fn counts(influxd: &Influxd) -> HashMap<String, u64> {
    let answer = influxd
        .query(
            "drover",
            "SELECT COUNT(\"lat\") FROM \"position\" GROUP BY \"device\"",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let mut counts = HashMap::new();
    for series in answer["results"][0]["series"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let device = series["tags"]["device"].as_str().expect("device tag");
        let count = series["values"][0][1].as_u64().expect("a count");
        counts.insert(device.to_owned(), count);
    }
    counts
}

#[test]
fn sigkill_under_load_loses_nothing_in_influxdb() {
    let influxd = influxd();
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let ports = Ports::free();
    let (server, acked) = sigkill_mid_run(dir, ports, &backend(&influxd));
    // Read back through the API, which reads InfluxDB with InfluxQL.
    assert_all_stored(ports.http, &acked);
    assert_live_state_rebuilt(ports.http, &acked);
    assert!(server.interrupt().success());
}

#[test]
fn an_influxdb_outage_neither_stops_acks_nor_loses_or_duplicates_points() {
    let mut influxd = influxd();
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let ports = Ports::free();
    let server = support::drover_serve_on(dir, ports, &backend(&influxd));
    let sim = Sim::start(dir, &ports, &teltonika_load(20, 42));

    std::thread::sleep(Duration::from_secs(5));
    influxd.stop().unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_secs(30));
    let (_, during) = support::http_get(ports.http, "/health");
    influxd.restart().unwrap_or_else(|e| panic!("{e}"));
    let (report, records) = sim.finish();

    let influx_sink = sink(&during, "influxdb");
    assert!(
        influx_sink["failures"].as_u64() > Some(0) && influx_sink["backlog"].as_u64() > Some(0),
        "the sink should have been failing and behind during the outage: {during}"
    );
    assert_eq!(
        report["records_acked"], report["records_sent"],
        "acks never stopped: {report}"
    );
    let (_, health) = support::http_get(ports.http, "/health");
    assert_eq!(health["journal"]["refused_batches"], 0, "{health}");

    let acked = support::acked_by_device(&records);
    let expected: HashMap<String, u64> = acked
        .iter()
        .map(|(device, times)| (device.clone(), times.len() as u64))
        .collect();
    let caught_up = support::eventually(Duration::from_secs(60), || counts(&influxd) == expected);
    assert!(
        caught_up,
        "points per device after the outage differ from acked records per device\n\
         influx: {:?}\nacked: {expected:?}",
        counts(&influxd)
    );
    assert_all_stored(ports.http, &acked);
    assert!(server.interrupt().success());
}

fn sink<'a>(health: &'a Value, name: &str) -> &'a Value {
    health["sinks"]
        .as_array()
        .and_then(|sinks| sinks.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no sink {name} in {health}"))
}
