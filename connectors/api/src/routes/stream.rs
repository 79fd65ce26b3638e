//! `GET /api/v1/stream`: the fleet live over a WebSocket.
//!
//! The handshake is checked like any request — a token or API key (in
//! `Authorization` or, for browsers, which cannot set headers on a
//! WebSocket, `?token=`) and the page's `Origin` — and refused with the
//! API's JSON errors before anything is upgraded. Then the client gets a
//! snapshot of every device and the node hub's frames (positions, status
//! changes), narrowed by what it subscribed to. The hub never waits for a
//! connection: a slow one is coalesced and then let go by the hub, and this
//! task only writes what the hub queued for it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use axum::response::Response;
use axum::routing::get;
use drover_catalog::Device;
use drover_engine::DeviceState;
use drover_protocols::model::DeviceId;
use futures_util::SinkExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::IntoParams;

use crate::Api;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Params, bearer};
use crate::model::DeviceView;
use crate::stream::{Close, Detail, Filter, Frame, JoinError, Subscription};

/// Most device ids or groups one subscription may name.
const MAX_SUBSCRIBED: usize = 10_000;
/// Largest message a client may send: room for a subscription to
/// [`MAX_SUBSCRIBED`] IMEIs (18 bytes each in a JSON list), no more.
const MAX_CLIENT_MESSAGE: usize = 256 * 1024;
/// How long a closing handshake may take: the client being let go may be
/// the one that stopped reading.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Most queued frames written with one flush.
const MAX_BATCH: usize = 64;
/// Longest gathering period a client may ask for with `batch_ms`.
const MAX_BATCH_MS: u64 = 1_000;
/// Most frames in one `batch` message: a client that asks for a long
/// period still gets bounded messages, and this task holds no more than
/// this many frames the hub could otherwise coalesce.
const MAX_BATCHED: usize = 4_096;
/// Close code when the node stops or the hub ended the stream.
const GOING_AWAY: Close = Close {
    code: 1001,
    reason: "the server is stopping",
};
/// Close code for a client that answered nothing, not even pings.
const UNRESPONSIVE: Close = Close {
    code: 1001,
    reason: "no answer to pings",
};

