//! A device's trips — the closed ones from the history backend and the one
//! under way from the live state — and the stops between them.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use drover_engine::systems::stops::StopSummary;
use drover_engine::systems::trips::{Place, TripSummary};
use drover_protocols::model::now_ms;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::devices::{Paging, Range, ensure_known, history_error};
use super::live_device;
use crate::Api;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Params;
use crate::positions::rfc3339;

/// Trips: the last week unless the request says, up to 10,000 (1,000 by default).
const TRIPS: Paging = Paging {
    span_ms: 7 * 24 * 3600 * 1000,
    default_limit: 1_000,
    max_limit: 10_000,
};

/// How far before a range the trip whose end begins a stop in it is looked
/// for: trips longer than this do not show their stop.
const STOP_LOOKBACK_MS: i64 = 7 * 24 * 3600 * 1000;

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/api/v1/devices/{id}/trips", get(trips))
        .route("/api/v1/devices/{id}/stops", get(stops))
}

/// A time range of trips or stops, by when they began.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SpanParams {
    /// RFC 3339, inclusive: those that began at or after it; default `to`
    /// minus a week.
    #[param(format = DateTime)]
    from: Option<String>,
    /// RFC 3339, exclusive: those that began before it; default now.
    #[param(format = DateTime)]
    to: Option<String>,
    /// At most this many, 1 to 10000 (default 1000); the oldest come first.
    limit: Option<usize>,
}

impl SpanParams {
    fn range(&self) -> Result<Range, ApiError> {
        Range::parse(self.from.as_deref(), self.to.as_deref(), self.limit, TRIPS)
    }
}

/// A device's trips, in start order.
#[derive(Debug, Serialize, ToSchema)]
pub struct TripList {
    trips: Vec<TripView>,
}

/// One trip: closed, or `open` while the vehicle is still on its way.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TripView {
    /// Stable: the device and the start time.
    id: String,
    device: String,
    start: PlaceView,
    /// Where the stop that ended it began; `null` while open.
    end: Option<PlaceView>,
    open: bool,
    /// Along the fixes; standing jitter and implausible jumps left out.
    distance_m: f64,
    /// To the end, or to the newest fix while open.
    duration_s: f64,
    max_speed_kmh: f64,
    /// Distance over the time in motion.
    avg_speed_kmh: f64,
    /// Standing with the ignition on.
    idle_s: f64,
    /// Fuel level at the start minus at the end, in percent points, when the
    /// device reports a level.
    fuel_used_pct: Option<f64>,
}

/// A device's stops, in start order.
#[derive(Debug, Serialize, ToSchema)]
pub struct StopList {
    stops: Vec<StopView>,
}

/// Where a vehicle stood between two trips: from where one ended to where
/// the next started; `open` while it still stands there.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StopView {
    /// Stable: the device and the start time.
    id: String,
    device: String,
    start: PlaceView,
    /// Where the next trip started; `null` while open.
    end: Option<PlaceView>,
    open: bool,
    /// To the end, or to the newest fix while open.
    duration_s: f64,
}

impl StopView {
    pub(crate) fn new(stop: &StopSummary, newest_fix_ms: i64) -> StopView {
        let until = stop.end.map_or(newest_fix_ms, |end| end.time_ms);
        StopView {
            id: stop.id(),
            device: stop.device.as_str().to_owned(),
            start: stop.start.into(),
            end: stop.end.map(PlaceView::from),
            open: stop.open(),
            duration_s: (until - stop.start.time_ms).max(0) as f64 / 1000.0,
        }
    }
}

/// A time and a place, by the device's clock.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlaceView {
    /// RFC 3339.
    time: String,
    lat: f64,
    lon: f64,
}

impl From<Place> for PlaceView {
    fn from(place: Place) -> Self {
        PlaceView {
            time: rfc3339(place.time_ms),
            lat: place.lat,
            lon: place.lon,
        }
    }
}

impl From<&TripSummary> for TripView {
    fn from(trip: &TripSummary) -> Self {
        TripView {
            id: trip.id(),
            device: trip.device.as_str().to_owned(),
            start: trip.start.into(),
            end: trip.end.map(PlaceView::from),
            open: trip.open(),
            distance_m: trip.distance_m,
            duration_s: trip.duration_ms() as f64 / 1000.0,
            max_speed_kmh: trip.max_speed_kmh,
            avg_speed_kmh: trip.avg_speed_kmh(),
            idle_s: trip.idle_ms as f64 / 1000.0,
            fuel_used_pct: trip.fuel_used_pct(),
        }
    }
}

