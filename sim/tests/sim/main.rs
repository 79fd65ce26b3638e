//! End-to-end tests of the simulator over loopback: one binary, a module per
//! area, the fake servers and broker shared.

mod broker;
mod commands;
mod fake_server;
mod mqtt;
mod runner;
mod scale;
