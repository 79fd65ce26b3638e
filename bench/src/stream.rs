//! Clients of the live stream (`GET /api/v1/stream`) under fleet load: each
//! opens the WebSocket with `?token=`, optionally narrows it to a few
//! devices, and reads until the end of the window, counting snapshots,
//! positions and statuses, and timing the probe tracker's positions from
//! their stamp to their arrival (the lag).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::report::{Percentiles, StreamReport};

/// Longest wait for the upgrade.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the closing handshake at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Largest message read: a snapshot of the whole fleet is one message of
/// about a kilobyte per device.
const MAX_MESSAGE: usize = 256 << 20;
/// Largest latency recorded, µs; longer ones are recorded as this.
const HIGHEST_US: u64 = 600_000_000;

/// What the stream's clients do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `ws://host:port`.
    pub base: String,
    pub token: String,
    pub clients: u32,
    /// Devices every client subscribes to; `None`: the whole fleet.
    pub subscribe: Option<Vec<String>>,
    /// The probe tracker's device id.
    pub probe: String,
    pub start_after: Duration,
    pub length: Duration,
}

/// Runs the clients of `plan` to the end of its window. `probe_sent` is
/// filled in by the caller once the probe is done.
pub async fn watch(plan: Plan) -> anyhow::Result<StreamReport> {
    tokio::time::sleep(plan.start_after).await;
    let started = Instant::now();
    let deadline = started + plan.length;
    // A subscription given with the handshake spares the whole fleet's
    // snapshot and frames before a subscription message would be read.
    let mut url = format!("{}/api/v1/stream?token={}", plan.base, plan.token);
    if let Some(devices) = &plan.subscribe {
        url = format!("{url}&devices={}", devices.join(","));
    }
    let marker = format!("\"device\":\"{}\"", plan.probe);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..plan.clients {
        let (url, marker) = (url.clone(), marker.clone());
        tasks.spawn(async move { client(url, marker, deadline).await });
    }
    let mut total = Tally::new()?;
    while let Some(tally) = tasks.join_next().await {
        total.add(tally.context("a stream client panicked")??)?;
    }
    let subscribed = plan
        .subscribe
        .as_ref()
        .map(|d| u32::try_from(d.len()).unwrap_or(u32::MAX));
    Ok(total.report(plan.clients, subscribed, started.elapsed().as_secs_f64()))
}

/// One connection, read until `deadline` or until it ends.
async fn client(url: String, marker: String, deadline: Instant) -> anyhow::Result<Tally> {
    let mut tally = Tally::new()?;
    let opened = Instant::now();
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let connect = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
    let mut socket = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok((socket, _response))) => socket,
        Ok(Err(_)) | Err(_) => {
            tally.ended("connect");
            return Ok(tally);
        }
    };
    let mut positions = 0;
    loop {
        let Ok(next) = tokio::time::timeout_at(deadline.into(), socket.next()).await else {
            break;
        };
        match next {
            Some(Ok(Message::Text(text))) => {
                positions += tally.read(&text, opened, &marker);
            }
            Some(Ok(Message::Close(frame))) => {
                tally.ended(&frame.map_or("ended".to_owned(), |f| u16::from(f.code).to_string()));
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) => {
                tally.ended("transport");
                break;
            }
            None => {
                tally.ended("ended");
                break;
            }
        }
    }
    tally.per_client.push(positions);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.close(None)).await;
    Ok(tally)
}

/// What a message from the stream is, from its first field (`type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Snapshot,
    Position,
    Status,
    Trip,
    Error,
    Other,
}

fn kind(text: &str) -> Kind {
    // Every message is an object whose first field is its type: a prefix
    // test spares parsing the thousands of positions a second.
    let head = text.get(..20).unwrap_or(text);
    if head.starts_with(r#"{"type":"position""#) {
        Kind::Position
    } else if head.starts_with(r#"{"type":"snapshot""#) {
        Kind::Snapshot
    } else if head.starts_with(r#"{"type":"status""#) {
        Kind::Status
    } else if head.starts_with(r#"{"type":"trip""#) {
        Kind::Trip
    } else if head.starts_with(r#"{"type":"error""#) {
        Kind::Error
    } else {
        Kind::Other
    }
}

