//! The null server: GT06 and Teltonika listeners that split frames, check
//! their CRCs and write the acks a real server would, and do nothing else —
//! no decoding of records, no journal, no engine, no MQTT.
//!
//! Driven by the same simulator as a real run, it measures what the machine
//! and the client can do on their own: a benchmark states Drover's
//! throughput as a fraction of this ceiling, and its CPU per position next
//! to this floor.
//!
//! Acks, byte for byte as `drover-protocols`' sessions write them:
//! - GT06: a short frame echoing the type and serial of every login (0x01),
//!   heartbeat (0x13) and GPS+LBS location (0x22), CRC-16/X-25, as Drover's
//!   session does (the simulator counts only the heartbeats' as acks).
//! - Teltonika: 0x01 after the IMEI, then each AVL packet's record count as
//!   a big-endian u32.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use drover_protocols::gt06::{self, Gt06};
use drover_protocols::teltonika::{self, Envelope, Teltonika};
use drover_protocols::{Check, DecodeOptions, Protocol as _, Session as _};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

const GT06_LOGIN: u8 = 0x01;
const GT06_HEARTBEAT: u8 = 0x13;
const GT06_LOCATION: u8 = 0x22;
/// Read buffer per connection; frames are a few hundred bytes at most here.
const READ_CHUNK: usize = 16 * 1024;
/// Unframed input past this closes the connection: no frame of ours is that long.
const MAX_PENDING: usize = 1 << 20;

/// What the null server did, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NullCounts {
    pub connections: u64,
    pub frames: u64,
    /// GT06 locations and records of Teltonika AVL packets.
    pub records: u64,
    /// Frames with a bad CRC or envelope: not acked.
    pub bad_frames: u64,
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    frames: AtomicU64,
    records: AtomicU64,
    bad_frames: AtomicU64,
}

/// A running null server; [`NullServer::stop`] ends it and its connections.
pub struct NullServer {
    pub gt06: SocketAddr,
    pub teltonika: SocketAddr,
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// The two protocols' framing and acks.
#[derive(Clone, Copy)]
enum Kind {
    Gt06,
    Teltonika,
}

impl NullServer {
    /// Binds both listeners (port 0 picks a free port) and starts accepting.
    pub async fn start(gt06: SocketAddr, teltonika: SocketAddr) -> io::Result<NullServer> {
        let gt06 = TcpListener::bind(gt06).await?;
        let teltonika = TcpListener::bind(teltonika).await?;
        let counters = Arc::new(Counters::default());
        let (stop, stopped) = watch::channel(false);
        let addrs = (gt06.local_addr()?, teltonika.local_addr()?);
        let tasks = vec![
            tokio::spawn(accept(gt06, Kind::Gt06, counters.clone(), stopped.clone())),
            tokio::spawn(accept(
                teltonika,
                Kind::Teltonika,
                counters.clone(),
                stopped,
            )),
        ];
        tracing::info!(gt06 = %addrs.0, teltonika = %addrs.1, "null server listening");
        Ok(NullServer {
            gt06: addrs.0,
            teltonika: addrs.1,
            counters,
            stop,
            tasks,
        })
    }

    pub fn counts(&self) -> NullCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let c = &self.counters;
        NullCounts {
            connections: get(&c.connections),
            frames: get(&c.frames),
            records: get(&c.records),
            bad_frames: get(&c.bad_frames),
        }
    }

    /// Stops accepting and closes every connection.
    pub async fn stop(mut self) -> NullCounts {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        self.counts()
    }
}

async fn accept(
    listener: TcpListener,
    kind: Kind,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    // Dropping the set at the end aborts the connections still open.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    counters.connections.fetch_add(1, Ordering::Relaxed);
                    connections.spawn(serve(stream, kind, counters.clone()));
                }
                Err(error) => {
                    // Out of descriptors, usually: wait a little rather than spin.
                    tracing::warn!(%error, "null server: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => return,
        }
    }
}

