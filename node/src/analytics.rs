//! Where the engine's analytics go once the tick produced them: closed trips
//! and every change of an alert are stored on the history backend, then
//! published on MQTT, `{prefix}/devices/{id}/trip` (opened trips too) and
//! `{prefix}/devices/{id}/alert`; alert changes then go to the notification
//! rules they match (`notifications.rs`). Attributes systems derived are
//! records of their own (protocol `analytics`): stored with the device's
//! records and published on `…/event`.
//!
//! The engine never waits for this: it queues its outputs
//! ([`drover_engine::outputs::DeltaQueue`], oldest dropped and counted).
//! Outputs are published as they come; a backend that is down makes only
//! their storing wait (retried in order), a broker that is down makes this
//! task wait. What it has handled is counted in [`Handled`], which the
//! snapshot writer waits for: a snapshot never covers a trip or an alert
//! that is not stored yet, so a crash before the store took it replays the
//! records that produce it again.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use drover_api::history::History;
use drover_engine::AlertDesk;
use drover_engine::Delta;
use drover_engine::systems::alerts::{AlertOp, AlertState, AlertSummary};
use drover_engine::systems::jobs::JobDue;
use drover_engine::systems::stops::StopSummary;
use drover_engine::systems::trips::{Place, TripSummary};
use drover_history::{AlertEntry, TripEntry};
use drover_influxdb::InfluxClient;
use drover_mqtt::Publisher;
use drover_mqtt::payload::{PlacePayload, Rfc3339Ms, StopPayload, TripPayload};
use drover_protocols::model::DeviceMessage;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::jobs::JobQueue;
use crate::notifications::Notifications;
use crate::{alerts, trips};

/// How long a stopping node keeps handling the outputs still queued.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Outputs handled together: one store commit for all of them.
const BATCH: usize = 256;
/// The first and the longest wait before storing again after a failure.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long an alert raised again may wait for its stored form.
const STORED_LOOKUP: Duration = Duration::from_secs(2);

/// Where closed trips and alerts are kept: the history backend.
#[derive(Clone)]
pub enum AnalyticsStore {
    Embedded(Arc<drover_history::History>),
    Influx(Box<InfluxClient>),
}

impl AnalyticsStore {
    async fn write(&self, batch: &ToStore) -> Result<(), String> {
        let ToStore {
            closed,
            alerts: changed,
            derived,
            ..
        } = batch;
        match self {
            AnalyticsStore::Embedded(store) => {
                let store = Arc::clone(store);
                let derived = derived.to_vec();
                let trips: Vec<(String, i64, Vec<u8>)> = closed
                    .iter()
                    .map(|t| {
                        (
                            t.device.as_str().to_owned(),
                            t.start.time_ms,
                            trips::encode(t),
                        )
                    })
                    .collect();
                let alerts: Vec<(String, i64, Vec<u8>)> = changed
                    .iter()
                    .map(|a| (a.id.clone(), a.opened_ms, alerts::encode(a)))
                    .collect();
                tokio::task::spawn_blocking(move || {
                    write_embedded(&store, &trips, &alerts)?;
                    store.write(&derived)
                })
                .await
                .map_err(|panic| format!("storing analytics panicked: {panic}"))?
                .map_err(|error| error.to_string())
            }
            AnalyticsStore::Influx(client) => {
                let trip_fields: Vec<_> = closed.iter().map(|t| trips::fields(t)).collect();
                let alert_tags: Vec<_> = changed.iter().map(|a| alerts::tags(a)).collect();
                let alert_fields: Vec<_> = changed.iter().map(|a| alerts::fields(a)).collect();
                let mut points: Vec<_> = closed
                    .iter()
                    .zip(&trip_fields)
                    .map(|(t, f)| trips::point(t, f))
                    .collect();
                for ((alert, tags), fields) in changed.iter().zip(&alert_tags).zip(&alert_fields) {
                    points.push(alerts::point(alert, tags, fields));
                }
                client
                    .write_points(&points)
                    .await
                    .map_err(|error| error.to_string())?;
                client
                    .write(derived)
                    .await
                    .map(drop)
                    .map_err(|error| error.to_string())
            }
        }
    }
}

/// Trips as (device, start, encoding), alerts as (id, opened, encoding).
type Encoded = [(String, i64, Vec<u8>)];

