//! The dashboard in a real browser: Debian's Chromium driven by Playwright
//! (`tests/web`, Node's test runner) against the real node serving the
//! embedded dashboard, with simulated trackers reporting every second.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, Process, Sim};

/// Simulated devices behind the browser tests.
const DEVICES: u32 = 24;

/// Where the browser tests live, with their `node_modules`.
fn web_tests() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/web"))
}

#[test]
fn the_dashboard_works_in_chromium() {
    support::require("chromium");
    support::require("node");
    assert!(
        web_tests().join("node_modules/playwright-core").exists(),
        "playwright-core is not installed in tests/web: run `cargo xtask test`"
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    // No tile server in tests: the map draws its plain background.
    let settings = ["http.tile_url=".to_owned()];
    let (node, ports) = support::drover_serve(dir.path(), &settings);
    let (status, page) = support::http_text(ports.http, "/");
    assert_eq!(
        status, 200,
        "the dashboard is not built into this binary: {page}"
    );
    assert!(page.contains("drover:tile-url"), "{page}");

    let sim = [
        "--devices",
        &DEVICES.to_string(),
        "--rate",
        "1",
        "--duration",
        "300",
        "--ramp",
        "2",
        "--teltonika-share",
        "0.5",
        "--no-mqtt",
    ];
    let _sim = Sim::start(dir.path(), &ports, &sim.map(str::to_owned));
    let reporting = support::eventually(Duration::from_secs(30), || {
        support::http_get(ports.http, "/health").1["devices"]["connected"] == u64::from(DEVICES)
    });
    assert!(reporting, "{}", support::http_get(ports.http, "/health").1);
    // Long enough for a trip, a history to chart and vehicles under way.
    std::thread::sleep(Duration::from_secs(8));

    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    let control = dir.path().join("control");
    std::fs::create_dir_all(&control).expect("the control directory");
    let out = dir.path().join("browser-tests.out");
    let mut runner = Process::spawn(
        "node --test",
        Command::new("node")
            .args(["--test", "--test-concurrency=1", "dashboard.test.mjs"])
            .current_dir(web_tests())
            .env("DROVER_URL", format!("http://127.0.0.1:{}", ports.http))
            .env("DROVER_PASSWORD", support::ADMIN_PASSWORD)
            .env("DROVER_DEVICES", DEVICES.to_string())
            .env("DROVER_SCREENSHOTS", &screenshots)
            .env("DROVER_CONTROL", &control)
            .stdout(support::log_file(dir.path(), "browser-tests.out"))
            .stderr(Stdio::inherit()),
    );
    // The reconnect test asks for the node to restart under the browser.
    let mut node = Some(node);
    let started = Instant::now();
    let status = loop {
        if let Ok(Some(status)) = runner.child.try_wait() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the browser tests hang"
        );
        if std::fs::remove_file(control.join("restart")).is_ok() {
            if let Some(running) = node.take() {
                running.interrupt();
            }
            node = Some(support::drover_serve_on(dir.path(), ports, &settings));
            std::fs::write(control.join("restarted"), b"")
                .expect("writing to the control directory");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let report = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        status.success(),
        "the browser tests failed:\n{report}\nnode log: {}",
        dir.path().join("drover.log").display()
    );
    assert!(report.contains("# fail 0"), "{report}");
    assert!(screenshots.join("dashboard.png").exists());
}
