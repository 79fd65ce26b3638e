//! A device's days: distance, driving and idle time, top speed, trips and
//! alerts per calendar day, from the stored trips and alerts. Days begin at
//! midnight at the node's `analytics.summaries.utc_offset`; a trip counts
//! on the day it started.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use drover_engine::systems::trips::TripSummary;
use serde::{Deserialize, Serialize};
use time::macros::format_description;
use time::{Date, OffsetDateTime, Time};
use utoipa::{IntoParams, ToSchema};

use super::devices::{ensure_known, history_error};
use crate::Api;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Params;
use crate::history::AlertQuery;

/// Days when the request does not say, and at most.
const DEFAULT_DAYS: i64 = 7;
const MAX_DAYS: i64 = 366;
/// Trips and alerts read per range, at most.
const MAX_ITEMS: usize = 10_000;
const DAY_MS: i64 = 86_400_000;

pub fn routes() -> Router<Api> {
    Router::new().route("/api/v1/devices/{id}/summaries", get(summaries))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SummaryParams {
    /// First day, `YYYY-MM-DD`; default six days before `to`.
    #[param(format = Date)]
    from: Option<String>,
    /// Last day, included, `YYYY-MM-DD`; default today.
    #[param(format = Date)]
    to: Option<String>,
}

/// A device's days, oldest first, one per day of the range.
#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryList {
    device: String,
    /// Where days begin, e.g. `+02:00` (`analytics.summaries.utc_offset`).
    utc_offset: String,
    summaries: Vec<DaySummary>,
}

/// One day of a device.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct DaySummary {
    /// `YYYY-MM-DD`.
    date: String,
    /// Trips that started that day (closed ones, and the one under way).
    trips: usize,
    distance_m: f64,
    /// Time in motion.
    driving_s: f64,
    /// Standing with the ignition on during trips.
    idle_s: f64,
    max_speed_kmh: f64,
    /// Alerts opened that day.
    alerts: usize,
}

/// A device's daily summaries.
#[utoipa::path(get, path = "/api/v1/devices/{id}/summaries", tag = "trips", params(SummaryParams),
    responses((status = 200, body = SummaryList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn summaries(
    State(api): State<Api>,
    _caller: Caller,
    Path(id): Path<String>,
    Params(params): Params<SummaryParams>,
) -> Result<Json<SummaryList>, ApiError> {
    let offset = api.utc_offset;
    let today = OffsetDateTime::now_utc().to_offset(offset).date();
    let last = day_param("to", params.to.as_deref())?.unwrap_or(today);
    let first = day_param("from", params.from.as_deref())?
        .unwrap_or_else(|| last - time::Duration::days(DEFAULT_DAYS - 1));
    let days = (last - first).whole_days() + 1;
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(ApiError::BadRequest(format!(
            "from must be on or before to, at most {MAX_DAYS} days apart"
        )));
    }
    ensure_known(&api, &id).await?;
    let start_ms = midnight_ms(first, offset);
    let end_ms = start_ms + days * DAY_MS;
    let mut trips = api
        .history
        .trips(&id, start_ms, end_ms, MAX_ITEMS)
        .await
        .map_err(history_error)?;
    if let Some(open) = super::live_device(&api, &id).and_then(|s| s.trip.as_deref().cloned())
        && (start_ms..end_ms).contains(&open.start.time_ms)
        && trips
            .last()
            .is_none_or(|t| t.start.time_ms < open.start.time_ms)
    {
        trips.push(open);
    }
    let alerts = api
        .history
        .alerts(AlertQuery {
            device: Some(&id),
            kind: None,
            state: None,
            from_ms: start_ms,
            to_ms: end_ms,
            limit: MAX_ITEMS,
            cursor: None,
        })
        .await
        .map_err(history_error)?
        .alerts;
    let mut summaries: Vec<DaySummary> = (0..days)
        .map(|d| DaySummary {
            date: date_text(first + time::Duration::days(d)),
            ..DaySummary::default()
        })
        .collect();
    let day_of = |ms: i64| usize::try_from((ms - start_ms).div_euclid(DAY_MS)).ok();
    for trip in &trips {
        if let Some(day) = day_of(trip.start.time_ms).and_then(|d| summaries.get_mut(d)) {
            add_trip(day, trip);
        }
    }
    for alert in &alerts {
        if let Some(day) = day_of(alert.opened_ms).and_then(|d| summaries.get_mut(d)) {
            day.alerts += 1;
        }
    }
    Ok(Json(SummaryList {
        device: id,
        utc_offset: offset.to_string(),
        summaries,
    }))
}

fn add_trip(day: &mut DaySummary, trip: &TripSummary) {
    day.trips += 1;
    day.distance_m += trip.distance_m;
    day.driving_s += trip.moving_ms as f64 / 1000.0;
    day.idle_s += trip.idle_ms as f64 / 1000.0;
    day.max_speed_kmh = day.max_speed_kmh.max(trip.max_speed_kmh);
}

fn day_param(name: &str, text: Option<&str>) -> Result<Option<Date>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };
    Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map(Some)
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "{name} must be a date such as 2026-12-03, not {text:?}"
            ))
        })
}

fn date_text(date: Date) -> String {
    date.format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

/// The first ms of `date` at `offset`.
fn midnight_ms(date: Date, offset: time::UtcOffset) -> i64 {
    let at = date.with_time(Time::MIDNIGHT).assume_offset(offset);
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, offset};

    #[test]
    fn days_begin_at_midnight_at_the_offset() {
        assert_eq!(midnight_ms(date!(1970 - 01 - 02), offset!(UTC)), DAY_MS);
        assert_eq!(
            midnight_ms(date!(1970 - 01 - 02), offset!(+2)),
            DAY_MS - 2 * 3_600_000
        );
        assert_eq!(date_text(date!(2026 - 12 - 03)), "2026-12-03");
        assert!(day_param("from", Some("2026-13-01")).is_err());
        assert_eq!(day_param("to", None).unwrap(), None);
    }
}