/// The lag of a position read at `now_us` (µs since the epoch): `None`
/// without a readable `time`.
fn lag_us(position: &str, now_us: i64) -> Option<u64> {
    let value: Value = serde_json::from_str(position).ok()?;
    let time = OffsetDateTime::parse(value["time"].as_str()?, &Rfc3339).ok()?;
    let sent_us = i64::try_from(time.unix_timestamp_nanos() / 1000).ok()?;
    u64::try_from(now_us.saturating_sub(sent_us)).ok()
}

fn now_us() -> i64 {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1000).unwrap_or(i64::MAX)
}

/// What one or more clients saw.
struct Tally {
    connected: u32,
    snapshot_us: Histogram<u64>,
    snapshot_bytes_max: u64,
    /// Positions read by each client that connected.
    per_client: Vec<u64>,
    statuses: u64,
    /// Trips opened or closed.
    trips: u64,
    probe_received: u64,
    lag_us: Histogram<u64>,
    ended: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> anyhow::Result<Tally> {
        Ok(Tally {
            connected: 0,
            snapshot_us: Histogram::new_with_bounds(1, HIGHEST_US, 3)?,
            snapshot_bytes_max: 0,
            per_client: Vec::new(),
            statuses: 0,
            trips: 0,
            probe_received: 0,
            lag_us: Histogram::new_with_bounds(1, HIGHEST_US, 3)?,
            ended: BTreeMap::new(),
        })
    }

    /// Counts one message of a connection opened at `opened`; 1 if it was a position.
    fn read(&mut self, text: &str, opened: Instant, probe_marker: &str) -> u64 {
        match kind(text) {
            Kind::Snapshot => {
                if self.snapshot_us.is_empty() {
                    self.connected += 1;
                    record(&mut self.snapshot_us, duration_us(opened.elapsed()));
                }
                self.snapshot_bytes_max = self.snapshot_bytes_max.max(text.len() as u64);
            }
            Kind::Position => {
                if text.contains(probe_marker) {
                    self.probe_received += 1;
                    if let Some(lag) = lag_us(text, now_us()) {
                        record(&mut self.lag_us, lag);
                    }
                }
                return 1;
            }
            Kind::Status => self.statuses += 1,
            Kind::Trip => self.trips += 1,
            Kind::Error => self.ended("error_message"),
            Kind::Other => self.ended("unknown_message"),
        }
        0
    }

    fn ended(&mut self, why: &str) {
        *self.ended.entry(why.to_owned()).or_default() += 1;
    }

    fn add(&mut self, other: Tally) -> anyhow::Result<()> {
        self.connected += other.connected;
        self.snapshot_us.add(&other.snapshot_us)?;
        self.snapshot_bytes_max = self.snapshot_bytes_max.max(other.snapshot_bytes_max);
        self.per_client.extend(other.per_client);
        self.statuses += other.statuses;
        self.trips += other.trips;
        self.probe_received += other.probe_received;
        self.lag_us.add(&other.lag_us)?;
        for (why, n) in other.ended {
            *self.ended.entry(why).or_default() += n;
        }
        Ok(())
    }

    fn report(self, clients: u32, subscribed: Option<u32>, window_s: f64) -> StreamReport {
        let rate = |n: u64| {
            if window_s > 0.0 {
                n as f64 / window_s
            } else {
                0.0
            }
        };
        let positions: u64 = self.per_client.iter().sum();
        let listeners = self.per_client.len().max(1) as u64;
        StreamReport {
            clients,
            subscribed_devices: subscribed,
            connected: self.connected,
            window_s,
            snapshot_us: Percentiles::from(&self.snapshot_us),
            snapshot_bytes_max: self.snapshot_bytes_max,
            positions,
            positions_per_client_per_s: rate(positions) / listeners as f64,
            positions_per_client_per_s_min: rate(
                self.per_client.iter().copied().min().unwrap_or(0),
            ),
            statuses: self.statuses,
            trips: self.trips,
            probe_sent: 0,
            probe_received: self.probe_received,
            lag_us: Percentiles::from(&self.lag_us),
            ended: self.ended,
        }
    }
}

