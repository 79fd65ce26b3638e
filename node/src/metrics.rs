//! The node's counters as Prometheus metrics. They are the atomics the node
//! keeps anyway (the ones `/health` shows), read when Prometheus scrapes:
//! nothing is counted twice and nothing runs between scrapes. The API adds
//! its HTTP metrics beside them (`drover_api::metrics`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use drover_devices::ListenerStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeMetric,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::http::Parts;

/// Reads the node's counters at each scrape.
pub struct NodeCollector(pub Arc<Parts>);

impl fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeCollector").finish_non_exhaustive()
    }
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let e = &mut encoder;
        let parts = self.0.as_ref();
        listeners(e, parts)?;
        journal(e, parts)?;
        engine(e, parts)?;
        sinks(e, parts)?;
        mqtt(e, parts)?;
        commands(e, parts)?;
        stream(e, parts)?;
        notifications(e, parts)
    }
}

/// Per protocol: connections, frames, records and what was refused.
fn listeners(e: &mut DescriptorEncoder, parts: &Parts) -> fmt::Result {
    let per = |pick: fn(&ListenerStats) -> &AtomicU64| {
        parts
            .listeners
            .iter()
            .map(move |(protocol, _, stats)| (*protocol, pick(stats).load(Relaxed)))
    };
    gauges(
        e,
        "connections_open",
        "Device connections open",
        "protocol",
        per(|s| &s.open),
    )?;
    counters(
        e,
        "connections_accepted",
        "Device connections accepted",
        "protocol",
        per(|s| &s.accepted),
    )?;
    counters(
        e,
        "frames",
        "Frames received from devices",
        "protocol",
        per(|s| &s.frames),
    )?;
    counters(
        e,
        "records",
        "Records decoded from devices",
        "protocol",
        per(|s| &s.records),
    )?;
    counters(
        e,
        "crc_failures",
        "Frames rejected for a bad checksum",
        "protocol",
        per(|s| &s.bad_checksum),
    )?;
    counters(
        e,
        "decode_errors",
        "Frames that did not decode",
        "protocol",
        per(|s| &s.decode_errors),
    )?;
    counters(
        e,
        "devices_refused",
        "Logins of unregistered or disabled devices refused",
        "protocol",
        per(|s| &s.refused_devices),
    )?;
    let refused = parts.listeners.iter().flat_map(|(protocol, _, s)| {
        [
            (*protocol, "max_connections", s.refused.load(Relaxed)),
            (
                *protocol,
                "max_connections_per_ip",
                s.refused_per_ip.load(Relaxed),
            ),
        ]
    });
    let mut metric = e.encode_descriptor(
        "connections_refused",
        "Device connections refused at accept, by the limit that refused them",
        None,
        MetricType::Counter,
    )?;
    for (protocol, limit, n) in refused {
        ConstCounter::new(n)
            .encode(metric.encode_family(&[("protocol", protocol), ("limit", limit)])?)?;
    }
    let closed = parts.listeners.iter().flat_map(|(protocol, _, s)| {
        [
            (*protocol, "idle", s.idle_timeouts.load(Relaxed)),
            (
                *protocol,
                "unidentified",
                s.unidentified_timeouts.load(Relaxed),
            ),
            (*protocol, "oversized", s.oversized.load(Relaxed)),
        ]
    });
    let mut metric = e.encode_descriptor(
        "connections_closed",
        "Device connections the server closed, by reason",
        None,
        MetricType::Counter,
    )?;
    for (protocol, reason, n) in closed {
        ConstCounter::new(n)
            .encode(metric.encode_family(&[("protocol", protocol), ("reason", reason)])?)?;
    }
    gauge(
        e,
        "devices_connected",
        "Devices with an identified connection",
        parts.registry.len() as u64,
    )
}

