//! # drover-sim
//!
//! The load simulator: a fleet of virtual vehicles whose trackers speak GT06
//! and Teltonika to a Drover server over TCP, exactly as real ones do, and
//! measure what the server gives back — acks, and the positions it publishes
//! on MQTT.
//!
//! How the pieces fit, from a vehicle to the report:
//!
//! - [`route`] lays out an endless drive through a city: straight segments,
//!   turns at intersections, lights, deliveries. [`vehicle`] drives it —
//!   acceleration, braking, stops, ignition cycles — and [`powertrain`] makes
//!   the OBD values (rpm, fuel, coolant, load, throttle) agree with the
//!   driving. A [`vehicle::Vehicle`] is pure and seeded: it moves only when
//!   stepped and yields the [`Record`](drover_protocols::model::Record) its
//!   tracker would send. Same seed, same tracks.
//! - [`link`] is one connection's protocol logic without I/O: it builds
//!   frames with `drover_protocols`' device encoders, splits the server's
//!   replies, decides which positions an ack proves delivered, and answers
//!   the server's commands as real devices do (an engine stop cuts the
//!   vehicle's fuel).
//! - [`tracker`] is the async shell of one virtual device: connect (ramped),
//!   log in, send at the configured rate or in closed loop, read acks,
//!   reconnect with backoff, drain at the end.
//! - [`runner::run`] starts the fleet, the MQTT subscription ([`mqtt`]) and
//!   the progress bar, and assembles the [`Report`]. The [`latency::Ledger`]
//!   pairs each sent position with its ack and its MQTT publication.
//! - [`record_log`] writes one JSON line per position sent, for end-to-end
//!   tests that check every acked position reached MQTT.
//! - [`null_server`] frames and acks without decoding or storing anything:
//!   the machine's ceiling for the same client, for benchmarks.
//! - [`in_process`] skips the network: it hands the vehicles' records
//!   straight to a callback, for loading the engine alone.
//!
//! [`config::SimArgs`] is the command line (`drover sim` flattens it);
//! [`config::SimConfig`] is what library users build.
//!
//! **Invariant:** every task ends by itself at the configured duration plus
//! bounded drain and grace times, and every queue is bounded. Network
//! failures are counted in the report, never panics.

pub mod config;
pub mod in_process;
pub mod latency;
pub mod link;
pub mod mqtt;
pub mod null_server;
pub mod powertrain;
pub mod progress;
pub mod record_log;
pub mod report;
pub mod route;
pub mod runner;
pub mod scenario;
pub mod stats;
pub mod tracker;
pub mod vehicle;

use std::path::PathBuf;

pub use config::{SimArgs, SimConfig};
pub use in_process::{InProcessReport, run_in_process};
pub use null_server::{NullCounts, NullServer};
pub use report::Report;
pub use runner::run;

/// Why a run could not start or its results could not be written. Failures
/// of the server under load are not errors: they are counted in the report.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// An option is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The MQTT broker could not be reached or refused the subscription.
    #[error("MQTT: {0}")]
    Mqtt(String),
    /// The report, the record log or a scenario could not be written.
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A scenario file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes `lines` to `path`, one JSON object per line.
pub(crate) fn write_json_lines<T: serde::Serialize>(
    path: &std::path::Path,
    lines: impl Iterator<Item = T>,
) -> Result<(), SimError> {
    use std::io::Write;
    let write = || -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for line in lines {
            serde_json::to_writer(&mut out, &line)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    };
    write().map_err(|source| SimError::Write {
        path: path.to_owned(),
        source,
    })
}
