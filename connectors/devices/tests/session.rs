//! Device sessions over loopback, speaking raw protocol bytes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use drover_devices::{
    Admit, Ingest, IngestClosed, ListenerStats, Refusal, Registry, ServerContext, SessionLimits,
};
use drover_protocols::gt06::{self, Gt06};
use drover_protocols::model::{DeviceId, DeviceMessage, Fix, Record};
use drover_protocols::teltonika::{self, Teltonika};
use drover_protocols::{DecodeOptions, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
enum Event {
    Records(Vec<DeviceMessage>),
    Connected(DeviceId),
    Disconnected(DeviceId),
}

/// Collects what sessions hand over. `gate` holds submits until the test
/// releases permits, to show that acks wait for the pipeline; `refuse`
/// refuses the device of that IMEI.
#[derive(Clone)]
struct Collect {
    events: mpsc::UnboundedSender<Event>,
    gate: Option<Arc<Semaphore>>,
    refuse: Option<(&'static str, Refusal)>,
}

impl Ingest for Collect {
    fn admit(&self, device: &DeviceId, _: &'static str, _: SocketAddr) -> Admit {
        match self.refuse {
            Some((imei, why)) if imei == device.as_str() => Admit::Refuse(why),
            _ => Admit::Serve,
        }
    }
    async fn submit(&self, records: Vec<DeviceMessage>) -> Result<(), IngestClosed> {
        if let Some(gate) = &self.gate {
            gate.acquire().await.map_err(|_| IngestClosed)?.forget();
        }
        self.events
            .send(Event::Records(records))
            .map_err(|_| IngestClosed)
    }
    async fn connected(&self, device: DeviceId, _: &'static str) -> Result<(), IngestClosed> {
        self.events
            .send(Event::Connected(device))
            .map_err(|_| IngestClosed)
    }
    async fn disconnected(&self, device: DeviceId) -> Result<(), IngestClosed> {
        self.events
            .send(Event::Disconnected(device))
            .map_err(|_| IngestClosed)
    }
}

struct Server {
    addr: std::net::SocketAddr,
    stats: Arc<ListenerStats>,
    events: mpsc::UnboundedReceiver<Event>,
    registry: Registry,
    _shutdown: tokio_util::sync::DropGuard,
}

async fn start<P: Protocol>(
    protocol: P,
    limits: SessionLimits,
    gate: Option<Arc<Semaphore>>,
) -> Server {
    start_sharing(protocol, limits, gate, Registry::default()).await
}

/// Listeners given one registry are one process's listeners.
async fn start_sharing<P: Protocol>(
    protocol: P,
    limits: SessionLimits,
    gate: Option<Arc<Semaphore>>,
    registry: Registry,
) -> Server {
    launch(protocol, limits, gate, registry, None).await
}

/// A listener whose pipeline refuses the device `imei`.
async fn start_refusing<P: Protocol>(protocol: P, imei: &'static str, why: Refusal) -> Server {
    launch(
        protocol,
        limits(),
        None,
        Registry::default(),
        Some((imei, why)),
    )
    .await
}

async fn launch<P: Protocol>(
    protocol: P,
    limits: SessionLimits,
    gate: Option<Arc<Semaphore>>,
    registry: Registry,
    refuse: Option<(&'static str, Refusal)>,
) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, events) = mpsc::unbounded_channel();
    let stats = Arc::new(ListenerStats::default());
    let context = ServerContext {
        ingest: Collect {
            events: tx,
            gate,
            refuse,
        },
        limits,
        max_connections: 16,
        registry: registry.clone(),
        stats: stats.clone(),
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(drover_devices::run(
        listener,
        protocol,
        context,
        shutdown.clone(),
    ));
    Server {
        addr,
        stats,
        events,
        registry,
        _shutdown: shutdown.drop_guard(),
    }
}

fn limits() -> SessionLimits {
    SessionLimits {
        max_frame_bytes: 4096,
        idle_timeout: Duration::from_secs(10),
        identify_timeout: Duration::from_secs(10),
        max_connections_per_ip: 8,
        max_consecutive_errors: 4,
    }
}

fn gt06() -> Gt06 {
    Gt06::new(DecodeOptions::default())
}

fn teltonika() -> Teltonika {
    Teltonika::new(DecodeOptions::default())
}

fn position(time_ms: i64, lat: f64) -> Record {
    Record {
        time_ms,
        fix: Some(Fix {
            lat,
            lon: 13.4,
            speed_kmh: 40.0,
            course_deg: 90.0,
            altitude_m: Some(30.0),
            satellites: Some(9),
            valid: true,
        }),
        ..Record::default()
    }
}

/// Reads exactly `n` bytes or fails after a second.
async fn read_n(socket: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    tokio::time::timeout(Duration::from_secs(5), socket.read_exact(&mut buf))
        .await
        .expect("reply in time")
        .expect("reply");
    buf
}

/// True when nothing arrives within `wait`.
async fn silent(socket: &mut TcpStream, wait: Duration) -> bool {
    let mut byte = [0u8; 1];
    tokio::time::timeout(wait, socket.read(&mut byte))
        .await
        .is_err()
}

/// True when the server closed the connection within 5 s.
async fn closed(socket: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// A GT06 connection past its login.
async fn gt06_logged_in(server: &Server) -> TcpStream {
    let mut device = TcpStream::connect(server.addr).await.unwrap();
    device
        .write_all(&gt06::device::login("356307042441013", 1))
        .await
        .unwrap();
    read_n(&mut device, 10).await;
    device
}

/// A Teltonika connection past its IMEI handshake.
async fn teltonika_logged_in(server: &Server) -> TcpStream {
    let mut device = TcpStream::connect(server.addr).await.unwrap();
    device
        .write_all(&teltonika::device::login("356307042441013"))
        .await
        .unwrap();
    assert_eq!(read_n(&mut device, 1).await, [0x01]);
    device
}

/// A GT06 location whose CRC is wrong.
fn bad_crc_location() -> Vec<u8> {
    let mut frame = gt06::device::location(&position(1_764_000_000_000, 52.5), 2);
    let crc_at = frame.len() - 4;
    frame[crc_at] ^= 0xff;
    frame
}

/// True once `condition` holds, checked for up to 5 s.
async fn eventually(condition: impl Fn() -> bool) -> bool {
    for _ in 0..500 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}

async fn next_records(server: &mut Server) -> Vec<DeviceMessage> {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), server.events.recv())
            .await
            .expect("event in time")
            .expect("event");
        if let Event::Records(r) = event {
            return r;
        }
    }
}

