//! Prometheus `/metrics` after real traffic: the node's counters per
//! protocol and the API's requests by route template; public by default,
//! behind a login when `auth.public_metrics` is off.

use std::collections::HashMap;

use crate::support::{self, Ports, Sim};

/// Scrapes `/metrics` (with `token`, if any): the status, the content type
/// and the series as `name{labels}` → value.
fn scrape(http: u16, token: Option<&str>) -> (u16, String, HashMap<String, f64>) {
    let mut request = support::client().get(format!("http://127.0.0.1:{http}/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().expect("GET /metrics");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().expect("a body");
    let series = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect();
    (status, content_type, series)
}

#[test]
fn metrics_count_records_per_protocol_and_requests_per_route() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let ports = Ports::free();
    let server = support::drover_serve_on(dir, ports, &[]);
    Sim::start(dir, &ports, &support::mixed_load(4, 3)).finish();
    let (status, _) = support::http_get(ports.http, "/api/v1/devices");
    assert_eq!(status, 200);

    let (status, content_type, series) = scrape(ports.http, None);
    assert_eq!(status, 200, "public by default");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    for protocol in ["gt06", "teltonika"] {
        let records = series
            .get(&format!(r#"drover_records_total{{protocol="{protocol}"}}"#))
            .copied();
        assert!(records > Some(0.0), "{protocol} records: {series:?}");
    }
    let devices =
        r#"drover_http_requests_total{method="GET",route="/api/v1/devices",status="200"}"#;
    assert!(series.get(devices).copied() >= Some(1.0), "{series:?}");
    assert!(
        series.get("drover_journal_fsyncs_total").copied() > Some(0.0),
        "{series:?}"
    );
    assert!(
        series
            .keys()
            .any(|k| k.starts_with("drover_sink_backlog_records{sink=")),
        "{series:?}"
    );
    assert!(
        series
            .keys()
            .any(|k| k.starts_with("drover_http_request_duration_seconds_bucket{")),
        "{series:?}"
    );
    assert!(server.interrupt().success());

    // Private metrics: a login is needed, any role will do.
    let server = support::drover_serve_on(dir, ports, &["auth.public_metrics=false".to_owned()]);
    assert_eq!(scrape(ports.http, None).0, 401);
    let (status, _, series) = scrape(ports.http, Some(&support::admin_token(ports.http)));
    assert_eq!(status, 200);
    assert!(
        series.contains_key("drover_engine_ticks_total"),
        "{series:?}"
    );
    assert!(server.interrupt().success());
}
