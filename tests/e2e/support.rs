//! Processes and files for one end-to-end test. Everything is bound to
//! 127.0.0.1 on free ports and stopped when the test's handles drop.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use drover_protocols::model::{Fix, Record, RecordKind};
use serde_json::Value;

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16, what: &str) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what} did not start listening on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fails with a pointer to the setup when a required program is missing.
pub fn require(program: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{program} is not installed: run `cargo xtask test`, which installs what the tests need"
    );
}

/// A child process killed when dropped.
pub struct Process {
    pub child: Child,
    pub name: &'static str,
}

impl Process {
    pub fn spawn(name: &'static str, command: &mut Command) -> Process {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Process { child, name }
    }

    /// SIGKILL: the process gets no chance to flush or save anything.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit by itself (at most `limit`).
    pub fn wait_exit(mut self, limit: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(started.elapsed() < limit, "{} did not exit", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGINT and waits for a clean exit (at most 20 s).
    pub fn interrupt(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{} did not stop on SIGINT",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private Mosquitto broker on a free port.
pub fn mosquitto(dir: &Path) -> (Process, u16) {
    require("mosquitto");
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nlog_dest stderr\n"
        ),
    )
    .expect("writing mosquitto.conf");
    let process = Process::spawn(
        "mosquitto",
        Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_for_port(port, "mosquitto");
    (process, port)
}

/// The ports of one `drover serve`.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub gt06: u16,
    pub teltonika: u16,
    pub http: u16,
    /// The embedded broker's, unless the test's settings choose another broker.
    pub mqtt: u16,
}

impl Ports {
    /// Four distinct ports free now (each held until all are found, so
    /// the kernel cannot hand one out twice).
    pub fn free() -> Ports {
        let held: Vec<TcpListener> = (0..4)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
            .collect();
        let port = |i: usize| held[i].local_addr().expect("a bound port").port();
        Ports {
            gt06: port(0),
            teltonika: port(1),
            http: port(2),
            mqtt: port(3),
        }
    }
}

/// `drover serve` on free ports, with `extra` settings.
pub fn drover_serve(dir: &Path, extra: &[String]) -> (Process, Ports) {
    let ports = Ports::free();
    (drover_serve_on(dir, ports, extra), ports)
}

/// `drover serve` on `ports` with its data in `dir/data` (so a restart on the
/// same ports and directory is the same node), once it listens.
pub fn drover_serve_on(dir: &Path, ports: Ports, extra: &[String]) -> Process {
    serving(
        "drover serve",
        dir,
        ports,
        &mut serve_command(dir, ports, extra),
    )
}

/// Starts `command`, a node logging to `dir/drover.log`, and waits until it
/// listens on `ports`.
pub fn serving(name: &'static str, dir: &Path, ports: Ports, command: &mut Command) -> Process {
    let mut process = Process::spawn(name, command);
    let started = Instant::now();
    for port in [ports.gt06, ports.teltonika, ports.http] {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            let exited = process.child.try_wait().ok().flatten();
            let log = || std::fs::read_to_string(dir.join("drover.log")).unwrap_or_default();
            assert!(
                exited.is_none(),
                "{name} exited ({exited:?}) before listening:\n{}",
                log()
            );
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{name} did not listen on {port} within 60 s:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    forget_token(ports.http);
    process
}

/// The `drover serve` command line, not started (for runs expected to fail).
pub fn serve_command(dir: &Path, ports: Ports, extra: &[String]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_drover"));
    command.arg("serve");
    for setting in serve_settings(dir, ports, extra) {
        command.args(["--set", &setting]);
    }
    command
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log_file(dir, "drover.log"));
    command
}

/// The node account's password in every test (user `drover`): the
/// embedded broker refuses clients without a login.
pub const MQTT_PASSWORD: &str = "e2e-mqtt-password";

/// `mqtt://drover:…@127.0.0.1:port`, the test node's broker with its login.
pub fn mqtt_url(port: u16) -> String {
    format!("mqtt://drover:{MQTT_PASSWORD}@127.0.0.1:{port}")
}

/// The settings of a test's node: its data in `dir/data`, `ports`, then `extra`.
pub fn serve_settings(dir: &Path, ports: Ports, extra: &[String]) -> Vec<String> {
    let mut settings = vec![
        format!("data_dir={}", dir.join("data").display()),
        format!("devices.gt06.listen=127.0.0.1:{}", ports.gt06),
        format!("devices.teltonika.listen=127.0.0.1:{}", ports.teltonika),
        format!("http.listen=127.0.0.1:{}", ports.http),
        format!("mqtt.embedded_listen=127.0.0.1:{}", ports.mqtt),
        format!("mqtt.password={MQTT_PASSWORD}"),
        format!("auth.admin_password={ADMIN_PASSWORD}"),
        // The simulated fleets of the tests all come from 127.0.0.1, with
        // IMEIs nobody registered (`admission` sets it back to refuse them).
        "devices.max_connections_per_ip=0".to_owned(),
        "devices.register_unknown=true".to_owned(),
    ];
    settings.extend(extra.iter().cloned());
    settings
}

/// Opens `dir/name` for appending, so restarts keep earlier logs.
pub fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .expect("opening a log file")
}

/// The password of user `admin` on every test node.
pub const ADMIN_PASSWORD: &str = "e2e admin password";

/// An HTTP client for the test node on loopback (no proxy, whatever
/// HTTP_PROXY says).
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// `method path` with `token` (if any) and a JSON `body` (if any): the
/// status and the body, as JSON (`Value::Null` when empty or not JSON).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
    let mut request = client().request(method.clone(), format!("http://127.0.0.1:{port}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request
        .send()
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status().as_u16();
    let text = response
        .text()
        .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"));
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Logs in as `username` and returns the token.
pub fn login_as(port: u16, username: &str, password: &str) -> String {
    let body = serde_json::json!({ "username": username, "password": password });
    let (status, json) = http(port, "POST", "/api/v1/auth/login", None, Some(&body));
    assert_eq!(status, 200, "login as {username}: {json}");
    json["token"].as_str().expect("a token").to_owned()
}

static TOKENS: std::sync::Mutex<Option<HashMap<u16, String>>> = std::sync::Mutex::new(None);

/// A token of user `admin` on the node at `port`, logged in once per port.
pub fn admin_token(port: u16) -> String {
    let mut tokens = TOKENS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    tokens
        .get_or_insert_with(HashMap::new)
        .entry(port)
        .or_insert_with(|| login_as(port, "admin", ADMIN_PASSWORD))
        .clone()
}

/// Drops the token cached for `port`: a new node listens there now, with a
/// signing key of its own when it is not a restart (ports are reused
/// across the tests running in parallel).
fn forget_token(port: u16) {
    if let Some(tokens) = TOKENS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_mut()
    {
        tokens.remove(&port);
    }
}

/// `GET path` on 127.0.0.1:`port` as the admin: the status and the JSON body.
pub fn http_get(port: u16, path: &str) -> (u16, Value) {
    let (mut status, mut json) = http(port, "GET", path, Some(&admin_token(port)), None);
    if status == 401 {
        // A new node started outside `serving` on a reused port.
        forget_token(port);
        (status, json) = http(port, "GET", path, Some(&admin_token(port)), None);
    }
    assert!(
        !json.is_null() || status == 204,
        "GET {path}: {status} without a JSON body"
    );
    (status, json)
}

/// `GET path` without a credential, as text (pages, not the API).
pub fn http_text(port: u16, path: &str) -> (u16, String) {
    let response = client()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().unwrap_or_default())
}

/// `mosquitto_sub -v` on `topics`, writing what it receives to a file.
pub struct Subscriber {
    _process: Process,
    pub out: PathBuf,
}

impl Subscriber {
    pub fn start(dir: &Path, port: u16, topics: &[&str]) -> Subscriber {
        require("mosquitto_sub");
        let out = dir.join("mosquitto_sub.out");
        let mut command = Command::new("mosquitto_sub");
        command.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-v"]);
        command.args(["-u", "drover", "-P", MQTT_PASSWORD]);
        for topic in topics {
            command.args(["-t", topic]);
        }
        command
            .stdout(log_file(dir, "mosquitto_sub.out"))
            .stderr(Stdio::null());
        let process = Process::spawn("mosquitto_sub", &mut command);
        // mosquitto_sub says nothing once subscribed: give it a moment.
        std::thread::sleep(Duration::from_millis(700));
        Subscriber {
            _process: process,
            out,
        }
    }

    /// Every (topic, JSON payload) received so far.
    pub fn messages(&self) -> Vec<(String, Value)> {
        self.lines()
            .into_iter()
            .filter_map(|(topic, payload)| Some((topic, serde_json::from_str(&payload).ok()?)))
            .collect()
    }

    /// Every (topic, payload) received so far, in order.
    pub fn lines(&self) -> Vec<(String, String)> {
        let Ok(file) = std::fs::File::open(&self.out) else {
            return Vec::new();
        };
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| {
                let (topic, payload) = line.split_once(' ')?;
                Some((topic.to_owned(), payload.to_owned()))
            })
            .collect()
    }
}

/// `drover sim` against `ports`, returning its JSON report and record log.
pub fn drover_sim(dir: &Path, ports: &Ports, mqtt_port: u16, args: &[&str]) -> (Value, Vec<Value>) {
    let mut with_mqtt = vec!["--mqtt".to_owned(), mqtt_url(mqtt_port)];
    with_mqtt.extend(args.iter().map(|a| (*a).to_owned()));
    Sim::start(dir, ports, &with_mqtt).finish()
}

/// A `drover sim` running in the background.
pub struct Sim {
    process: Process,
    report: PathBuf,
    log: PathBuf,
    err: PathBuf,
}

impl Sim {
    pub fn start(dir: &Path, ports: &Ports, args: &[String]) -> Sim {
        let report = dir.join("report.json");
        let log = dir.join("records.jsonl");
        let mut command = Command::new(env!("CARGO_BIN_EXE_drover"));
        command
            .arg("sim")
            .args([
                "--gt06-port",
                &ports.gt06.to_string(),
                "--teltonika-port",
                &ports.teltonika.to_string(),
                "--quiet",
            ])
            .arg("--report")
            .arg(&report)
            .arg("--record-log")
            .arg(&log)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(log_file(dir, "sim.out"))
            .stderr(log_file(dir, "sim.err"));
        Sim {
            process: Process::spawn("drover sim", &mut command),
            report,
            log,
            err: dir.join("sim.err"),
        }
    }

