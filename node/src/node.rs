//! A running Drover node: the journal and its consumers (the engine, history,
//! MQTT), the device listeners and the HTTP API, wired together, watched,
//! and shut down in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use drover_devices::{ListenerConfig, ListenerStats, Registry, ServerContext};
use drover_engine::runtime::{self, RunningEngine, RuntimeConfig};
use drover_engine::systems::jobs::DailyJob;
use drover_engine::{Engine, EngineConfig, Executor};
use drover_mqtt::Publisher;
use drover_mqtt::broker::{Embedded, EmbeddedBroker};
use drover_mqtt::publisher::Role;
use drover_protocols::gt06::Gt06;
use drover_protocols::teltonika::Teltonika;
use drover_protocols::{DecodeOptions, Protocol};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::admission::Gate;
use crate::commands::{CommandService, CommandTasks};
use crate::config::Config;
use crate::engine::{self as live, EngineSink, SnapshotStats};
use crate::pipeline::{CommitQueue, Pipeline, PipelineStats};
use crate::storage::Durable;
use crate::supervise::{Failure, Fatal};

/// How long shutdown waits for the broker to acknowledge what was published.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A listener that is up, with the address it actually bound (port 0 → real port).
pub struct Listening {
    pub protocol: &'static str,
    pub addr: SocketAddr,
    pub stats: Arc<ListenerStats>,
}

pub struct Node {
    pub listeners: Vec<Listening>,
    pub publisher: Publisher,
    pub http: Option<crate::http::Http>,
    /// Runs `http` and the live stream's hub; dropped after both.
    api_runtime: crate::http::ApiRuntime,
    /// Users, API keys and the device registry.
    pub catalog: Arc<drover_catalog::Catalog>,
    /// The ack path, for sources inside the process.
    ingest: Pipeline,
    fatal: Fatal,
    shutdown: CancellationToken,
    devices: TaskTracker,
    durable: Durable,
    engine_thread: JoinHandle<Option<Engine>>,
    snapshot_writer: Option<JoinHandle<()>>,
    status_task: JoinHandle<()>,
    /// Publishes trips; stops with the status publisher.
    analytics_task: JoinHandle<()>,
    fleet_rules_task: JoinHandle<()>,
    jobs_task: JoinHandle<()>,
    sentinel_task: JoinHandle<()>,
    notify_workers: Vec<JoinHandle<()>>,
    status_shutdown: CancellationToken,
    mqtt_tasks: Vec<JoinHandle<()>>,
    mqtt_shutdown: CancellationToken,
    records_publisher: Publisher,
    /// The embedded broker's accept loop, if it runs.
    broker: Option<tokio::task::AbortHandle>,
    /// Commands to devices, as the API submits them.
    pub commands: CommandService,
    command_tasks: CommandTasks,
}

impl Node {
    /// Starts every part of the node. Returns once all listeners are bound.
    pub async fn start(config: &Config) -> anyhow::Result<Node> {
        Self::start_with(config, |_| {}).await
    }

    /// Like [`Node::start`], with `extend` called on the engine before it
    /// runs: the place to add analytics systems
    /// ([`Engine::add_systems`]).
    pub async fn start_with(
        config: &Config,
        extend: impl FnOnce(&mut Engine),
    ) -> anyhow::Result<Node> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data_dir {}", config.data_dir.display()))?;
        let fatal = Fatal::default();

        let access = crate::access::open(config).await?;
        let account = drover_mqtt::credentials::load_or_create(&config.data_dir, &config.mqtt)?;
        let broker = start_broker(config, &account, &access).await?;
        let mqtt_shutdown = CancellationToken::new();
        let (publisher, mqtt_task) = drover_mqtt::publisher::connect(
            &config.mqtt,
            &account,
            Role::Main,
            mqtt_shutdown.clone(),
        )?;
        let (records_publisher, records_mqtt_task) = drover_mqtt::publisher::connect(
            &config.mqtt,
            &account,
            Role::Records,
            mqtt_shutdown.clone(),
        )?;

