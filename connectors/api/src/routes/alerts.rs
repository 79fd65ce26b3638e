//! Alerts: listed from the history backend, acknowledged and closed
//! through the engine, which owns their lifecycle.
//!
//! An action answers once its change is stored, so a list read right after
//! it shows the new state.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use drover_catalog::Role;
use drover_engine::systems::alerts::{AlertOp, AlertState, AlertSummary, Severity};
use drover_engine::{Answer, DeskError};
use drover_protocols::model::now_ms;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::devices::{Paging, Range, history_error};
use crate::Api;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Params;
use crate::history::AlertQuery;
use crate::positions::rfc3339;

/// Alerts: the last 30 days unless the request says, 100 per page, up to 1,000.
const ALERTS: Paging = Paging {
    span_ms: 30 * 24 * 3600 * 1000,
    default_limit: 100,
    max_limit: 1_000,
};
/// How long an action waits for its change to be stored before it
/// answers anyway (the engine has applied it).
const STORE_WAIT: Duration = Duration::from_secs(5);

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/api/v1/alerts", get(list))
        .route("/api/v1/alerts/{id}/acknowledge", post(acknowledge))
        .route("/api/v1/alerts/{id}/close", post(close))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only this device's alerts.
    device: Option<String>,
    /// Only alerts of this kind (`overspeed`, `sos`, …).
    kind: Option<String>,
    /// Only alerts in this state.
    state: Option<StateParam>,
    /// RFC 3339, inclusive: alerts opened at or after it; default `to`
    /// minus 30 days.
    #[param(format = DateTime)]
    from: Option<String>,
    /// RFC 3339, exclusive: alerts opened before it; default now.
    #[param(format = DateTime)]
    to: Option<String>,
    /// Alerts per page, 1 to 1000 (default 100).
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum StateParam {
    Open,
    Acknowledged,
    Closed,
}

impl From<StateParam> for AlertState {
    fn from(state: StateParam) -> Self {
        match state {
            StateParam::Open => AlertState::Open,
            StateParam::Acknowledged => AlertState::Acknowledged,
            StateParam::Closed => AlertState::Closed,
        }
    }
}

/// A page of alerts in opening order.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertList {
    alerts: Vec<AlertView>,
    /// Absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// One alert (the same JSON as MQTT's `…/alert`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertView {
    /// Stable: the device, kind, subject and opening time.
    id: String,
    device: String,
    /// snake_case: `overspeed`, `geofence_enter`, `offline`, `sos`, `fuel_drop`, …
    kind: String,
    /// What within the kind: a geofence id, a DTC code.
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    /// `info`, `warning` or `critical`.
    severity: String,
    /// `open`, `acknowledged` or `closed`.
    state: String,
    /// RFC 3339.
    opened_at: String,
    acknowledged_at: Option<String>,
    closed_at: Option<String>,
    /// What the detector saw: speeds, levels, codes, where.
    #[schema(value_type = Object)]
    details: std::sync::Arc<serde_json::Map<String, serde_json::Value>>,
}

impl From<AlertSummary> for AlertView {
    fn from(alert: AlertSummary) -> Self {
        AlertView {
            id: alert.id,
            device: alert.device.as_str().to_owned(),
            kind: alert.kind.into_owned(),
            subject: alert.subject,
            severity: severity_name(alert.severity).to_owned(),
            state: alert.state.as_str().to_owned(),
            opened_at: rfc3339(alert.opened_ms),
            acknowledged_at: alert.acknowledged_ms.map(rfc3339),
            closed_at: alert.closed_ms.map(rfc3339),
            details: alert.details,
        }
    }
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

/// Alerts opened in a time range, oldest first, a page at a time, with
/// their newest state.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(ListParams),
    responses((status = 200, body = AlertList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn list(
    State(api): State<Api>,
    _caller: Caller,
    Params(params): Params<ListParams>,
) -> Result<Json<AlertList>, ApiError> {
    let Range {
        from_ms,
        to_ms,
        limit,
    } = Range::parse(
        params.from.as_deref(),
        params.to.as_deref(),
        params.limit,
        ALERTS,
    )?;
    let page = api
        .history
        .alerts(AlertQuery {
            device: params.device.as_deref(),
            kind: params.kind.as_deref(),
            state: params.state.map(AlertState::from),
            from_ms,
            to_ms,
            limit,
            cursor: params.cursor.as_deref(),
        })
        .await
        .map_err(history_error)?;
    Ok(Json(AlertList {
        alerts: page.alerts.into_iter().map(AlertView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Acknowledges an open alert (operator): someone is on it. Acknowledging
/// it again changes nothing; a closed alert is a 409.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/acknowledge", tag = "alerts",
    responses((status = 200, body = AlertView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn acknowledge(
    State(api): State<Api>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AlertView>, ApiError> {
    caller.require(Role::Operator)?;
    act(&api, &caller, &id, AlertOp::Acknowledge).await
}

/// Closes an alert (operator). A condition (overspeed, offline) closed
/// while it lasts raises no new alert until it ends. Closing a closed
/// alert answers it as it is.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/close", tag = "alerts",
    responses((status = 200, body = AlertView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn close(
    State(api): State<Api>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AlertView>, ApiError> {
    caller.require(Role::Operator)?;
    act(&api, &caller, &id, AlertOp::Close).await
}

async fn act(
    api: &Api,
    caller: &Caller,
    id: &str,
    op: AlertOp,
) -> Result<Json<AlertView>, ApiError> {
    let Answer {
        alert,
        analytics_through,
    } = api
        .alerts
        .desk
        .act(id, op, now_ms())
        .await
        .map_err(desk_error)?;
    if let Some(alert) = alert {
        tracing::info!(alert = %id, action = ?op, by = %caller.name, "alert action");
        wait_until_stored(api, analytics_through).await;
        return Ok(Json(alert.into()));
    }
    // Not open in the engine: closed already, or unknown.
    match api.history.alert(id).await.map_err(history_error)? {
        Some(stored) if op == AlertOp::Close => Ok(Json(stored.into())),
        Some(_) => Err(ApiError::Conflict(format!("alert {id:?} is closed"))),
        None => Err(ApiError::NotFound(format!("no alert {id:?}"))),
    }
}

async fn wait_until_stored(api: &Api, through: u64) {
    let deadline = tokio::time::Instant::now() + STORE_WAIT;
    while (api.alerts.stored)() < through {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                through,
                "an alert action answered before its change was stored"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn desk_error(error: DeskError) -> ApiError {
    ApiError::Unavailable(error.to_string())
}
