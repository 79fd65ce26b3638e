//! What the live stream (`GET /api/v1/stream`) needs from the node: a hub
//! that fans committed positions and status changes out to clients. The
//! hub lives in the node; the route knows only [`StreamHub`].
//!
//! Each client gets a [`Subscription`]: a small bounded channel of
//! [`Frame`]s that the hub fills without ever waiting, the client's
//! [`Filter`], which the hub reads as it fans out, and a [`Close`] the hub
//! sends when it lets a client go (too slow, or the node stops).

use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use drover_protocols::model::DeviceId;
use tokio::sync::{mpsc, oneshot, watch};

/// A frame's JSON, shared by every client that gets it without a copy.
pub use axum::extract::ws::Utf8Bytes;

/// What a client wants to receive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Filter {
    #[default]
    All,
    /// These device ids only.
    Devices(BTreeSet<String>),
    /// Devices registered in one of these groups only.
    Groups(BTreeSet<String>),
}

impl Filter {
    /// Whether a frame about `device` passes; `group` is asked only when
    /// the filter is by group (it costs a registry lookup).
    pub fn admits(&self, device: &str, group: impl FnOnce() -> Option<String>) -> bool {
        match self {
            Filter::All => true,
            Filter::Devices(ids) => ids.contains(device),
            Filter::Groups(groups) => group().is_some_and(|g| groups.contains(&g)),
        }
    }
}

/// What a frame is about: with the device, the key under which a slow
/// client's frames are coalesced (only the newest of each is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    Position,
    Status,
    /// A trip that opened or closed: the newest says where the device's
    /// trip stands.
    Trip,
    /// A stop that opened or closed: the newest says where the device stands.
    Stop,
    /// An alert's change; a slow client keeps the device's newest.
    Alert,
}

/// One message for clients, serialized once for all who get it.
#[derive(Debug, Clone)]
pub struct Frame {
    pub device: DeviceId,
    pub kind: FrameKind,
    pub json: Utf8Bytes,
}

/// Why the hub let a client go: a WebSocket close code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: &'static str,
}

/// A client's end of the hub. Dropping it leaves the hub.
#[derive(Debug)]
pub struct Subscription {
    pub frames: mpsc::Receiver<Frame>,
    /// The hub reads the newest filter for every frame it fans out.
    pub filter: watch::Sender<Filter>,
    pub closed: oneshot::Receiver<Close>,
}

/// Counters of the stream, shared by the hub and the connections.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Clients connected now.
    pub clients: AtomicU64,
    /// Clients connected since the start.
    pub connected: AtomicU64,
    /// Messages written to clients' sockets (snapshots among them).
    pub sent: AtomicU64,
    /// Frames a slow client never got because a newer one about the same
    /// device replaced it.
    pub coalesced: AtomicU64,
    /// Clients let go for being too slow.
    pub dropped: AtomicU64,
    /// Clients closed for answering nothing, not even pings (a peer gone
    /// without closing its connection).
    pub unresponsive: AtomicU64,
    /// Connections refused because the hub had as many clients as it takes.
    pub refused: AtomicU64,
}

/// Why a client could not join.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("the live stream has as many clients as it takes ({0}); try again later")]
    Full(usize),
    #[error("the live stream has stopped")]
    Stopped,
}

/// The node's hub.
pub trait StreamHub: Send + Sync + 'static {
    /// A new client, receiving every frame until it sets a filter.
    fn join(&self) -> Result<Subscription, JoinError>;

    fn stats(&self) -> &StreamStats;
}

/// How much of each device a snapshot carries (`?snapshot=` on the stream).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Detail {
    /// Each device as `GET /api/v1/devices/{id}` shows it.
    #[default]
    Full,
    /// What a map and a device list show: registration, status, and of the
    /// live state the protocol, last fix and kinematics (about 40% of
    /// `full` for the simulator's Teltonika trackers).
    Summary,
}

/// The whole fleet's snapshot, shared by clients that connect together.
///
/// Serializing thousands of devices takes milliseconds and megabytes: a
/// hundred dashboards opened at once (a shift change, everyone reconnecting
/// after a restart) get one serialization, not a hundred. Builds are one at
/// a time, and a client is given only a snapshot whose build began after it
/// joined the hub, so none is older than the frames queued for it.
#[derive(Default)]
pub struct FleetSnapshots {
    /// The newest snapshot of each [`Detail`] and when its build began; the
    /// lock is held while one is built, so that those waiting take it
    /// instead of building.
    full: tokio::sync::Mutex<Option<(Instant, Utf8Bytes)>>,
    summary: tokio::sync::Mutex<Option<(Instant, Utf8Bytes)>>,
}

impl FleetSnapshots {
    /// A snapshot begun after `joined`: the newest if it qualifies, else
    /// one from `build` (on a blocking thread). `None` if `build` panicked.
    pub async fn after(
        &self,
        joined: Instant,
        detail: Detail,
        build: impl FnOnce() -> Utf8Bytes + Send + 'static,
    ) -> Option<Utf8Bytes> {
        let slot = match detail {
            Detail::Full => &self.full,
            Detail::Summary => &self.summary,
        };
        let mut newest = slot.lock().await;
        if let Some((began, json)) = newest.as_ref()
            && *began >= joined
        {
            return Some(json.clone());
        }
        let began = Instant::now();
        let json = tokio::task::spawn_blocking(build).await.ok()?;
        *newest = Some((began, json.clone()));
        Some(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clients_that_joined_before_a_build_share_it_and_later_ones_get_a_new_one() {
        let snapshots = FleetSnapshots::default();
        let joined = Instant::now();
        let first = snapshots.after(joined, Detail::Full, || "one".into()).await;
        let shared = snapshots.after(joined, Detail::Full, || "two".into()).await;
        assert_eq!(
            (first.as_deref(), shared.as_deref()),
            (Some("one"), Some("one"))
        );
        let late = snapshots
            .after(Instant::now(), Detail::Full, || "three".into())
            .await;
        assert_eq!(late.as_deref(), Some("three"));
    }

    #[tokio::test]
    async fn each_detail_has_its_own_snapshot() {
        let snapshots = FleetSnapshots::default();
        let joined = Instant::now();
        let full = snapshots
            .after(joined, Detail::Full, || "full".into())
            .await;
        let summary = snapshots
            .after(joined, Detail::Summary, || "summary".into())
            .await;
        assert_eq!(
            (full.as_deref(), summary.as_deref()),
            (Some("full"), Some("summary"))
        );
    }
}
