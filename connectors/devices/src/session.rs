//! One device connection: bytes in, frames out, records to the pipeline,
//! acks back only once the pipeline has accepted them.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use drover_protocols::model::{DeviceId, DeviceMessage};
use drover_protocols::{Check, DecodeError, Decoded, Session as ProtocolSession};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::config::SessionLimits;
use crate::ingest::{Ingest, IngestClosed};
use crate::registry::{Connection, Registry};
use crate::stats::ListenerStats;

/// Why a connection ended, other than the device closing it.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("idle for longer than the timeout")]
    Idle,
    #[error("frame of {0} bytes exceeds the limit")]
    Oversized(usize),
    #[error("too many undecodable frames in a row (last: {0})")]
    TooManyErrors(DecodeError),
    #[error("records from a device that has not identified itself")]
    Unidentified,
    #[error("the protocol splitter reported a frame of {0} bytes in a shorter buffer")]
    SplitterBug(usize),
    #[error(transparent)]
    Closed(#[from] IngestClosed),
}

/// What a session shares with its listener.
#[derive(Clone)]
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

/// Commands waiting for one connection; a device rarely has more than one.
const OUTGOING_CAPACITY: usize = 8;

pub(crate) struct Session<S, I> {
    socket: TcpStream,
    peer: SocketAddr,
    id: u64,
    protocol: S,
    shared: Shared<I>,
    buf: BytesMut,
    decoded: Decoded,
    /// Records and acks of the frames decoded since the last read.
    records: Vec<DeviceMessage>,
    replies: Vec<u8>,
    consecutive_errors: u32,
    device: Option<DeviceId>,
    /// Presence changes to tell the pipeline before the records that follow them.
    presence: Vec<(DeviceId, bool)>,
    outgoing: (mpsc::Sender<Vec<u8>>, mpsc::Receiver<Vec<u8>>),
}

impl<S: ProtocolSession, I: Ingest> Session<S, I> {
    pub fn new(
        socket: TcpStream,
        peer: SocketAddr,
        id: u64,
        protocol: S,
        shared: Shared<I>,
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
            outgoing: mpsc::channel(OUTGOING_CAPACITY),
        }
    }

    /// Serves the connection until it closes, then tells the pipeline.
    pub async fn run(mut self) {
        let result = self.serve().await;
        match &result {
            Ok(()) => debug!(peer = %self.peer, imei = ?self.device, "connection closed"),
            Err(SessionError::Idle) => {
                ListenerStats::add(&self.shared.stats.idle_timeouts, 1);
                debug!(peer = %self.peer, imei = ?self.device, "idle connection closed");
            }
            Err(error) => {
                warn!(peer = %self.peer, imei = ?self.device, protocol = self.shared.protocol, %error, "connection closed")
            }
        }
        if let Some(device) = self.device.take() {
            self.shared.registry.unregister(&device, self.id);
            // A closed pipeline is shutting down anyway.
            let _ = self.shared.ingest.disconnected(device).await;
        }
    }

    async fn serve(&mut self) -> Result<(), SessionError> {
        loop {
            tokio::select! {
                biased;
                () = self.shared.shutdown.cancelled() => return Ok(()),
                Some(command) = self.outgoing.1.recv() => {
                    self.socket.write_all(&command).await?;
                }
                ready = tokio::time::timeout(self.shared.limits.idle_timeout, self.socket.readable()) => {
                    match ready {
                        Err(_) => return Err(SessionError::Idle),
                        Ok(Ok(())) => match self.read_available() {
                            Ok(0) => return self.end_of_stream(),
                            Ok(_) => {
                                self.process().await?;
                                if self.buf.is_empty() {
                                    self.buf = BytesMut::new();
                                }
                            }
                            // Readiness was spurious: wait again.
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            Err(e) => return Err(e.into()),
                        },
                        Ok(Err(e)) => return Err(e.into()),
                    }
                }
            }
        }
    }

    /// Reads what the socket has, without waiting.
    ///
    /// The buffer is allocated only once bytes are there, and `serve` frees
    /// it again when every frame in it was handled: an idle connection (most
    /// of them, most of the time) holds no read buffer at all.
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
            self.identify(device);
        }
        if !self.decoded.records.is_empty() {
            let Some(device) = &self.device else {
                ListenerStats::add(&self.shared.stats.unidentified, 1);
                return Err(SessionError::Unidentified);
            };
            let protocol = self.shared.protocol;
            let received_ms = wall_clock_ms();
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

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
