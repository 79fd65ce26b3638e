//! Where the engine's analytics go once the tick produced them: trips that
//! opened or closed are published on MQTT, `{prefix}/devices/{id}/trip`.
//!
//! The engine never waits for this: it queues its outputs
//! ([`drover_engine::outputs::DeltaQueue`], oldest dropped and counted), and
//! a broker that is down makes only this task wait.

use std::time::Duration;

use drover_engine::Delta;
use drover_engine::systems::trips::{Place, Trip};
use drover_mqtt::Publisher;
use drover_mqtt::payload::{PlacePayload, Rfc3339Ms, TripPayload};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How long a stopping node keeps publishing the trips still queued.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Publishes every trip from `queue` until `shutdown` (then what is still
/// queued, for a moment) or the engine's end.
pub async fn publish_trips(
    publisher: Publisher,
    queue: flume::Receiver<Delta>,
    shutdown: CancellationToken,
) {
    loop {
        let delta = tokio::select! {
            delta = queue.recv_async() => match delta {
                Ok(delta) => delta,
                Err(_) => return,
            },
            () = shutdown.cancelled() => break,
        };
        publish(&publisher, delta).await;
    }
    let drain = async {
        for delta in queue.drain() {
            publish(&publisher, delta).await;
        }
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        warn!("trips still queued at the stop were not all published");
    }
}

async fn publish(publisher: &Publisher, delta: Delta) {
    let Delta::Trip(trip) = delta else {
        return;
    };
    let id = trip.id();
    if let Err(error) = publisher.trip(&trip_payload(&trip, &id)).await {
        warn!(%error, imei = %trip.device, trip = %id, "trip not published");
    }
}

/// The JSON form of `trip` (docs/mqtt.md), whose id is `id`.
pub fn trip_payload<'a>(trip: &'a Trip, id: &'a str) -> TripPayload<'a> {
    let place = |p: Place| PlacePayload {
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
        fuel_used_pct: trip
            .fuel_start_pct
            .zip(trip.fuel_end_pct)
            .map(|(a, b)| a - b),
    }
}