#[tokio::test]
async fn gt06_login_gets_the_exact_ack_and_registers_the_device() {
    let mut server = start(gt06(), limits(), None).await;
    let mut device = TcpStream::connect(server.addr).await.unwrap();
    device
        .write_all(&hex::decode("78780d01086471700328358100093f040d0a").unwrap())
        .await
        .unwrap();
    assert_eq!(
        hex::encode(read_n(&mut device, 10).await),
        "78780501000955940d0a"
    );
    let Some(Event::Connected(id)) = server.events.recv().await else {
        panic!("no connect")
    };
    assert_eq!(id.as_str(), "864717003283581");
    assert!(server.registry.get(&id).is_some());
    drop(device);
    let Some(Event::Disconnected(gone)) = server.events.recv().await else {
        panic!("no disconnect")
    };
    assert_eq!(gone, id);
}

#[tokio::test]
async fn teltonika_imei_then_avl_packet_get_0x01_and_the_record_count() {
    let mut server = start(teltonika(), limits(), None).await;
    let mut device = teltonika_logged_in(&server).await;
    let records: Vec<Record> = (0..3)
        .map(|i| position(1_764_000_000_000 + i * 1000, 52.5 + i as f64 * 0.001))
        .collect();
    device
        .write_all(&teltonika::device::avl_packet(
            teltonika::device::Codec::Codec8E,
            &records,
        ))
        .await
        .unwrap();
    assert_eq!(read_n(&mut device, 4).await, [0, 0, 0, 3]);
    let got = next_records(&mut server).await;
    assert_eq!(got.len(), 3);
    assert!(
        got.iter()
            .all(|m| m.device.as_str() == "356307042441013" && m.protocol == "teltonika")
    );
    assert_eq!(
        got[2].record.fix.map(|f| (f.lat * 1e6).round()),
        Some(52_502_000.0)
    );
}

