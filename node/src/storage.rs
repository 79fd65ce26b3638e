//! The node's durable side: the journal, the consumers that drain it (the
//! history backend, MQTT and the engine), and the jobs that keep them tidy
//! (segment retirement, history retention, journal recovery).
//!
//! Every consumer keeps a cursor in the journal, and segments are retired
//! only once every cursor passed them and they are older than the window
//! kept for the integrator feed (`journal.feed_keep_mb`). A cursor left by a consumer that is no
//! longer configured (the history backend switched from `embedded` to
//! `influxdb`, say) would hold every segment forever, so opening drops it,
//! with a log line and a note on `/health`.

use std::sync::Arc;
use std::time::Duration;

use crate::analytics::AnalyticsStore;
use crate::history::{Embedded, Influx};
use anyhow::Context;
use drover_api::history::History;
use drover_history::{self as history, HistoryConfig};
use drover_influxdb::InfluxClient;
use drover_journal::sink::{self, Feed, FeedReceiver, Sink, SinkConfig, SinkStats};
use drover_journal::storage::FsStorage;
use drover_journal::{JournalHandle, ObserverFactory};
use drover_mqtt::Publisher;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::{Backend, Config};
use crate::engine::{self as live, EngineSink};
use crate::sinks::{HistorySink, InfluxSink, MqttSink};
use crate::supervise::Fatal;

