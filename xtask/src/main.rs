//! `cargo xtask <task>`: the project's automation, in Rust so it runs wherever
//! cargo does.
//!
//! - `demo [ARGS]`: run `drover demo` (server with embedded defaults and
//!   1,000 simulated trackers in one process).
//! - `test [ARGS]`: install the system packages the tests use (Mosquitto and its
//!   clients, InfluxDB 1.x for the store's InfluxDB tests) when missing, then run
//!   every test of the workspace. Extra arguments go to `cargo test`.

use std::process::Command;

use anyhow::{Context, bail};

/// Debian packages the test suite drives for real, and a program of each to
/// check for.
const TEST_PACKAGES: &[(&str, &str)] = &[
    ("mosquitto", "mosquitto"),
    ("mosquitto_sub", "mosquitto-clients"),
    // drover-testkit starts private instances; the package's own service is
    // not needed (and does not start without systemd anyway).
    ("influxd", "influxdb"),
];

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match task.as_str() {
        "demo" => demo(&rest),
        "test" => test(&rest),
        _ => {
            eprintln!("usage: cargo xtask <demo|test> [ARGS]");
            bail!("unknown task {task:?}")
        }
    }
}

fn demo(args: &[String]) -> anyhow::Result<()> {
    run(Command::new(cargo())
        .args(["run", "--bin", "drover", "--", "demo"])
        .args(args))
}

fn test(args: &[String]) -> anyhow::Result<()> {
    install_missing(TEST_PACKAGES)?;
    run(Command::new(cargo())
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(args))
}

/// Installs the Debian packages whose programs are not on PATH.
fn install_missing(packages: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(program, _)| !on_path(program))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let apt = |apt_args: &[&str]| {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            sudo("apt-get")
        };
        command
            .args(apt_args)
            .env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    // A fresh machine has no package lists yet.
    run(&mut apt(&["update", "-qq"]))?;
    run(apt(&["install", "-y", "-qq"]).args(&missing))
}

fn sudo(program: &str) -> Command {
    let mut command = Command::new("sudo");
    command.arg(program);
    command
}

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}
