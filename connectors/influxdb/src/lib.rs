//! # drover-influxdb
//!
//! The InfluxDB connector: Drover's records as line protocol over the v1 HTTP
//! API (`/write`, `/query` with InfluxQL, `/ping`), the one API shared by
//! InfluxDB 1.x, 2.x (v1 compatibility: token or user/password, database and
//! retention policy mapped to a bucket) and 3.x.
//!
//! * [`line`](mod@line): the schema and the line-protocol encoder.
//! * [`InfluxClient`] (`client.rs`): batched writes, one attempt per chunk,
//!   with responses classified into a [`WriteReport`] or an [`InfluxError`].
//!   Retrying is the caller's: the journal's sink runner retries a failed
//!   batch with backoff and counts the failures.
//! * `query.rs`: positions read back with InfluxQL.
//! * `derived.rs`: measurements the node derives (trips, alerts), written as
//!   [`line::Point`]s and read back as [`Row`]s.
//!
//! Delivery: a sink reads the journal and advances its cursor only after
//! [`InfluxClient::write`] returned `Ok`. Replays are harmless
//! because the same (measurement, tags, time) overwrites. A *partial write*
//! (HTTP 400 naming a few bad lines, e.g. a field type conflict) stored the
//! good lines: it is logged and counted, never re-sent, since re-sending could
//! only fail the same way forever.
//!
//! Plain HTTP only: reqwest is built without TLS to keep the build small; put
//! a TLS-terminating proxy in front of a remote server (see `docs/influxdb.md`).

mod client;
mod derived;
pub mod line;
mod query;

use serde::{Deserialize, Serialize};

pub use client::{InfluxClient, WriteReport};
pub use derived::{Row, RowQuery};

/// Where and how to write. Every field has a default, so an empty section is a
/// local InfluxDB 1.x with a `drover` database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InfluxConfig {
    /// Base URL of the server (a path prefix behind a proxy is kept).
    pub url: String,
    /// Database (1.x) or the database mapped to a bucket (2.x, 3.x).
    pub database: String,
    /// Retention policy to write to and read from; the database's default when unset.
    pub retention_policy: Option<String>,
    /// API token (2.x, 3.x), sent as `Authorization: Token …`.
    pub token: Option<String>,
    /// User for basic authentication (1.x with auth enabled, 2.x v1 auth).
    pub username: Option<String>,
    /// Password of `username`.
    pub password: Option<String>,
    /// Lines per write request. Larger batches amortise the per-request cost
    /// (1 point per request: ~800 points/s; 5,000: ~70k on the development
    /// machine); keep a batch under the server's `max-body-size` (25 MB).
    pub batch_lines: usize,
    /// How long the sink may gather records before writing a partial batch.
    /// Read by the sink runner; the client writes whatever it is given.
    pub flush_ms: u64,
    /// Gzip request bodies. Off by default: on a CPU-bound machine with a
    /// local server it halved throughput; worth it over a slow network.
    pub gzip: bool,
    /// Timeout of one HTTP request, connection included.
    pub timeout_ms: u64,
    /// Send `CREATE DATABASE` on start ([`InfluxClient::ensure_database`]); a
    /// refusal (no admin rights, 2.x/3.x) is logged and ignored.
    pub create_database: bool,
}

impl Default for InfluxConfig {
    fn default() -> Self {
        InfluxConfig {
            url: "http://127.0.0.1:8086".to_owned(),
            database: "drover".to_owned(),
            retention_policy: None,
            token: None,
            username: None,
            password: None,
            batch_lines: 5000,
            flush_ms: 1000,
            gzip: false,
            timeout_ms: 10_000,
            create_database: true,
        }
    }
}

/// What went wrong talking to InfluxDB, each saying what to fix. Only
/// [`InfluxError::Unavailable`] is transient by nature; the others need an
/// operator, after which a retry succeeds (writes are idempotent).
#[derive(Debug, thiserror::Error)]
pub enum InfluxError {
    #[error("invalid InfluxDB configuration: {0}")]
    Config(String),
    #[error(
        "InfluxDB database {database:?} not found (HTTP 404): create it \
         (CREATE DATABASE, or create_database = true with an admin user) or fix `database`"
    )]
    DatabaseNotFound { database: String },
    #[error(
        "InfluxDB refused the credentials (HTTP 401): set `token` (2.x, 3.x) or \
         `username`/`password` (1.x) to a valid identity ({message})"
    )]
    Unauthorized { message: String },
    #[error(
        "InfluxDB denied access to database {database:?} (HTTP 403): grant the user \
         WRITE (and READ for queries) on it ({message})"
    )]
    Forbidden { database: String, message: String },
    #[error(
        "InfluxDB refused a {bytes}-byte request as too large (HTTP 413): lower \
         `batch_lines` or raise the server's `max-body-size`"
    )]
    TooLarge { bytes: usize },
    #[error("InfluxDB is unavailable: {reason}")]
    Unavailable { reason: String },
    #[error("InfluxDB answered HTTP {status}: {message}")]
    Unexpected { status: u16, message: String },
    #[error("InfluxQL query failed: {message}")]
    Query { message: String },
    #[error("InfluxDB's answer could not be read: {0}")]
    Decode(String),
}

impl InfluxError {
    /// True for errors that go away by themselves (server down, timeout, 5xx).
    pub fn is_transient(&self) -> bool {
        matches!(self, InfluxError::Unavailable { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_fills_defaults_and_refuses_unknown_keys() {
        let config: InfluxConfig =
            serde_json::from_str(r#"{"database":"fleet","gzip":true}"#).unwrap();
        assert_eq!(config.database, "fleet");
        assert!(config.gzip);
        assert_eq!(config.url, "http://127.0.0.1:8086");
        assert_eq!(
            (config.batch_lines, config.flush_ms, config.timeout_ms),
            (5000, 1000, 10_000)
        );
        assert!(config.create_database);
        assert!(serde_json::from_str::<InfluxConfig>(r#"{"databse":"x"}"#).is_err());
    }
}