/// How long shutdown waits for sinks to take what was committed.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How often segments every sink has passed are deleted.
const RETIRE_EVERY: Duration = Duration::from_secs(5);
/// How often a growing journal backlog is reported.
const BACKLOG_WARN_EVERY: Duration = Duration::from_secs(60);
/// How long the history sink gathers records before a commit.
const HISTORY_LINGER: Duration = Duration::from_millis(200);
const MIB: u64 = 1024 * 1024;
/// How often the history retention job runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// The journal and everything draining it.
pub struct Durable {
    pub journal: Arc<JournalHandle>,
    /// Where the API reads history.
    pub history: Arc<dyn History>,
    /// Where closed trips and alerts are stored: the same backend.
    pub analytics: AnalyticsStore,
    /// The embedded store, when it is the backend (its usage is on `/health`).
    pub store: Option<Arc<history::History>>,
    pub sinks: Vec<(&'static str, Arc<SinkStats>)>,
    /// Woken by the pipeline when the journal fails.
    pub recover: Arc<Notify>,
    /// Cursors of consumers no longer configured, dropped on open.
    pub dropped_cursors: Vec<String>,
    /// The engine's feed, until [`Durable::start_engine`] takes it.
    engine_feed: Option<FeedReceiver>,
    /// The live stream's feed (no cursor), until
    /// [`Durable::take_stream_feed`] takes it.
    stream_feed: Option<FeedReceiver>,
    feed_bytes: usize,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    fatal: Fatal,
}

/// A sink waiting for the journal to be open.
struct Pending<S> {
    sink: S,
    feed: FeedReceiver,
    config: SinkConfig,
}

impl Durable {
    /// Opens the history backend and the journal (recovering it), drops the
    /// cursors of consumers no longer configured, and starts the sinks, which
    /// first replay whatever they had not taken. The engine's consumer starts
    /// with [`Durable::start_engine`], once the engine is built.
    pub async fn start(
        config: &Config,
        records: Publisher,
        fatal: Fatal,
    ) -> anyhow::Result<Durable> {
        let shutdown = CancellationToken::new();
        let feed_bytes = config.journal.feed_bytes();
        let with_feed = SinkConfig {
            feed_bytes,
            ..SinkConfig::default()
        };
        let mut feed = Feed::default();
        let engine_feed = feed.subscribe(feed_bytes);
        let stream_feed = feed.subscribe(feed_bytes);
        let mqtt = pending(&mut feed, MqttSink::new(records), with_feed);
        let (history, analytics, backend) = match config.storage.backend {
            Backend::Embedded => {
                let store = Arc::new(open_history(config).await?);
                let sink = HistorySink {
                    history: Arc::clone(&store),
                };
                let api: Arc<dyn History> = Arc::new(Embedded(Arc::clone(&store)));
                let analytics = AnalyticsStore::Embedded(Arc::clone(&store));
                // Each batch is one synced commit of the store: gathering for a
                // moment turns many small commits into few large ones.
                let batching = SinkConfig {
                    linger: HISTORY_LINGER,
                    ..with_feed
                };
                (
                    api,
                    analytics,
                    Opened::Embedded(store, pending(&mut feed, sink, batching)),
                )
            }
            Backend::Influxdb => {
                let client = influx_client(config).await?;
                let influx = &config.storage.influxdb;
                let batching = SinkConfig {
                    batch_max: influx.batch_lines.max(1),
                    linger: Duration::from_millis(influx.flush_ms),
                    ..with_feed
                };
                let sink = InfluxSink {
                    client: client.clone(),
                };
                let api: Arc<dyn History> = Arc::new(Influx(client.clone()));
                let analytics = AnalyticsStore::Influx(Box::new(client));
                (
                    api,
                    analytics,
                    Opened::Influx(pending(&mut feed, sink, batching)),
                )
            }
        };
        let journal = open_journal(config, feed).await?;
        let configured = [MQTT, backend.sink_name(), live::CURSOR];
        let dropped_cursors = drop_stale_cursors(&journal, &configured).await?;
        let store = match &backend {
            Opened::Embedded(store, _) => Some(Arc::clone(store)),
            Opened::Influx(_) => None,
        };
        let mut durable = Durable {
            journal,
            history,
            analytics,
            store,
            sinks: Vec::new(),
            recover: Arc::new(Notify::new()),
            dropped_cursors,
            engine_feed: Some(engine_feed),
            stream_feed: Some(stream_feed),
            feed_bytes,
            tasks: TaskTracker::new(),
            shutdown,
            fatal,
        };
        durable.spawn(MQTT, mqtt);
        match backend {
            Opened::Embedded(store, sink) => {
                durable.spawn(HISTORY, sink);
                let retention = apply_retention(store, durable.shutdown.clone());
                durable.core("history retention", retention);
            }
            Opened::Influx(sink) => durable.spawn(INFLUXDB, sink),
        }
        let retire = retire_segments(
            Arc::clone(&durable.journal),
            Retention::of(config)?,
            durable.shutdown.clone(),
        );
        durable.core("journal retirement", retire);
        let recover = crate::pipeline::recover_journal(
            Arc::clone(&durable.journal),
            Arc::clone(&durable.recover),
            durable.shutdown.clone(),
        );
        durable.core("journal recovery", recover);
        Ok(durable)
    }

    /// Starts the engine's journal consumer at `start` (where its snapshot
    /// ends), before which nothing is replayed.
    pub async fn start_engine(&mut self, sink: EngineSink, start: u64) -> anyhow::Result<()> {
        let journal = self.journal.current();
        tokio::task::spawn_blocking(move || journal.set_cursor(live::CURSOR, start))
            .await?
            .context("saving the engine's journal position")?;
        let Some(feed) = self.engine_feed.take() else {
            anyhow::bail!("the engine's journal consumer was already started");
        };
        let config = SinkConfig {
            batch_max: ENGINE_BATCH,
            feed_bytes: self.feed_bytes,
            ..SinkConfig::default()
        };
        self.spawn(live::CURSOR, Pending { sink, feed, config });
        self.tasks.close();
        Ok(())
    }

    /// Committed records for the live stream, as they are committed; once.
    pub fn take_stream_feed(&mut self) -> Option<FeedReceiver> {
        self.stream_feed.take()
    }

    fn spawn<S: Sink>(&mut self, name: &'static str, pending: Pending<S>) {
        let stats = Arc::new(SinkStats::default());
        let run = sink::run(
            pending.sink,
            Arc::clone(&self.journal),
            pending.feed,
            pending.config,
            Arc::clone(&stats),
            self.shutdown.clone(),
        );
        self.core(name, run);
        self.sinks.push((name, stats));
    }