pub fn routes() -> Router<Api> {
    Router::new().route("/api/v1/stream", get(stream))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct StreamParams {
    /// A token or API key, for clients that cannot set `Authorization` on
    /// a WebSocket (browsers).
    token: Option<String>,
    /// Comma-separated device ids: subscribe to these from the start, so the
    /// first snapshot and frames are theirs alone, not the whole fleet's.
    devices: Option<String>,
    /// Comma-separated groups, as `devices` (one of the two at most).
    groups: Option<String>,
    /// Gather the messages that come within this many milliseconds (1 to
    /// 1000) into one `batch` message; each goes alone when absent or 0.
    batch_ms: Option<u64>,
    /// How much of each device snapshots carry: `full` (the default) or
    /// `summary`.
    #[param(inline)]
    snapshot: Option<Detail>,
}

impl StreamParams {
    /// The subscription given with the handshake; the whole fleet if none.
    fn filter(&self) -> Result<Filter, ApiError> {
        let list = |text: &str| -> Result<BTreeSet<String>, ApiError> {
            let ids: BTreeSet<String> = text
                .split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .collect();
            check_subscribed(ids.len()).map_err(ApiError::BadRequest)?;
            Ok(ids)
        };
        match (&self.devices, &self.groups) {
            (None, None) => Ok(Filter::All),
            (Some(devices), None) => Ok(Filter::Devices(list(devices)?)),
            (None, Some(groups)) => Ok(Filter::Groups(list(groups)?)),
            (Some(_), Some(_)) => Err(ApiError::BadRequest(
                "subscribe by devices or by groups, not both".to_owned(),
            )),
        }
    }

    /// The gathering period asked for; `None` for one message per frame.
    fn batch(&self) -> Result<Option<Duration>, ApiError> {
        match self.batch_ms {
            None | Some(0) => Ok(None),
            Some(ms @ 1..=MAX_BATCH_MS) => Ok(Some(Duration::from_millis(ms))),
            Some(ms) => Err(ApiError::BadRequest(format!(
                "batch_ms is 0 to {MAX_BATCH_MS}, not {ms}"
            ))),
        }
    }
}

/// The fleet live: a WebSocket of a snapshot, then positions and status
/// changes (see docs/api.md, "Live stream").
#[utoipa::path(get, path = "/api/v1/stream", tag = "devices", params(StreamParams),
    responses((status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn stream(
    State(api): State<Api>,
    headers: HeaderMap,
    Params(params): Params<StreamParams>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    check_origin(&headers, &api.limits.cors_origins)?;
    let filter = params.filter()?;
    let batch = params.batch()?.map(Batch::new);
    let detail = params.snapshot.unwrap_or_default();
    let credential = bearer(&headers)?
        .map(str::to_owned)
        .or(params.token.clone())
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "this needs Authorization: Bearer <token or API key>, or ?token=".to_owned(),
            )
        })?;
    let caller = api.auth.authenticate(&credential)?;
    let upgrade = upgrade.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let joined = Instant::now();
    let subscription = api.stream.join().map_err(|error| match error {
        JoinError::Full(_) => ApiError::Busy(error.to_string()),
        JoinError::Stopped => ApiError::Unavailable(error.to_string()),
    })?;
    subscription.filter.send_replace(filter.clone());
    tracing::info!(user = %caller.name, "live stream client connected");
    Ok(upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            let pings = api.limits.stream_ping.map(|every| {
                let mut pings =
                    tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                (pings, every)
            });
            Connection {
                socket,
                subscription,
                joined,
                filter,
                detail,
                batch,
                api,
                heard: Instant::now(),
                pings,
            }
            .serve()
            .await;
            tracing::info!(user = %caller.name, "live stream client left");
        }))
}

/// 403 for a browser page from an origin other than this server's own or
/// `http.cors_origins`: without it any site a user visits could open the
/// stream with a token it found. No `Origin` is a client that is not a
/// browser, which a token alone admits.
fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), ApiError> {
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let own = origin
        .split_once("://")
        .is_some_and(|(_, authority)| host.is_some_and(|h| authority.eq_ignore_ascii_case(h)));
    let listed = allowed
        .iter()
        .any(|a| a.trim().trim_end_matches('/').eq_ignore_ascii_case(origin));
    if own || listed {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "origin {origin:?} may not open the stream: it is neither this server nor in http.cors_origins"
        )))
    }
}

/// One client's connection.
struct Connection {
    socket: WebSocket,
    subscription: Subscription,
    /// When it joined the hub: its first snapshot must be built after.
    joined: Instant,
    /// The client's own copy of its filter: frames the hub queued before a
    /// new subscription are checked again, so none slips through after it.
    filter: Filter,
    /// How much of each device its snapshots carry.
    detail: Detail,
    /// Frames gathered for the next `batch` message, if it asked for them.
    batch: Option<Batch>,
    api: Api,
    /// When the client last sent anything (a pong among them).
    heard: Instant,
    /// The ping timer and its period, unless pings are off.
    pings: Option<(tokio::time::Interval, Duration)>,
}

/// How a connection ended, for nothing but leaving the loop.
struct Ended;

/// Frames gathered for one `batch` message: one WebSocket message (one
/// `message` event in a browser, one parse) per period instead of one per
/// position.
struct Batch {
    every: Duration,
    frames: Vec<Utf8Bytes>,
    /// When the gathered frames go out: a period after the first of them.
    due: Option<tokio::time::Instant>,
}

impl Batch {
    fn new(every: Duration) -> Self {
        Batch {
            every,
            frames: Vec::new(),
            due: None,
        }
    }

    fn push(&mut self, json: Utf8Bytes) {
        self.due
            .get_or_insert_with(|| tokio::time::Instant::now() + self.every);
        self.frames.push(json);
    }