    /// Waits for the run to end; its report and record log.
    pub fn finish(self) -> (Value, Vec<Value>) {
        let status = self.process.wait_exit(Duration::from_secs(300));
        assert!(
            status.success(),
            "drover sim failed: see {}",
            self.err.display()
        );
        let report: Value =
            serde_json::from_slice(&std::fs::read(&self.report).expect("report written"))
                .expect("report is JSON");
        let records = std::fs::read_to_string(&self.log)
            .expect("record log written")
            .lines()
            .map(|l| serde_json::from_str(l).expect("record log line is JSON"))
            .collect();
        (report, records)
    }
}

/// The acked positions of a record log, by device: fix times in ms.
pub fn acked_by_device(records: &[Value]) -> HashMap<String, Vec<i64>> {
    let mut by_device: HashMap<String, Vec<i64>> = HashMap::new();
    for r in records.iter().filter(|r| r["acked"] == true) {
        let device = r["device"].as_str().expect("device").to_owned();
        by_device
            .entry(device)
            .or_default()
            .push(r["time_ms"].as_i64().expect("time_ms"));
    }
    for times in by_device.values_mut() {
        times.sort_unstable();
    }
    by_device
}

/// Positions on MQTT by (device, time in ms) → (lat, lon).
pub fn positions_by_key(messages: &[(String, Value)]) -> HashMap<(String, i64), (f64, f64)> {
    messages
        .iter()
        .filter(|(topic, _)| topic.ends_with("/position"))
        .filter_map(|(topic, json)| {
            let device = json["device"].as_str()?.to_owned();
            assert_eq!(topic, &format!("drover/devices/{device}/position"));
            let time = time::OffsetDateTime::parse(
                json["time"].as_str()?,
                &time::format_description::well_known::Rfc3339,
            )
            .ok()?;
            let ms = i64::try_from(time.unix_timestamp_nanos() / 1_000_000).ok()?;
            Some(((device, ms), (json["lat"].as_f64()?, json["lon"].as_f64()?)))
        })
        .collect()
}

/// Polls `done` for up to `limit`.
pub fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    done()
}