fn write_embedded(
    store: &drover_history::History,
    trips: &Encoded,
    alerts: &Encoded,
) -> Result<(), drover_history::HistoryError> {
    if !trips.is_empty() {
        let entries: Vec<TripEntry<'_>> = trips
            .iter()
            .map(|(device, start_ms, encoded)| TripEntry {
                device,
                start_ms: *start_ms,
                encoded,
            })
            .collect();
        store.write_trips(&entries)?;
    }
    if !alerts.is_empty() {
        let entries: Vec<AlertEntry<'_>> = alerts
            .iter()
            .map(|(id, opened_ms, encoded)| AlertEntry {
                id,
                opened_ms: *opened_ms,
                encoded,
            })
            .collect();
        store.write_alerts(&entries)?;
    }
    Ok(())
}

/// How many outputs of the engine's analytics queue this task has handled
/// (stored what needs storing; published or given up publishing).
#[derive(Debug, Default, Clone)]
pub struct Handled(pub Arc<AtomicU64>);

impl Handled {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    fn add(&self, n: usize) {
        self.0.fetch_add(n as u64, Ordering::Release);
    }
}

/// The analytics outputs' consumer.
pub struct Outputs {
    pub publisher: Publisher,
    pub store: AnalyticsStore,
    pub queue: flume::Receiver<Delta>,
    pub handled: Handled,
    pub notifications: Notifications,
    /// Where due jobs go once what came before them is stored.
    pub jobs: JobQueue,
    /// What is stored of alerts, and the engine's desk: an alert raised
    /// again after a restart that an operator had already handled is put
    /// back as they left it.
    pub history: Arc<dyn History>,
    pub desk: AlertDesk,
}

/// What a batch of outputs leaves to store, kept until the backend took it.
struct ToStore {
    closed: Vec<TripSummary>,
    alerts: Vec<AlertSummary>,
    derived: Vec<Arc<DeviceMessage>>,
    /// Jobs that came due, run once the rest is stored.
    jobs: Vec<JobDue>,
    /// The engine outputs it stands for, counted as handled once stored.
    outputs: usize,
}

impl ToStore {
    fn is_empty(&self) -> bool {
        self.closed.is_empty() && self.alerts.is_empty() && self.derived.is_empty()
    }
}

/// Batches waiting for the backend at most; then the queue is left to fill
/// (and drop its oldest, counted) until the backend is back.
const MAX_PENDING: usize = 1_024;

/// What is waiting for the backend, and when to try again.
struct Pending {
    batches: VecDeque<ToStore>,
    wait: Duration,
    retry_at: Option<tokio::time::Instant>,
}