#[tokio::test]
async fn the_ack_waits_until_the_pipeline_accepted_the_records() {
    let gate = Arc::new(Semaphore::new(0));
    let mut server = start(teltonika(), limits(), Some(gate.clone())).await;
    let mut device = teltonika_logged_in(&server).await;
    device
        .write_all(&teltonika::device::avl_packet(
            teltonika::device::Codec::Codec8,
            &[position(1_764_000_000_000, 52.5)],
        ))
        .await
        .unwrap();
    assert!(
        silent(&mut device, Duration::from_millis(300)).await,
        "acked before the pipeline took the record"
    );
    gate.add_permits(1);
    assert_eq!(read_n(&mut device, 4).await, [0, 0, 0, 1]);
    assert_eq!(next_records(&mut server).await.len(), 1);
}

#[tokio::test]
async fn a_bad_checksum_is_rejected_and_counted_and_the_connection_goes_on() {
    let mut server = start(gt06(), limits(), None).await;
    let mut device = gt06_logged_in(&server).await;
    device.write_all(&bad_crc_location()).await.unwrap();
    device
        .write_all(&gt06::device::location(
            &position(1_764_000_001_000, 52.6),
            3,
        ))
        .await
        .unwrap();
    let got = next_records(&mut server).await;
    assert_eq!(got.len(), 1, "only the good frame is decoded");
    assert_eq!(got[0].record.time_ms, 1_764_000_001_000);
    assert_eq!(server.stats.snapshot().bad_checksum, 1);
}

#[tokio::test]
async fn bad_checksums_are_accepted_when_configured() {
    let accepting = Gt06::new(DecodeOptions {
        accept_bad_checksum: true,
    });
    let mut server = start(accepting, limits(), None).await;
    let mut device = gt06_logged_in(&server).await;
    device.write_all(&bad_crc_location()).await.unwrap();
    assert_eq!(next_records(&mut server).await.len(), 1);
}

#[tokio::test]
async fn garbage_before_a_frame_is_skipped_and_counted() {
    let server = start(gt06(), limits(), None).await;
    let mut device = TcpStream::connect(server.addr).await.unwrap();
    let mut bytes = b"GET / HTTP/1.1\r\n\r\n".to_vec();
    bytes.extend(gt06::device::login("356307042441013", 7));
    device.write_all(&bytes).await.unwrap();
    let ack = read_n(&mut device, 10).await;
    assert_eq!(gt06::device::parse_reply(&ack), Some((0x01, 7)));
    assert!(server.stats.snapshot().garbage_bytes >= 18);
}

#[tokio::test]
async fn an_oversized_frame_closes_the_connection() {
    let server = start(teltonika(), limits(), None).await;
    let mut device = teltonika_logged_in(&server).await;
    // Preamble, then a data length of 1 MiB against a 4 KiB limit.
    device
        .write_all(&[0, 0, 0, 0, 0, 0x10, 0, 0, 0x08])
        .await
        .unwrap();
    assert!(closed(&mut device).await);
    assert_eq!(server.stats.snapshot().oversized, 1);
}

#[tokio::test]
async fn endless_bytes_without_a_frame_close_the_connection() {
    let server = start(gt06(), limits(), None).await;
    let mut device = TcpStream::connect(server.addr).await.unwrap();
    // A start marker and a declared length, then never the stop bits.
    let mut frame = vec![0x79, 0x79, 0x00, 0x10];
    frame.extend(std::iter::repeat_n(0x55, 8192));
    let _ = device.write_all(&frame).await;
    assert!(closed(&mut device).await);
    assert!(server.stats.snapshot().oversized + server.stats.snapshot().decode_errors >= 1);
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let quick = SessionLimits {
        idle_timeout: Duration::from_millis(300),
        ..limits()
    };
    let server = start(gt06(), quick, None).await;
    let mut device = TcpStream::connect(server.addr).await.unwrap();
    assert!(closed(&mut device).await);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server.stats.snapshot().idle_timeouts, 1);
}

