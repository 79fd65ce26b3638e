//! The integrator feed: an integrator that stores each page's cursor takes
//! every acked record exactly once, in journal order, across small pages
//! and a SIGKILL of the node.

use std::collections::HashMap;

use serde_json::Value;

use crate::durability::time_ms;
use crate::support::{self, Ports, Sim};

/// Records per page: small, so that a short run spans many pages.
const LIMIT: usize = 7;

/// One page from `after` (`None`: the oldest record kept): its records and
/// its `next`.
fn page(http: u16, after: Option<&str>) -> (Vec<Value>, String) {
    let path = match after {
        Some(cursor) => format!("/api/v1/feed?after={cursor}&limit={LIMIT}"),
        None => format!("/api/v1/feed?limit={LIMIT}"),
    };
    let (status, page) = support::http_get(http, &path);
    assert_eq!(status, 200, "{path}: {page}");
    let records = page["records"].as_array().expect("records").clone();
    assert!(records.len() <= LIMIT, "{page}");
    let next = page["next"].as_str().expect("a next cursor").to_owned();
    (records, next)
}

/// Up to `pages` pages from `after`, stopping at the end: the records and
/// the cursor an integrator stores.
fn follow(http: u16, after: Option<String>, pages: usize, out: &mut Vec<Value>) -> Option<String> {
    let mut cursor = after;
    for _ in 0..pages {
        let (records, next) = page(http, cursor.as_deref());
        if records.is_empty() {
            assert_eq!(
                Some(&next),
                cursor.as_ref(),
                "the end answers the same cursor"
            );
            break;
        }
        out.extend(records);
        cursor = Some(next);
    }
    cursor
}

/// (device, fix time in ms) → how many times, over positions.
type Counts = HashMap<(String, i64), usize>;

fn count<'a>(keys: impl Iterator<Item = (&'a str, i64)>) -> Counts {
    let mut counts = Counts::new();
    for (device, time) in keys {
        *counts.entry((device.to_owned(), time)).or_default() += 1;
    }
    counts
}

fn logged(records: &[Value], acked_only: bool) -> Counts {
    count(
        records
            .iter()
            .filter(|r| !acked_only || r["acked"] == true)
            .map(|r| {
                (
                    r["device"].as_str().expect("device"),
                    r["time_ms"].as_i64().expect("time"),
                )
            }),
    )
}

/// Checks the feed's records against everything the simulator logged.
fn assert_exactly_once(feed: &[Value], logs: &[Value]) {
    let seqs: Vec<u64> = feed
        .iter()
        .map(|r| r["seq"].as_u64().expect("seq"))
        .collect();
    let contiguous = (0..seqs.len() as u64).collect::<Vec<_>>();
    assert_eq!(seqs, contiguous, "every journal record once, in order");
    let positions = count(
        feed.iter()
            .filter(|r| r["kind"] == "position")
            .map(|r| (r["device"].as_str().expect("device"), time_ms(&r["time"]))),
    );
    let (acked, sent) = (logged(logs, true), logged(logs, false));
    let missing: Vec<_> = acked
        .iter()
        .filter(|(key, n)| positions.get(*key).copied().unwrap_or(0) < **n)
        .collect();
    assert!(
        missing.is_empty(),
        "acked positions missing from the feed: {missing:?}"
    );
    let repeated: Vec<_> = positions
        .iter()
        .filter(|(key, n)| sent.get(*key).copied().unwrap_or(0) < **n)
        .collect();
    assert!(
        repeated.is_empty(),
        "positions in the feed more often than sent: {repeated:?}"
    );
    assert!(
        acked.len() > 50,
        "too little traffic for the test: {}",
        acked.len()
    );
    for protocol in ["gt06", "teltonika"] {
        assert!(
            feed.iter().any(|r| r["protocol"] == protocol),
            "no {protocol} record in the feed"
        );
    }
}

#[test]
fn an_integrator_takes_every_acked_record_once_across_pages_and_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let ports = Ports::free();
    let server = support::drover_serve_on(dir, ports, &[]);
    let (_, mut logs) = Sim::start(dir, &ports, &support::mixed_load(6, 4)).finish();

    // A few pages, then the node dies; the integrator kept its cursor.
    let mut feed = Vec::new();
    let cursor = follow(ports.http, None, 3, &mut feed);
    assert_eq!(feed.len(), 3 * LIMIT);
    assert_eq!(feed[0]["seq"], 0, "no cursor: from the oldest record");
    let first = &feed[0];
    assert!(
        first["time"].is_string() && first["attributes"].is_object(),
        "{first}"
    );
    server.kill9();

    let server = support::drover_serve_on(dir, ports, &[]);
    let (_, more) = Sim::start(dir, &ports, &support::mixed_load(6, 4)).finish();
    logs.extend(more);
    let end = follow(ports.http, cursor, usize::MAX, &mut feed);
    assert_exactly_once(&feed, &logs);

    // Past the end: nothing new, the same cursor; bad cursors: 400.
    let end = end.expect("a cursor");
    let (records, next) = page(ports.http, Some(&end));
    assert!(records.is_empty());
    assert_eq!(next, end);
    for bad in ["after=soon", "after=-1", "limit=0", "limit=1001"] {
        let (status, body) = support::http_get(ports.http, &format!("/api/v1/feed?{bad}"));
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{body}");
    }
    let (status, _) = support::http(ports.http, "GET", "/api/v1/feed", None, None);
    assert_eq!(status, 401, "the feed needs a login");
    assert!(server.interrupt().success());
}