/// One connection: read, split, ack, until the client closes.
async fn serve(mut stream: TcpStream, kind: Kind, counters: Arc<Counters>) {
    let _ = stream.set_nodelay(true);
    let gt06 = Gt06::new(DecodeOptions::default()).session();
    let teltonika = Teltonika::new(DecodeOptions::default()).session();
    let mut input: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut replies = Vec::with_capacity(256);
    loop {
        match stream.read_buf(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut used = 0;
        while let Some(rest) = input.get(used..).filter(|r| !r.is_empty()) {
            let check = match kind {
                Kind::Gt06 => gt06.check(rest),
                Kind::Teltonika => teltonika.check(rest),
            };
            match check {
                Check::Frame(n) => {
                    let frame = rest.get(..n).unwrap_or_default();
                    counters.frames.fetch_add(1, Ordering::Relaxed);
                    let acked = match kind {
                        Kind::Gt06 => ack_gt06(frame, &mut replies),
                        Kind::Teltonika => ack_teltonika(frame, &mut replies),
                    };
                    match acked {
                        Some(records) => counters.records.fetch_add(records, Ordering::Relaxed),
                        None => counters.bad_frames.fetch_add(1, Ordering::Relaxed),
                    };
                    used += n;
                }
                Check::Garbage(n) => {
                    counters.bad_frames.fetch_add(1, Ordering::Relaxed);
                    used += n.max(1);
                }
                Check::Incomplete(_) => break,
            }
        }
        input.drain(..used.min(input.len()));
        if input.len() > MAX_PENDING {
            return;
        }
        if !replies.is_empty() {
            if stream.write_all(&replies).await.is_err() {
                return;
            }
            replies.clear();
        }
    }
}

/// Appends the ack of a GT06 frame; the records it carried, or `None` for a
/// frame with a bad CRC.
fn ack_gt06(frame: &[u8], replies: &mut Vec<u8>) -> Option<u64> {
    // Device frames are framed like the server's replies: the same parser
    // reads their type and serial and checks their CRC.
    let (kind, serial) = gt06::device::parse_reply(frame)?;
    match kind {
        GT06_LOGIN | GT06_HEARTBEAT => {
            gt06::write_ack(replies, kind, serial);
            Some(0)
        }
        GT06_LOCATION => {
            gt06::write_ack(replies, kind, serial);
            Some(1)
        }
        _ => Some(0),
    }
}

fn ack_teltonika(frame: &[u8], replies: &mut Vec<u8>) -> Option<u64> {
    match teltonika::envelope(frame)? {
        Envelope::Ping => Some(0),
        Envelope::Login => {
            replies.push(teltonika::LOGIN_ACCEPTED);
            Some(0)
        }
        Envelope::Data { records } => {
            replies.extend_from_slice(&u32::from(records).to_be_bytes());
            Some(u64::from(records))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::SimConfig;
    use crate::link::Protocol;
    use drover_protocols::{Decoded, Session};

    /// The null server's acks are the bytes a real session writes.
    #[test]
    fn acks_match_the_real_sessions() {
        let config = SimConfig::default();
        let mut vehicle =
            crate::vehicle::Vehicle::new(1, 1, &crate::route::City::default(), 1_764_133_200_000);
        let imei = "350000000000001";
        let frames_gt06 = vec![
            gt06::device::login(imei, 1),
            gt06::device::location(&vehicle.record(), 2),
            gt06::device::heartbeat(3),
        ];
        vehicle.step(Duration::from_secs(1));
        let records = vec![vehicle.record(), vehicle.record()];
        let frames_teltonika = vec![
            teltonika::device::login(imei),
            teltonika::device::avl_packet(config.codec.into(), &records),
        ];
        for (protocol, frames) in [
            (Protocol::Gt06, frames_gt06),
            (Protocol::Teltonika, frames_teltonika),
        ] {
            let mut real: Box<dyn Session> = match protocol {
                Protocol::Gt06 => Box::new(Gt06::new(DecodeOptions::default()).session()),
                Protocol::Teltonika => Box::new(Teltonika::new(DecodeOptions::default()).session()),
            };
            for frame in frames {
                let mut out = Decoded::default();
                assert!(real.decode(&frame, &mut out).is_ok());
                let mut null = Vec::new();
                let acked = match protocol {
                    Protocol::Gt06 => ack_gt06(&frame, &mut null),
                    Protocol::Teltonika => ack_teltonika(&frame, &mut null),
                };
                assert!(acked.is_some());
                assert_eq!(null, out.reply, "{protocol:?} frame {frame:02x?}");
            }
        }
    }

    #[test]
    fn a_bad_crc_is_not_acked() {
        let mut frame = gt06::device::heartbeat(3);
        if let Some(b) = frame.get_mut(5) {
            *b ^= 0xff;
        }
        assert_eq!(ack_gt06(&frame, &mut Vec::new()), None);
    }

    /// A short simulator run against the null server: everything sent is acked.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_simulator_gets_every_ack() {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let server = NullServer::start(any, any)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let config = SimConfig {
            gt06_port: server.gt06.port(),
            teltonika_port: server.teltonika.port(),
            devices: 10,
            rate: 5.0,
            duration: Duration::from_secs(2),
            ramp: Duration::from_millis(200),
            records_per_packet: 3,
            gt06_heartbeat_every: 2,
            mqtt: None,
            progress: false,
            ..SimConfig::default()
        };
        let report = crate::run(config).await.unwrap_or_else(|e| panic!("{e}"));
        let counts = server.stop().await;
        assert!(report.errors.is_empty(), "{report}");
        assert!(report.records_acked > 0, "{report}");
        assert_eq!(report.records_acked, report.records_sent, "{report}");
        assert_eq!(counts.records, report.records_sent);
        assert_eq!(counts.connections, 10);
        assert_eq!(counts.bad_frames, 0);
        assert!(!report.timeline.is_empty());
    }
}