#[tokio::test]
async fn half_a_frame_waits_for_the_rest() {
    let server = start(gt06(), limits(), None).await;
    let mut device = TcpStream::connect(server.addr).await.unwrap();
    let login = gt06::device::login("356307042441013", 9);
    let (head, tail) = login.split_at(7);
    device.write_all(head).await.unwrap();
    assert!(silent(&mut device, Duration::from_millis(300)).await);
    device.write_all(tail).await.unwrap();
    assert_eq!(
        gt06::device::parse_reply(&read_n(&mut device, 10).await),
        Some((0x01, 9))
    );
    assert_eq!(server.stats.snapshot().decode_errors, 0);
}

#[tokio::test]
async fn data_before_identification_is_refused_and_counted() {
    let server = start(teltonika(), limits(), None).await;
    let mut device = TcpStream::connect(server.addr).await.unwrap();
    let packet = teltonika::device::avl_packet(
        teltonika::device::Codec::Codec8,
        &[position(1_764_000_000_000, 52.5)],
    );
    for _ in 0..4 {
        let _ = device.write_all(&packet).await;
    }
    assert!(closed(&mut device).await);
    assert!(server.stats.snapshot().unidentified >= 1);
}

#[tokio::test]
async fn records_without_their_own_time_get_the_receive_time() {
    let mut server = start(gt06(), limits(), None).await;
    let mut device = gt06_logged_in(&server).await;
    device.write_all(&gt06::device::heartbeat(2)).await.unwrap();
    read_n(&mut device, 10).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 10_000;
    let got = next_records(&mut server).await;
    assert!(got.iter().all(|m| m.record.time_ms > before), "{got:?}");
}

fn quick_identify() -> SessionLimits {
    SessionLimits {
        identify_timeout: Duration::from_millis(300),
        ..limits()
    }
}

#[tokio::test]
async fn a_connection_that_names_no_device_is_closed_after_the_identify_timeout() {
    let server = start(gt06(), quick_identify(), None).await;
    let mut device = TcpStream::connect(server.addr).await.unwrap();
    assert!(closed(&mut device).await);
    assert!(eventually(|| server.stats.snapshot().unidentified_timeouts == 1).await);
    assert_eq!(server.stats.snapshot().idle_timeouts, 0);
}

#[tokio::test]
async fn talking_without_identifying_does_not_put_off_the_identify_timeout() {
    let server = start(gt06(), quick_identify(), None).await;
    let mut device = TcpStream::connect(server.addr).await.unwrap();
    let mut byte = [0u8; 1];
    // Garbage every 50 ms, well inside the idle timeout, for up to 5 s.
    let mut closed = false;
    for _ in 0..100 {
        if device.write_all(b"GET / HTTP/1.1\r\n").await.is_err() {
            closed = true;
            break;
        }
        match tokio::time::timeout(Duration::from_millis(50), device.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    assert!(closed, "a talking but anonymous connection stayed open");
    assert!(eventually(|| server.stats.snapshot().unidentified_timeouts == 1).await);
}

#[tokio::test]
async fn a_device_that_identifies_in_time_outlives_the_identify_timeout() {
    let server = start(gt06(), quick_identify(), None).await;
    let mut device = gt06_logged_in(&server).await;
    assert!(silent(&mut device, Duration::from_millis(600)).await);
    device.write_all(&gt06::device::heartbeat(2)).await.unwrap();
    assert_eq!(
        gt06::device::parse_reply(&read_n(&mut device, 10).await),
        Some((0x13, 2))
    );
    assert_eq!(server.stats.snapshot().unidentified_timeouts, 0);
}

fn two_per_ip() -> SessionLimits {
    SessionLimits {
        max_connections_per_ip: 2,
        ..limits()
    }
}

#[tokio::test]
async fn a_connection_over_the_per_address_limit_is_refused_until_one_closes() {
    let server = start(gt06(), two_per_ip(), None).await;
    let first = gt06_logged_in(&server).await;
    let _second = gt06_logged_in(&server).await;
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    assert!(closed(&mut third).await);
    assert_eq!(server.stats.snapshot().refused_per_ip, 1);

    drop(first);
    assert!(eventually(|| server.stats.snapshot().open == 1).await);
    let _fourth = gt06_logged_in(&server).await;
    let stats = server.stats.snapshot();
    assert_eq!((stats.accepted, stats.refused_per_ip), (3, 1));
}

#[tokio::test]
async fn the_per_address_limit_counts_connections_on_every_listener() {
    let registry = Registry::default();
    let one_per_ip = SessionLimits {
        max_connections_per_ip: 1,
        ..limits()
    };
    let gt06_server = start_sharing(gt06(), one_per_ip, None, registry.clone()).await;
    let teltonika_server = start_sharing(teltonika(), one_per_ip, None, registry).await;
    let _held = gt06_logged_in(&gt06_server).await;
    let mut other = TcpStream::connect(teltonika_server.addr).await.unwrap();
    assert!(closed(&mut other).await);
    assert_eq!(teltonika_server.stats.snapshot().refused_per_ip, 1);
}

#[tokio::test]
async fn a_zero_per_address_limit_means_unlimited() {
    let unlimited = SessionLimits {
        max_connections_per_ip: 0,
        ..limits()
    };
    let server = start(gt06(), unlimited, None).await;
    let mut devices = Vec::new();
    for _ in 0..3 {
        devices.push(gt06_logged_in(&server).await);
    }
    assert_eq!(server.stats.snapshot().refused_per_ip, 0);
}

const REFUSED: &str = "356307042441013";

/// Every event the server's ingest has seen by now.
fn events_so_far(server: &mut Server) -> Vec<Event> {
    std::iter::from_fn(|| server.events.try_recv().ok()).collect()
}

/// Everything the server sends until it closes the connection (at most 5 s).
async fn read_to_close(socket: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut got))
        .await
        .expect("closed in time")
        .expect("a clean close");
    got
}

