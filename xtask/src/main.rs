//! `cargo xtask <task>`: the project's automation, in Rust so it runs wherever
//! cargo does.
//!
//! - `web`: build the dashboard (`web/app`, Leptos → WebAssembly) into
//!   `web/dist`, which the `drover` binary embeds. Installs the wasm32
//!   target and `wasm-bindgen-cli` at the exact version of the
//!   `wasm-bindgen` crate in Cargo.lock when missing (once per machine:
//!   the install takes ~10 minutes on 2 cores).
//! - `demo [ARGS]`: build the dashboard, then run `drover demo` (server
//!   with embedded defaults and 1,000 simulated trackers in one process).
//! - `test [ARGS]`: install the system packages the tests use (Mosquitto and its
//!   clients, InfluxDB 1.x for the store's InfluxDB tests, openssl and
//!   Python for the notification tests' TLS receivers, Chromium and Node
//!   for the dashboard's) when missing, schemathesis (the OpenAPI fuzzer)
//!   into `target/tools/schemathesis` and playwright-core into
//!   `tests/web/node_modules`, build the dashboard, then run every host
//!   test of the workspace with `SCHEMATHESIS` pointing at it. Extra
//!   arguments go to `cargo test`.

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
    // The dashboard's browser tests: Debian's Chromium driven by
    // playwright-core under Node (tests/web); nothing downloads a browser.
    ("chromium", "chromium"),
    ("node", "nodejs"),
    ("npm", "npm"),
];

/// A test run builds once from scratch on CI: incremental caches would only
/// add gigabytes to its disk footprint.
const NOT_INCREMENTAL: &str = "0";

/// The OpenAPI fuzzer the API test runs, pinned.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match task.as_str() {
        "web" => web(),
        "demo" => demo(&rest),
        "test" => test(&rest),
        _ => {
            eprintln!("usage: cargo xtask <web|demo|test> [ARGS]");
            bail!("unknown task {task:?}")
        }
    }
}

fn demo(args: &[String]) -> anyhow::Result<()> {
    web()?;
    run(Command::new(cargo())
        .args(["run", "--bin", "drover", "--", "demo"])
        .args(args))
}

fn test(args: &[String]) -> anyhow::Result<()> {
    install_missing(TEST_PACKAGES)?;
    let schemathesis = install_schemathesis()?;
    install_browser_tests()?;
    // The node under test serves the dashboard it embeds.
    web()?;
    web_unit_tests()?;
    run(Command::new(cargo())
        .args([
            "test",
            "--workspace",
            "--exclude",
            "drover-web",
            "--no-fail-fast",
        ])
        .args(args)
        .env("SCHEMATHESIS", schemathesis)
        .env("CARGO_INCREMENTAL", NOT_INCREMENTAL))
}

fn workspace_root() -> anyhow::Result<&'static std::path::Path> {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the workspace root")
}

/// Builds the dashboard into `web/dist`: the wasm module (profile `web`),
/// its JavaScript glue from `wasm-bindgen`, and the static files.
fn web() -> anyhow::Result<()> {
    let root = workspace_root()?;
    install_wasm_target()?;
    let bindgen = install_wasm_bindgen(root)?;
    run(Command::new(cargo()).current_dir(root).args([
        "build",
        "-p",
        "drover-web",
        "--target",
        "wasm32-unknown-unknown",
        "--profile",
        "web",
    ]))?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let wasm = target_dir.join("wasm32-unknown-unknown/web/drover_web.wasm");
    let dist = root.join("web/dist");
    let pkg = dist.join("pkg");
    if pkg.exists() {
        std::fs::remove_dir_all(&pkg)?;
    }
    run(Command::new(bindgen)
        .args(["--target", "web", "--no-typescript", "--out-dir"])
        .arg(&pkg)
        .arg(&wasm))?;
    for entry in std::fs::read_dir(root.join("web/static"))? {
        let entry = entry?;
        std::fs::copy(entry.path(), dist.join(entry.file_name()))?;
    }
    let size = std::fs::metadata(pkg.join("drover_web_bg.wasm"))?.len();
    eprintln!(
        "xtask: dashboard built into {} ({} KiB of wasm)",
        dist.display(),
        size / 1024
    );
    Ok(())
}

/// The dashboard's unit tests, as WebAssembly under Node.
fn web_unit_tests() -> anyhow::Result<()> {
    let root = workspace_root()?;
    let bindgen = install_wasm_bindgen(root)?;
    let runner = bindgen.with_file_name("wasm-bindgen-test-runner");
    run(Command::new(cargo())
        .current_dir(root)
        .args([
            "test",
            "-p",
            "drover-web",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER", runner)
        .env("CARGO_INCREMENTAL", NOT_INCREMENTAL))
}

fn install_wasm_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running rustup")?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|t| t.trim() == "wasm32-unknown-unknown")
    {
        return Ok(());
    }
    run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))
}

/// `wasm-bindgen` at the version Cargo.lock pins (the CLI and the crate
/// must match exactly), installed with cargo when missing; returns its path.
fn install_wasm_bindgen(root: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock"))?;
    let version =
        locked_version(&lock, "wasm-bindgen").context("wasm-bindgen is not in Cargo.lock")?;
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let bindgen = cargo_home.join("bin/wasm-bindgen");
    let current = Command::new(&bindgen).arg("--version").output();
    let wanted = format!("wasm-bindgen {version}");
    if current.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == wanted) {
        return Ok(bindgen);
    }
    eprintln!("xtask: installing wasm-bindgen-cli {version} (once; about 10 minutes on 2 cores)");
    // Not --locked: the CLI's own lock file names a crate version the
    // registry no longer has.
    run(Command::new(cargo()).args([
        "install",
        "wasm-bindgen-cli",
        "--version",
        &format!("={version}"),
    ]))?;
    Ok(bindgen)
}

/// The version of `package` in a Cargo.lock.
fn locked_version(lock: &str, package: &str) -> Option<String> {
    let wanted = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            let version = lines.next()?.trim().strip_prefix("version = \"")?;
            return Some(version.trim_end_matches('"').to_owned());
        }
    }
    None
}

/// playwright-core for the browser tests, from `tests/web`'s lock file;
/// it downloads no browser (the tests drive Debian's Chromium).
fn install_browser_tests() -> anyhow::Result<()> {
    let dir = workspace_root()?.join("tests/web");
    if dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return Ok(());
    }
    run(Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"))
}

/// A private virtualenv under `target/tools` with [`SCHEMATHESIS`], made
/// once; returns the path of its `st` program.
fn install_schemathesis() -> anyhow::Result<std::path::PathBuf> {
    let root = workspace_root()?;
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
