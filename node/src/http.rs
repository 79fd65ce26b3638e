//! The node's HTTP server: `drover-api`'s routes, and the `/health` counters
//! of every part of the node, which only the binary can gather.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use anyhow::Context;
use axum::Router;
use drover_api::stream::StreamStats;
use drover_devices::{ListenerStats, Registry};
use drover_engine::outputs::{DeltaQueue, StatusBoard};
use drover_engine::runtime::EngineStats;
use drover_journal::JournalHandle;
use drover_journal::sink::SinkStats;
use drover_mqtt::PublisherStats;
use serde_json::{Value, json};
use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::HttpSection;
use crate::node::Listening;

use crate::commands::CommandStats;
use crate::engine::SnapshotStats;
use crate::pipeline::{CommitQueue, PipelineStats};

/// Everything `/health` reports on.
pub struct Parts {
    pub listeners: Vec<(&'static str, SocketAddr, Arc<ListenerStats>)>,
    pub engine: Arc<EngineStats>,
    /// Statuses the MQTT status publisher has not taken yet.
    pub status_pending: StatusBoard,
    pub deltas: DeltaQueue,
    /// Trips for MQTT (`analytics`).
    pub analytics: DeltaQueue,
    pub snapshots: Arc<SnapshotStats>,
    pub mqtt: Arc<PublisherStats>,
    pub registry: Registry,
    pub journal: Arc<JournalHandle>,
    /// The journal's consumers, the engine among them.
    pub sinks: Vec<(&'static str, Arc<SinkStats>)>,
    /// Cursors of consumers no longer configured, dropped on start.
    pub dropped_cursors: Vec<String>,
    pub pipeline: Arc<PipelineStats>,
    pub queued: CommitQueue,
    /// The group-commit window, reported so that a benchmark states it.
    pub commit_ms: u64,
    pub commands: Arc<CommandStats>,
    /// The live stream's clients and what they were sent.
    pub stream: Arc<StreamStats>,
    /// What became of webhook and email notifications.
    pub notifications: Arc<drover_notify::NotifyStats>,
    /// The embedded history store, when it is the backend.
    pub store: Option<Arc<drover_history::History>>,
}

impl Parts {
    pub fn listeners(
        listening: &[Listening],
    ) -> Vec<(&'static str, SocketAddr, Arc<ListenerStats>)> {
        listening
            .iter()
            .map(|l| (l.protocol, l.addr, l.stats.clone()))
            .collect()
    }
}

/// The runtime of the HTTP API and the live stream's hub.
///
/// It has `http.worker_threads` threads (and a blocking pool) whose CPU
/// priority is lowered to `http.nice`: on a small machine a burst of API
/// reads or stream clients then takes the CPU that the device sessions, the
/// journal and the sinks leave over instead of delaying acks and MQTT. The
/// API's answers are what waits when the machine is full.
pub struct ApiRuntime {
    handle: Handle,
    runtime: Option<Runtime>,
}

impl ApiRuntime {
    pub fn start(config: &HttpSection) -> anyhow::Result<ApiRuntime> {
        let nice = config.nice.clamp(0, 19);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads())
            .max_blocking_threads(MAX_BLOCKING_THREADS)
            .thread_name("drover-http")
            .enable_all()
            .on_thread_start(move || lower_priority(nice))
            .build()
            .context("starting the HTTP runtime")?;
        Ok(ApiRuntime {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for ApiRuntime {
    fn drop(&mut self) {
        // Dropping a runtime waits for its blocking threads, which an async
        // caller may not do; what is left of them ends on its own.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The HTTP server, on the [`ApiRuntime`].
pub struct Http {
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Http {
    pub fn start(
        config: &HttpSection,
        runtime: &ApiRuntime,
        app: Router,
    ) -> anyhow::Result<Option<Http>> {
        if config.listen.trim().is_empty() {
            return Ok(None);
        }
        let listener = std::net::TcpListener::bind(config.listen.trim())
            .with_context(|| format!("http.listen: cannot listen on {}", config.listen))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = {
            let _inside = runtime.handle().enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let stop = CancellationToken::new();
        let until = stop.clone();
        let task = runtime.handle().spawn(async move {
            let served = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { until.cancelled().await })
            .await;
            if let Err(error) = served {
                tracing::warn!(%error, "HTTP server stopped");
            }
        });
        tracing::info!(%addr, threads = config.threads(), nice = config.nice, "HTTP listening");
        Ok(Some(Http { addr, stop, task }))
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// History reads and catalog writes at once: more wait for a thread, so a
/// crowd of readers cannot fill the machine with threads.
const MAX_BLOCKING_THREADS: usize = 16;

/// Raises the calling thread's nice value to `nice` (never lowers it: that
/// needs privileges, and a process started nicer stays so).
#[cfg(target_os = "linux")]
fn lower_priority(nice: i32) {
    // SAFETY: gettid has no preconditions.
    let thread = unsafe { libc::gettid() };
    // On Linux PRIO_PROCESS with a thread id sets that thread alone.
    let who = thread as libc::id_t;
    // SAFETY: getpriority/setpriority read and write nothing of ours.
    let current = unsafe { libc::getpriority(libc::PRIO_PROCESS, who) };
    if nice > current && unsafe { libc::setpriority(libc::PRIO_PROCESS, who, nice) } != 0 {
        let error = std::io::Error::last_os_error();
        tracing::warn!(%error, nice, "cannot lower the HTTP threads' priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_nice: i32) {}

/// The embedded store's memory and journal, as `/health` reports them.
fn store_usage(store: &drover_history::History) -> Value {
    let usage = store.usage();
    json!({
        "cache_capacity_bytes": usage.cache_capacity_bytes,
        "cache_bytes": usage.cache_bytes,
        "memtable_bytes": usage.memtable_bytes,
        "journal_bytes": usage.journal_bytes,
        "full_days": usage.full_days,
    })
}

/// The `/health` document.
pub fn health(parts: &Parts) -> Value {
    let listeners: Vec<Value> = parts
        .listeners
        .iter()
        .map(|(protocol, addr, stats)| {
            json!({ "protocol": protocol, "addr": addr.to_string(), "stats": stats.snapshot() })
        })
        .collect();
    let e = &parts.engine;
    let ticks = e.ticks.load(Relaxed);
    let journal = parts.journal.current();
    let committed = journal.next_seq();
    let metrics = journal.metrics();
    let sinks: Vec<Value> = parts
        .sinks
        .iter()
        .map(|(name, s)| {
            let position = s.position.load(Relaxed);
            json!({
                "name": name,
                "position": position,
                "backlog": committed.saturating_sub(position),
                "written": s.written.load(Relaxed),
                "batches": s.batches.load(Relaxed),
                "replayed": s.replayed.load(Relaxed),
                "failures": s.failures.load(Relaxed),
                "skipped": s.skipped.load(Relaxed),
            })
        })
        .collect();
    let poisoned = journal.is_poisoned();
    let mut problems = Vec::new();
    if poisoned {
        problems.push("the journal failed and refuses records until it is reopened".to_owned());
    }
    for (name, s) in &parts.sinks {
        let skipped = s.skipped.load(Relaxed);
        if skipped > 0 {
            problems.push(format!(
                "{name} skipped {skipped} journal records that do not decode"
            ));
        }
    }
    let position = e.position.load(Relaxed);
    let snapshots = &parts.snapshots;
    json!({
        "status": if problems.is_empty() { "ok" } else { "degraded" },
        "problems": problems,
        "devices": {
            "connected": parts.registry.len(),
            "known": e.devices.load(Relaxed),
        },
        "listeners": listeners,
        "journal": {
            "poisoned": poisoned,
            "commit_ms": parts.commit_ms,
            "fsync_before_ack": true,
            "committed": committed,
            "first": journal.first_seq(),
            "disk_bytes_max": journal.disk_bytes(),
            "commits": metrics.commits,
            "fsyncs": metrics.fsyncs,
            "fsync_max_us": metrics.fsync_max_us,
            "acked_records": parts.pipeline.committed.load(Relaxed),
            "refused_batches": parts.pipeline.refused.load(Relaxed),
            "queued_bytes": parts.queued.queued(),
            "cursors": journal.cursors().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
            "dropped_cursors": parts.dropped_cursors,
        },
        "sinks": sinks,
        "history": parts.store.as_deref().map(store_usage),
        "engine": {
            "ticks": ticks,
            "inputs": e.inputs.load(Relaxed),
            "tick_us_mean": e.tick_ns_total.load(Relaxed) / ticks.max(1) / 1000,
            "tick_us_max": e.tick_ns_max.load(Relaxed) / 1000,
            "tick_us": e.tick_percentiles(),
            "position": position,
            "backlog": committed.saturating_sub(position),
            "duplicates_skipped": e.duplicates.load(Relaxed),
            "status_pending": parts.status_pending.len(),
            "deltas_dropped": parts.deltas.dropped(),
            "analytics_dropped": parts.analytics.dropped(),
            "snapshots": {
                "taken": e.snapshots.load(Relaxed),
                "skipped_busy": e.snapshots_skipped.load(Relaxed),
                "written": snapshots.written.load(Relaxed),
                "failures": snapshots.failures.load(Relaxed),
                "deferred": snapshots.deferred.load(Relaxed),
                "position": snapshots.position.load(Relaxed),
                "bytes": snapshots.bytes.load(Relaxed),
            },
        },
        "mqtt": {
            "published": parts.mqtt.published.load(Relaxed),
            "acked": parts.mqtt.acked.load(Relaxed),
            "connects": parts.mqtt.connects.load(Relaxed),
            "connection_errors": parts.mqtt.connection_errors.load(Relaxed),
        },
        "commands": parts.commands.snapshot(),
        "stream": {
            "clients": parts.stream.clients.load(Relaxed),
            "connected": parts.stream.connected.load(Relaxed),
            "messages_sent": parts.stream.sent.load(Relaxed),
            "coalesced": parts.stream.coalesced.load(Relaxed),
            "dropped_clients": parts.stream.dropped.load(Relaxed),
            "unresponsive_clients": parts.stream.unresponsive.load(Relaxed),
            "refused_clients": parts.stream.refused.load(Relaxed),
        },
        "notifications": {
            "delivered": parts.notifications.delivered.load(Relaxed),
            "retried": parts.notifications.retried.load(Relaxed),
            "failed": parts.notifications.failed.load(Relaxed),
            "dropped": parts.notifications.dropped.load(Relaxed),
        },
    })
}