/// A device's trips that started in a time range, oldest first: the closed
/// ones, then the one under way if it started in the range.
#[utoipa::path(get, path = "/api/v1/devices/{id}/trips", tag = "trips", params(SpanParams),
    responses((status = 200, body = TripList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn trips(
    State(api): State<Api>,
    _caller: Caller,
    Path(id): Path<String>,
    Params(params): Params<SpanParams>,
) -> Result<Json<TripList>, ApiError> {
    let Range {
        from_ms,
        to_ms,
        limit,
    } = params.range()?;
    ensure_known(&api, &id).await?;
    let closed = api
        .history
        .trips(&id, from_ms, to_ms, limit)
        .await
        .map_err(history_error)?;
    let live = live_device(&api, &id);
    let open = live
        .as_ref()
        .and_then(|state| state.trip.as_deref())
        .filter(|trip| (from_ms..to_ms).contains(&trip.start.time_ms));
    let mut trips: Vec<TripView> = closed.iter().map(TripView::from).collect();
    // A trip closed a moment ago may be in both until its store commit: the
    // stored one is the final word.
    if let Some(open) = open
        && trips.len() < limit
        && closed
            .last()
            .is_none_or(|last| last.start.time_ms < open.start.time_ms)
    {
        trips.push(open.into());
    }
    Ok(Json(TripList { trips }))
}

/// A device's stops that began in a time range, oldest first: each from
/// the end of a stored trip to the start of the next, and the one the
/// vehicle stands in now.
#[utoipa::path(get, path = "/api/v1/devices/{id}/stops", tag = "trips", params(SpanParams),
    responses((status = 200, body = StopList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn stops(
    State(api): State<Api>,
    _caller: Caller,
    Path(id): Path<String>,
    Params(params): Params<SpanParams>,
) -> Result<Json<StopList>, ApiError> {
    let Range {
        from_ms,
        to_ms,
        limit,
    } = params.range()?;
    ensure_known(&api, &id).await?;
    let history = &api.history;
    let mut trips = history
        .trips(&id, from_ms - STOP_LOOKBACK_MS, to_ms, TRIPS.max_limit)
        .await
        .map_err(history_error)?;
    // The trip after the range ends the range's last stop.
    let after = history
        .trips(&id, to_ms, now_ms().max(to_ms) + STOP_LOOKBACK_MS, 1)
        .await
        .map_err(history_error)?;
    trips.extend(after);
    let live = live_device(&api, &id);
    if let Some(open) = live.as_ref().and_then(|state| state.trip.as_deref())
        && trips
            .last()
            .is_none_or(|last| last.start.time_ms < open.start.time_ms)
    {
        trips.push(open.clone());
    }
    let newest_fix_ms = live
        .as_ref()
        .and_then(|state| state.last_fix)
        .map_or_else(now_ms, |fix| fix.time_ms);
    let stops = between(&trips)
        .filter(|stop| (from_ms..to_ms).contains(&stop.start.time_ms))
        .take(limit)
        .map(|stop| StopView::new(&stop, newest_fix_ms))
        .collect();
    Ok(Json(StopList { stops }))
}

/// The stops between `trips` (in start order): after each closed trip,
/// until the next one starts, or open after the last.
fn between(trips: &[TripSummary]) -> impl Iterator<Item = StopSummary> + '_ {
    trips.iter().enumerate().filter_map(|(i, trip)| {
        Some(StopSummary {
            device: trip.device.clone(),
            start: trip.end?,
            end: trips.get(i + 1).map(|next| next.start),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trip_shows_its_times_and_derived_figures() {
        let place = |time_ms| Place {
            time_ms,
            lat: 48.0,
            lon: 2.0,
        };
        let trip = TripSummary {
            device: drover_protocols::model::DeviceId::new("d"),
            start: place(0),
            end: None,
            last: place(1_800_000),
            distance_m: 30_000.0,
            max_speed_kmh: 90.0,
            moving_ms: 1_800_000,
            idle_ms: 60_000,
            fuel_start_pct: Some(50.0),
            fuel_end_pct: Some(47.5),
        };
        let view = serde_json::to_value(TripView::from(&trip)).unwrap();
        assert_eq!(view["id"], "d-0");
        assert_eq!(view["start"]["time"], "1970-01-01T00:00:00.000Z");
        assert_eq!(view["end"], serde_json::Value::Null);
        assert_eq!(view["open"], true);
        assert_eq!(view["duration_s"], 1800.0);
        assert_eq!(view["avg_speed_kmh"], 60.0);
        assert_eq!(view["idle_s"], 60.0);
        assert_eq!(view["fuel_used_pct"], 2.5);
    }

    #[test]
    fn stops_lie_between_trips_and_the_last_one_is_open() {
        let place = |time_ms| Place {
            time_ms,
            lat: 48.0,
            lon: 2.0,
        };
        let trip = |start, end: Option<i64>| TripSummary {
            device: drover_protocols::model::DeviceId::new("d"),
            start: place(start),
            end: end.map(place),
            last: place(end.unwrap_or(start)),
            distance_m: 0.0,
            max_speed_kmh: 0.0,
            moving_ms: 0,
            idle_ms: 0,
            fuel_start_pct: None,
            fuel_end_pct: None,
        };
        let trips = [trip(0, Some(100)), trip(400, Some(500)), trip(900, None)];
        let stops: Vec<StopSummary> = between(&trips).collect();
        assert_eq!(stops.len(), 2, "an open trip begins no stop");
        assert_eq!(
            (stops[0].start.time_ms, stops[0].end),
            (100, Some(place(400)))
        );
        assert_eq!(stops[1].end, Some(place(900)));
        let closed = [trip(0, Some(100))];
        let open: Vec<StopSummary> = between(&closed).collect();
        assert!(open[0].open());
        let view = serde_json::to_value(StopView::new(&open[0], 1_100)).unwrap();
        assert_eq!(
            (view["open"].clone(), view["duration_s"].clone()),
            (true.into(), 1.0.into())
        );
    }
}