        let mut durable = Durable::start(config, records_publisher.clone(), fatal.clone()).await?;
        let (engine, start) = build_engine(config, &durable, extend).await?;
        let replay_until = durable.journal.current().next_seq();
        let engine = spawn_engine(config, engine, replay_until)?;
        let snapshots = Arc::new(SnapshotStats::default());
        snapshots
            .position
            .store(start, std::sync::atomic::Ordering::Release);
        let handled = crate::analytics::Handled::default();
        let snapshot_writer = config.engine.snapshot_secs.gt(&0).then(|| {
            let (dir, stats, received) = (
                config.data_dir.clone(),
                Arc::clone(&snapshots),
                engine.snapshots.clone(),
            );
            let analytics = live::AnalyticsProgress {
                handled: handled.clone(),
                queue: engine.analytics.clone(),
            };
            tokio::task::spawn_blocking(move || {
                live::write_snapshots(&dir, received, &analytics, &stats)
            })
        });
        let sink = EngineSink {
            inbox: engine.inbox.clone(),
            durable: Arc::clone(&snapshots.position),
        };
        durable.start_engine(sink, start).await?;
        let status_shutdown = CancellationToken::new();
        let status_task = tokio::spawn(live::publish_status(
            publisher.clone(),
            engine.status.clone(),
            status_shutdown.clone(),
        ));
        let (notifier, notify_workers) = drover_notify::Notifier::start(
            &config.notifications,
            Some(&config.data_dir.join("notifications")),
        )?;
        let notify_stats = notifier.stats();
        let email = notifier.email();
        let zone = config.analytics.summaries.zone()?;
        let (jobs, jobs_task) = crate::jobs::Jobs {
            history: Arc::clone(&durable.history),
            catalog: Arc::clone(&access.catalog),
            live: engine.view.clone(),
            publisher: publisher.clone(),
            zone: zone.clone(),
        }
        .start(status_shutdown.clone());
        let analytics = crate::analytics::Outputs {
            publisher: publisher.clone(),
            store: durable.analytics.clone(),
            queue: engine.analytics.receiver(),
            handled: handled.clone(),
            notifications: crate::notifications::Notifications {
                notifier,
                catalog: Arc::clone(&access.catalog),
                publisher: publisher.clone(),
            },
            jobs,
            history: Arc::clone(&durable.history),
            desk: engine.alerts.clone(),
        };
        let analytics_task = tokio::spawn(analytics.run(status_shutdown.clone()));
        let fleet_rules_task = tokio::spawn(crate::fleet_rules::follow(
            Arc::clone(&access.catalog),
            crate::fleet_rules::Boards {
                geofences: engine.geofences.clone(),
                speed_limits: engine.speed_limits.clone(),
            },
            status_shutdown.clone(),
        ));

        let registry = Registry::default();
        let commands = crate::commands::start(
            config,
            &account,
            &registry,
            &publisher,
            mqtt_shutdown.clone(),
            &fatal,
        )
        .await?;
        let pipeline_stats = Arc::new(PipelineStats::default());
        let queue = CommitQueue::new(config.journal.max_queued_bytes());
        let pipeline = Pipeline {
            journal: Arc::clone(&durable.journal),
            connections: engine.connections.clone(),
            recover: Arc::clone(&durable.recover),
            max_backlog_bytes: config.journal.max_backlog_mb.saturating_mul(1_000_000),
            queued: queue.clone(),
            stats: Arc::clone(&pipeline_stats),
            fatal: fatal.clone(),
            gate: Gate {
                catalog: Arc::clone(&access.catalog),
                serve_unknown: config.devices.register_unknown,
            },
            commands: commands.intake.clone(),
        };
        let shutdown = CancellationToken::new();
        let devices = TaskTracker::new();
        let listeners =
            listen_all(config, &pipeline, &registry, &devices, &shutdown, &fatal).await?;
        devices.close();