impl Outputs {
    /// Handles every output until `shutdown` (then what is still queued,
    /// for a moment) or the engine's end. Outputs are published as they
    /// come; storing them is retried in order while the backend is down,
    /// without holding back what follows (a system alert about the backend
    /// must get out).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut pending = Pending {
            batches: VecDeque::new(),
            wait: RETRY_FIRST,
            retry_at: None,
        };
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let room = pending.batches.len() < MAX_PENDING;
            let retry = async {
                match pending.retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                delta = self.queue.recv_async(), if room => match delta {
                    Ok(delta) => {
                        batch.push(delta);
                        batch.extend(self.queue.try_iter().take(BATCH - 1));
                        let to_store = self.publish(&mut batch).await;
                        pending.batches.push_back(to_store);
                    }
                    Err(_) => break,
                },
                () = retry => pending.retry_at = None,
                () = shutdown.cancelled() => break,
            }
            self.store(&mut pending).await;
        }
        let drain = async {
            loop {
                batch.extend(self.queue.try_iter().take(BATCH));
                if batch.is_empty() {
                    break;
                }
                let to_store = self.publish(&mut batch).await;
                pending.batches.push_back(to_store);
            }
            while !pending.batches.is_empty() {
                pending.retry_at = None;
                self.store(&mut pending).await;
                tokio::time::sleep(RETRY_FIRST).await;
            }
        };
        if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
            warn!("analytics outputs at the stop were not all stored; the journal replays them");
        }
    }

    /// Publishes the batch's trips, alert changes (then their
    /// notifications) and derived attributes, and returns what to store.
    async fn publish(&self, batch: &mut Vec<Delta>) -> ToStore {
        let mut to_store = ToStore {
            closed: Vec::new(),
            alerts: Vec::new(),
            derived: Vec::new(),
            jobs: Vec::new(),
            outputs: batch.len(),
        };
        for delta in batch.drain(..) {
            match delta {
                Delta::Trip(trip) => {
                    let id = trip.id();
                    if let Err(error) = self.publisher.trip(&trip_payload(&trip, &id)).await {
                        warn!(%error, imei = %trip.device, trip = %id, "trip not published");
                    }
                    if !trip.open() {
                        to_store.closed.push(*trip);
                    }
                }
                Delta::Stop(stop) => {
                    let id = stop.id();
                    if let Err(error) = self.publisher.stop(&stop_payload(&stop, &id)).await {
                        warn!(%error, imei = %stop.device, stop = %id, "stop not published");
                    }
                }
                Delta::Alert(alert) => {
                    if let Some((op, time_ms)) = self.handled_before(&alert).await {
                        self.apply_again(alert.id, op, time_ms);
                        continue;
                    }
                    if let Err(error) = self.publisher.alert(&alerts::payload(&alert)).await {
                        warn!(%error, imei = %alert.device, alert = %alert.id, "alert not published");
                    }
                    self.notifications.alert(&alert).await;
                    to_store.alerts.push(*alert);
                }
                Delta::Derived(record) => {
                    if let Err(error) = self.publisher.record(&record).await {
                        warn!(%error, imei = %record.device, "derived attributes not published");
                    }
                    to_store.derived.push(record);
                }
                Delta::JobDue(job) => to_store.jobs.push(*job),
                _ => {}
            }
        }
        to_store
    }

    /// The action an operator took `alert` further with, if the store has
    /// one (the alert is open again only because the engine rebuilt it
    /// from the journal after a restart).
    async fn handled_before(&self, alert: &AlertSummary) -> Option<(AlertOp, i64)> {
        if alert.state == AlertState::Closed {
            return None;
        }
        // Bounded: a backend that hangs must not hold back the alert about it.
        let lookup = tokio::time::timeout(STORED_LOOKUP, self.history.alert(&alert.id));
        match lookup.await {
            Ok(Ok(Some(stored))) => alerts::catch_up(alert.state, &stored),
            Ok(Ok(None)) => None,
            Ok(Err(error)) => {
                warn!(%error, alert = %alert.id, "alert not checked against the store");
                None
            }
            Err(_) => {
                warn!(alert = %alert.id, "alert not checked against the store in time");
                None
            }
        }
    }

    /// Hands the engine an operator's action on alert `id` again, at its
    /// stored time; its outcome comes back as an output of its own.
    fn apply_again(&self, id: String, op: AlertOp, time_ms: i64) {
        tracing::info!(alert = %id, ?op, "an alert raised again was already handled; applying that again");
        let desk = self.desk.clone();
        tokio::spawn(async move {
            if let Err(error) = desk.act(&id, op, time_ms).await {
                warn!(%error, alert = %id, "an operator's action could not be applied again");
            }
        });
    }

    /// Stores the waiting batches in order until one fails; then waits
    /// (doubling) before the next try.
    async fn store(&self, pending: &mut Pending) {
        if pending.retry_at.is_some() {
            return;
        }
        while let Some(front) = pending.batches.front() {
            if !front.is_empty()
                && let Err(error) = self.store.write(front).await
            {
                warn!(%error, trips = front.closed.len(), alerts = front.alerts.len(),
                    waiting = pending.batches.len(), retry_in_ms = pending.wait.as_millis() as u64,
                    "analytics not stored; retrying");
                pending.retry_at = Some(tokio::time::Instant::now() + pending.wait);
                pending.wait = (pending.wait * 2).min(RETRY_MAX);
                return;
            }
            self.handled.add(front.outputs);
            if let Some(stored) = pending.batches.pop_front() {
                stored.jobs.into_iter().for_each(|job| self.jobs.hand(job));
            }
            pending.wait = RETRY_FIRST;
        }
    }
}

/// The JSON form of `stop` (docs/mqtt.md), whose id is `id`.
pub fn stop_payload<'a>(stop: &'a StopSummary, id: &'a str) -> StopPayload<'a> {
    StopPayload {
        id,
        device: stop.device.as_str(),
        start: place(stop.start),
        end: stop.end.map(place),
        open: stop.open(),
        duration_s: stop
            .end
            .map(|end| (end.time_ms - stop.start.time_ms) as f64 / 1000.0),
    }
}

fn place(p: Place) -> PlacePayload {
    PlacePayload {
        time: Rfc3339Ms(p.time_ms),
        lat: p.lat,
        lon: p.lon,
    }
}

/// The JSON form of `trip` (docs/mqtt.md), whose id is `id`.
pub fn trip_payload<'a>(trip: &'a TripSummary, id: &'a str) -> TripPayload<'a> {
    TripPayload {
        id,
        device: trip.device.as_str(),
        start: place(trip.start),
        end: trip.end.map(place),
        open: trip.open(),
        distance_m: trip.distance_m,
        duration_s: trip.duration_ms() as f64 / 1000.0,
        max_speed_kmh: trip.max_speed_kmh,
        avg_speed_kmh: trip.avg_speed_kmh(),
        idle_s: trip.idle_ms as f64 / 1000.0,
        fuel_used_pct: trip.fuel_used_pct(),
    }
}
