//! `GET /api/v1/devices/{id}/summaries`: a device's days, computed on
//! request (see [`crate::summaries`]).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::devices::{ensure_known, history_error};
use crate::Api;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Params;
use crate::summaries::{DaySummary, Days, summarize};

/// Days when the request does not say, and at most.
const DEFAULT_DAYS: i64 = 7;
const MAX_DAYS: usize = 366;

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
    /// Where days begin and end: an IANA time zone such as
    /// `Europe/Vilnius`, or a fixed offset (`analytics.summaries.timezone`).
    timezone: String,
    summaries: Vec<DaySummary>,
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
    let zone = &api.timezone;
    let today = jiff::Zoned::now().with_time_zone(zone.zone.clone()).date();
    let last = day_param("to", params.to.as_deref())?.unwrap_or(today);
    let first = match day_param("from", params.from.as_deref())? {
        Some(first) => first,
        None => last
            .checked_sub(jiff::Span::new().days(DEFAULT_DAYS - 1))
            .map_err(|_| ApiError::BadRequest("to is too early".to_owned()))?,
    };
    let days = Days::new(first, last, &zone.zone)
        .filter(|days| (1..=MAX_DAYS).contains(&days.len()))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "from must be on or before to, at most {MAX_DAYS} days apart"
            ))
        })?;
    ensure_known(&api, &id).await?;
    let open = super::live_device(&api, &id).and_then(|s| s.trip.as_deref().cloned());
    let summaries = summarize(&*api.history, &id, open, &days)
        .await
        .map_err(history_error)?;
    Ok(Json(SummaryList {
        device: id,
        timezone: zone.name.clone(),
        summaries,
    }))
}

fn day_param(name: &str, text: Option<&str>) -> Result<Option<Date>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };
    // jiff also reads a date with a time; a day is a plain date here.
    let plain = text.len() == 10;
    text.parse::<Date>()
        .ok()
        .filter(|_| plain)
        .map(Some)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{name} must be a date such as 2026-12-03, not {text:?}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_plain_dates() {
        assert_eq!(
            day_param("from", Some("2026-12-03")).unwrap(),
            Some(Date::constant(2026, 12, 3))
        );
        for bad in ["2026-13-01", "2026-12-03T00:00", "yesterday"] {
            assert!(day_param("from", Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(day_param("to", None).unwrap(), None);
    }
}
