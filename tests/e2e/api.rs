//! The history API over real stored data: ranges, paging, empty results and
//! every kind of bad input, each answered with a JSON error.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::durability::{assert_all_stored, stored_times, teltonika_load, time_ms};
use crate::support::{self, Ports, Sim};

fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .expect("a time");
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
}

fn positions(http: u16, device: &str, query: &str) -> (u16, Value) {
    support::http_get(http, &format!("/api/v1/devices/{device}/positions?{query}"))
}

fn page_times(page: &Value) -> Vec<i64> {
    page["positions"]
        .as_array()
        .expect("positions")
        .iter()
        .map(|p| time_ms(&p["time"]))
        .collect()
}

/// [`support::assert_error`] for an answer the caller no longer needs.
fn assert_error(answer: (u16, Value), status: u16, code: &str) {
    support::assert_error(&answer, status, code, "");
}

#[test]
fn history_queries_page_filter_and_refuse_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let ports = Ports::free();
    let server = support::drover_serve_on(dir, ports, &[]);
    let (_, records) = Sim::start(dir, &ports, &teltonika_load(5, 4)).finish();
    let acked = support::acked_by_device(&records);
    assert_all_stored(ports.http, &acked);
    let (device, times) = acked.iter().max_by_key(|(_, t)| t.len()).expect("a device");
    let http = ports.http;

    // Paging: every record once, in order, across pages of 7.
    let all = format!(
        "from={}&to={}",
        rfc3339(times[0]),
        rfc3339(times[times.len() - 1] + 1)
    );
    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = positions(http, device, &format!("{all}&limit=7{cursor}"));
        assert_eq!(status, 200, "{page}");
        let got = page_times(&page);
        assert!(got.len() <= 7);
        paged.extend(got);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(
        &paged, times,
        "pages give every stored position once, in time order"
    );
    let page = positions(http, device, &format!("{all}&limit=1")).1;
    let p = &page["positions"][0];
    assert!(
        p["lat"].is_f64() && p["lon"].is_f64() && p["speed_kmh"].is_number(),
        "{p}"
    );

    // A range: `from` included, `to` excluded.
    let (from, to) = (times[2], times[times.len() - 3]);
    let (status, page) = positions(
        http,
        device,
        &format!("from={}&to={}", rfc3339(from), rfc3339(to)),
    );
    assert_eq!(status, 200);
    let expected: Vec<i64> = times
        .iter()
        .copied()
        .filter(|t| (from..to).contains(t))
        .collect();
    assert_eq!(page_times(&page), expected);

    // Nothing there: an empty page, not an error.
    let (status, page) = positions(
        http,
        device,
        "from=2001-01-01T00:00:00Z&to=2001-01-02T00:00:00Z",
    );
    assert_eq!(status, 200);
    assert_eq!(page["positions"], Value::Array(Vec::new()));
    assert_eq!(page["next_cursor"], Value::Null);

    // Bad input: 400 with a JSON error, each of them.
    for bad in [
        "from=yesterday",
        "to=2026-13-45T00:00:00Z",
        "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
        "from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "limit=0",
        "limit=many",
        "limit=100000",
        "cursor=not-a-cursor",
        "colour=blue",
    ] {
        assert_error(positions(http, device, bad), 400, "bad_request");
    }
    // Unknown devices and routes: 404 with a JSON error.
    assert_error(positions(http, "000000000000000", ""), 404, "not_found");
    assert_error(
        support::http_get(http, "/api/v1/devices/000000000000000"),
        404,
        "not_found",
    );
    assert_error(
        support::http_get(http, "/api/v1/nothing-here"),
        404,
        "not_found",
    );

    // Devices: live while the node runs…
    let (status, list) = support::http_get(http, "/api/v1/devices");
    assert_eq!(status, 200);
    let ids: BTreeSet<&str> = list["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(ids, acked.keys().map(String::as_str).collect());
    let (status, one) = support::http_get(http, &format!("/api/v1/devices/{device}"));
    assert_eq!(status, 200);
    assert_eq!(one["source"], "live", "{one}");

    // …and live again after a SIGKILL: the engine rebuilds from its
    // snapshot and the journal, with the same state as before.
    let before = one;
    server.kill9();
    let server = support::drover_serve_on(dir, ports, &[]);
    support::wait_for_engine(http);
    let (_, after) = support::http_get(http, &format!("/api/v1/devices/{device}"));
    assert_eq!(after["source"], "live", "{after}");
    for field in ["last_fix", "ignition", "obd", "power", "attributes"] {
        assert_eq!(
            after["state"][field], before["state"][field],
            "{field}: {after}"
        );
    }
    assert_eq!(
        after["state"]["kinematics"]["distance_m"], before["state"]["kinematics"]["distance_m"],
        "the odometer: {after}"
    );
    assert_eq!(time_ms(&after["last_seen"]), *times.last().expect("a time"));
    assert_eq!(stored_times(http, device), *times);
    assert!(server.interrupt().success());
}

