//! Processes and files for one end-to-end test. Everything is bound to
//! 127.0.0.1 on free ports and stopped when the test's handles drop.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n"
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
pub struct Ports {
    pub gt06: u16,
    pub teltonika: u16,
    pub http: u16,
}

/// `drover serve` on free ports, with `extra` settings.
pub fn drover_serve(dir: &Path, extra: &[String]) -> (Process, Ports) {
    let ports = Ports {
        gt06: free_port(),
        teltonika: free_port(),
        http: free_port(),
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_drover"));
    command
        .arg("serve")
        .args(["--set", &format!("data_dir={}", dir.join("data").display())])
        .args([
            "--set",
            &format!("devices.gt06.listen=127.0.0.1:{}", ports.gt06),
        ])
        .args([
            "--set",
            &format!("devices.teltonika.listen=127.0.0.1:{}", ports.teltonika),
        ])
        .args(["--set", &format!("http.listen=127.0.0.1:{}", ports.http)]);
    for setting in extra {
        command.args(["--set", setting]);
    }
    command
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log_file(dir, "drover.log"));
    let process = Process::spawn("drover serve", &mut command);
    wait_for_port(ports.gt06, "drover (gt06)");
    wait_for_port(ports.teltonika, "drover (teltonika)");
    wait_for_port(ports.http, "drover (http)");
    (process, ports)
}

fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::File::create(dir.join(name)).expect("creating a log file")
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
    let report = dir.join("report.json");
    let log = dir.join("records.jsonl");
    let status = Command::new(env!("CARGO_BIN_EXE_drover"))
        .arg("sim")
        .args([
            "--gt06-port",
            &ports.gt06.to_string(),
            "--teltonika-port",
            &ports.teltonika.to_string(),
        ])
        .args([
            "--mqtt",
            &format!("mqtt://127.0.0.1:{mqtt_port}"),
            "--quiet",
        ])
        .arg("--report")
        .arg(&report)
        .arg("--record-log")
        .arg(&log)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(log_file(dir, "sim.out"))
        .stderr(log_file(dir, "sim.err"))
        .status()
        .expect("running drover sim");
    assert!(
        status.success(),
        "drover sim failed: see {}",
        dir.join("sim.err").display()
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&report).expect("report written"))
        .expect("report is JSON");
    let records = std::fs::read_to_string(&log)
        .expect("record log written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("record log line is JSON"))
        .collect();
    (report, records)
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