    fn core(
        &self,
        name: &'static str,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        self.fatal.spawn(&self.tasks, name, task);
    }

    /// Lets the sinks take every committed record (at most [`DRAIN_TIMEOUT`];
    /// what is left stays in the journal for next time), then stops them and
    /// the jobs. Call once no more records are submitted.
    pub async fn stop(self) {
        let committed = self.journal.current().next_seq();
        let behind = || {
            self.sinks
                .iter()
                .filter(|(_, s)| s.position.load(std::sync::atomic::Ordering::Relaxed) < committed)
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
        };
        let started = std::time::Instant::now();
        while !behind().is_empty() && started.elapsed() < DRAIN_TIMEOUT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let behind = behind();
        if !behind.is_empty() {
            warn!(
                ?behind,
                "stopping before these sinks took every record; they resume from the journal"
            );
        }
        self.fatal.stopping();
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// The journal cursor names of the consumers.
const MQTT: &str = "mqtt";
const HISTORY: &str = "history";
const INFLUXDB: &str = "influxdb";

/// Records the engine takes per batch from its consumer: large enough that a
/// replay moves in few channel operations, small enough to keep ticks short.
const ENGINE_BATCH: usize = 10_000;

/// The history backend that was opened, with its sink. Built once at start,
/// so the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Opened {
    Embedded(Arc<history::History>, Pending<HistorySink>),
    Influx(Pending<InfluxSink>),
}

impl Opened {
    fn sink_name(&self) -> &'static str {
        match self {
            Opened::Embedded(..) => HISTORY,
            Opened::Influx(..) => INFLUXDB,
        }
    }
}

fn pending<S: Sink>(feed: &mut Feed, sink: S, config: SinkConfig) -> Pending<S> {
    Pending {
        sink,
        feed: feed.subscribe(config.feed_bytes),
        config,
    }
}

/// Drops the cursors of consumers that are not in `configured`: they would
/// keep every segment from being retired. Returns their names.
async fn drop_stale_cursors(
    journal: &Arc<JournalHandle>,
    configured: &[&'static str],
) -> anyhow::Result<Vec<String>> {
    let journal = journal.current();
    let configured: Vec<&'static str> = configured.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut dropped = Vec::new();
        for (name, position) in journal.cursors() {
            if configured.contains(&name.as_str()) {
                continue;
            }
            warn!(
                cursor = %name,
                position,
                "dropping the journal cursor of a consumer that is no longer configured \
                 (it would keep every journal segment from being retired)"
            );
            journal
                .remove_cursor(&name)
                .with_context(|| format!("removing the stale journal cursor {name}"))?;
            dropped.push(name);
        }
        Ok(dropped)
    })
    .await?
}

async fn open_history(config: &Config) -> anyhow::Result<history::History> {
    let dir = config.data_dir.join("history");
    let history_config = HistoryConfig {
        retention_days: config.storage.retention_days,
        rollup_interval_ms: config.storage.rollup.interval_secs.saturating_mul(1_000),
        rollup_retention_days: config.storage.rollup.retention_days,
        cache_bytes: config.storage.cache_mb.saturating_mul(MIB),
        memtable_bytes: config.storage.memtable_mb.saturating_mul(MIB),
        journal_bytes: config.storage.journal_mb.saturating_mul(MIB),
    };
    tokio::task::spawn_blocking(move || {
        history::History::open(&dir, history_config)
            .with_context(|| format!("opening the history store in {}", dir.display()))
    })
    .await?
}

/// The InfluxDB client; the database is created when configured, but an
/// unreachable server does not stop the node: the sink retries and the
/// journal keeps the records meanwhile.
async fn influx_client(config: &Config) -> anyhow::Result<InfluxClient> {
    let influx = &config.storage.influxdb;
    let client = InfluxClient::new(influx.clone()).context("storage.influxdb")?;
    let ready = if influx.create_database {
        client.ensure_database().await
    } else {
        client.ping().await
    };
    if let Err(error) = ready {
        warn!(%error, url = %influx.url, "InfluxDB not ready; records wait in the journal");
    }
    Ok(client)
}