/// Every page of `/api/v1/devices?{query}` with `limit`, in order.
fn all_devices(http: u16, query: &str, limit: usize) -> Vec<Value> {
    let mut devices = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/api/v1/devices?limit={limit}{query}{cursor}");
        let (status, page) = support::http_get(http, &path);
        assert_eq!(status, 200, "{path}: {page}");
        let batch = page["devices"].as_array().expect("devices");
        assert!(batch.len() <= limit, "{path}: {page}");
        devices.extend(batch.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return devices,
        }
    }
}

fn ids(devices: &[Value]) -> Vec<String> {
    devices
        .iter()
        .map(|d| d["id"].as_str().expect("an id").to_owned())
        .collect()
}

#[test]
fn the_device_list_merges_registry_and_live_fleet_and_pages_and_filters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let ports = Ports::free();
    let _server = support::drover_serve_on(dir, ports, &[]);
    let (_, records) = Sim::start(dir, &ports, &teltonika_load(4, 2)).finish();
    let live: BTreeSet<String> = support::acked_by_device(&records).into_keys().collect();
    assert_eq!(live.len(), 4);
    let http = ports.http;
    let token = support::admin_token(http);
    let post = |path: &str, body: Value| {
        let (status, json) = support::http(http, "POST", path, Some(&token), Some(&body));
        assert_eq!(status, 201, "{path}: {json}");
    };
    post(
        "/api/v1/groups",
        serde_json::json!({"id": "depot", "name": "Depot"}),
    );
    let parked = ["000000000000001", "000000000000002", "999999999999999"];
    for (n, id) in parked.iter().enumerate() {
        post(
            "/api/v1/devices",
            serde_json::json!({"id": id, "name": format!("Spare {n}"), "group": "depot"}),
        );
    }
    let one_live = live.iter().next().expect("a live device").clone();
    post(
        "/api/v1/devices",
        serde_json::json!({"id": one_live, "name": "Van 1"}),
    );
    support::wait_for_engine(http);

    let everything = all_devices(http, "", 2);
    let expected: BTreeSet<String> = live
        .iter()
        .cloned()
        .chain(parked.map(str::to_owned))
        .collect();
    assert_eq!(
        ids(&everything),
        expected.iter().cloned().collect::<Vec<_>>(),
        "every device once, in id order"
    );
    let van = everything
        .iter()
        .find(|d| d["id"] == one_live.as_str())
        .expect("the van");
    assert_eq!(van["registered"], true, "{van}");
    assert_eq!(van["name"], "Van 1", "{van}");
    assert_eq!(van["source"], "live", "{van}");

    let never = all_devices(http, "&status=never", 10);
    assert_eq!(
        ids(&never),
        parked.map(str::to_owned),
        "registered, never heard from"
    );
    assert!(never.iter().all(|d| d["source"] == "registered"));
    assert_eq!(
        ids(&all_devices(http, "&group=depot", 1)),
        parked.map(str::to_owned)
    );
    assert_eq!(
        ids(&all_devices(http, "&q=SPARE%202", 10)),
        ["999999999999999"]
    );
    assert_eq!(ids(&all_devices(http, "&q=van", 10)), [one_live]);
}
