//! # drover-node
//!
//! A Drover node as a library, so the `drover` binary stays a thin command
//! line and tests and benchmarks can start a node in process as well as a
//! process:
//!
//! * [`config`]: the one configuration (defaults ← TOML ← `DROVER_*` env ←
//!   `--set`), every key documented in `docs/configuration.md`;
//! * [`access`]: the catalog (users, API keys, device registry), the API's
//!   authentication, the first admin, API keys as MQTT passwords;
//! * [`node`]: the wiring of every part and its orderly shutdown;
//! * [`pipeline`]: the ack path — records into the journal, nothing else;
//! * [`admission`]: which trackers the listeners serve (the device registry);
//! * [`storage`]: the journal and its consumers (history backend, MQTT,
//!   the engine), segment retirement, retention and journal recovery;
//! * [`engine`]: the engine as a journal consumer, its snapshots and the
//!   MQTT status it publishes;
//! * `analytics`: what the engine's analytics produce, out to MQTT (trips);
//! * `stream`: the live stream's hub — committed positions and status
//!   changes fanned out to WebSocket clients, slow ones coalesced and let go;
//! * [`commands`]: commands to devices — the durable queue, delivery on
//!   connection, answers from committed records, the clock, MQTT in and out;
//! * [`supervise`]: a core task that fails ends the node (fail fast,
//!   restart clean);
//! * `sinks`: the adapters from the journal's sink runner to each destination;
//! * `history`: the API's history reads on the embedded store and InfluxDB;
//! * `feed`: the integrator feed, read straight from the journal;
//! * [`http`]: the HTTP server and the `/health` document;
//! * `metrics`: the node's counters for Prometheus `/metrics`, read at scrape time;
//! * [`rlimit`]: the open-file limit a fleet of connections needs.

pub mod access;
pub mod admission;
mod alerts;
mod analytics;
pub mod commands;
pub mod config;
pub mod engine;
mod feed;
mod fleet_rules;
mod history;
pub mod http;
mod jobs;
mod metrics;
pub mod node;
mod notifications;
pub mod pipeline;
pub mod replay;
pub mod rlimit;
pub mod sentinel;
mod sinks;
pub mod storage;
mod stream;
pub mod supervise;
mod trips;

pub use config::Config;
pub use node::Node;
pub use supervise::Failure;
