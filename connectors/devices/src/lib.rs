//! # drover-devices
//!
//! The TCP servers trackers connect to. One runner ([`server::run`]) serves
//! every protocol: it accepts connections and gives each a session that
//!
//! 1. reads bytes into a buffer, bounded by `max_frame_bytes`;
//! 2. asks the protocol's splitter for whole frames and skips garbage;
//! 3. decodes each frame with the protocol's pure decoder;
//! 4. when a frame names the device (its login), asks [`Ingest::admit`]
//!    whether it may be served; a refused device gets the protocol's refusal,
//!    if it has one, instead of its login ack, and the connection closes;
//! 5. hands the records to the pipeline through [`Ingest`] and waits until it
//!    has accepted them — while it waits it does not read, so a full pipeline
//!    pushes back on the device through TCP instead of dropping data;
//! 6. only then writes the protocol's ack bytes.
//!
//! Silent connections are closed after `idle_timeout_secs` and those that name
//! no device after `identify_timeout_secs`; oversized frames and runs of
//! undecodable frames close the connection; one address may hold at most
//! `max_connections_per_ip` connections. Every rejection is counted in
//! [`ListenerStats`] and logged with `peer`, `imei` and `protocol`.
//! The [`Registry`] remembers which connection holds which device so commands
//! can be written to it.
//!
//! **Invariant:** this crate moves bytes; it never interprets them. All protocol
//! knowledge lives in `drover-protocols`.

mod addresses;
pub mod config;
mod ingest;
mod registry;
pub mod server;
mod session;
mod stats;

pub use config::{DevicesConfig, ListenerConfig, SessionLimits};
pub use ingest::{Admit, Ingest, IngestClosed, Refusal};
pub use registry::{Connection, Registry, ToDevice};
pub use server::{ServerContext, run};
pub use session::SessionError;
pub use stats::{ListenerStats, StatsSnapshot};
