//! Small in-test servers on loopback that decode with the real protocol
//! sessions and ack the way Drover does: Teltonika AVL packets with their
//! record count, GT06 logins and heartbeats (not locations). Optionally they
//! publish each position on MQTT in Drover's payload format, or send
//! commands after each login and keep the answers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use drover_protocols::command::{self, Command};
use drover_protocols::gt06::Gt06;
use drover_protocols::model::{Record, RecordKind, Value, attr};
use drover_protocols::teltonika::Teltonika;
use drover_protocols::{Check, DecodeOptions, Decoded, Protocol, Session};
use drover_sim::SimConfig;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a fake server saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub logins: AtomicU64,
    /// Frames other than logins.
    pub frames: AtomicU64,
    pub positions: AtomicU64,
    /// Replies to frames other than logins.
    pub acks: AtomicU64,
    /// Positions deliberately not published on MQTT.
    pub unpublished: AtomicU64,
    /// Answers to commands by device, in arrival order.
    pub answers: Mutex<Vec<(String, String)>>,
    /// Positions after a connection's first answer, and those of them
    /// that moved or had the ignition on.
    pub positions_after_answer: AtomicU64,
    pub running_after_answer: AtomicU64,
}

impl Seen {
    /// Every answer's text, device by device.
    pub fn answers(&self) -> Vec<String> {
        self.answers_by_device().into_values().flatten().collect()
    }

    /// Each device's answers, in the order it sent them.
    pub fn answers_by_device(&self) -> BTreeMap<String, Vec<String>> {
        let mut by_device: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        for (imei, text) in answers.iter() {
            by_device
                .entry(imei.clone())
                .or_default()
                .push(text.clone());
        }
        by_device
    }
}

pub fn get(n: &AtomicU64) -> u64 {
    n.load(Ordering::Relaxed)
}

#[derive(Clone, Copy, PartialEq)]
pub enum Acks {
    /// Like Drover.
    Normal,
    /// Logins only: a server that takes data and never confirms it.
    LoginOnly,
}

/// Publishes positions like Drover's MQTT sink, skipping every `skip_every`-th.
#[derive(Clone)]
pub struct Publisher {
    client: AsyncClient,
    skip_every: Option<u64>,
    count: Arc<AtomicU64>,
}

impl Publisher {
    pub fn connect(broker_port: u16, skip_every: Option<u64>) -> Publisher {
        let id = format!("fake-server-{broker_port}-{}", skip_every.unwrap_or(0));
        let mut options = MqttOptions::new(id, "127.0.0.1", broker_port);
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut events) = AsyncClient::new(options, 100_000);
        tokio::spawn(async move { while events.poll().await.is_ok() {} });
        Publisher {
            client,
            skip_every,
            count: Arc::default(),
        }
    }

    fn publish(&self, imei: &str, record: &Record, seen: &Seen) {
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        if self.skip_every.is_some_and(|k| n.is_multiple_of(k)) {
            seen.unpublished.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let time =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(record.time_ms) * 1_000_000)
                .ok()
                .and_then(|t| t.format(&Rfc3339).ok())
                .unwrap_or_default();
        let fix = record.fix.unwrap_or_default();
        let payload = serde_json::json!({
            "device": imei, "time": time, "lat": fix.lat, "lon": fix.lon,
            "speed_kmh": fix.speed_kmh, "course_deg": fix.course_deg,
            "altitude_m": fix.altitude_m, "satellites": fix.satellites, "valid": fix.valid,
            "attributes": record.attributes,
        });
        let topic = format!("drover/devices/{imei}/position");
        let _ = self
            .client
            .try_publish(topic, QoS::AtLeastOnce, false, payload.to_string());
    }
}

pub struct Servers {
    pub gt06: Arc<Seen>,
    pub teltonika: Arc<Seen>,
    /// A small paced run against these servers, MQTT off.
    pub config: SimConfig,
}

impl Servers {
    pub fn sent_frames(&self) -> u64 {
        get(&self.gt06.frames) + get(&self.teltonika.frames)
    }

    pub fn positions(&self) -> u64 {
        get(&self.gt06.positions) + get(&self.teltonika.positions)
    }

    pub fn acks(&self) -> u64 {
        get(&self.gt06.acks) + get(&self.teltonika.acks)
    }

    pub fn unpublished(&self) -> u64 {
        get(&self.gt06.unpublished) + get(&self.teltonika.unpublished)
    }
}

pub async fn start(acks: Acks, publisher: Option<Publisher>) -> Servers {
    start_with(acks, publisher, &[]).await
}

/// Servers that send `commands` to every device right after its login.
pub async fn start_commanding(commands: &[Command]) -> Servers {
    start_with(Acks::Normal, None, commands).await
}

