//! Fail fast, restart clean: a panic in a core part of the node ends the
//! process with a non-zero status, and a restart loses nothing.
//!
//! The panicking node is this test binary run again as a child: its
//! [`panicking_node`] test starts a real node through `drover-node` — the same
//! code `drover serve` runs — with one extra, test-only engine system that
//! panics, so no fault switch exists in the product itself.

use std::process::{Command, Stdio};
use std::time::Duration;

use drover_engine::TickSet;
use drover_engine::bevy_ecs::prelude::*;
use drover_engine::components::Device;

use crate::durability::{assert_all_stored, assert_live_state_rebuilt, teltonika_load};
use crate::support::{self, Ports, Sim};

/// The child's settings, one `key=value` per line.
// Not `DROVER_…`: the configuration reads those.
const SETTINGS: &str = "PANICKING_NODE_SETTINGS";
/// The engine of the child panics once it holds this many devices.
const PANIC_AT_DEVICES: usize = 10;

#[test]
fn a_panicking_engine_ends_the_process_and_a_restart_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let ports = Ports::free();
    let child = support::serving("panicking node", dir, ports, &mut child_command(dir, ports));
    let sim = Sim::start(dir, &ports, &teltonika_load(20, 12));

    let status = child.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(70), "the node exits with EX_SOFTWARE");
    let log = std::fs::read_to_string(dir.join("drover.log")).expect("the node's log");
    assert!(
        log.contains("engine") && log.contains("injected panic"),
        "the log names the failed part and the panic: {log}"
    );

    let server = support::drover_serve_on(dir, ports, &[]);
    let (_, records) = sim.finish();
    let acked = support::acked_by_device(&records);
    assert!(
        acked.len() >= PANIC_AT_DEVICES,
        "devices acked before and after"
    );
    assert_all_stored(ports.http, &acked);
    assert_live_state_rebuilt(ports.http, &acked);
    assert!(server.interrupt().success());
}

/// This test binary, running only [`panicking_node`], as a node on `ports`.
fn child_command(dir: &std::path::Path, ports: Ports) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("the test binary's own path"));
    command
        .args([
            "--exact",
            "failure::panicking_node",
            "--ignored",
            "--nocapture",
        ])
        .env(
            SETTINGS,
            support::serve_settings(dir, ports, &[]).join("\n"),
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(support::log_file(dir, "drover.log"));
    command
}

/// Not a test of its own: the node that [`a_panicking_engine_ends_the_process_and_a_restart_loses_nothing`]
/// runs as a child process. It never returns: the node exits the process.
#[test]
#[ignore = "run as a child process by a_panicking_engine_ends_the_process_and_a_restart_loses_nothing"]
fn panicking_node() {
    let Ok(settings) = std::env::var(SETTINGS) else {
        return;
    };
    let overrides: Vec<String> = settings.lines().map(str::to_owned).collect();
    let config = drover_node::Config::load(None, &overrides).expect("the child's settings");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime
        .block_on(async {
            let node = drover_node::Node::start_with(&config, |engine| {
                engine.add_systems(TickSet::Analyze, panic_at_devices(PANIC_AT_DEVICES));
            })
            .await
            .expect("the node starts");
            drover_node::node::run_until_stopped(node).await
        })
        .expect("the node runs until it fails");
}

/// A system that panics once the world holds `devices` devices.
fn panic_at_devices(devices: usize) -> impl FnMut(Query<&Device>) {
    move |all: Query<&Device>| {
        let count = all.iter().count();
        assert!(
            count < devices,
            "injected panic: the engine holds {count} devices"
        );
    }
}
