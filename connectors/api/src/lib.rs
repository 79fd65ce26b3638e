//! # drover-api
//!
//! Drover's HTTP API, served by axum on `[http] listen`:
//!
//! - `GET /health`: the node's counters (the node supplies them).
//! - `GET /api/v1/devices`: every device with its latest state — the engine's
//!   live state for devices seen since the node started, the history store's
//!   latest position for the others.
//! - `GET /api/v1/devices/{imei}`: one device, 404 when nothing knows it.
//! - `GET /api/v1/devices/{imei}/positions?from=&to=&limit=&cursor=`: position
//!   history in ascending time, RFC 3339 times, paged with an opaque cursor.
//!
//! Every error is JSON, `{"error": {"code": "...", "message": "..."}}`, with
//! the matching status (400 bad input, 404 unknown device or route, 503 when a
//! backend is unavailable). The history backend (embedded store or InfluxDB)
//! is behind the [`history::History`] trait, implemented by the node, so the
//! routes do not care which (and this crate depends on neither).

pub mod error;
pub mod history;
mod positions;
mod routes;

pub use error::ApiError;
pub use routes::{Api, HealthFn, router};