        let api_runtime = crate::http::ApiRuntime::start(&config.http)?;
        let stream_stats = Arc::new(drover_api::stream::StreamStats::default());
        let hub = start_stream(
            &api_runtime,
            &mut durable,
            &engine,
            &access.catalog,
            Arc::clone(&stream_stats),
            &shutdown,
            &fatal,
        )?;
        let parts = Arc::new(crate::http::Parts {
            listeners: crate::http::Parts::listeners(&listeners),
            engine: engine.stats.clone(),
            status_pending: engine.status.clone(),
            deltas: engine.deltas.clone(),
            analytics: engine.analytics.clone(),
            snapshots: Arc::clone(&snapshots),
            mqtt: publisher.stats.clone(),
            registry: registry.clone(),
            journal: Arc::clone(&durable.journal),
            sinks: durable.sinks.clone(),
            dropped_cursors: durable.dropped_cursors.clone(),
            pipeline: Arc::clone(&pipeline_stats),
            queued: queue,
            commit_ms: config.journal.commit_ms,
            commands: Arc::clone(&commands.service.stats),
            stream: stream_stats,
            notifications: notify_stats,
            store: durable.store.clone(),
        });
        let sentinel = crate::sentinel::Sentinel {
            parts: Arc::clone(&parts),
            board: engine.system.clone(),
            rules: config.analytics.sentinel.clone(),
            data_dir: config.data_dir.clone(),
            max_backlog_bytes: config.journal.max_backlog_mb.saturating_mul(1_000_000),
        };
        let sentinel_task = tokio::spawn(sentinel.run(status_shutdown.clone()));
        let mut metrics = drover_api::metrics::Metrics::new(config.auth.public_metrics);
        metrics.register_collector(Box::new(crate::metrics::NodeCollector(Arc::clone(&parts))));
        let api = drover_api::Api {
            auth: Arc::clone(&access.auth),
            catalog: Arc::clone(&access.catalog),
            live: engine.view.clone(),
            history: Arc::clone(&durable.history),
            feed: Arc::new(crate::feed::JournalFeed::new(Arc::clone(&durable.journal))),
            commands: Arc::new(commands.service.clone()),
            stream: Arc::new(hub),
            health: Arc::new(move || crate::http::health(&parts)),
            disconnect: {
                let registry = registry.clone();
                Arc::new(move |id, reason| {
                    registry.disconnect(&drover_protocols::model::DeviceId::new(id), reason)
                })
            },
            metrics: Arc::new(metrics),
            timezone: zone,
            limits: config.http.limits(),
            dashboard: config.http.dashboard(),
            snapshots: Arc::default(),
            alerts: drover_api::Alerts {
                email,
                desk: engine.alerts.clone(),
                stored: {
                    let (handled, queue) = (handled.clone(), engine.analytics.clone());
                    // Dropped outputs will never be stored: they count as done.
                    Arc::new(move || handled.get() + queue.dropped())
                },
            },
        };
        let http = crate::http::Http::start(&config.http, &api_runtime, drover_api::router(api))?;
        let RunningEngine { thread, inbox, .. } = engine;
        // The engine sink holds the inbox from here on: when it stops, the
        // engine drains and stops too.
        drop(inbox);
        let engine_thread = fatal.watch_thread("engine", thread);
        let broker = broker.map(|b| fatal.watch_task("embedded MQTT broker", b.task));
        Ok(Node {
            catalog: access.catalog,
            listeners,
            publisher,
            http,
            api_runtime,
            ingest: pipeline,
            fatal,
            shutdown,
            devices,
            durable,
            engine_thread,
            snapshot_writer,
            status_task,
            analytics_task,
            jobs_task,
            fleet_rules_task,
            sentinel_task,
            notify_workers,
            status_shutdown,
            mqtt_tasks: vec![mqtt_task, records_mqtt_task, commands.mqtt_task],
            broker,
            mqtt_shutdown,
            records_publisher,
            commands: commands.service,
            command_tasks: commands.tasks,
        })
    }

    pub fn addr(&self, protocol: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|l| l.protocol == protocol)
            .map(|l| l.addr)
    }

    /// The node's ack path, as the device servers use it: what `submit`
    /// accepted is durable in the journal.
    pub fn ingest(&self) -> Pipeline {
        self.ingest.clone()
    }

    /// Resolves when a core part of the node failed (see [`crate::supervise`]).
    pub async fn failed(&self) -> Failure {
        self.fatal.failed().await
    }

    /// Stops accepting, lets sessions hand over what they decoded, lets the
    /// journal's consumers take what was committed (the engine then writes a
    /// last snapshot), publishes the last statuses and disconnects from the
    /// broker.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.fatal.stopping();
        self.shutdown.cancel();
        self.devices.wait().await;
        // Before the publisher goes: the results still queued are published.
        self.command_tasks.stop().await;
        self.durable.stop().await;
        // The engine sink is gone with the sinks: the engine drains and stops.
        self.engine_thread.await?;
        if let Some(writer) = self.snapshot_writer {
            writer.await?;
        }
        self.status_shutdown.cancel();
        self.status_task.await?;
        self.analytics_task.await?;
        self.jobs_task.await?;
        self.fleet_rules_task.await?;
        self.sentinel_task.await?;
        // Deliveries still retrying stop here; their spool files bring them back at the next start.
        for worker in self.notify_workers {
            worker.abort();
        }
        self.publisher.wait_acked(DRAIN_TIMEOUT).await;
        self.publisher.disconnect().await;
        self.records_publisher.disconnect().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.mqtt_shutdown.cancel();
        for task in self.mqtt_tasks {
            let _ = task.await;
        }
        if let Some(broker) = self.broker {
            broker.abort();
        }
        if let Some(http) = self.http {
            http.stop().await;
        }
        drop(self.api_runtime);
        info!("node stopped");
        Ok(())
    }
}