fn record(histogram: &mut Histogram<u64>, us: u64) {
    histogram.saturating_record(us.clamp(1, HIGHEST_US));
}

fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE: &str = r#""device":"350000000010000""#;

    fn position(device: &str, time: &str) -> String {
        format!(
            r#"{{"type":"position","device":"{device}","protocol":"teltonika","time":"{time}","lat":1.0}}"#
        )
    }

    #[test]
    fn messages_are_told_apart_by_their_type() {
        assert_eq!(kind(&position("1", "x")), Kind::Position);
        assert_eq!(kind(r#"{"type":"snapshot","devices":[]}"#), Kind::Snapshot);
        assert_eq!(kind(r#"{"type":"status","device":"1"}"#), Kind::Status);
        assert_eq!(kind(r#"{"type":"trip","id":"1-0"}"#), Kind::Trip);
        assert_eq!(kind(r#"{"type":"error","message":"no"}"#), Kind::Error);
        assert_eq!(kind("[]"), Kind::Other);
        assert_eq!(kind(""), Kind::Other);
    }

    #[test]
    fn the_lag_is_the_time_from_the_stamp_to_the_read() {
        let text = position("350000000010000", "2026-12-03T00:00:00.250Z");
        let stamped_us = 1_796_256_000_250_000;
        assert_eq!(lag_us(&text, stamped_us + 1_500), Some(1_500));
        assert_eq!(
            lag_us(&text, stamped_us - 1),
            None,
            "clocks never run backwards here"
        );
        assert_eq!(lag_us(&position("1", "yesterday"), stamped_us), None);
    }

    #[test]
    fn clients_add_up_to_rates_per_client_and_the_slowest() {
        let opened = Instant::now();
        let mut a = Tally::new().unwrap_or_else(|e| panic!("{e}"));
        a.read(r#"{"type":"snapshot","devices":[1,2]}"#, opened, PROBE);
        let mut positions = 0;
        for _ in 0..30 {
            positions += a.read(&position("7", "x"), opened, PROBE);
        }
        // Stamped in the future: read, but no lag to record.
        positions += a.read(
            &position("350000000010000", "2099-01-01T00:00:00Z"),
            opened,
            PROBE,
        );
        a.read(r#"{"type":"status","device":"7"}"#, opened, PROBE);
        a.per_client.push(positions);
        let mut b = Tally::new().unwrap_or_else(|e| panic!("{e}"));
        b.read(r#"{"type":"snapshot","devices":[]}"#, opened, PROBE);
        b.per_client.push(9);
        b.ended("1008");
        let mut c = Tally::new().unwrap_or_else(|e| panic!("{e}"));
        c.ended("connect");
        a.add(b).unwrap_or_else(|e| panic!("{e}"));
        a.add(c).unwrap_or_else(|e| panic!("{e}"));
        let report = a.report(3, Some(2), 10.0);
        assert_eq!(
            (report.connected, report.positions, report.statuses),
            (2, 40, 1)
        );
        assert_eq!(
            report.positions_per_client_per_s, 2.0,
            "40 over 2 clients in 10 s"
        );
        assert_eq!(report.positions_per_client_per_s_min, 0.9);
        assert_eq!(report.probe_received, 1);
        assert_eq!(report.lag_us, Percentiles::default());
        assert_eq!(report.snapshot_bytes_max, 35);
        let ended: Vec<(&str, u64)> = report.ended.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        assert_eq!(ended, [("1008", 1), ("connect", 1)]);
    }
}