fn journal(e: &mut DescriptorEncoder, parts: &Parts) -> fmt::Result {
    let journal = parts.journal.current();
    let m = journal.metrics();
    counter(
        e,
        "journal_commits",
        "Group commits of the journal",
        m.commits,
    )?;
    counter(
        e,
        "journal_fsyncs",
        "Successful fsyncs of journal segments",
        m.fsyncs,
    )?;
    gauge(
        e,
        "journal_fsync_max_seconds",
        "The slowest journal fsync since the start",
        m.fsync_max_us as f64 / 1e6,
    )?;
    counter(
        e,
        "journal_acked_records",
        "Records made durable and acknowledged to devices",
        parts.pipeline.committed.load(Relaxed),
    )?;
    counter(
        e,
        "journal_refused_batches",
        "Batches refused (journal failed or full); their devices resend",
        parts.pipeline.refused.load(Relaxed),
    )?;
    gauge(
        e,
        "journal_next_sequence",
        "Sequence number of the next committed record",
        journal.next_seq(),
    )?;
    gauge(
        e,
        "journal_first_sequence",
        "Sequence number of the oldest record kept",
        journal.first_seq(),
    )?;
    gauge(
        e,
        "journal_disk_bytes",
        "Upper bound of the journal's size on disk",
        journal.disk_bytes(),
    )?;
    gauge(
        e,
        "journal_poisoned",
        "1 while the journal refuses records until it is reopened",
        u64::from(journal.is_poisoned()),
    )?;
    gauge(
        e,
        "commit_queue_bytes",
        "Record bytes waiting for the group commit",
        parts.queued.queued(),
    )
}

fn engine(e: &mut DescriptorEncoder, parts: &Parts) -> fmt::Result {
    let s = &parts.engine;
    let committed = parts.journal.current().next_seq();
    counter(e, "engine_ticks", "Engine ticks", s.ticks.load(Relaxed))?;
    counter(
        e,
        "engine_inputs",
        "Records and connection changes applied by the engine",
        s.inputs.load(Relaxed),
    )?;
    let busy = s.tick_ns_total.load(Relaxed) as f64 / 1e9;
    counter(e, "engine_tick_seconds", "Time spent in engine ticks", busy)?;
    let p = s.tick_percentiles();
    let quantiles = [
        ("0.5", p.p50),
        ("0.95", p.p95),
        ("0.99", p.p99),
        ("1", p.max),
    ]
    .map(|(q, us)| (q, us as f64 / 1e6));
    gauges(
        e,
        "engine_tick_duration_seconds",
        "Tick duration quantiles since the start",
        "quantile",
        quantiles,
    )?;
    gauge(
        e,
        "engine_devices",
        "Devices in the live world",
        s.devices.load(Relaxed),
    )?;
    gauge(
        e,
        "engine_backlog_records",
        "Committed records the engine has not applied yet",
        committed.saturating_sub(s.position.load(Relaxed)),
    )?;
    gauge(
        e,
        "engine_status_pending",
        "Device statuses waiting for the MQTT status publisher",
        parts.status_pending.len() as u64,
    )?;
    counter(
        e,
        "engine_deltas_dropped",
        "Engine outputs dropped because nobody took them",
        parts.deltas.dropped(),
    )?;
    counter(
        e,
        "engine_analytics_dropped",
        "Trips dropped before the analytics consumer took them (backend or broker away too long)",
        parts.analytics.dropped(),
    )?;
    counter(
        e,
        "engine_snapshots_written",
        "Snapshots of the live world written",
        parts.snapshots.written.load(Relaxed),
    )?;
    counter(
        e,
        "engine_snapshot_failures",
        "Snapshots that could not be written",
        parts.snapshots.failures.load(Relaxed),
    )?;
    counter(
        e,
        "engine_snapshots_deferred",
        "Snapshots skipped because trips they cover were not stored in time",
        parts.snapshots.deferred.load(Relaxed),
    )
}

/// Per journal consumer (the engine among them): what it took and what waits.
fn sinks(e: &mut DescriptorEncoder, parts: &Parts) -> fmt::Result {
    let committed = parts.journal.current().next_seq();
    let per = |pick: fn(&drover_journal::sink::SinkStats) -> u64| {
        parts
            .sinks
            .iter()
            .map(move |(name, stats)| (*name, pick(stats)))
    };
    gauges(
        e,
        "sink_backlog_records",
        "Committed records a journal consumer has not taken",
        "sink",
        per(|s| s.position.load(Relaxed))
            .map(|(name, position)| (name, committed.saturating_sub(position))),
    )?;
    counters(
        e,
        "sink_written_records",
        "Records a journal consumer wrote",
        "sink",
        per(|s| s.written.load(Relaxed)),
    )?;
    counters(
        e,
        "sink_replayed_records",
        "Records a journal consumer read back from the journal",
        "sink",
        per(|s| s.replayed.load(Relaxed)),
    )?;
    counters(
        e,
        "sink_failures",
        "Failed writes of a journal consumer (each retried)",
        "sink",
        per(|s| s.failures.load(Relaxed)),
    )?;
    counters(
        e,
        "sink_skipped_records",
        "Journal records a consumer skipped because they do not decode",
        "sink",
        per(|s| s.skipped.load(Relaxed)),
    )
}