/// The live stream's hub, fed by the committed journal and the engine's
/// deltas; it closes its clients once `shutdown` is cancelled.
fn start_stream(
    runtime: &crate::http::ApiRuntime,
    durable: &mut Durable,
    engine: &RunningEngine,
    catalog: &Arc<drover_catalog::Catalog>,
    stats: Arc<drover_api::stream::StreamStats>,
    shutdown: &CancellationToken,
    fatal: &Fatal,
) -> anyhow::Result<crate::stream::Hub> {
    let feed = durable
        .take_stream_feed()
        .context("the live stream's journal feed was already taken")?;
    let sources = crate::stream::Sources {
        feed,
        deltas: engine.deltas.receiver(),
        catalog: Arc::clone(catalog),
    };
    let (hub, task) = crate::stream::start(sources, stats, shutdown.clone());
    // With the API's priority: the stream is read by its clients, and a hub
    // busy with a hundred of them must not take CPU from acks.
    fatal.watch_task("live stream hub", runtime.handle().spawn(task));
    Ok(hub)
}

/// The embedded broker, unless `mqtt.embedded_listen` is empty.
async fn start_broker(
    config: &Config,
    account: &drover_mqtt::Credentials,
    access: &crate::access::Access,
) -> anyhow::Result<Option<EmbeddedBroker>> {
    let listen = config.mqtt.embedded_listen.trim();
    if listen.is_empty() {
        return Ok(None);
    }
    let listen: SocketAddr = listen.parse().context("mqtt.embedded_listen")?;
    let settings = Embedded {
        api_keys: Arc::new(crate::access::MqttKeys(Arc::clone(&access.auth))),
        ..Embedded::new(listen, &config.mqtt, account.clone())
    };
    Ok(Some(drover_mqtt::broker::start_embedded(settings).await?))
}

/// The engine with its snapshot restored, and the journal position its
/// consumer starts from.
async fn build_engine(
    config: &Config,
    durable: &Durable,
    extend: impl FnOnce(&mut Engine),
) -> anyhow::Result<(Engine, u64)> {
    let mut engine = new_engine(config)?;
    let snapshot = if config.engine.snapshot_secs > 0 {
        let data_dir = config.data_dir.clone();
        tokio::task::spawn_blocking(move || live::load_snapshot(&data_dir)).await?
    } else {
        None
    };
    let journal = durable.journal.current();
    let start = live::restore(
        &mut engine,
        snapshot,
        journal.first_seq(),
        journal.next_seq(),
    );
    crate::alerts::reconcile(&mut engine, &*durable.history).await;
    extend(&mut engine);
    Ok((engine, start))
}

