//! Switching the history backend from the embedded store to InfluxDB leaves
//! the `history` cursor behind with nobody to move it; the node drops it on
//! start, so the journal's segments are still retired under load.

use std::path::Path;
use std::time::Duration;

use drover_testkit::Influxd;
use serde_json::{Value, json};

use crate::durability::{assert_all_stored, journal_segments, teltonika_load};
use crate::support::{self, Ports, Sim};

/// Small segments, so that a short load fills several; snapshots every
/// second, since the engine's cursor moves only when one is written; no
/// window kept for the integrator feed, which would hold them all.
fn small_journal() -> Vec<String> {
    vec![
        "journal.segment_mb=1".to_owned(),
        "engine.snapshot_secs=1".to_owned(),
        "journal.feed_keep_mb=0".to_owned(),
    ]
}

fn influxdb_backend(influxd: &Influxd) -> Vec<String> {
    let mut settings = small_journal();
    settings.push("storage.backend=influxdb".to_owned());
    settings.push(format!("storage.influxdb.url={}", influxd.url()));
    settings
}

fn history_cursor(dir: &Path) -> std::path::PathBuf {
    dir.join("data/journal/history.cursor")
}

fn health(http: u16) -> Value {
    let (status, health) = support::http_get(http, "/health");
    assert_eq!(status, 200, "{health}");
    health
}

/// Waits until every journal consumer has taken every committed record.
fn wait_for_sinks(http: u16) {
    let caught_up = |health: &Value| {
        let sinks = health["sinks"].as_array().expect("sinks");
        !sinks.is_empty() && sinks.iter().all(|s| s["backlog"] == 0)
    };
    assert!(
        support::eventually(Duration::from_secs(60), || caught_up(&health(http))),
        "the sinks did not catch up with the journal: {}",
        health(http)
    );
}

#[test]
fn after_a_switch_to_influxdb_the_journal_still_retires_its_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let ports = Ports::free();
    let mut sized = small_journal();
    sized.push("storage.cache_mb=16".to_owned());
    let embedded = support::drover_serve_on(dir, ports, &sized);
    Sim::start(dir, &ports, &teltonika_load(10, 3)).finish();
    wait_for_sinks(ports.http);
    let store = &health(ports.http)["history"];
    assert_eq!(store["cache_capacity_bytes"], 16 * 1024 * 1024, "{store}");
    assert_eq!(
        store["full_days"].as_u64().map(|d| d >= 1),
        Some(true),
        "{store}"
    );
    assert!(embedded.interrupt().success());
    assert!(
        history_cursor(dir).exists(),
        "the embedded backend keeps a cursor"
    );

    let influxd = Influxd::start().unwrap_or_else(|e| panic!("{e}"));
    let server = support::drover_serve_on(dir, ports, &influxdb_backend(&influxd));
    let switched = health(ports.http);
    assert_eq!(
        switched["journal"]["dropped_cursors"],
        json!(["history"]),
        "{switched}"
    );
    assert_eq!(switched["history"], Value::Null, "no embedded store");
    assert!(
        switched["journal"]["cursors"].get("history").is_none(),
        "{switched}"
    );
    assert!(!history_cursor(dir).exists(), "the cursor file is removed");

    let (_, records) = Sim::start(dir, &ports, &teltonika_load(60, 15)).finish();
    let acked = support::acked_by_device(&records);
    // About 340 bytes a record in the journal: over 3 segments of 1 MiB.
    let count: usize = acked.values().map(Vec::len).sum();
    assert!(count >= 10_000, "too few acked records: {count}");
    wait_for_sinks(ports.http);
    let retired = support::eventually(Duration::from_secs(30), || {
        health(ports.http)["journal"]["first"].as_u64() > Some(0)
            && journal_segments(dir).len() <= 2
    });
    assert!(
        retired,
        "segments every consumer has passed must be retired: {:?}\n{}",
        journal_segments(dir),
        health(ports.http)
    );
    assert_all_stored(ports.http, &acked);
    assert!(server.interrupt().success());
}
