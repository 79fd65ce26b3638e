//! The accept loop shared by every TCP protocol.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use drover_protocols::Protocol;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::addresses::{AddressSlot, Addresses};
use crate::config::SessionLimits;
use crate::ingest::Ingest;
use crate::registry::Registry;
use crate::session::{Session, Shared};
use crate::stats::ListenerStats;

/// Everything a listener needs besides its socket and protocol.
#[derive(Clone)]
pub struct ServerContext<I> {
    pub ingest: I,
    pub limits: SessionLimits,
    pub max_connections: usize,
    pub registry: Registry,
    pub stats: Arc<ListenerStats>,
}

/// Connection ids are unique across all listeners of the process.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Accepts connections on `listener` and serves each with a `protocol`
/// session until `shutdown` is cancelled; then waits for every session to
/// hand over what it has decoded and close.
///
/// The caller binds the listener, so tests can bind port 0.
pub async fn run<P: Protocol, I: Ingest>(
    listener: TcpListener,
    protocol: P,
    context: ServerContext<I>,
    shutdown: CancellationToken,
) {
    let name = protocol.name();
    if let Ok(addr) = listener.local_addr() {
        info!(protocol = name, %addr, "listening for devices");
    }
    let mut door = Door {
        protocol: name,
        permits: Arc::new(Semaphore::new(context.max_connections)),
        max_connections: context.max_connections,
        per_ip: NonZeroU32::new(context.limits.max_connections_per_ip),
        addresses: context.registry.addresses.clone(),
        stats: context.stats.clone(),
        per_ip_warnings: Throttle::new(REFUSAL_LOG_INTERVAL),
    };
    let sessions = TaskTracker::new();
    // One per listener, shared by its sessions: what they all read costs a
    // connection one pointer.
    let shared = Arc::new(Shared {
        protocol: name,
        ingest: context.ingest,
        limits: context.limits,
        stats: context.stats,
        registry: context.registry,
        shutdown: shutdown.clone(),
    });
    loop {
        let (socket, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Typically EMFILE: back off instead of spinning.
                    warn!(protocol = name, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Refused: dropping the socket closes it.
        let Some(admission) = door.admit(peer) else {
            continue;
        };
        // Acks are tiny and latency matters more than packet count.
        let _ = socket.set_nodelay(true);
        let id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
        let session = Session::new(socket, peer, id, protocol.session(), shared.clone());
        // The session's own future, not one wrapping it: a wrapper would
        // hold the session twice (before and after the move into `run`).
        sessions.spawn(session.run(admission));
    }
    sessions.close();
    sessions.wait().await;
    info!(protocol = name, "device listener stopped");
}

/// Per-address refusals come in floods (a NAT gateway, or one host opening
/// sockets in a loop): one warning per interval, with the count left out.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Decides right after accept whether a connection may stay: under the
/// listener's limit and under its address's.
struct Door {
    protocol: &'static str,
    permits: Arc<Semaphore>,
    max_connections: usize,
    per_ip: Option<NonZeroU32>,
    addresses: Addresses,
    stats: Arc<ListenerStats>,
    per_ip_warnings: Throttle,
}

impl Door {
    fn admit(&mut self, peer: SocketAddr) -> Option<Admission> {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            ListenerStats::add(&self.stats.refused, 1);
            warn!(protocol = self.protocol, %peer, limit = self.max_connections, "connection refused: limit reached");
            return None;
        };
        let address = match self.per_ip {
            Some(limit) => Some(self.admit_address(peer, limit)?),
            None => None,
        };
        ListenerStats::add(&self.stats.accepted, 1);
        self.stats.open.fetch_add(1, Ordering::Relaxed);
        Some(Admission {
            stats: self.stats.clone(),
            _permit: permit,
            _address: address,
        })
    }

    fn admit_address(&mut self, peer: SocketAddr, limit: NonZeroU32) -> Option<AddressSlot> {
        let slot = self.addresses.admit(peer.ip(), limit);
        if slot.is_none() {
            ListenerStats::add(&self.stats.refused_per_ip, 1);
            if let Some(suppressed) = self.per_ip_warnings.ready() {
                warn!(
                    protocol = self.protocol,
                    %peer,
                    limit = limit.get(),
                    suppressed,
                    "connection refused: too many from this address"
                );
            }
        }
        slot
    }
}

/// At most one log line per interval.
struct Throttle {
    interval: Duration,
    last: Option<Instant>,
    /// Lines left out since the last one logged.
    suppressed: u64,
}

impl Throttle {
    fn new(interval: Duration) -> Self {
        Throttle {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(lines left out since the last one)` when a line may be logged now.
    fn ready(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < self.interval)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// A connection's place under the limits, counted open until it is dropped
/// with the session that holds it.
pub(crate) struct Admission {
    pub stats: Arc<ListenerStats>,
    pub _permit: OwnedSemaphorePermit,
    /// `None` when connections per address are unlimited.
    pub _address: Option<AddressSlot>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

// invariant: test code (cfg(test) only): no unwrap or expect sees outside input.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_line_says_how_many_were_left_out_before_it() {
        let hour = Duration::from_secs(3600);
        let mut throttle = Throttle::new(hour);
        assert_eq!(throttle.ready(), Some(0));
        assert_eq!((throttle.ready(), throttle.ready()), (None, None));
        // As if the interval had passed (no earlier line on a fresh clock).
        throttle.last = Instant::now().checked_sub(hour);
        assert_eq!(throttle.ready(), Some(2));
        assert_eq!(throttle.ready(), None);
    }
}
