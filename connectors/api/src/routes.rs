//! The routes and their handlers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use drover_engine::DeviceState;
use drover_engine::runtime::{LiveError, LiveState};
use drover_protocols::model::{DeviceId, now_ms};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::history::{History, HistoryError, PositionQuery};
use crate::positions::{Device, Position, parse_rfc3339, rfc3339};

/// The node's counters for `/health`, gathered by whoever owns them.
pub type HealthFn = Arc<dyn Fn() -> Value + Send + Sync>;

/// Positions per page when the request does not say.
const DEFAULT_LIMIT: usize = 1_000;
/// The largest page: bounds the memory and time of one request.
const MAX_LIMIT: usize = 10_000;
/// The range when the request gives no `from`: the last day.
const DEFAULT_SPAN_MS: i64 = 24 * 3600 * 1000;
/// Longest wait for the engine to answer a live-state read (it answers
/// between ticks; a replay after a restart makes ticks long).
const LIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What the handlers read from.
#[derive(Clone)]
pub struct Api {
    pub live: LiveState,
    pub history: Arc<dyn History>,
    pub health: HealthFn,
}

/// The API's routes, with JSON 404s for everything else.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/api/v1/devices", get(list_devices))
        .route("/api/v1/devices/:id", get(device))
        .route("/api/v1/devices/:id/positions", get(positions))
        .fallback(|| async { ApiError::NotFound("no such route".to_owned()) })
        .with_state(api)
}

async fn health(State(api): State<Api>) -> Json<Value> {
    Json((api.health)())
}

async fn list_devices(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let live = within(api.live.all()).await?;
    let stored = api.history.latest_all().await.map_err(history_error)?;
    let mut devices: BTreeMap<&str, Device<'_>> = stored
        .iter()
        .map(|(id, record)| (id.as_str(), Device::stored(id, record)))
        .collect();
    for state in &live {
        devices.insert(state.device.as_str(), Device::live(state));
    }
    let devices: Vec<&Device<'_>> = devices.values().collect();
    Ok(Json(json!({ "devices": devices })))
}

async fn device(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    if let Some(state) = live_device(&api, &id).await? {
        return Ok(Json(json!(Device::live(&state))));
    }
    match api.history.latest(&id).await.map_err(history_error)? {
        Some(record) => Ok(Json(json!(Device::stored(&id, &record)))),
        None => Err(unknown_device(&id)),
    }
}

async fn positions(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let range = Range::parse(&params)?;
    let known = live_device(&api, &id).await?.is_some()
        || api
            .history
            .latest(&id)
            .await
            .map_err(history_error)?
            .is_some();
    if !known {
        return Err(unknown_device(&id));
    }
    let page = api
        .history
        .positions(PositionQuery {
            device: &id,
            from_ms: range.from_ms,
            to_ms: range.to_ms,
            limit: range.limit,
            cursor: params.get("cursor").map(String::as_str),
        })
        .await
        .map_err(history_error)?;
    let positions: Vec<Position<'_>> = page.positions.iter().filter_map(Position::of).collect();
    Ok(Json(json!({
        "device": id,
        "from": rfc3339(range.from_ms),
        "to": rfc3339(range.to_ms),
        "positions": positions,
        "next_cursor": page.next_cursor,
    })))
}

/// The validated `from`, `to` and `limit` of a history request.
#[derive(Debug, PartialEq)]
struct Range {
    from_ms: i64,
    to_ms: i64,
    limit: usize,
}

