//! One device connection: bytes in, frames out, records to the pipeline,
//! acks back only once the pipeline has accepted them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use drover_protocols::model::{DeviceId, DeviceMessage};
use drover_protocols::{Check, DecodeError, Decoded, Session as ProtocolSession};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::SessionLimits;
use crate::ingest::{Admit, Ingest, IngestClosed, Refusal};
use crate::registry::{Connection, Registry, ToDevice};
use crate::server::Admission;
use crate::stats::ListenerStats;

/// Why a connection ended, other than the device closing it.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("idle for longer than the timeout")]
    Idle,
    #[error("no device identified within the timeout")]
    IdentifyTimeout,
    #[error("frame of {0} bytes exceeds the limit")]
    Oversized(usize),
    #[error("too many undecodable frames in a row (last: {0})")]
    TooManyErrors(DecodeError),
    #[error("records from a device that has not identified itself")]
    Unidentified,
    #[error("closed by the server: {0}")]
    Disconnected(&'static str),
    #[error("device {device} refused: {reason}")]
    Refused { device: DeviceId, reason: Refusal },
    #[error("the protocol splitter reported a frame of {0} bytes in a shorter buffer")]
    SplitterBug(usize),
    #[error(transparent)]
    Closed(#[from] IngestClosed),
}

/// What a session shares with its listener.
pub(crate) struct Shared<I> {
    pub protocol: &'static str,
    pub ingest: I,
    pub limits: SessionLimits,
    pub stats: Arc<ListenerStats>,
    pub registry: Registry,
    pub shutdown: CancellationToken,
}

/// Bytes made room for before each read: a few typical packets.
const READ_CHUNK: usize = 2048;
/// How long a connection keeps its read and decode buffers after a packet:
/// a device that talks often reuses them instead of allocating them for
/// every packet, and an idle one holds none once this has passed.
const KEEP_WARM: Duration = Duration::from_secs(2);

/// Commands waiting for one connection; a device rarely has more than one.
const OUTGOING_CAPACITY: usize = 8;

/// What ends a wait for the device that runs out.
enum Expiry {
    /// Silent for `KEEP_WARM`: free the buffers and wait on.
    ReleaseBuffers,
    Idle,
    /// Past `identify_timeout` with no device identified.
    Unidentified,
}

pub(crate) struct Session<S, I> {
    socket: TcpStream,
    peer: SocketAddr,
    id: u64,
    protocol: S,
    shared: Arc<Shared<I>>,
    buf: BytesMut,
    decoded: Decoded,
    /// Records and acks of the frames decoded since the last read.
    records: Vec<DeviceMessage>,
    replies: Vec<u8>,
    consecutive_errors: u32,
    device: Option<DeviceId>,
    /// Presence changes to tell the pipeline before the records that follow them.
    presence: Vec<(DeviceId, bool)>,
    outgoing: (flume::Sender<ToDevice>, flume::Receiver<ToDevice>),
}

impl<S: ProtocolSession, I: Ingest> Session<S, I> {
    pub fn new(
        socket: TcpStream,
        peer: SocketAddr,
        id: u64,
        protocol: S,
        shared: Arc<Shared<I>>,
    ) -> Self {
        Session {
            socket,
            peer,
            id,
            protocol,
            shared,
            buf: BytesMut::new(),
            decoded: Decoded::default(),
            records: Vec::new(),
            replies: Vec::new(),
            consecutive_errors: 0,
            device: None,
            presence: Vec::new(),
            outgoing: flume::bounded(OUTGOING_CAPACITY),
        }
    }

    /// Serves the connection until it closes, then tells the pipeline.
    ///
    /// Not an `async fn`: one would keep its argument and its moved copy
    /// apart in the future, a second `Session` in every connection's task.
    /// `admission` is released when the session is over.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would hold the session twice"
    )]
    pub fn run(mut self, admission: Admission) -> impl Future<Output = ()> + Send {
        async move {
            let result = self.serve().await;
            self.log_end(result);
            if let Some(device) = self.device.take() {
                self.shared.registry.unregister(&device, self.id);
                // A closed pipeline is shutting down anyway. Boxed like `process`.
                let _ = Box::pin(self.shared.ingest.disconnected(device)).await;
            }
            drop(admission);
        }
    }

    /// A plain function, so the result is no part of the task's state.
    fn log_end(&self, result: Result<(), SessionError>) {
        match result {
            Ok(()) => debug!(peer = %self.peer, imei = ?self.device, "connection closed"),
            Err(SessionError::Idle) => {
                ListenerStats::add(&self.shared.stats.idle_timeouts, 1);
                debug!(peer = %self.peer, imei = ?self.device, "idle connection closed");
            }
            // Debug, not warn: port scanners and dead sockets do this by the thousand.
            Err(SessionError::IdentifyTimeout) => {
                ListenerStats::add(&self.shared.stats.unidentified_timeouts, 1);
                debug!(peer = %self.peer, protocol = self.shared.protocol, "connection closed: no device identified in time");
            }
            Err(SessionError::Disconnected(reason)) => {
                info!(peer = %self.peer, imei = ?self.device, protocol = self.shared.protocol, reason, "connection closed by the server");
            }
            Err(SessionError::Refused { device, reason }) => {
                ListenerStats::add(&self.shared.stats.refused_devices, 1);
                info!(peer = %self.peer, imei = %device, protocol = self.shared.protocol, %reason, "device refused; connection closed");
            }
            Err(error) => {
                warn!(peer = %self.peer, imei = ?self.device, protocol = self.shared.protocol, %error, "connection closed")
            }
        }
    }

    async fn serve(&mut self) -> Result<(), SessionError> {
        let identify = self.shared.limits.identify_timeout;
        let identify_by = (!identify.is_zero()).then(|| Instant::now() + identify);
        // Whether the buffers are still held from the last packet.
        let mut holding = false;
        loop {
            let (until, expiry) = self.next_expiry(holding, identify_by);
            tokio::select! {
                biased;
                () = self.shared.shutdown.cancelled() => return Ok(()),
                Ok(order) = self.outgoing.1.recv_async() => match order {
                    ToDevice::Bytes(command) => self.socket.write_all(&command).await?,
                    ToDevice::Close(reason) => return Err(SessionError::Disconnected(reason)),
                },
                // Before readiness: a device that keeps sending without
                // identifying must not keep its deadline from firing.
                () = tokio::time::sleep_until(until) => match expiry {
                    Expiry::ReleaseBuffers => {
                        self.release_idle();
                        holding = false;
                    }
                    Expiry::Idle => return Err(SessionError::Idle),
                    Expiry::Unidentified => return Err(SessionError::IdentifyTimeout),
                },
                ready = self.socket.readable() => {
                    ready?;
                    holding = true;
                    match self.read_available() {
                        Ok(0) => return self.end_of_stream(),
                        // Boxed: the pipeline's futures are large, and
                        // held inline they would size every idle task.
                        Ok(_) => Box::pin(self.process()).await?,
                        // Readiness was spurious: wait again.
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
    }

    /// When the current wait for the device ends, and what happens then.
    ///
    /// Computed afresh for every wait rather than kept across them: what a
    /// session keeps, every idle connection pays for.
    fn next_expiry(&self, holding: bool, identify_by: Option<Instant>) -> (Instant, Expiry) {
        let idle = self.shared.limits.idle_timeout;
        let warm = KEEP_WARM.min(idle);
        // A talking device keeps its buffers between packets; after `warm`
        // of silence they are freed and the wait goes on for the rest of
        // the idle timeout.
        let (wait, expiry) = if holding {
            (warm, Expiry::ReleaseBuffers)
        } else {
            (idle - warm, Expiry::Idle)
        };
        let until = Instant::now() + wait;
        match identify_by {
            Some(by) if self.device.is_none() && by <= until => (by, Expiry::Unidentified),
            _ => (until, expiry),
        }
    }

    /// Frees the buffers only a packet being handled needs, so that an idle
    /// connection (most of them, most of the time) holds none.
    fn release_idle(&mut self) {
        // A partial frame stays until the rest arrives.
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
        self.decoded = Decoded::default();
        self.replies = Vec::new();
    }

    /// Reads what the socket has, without waiting.
    ///
    /// The buffer is allocated only once the socket is readable, and
    /// [`Self::release_idle`] frees it again.
    fn read_available(&mut self) -> std::io::Result<usize> {
        self.buf.reserve(READ_CHUNK);
        self.socket.try_read_buf(&mut self.buf)
    }

    /// The device closed its side. Leftover bytes are a frame it never finished.
    fn end_of_stream(&self) -> Result<(), SessionError> {
        if !self.buf.is_empty() {
            debug!(peer = %self.peer, bytes = self.buf.len(), "connection closed mid-frame");
        }
        Ok(())
    }

    /// Decodes every whole frame in the buffer, hands the records over, then acks.
    async fn process(&mut self) -> Result<(), SessionError> {
        let decoded = self.split_and_decode();
        for (device, online) in std::mem::take(&mut self.presence) {
            if online {
                self.shared
                    .ingest
                    .connected(device, self.shared.protocol)
                    .await?;
            } else {
                self.shared.ingest.disconnected(device).await?;
            }
        }
        // Records decoded before an error are still handed over and acked.
        if !self.records.is_empty() {
            let records = std::mem::take(&mut self.records);
            ListenerStats::add(&self.shared.stats.records, records.len() as u64);
            self.shared.ingest.submit(records).await?;
        }
        if !self.replies.is_empty() {
            self.socket.write_all(&self.replies).await?;
            self.replies.clear();
        }
        decoded
    }

    fn split_and_decode(&mut self) -> Result<(), SessionError> {
        let max = self.shared.limits.max_frame_bytes;
        loop {
            match self.protocol.check(&self.buf) {
                Check::Frame(n) if n == 0 || n > self.buf.len() => {
                    return Err(SessionError::SplitterBug(n));
                }
                Check::Frame(n) if n > max => return Err(self.oversized(n)),
                Check::Frame(n) => {
                    let frame = self.buf.split_to(n);
                    self.decode(&frame)?;
                }
                Check::Incomplete(Some(total)) if total > max => return Err(self.oversized(total)),
                Check::Incomplete(_) if self.buf.len() > max => {
                    return Err(self.oversized(self.buf.len()));
                }
                Check::Incomplete(_) => return Ok(()),
                Check::Garbage(n) => {
                    let n = n.clamp(1, self.buf.len().max(1));
                    ListenerStats::add(&self.shared.stats.garbage_bytes, n as u64);
                    debug!(peer = %self.peer, imei = ?self.device, bytes = n, "skipping garbage");
                    self.buf.advance(n.min(self.buf.len()));
                    if self.buf.is_empty() {
                        return Ok(());
                    }
                }
            }
        }
    }

    fn oversized(&self, n: usize) -> SessionError {
        ListenerStats::add(&self.shared.stats.oversized, 1);
        SessionError::Oversized(n)
    }

    fn decode(&mut self, frame: &[u8]) -> Result<(), SessionError> {
        ListenerStats::add(&self.shared.stats.frames, 1);
        self.decoded.clear();
        match self.protocol.decode(frame, &mut self.decoded) {
            Ok(()) => {
                self.consecutive_errors = 0;
                self.take_decoded()
            }
            Err(error) => self.reject(frame, error),
        }
    }

    fn take_decoded(&mut self) -> Result<(), SessionError> {
        if let Some(device) = self.decoded.identified.take() {
            // On refusal the login's reply (its "accepted") and any record
            // of the same frame stay in `decoded` and are never used.
            self.admit(&device)?;
            self.identify(device);
        }
        if !self.decoded.records.is_empty() {
            let Some(device) = &self.device else {
                ListenerStats::add(&self.shared.stats.unidentified, 1);
                return Err(SessionError::Unidentified);
            };
            let protocol = self.shared.protocol;
            let received_ms = drover_protocols::model::now_ms();
            self.records
                .extend(self.decoded.records.drain(..).map(|mut record| {
                    // Heartbeats and command replies carry no time of their own.
                    if record.time_ms == 0 {
                        record.time_ms = received_ms;
                    }
                    DeviceMessage {
                        device: device.clone(),
                        protocol,
                        record,
                    }
                }));
        }
        self.replies.extend_from_slice(&self.decoded.reply);
        Ok(())
    }

    /// Asks the pipeline whether `device` may be served. A refused one gets
    /// the protocol's refusal after the acks of what came before it (from
    /// a device this connection named earlier), and the connection closes.
    fn admit(&mut self, device: &DeviceId) -> Result<(), SessionError> {
        let protocol = self.shared.protocol;
        match self.shared.ingest.admit(device, protocol, self.peer) {
            Admit::Serve => Ok(()),
            Admit::Refuse(reason) => {
                if let Some(refusal) = self.protocol.refusal() {
                    self.replies.extend_from_slice(refusal);
                }
                Err(SessionError::Refused {
                    device: device.clone(),
                    reason,
                })
            }
        }
    }

    fn identify(&mut self, device: DeviceId) {
        if self.device.as_ref() == Some(&device) {
            return;
        }
        debug!(peer = %self.peer, imei = %device, protocol = self.shared.protocol, "device identified");
        self.shared.registry.register(
            device.clone(),
            Connection {
                id: self.id,
                peer: self.peer,
                protocol: self.shared.protocol,
                outgoing: self.outgoing.0.clone(),
            },
        );
        if let Some(old) = self.device.replace(device.clone()) {
            self.shared.registry.unregister(&old, self.id);
            self.presence.push((old, false));
        }
        self.presence.push((device, true));
    }

    fn reject(&mut self, frame: &[u8], error: DecodeError) -> Result<(), SessionError> {
        let stats = &self.shared.stats;
        match error {
            DecodeError::BadChecksum { .. } => ListenerStats::add(&stats.bad_checksum, 1),
            DecodeError::NotIdentified => ListenerStats::add(&stats.unidentified, 1),
            _ => ListenerStats::add(&stats.decode_errors, 1),
        }
        warn!(
            peer = %self.peer,
            imei = ?self.device,
            protocol = self.shared.protocol,
            %error,
            len = frame.len(),
            "frame rejected"
        );
        self.consecutive_errors += 1;
        if self.consecutive_errors >= self.shared.limits.max_consecutive_errors {
            return Err(SessionError::TooManyErrors(error));
        }
        Ok(())
    }
}

// invariant: test code (cfg(test) only): the unwraps and expects below never see device input.
#[cfg(test)]
mod tests {
    use drover_protocols::Protocol;
    use drover_protocols::gt06::Gt06;
    use tokio::net::TcpListener;
    use tokio::sync::Semaphore;

    use super::*;

    /// An ingest whose futures are as large as a real pipeline's (journal
    /// commit, engine queue) or larger.
    #[derive(Clone)]
    struct Bulky;

    async fn bulky() -> Result<(), IngestClosed> {
        let scratch = [0u8; 4096];
        tokio::task::yield_now().await;
        std::hint::black_box(&scratch);
        Ok(())
    }

    impl Ingest for Bulky {
        fn admit(&self, _: &DeviceId, _: &'static str, _: SocketAddr) -> Admit {
            Admit::Serve
        }
        async fn submit(&self, _: Vec<DeviceMessage>) -> Result<(), IngestClosed> {
            bulky().await
        }
        async fn connected(&self, _: DeviceId, _: &'static str) -> Result<(), IngestClosed> {
            bulky().await
        }
        async fn disconnected(&self, _: DeviceId) -> Result<(), IngestClosed> {
            bulky().await
        }
    }

    /// Every connection's task is this future, so its size is paid per idle
    /// connection: the ingest's futures must not be part of it.
    #[tokio::test]
    async fn an_idle_session_is_small_whatever_the_ingest() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = TcpStream::connect(addr).await.expect("connect");
        let (socket, peer) = listener.accept().await.expect("accept");
        let shared = Arc::new(Shared {
            protocol: "gt06",
            ingest: Bulky,
            limits: SessionLimits::default(),
            stats: Arc::default(),
            registry: Registry::default(),
            shutdown: CancellationToken::new(),
        });
        let protocol = Gt06::new(Default::default()).session();
        let admission = Admission {
            stats: Arc::default(),
            _permit: Arc::new(Semaphore::new(1))
                .try_acquire_owned()
                .expect("a permit"),
            _address: None,
        };
        let run = Session::new(socket, peer, 1, protocol, shared).run(admission);
        let size = std::mem::size_of_val(&run);
        println!("session future: {size} bytes");
        assert!(size < 1024, "session future is {size} bytes");
    }
}
