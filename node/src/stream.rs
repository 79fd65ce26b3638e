//! The live stream's hub: one task that fans committed positions and
//! presence changes out to the WebSocket clients of `GET /api/v1/stream`.
//!
//! * Positions come from the committed journal's feed, like the sinks'
//!   records, so nothing is streamed before it is durable. The hub keeps no
//!   cursor: a live view has no use for what it missed, and a marker (a
//!   batch the feed could not hold) is counted and skipped.
//! * Status changes come from the engine's delta queue; the MQTT status
//!   publisher has its own board.
//!
//! Each frame is serialized once, for the first client that wants it, and
//! handed to every client's small bounded outbox without waiting. A client
//! whose outbox is full gets a backlog instead that keeps only the newest
//! frame per device and kind; one whose backlog does not empty within
//! [`STALL_LIMIT`], or grows past [`MAX_BACKLOG`], is let go with close code
//! 1008 and counted. So a slow client costs a bounded amount of memory and
//! never slows the hub, the engine, acks or the other clients.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use drover_api::stream::{
    Close, Filter, Frame, FrameKind, JoinError, StreamHub, StreamStats, Subscription, Utf8Bytes,
};
use drover_catalog::Catalog;
use drover_engine::Delta;
use drover_journal::sink::{Committed, FeedReceiver};
use drover_mqtt::payload::{AlertPayload, PositionPayload, Rfc3339Ms, StopPayload, TripPayload};

use crate::analytics::{stop_payload, trip_payload};
use drover_protocols::model::DeviceId;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Frames a client's outbox holds: enough to ride out a short hiccup;
/// beyond it the backlog coalesces.
const OUTBOX: usize = 256;
/// Undelivered (device, kind) pairs a client may have: past it, it is let go.
/// It bounds a slow client's memory whatever the fleet size.
const MAX_BACKLOG: usize = 20_000;
/// How long a client's backlog may stay non-empty before it is let go.
const STALL_LIMIT: Duration = Duration::from_secs(10);
/// How often backlogs move on to outboxes that have room again (and stalls
/// are judged) when nothing else happens.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Clients the hub takes at once.
const MAX_CLIENTS: usize = 1_000;

const TOO_SLOW: Close = Close {
    code: 1008,
    reason: "too slow: updates could not be delivered for 10 s",
};
const OVERFLOW: Close = Close {
    code: 1008,
    reason: "too slow: too many undelivered updates",
};
const GOING_AWAY: Close = Close {
    code: 1001,
    reason: "the server is stopping",
};

/// The API's handle on the hub.
pub struct Hub {
    joins: mpsc::UnboundedSender<Joined>,
    stats: Arc<StreamStats>,
}

impl StreamHub for Hub {
    fn join(&self) -> Result<Subscription, JoinError> {
        let clients = &self.stats.clients;
        if clients.fetch_add(1, Relaxed) >= MAX_CLIENTS as u64 {
            clients.fetch_sub(1, Relaxed);
            self.stats.refused.fetch_add(1, Relaxed);
            return Err(JoinError::Full(MAX_CLIENTS));
        }
        let (joined, subscription) = channel(OUTBOX);
        if self.joins.send(joined).is_err() {
            clients.fetch_sub(1, Relaxed);
            return Err(JoinError::Stopped);
        }
        self.stats.connected.fetch_add(1, Relaxed);
        Ok(subscription)
    }

    fn stats(&self) -> &StreamStats {
        &self.stats
    }
}

/// The hub's end of a new client.
struct Joined {
    frames: mpsc::Sender<Frame>,
    filter: watch::Receiver<Filter>,
    close: oneshot::Sender<Close>,
}

fn channel(outbox: usize) -> (Joined, Subscription) {
    let (frames_tx, frames) = mpsc::channel(outbox);
    let (filter, filter_rx) = watch::channel(Filter::All);
    let (close, closed) = oneshot::channel();
    let joined = Joined {
        frames: frames_tx,
        filter: filter_rx,
        close,
    };
    (
        joined,
        Subscription {
            frames,
            filter,
            closed,
        },
    )
}