    fn full(&self) -> bool {
        self.frames.len() >= MAX_BATCHED
    }

    /// `{"type": "batch", "messages": [...]}` of the gathered frames, each
    /// exactly as it would have gone alone; `None` if there are none.
    fn take(&mut self) -> Option<Message> {
        self.due = None;
        if self.frames.is_empty() {
            return None;
        }
        let size = self.frames.iter().map(|f| f.len() + 1).sum::<usize>();
        let mut json = String::with_capacity(size + 32);
        json.push_str(r#"{"type":"batch","messages":["#);
        for (i, frame) in self.frames.drain(..).enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(frame.as_str());
        }
        json.push_str("]}");
        Some(Message::Text(json.into()))
    }
}

/// When the gathered frames are due; never, with none gathered.
async fn batch_due(batch: &Option<Batch>) {
    match batch.as_ref().and_then(|b| b.due) {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

impl Connection {
    async fn serve(mut self) {
        if self.snapshot(self.joined).await.is_err() {
            return;
        }
        while self.step().await.is_ok() {}
    }

    /// Waits for the next thing to do and does it.
    async fn step(&mut self) -> Result<(), Ended> {
        tokio::select! {
            biased;
            close = &mut self.subscription.closed => {
                self.close(close.unwrap_or(GOING_AWAY)).await;
                Err(Ended)
            }
            incoming = self.socket.recv() => {
                self.heard = Instant::now();
                match incoming {
                    Some(Ok(Message::Text(text))) => self.answer(&text).await,
                    Some(Ok(Message::Binary(_))) => self.error("send JSON text messages").await,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
                    Some(Ok(Message::Close(_)) | Err(_)) | None => Err(Ended),
                }
            }
            () = next_ping(&mut self.pings) => self.keep_alive().await,
            () = batch_due(&self.batch) => self.flush_batch().await,
            frame = self.subscription.frames.recv() => match frame {
                Some(frame) => self.forward(frame).await,
                None => {
                    self.close(GOING_AWAY).await;
                    Err(Ended)
                }
            },
        }
    }

    /// Writes `first` and what else the hub has queued with one flush: a
    /// write per frame would cost a system call per position per client.
    async fn forward(&mut self, first: Frame) -> Result<(), Ended> {
        if self.batch.is_some() {
            return self.gather(first).await;
        }
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(frame) = next.take() {
            if self.wants(&frame) {
                batch.push(Message::Text(frame.json));
            }
            if batch.len() < MAX_BATCH {
                next = self.subscription.frames.try_recv().ok();
            }
        }
        self.send_all(batch).await
    }

    /// Adds `first` and what else the hub has queued to the next `batch`
    /// message, sending it once full.
    async fn gather(&mut self, first: Frame) -> Result<(), Ended> {
        let mut next = Some(first);
        while let Some(frame) = next.take() {
            if self.wants(&frame)
                && let Some(batch) = self.batch.as_mut()
            {
                batch.push(frame.json);
                if batch.full() {
                    return self.flush_batch().await;
                }
            }
            next = self.subscription.frames.try_recv().ok();
        }
        Ok(())
    }

    async fn flush_batch(&mut self) -> Result<(), Ended> {
        match self.batch.as_mut().and_then(Batch::take) {
            Some(message) => self.send(message).await,
            None => Ok(()),
        }
    }

    fn wants(&self, frame: &Frame) -> bool {
        let catalog = &self.api.catalog;
        self.filter.admits(frame.device.as_str(), || {
            catalog.devices.get(frame.device.as_str())?.group
        })
    }

    /// Answers a client message: a subscription gets a snapshot of what it
    /// selects; anything else an error, and the connection stays.
    async fn answer(&mut self, text: &str) -> Result<(), Ended> {
        match parse_subscription(text) {
            Ok(filter) => {
                // Hub first: what it queues from now on already fits.
                let since = Instant::now();
                self.subscription.filter.send_replace(filter.clone());
                self.filter = filter;
                // What was gathered came before the new snapshot: it goes
                // first, as it would have without batching.
                self.flush_batch().await?;
                self.snapshot(since).await
            }
            Err(message) => self.error(&message).await,
        }
    }

    /// Sends what the filter selects as it is now, built after `since`
    /// (when the filter took effect at the hub).
    async fn snapshot(&mut self, since: Instant) -> Result<(), Ended> {
        let (api, filter, detail) = (self.api.clone(), self.filter.clone(), self.detail);
        // Thousands of devices take a while to serialize: off the runtime,
        // and once for every client that asks for the whole fleet together.
        let json = if filter == Filter::All {
            let snapshots = Arc::clone(&self.api.snapshots);
            snapshots
                .after(since, detail, move || snapshot(&api, &filter, detail))
                .await
                .ok_or(Ended)?
        } else {
            tokio::task::spawn_blocking(move || snapshot(&api, &filter, detail))
                .await
                .map_err(|_| Ended)?
        };
        self.send(Message::Text(json)).await
    }

    async fn error(&mut self, message: &str) -> Result<(), Ended> {
        let json = serde_json::json!({ "type": "error", "message": message }).to_string();
        self.send(Message::Text(json.into())).await
    }

    async fn send(&mut self, message: Message) -> Result<(), Ended> {
        self.send_all(vec![message]).await
    }

    /// Writes `messages` unless the hub lets the client go meanwhile: a
    /// client that stopped reading blocks the write, not the hub's verdict.
    async fn send_all(&mut self, messages: Vec<Message>) -> Result<(), Ended> {
        if messages.is_empty() {
            return Ok(());
        }
        let count = messages.len() as u64;
        let socket = &mut self.socket;
        let write = async move {
            for message in messages {
                socket.feed(message).await?;
            }
            socket.flush().await
        };
        tokio::select! {
            biased;
            close = &mut self.subscription.closed => {
                self.close(close.unwrap_or(GOING_AWAY)).await;
                Err(Ended)
            }
            sent = write => {
                sent.map_err(|_| Ended)?;
                self.api.stream.stats().sent.fetch_add(count, Relaxed);
                Ok(())
            }
        }
    }

    /// Pings the client, or closes it if it answered nothing for two
    /// periods: a peer that vanished without closing (a phone that lost
    /// its network) would otherwise hold its place among the hub's
    /// clients for as long as nothing is sent to it.
    async fn keep_alive(&mut self) -> Result<(), Ended> {
        let Some((_, every)) = self.pings else {
            return Ok(());
        };
        if self.heard.elapsed() >= every * 2 {
            self.api.stream.stats().unresponsive.fetch_add(1, Relaxed);
            self.close(UNRESPONSIVE).await;
            return Err(Ended);
        }
        // A client too slow to take the ping is the hub's to judge.
        let ping = self.socket.send(Message::Ping(Default::default()));
        let _ = tokio::time::timeout(CLOSE_WAIT, ping).await;
        Ok(())
    }

    async fn close(&mut self, close: Close) {
        let frame = CloseFrame {
            code: close.code,
            reason: Utf8Bytes::from_static(close.reason),
        };
        let _ =
            tokio::time::timeout(CLOSE_WAIT, self.socket.send(Message::Close(Some(frame)))).await;
    }
}

/// The next ping tick; never, with pings off.
async fn next_ping(pings: &mut Option<(tokio::time::Interval, Duration)>) {
    match pings {
        Some((timer, _)) => {
            timer.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// `{"subscribe": "all"}`, `{"subscribe": {"devices": [...]}}` or
/// `{"subscribe": {"groups": [...]}}`; the error says what was wrong.
fn parse_subscription(text: &str) -> Result<Filter, String> {
    let usage = r#"send {"subscribe":"all"}, {"subscribe":{"devices":[ids]}} or {"subscribe":{"groups":[ids]}}"#;
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON ({e}); {usage}"))?;
    let Value::Object(message) = value else {
        return Err(usage.to_owned());
    };
    let (Some(subscribe), 1) = (message.get("subscribe"), message.len()) else {
        return Err(usage.to_owned());
    };
    match subscribe {
        Value::String(all) if all == "all" => Ok(Filter::All),
        Value::Object(by) if by.len() == 1 => match by.iter().next() {
            Some((key, list)) if key == "devices" => Ok(Filter::Devices(ids(list, usage)?)),
            Some((key, list)) if key == "groups" => Ok(Filter::Groups(ids(list, usage)?)),
            _ => Err(usage.to_owned()),
        },
        _ => Err(usage.to_owned()),
    }
}

/// An error unless `count` ids fit in one subscription.
fn check_subscribed(count: usize) -> Result<(), String> {
    if count > MAX_SUBSCRIBED {
        return Err(format!(
            "at most {MAX_SUBSCRIBED} ids in one subscription, not {count}"
        ));
    }
    Ok(())
}

fn ids(list: &Value, usage: &str) -> Result<BTreeSet<String>, String> {
    let Value::Array(items) = list else {
        return Err(usage.to_owned());
    };
    check_subscribed(items.len())?;
    items
        .iter()
        .map(|item| item.as_str().map(str::to_owned))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("ids are strings; {usage}"))
}

/// `{"type": "snapshot", "devices": [...]}`: every device the filter
/// admits, registered or reporting, in id order, as `GET
/// /api/v1/devices/{id}` shows each.
fn snapshot(api: &Api, filter: &Filter, detail: Detail) -> Utf8Bytes {
    let fleet = api.live.load();
    if let Filter::Devices(ids) = filter {
        // A hundred clients that each want a hundred devices must not each
        // walk the whole fleet: look the chosen ones up.
        let registered: Vec<_> = ids.iter().map(|id| api.catalog.devices.get(id)).collect();
        let devices = ids
            .iter()
            .zip(&registered)
            .filter_map(|(id, registration)| {
                let state = fleet.get(&DeviceId::new(id));
                let view = DeviceView::new(id, registration.as_ref());
                match (registration, state) {
                    (None, None) => None,
                    (_, Some(state)) => Some(view.with_live(Arc::clone(state))),
                    (Some(_), None) => Some(view),
                }
            })
            .collect();
        return to_snapshot(devices, detail);
    }
    let registered = api.catalog.devices.list();
    let mut known: BTreeMap<&str, (Option<&Device>, Option<&Arc<DeviceState>>)> = BTreeMap::new();
    for device in &registered {
        known.entry(device.id.as_str()).or_default().0 = Some(device);
    }
    for state in fleet.iter() {
        known.entry(state.device.as_str()).or_default().1 = Some(state);
    }
    let devices = known
        .into_iter()
        .filter(|(id, (registration, _))| {
            filter.admits(id, || registration.and_then(|d| d.group.clone()))
        })
        .map(|(id, (registration, state))| {
            let view = DeviceView::new(id, registration);
            match state {
                Some(state) => view.with_live(Arc::clone(state)),
                None => view,
            }
        })
        .collect();
    to_snapshot(devices, detail)
}

fn to_snapshot(devices: Vec<DeviceView<'_>>, detail: Detail) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Snapshot<D> {
        #[serde(rename = "type")]
        kind: &'static str,
        devices: Vec<D>,
    }
    let json = match detail {
        Detail::Full => serde_json::to_string(&Snapshot {
            kind: "snapshot",
            devices,
        }),
        Detail::Summary => serde_json::to_string(&Snapshot {
            kind: "snapshot",
            devices: devices.iter().map(Summary::of).collect(),
        }),
    };
    // Plain structs of strings and numbers: serializing into memory cannot fail.
    json.unwrap_or_default().into()
}

/// A snapshot entry in `summary` detail: the fields of [`DeviceView`] a
/// map and a list show, in the same names, so a client reads both alike.
#[derive(Serialize)]
struct Summary<'v> {
    id: &'v str,
    registered: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'v str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'v str>,
    disabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    speed_limit_kmh: Option<f64>,
    status: crate::model::DeviceStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_seen: Option<&'v str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<SummaryState<'v>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<&'v crate::positions::Position<'v>>,
}

#[derive(Serialize)]
struct SummaryState<'v> {
    protocol: &'v str,
    last_fix: &'v Option<drover_engine::components::LastFix>,
    kinematics: &'v drover_engine::components::Kinematics,
}

impl<'v> Summary<'v> {
    fn of(view: &'v DeviceView<'v>) -> Self {
        Summary {
            id: &view.id,
            registered: view.registered,
            name: view.name.as_deref(),
            group: view.group.as_deref(),
            disabled: view.disabled,
            speed_limit_kmh: view.speed_limit_kmh,
            status: view.status,
            last_seen: view.last_seen.as_deref(),
            state: view.state.as_deref().map(|s| SummaryState {
                protocol: s.protocol,
                last_fix: &s.last_fix,
                kinematics: &s.kinematics,
            }),
            position: view.position.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: Option<&'static str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("drover.example:8080"));
        if let Some(origin) = origin {
            headers.insert(ORIGIN, HeaderValue::from_static(origin));
        }
        headers
    }

    fn params(devices: Option<&str>, groups: Option<&str>) -> StreamParams {
        StreamParams {
            token: None,
            devices: devices.map(str::to_owned),
            groups: groups.map(str::to_owned),
            batch_ms: None,
            snapshot: None,
        }
    }

    #[test]
    fn a_subscription_with_the_handshake_is_a_filter() {
        let set = |ids: &[&str]| ids.iter().map(|id| (*id).to_owned()).collect();
        assert_eq!(params(None, None).filter().ok(), Some(Filter::All));
        assert_eq!(
            params(Some("a, b,,a"), None).filter().ok(),
            Some(Filter::Devices(set(&["a", "b"])))
        );
        assert_eq!(
            params(None, Some("north")).filter().ok(),
            Some(Filter::Groups(set(&["north"])))
        );
        assert!(matches!(
            params(Some("a"), Some("north")).filter(),
            Err(ApiError::BadRequest(_))
        ));
        let too_many = (0..=MAX_SUBSCRIBED)
            .map(|i| i.to_string())
            .collect::<Vec<_>>();
        assert!(matches!(
            params(Some(&too_many.join(",")), None).filter(),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn an_origin_must_be_the_server_itself_or_listed() {
        let listed = ["https://ops.example".to_owned()];
        assert!(check_origin(&headers(None), &[]).is_ok());
        assert!(check_origin(&headers(Some("http://drover.example:8080")), &[]).is_ok());
        assert!(check_origin(&headers(Some("https://ops.example")), &listed).is_ok());
        for foreign in ["https://evil.example", "null", "http://drover.example:9090"] {
            assert!(
                matches!(
                    check_origin(&headers(Some(foreign)), &listed),
                    Err(ApiError::Forbidden(_))
                ),
                "{foreign}"
            );
        }
    }

    #[test]
    fn subscriptions_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse_subscription(r#"{"subscribe":"all"}"#),
            Ok(Filter::All)
        );
        assert_eq!(
            parse_subscription(r#"{"subscribe":{"devices":["a","b"]}}"#),
            Ok(Filter::Devices(["a".into(), "b".into()].into()))
        );
        assert_eq!(
            parse_subscription(r#"{"subscribe":{"groups":["north"]}}"#),
            Ok(Filter::Groups(["north".into()].into()))
        );
        for bad in [
            "subscribe",
            "[]",
            r#"{"subscribe":"some"}"#,
            r#"{"subscribe":{"devices":[1]}}"#,
            r#"{"subscribe":{"devices":["a"],"groups":["b"]}}"#,
            r#"{"subscribe":"all","extra":1}"#,
        ] {
            let error = parse_subscription(bad).expect_err(bad);
            assert!(error.contains("subscribe"), "{bad}: {error}");
        }
    }
}
