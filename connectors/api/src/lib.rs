//! # drover-api
//!
//! Drover's HTTP API on axum, for integrators and the dashboard:
//! authentication (users with passwords and roles, tokens, API keys), the
//! device registry and groups, live state and history, OpenAPI at
//! `/api/openapi.json` with a docs page at `/api/docs`, `/health`, and
//! Prometheus `/metrics` ([`metrics`]).
//! `docs/api.md` is the reference for clients.
//!
//! The crate holds no storage of its own. It reads the catalog
//! ([`drover_catalog`]), the engine's live state, a history backend
//! behind the [`history::History`] trait, the committed records behind
//! [`feed::FeedSource`] and the live stream's hub behind
//! [`stream::StreamHub`], all handed in by the node as an
//! [`Api`]; what only the node can gather (its `/health` counters) comes in
//! as a function.
//!
//! Every error is JSON, `{"error": {"code", "message"}}` ([`error`]); a
//! fault inside the node is logged and answered 500 without its cause.

pub mod auth;
pub mod commands;
pub mod error;
mod extract;
pub mod feed;
mod geofences;
pub mod history;
pub mod metrics;
mod model;
pub mod positions;
mod routes;
pub mod stream;
pub mod summaries;

use std::sync::Arc;
use std::time::Duration;

use drover_catalog::Catalog;
use drover_engine::LiveView;
use serde_json::Value;

pub use auth::{Auth, Caller};
pub use error::ApiError;
pub use routes::{openapi, router};

/// Closes a device's connection, if it has one, with a reason for the log:
/// a disabled or unregistered tracker must not keep being served.
pub type DisconnectFn = Arc<dyn Fn(&str, &'static str) -> bool + Send + Sync>;

/// The node's counters for `/health`, gathered by whoever owns them.
pub type HealthFn = Arc<dyn Fn() -> Value + Send + Sync>;

/// What the handlers read from and write to.
#[derive(Clone)]
pub struct Api {
    pub auth: Arc<Auth>,
    pub catalog: Arc<Catalog>,
    /// The fleet as the engine published it after its last tick.
    pub live: LiveView,
    pub history: Arc<dyn history::History>,
    /// Committed records in journal order, for `GET /api/v1/feed`.
    pub feed: Arc<dyn feed::FeedSource>,
    /// The node's live stream hub, for `GET /api/v1/stream`.
    pub stream: Arc<dyn stream::StreamHub>,
    /// The fleet snapshot new stream clients share.
    pub snapshots: Arc<stream::FleetSnapshots>,
    /// The node's command queue and delivery.
    pub commands: Arc<dyn commands::CommandStore>,
    pub health: HealthFn,
    pub disconnect: DisconnectFn,
    /// What `/metrics` serves, the HTTP metrics among it.
    pub metrics: Arc<metrics::Metrics>,
    pub limits: Limits,
    pub alerts: Alerts,
    /// Where days begin for daily summaries (`analytics.summaries.timezone`).
    pub timezone: Zone,
    pub dashboard: Dashboard,
}

/// The dashboard the node serves at `/` (`web/`).
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// Whether to serve it (`http.dashboard`).
    pub enabled: bool,
    /// The map tiles' URL template (`http.tile_url`), with `{z}`, `{x}`,
    /// `{y}` (and `{s}`); empty: no tiles, a plain map with a graticule.
    pub tile_url: String,
}

/// A time zone with the name it was configured by.
#[derive(Debug, Clone)]
pub struct Zone {
    pub name: String,
    pub zone: jiff::tz::TimeZone,
}

/// Operators' way to the engine's alerts.
#[derive(Clone)]
pub struct Alerts {
    /// Whether email notifications can be sent (an SMTP relay is set).
    pub email: bool,
    pub desk: drover_engine::AlertDesk,
    /// How many of the engine's analytics outputs are stored (see
    /// [`drover_engine::Answer::analytics_through`]).
    pub stored: Arc<dyn Fn() -> u64 + Send + Sync>,
}

/// Bounds on what one client can make the server do (`[http]`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body; more is 413.
    pub max_body_bytes: usize,
    /// A request not answered in this time is 408.
    pub request_timeout: Duration,
    /// Requests handled at once; more wait.
    pub max_concurrent: usize,
    /// Origins allowed to call the API from a browser page on another
    /// origin (CORS). Empty: none.
    pub cors_origins: Vec<String>,
    /// How often the live stream pings a client; one that answers nothing
    /// for two of these is closed. `None`: no pings.
    pub stream_ping: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            max_concurrent: 512,
            cors_origins: Vec::new(),
            stream_ping: Some(Duration::from_secs(30)),
        }
    }
}
