//! End-to-end tests: the real `drover` binary, real brokers, real MQTT clients.
//!
//! One test binary with a module per area (ripgrep's layout); `support` gives
//! each test its own ports, directories and processes, and stops them.

mod access;
mod admission;
mod alerts;
mod api;
mod backends;
mod bench;
mod commands;
mod dashboard;
mod durability;
mod extending;
mod failure;
mod feed;
mod geofences;
mod influxdb;
mod metrics;
mod mqtt;
mod notifications;
mod openapi;
mod outage;
mod replay;
mod rollup;
mod sentinel;
mod stream;
mod support;
mod trips;
