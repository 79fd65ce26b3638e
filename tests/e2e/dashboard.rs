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

/// GET `path` with `headers`: status, response headers and raw body.
fn fetch(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = support::client().get(format!("http://127.0.0.1:{port}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.bytes().map(|b| b.to_vec()).unwrap_or_default(),
    )
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[test]
fn the_node_serves_the_dashboard_with_its_tile_server_and_policy() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let tiles = "https://tiles.example/{z}/{x}/{y}.png?key=a&b=\"c\"";
    let (_node, ports) = support::drover_serve(dir.path(), &[format!("http.tile_url={tiles}")]);

    let (status, headers, body) = fetch(ports.http, "/", &[]);
    let page = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{page}");
    assert!(header(&headers, "content-type").starts_with("text/html"));
    // The tile URL is written into the page, escaped.
    assert!(
        page.contains(
            r#"content="https://tiles.example/{z}/{x}/{y}.png?key=a&amp;b=&quot;c&quot;""#
        ),
        "{page}"
    );
    let policy = header(&headers, "content-security-policy");
    assert!(
        policy.contains("img-src 'self' data: https://tiles.example;"),
        "{policy}"
    );
    assert!(
        policy.contains("script-src 'self' 'wasm-unsafe-eval'"),
        "{policy}"
    );
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");

    let wasm = "/pkg/drover_web_bg.wasm";
    let (status, headers, body) = fetch(ports.http, wasm, &[("accept-encoding", "gzip, br")]);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "application/wasm");
    assert_eq!(header(&headers, "content-encoding"), "gzip");
    assert_eq!(body.get(..2), Some(&[0x1f, 0x8b][..]), "a gzip stream");
    let etag = header(&headers, "etag").to_owned();
    let (_, headers, plain) = fetch(ports.http, wasm, &[("accept-encoding", "gzip;q=0")]);
    assert_eq!(header(&headers, "content-encoding"), "");
    assert_eq!(
        plain.get(..4),
        Some(&b"\0asm"[..]),
        "the WebAssembly module itself"
    );
    assert!(plain.len() > body.len());

    // Revalidation: same file, same tag, no body.
    let (status, _, body) = fetch(ports.http, wasm, &[("if-none-match", &etag)]);
    assert_eq!((status, body.len()), (304, 0));
    let (status, _, _) = fetch(ports.http, wasm, &[("if-none-match", "\"other\"")]);
    assert_eq!(status, 200);

    // Paths that are not files of the dashboard stay the API's JSON 404.
    let (status, _, body) = fetch(ports.http, "/pkg/nothing.js", &[]);
    let error: serde_json::Value = serde_json::from_slice(&body).expect("a JSON error");
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[test]
fn a_node_without_the_dashboard_serves_only_the_api() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (_node, ports) = support::drover_serve(dir.path(), &["http.dashboard=false".to_owned()]);
    let (status, _, _) = fetch(ports.http, "/", &[]);
    assert_eq!(status, 404);
    assert_eq!(support::http_get(ports.http, "/health").0, 200);
}
