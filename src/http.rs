//! The node's HTTP endpoint: `/health`, with the counters of every part.
//! (The REST API and its docs grow here in `drover-api`.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use anyhow::Context;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use drover_devices::{ListenerStats, Registry};
use drover_engine::runtime::EngineStats;
use drover_mqtt::PublisherStats;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::HttpSection;
use crate::node::Listening;

#[derive(Clone)]
struct Parts {
    listeners: Arc<Vec<(&'static str, SocketAddr, Arc<ListenerStats>)>>,
    engine: Arc<EngineStats>,
    mqtt: Arc<PublisherStats>,
    registry: Registry,
}

pub struct Http {
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Http {
    pub async fn start(
        config: &HttpSection,
        registry: Registry,
        engine: Arc<EngineStats>,
        mqtt: Arc<PublisherStats>,
        listeners: &[Listening],
    ) -> anyhow::Result<Option<Http>> {
        if config.listen.trim().is_empty() {
            return Ok(None);
        }
        let parts = Parts {
            listeners: Arc::new(
                listeners
                    .iter()
                    .map(|l| (l.protocol, l.addr, l.stats.clone()))
                    .collect(),
            ),
            engine,
            mqtt,
            registry,
        };
        let app = Router::new()
            .route("/health", get(health))
            .with_state(parts);
        let listener = tokio::net::TcpListener::bind(config.listen.trim())
            .await
            .with_context(|| format!("http.listen: cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let until = stop.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "HTTP server stopped");
            }
        });
        tracing::info!(%addr, "HTTP listening");
        Ok(Some(Http { addr, stop, task }))
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn health(State(parts): State<Parts>) -> Json<Value> {
    let listeners: Vec<Value> = parts
        .listeners
        .iter()
        .map(|(protocol, addr, stats)| {
            json!({ "protocol": protocol, "addr": addr.to_string(), "stats": stats.snapshot() })
        })
        .collect();
    let e = &parts.engine;
    let ticks = e.ticks.load(Relaxed);
    Json(json!({
        "status": "ok",
        "devices": {
            "connected": parts.registry.len(),
            "known": e.devices.load(Relaxed),
        },
        "listeners": listeners,
        "engine": {
            "ticks": ticks,
            "inputs": e.inputs.load(Relaxed),
            "tick_us_mean": e.tick_ns_total.load(Relaxed) / ticks.max(1) / 1000,
            "tick_us_max": e.tick_ns_max.load(Relaxed) / 1000,
        },
        "mqtt": {
            "published": parts.mqtt.published.load(Relaxed),
            "acked": parts.mqtt.acked.load(Relaxed),
            "connects": parts.mqtt.connects.load(Relaxed),
            "connection_errors": parts.mqtt.connection_errors.load(Relaxed),
        },
    }))
}
