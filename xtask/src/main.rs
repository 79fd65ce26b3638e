//! `cargo xtask <task>`: the project's automation, in Rust so it runs wherever
//! cargo does.
//!
//! - `demo [ARGS]`: run `drover demo` (server with embedded defaults and
//!   1,000 simulated trackers in one process).
//! - `test [ARGS]`: install the system packages the tests use (Mosquitto and its
//!   clients, InfluxDB 1.x for the store's InfluxDB tests, openssl and
//!   Python for the notification tests' TLS receivers) when missing, and
//!   schemathesis (the OpenAPI fuzzer) into `target/tools/schemathesis`,
//!   then run every test of the workspace with `SCHEMATHESIS` pointing at it.
//!   Extra arguments go to `cargo test`.

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
    // The notification tests' TLS receivers: a CA and certificates made
    // with openssl, HTTPS and STARTTLS servers in Python.
    ("openssl", "openssl"),
    ("python3", "python3"),
];

/// The OpenAPI fuzzer the API test runs, pinned.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

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
    let schemathesis = install_schemathesis()?;
    run(Command::new(cargo())
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(args)
        .env("SCHEMATHESIS", schemathesis))
}

/// A private virtualenv under `target/tools` with [`SCHEMATHESIS`], made
/// once; returns the path of its `st` program.
fn install_schemathesis() -> anyhow::Result<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the workspace root")?;
    let venv = root.join("target/tools/schemathesis");
    let st = venv.join("bin/st");
    let marker = venv.join(SCHEMATHESIS);
    if st.exists() && marker.exists() {
        return Ok(st);
    }
    if !Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .status()
        .is_ok_and(|s| s.success())
    {
        apt_install(&["python3-venv"])?;
    }
    eprintln!("xtask: installing {SCHEMATHESIS} into {}", venv.display());
    run(Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg("--clear")
        .arg(&venv))?;
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        SCHEMATHESIS,
    ]))?;
    std::fs::write(&marker, b"")?;
    Ok(st)
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
    apt_install(&missing)
}

/// `apt-get install` of `packages`, through sudo unless root.
fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    eprintln!("xtask: installing {}", packages.join(" "));
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
    run(apt(&["install", "-y", "-qq"]).args(packages))
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