fn mqtt(e: &mut DescriptorEncoder, parts: &Parts) -> fmt::Result {
    let m = &parts.mqtt;
    counter(
        e,
        "mqtt_published",
        "MQTT messages published",
        m.published.load(Relaxed),
    )?;
    counter(
        e,
        "mqtt_acked",
        "MQTT publications the broker acknowledged",
        m.acked.load(Relaxed),
    )?;
    counter(
        e,
        "mqtt_connects",
        "Connections to the MQTT broker",
        m.connects.load(Relaxed),
    )?;
    counter(
        e,
        "mqtt_connection_errors",
        "Failed or lost connections to the MQTT broker",
        m.connection_errors.load(Relaxed),
    )
}

fn commands(e: &mut DescriptorEncoder, parts: &Parts) -> fmt::Result {
    let c = &parts.commands;
    let events = [
        ("submitted", &c.submitted),
        ("refused", &c.refused),
        ("sent", &c.sent),
        ("requeued", &c.requeued),
        ("answered", &c.answered),
        ("failed", &c.failed),
        ("expired", &c.expired),
    ];
    counters(
        e,
        "commands",
        "Device commands, by what happened to them",
        "event",
        events.map(|(event, n)| (event, n.load(Relaxed))),
    )
}

/// The live stream: clients now, and what slow ones cost.
fn stream(e: &mut DescriptorEncoder, parts: &Parts) -> fmt::Result {
    let s = &parts.stream;
    gauge(
        e,
        "stream_clients",
        "Live stream (WebSocket) clients connected",
        s.clients.load(Relaxed),
    )?;
    counter(
        e,
        "stream_messages_sent",
        "Messages written to live stream clients",
        s.sent.load(Relaxed),
    )?;
    counter(
        e,
        "stream_coalesced",
        "Updates a slow live stream client never got because a newer one replaced them",
        s.coalesced.load(Relaxed),
    )?;
    counter(
        e,
        "stream_clients_dropped",
        "Live stream clients let go for being too slow",
        s.dropped.load(Relaxed),
    )?;
    counter(
        e,
        "stream_clients_unresponsive",
        "Live stream clients closed for answering no ping",
        s.unresponsive.load(Relaxed),
    )
}

/// Webhook and email notifications.
fn notifications(e: &mut DescriptorEncoder, parts: &Parts) -> fmt::Result {
    let n = &parts.notifications;
    counter(
        e,
        "notifications_delivered",
        "Notifications delivered by webhook or email",
        n.delivered.load(Relaxed),
    )?;
    counter(
        e,
        "notifications_retried",
        "Notification tries after a failed one",
        n.retried.load(Relaxed),
    )?;
    counter(
        e,
        "notifications_failed",
        "Notifications given up: refused, or out of tries",
        n.failed.load(Relaxed),
    )?;
    counter(
        e,
        "notifications_dropped",
        "Notifications not queued: the delivery queue was full",
        n.dropped.load(Relaxed),
    )
}

fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl EncodeCounterValue,
) -> fmt::Result {
    ConstCounter::new(value).encode(e.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl EncodeGaugeValue,
) -> fmt::Result {
    ConstGauge::new(value).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// One counter series per value of `label`.
fn counters<'a>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    series: impl IntoIterator<Item = (&'a str, u64)>,
) -> fmt::Result {
    let mut metric = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in series {
        ConstCounter::new(n).encode(metric.encode_family(&[(label, value)])?)?;
    }
    Ok(())
}

/// One gauge series per value of `label`.
fn gauges<'a, V: EncodeGaugeValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    series: impl IntoIterator<Item = (&'a str, V)>,
) -> fmt::Result {
    let mut metric = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (value, v) in series {
        ConstGauge::new(v).encode(metric.encode_family(&[(label, value)])?)?;
    }
    Ok(())
}