/// Opens (or recovers) the journal under `data_dir/journal`. Refuses to start
/// on corruption, naming the damaged segment.
async fn open_journal(config: &Config, feed: Feed) -> anyhow::Result<Arc<JournalHandle>> {
    let dir = config.data_dir.join("journal");
    let journal_config = config.journal.journal_config();
    let (handle, recovery) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let storage = FsStorage::new(&dir)
            .with_context(|| format!("creating the journal directory {}", dir.display()))?;
        let observer: ObserverFactory = Box::new(move || feed.clone().observer());
        JournalHandle::open(Arc::new(storage), journal_config, Some(observer))
            .with_context(|| format!("opening the journal in {}", dir.display()))
    })
    .await??;
    info!(
        records = recovery.records,
        next_seq = recovery.next_seq,
        truncated_bytes = recovery.truncated_bytes,
        "journal open"
    );
    Ok(Arc::new(handle))
}

/// How much of the journal stays on disk.
#[derive(Debug, Clone, Copy)]
struct Retention {
    /// Past it records are refused (`journal.max_backlog_mb`).
    max_backlog: u64,
    /// The newest bytes kept for the integrator feed (`journal.feed_keep_mb`).
    feed_keep: u64,
}

impl Retention {
    fn of(config: &Config) -> anyhow::Result<Retention> {
        let retention = Retention {
            max_backlog: config.journal.max_backlog_mb.saturating_mul(1_000_000),
            feed_keep: config.journal.feed_keep_bytes(),
        };
        // The feed's window is on disk whatever the sinks took: close to
        // the bound, it alone would get records refused.
        anyhow::ensure!(
            retention.feed_keep < retention.max_backlog / 2,
            "journal.feed_keep_mb ({}) must be under half of journal.max_backlog_mb ({})",
            config.journal.feed_keep_mb,
            config.journal.max_backlog_mb
        );
        Ok(retention)
    }
}

/// Deletes journal segments once every sink has passed them, but for the
/// feed's window, and warns while the journal holds more than half of the
/// backlog bound (a sink far behind: past the bound, records are refused).
async fn retire_segments(
    journal: Arc<JournalHandle>,
    retention: Retention,
    shutdown: CancellationToken,
) {
    let Retention {
        max_backlog,
        feed_keep,
    } = retention;
    let mut warned: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RETIRE_EVERY) => {}
        }
        let current = journal.current();
        match tokio::task::spawn_blocking(move || current.retire_keeping(feed_keep)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(segments)) => tracing::debug!(segments, "journal segments retired"),
            Ok(Err(error)) => warn!(%error, "cannot retire journal segments"),
            Err(panic) => warn!(%panic, "journal retire panicked"),
        }
        let held = journal.current().disk_bytes();
        if held > max_backlog / 2 && warned.is_none_or(|at| at.elapsed() >= BACKLOG_WARN_EVERY) {
            warned = Some(std::time::Instant::now());
            warn!(
                held_mb = held / 1_000_000,
                max_backlog_mb = max_backlog / 1_000_000,
                "the journal is filling up because a sink is behind (see /health sinks); \
                 past journal.max_backlog_mb new records are refused"
            );
        }
    }
}

/// Rolls up and deletes expired history now and then every [`RETENTION_EVERY`].
async fn apply_retention(store: Arc<history::History>, shutdown: CancellationToken) {
    loop {
        let job = Arc::clone(&store);
        match tokio::task::spawn_blocking(move || {
            job.apply_retention(drover_protocols::model::now_ms())
        })
        .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => warn!(%error, "history retention failed; retrying later"),
            Err(panic) => warn!(%panic, "history retention panicked"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RETENTION_EVERY) => {}
        }
    }
}
