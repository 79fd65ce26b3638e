//! A running Drover node: the engine, the MQTT side and the device listeners,
//! wired together and shut down in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use drover_devices::{ListenerConfig, ListenerStats, Registry, ServerContext};
use drover_engine::runtime::{self, RuntimeConfig};
use drover_engine::{Delta, Engine, EngineConfig, Executor};
use drover_mqtt::Publisher;
use drover_mqtt::publisher::Role;

use drover_protocols::gt06::Gt06;
use drover_protocols::teltonika::Teltonika;
use drover_protocols::{DecodeOptions, Protocol};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::Config;
use crate::pipeline::{Pipeline, PipelineStats};
use crate::storage::Durable;

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
    shutdown: CancellationToken,
    devices: TaskTracker,
    durable: Durable,
    deltas_task: JoinHandle<()>,
    mqtt_tasks: Vec<JoinHandle<()>>,
    mqtt_shutdown: CancellationToken,
    records_publisher: Publisher,
    engine_thread: std::thread::JoinHandle<Engine>,
    pub http: Option<crate::http::Http>,
}

impl Node {
    /// Starts every part of the node. Returns once all listeners are bound.
    pub async fn start(config: &Config) -> anyhow::Result<Node> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data_dir {}", config.data_dir.display()))?;
        let engine = start_engine(config)?;

        if !config.mqtt.embedded_listen.trim().is_empty() {
            let listen: SocketAddr = config
                .mqtt
                .embedded_listen
                .parse()
                .context("mqtt.embedded_listen")?;
            tokio::task::spawn_blocking(move || drover_mqtt::broker::start_embedded(listen))
                .await??;
        }
        let mqtt_shutdown = CancellationToken::new();
        let (publisher, mqtt_task) =
            drover_mqtt::publisher::connect(&config.mqtt, Role::Main, mqtt_shutdown.clone())?;
        let (records_publisher, records_mqtt_task) =
            drover_mqtt::publisher::connect(&config.mqtt, Role::Records, mqtt_shutdown.clone())?;
        let deltas_task = tokio::spawn(publish_presence(publisher.clone(), engine.deltas));

        let durable = Durable::start(config, records_publisher.clone()).await?;
        let pipeline_stats = Arc::new(PipelineStats::default());
        let pipeline = Pipeline {
            journal: Arc::clone(&durable.journal),
            engine: engine.inbox,
            recover: Arc::clone(&durable.recover),
            max_backlog_bytes: config.journal.max_backlog_mb.saturating_mul(1_000_000),
            stats: Arc::clone(&pipeline_stats),
        };

        let shutdown = CancellationToken::new();
        let devices = TaskTracker::new();
        let registry = Registry::default();
        let mut listeners = Vec::new();
        let d = &config.devices;
        let context = |stats| ServerContext {
            ingest: pipeline.clone(),
            limits: d.session_limits(),
            max_connections: d.max_connections,
            registry: registry.clone(),
            stats,
        };
        let gt06 = Gt06::new(options(&d.gt06));
        let teltonika = Teltonika::new(options(&d.teltonika));
        if let Some(l) = listen(&d.gt06, gt06, &context, &devices, &shutdown).await? {
            listeners.push(l);
        }
        if let Some(l) = listen(&d.teltonika, teltonika, &context, &devices, &shutdown).await? {
            listeners.push(l);
        }
        drop(pipeline);
        devices.close();

        let parts = crate::http::Parts {
            listeners: crate::http::Parts::listeners(&listeners),
            engine: engine.stats.clone(),
            mqtt: publisher.stats.clone(),
            registry: registry.clone(),
            journal: Arc::clone(&durable.journal),
            sinks: durable.sinks.clone(),
            pipeline: Arc::clone(&pipeline_stats),
            commit_ms: config.journal.commit_ms,
        };
        let api = drover_api::Api {
            live: engine.live.clone(),
            history: Arc::clone(&durable.history),
            health: Arc::new(move || crate::http::health(&parts)),
        };
        let http = crate::http::Http::start(&config.http, drover_api::router(api)).await?;
        Ok(Node {
            listeners,
            publisher,
            shutdown,
            devices,
            durable,
            deltas_task,
            mqtt_tasks: vec![mqtt_task, records_mqtt_task],
            mqtt_shutdown,
            records_publisher,
            engine_thread: engine.thread,
            http,
        })
    }

    pub fn addr(&self, protocol: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|l| l.protocol == protocol)
            .map(|l| l.addr)
    }

    /// Stops accepting, lets sessions hand over what they decoded, lets the
    /// sinks take what was committed and the engine drain, then disconnects
    /// from the broker.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.devices.wait().await;
        self.durable.stop().await;
        // Every Pipeline clone is gone with the sessions: the engine's inbox closes.
        let engine = tokio::task::spawn_blocking(move || self.engine_thread.join()).await?;
        if engine.is_err() {
            warn!("engine thread panicked");
        }
        let _ = self.deltas_task.await;
        self.publisher.wait_acked(DRAIN_TIMEOUT).await;
        self.publisher.disconnect().await;
        self.records_publisher.disconnect().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.mqtt_shutdown.cancel();
        for task in self.mqtt_tasks {
            let _ = task.await;
        }
        if let Some(http) = self.http {
            http.stop().await;
        }
        info!("node stopped");
        Ok(())
    }
}

pub fn start_engine(config: &Config) -> anyhow::Result<runtime::RunningEngine> {
    let e = &config.engine;
    if e.executor == Executor::MultiThreaded {
        let threads = if e.threads == 0 {
            drover_engine::default_threads()
        } else {
            e.threads
        };
        drover_engine::init_compute_pool(threads);
    }
    let engine = Engine::new(EngineConfig {
        executor: e.executor,
        presence_timeout_ms: i64::try_from(e.presence_timeout_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX),
        // Full-state deltas have no consumer yet (the WebSocket hub will be
        // one); presence changes are always emitted.
        emit_state: false,
        ..EngineConfig::default()
    });
    let runtime = RuntimeConfig {
        tick_ms: e.tick_ms,
        min_tick_ms: e.min_tick_ms,
        batch_max: e.batch_max,
        inbox_capacity: e.inbox_capacity,
        ..RuntimeConfig::default()
    };
    runtime::spawn(engine, runtime).context("starting the engine thread")
}

fn options(listener: &ListenerConfig) -> DecodeOptions {
    DecodeOptions {
        accept_bad_checksum: listener.accept_bad_checksum,
    }
}

async fn listen<P: Protocol>(
    config: &ListenerConfig,
    protocol: P,
    context: &impl Fn(Arc<ListenerStats>) -> ServerContext<Pipeline>,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
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
    tasks.spawn(drover_devices::run(
        listener,
        protocol,
        context(stats.clone()),
        shutdown.clone(),
    ));
    Ok(Some(Listening {
        protocol: name,
        addr,
        stats,
    }))
}

/// Presence changes become retained status messages.
async fn publish_presence(publisher: Publisher, deltas: flume::Receiver<Delta>) {
    while let Ok(delta) = deltas.recv_async().await {
        if let Delta::Presence { device, online, .. } = delta
            && let Err(error) = publisher.status(device.as_str(), online).await
        {
            warn!(%error, "status publisher stopped");
            return;
        }
    }
}
