//! Brokers, clients and records for the MQTT tests: everything on
//! 127.0.0.1, each test with its own broker, child processes killed on drop.
#![allow(dead_code)] // each test binary uses its own part of this module

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use drover_mqtt::MqttConfig;
use drover_mqtt::broker::{self, Embedded, EmbeddedBroker, Limits};
use drover_mqtt::credentials::{CredentialCheck, Credentials, Rights, Verdict};
use drover_protocols::model::{DeviceId, DeviceMessage, Fix, Record};
use rumqttc::{AsyncClient, ConnAck, ConnectionError, Event, EventLoop, MqttOptions, Packet};

/// Upper bound for anything a test waits for; never a pass condition.
pub const LIMIT: Duration = Duration::from_secs(20);
pub const PREFIX: &str = "drover";
pub const IMEI: &str = "356307042441013";
/// Passwords [`ApiKeys`] accepts, with any user name: an operator's key,
/// and a viewer's that may not send commands.
pub const API_KEY: &str = "dk_test_0123456789";
pub const VIEWER_KEY: &str = "dk_view_0123456789";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Stands in for the node's API-key store.
pub struct ApiKeys;

impl CredentialCheck for ApiKeys {
    fn check<'a>(&'a self, _username: &'a str, password: &'a str) -> Verdict<'a> {
        Box::pin(async move {
            match password {
                API_KEY => Some(Rights::ReadAndCommand),
                VIEWER_KEY => Some(Rights::Read),
                _ => None,
            }
        })
    }
}

/// An embedded broker with the node account `drover`/`node-secret`, API
/// keys, and a short connect timeout.
pub struct TestBroker {
    pub broker: EmbeddedBroker,
    pub account: Credentials,
    /// Points the node's connections at this broker.
    pub config: MqttConfig,
}

impl TestBroker {
    pub async fn start(name: &str) -> TestBroker {
        let account = Credentials::new("drover", "node-secret");
        let config = MqttConfig {
            topic_prefix: PREFIX.to_owned(),
            client_id: format!("{name}-{}", std::process::id()),
            ..MqttConfig::default()
        };
        let limits = Limits {
            connect_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let broker = broker::start_embedded(Embedded {
            api_keys: Arc::new(ApiKeys),
            limits,
            ..Embedded::new(listen, &config, account.clone())
        })
        .await
        .expect("the embedded broker starts");
        let config = MqttConfig {
            embedded_listen: broker.addr.to_string(),
            ..config
        };
        TestBroker {
            broker,
            account,
            config,
        }
    }

    pub fn port(&self) -> u16 {
        self.broker.addr.port()
    }

    pub fn stat(&self, counter: fn(&broker::GatewayStats) -> &std::sync::atomic::AtomicU64) -> u64 {
        counter(&self.broker.stats).load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A rumqttc client; nothing moves until its event loop is polled.
pub fn client(port: u16, id: &str, login: Option<(&str, &str)>) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    AsyncClient::new(options, 64)
}

/// Polls until the broker answers the CONNECT (or the connection fails).
pub async fn connack(events: &mut EventLoop) -> Result<ConnAck, ConnectionError> {
    tokio::time::timeout(LIMIT, async {
        loop {
            if let Event::Incoming(Packet::ConnAck(ack)) = events.poll().await? {
                return Ok(ack);
            }
        }
    })
    .await
    .expect("an answer to CONNECT")
}

/// Polls until `pick` returns something, or the connection fails.
pub async fn next<T>(
    events: &mut EventLoop,
    mut pick: impl FnMut(Packet) -> Option<T>,
) -> Result<T, ConnectionError> {
    tokio::time::timeout(LIMIT, async {
        loop {
            if let Event::Incoming(packet) = events.poll().await?
                && let Some(found) = pick(packet)
            {
                return Ok(found);
            }
        }
    })
    .await
    .expect("the awaited packet or a closed connection")
}

/// Waits until `done` holds, checking every few milliseconds: for
/// conditions that have no event to wait on. Panics after [`LIMIT`].
pub async fn wait_until(done: impl Fn() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !done() {
        assert!(Instant::now() < deadline, "the condition never held");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `n` position records of one device.
pub fn positions(n: i64) -> Vec<Arc<DeviceMessage>> {
    (0..n)
        .map(|i| {
            Arc::new(DeviceMessage {
                device: DeviceId::new(IMEI),
                protocol: "teltonika",
                record: Record {
                    time_ms: 1_764_000_000_000 + i,
                    fix: Some(Fix {
                        lat: 52.5,
                        lon: 13.4,
                        valid: true,
                        ..Fix::default()
                    }),
                    ..Record::default()
                },
            })
        })
        .collect()
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

/// A child process whose output lines arrive on a channel; killed on drop.
pub struct Tool {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Tool {
    /// `program args…` with stdout and stderr merged into [`Tool::lines`].
    pub fn spawn(program: &str, args: &[&str]) -> Tool {
        require(program);
        let mut child = Command::new("sh")
            .arg("-c")
            // Unbuffered: mosquitto's tools print through stdio, which
            // holds a pipe's output until it exits.
            .arg(r#"exec stdbuf -o0 -e0 "$0" "$@" 2>&1"#)
            .arg(program)
            .args(args)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Tool {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line (from now) containing `text`; panics with everything
    /// seen if the output ends or [`LIMIT`] passes first.
    pub fn wait_for(&mut self, text: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {text:?}; the output was {:#?}", self.seen),
            }
        }
    }

    /// Waits for the process to exit (at most [`LIMIT`]).
    pub fn exit_status(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "the process did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mosquitto_sub -d -v` on `topic`: [`Tool::wait_for`] `"Subscribed"`
/// tells when the subscription is in place.
pub fn mosquitto_sub(port: u16, login: Option<(&str, &str)>, topic: &str) -> Tool {
    let port = port.to_string();
    let mut args = vec![
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-q",
        "1",
        "-d",
        "-v",
        "-t",
        topic,
    ];
    if let Some((user, password)) = login {
        args.extend(["-u", user, "-P", password]);
    }
    Tool::spawn("mosquitto_sub", &args)
}

/// `mosquitto_pub -d`, QoS 1, one message.
pub fn mosquitto_pub(port: u16, login: Option<(&str, &str)>, topic: &str, message: &str) -> Tool {
    let port = port.to_string();
    let mut args = vec![
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-q",
        "1",
        "-d",
        "-t",
        topic,
        "-m",
        message,
    ];
    if let Some((user, password)) = login {
        args.extend(["-u", user, "-P", password]);
    }
    Tool::spawn("mosquitto_pub", &args)
}

/// A private Mosquitto on `port`, anonymous clients allowed.
pub fn mosquitto(dir: &std::path::Path, port: u16) -> Tool {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nuser root\nallow_anonymous true\npersistence false\nlog_dest stderr\n"
        ),
    )
    .expect("writing mosquitto.conf");
    let conf = conf.to_string_lossy().into_owned();
    let tool = Tool::spawn("mosquitto", &["-c", &conf]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + LIMIT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not start on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    tool
}