/// What the hub streams from.
pub struct Sources {
    /// Committed records, from the journal's feed.
    pub feed: FeedReceiver,
    /// The engine's deltas (presence changes).
    pub deltas: flume::Receiver<Delta>,
    /// Group membership, for clients that subscribe by group.
    pub catalog: Arc<Catalog>,
}

/// The hub and its task, which runs until `shutdown` and then closes every
/// client with 1001.
pub fn start(
    sources: Sources,
    stats: Arc<StreamStats>,
    shutdown: CancellationToken,
) -> (Hub, impl Future<Output = ()>) {
    let (joins, joined) = mpsc::unbounded_channel();
    let hub = Hub {
        joins,
        stats: Arc::clone(&stats),
    };
    let task = HubTask {
        clients: Clients::new(stats),
        joined,
        sources,
    };
    (hub, task.run(shutdown))
}

struct HubTask {
    clients: Clients,
    joined: mpsc::UnboundedReceiver<Joined>,
    sources: Sources,
}

impl HubTask {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The feed ends with the journal and the deltas with the engine, both
        // before the HTTP server at a stop: the hub waits for its own signal.
        let (mut feed_open, mut deltas_open, mut joins_open) = (true, true, true);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                joined = self.joined.recv(), if joins_open => match joined {
                    Some(joined) => self.clients.add(joined),
                    None => joins_open = false,
                },
                batch = self.sources.feed.recv(), if feed_open => match batch {
                    Some(batch) => self.positions(&batch),
                    None => feed_open = false,
                },
                delta = self.sources.deltas.recv_async(), if deltas_open => match delta {
                    Ok(delta) => self.delta(&delta),
                    Err(_) => deltas_open = false,
                },
                _ = flush.tick() => self.clients.flush_all(Instant::now()),
            }
        }
        self.clients.close_all(GOING_AWAY);
    }

    fn positions(&mut self, batch: &Committed) {
        if batch.messages.is_empty() {
            debug!(seqs = ?batch.seqs, "live stream: records skipped (the feed was full)");
            return;
        }
        if self.clients.is_empty() {
            return;
        }
        let now = Instant::now();
        let catalog = &self.sources.catalog;
        for message in batch.messages.iter() {
            let Some(position) = PositionPayload::of(message) else {
                continue;
            };
            let json = || to_json(&Message::Position(position));
            self.clients.fan_out(
                &message.device,
                FrameKind::Position,
                json,
                now,
                &group_of(catalog),
            );
        }
    }

    fn delta(&mut self, delta: &Delta) {
        let group = group_of(&self.sources.catalog);
        let now = Instant::now();
        match delta {
            Delta::Presence {
                device,
                online,
                time_ms,
            } => {
                let json = || {
                    to_json(&Message::Status {
                        device: device.as_str(),
                        online: *online,
                        time: Rfc3339Ms(*time_ms),
                    })
                };
                self.clients
                    .fan_out(device, FrameKind::Status, json, now, &group);
            }
            Delta::Trip(trip) => {
                let json = || {
                    let id = trip.id();
                    to_json(&Message::Trip(trip_payload(trip, &id)))
                };
                self.clients
                    .fan_out(&trip.device, FrameKind::Trip, json, now, &group);
            }
            Delta::Stop(stop) => {
                let json = || {
                    let id = stop.id();
                    to_json(&Message::Stop(stop_payload(stop, &id)))
                };
                self.clients
                    .fan_out(&stop.device, FrameKind::Stop, json, now, &group);
            }
            Delta::Alert(alert) => {
                let json = || to_json(&Message::Alert(crate::alerts::payload(alert)));
                self.clients
                    .fan_out(&alert.device, FrameKind::Alert, json, now, &group);
            }
            Delta::State(_) | Delta::Removed { .. } | Delta::Derived(_) | Delta::JobDue(_) => {}
        }
    }
}