async fn start_with(acks: Acks, publisher: Option<Publisher>, commands: &[Command]) -> Servers {
    let gt06_protocol = Gt06::new(DecodeOptions::default());
    let teltonika_protocol = Teltonika::new(DecodeOptions::default());
    let server = |acks, publisher| Server {
        acks,
        publisher,
        commands: commands.to_vec(),
    };
    let (gt06_port, gt06) = serve(gt06_protocol, server(acks, publisher.clone())).await;
    let (teltonika_port, teltonika) = serve(teltonika_protocol, server(acks, publisher)).await;
    let config = SimConfig {
        gt06_port,
        teltonika_port,
        devices: 8,
        rate: 10.0,
        records_per_packet: 3,
        gt06_heartbeat_every: 4,
        duration: Duration::from_millis(1500),
        ramp: Duration::from_millis(200),
        mqtt: None,
        progress: false,
        ..SimConfig::default()
    };
    Servers {
        gt06,
        teltonika,
        config,
    }
}

/// A loopback port nothing listens on.
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    listener.local_addr().map_or(1, |a| a.port())
}

/// How one fake server behaves.
struct Server {
    acks: Acks,
    publisher: Option<Publisher>,
    commands: Vec<Command>,
}

async fn serve<P: Protocol>(protocol: P, server: Server) -> (u16, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener.local_addr().map_or(0, |a| a.port());
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    let commands: Vec<u8> = server
        .commands
        .iter()
        .flat_map(|c| {
            protocol
                .encode_command(c)
                .unwrap_or_else(|e| panic!("{}: {e}", protocol.name()))
        })
        .collect();
    let commands = Arc::new(commands);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let connection = Connection {
                seen: counts.clone(),
                acks: server.acks,
                publisher: server.publisher.clone(),
                commands: commands.clone(),
                answered: false,
            };
            tokio::spawn(connection.run(protocol.session(), stream));
        }
    });
    (port, seen)
}

struct Connection {
    seen: Arc<Seen>,
    acks: Acks,
    publisher: Option<Publisher>,
    /// Encoded commands sent after the login's reply.
    commands: Arc<Vec<u8>>,
    /// Whether the device answered a command on this connection yet.
    answered: bool,
}

impl Connection {
    async fn run<S: Session>(mut self, mut session: S, mut stream: TcpStream) {
        let (mut input, mut out) = (Vec::new(), Decoded::default());
        while matches!(stream.read_buf(&mut input).await, Ok(n) if n > 0) {
            let (mut at, mut replies) = (0, Vec::new());
            loop {
                match session.check(&input[at..]) {
                    Check::Frame(n) => {
                        out.clear();
                        if session.decode(&input[at..at + n], &mut out).is_ok() {
                            let imei = session.device().map(|d| d.to_string()).unwrap_or_default();
                            self.on_frame(&imei, &out, &mut replies);
                        }
                        at += n;
                    }
                    Check::Garbage(n) => at += n.max(1),
                    Check::Incomplete(_) => break,
                }
            }
            input.drain(..at);
            if stream.write_all(&replies).await.is_err() {
                return;
            }
        }
    }

    fn on_frame(&mut self, imei: &str, out: &Decoded, replies: &mut Vec<u8>) {
        let seen = &self.seen;
        if out.identified.is_some() {
            seen.logins.fetch_add(1, Ordering::Relaxed);
            replies.extend_from_slice(&out.reply);
            replies.extend_from_slice(&self.commands);
            return;
        }
        self.watch_commands(imei, &out.records);
        let seen = &self.seen;
        let positions: Vec<&Record> = out
            .records
            .iter()
            .filter(|r| r.kind == RecordKind::Position)
            .collect();
        seen.frames.fetch_add(1, Ordering::Relaxed);
        seen.positions
            .fetch_add(positions.len() as u64, Ordering::Relaxed);
        if let Some(publisher) = &self.publisher {
            for record in &positions {
                publisher.publish(imei, record, seen);
            }
        }
        let teltonika_ack = out.reply.len() == 4;
        let acked = self.acks == Acks::Normal
            && !out.reply.is_empty()
            && (teltonika_ack || positions.is_empty());
        if acked {
            seen.acks.fetch_add(1, Ordering::Relaxed);
            replies.extend_from_slice(&out.reply);
        }
    }

    /// Keeps the answers, and checks the positions after the first one.
    fn watch_commands(&mut self, imei: &str, records: &[Record]) {
        let seen = &self.seen;
        for record in records {
            if let Some(text) = command::answer(record) {
                self.answered = true;
                seen.answers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((imei.to_owned(), text.to_owned()));
            } else if self.answered && record.kind == RecordKind::Position {
                let moving = record.fix.is_some_and(|f| f.speed_kmh > 0.0);
                let ignition = record.attributes.get(attr::IGNITION) == Some(&Value::Bool(true));
                seen.positions_after_answer.fetch_add(1, Ordering::Relaxed);
                if moving || ignition {
                    seen.running_after_answer.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}