/// Waits until the engine has taken every committed record (its backlog on
/// `/health` is 0), e.g. after a restart replayed the journal.
pub fn wait_for_engine(http: u16) {
    let caught_up = eventually(Duration::from_secs(60), || {
        let (status, health) = http_get(http, "/health");
        status == 200 && health["engine"]["backlog"] == 0
    });
    assert!(
        caught_up,
        "the engine did not catch up with the journal: {}",
        http_get(http, "/health").1
    );
}

/// `drover sim` arguments for a small fleet of both protocols at 4 Hz
/// without MQTT: `devices` trackers for `seconds`.
pub fn mixed_load(devices: u32, seconds: u32) -> Vec<String> {
    let mut args: Vec<String> = ["--no-mqtt", "--rate", "4", "--ramp", "1"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    args.extend(["--devices".to_owned(), devices.to_string()]);
    args.extend(["--duration".to_owned(), seconds.to_string()]);
    args
}

/// `answer` is the API's JSON error with `status` and `code`, and a message.
pub fn assert_error(answer: &(u16, Value), status: u16, code: &str, what: &str) {
    assert_eq!(answer.0, status, "{what}: {}", answer.1);
    assert_eq!(answer.1["error"]["code"], code, "{what}: {}", answer.1);
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {}",
        answer.1
    );
}

/// A valid fix a test tracker reports at `time_ms`: at latitude `lat` on
/// the tests' road (longitude 25.28), with 9 satellites.
pub fn position(time_ms: i64, lat: f64, speed_kmh: f64, course_deg: f64) -> Record {
    Record {
        time_ms,
        kind: RecordKind::Position,
        fix: Some(Fix {
            lat,
            lon: 25.28,
            speed_kmh,
            course_deg,
            altitude_m: None,
            satellites: Some(9),
            valid: true,
        }),
        ..Record::default()
    }
}
