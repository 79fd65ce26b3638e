//! Where the engine's analytics go once the tick produced them: closed trips
//! and every change of an alert are stored on the history backend, then
//! published on MQTT, `{prefix}/devices/{id}/trip` (opened trips too) and
//! `{prefix}/devices/{id}/alert`; alert changes then go to the notification
//! rules they match (`notifications.rs`). Attributes systems derived are
//! records of their own (protocol `analytics`): stored with the device's
//! records and published on `…/event`.
//!
//! The engine never waits for this: it queues its outputs
//! ([`drover_engine::outputs::DeltaQueue`], oldest dropped and counted). A
//! backend that is down makes only this task retry; a broker that is down
//! makes it wait. What it has handled is counted in [`Handled`], which the
//! snapshot writer waits for: a snapshot never covers a trip or an alert
//! that is not stored yet, so a crash before the store took it replays the
//! records that produce it again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use drover_engine::Delta;
use drover_engine::systems::alerts::AlertSummary;
use drover_engine::systems::trips::TripSummary;
use drover_history::{AlertEntry, TripEntry};
use drover_influxdb::InfluxClient;
use drover_mqtt::Publisher;
use drover_mqtt::payload::{PlacePayload, Rfc3339Ms, TripPayload};
use drover_protocols::model::DeviceMessage;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::notifications::Notifications;
use crate::{alerts, trips};

/// How long a stopping node keeps handling the outputs still queued.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Outputs handled together: one store commit for all of them.
const BATCH: usize = 256;
/// The first and the longest wait before storing again after a failure.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Where closed trips and alerts are kept: the history backend.
#[derive(Clone)]
pub enum AnalyticsStore {
    Embedded(Arc<drover_history::History>),
    Influx(Box<InfluxClient>),
}

impl AnalyticsStore {
    async fn write(
        &self,
        closed: &[&TripSummary],
        changed: &[&AlertSummary],
        derived: &[Arc<DeviceMessage>],
    ) -> Result<(), String> {
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
}

impl Outputs {
    /// Handles every output until `shutdown` (then what is still queued,
    /// for a moment) or the engine's end.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let first = tokio::select! {
                delta = self.queue.recv_async() => match delta {
                    Ok(delta) => delta,
                    Err(_) => return,
                },
                () = shutdown.cancelled() => break,
            };
            batch.push(first);
            batch.extend(self.queue.try_iter().take(BATCH - 1));
            if !self.handle(&mut batch, &shutdown).await {
                break;
            }
        }
        let drain = async {
            loop {
                batch.extend(self.queue.try_iter().take(BATCH));
                if batch.is_empty() || !self.handle(&mut batch, &CancellationToken::new()).await {
                    return;
                }
            }
        };
        if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
            warn!(
                "analytics outputs still queued at the stop were not all handled; the journal replays them"
            );
        }
    }

    /// Stores the batch's closed trips and alert changes (retrying until
    /// stored or `shutdown`), then publishes them. `false` when stopped
    /// first.
    async fn handle(&self, batch: &mut Vec<Delta>, shutdown: &CancellationToken) -> bool {
        let mut trips = Vec::new();
        let mut changed = Vec::new();
        let mut derived = Vec::new();
        for delta in batch.iter() {
            match delta {
                Delta::Trip(trip) => trips.push(&**trip),
                Delta::Alert(alert) => changed.push(&**alert),
                Delta::Derived(record) => derived.push(Arc::clone(record)),
                _ => {}
            }
        }
        let closed: Vec<&TripSummary> = trips.iter().copied().filter(|t| !t.open()).collect();
        let to_store = !closed.is_empty() || !changed.is_empty() || !derived.is_empty();
        if to_store
            && !self
                .store_until_stored(&closed, &changed, &derived, shutdown)
                .await
        {
            return false;
        }
        for record in &derived {
            if let Err(error) = self.publisher.record(record).await {
                warn!(%error, imei = %record.device, "derived attributes not published");
            }
        }
        for trip in trips {
            let id = trip.id();
            if let Err(error) = self.publisher.trip(&trip_payload(trip, &id)).await {
                warn!(%error, imei = %trip.device, trip = %id, "trip not published");
            }
        }
        for alert in changed {
            if let Err(error) = self.publisher.alert(&alerts::payload(alert)).await {
                warn!(%error, imei = %alert.device, alert = %alert.id, "alert not published");
            }
            self.notifications.alert(alert).await;
        }
        self.handled.add(batch.len());
        batch.clear();
        true
    }

    async fn store_until_stored(
        &self,
        closed: &[&TripSummary],
        changed: &[&AlertSummary],
        derived: &[Arc<DeviceMessage>],
        shutdown: &CancellationToken,
    ) -> bool {
        let mut wait = RETRY_FIRST;
        loop {
            let error = match self.store.write(closed, changed, derived).await {
                Ok(()) => return true,
                Err(error) => error,
            };
            warn!(%error, trips = closed.len(), alerts = changed.len(),
                retry_in_ms = wait.as_millis() as u64, "trips and alerts not stored; retrying");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => return false,
            }
            wait = (wait * 2).min(RETRY_MAX);
        }
    }
}

/// The JSON form of `trip` (docs/mqtt.md), whose id is `id`.
pub fn trip_payload<'a>(trip: &'a TripSummary, id: &'a str) -> TripPayload<'a> {
    let place = |p: drover_engine::systems::trips::Place| PlacePayload {
        time: Rfc3339Ms(p.time_ms),
        lat: p.lat,
        lon: p.lon,
    };
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
