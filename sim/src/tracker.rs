//! One virtual tracker as a tokio task: connect, log in, send, read acks,
//! obey and answer commands, reconnect after failures, drain at the end.
//!
//! Reading and writing share one `select!` loop over the two halves of the
//! socket, so acks are read while a frame is still being written and neither
//! side can wedge the other.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{sleep_until, timeout};

use crate::link::{Link, NOT_LOGGED, Outbox, Protocol, Replies};
use crate::record_log::{DeviceLog, LoggedPosition};
use crate::runner::Fleet;
use crate::stats::add;
use crate::vehicle::Vehicle;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a tracker waits, after the run, for its last packets' acks.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Replies are a few bytes; this much unparsed input means a confused server.
const MAX_UNREAD: usize = 64 * 1024;
/// Salt so that send jitter does not replay the vehicle's random numbers.
const JITTER_SALT: u64 = 0x6a09_e667_f3bc_c909;

/// Why a connection ended early; the label goes into the report's errors.
type Failure = &'static str;

/// Runs device `index` until the end of the run and returns its positions.
pub async fn run(fleet: Arc<Fleet>, index: u32) -> DeviceLog {
    let mut tracker = Tracker::new(fleet, index);
    sleep_until(tracker.fleet.ramp_slot(index).into()).await;
    tracker.next_due = Instant::now() + tracker.period().mul_f64(tracker.rng.random::<f64>());
    let mut backoff = FIRST_BACKOFF;
    let mut attempts = 0u32;
    while Instant::now() < tracker.fleet.deadline {
        if attempts > 0 {
            add(&tracker.fleet.stats.reconnects, 1);
        }
        attempts += 1;
        match tracker.session(&mut backoff).await {
            Ok(()) => break,
            Err(failure) => {
                tracker.fleet.stats.error(failure);
                tracker.pause(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    tracker.log
}

struct Tracker {
    fleet: Arc<Fleet>,
    index: u32,
    imei: u64,
    protocol: Protocol,
    vehicle: Vehicle,
    /// Vehicle time between two records.
    interval: Duration,
    rng: SmallRng,
    next_due: Instant,
    outbox: Outbox,
    replies: Replies,
    log: DeviceLog,
    logging: bool,
}

/// One TCP connection's halves and unread input.
struct Conn {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    input: Vec<u8>,
}

/// What woke the exchange loop.
enum Wake {
    Read(io::Result<usize>),
    Wrote(io::Result<usize>),
    Due,
    AckTimeout,
    End,
}

impl Tracker {
    fn new(fleet: Arc<Fleet>, index: u32) -> Tracker {
        let config = &fleet.config;
        let protocol = Protocol::of_device(config, index);
        let teltonika = protocol == Protocol::Teltonika;
        let seed = config.seed ^ u64::from(index);
        Tracker {
            index,
            imei: config.imei(index),
            protocol,
            vehicle: Vehicle::new(config.seed, index.into(), &config.city, fleet.start_ms),
            interval: config.record_interval(teltonika),
            rng: SmallRng::seed_from_u64(seed ^ JITTER_SALT),
            next_due: fleet.start,
            outbox: Outbox::default(),
            replies: Replies::default(),
            log: DeviceLog::new(config.imei(index), protocol.name()),
            logging: config.record_log.is_some(),
            fleet,
        }
    }

    fn period(&self) -> Duration {
        self.fleet.config.period()
    }

    /// Sleeps for about `backoff` (randomised so reconnections spread out),
    /// never past the end of the run.
    async fn pause(&mut self, backoff: Duration) {
        let wait = backoff.mul_f64(self.rng.random_range(0.5..1.0));
        let until = (Instant::now() + wait).min(self.fleet.deadline);
        sleep_until(until.into()).await;
    }

    /// One connection from connect to close. `Ok` once the run is over.
    async fn session(&mut self, backoff: &mut Duration) -> Result<(), Failure> {
        let mut conn = self.connect().await?;
        let mut link = Link::new(self.protocol, &self.imei.to_string(), &self.fleet.config);
        self.outbox.clear();
        self.login(&mut conn, &mut link).await?;
        *backoff = FIRST_BACKOFF;
        let _online = Online::new(self.fleet.clone());
        self.next_due = self.next_due.max(Instant::now());
        self.exchange(&mut conn, &mut link, self.fleet.deadline, true)
            .await?;
        link.build_final(Instant::now(), &mut self.outbox);
        let drained = self
            .exchange(&mut conn, &mut link, Instant::now() + DRAIN_TIMEOUT, false)
            .await;
        if let Err(failure) = drained {
            // The run is over either way; what was not acked stays unacked.
            self.fleet.stats.error(failure);
        }
        let _ = conn.writer.shutdown().await;
        Ok(())
    }

    async fn connect(&self) -> Result<Conn, Failure> {
        let config = &self.fleet.config;
        let port = match self.protocol {
            Protocol::Gt06 => config.gt06_port,
            Protocol::Teltonika => config.teltonika_port,
        };
        add(&self.fleet.stats.attempted, 1);
        let source = config.source_addr(self.index);
        let connected = timeout(
            self.bounded_by_run(CONNECT_TIMEOUT),
            connect_from(source, &config.target, port),
        )
        .await;
        let stream = match connected {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(self.connect_failed(io_failure(&e))),
            Err(_) => return Err(self.connect_failed("connect_timeout")),
        };
        add(&self.fleet.stats.established, 1);
        // Small frames, latency measured: no Nagle delay.
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        Ok(Conn {
            reader,
            writer,
            input: Vec::with_capacity(256),
        })
    }

    /// `limit`, but not much past the end of the run: a connection that
    /// comes up after it would only be closed again.
    fn bounded_by_run(&self, limit: Duration) -> Duration {
        let left = self
            .fleet
            .deadline
            .saturating_duration_since(Instant::now());
        limit.min(left + DRAIN_TIMEOUT)
    }

    fn connect_failed(&self, failure: Failure) -> Failure {
        add(&self.fleet.stats.failed, 1);
        match failure {
            "connection_refused" => "connect_refused",
            "timed_out" => "connect_timeout",
            other => other,
        }
    }

    async fn login(&mut self, conn: &mut Conn, link: &mut Link) -> Result<(), Failure> {
        let frame = link.login();
        let sent = Instant::now();
        let limit = self.bounded_by_run(self.fleet.config.ack_timeout);
        let answer = timeout(limit, async {
            conn.writer
                .write_all(&frame)
                .await
                .map_err(|e| io_failure(&e))?;
            loop {
                self.read(conn, link).await?;
                if let Some(accepted) = self.replies.login {
                    return Ok(accepted);
                }
            }
        })
        .await;
        match answer {
            Ok(Ok(true)) => {
                self.fleet.stats.login_latency(sent.elapsed());
                Ok(())
            }
            Ok(Ok(false)) => Err("login_refused"),
            Ok(Err(failure)) => Err(failure),
            Err(_) => Err("login_timeout"),
        }
    }

    /// Sends and reads until `until`. When not `sending` (the drain), ends as
    /// soon as everything written has been acked.
    async fn exchange(
        &mut self,
        conn: &mut Conn,
        link: &mut Link,
        until: Instant,
        sending: bool,
    ) -> Result<(), Failure> {
        let config = &self.fleet.config;
        let (closed_loop, ack_timeout) = (config.closed_loop, config.ack_timeout);
        loop {
            if !sending && self.outbox.is_empty() && link.all_acked() {
                return Ok(());
            }
            let may_send = sending && self.outbox.is_empty() && link.can_send(closed_loop);
            let now = Instant::now();
            if may_send && (closed_loop || now >= self.next_due) {
                link.build(
                    &mut self.vehicle,
                    self.interval,
                    closed_loop,
                    now,
                    &mut self.outbox,
                );
                self.expect_on_mqtt(now);
                self.schedule_next(now);
                continue;
            }
            let due = (may_send && !closed_loop).then_some(self.next_due);
            let stalled = link.oldest_in_flight().map(|t| t + ack_timeout);
            match self.wait(conn, until, due, stalled).await {
                Wake::Read(Ok(0)) => return Err("closed_by_server"),
                Wake::Read(Ok(_)) => self.on_input(conn, link, sending)?,
                Wake::Read(Err(e)) | Wake::Wrote(Err(e)) => return Err(io_failure(&e)),
                Wake::Wrote(Ok(0)) => return Err("write_zero"),
                Wake::Wrote(Ok(n)) => self.on_written(link, n),
                Wake::Due => {}
                Wake::AckTimeout => return Err("ack_timeout"),
                Wake::End if sending => return Ok(()),
                Wake::End => return Err("drain_timeout"),
            }
        }
    }

    async fn wait(
        &mut self,
        conn: &mut Conn,
        until: Instant,
        due: Option<Instant>,
        stalled: Option<Instant>,
    ) -> Wake {
        let unwritten = self.outbox.unwritten();
        tokio::select! {
            r = conn.reader.read_buf(&mut conn.input) => Wake::Read(r),
            r = conn.writer.write(unwritten), if !unwritten.is_empty() => Wake::Wrote(r),
            _ = sleep_until(due.unwrap_or(until).into()), if due.is_some() => Wake::Due,
            _ = sleep_until(stalled.unwrap_or(until).into()), if stalled.is_some() => Wake::AckTimeout,
            _ = sleep_until(until.into()) => Wake::End,
        }
    }

    /// Next send time: one period on, ±10 % jitter; a tracker that fell
    /// behind (slow server, busy machine) does not burst to catch up.
    fn schedule_next(&mut self, now: Instant) {
        let period = self.period();
        let next = self.next_due + period.mul_f64(self.rng.random_range(0.9..1.1));
        self.next_due = if next + period < now { now } else { next };
    }

    async fn read(&mut self, conn: &mut Conn, link: &mut Link) -> Result<(), Failure> {
        match conn.reader.read_buf(&mut conn.input).await {
            Ok(0) => Err("closed_by_server"),
            Ok(_) => self.on_input(conn, link, true),
            Err(e) => Err(io_failure(&e)),
        }
    }

    /// Takes the server's replies and obeys its commands. Acks read during
    /// the drain are counted but not timed: every GT06 tracker sends its
    /// closing heartbeat at the same instant, a burst no steady load has,
    /// which would otherwise set the run's tail latency.
    fn on_input(&mut self, conn: &mut Conn, link: &mut Link, timed: bool) -> Result<(), Failure> {
        self.replies.clear();
        let used = link.read_replies(&conn.input, Instant::now(), &mut self.replies);
        conn.input.drain(..used.min(conn.input.len()));
        // Answers go out with (after) whatever is being written.
        for received in &self.replies.commands {
            link.obey(received, &mut self.vehicle, &mut self.outbox);
        }
        let stats = &self.fleet.stats;
        if timed {
            for latency in &self.replies.acks {
                stats.ack_latency(self.index, *latency);
            }
        } else {
            add(&stats.acks_drained, self.replies.acks.len() as u64);
        }
        add(&stats.acks_received, self.replies.acks.len() as u64);
        add(&stats.records_acked, self.replies.acked.len() as u64);
        for sent in &self.replies.acked {
            if let Some(ledger) = &self.fleet.ledger {
                ledger.acked(self.imei, sent.time_ms);
            }
            if let Some(entry) = self.log.positions.get_mut(sent.log as usize) {
                entry.acked = true;
            }
        }
        if self.replies.garbage > 0 {
            stats.error("bad_reply");
        }
        if conn.input.len() > MAX_UNREAD {
            return Err("bad_reply");
        }
        Ok(())
    }

    /// Tells the ledger about the positions just built, before a byte of
    /// them is written: the server may publish them on MQTT before this task
    /// runs again after the write. Positions that then never get written are
    /// never acked, so they cannot count as missing.
    fn expect_on_mqtt(&self, now: Instant) {
        if let Some(ledger) = &self.fleet.ledger {
            for p in &self.outbox.positions {
                ledger.sent(self.imei, p.time_ms, now);
            }
        }
    }

    /// `n` more bytes are out; once the whole outbox is, its positions count
    /// as sent and its packets start waiting for acks.
    fn on_written(&mut self, link: &mut Link, n: usize) {
        self.outbox.written += n;
        if !self.outbox.unwritten().is_empty() {
            return;
        }
        let stats = &self.fleet.stats;
        add(&stats.messages_sent, self.outbox.messages);
        add(&stats.records_sent, self.outbox.positions.len() as u64);
        let first_log = if self.logging {
            self.log.positions.len() as u32
        } else {
            NOT_LOGGED
        };
        for p in &self.outbox.positions {
            if self.logging {
                self.log.positions.push(LoggedPosition {
                    time_ms: p.time_ms,
                    lat: p.lat,
                    lon: p.lon,
                    acked: false,
                });
            }
        }
        link.commit(&self.outbox, first_log);
        self.outbox.clear();
    }
}

/// Connects to `host:port`, from `source` (any port) when given.
async fn connect_from(
    source: Option<std::net::IpAddr>,
    host: &str,
    port: u16,
) -> io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect((host, port)).await;
    };
    let target = tokio::net::lookup_host((host, port))
        .await?
        .find(|a| a.is_ipv4() == source.is_ipv4())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "no target address of the source's family",
            )
        })?;
    let socket = if source.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(std::net::SocketAddr::new(source, 0))?;
    socket.connect(target).await
}

/// Counts the device as connected for the progress bar while it lives.
struct Online(Arc<Fleet>);

impl Online {
    fn new(fleet: Arc<Fleet>) -> Self {
        fleet.stats.online();
        Online(fleet)
    }
}

impl Drop for Online {
    fn drop(&mut self) {
        self.0
            .stats
            .connected
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A report label for an I/O error.
fn io_failure(e: &io::Error) -> Failure {
    use io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection_refused",
        ConnectionReset | ConnectionAborted | BrokenPipe => "reset",
        TimedOut => "timed_out",
        UnexpectedEof => "closed_by_server",
        AddrNotAvailable | AddrInUse => "no_local_port",
        _ if e.raw_os_error() == Some(24) => "too_many_open_files",
        _ => "io_error",
    }
}