fn group_of(catalog: &Catalog) -> impl Fn(&str) -> Option<String> + '_ {
    |device| catalog.devices.get(device)?.group
}

/// What the hub sends, as clients read it (docs/api.md, "Live stream").
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Message<'a> {
    /// The MQTT position payload's fields.
    Position(PositionPayload<'a>),
    Status {
        device: &'a str,
        online: bool,
        time: Rfc3339Ms,
    },
    /// The MQTT trip payload's fields.
    Trip(TripPayload<'a>),
    /// The MQTT stop payload's fields.
    Stop(StopPayload<'a>),
    /// The MQTT alert payload's fields.
    Alert(AlertPayload<'a>),
}

fn to_json(message: &Message<'_>) -> Utf8Bytes {
    // Plain structs of strings and numbers: serializing into memory cannot
    // fail (non-finite floats become null).
    serde_json::to_string(message).unwrap_or_default().into()
}

/// Every client and what each still waits for.
struct Clients {
    list: Vec<Client>,
    stats: Arc<StreamStats>,
    next_id: u64,
}

/// What became of a client after a delivery or a flush.
enum Outcome {
    Kept,
    /// It left: its connection dropped its subscription.
    Gone,
    /// It is let go, with this close.
    Dropped(Close),
}

impl Clients {
    fn new(stats: Arc<StreamStats>) -> Self {
        Clients {
            list: Vec::new(),
            stats,
            next_id: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn add(&mut self, joined: Joined) {
        self.next_id += 1;
        self.list.push(Client {
            id: self.next_id,
            frames: joined.frames,
            filter: joined.filter,
            close: Some(joined.close),
            backlog: HashMap::new(),
            behind_since: None,
        });
    }

    /// Offers a frame about `device` to every client whose filter admits
    /// it; `json` runs at most once, and only if one does.
    fn fan_out(
        &mut self,
        device: &DeviceId,
        kind: FrameKind,
        json: impl FnOnce() -> Utf8Bytes,
        now: Instant,
        group_of: &dyn Fn(&str) -> Option<String>,
    ) {
        let group = OnceCell::new();
        let mut json = Some(json);
        let mut frame: Option<Frame> = None;
        let mut i = 0;
        while i < self.list.len() {
            let client = &mut self.list[i];
            let wanted = client.filter.borrow().admits(device.as_str(), || {
                group.get_or_init(|| group_of(device.as_str())).clone()
            });
            if !wanted {
                i += 1;
                continue;
            }
            let shared = frame.get_or_insert_with(|| Frame {
                device: device.clone(),
                kind,
                json: json.take().map(|make| make()).unwrap_or_default(),
            });
            let outcome = client.offer(shared, now, &self.stats);
            if self.settle(i, outcome) {
                i += 1;
            }
        }
    }

    /// Moves backlogs on and lets go of clients stalled too long.
    fn flush_all(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.list.len() {
            let outcome = self.list[i].flush(now);
            if self.settle(i, outcome) {
                i += 1;
            }
        }
    }

    /// Applies `outcome` to client `i`; `true` if it is still there.
    fn settle(&mut self, i: usize, outcome: Outcome) -> bool {
        let close = match outcome {
            Outcome::Kept => return true,
            Outcome::Gone => None,
            Outcome::Dropped(close) => Some(close),
        };
        let mut client = self.list.swap_remove(i);
        self.stats.clients.fetch_sub(1, Relaxed);
        if let Some(close) = close {
            self.stats.dropped.fetch_add(1, Relaxed);
            warn!(
                client = client.id,
                backlog = client.backlog.len(),
                reason = close.reason,
                "live stream client dropped"
            );
            client.let_go(close);
        }
        false
    }

    fn close_all(&mut self, close: Close) {
        for mut client in self.list.drain(..) {
            self.stats.clients.fetch_sub(1, Relaxed);
            client.let_go(close);
        }
    }
}

/// One client as the hub sees it.
struct Client {
    /// For logs.
    id: u64,
    frames: mpsc::Sender<Frame>,
    filter: watch::Receiver<Filter>,
    close: Option<oneshot::Sender<Close>>,
    /// Frames that found the outbox full: the newest per device and kind.
    backlog: HashMap<(DeviceId, FrameKind), Frame>,
    /// Since when the backlog has not been empty.
    behind_since: Option<Instant>,
}

impl Client {
    fn offer(&mut self, frame: &Frame, now: Instant, stats: &StreamStats) -> Outcome {
        if let outcome @ (Outcome::Gone | Outcome::Dropped(_)) = self.flush(now) {
            return outcome;
        }
        if self.backlog.is_empty() {
            match self.frames.try_send(frame.clone()) {
                Ok(()) => return Outcome::Kept,
                Err(mpsc::error::TrySendError::Closed(_)) => return Outcome::Gone,
                Err(mpsc::error::TrySendError::Full(_)) => self.behind_since = Some(now),
            }
        }
        let key = (frame.device.clone(), frame.kind);
        if self.backlog.insert(key, frame.clone()).is_some() {
            stats.coalesced.fetch_add(1, Relaxed);
        }
        if self.backlog.len() > MAX_BACKLOG {
            return Outcome::Dropped(OVERFLOW);
        }
        Outcome::Kept
    }

    /// Moves as much of the backlog as fits into the outbox.
    fn flush(&mut self, now: Instant) -> Outcome {
        if self.frames.is_closed() {
            return Outcome::Gone;
        }
        // A stalled client is offered every frame: without room, touching
        // its whole backlog each time would cost the hub O(backlog) a frame.
        if self.frames.capacity() > 0 {
            let frames = &self.frames;
            let mut room = true;
            self.backlog.retain(|_, frame| {
                room = room && frames.try_send(frame.clone()).is_ok();
                !room
            });
        }
        if self.backlog.is_empty() {
            self.behind_since = None;
            return Outcome::Kept;
        }
        match self.behind_since {
            Some(since) if now.saturating_duration_since(since) >= STALL_LIMIT => {
                Outcome::Dropped(TOO_SLOW)
            }
            _ => Outcome::Kept,
        }
    }

    fn let_go(&mut self, close: Close) {
        if let Some(tx) = self.close.take() {
            // A connection that already ended does not need telling.
            let _ = tx.send(close);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVICES: [&str; 3] = ["a", "b", "c"];

    fn frame(device: &str, kind: FrameKind, n: u32) -> (DeviceId, FrameKind, Utf8Bytes) {
        (DeviceId::new(device), kind, format!("{device}{n}").into())
    }

    fn no_groups(_: &str) -> Option<String> {
        None
    }

    fn clients() -> (Clients, Arc<StreamStats>) {
        let stats = Arc::new(StreamStats::default());
        (Clients::new(Arc::clone(&stats)), stats)
    }

    /// A client with an outbox of `capacity`, as the hub joins it.
    fn join(clients: &mut Clients, capacity: usize) -> Subscription {
        let (joined, subscription) = channel(capacity);
        clients.stats.clients.fetch_add(1, Relaxed);
        clients.add(joined);
        subscription
    }

    fn offer(clients: &mut Clients, device: &str, kind: FrameKind, n: u32, now: Instant) {
        let (device, kind, json) = frame(device, kind, n);
        clients.fan_out(&device, kind, || json, now, &no_groups);
    }

    fn received(subscription: &mut Subscription) -> Vec<String> {
        let mut got = Vec::new();
        while let Ok(frame) = subscription.frames.try_recv() {
            got.push(frame.json.to_string());
        }
        got
    }

    #[test]
    fn a_full_outbox_coalesces_to_the_newest_frame_per_device_and_kind() {
        let (mut clients, stats) = clients();
        let mut sub = join(&mut clients, 2);
        let now = Instant::now();
        for n in 1..=4 {
            offer(&mut clients, "a", FrameKind::Position, n, now);
        }
        offer(&mut clients, "b", FrameKind::Position, 1, now);
        offer(&mut clients, "a", FrameKind::Status, 1, now);
        assert_eq!(stats.coalesced.load(Relaxed), 1, "a3 was replaced by a4");
        assert_eq!(received(&mut sub), ["a1", "a2"]);

        clients.flush_all(now);
        let mut rest = received(&mut sub);
        assert_eq!(rest.len(), 2, "the outbox takes two more: {rest:?}");
        clients.flush_all(now);
        rest.extend(received(&mut sub));
        rest.sort();
        assert_eq!(
            rest,
            ["a1", "a4", "b1"],
            "the status a1, the position a4, b1"
        );
        assert_eq!(clients.list.len(), 1);
        assert!(clients.list[0].behind_since.is_none());
    }

    #[test]
    fn a_client_behind_for_the_stall_limit_is_let_go_and_the_others_keep_receiving() {
        let (mut clients, stats) = clients();
        let mut slow = join(&mut clients, 1);
        let mut fast = join(&mut clients, 1);
        let start = Instant::now();
        for (n, at) in [(1, 0), (2, 1), (3, 5), (4, 9)] {
            let now = start + Duration::from_secs(at);
            offer(&mut clients, "a", FrameKind::Position, n, now);
            assert_eq!(received(&mut fast), [format!("a{n}")]);
        }
        assert_eq!(clients.list.len(), 2, "behind for 8 s: still there");
        clients.flush_all(start + Duration::from_secs(1) + STALL_LIMIT);
        assert_eq!(clients.list.len(), 1);
        assert_eq!(slow.closed.try_recv(), Ok(TOO_SLOW));
        assert_eq!(
            received(&mut slow),
            ["a1"],
            "what it had queued stays readable"
        );
        assert_eq!(stats.dropped.load(Relaxed), 1);
        assert_eq!(stats.clients.load(Relaxed), 1);
        offer(&mut clients, "a", FrameKind::Position, 5, start);
        assert_eq!(received(&mut fast), ["a5"]);
    }

    #[test]
    fn a_client_that_catches_up_starts_a_new_clock() {
        let (mut clients, _) = clients();
        let mut sub = join(&mut clients, 1);
        let start = Instant::now();
        offer(&mut clients, "a", FrameKind::Position, 1, start);
        offer(&mut clients, "a", FrameKind::Position, 2, start);
        assert_eq!(received(&mut sub), ["a1"]);
        clients.flush_all(start + Duration::from_secs(5));
        assert_eq!(received(&mut sub), ["a2"]);
        offer(
            &mut clients,
            "a",
            FrameKind::Position,
            3,
            start + Duration::from_secs(6),
        );
        offer(
            &mut clients,
            "a",
            FrameKind::Position,
            4,
            start + Duration::from_secs(6),
        );
        clients.flush_all(start + Duration::from_secs(12));
        assert_eq!(clients.list.len(), 1, "behind since 6 s, not since 0 s");
    }

    #[test]
    fn a_backlog_past_its_bound_lets_the_client_go() {
        let (mut clients, stats) = clients();
        let mut sub = join(&mut clients, 1);
        let now = Instant::now();
        for n in 0..=MAX_BACKLOG + 1 {
            let device = DeviceId::new(&n.to_string());
            clients.fan_out(&device, FrameKind::Position, || "x".into(), now, &no_groups);
        }
        assert!(clients.is_empty());
        assert_eq!(sub.closed.try_recv(), Ok(OVERFLOW));
        assert_eq!(stats.dropped.load(Relaxed), 1);
    }

    #[test]
    fn filters_by_device_and_group_and_serializes_only_for_takers() {
        let (mut clients, _) = clients();
        let mut by_device = join(&mut clients, 16);
        let mut by_group = join(&mut clients, 16);
        by_device
            .filter
            .send_replace(Filter::Devices(["a".to_owned()].into()));
        by_group
            .filter
            .send_replace(Filter::Groups(["north".to_owned()].into()));
        let groups = |device: &str| (device == "b").then(|| "north".to_owned());
        let now = Instant::now();
        let mut serialized = 0;
        for device in DEVICES {
            let (device, kind, json) = frame(device, FrameKind::Position, 1);
            clients.fan_out(
                &device,
                kind,
                || {
                    serialized += 1;
                    json
                },
                now,
                &groups,
            );
        }
        assert_eq!(received(&mut by_device), ["a1"]);
        assert_eq!(received(&mut by_group), ["b1"]);
        assert_eq!(serialized, 2, "nobody wanted c");
    }

    #[test]
    fn a_client_that_left_is_forgotten() {
        let (mut clients, stats) = clients();
        let sub = join(&mut clients, 4);
        drop(sub);
        clients.flush_all(Instant::now());
        assert!(clients.is_empty());
        assert_eq!(stats.clients.load(Relaxed), 0);
        assert_eq!(
            stats.dropped.load(Relaxed),
            0,
            "leaving is not being dropped"
        );
    }

    #[tokio::test]
    async fn the_hub_streams_committed_positions_and_status_changes() {
        use drover_journal::Attachment;
        use drover_protocols::model::{DeviceMessage, Fix, Record};

        let dir = tempfile::tempdir().unwrap();
        let catalog = Arc::new(Catalog::open(dir.path()).unwrap());
        let mut feed = drover_journal::sink::Feed::default();
        let receiver = feed.subscribe(1 << 20);
        let observer = feed.observer();
        let (deltas_tx, deltas) = flume::unbounded();
        let stats = Arc::new(StreamStats::default());
        let shutdown = CancellationToken::new();
        let sources = Sources {
            feed: receiver,
            deltas,
            catalog,
        };
        let (hub, task) = start(sources, Arc::clone(&stats), shutdown.clone());
        let task = tokio::spawn(task);
        let mut sub = hub.join().unwrap();

        let message = |fix: Option<Fix>| {
            Arc::new(DeviceMessage {
                device: DeviceId::new("356307042441013"),
                protocol: "teltonika",
                record: Record {
                    time_ms: 1_764_133_200_123,
                    fix,
                    ..Record::default()
                },
            })
        };
        let fix = Fix {
            lat: 52.5,
            lon: 13.4,
            ..Fix::default()
        };
        // The hub may not have taken the join yet: offer until it has.
        let position = loop {
            let batch: Attachment = Arc::new(vec![message(None), message(Some(fix))]);
            observer(0..2, &batch, 100);
            let got = tokio::time::timeout(Duration::from_millis(50), sub.frames.recv()).await;
            if let Ok(Some(frame)) = got {
                break frame;
            }
        };
        let json: serde_json::Value = serde_json::from_str(&position.json).unwrap();
        assert_eq!(json["type"], "position");
        assert_eq!(json["device"], "356307042441013");
        assert_eq!(json["lat"], 52.5);
        assert_eq!(json["time"], "2025-11-26T05:00:00.123Z");

        deltas_tx
            .send(Delta::Presence {
                device: DeviceId::new("356307042441013"),
                online: false,
                time_ms: 1_764_133_200_123,
            })
            .unwrap();
        let status = loop {
            let frame = sub.frames.recv().await.unwrap();
            if frame.kind == FrameKind::Status {
                break frame;
            }
        };
        let json: serde_json::Value = serde_json::from_str(&status.json).unwrap();
        assert_eq!(json["type"], "status");
        assert_eq!(json["online"], false);

        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(sub.closed.await, Ok(GOING_AWAY));
        assert_eq!(stats.clients.load(Relaxed), 0);
    }
}
