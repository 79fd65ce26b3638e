//! # drover-testkit
//!
//! Harnesses that start real servers for Drover's tests, each private to the
//! test: its own temporary directories, free loopback ports, stopped on drop.
//! Only ever a dev-dependency.
//!
//! * [`Influxd`]: Debian's InfluxDB 1.x (`influxd`), speaking the v1 HTTP API.

mod http;
mod influxd;

pub use influxd::{Influxd, InfluxdError};