#[tokio::test]
async fn a_refused_teltonika_device_gets_0x00_and_is_closed() {
    let mut server = start_refusing(teltonika(), REFUSED, Refusal::Unknown).await;
    let mut device = TcpStream::connect(server.addr).await.unwrap();
    device
        .write_all(&teltonika::device::login(REFUSED))
        .await
        .unwrap();
    assert_eq!(read_to_close(&mut device).await, [teltonika::LOGIN_REFUSED]);
    assert!(eventually(|| server.stats.snapshot().refused_devices == 1).await);
    assert!(server.registry.get(&DeviceId::new(REFUSED)).is_none());
    let events = events_so_far(&mut server);
    assert!(
        events.is_empty(),
        "a refused device is never connected: {events:?}"
    );
}

#[tokio::test]
async fn a_refused_gt06_device_is_closed_without_a_login_ack() {
    let mut server = start_refusing(gt06(), REFUSED, Refusal::Disabled).await;
    let mut device = TcpStream::connect(server.addr).await.unwrap();
    device
        .write_all(&gt06::device::login(REFUSED, 1))
        .await
        .unwrap();
    assert_eq!(read_to_close(&mut device).await, []);
    assert!(eventually(|| server.stats.snapshot().refused_devices == 1).await);
    assert!(events_so_far(&mut server).is_empty());
}

#[tokio::test]
async fn a_refused_device_records_sent_with_its_login_are_never_submitted() {
    let mut server = start_refusing(teltonika(), REFUSED, Refusal::Unknown).await;
    let mut device = TcpStream::connect(server.addr).await.unwrap();
    // One write: the records are in the server's buffer with the login.
    let mut bytes = teltonika::device::login(REFUSED);
    bytes.extend(teltonika::device::avl_packet(
        teltonika::device::Codec::Codec8,
        &[position(1_764_000_000_000, 52.5)],
    ));
    device.write_all(&bytes).await.unwrap();
    assert_eq!(read_to_close(&mut device).await, [teltonika::LOGIN_REFUSED]);
    assert!(eventually(|| server.stats.snapshot().refused_devices == 1).await);
    let stats = server.stats.snapshot();
    assert_eq!(stats.records, 0, "{stats:?}");
    assert!(events_so_far(&mut server).is_empty());
}

#[tokio::test]
async fn other_devices_are_served_beside_a_refused_one() {
    let mut server = start_refusing(gt06(), "356307042441099", Refusal::Unknown).await;
    let mut device = gt06_logged_in(&server).await;
    device
        .write_all(&gt06::device::location(
            &position(1_764_000_000_000, 52.5),
            2,
        ))
        .await
        .unwrap();
    assert_eq!(next_records(&mut server).await.len(), 1);
    assert_eq!(server.stats.snapshot().refused_devices, 0);
}
