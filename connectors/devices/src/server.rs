//! The accept loop shared by every TCP protocol.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use drover_protocols::Protocol;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

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
    let permits = Arc::new(Semaphore::new(context.max_connections));
    let sessions = TaskTracker::new();
    let shared = Shared {
        protocol: name,
        ingest: context.ingest,
        limits: context.limits,
        stats: context.stats,
        registry: context.registry,
        shutdown: shutdown.clone(),
    };
    loop {
        let (socket, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Typically EMFILE: back off instead of spinning.
                    warn!(protocol = name, %error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            ListenerStats::add(&shared.stats.refused, 1);
            warn!(protocol = name, %peer, limit = context.max_connections, "connection refused: limit reached");
            continue;
        };
        // Acks are tiny and latency matters more than packet count.
        let _ = socket.set_nodelay(true);
        ListenerStats::add(&shared.stats.accepted, 1);
        shared.stats.open.fetch_add(1, Ordering::Relaxed);
        let id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
        let admission = Admission {
            stats: shared.stats.clone(),
            _permit: permit,
        };
        let session = Session::new(socket, peer, id, protocol.session(), shared.clone());
        // The session's own future, not one wrapping it: a wrapper would
        // hold the session twice (before and after the move into `run`).
        sessions.spawn(session.run(admission));
    }
    sessions.close();
    sessions.wait().await;
    info!(protocol = name, "device listener stopped");
}

/// A connection's place under the limit, counted open until it is dropped
/// with the session that holds it.
pub(crate) struct Admission {
    pub stats: Arc<ListenerStats>,
    pub _permit: OwnedSemaphorePermit,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}