impl Range {
    fn parse(params: &HashMap<String, String>) -> Result<Range, ApiError> {
        if let Some(unknown) = params
            .keys()
            .find(|k| !matches!(k.as_str(), "from" | "to" | "limit" | "cursor"))
        {
            return Err(ApiError::BadRequest(format!(
                "unknown parameter {unknown:?}: use from, to, limit, cursor"
            )));
        }
        let to_ms = match params.get("to") {
            Some(text) => time_param("to", text)?,
            None => now_ms(),
        };
        let from_ms = match params.get("from") {
            Some(text) => time_param("from", text)?,
            None => to_ms.saturating_sub(DEFAULT_SPAN_MS),
        };
        if from_ms >= to_ms {
            return Err(ApiError::BadRequest(format!(
                "empty range: from ({}) must be before to ({})",
                rfc3339(from_ms),
                rfc3339(to_ms)
            )));
        }
        let limit = match params.get("limit") {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "limit must be a whole number from 1 to {MAX_LIMIT}, not {text:?}"
                    ))
                })?,
        };
        Ok(Range {
            from_ms,
            to_ms,
            limit,
        })
    }
}

fn time_param(name: &str, text: &str) -> Result<i64, ApiError> {
    parse_rfc3339(text).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "{name} must be an RFC 3339 time such as 2026-11-26T08:00:00Z, not {text:?}"
        ))
    })
}

fn unknown_device(id: &str) -> ApiError {
    ApiError::NotFound(format!("unknown device {id:?}"))
}

async fn live_device(api: &Api, id: &str) -> Result<Option<DeviceState>, ApiError> {
    within(api.live.device(DeviceId::new(id))).await
}

/// A live-state read, answered within [`LIVE_TIMEOUT`] or refused as busy.
async fn within<T>(
    read: impl std::future::Future<Output = Result<T, LiveError>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(LIVE_TIMEOUT, read).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(LiveError::Busy)) => Err(ApiError::Busy(
            "the engine has too many live-state reads waiting; try again shortly".to_owned(),
        )),
        Ok(Err(LiveError::Stopped)) => {
            Err(ApiError::Unavailable("the engine has stopped".to_owned()))
        }
        Err(_elapsed) => Err(ApiError::Busy(format!(
            "the engine did not answer within {} s (it may be replaying the journal); \
             try again shortly",
            LIVE_TIMEOUT.as_secs()
        ))),
    }
}

fn history_error(error: HistoryError) -> ApiError {
    match error {
        HistoryError::BadCursor(_) => ApiError::BadRequest(error.to_string()),
        HistoryError::Unavailable(_) => ApiError::Unavailable(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn ranges_default_to_the_last_day_and_validate() {
        let r = Range::parse(&params(&[("to", "2026-11-26T00:00:00Z")])).unwrap();
        assert_eq!(r.to_ms - r.from_ms, DEFAULT_SPAN_MS);
        assert_eq!(r.limit, DEFAULT_LIMIT);
        let bad = [
            vec![
                ("from", "2026-11-26T00:00:00Z"),
                ("to", "2026-11-25T00:00:00Z"),
            ],
            vec![
                ("from", "2026-11-26T00:00:00Z"),
                ("to", "2026-11-26T00:00:00Z"),
            ],
            vec![("from", "last tuesday")],
            vec![("limit", "0")],
            vec![("limit", "10001")],
            vec![("limit", "-3")],
            vec![("since", "2026-11-26T00:00:00Z")],
        ];
        for case in bad {
            assert!(
                matches!(Range::parse(&params(&case)), Err(ApiError::BadRequest(_))),
                "{case:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_or_slow_engine_is_503_busy_with_retry_after() {
        use axum::response::IntoResponse;
        let busy = within(async { Err::<(), _>(LiveError::Busy) }).await;
        let slow = within(std::future::pending::<Result<(), LiveError>>()).await;
        for error in [busy, slow] {
            let response = error.expect_err("refused").into_response();
            assert_eq!(response.status(), 503);
            assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "1");
        }
        let stopped = within(async { Err::<(), _>(LiveError::Stopped) }).await;
        let response = stopped.expect_err("refused").into_response();
        assert_eq!(response.status(), 503);
        assert!(
            response
                .headers()
                .get(axum::http::header::RETRY_AFTER)
                .is_none()
        );
    }
}