/// The engine core as configured.
pub fn new_engine(config: &Config) -> anyhow::Result<Engine> {
    let e = &config.engine;
    if e.executor == Executor::MultiThreaded {
        let threads = if e.threads == 0 {
            drover_engine::default_threads()
        } else {
            e.threads
        };
        drover_engine::init_compute_pool(threads);
    }
    let ms = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let mut engine = Engine::new(EngineConfig {
        executor: e.executor,
        presence_timeout_ms: ms(e.presence_timeout_secs),
        forget_after_ms: ms(e.forget_after_days.saturating_mul(86_400)),
        // Full-state deltas feed the live view the API reads.
        emit_state: true,
        trips: config.analytics.trips.rules(),
        usage: config.analytics.usage.rules(),
        alerts: config.analytics.alert_config(),
        ..EngineConfig::default()
    });
    let summaries = &config.analytics.summaries;
    if summaries.publish {
        engine.add_daily_job(DailyJob::new(
            crate::jobs::DAILY_SUMMARY,
            summaries.time()?,
            summaries.zone()?.zone,
        ));
    }
    Ok(engine)
}

/// Runs `engine` on its tick thread as configured.
pub fn spawn_engine(
    config: &Config,
    engine: Engine,
    replay_until: u64,
) -> anyhow::Result<RunningEngine> {
    let e = &config.engine;
    let runtime = RuntimeConfig {
        tick_ms: e.tick_ms,
        min_tick_ms: e.min_tick_ms,
        batch_max: e.batch_max,
        inbox_capacity: e.inbox_capacity,
        snapshot_every: (e.snapshot_secs > 0).then(|| Duration::from_secs(e.snapshot_secs)),
        replay_until,
        ..RuntimeConfig::default()
    };
    runtime::spawn(engine, runtime).context("starting the engine thread")
}

fn options(listener: &ListenerConfig) -> DecodeOptions {
    DecodeOptions {
        accept_bad_checksum: listener.accept_bad_checksum,
    }
}

async fn listen_all(
    config: &Config,
    pipeline: &Pipeline,
    registry: &Registry,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
    fatal: &Fatal,
) -> anyhow::Result<Vec<Listening>> {
    let d = &config.devices;
    let context = |stats| ServerContext {
        ingest: pipeline.clone(),
        limits: d.session_limits(),
        max_connections: d.max_connections,
        registry: registry.clone(),
        stats,
    };
    let mut listeners = Vec::new();
    let gt06 = Gt06::new(options(&d.gt06));
    if let Some(l) = listen(&d.gt06, gt06, &context, tasks, shutdown, fatal).await? {
        listeners.push(l);
    }
    let teltonika = Teltonika::new(options(&d.teltonika));
    if let Some(l) = listen(&d.teltonika, teltonika, &context, tasks, shutdown, fatal).await? {
        listeners.push(l);
    }
    Ok(listeners)
}

async fn listen<P: Protocol>(
    config: &ListenerConfig,
    protocol: P,
    context: &impl Fn(Arc<ListenerStats>) -> ServerContext<Pipeline>,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
    fatal: &Fatal,
) -> anyhow::Result<Option<Listening>> {
    let name = protocol.name();
    if config.listen.trim().is_empty() {
        info!(protocol = name, "listener disabled");
        return Ok(None);
    }
    let listener = TcpListener::bind(config.listen.trim())
        .await
        .with_context(|| format!("devices.{name}.listen: cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let stats = Arc::new(ListenerStats::default());
    let server = drover_devices::run(listener, protocol, context(stats.clone()), shutdown.clone());
    fatal.spawn(tasks, name, server);
    Ok(Some(Listening {
        protocol: name,
        addr,
        stats,
    }))
}

/// Exit status after a core part failed (EX_SOFTWARE): a supervisor
/// restarts the process, and the journal recovers on start.
pub const EXIT_FAILED: i32 = 70;

/// Runs `node` until SIGINT or SIGTERM (then stops it in order), or until a
/// core part fails: then the process exits at once with [`EXIT_FAILED`]. An
/// orderly stop could hang on the broken part, and nothing needs one —
/// everything acknowledged is in the journal.
pub async fn run_until_stopped(node: Node) -> anyhow::Result<()> {
    tokio::select! {
        () = shutdown_signal() => {
            info!("shutting down");
            node.shutdown().await
        }
        failure = node.failed() => {
            tracing::error!(%failure, code = EXIT_FAILED, "exiting; restart the node (systemd does)");
            std::process::exit(EXIT_FAILED);
        }
    }
}

/// SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
