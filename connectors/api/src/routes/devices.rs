//! The device registry, the fleet's live state and position history.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use drover_catalog::{Device, Role};
use drover_engine::DeviceState;
use drover_protocols::model::{DeviceId, now_ms};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{blocking, json_bytes, json_response, live_device, page_limit};
use crate::Api;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Body, Params};
use crate::geofences::check_speed_limit;
use crate::history::{HistoryError, PositionQuery};
use crate::model::{
    DeviceCreate, DeviceList, DevicePatch, DeviceStatus, DeviceView, UnknownList, UnknownView,
    check_id, check_text,
};
use crate::positions::{PositionPage, page_json, parse_rfc3339, rfc3339};

/// Positions: the last day unless the request says, 1,000 per page, up to 10,000.
const POSITIONS: Paging = Paging {
    span_ms: 24 * 3600 * 1000,
    default_limit: 1_000,
    max_limit: 10_000,
};

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/api/v1/devices", get(list).post(create))
        .route("/api/v1/devices/unknown", get(unknown))
        .route("/api/v1/devices/{id}", get(one).patch(patch).delete(remove))
        .route("/api/v1/devices/{id}/positions", get(positions))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Devices per page, 1 to 1000 (default 100).
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    status: Option<DeviceStatus>,
    /// Only devices in this group.
    group: Option<String>,
    /// Only devices whose id or name contains this (case-insensitive).
    q: Option<String>,
}

/// Every device, registered or reporting, in id order, a page at a time.
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", params(ListParams),
    responses((status = 200, body = DeviceList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list(
    State(api): State<Api>,
    _caller: Caller,
    Params(params): Params<ListParams>,
) -> Result<Response, ApiError> {
    let limit = page_limit(params.limit)?;
    let fleet = api.live.load();
    let cursor = params.cursor.as_deref();
    let after = cursor.map(DeviceId::new);
    let mut live = fleet
        .after(after.as_ref())
        .map(|state| (state.device.as_str(), state))
        .peekable();
    let query = params.q.as_deref().map(str::to_lowercase);
    // The registry is read in place: copying every registered device for a
    // page of a hundred cost more than the page.
    let answer = api.catalog.devices.scan(cursor, |registered| {
        let mut registered = registered.map(|d| (d.id.as_str(), d)).peekable();
        let mut page = Vec::with_capacity(limit);
        let mut more = false;
        // Both sources are sorted by id: merge them, one device at a time.
        loop {
            let next_live = live.peek().map(|(id, _)| *id);
            let next_registered = registered.peek().map(|(id, _)| *id);
            let take_live = match (next_live, next_registered) {
                (None, None) => break,
                (Some(l), Some(r)) => l <= r,
                (l, _) => l.is_some(),
            };
            let take_registered = match (next_live, next_registered) {
                (Some(l), Some(r)) => r <= l,
                (_, r) => r.is_some() && !take_live,
            };
            let state = take_live.then(|| live.next()).flatten();
            let registration = take_registered.then(|| registered.next()).flatten();
            let Some(id) = state.map(|(id, _)| id).or(registration.map(|(id, _)| id)) else {
                break;
            };
            let (state, registration) = (state.map(|(_, s)| s), registration.map(|(_, d)| d));
            let device = view(id, registration, state);
            if !keep(&device, &params, query.as_deref()) {
                continue;
            }
            if page.len() == limit {
                more = true;
                break;
            }
            page.push(device);
        }
        let next_cursor = more.then(|| page.last().map(|d| d.id.clone())).flatten();
        json_bytes(&DeviceList {
            devices: page,
            next_cursor,
        })
    });
    Ok(answer)
}

fn view<'a>(
    id: &str,
    registration: Option<&Device>,
    live: Option<&Arc<DeviceState>>,
) -> DeviceView<'a> {
    let device = DeviceView::new(id, registration);
    match live {
        Some(state) => device.with_live(Arc::clone(state)),
        None => device,
    }
}

fn keep(device: &DeviceView<'_>, params: &ListParams, query: Option<&str>) -> bool {
    params.status.is_none_or(|s| s == device.status)
        && params
            .group
            .as_deref()
            .is_none_or(|g| device.group.as_deref() == Some(g))
        && query.is_none_or(|q| {
            device.id.to_lowercase().contains(q)
                || device
                    .name
                    .as_deref()
                    .is_some_and(|n| n.to_lowercase().contains(q))
        })
}

/// Registers a device (operator).
#[utoipa::path(post, path = "/api/v1/devices", tag = "devices", request_body = DeviceCreate,
    responses((status = 201, body = DeviceView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create(
    State(api): State<Api>,
    caller: Caller,
    Body(request): Body<DeviceCreate>,
) -> Result<(StatusCode, Response), ApiError> {
    caller.require(Role::Operator)?;
    check_id("id", &request.id)?;
    for (what, value) in [
        ("name", &request.name),
        ("phone", &request.phone),
        ("model", &request.model),
        ("notes", &request.notes),
    ] {
        check_text(what, value.as_deref())?;
    }
    check_group(&api, request.group.as_deref())?;
    check_speed_limit(request.speed_limit_kmh)?;
    let now = now_ms();
    let device = Device {
        id: request.id.clone(),
        name: request.name,
        group: request.group,
        phone: request.phone,
        model: request.model,
        notes: request.notes,
        disabled: request.disabled,
        speed_limit_kmh: request.speed_limit_kmh,
        created_ms: now,
        updated_ms: now,
    };
    let catalog = Arc::clone(&api.catalog);
    let device = blocking(move || Ok(catalog.devices.insert(&device.id.clone(), device)?)).await?;
    api.catalog.unknown.forget(&device.id);
    tracing::info!(imei = %device.id, by = %caller.name, "device registered");
    let live = live_device(&api, &device.id);
    let body = json_bytes(&view(&device.id, Some(&device), live.as_ref()));
    Ok((StatusCode::CREATED, body))
}

/// One device: its registration and its live state, or its latest stored
/// position when it has not reported since the node started.
#[utoipa::path(get, path = "/api/v1/devices/{id}", tag = "devices",
    responses((status = 200, body = DeviceView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn one(
    State(api): State<Api>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let registration = api.catalog.devices.get(&id);
    if let Some(state) = live_device(&api, &id) {
        return Ok(json_bytes(
            &(view(&id, registration.as_ref(), Some(&state))),
        ));
    }
    let stored = api.history.latest(&id).await.map_err(history_error)?;
    match (&registration, &stored) {
        (_, Some(record)) => Ok(json_bytes(
            &(DeviceView::new(&id, registration.as_ref()).with_stored(record)),
        )),
        (Some(device), None) => Ok(json_bytes(&(view(&id, Some(device), None)))),
        (None, None) => Err(unknown_device(&id)),
    }
}

/// Changes a device's registration (operator). Disabling it closes its connection.
#[utoipa::path(patch, path = "/api/v1/devices/{id}", tag = "devices", request_body = DevicePatch,
    responses((status = 200, body = DeviceView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn patch(
    State(api): State<Api>,
    caller: Caller,
    Path(id): Path<String>,
    Body(patch): Body<DevicePatch>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    for (what, value) in [
        ("name", &patch.name),
        ("phone", &patch.phone),
        ("model", &patch.model),
        ("notes", &patch.notes),
    ] {
        check_text(what, value.clone().flatten().as_deref())?;
    }
    if let Some(group) = &patch.group {
        check_group(&api, group.as_deref())?;
    }
    if let Some(limit) = patch.speed_limit_kmh {
        check_speed_limit(limit)?;
    }
    let catalog = Arc::clone(&api.catalog);
    let key = id.clone();
    let device = blocking(move || {
        catalog.devices.update(&key, |d: &mut Device| {
            apply(d, patch);
            Ok::<(), ApiError>(())
        })
    })
    .await?;
    tracing::info!(imei = %id, by = %caller.name, disabled = device.disabled, "device changed");
    if device.disabled {
        (api.disconnect)(&id, "the device was disabled");
    }
    let live = live_device(&api, &id);
    Ok(json_bytes(&(view(&id, Some(&device), live.as_ref()))))
}

fn apply(device: &mut Device, patch: DevicePatch) {
    let fields = [
        (&mut device.name, patch.name),
        (&mut device.group, patch.group),
        (&mut device.phone, patch.phone),
        (&mut device.model, patch.model),
        (&mut device.notes, patch.notes),
    ];
    for (field, change) in fields {
        if let Some(value) = change {
            *field = value;
        }
    }
    if let Some(disabled) = patch.disabled {
        device.disabled = disabled;
    }
    if let Some(limit) = patch.speed_limit_kmh {
        device.speed_limit_kmh = limit;
    }
    device.updated_ms = now_ms();
}

/// Unregisters a device (operator) and closes its connection. Its history stays.
#[utoipa::path(delete, path = "/api/v1/devices/{id}", tag = "devices",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove(
    State(api): State<Api>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Operator)?;
    let catalog = Arc::clone(&api.catalog);
    let key = id.clone();
    blocking(move || {
        catalog.devices.remove(&key)?;
        Ok(())
    })
    .await?;
    tracing::info!(imei = %id, by = %caller.name, "device unregistered");
    // Served again at its next login only if unknown devices are.
    (api.disconnect)(&id, "the device was unregistered");
    Ok(StatusCode::NO_CONTENT)
}

/// Trackers refused because they are not registered, newest first.
#[utoipa::path(get, path = "/api/v1/devices/unknown", tag = "devices",
    responses((status = 200, body = UnknownList), (status = 401, body = ErrorBody)))]
async fn unknown(State(api): State<Api>, _caller: Caller) -> Json<UnknownList> {
    let devices = api
        .catalog
        .unknown
        .list()
        .into_iter()
        .map(|u| UnknownView {
            id: u.id,
            protocol: u.protocol.to_owned(),
            peer: u.peer,
            first_seen: rfc3339(u.first_seen_ms),
            last_seen: rfc3339(u.last_seen_ms),
            attempts: u.attempts,
        })
        .collect();
    Json(UnknownList { devices })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PositionParams {
    /// RFC 3339, inclusive; default `to` minus a day.
    #[param(format = DateTime)]
    from: Option<String>,
    /// RFC 3339, exclusive; default now.
    #[param(format = DateTime)]
    to: Option<String>,
    /// Positions per page, 1 to 10000 (default 1000).
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A device's positions in a time range, oldest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/devices/{id}/positions", tag = "devices", params(PositionParams),
    responses((status = 200, body = PositionPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn positions(
    State(api): State<Api>,
    _caller: Caller,
    Path(id): Path<String>,
    Params(params): Params<PositionParams>,
) -> Result<Response, ApiError> {
    let range = Range::parse(
        params.from.as_deref(),
        params.to.as_deref(),
        params.limit,
        POSITIONS,
    )?;
    ensure_known(&api, &id).await?;
    let page = api
        .history
        .positions(PositionQuery {
            device: &id,
            from_ms: range.from_ms,
            to_ms: range.to_ms,
            limit: range.limit,
            cursor: params.cursor.as_deref(),
        })
        .await
        .map_err(history_error)?;
    match page_json(
        &id,
        range.from_ms,
        range.to_ms,
        &page.positions,
        page.next_cursor.as_deref(),
    ) {
        Ok(json) => Ok(json_response(json)),
        Err(error) => Err(ApiError::internal(format!(
            "serializing an answer: {error}"
        ))),
    }
}

/// How a history is read when the request does not say: the span before
/// `to` and the page size, and the largest page.
#[derive(Debug, Clone, Copy)]
pub(super) struct Paging {
    pub span_ms: i64,
    pub default_limit: usize,
    pub max_limit: usize,
}

/// The validated `from`, `to` and `limit` of a history request.
#[derive(Debug, PartialEq)]
pub(super) struct Range {
    pub from_ms: i64,
    pub to_ms: i64,
    pub limit: usize,
}

impl Range {
    /// `to` defaults to now, `from` to `paging.span_ms` before `to`; 400
    /// for a time that is not RFC 3339, an empty range or a page size out
    /// of bounds.
    pub(super) fn parse(
        from: Option<&str>,
        to: Option<&str>,
        limit: Option<usize>,
        paging: Paging,
    ) -> Result<Range, ApiError> {
        let to_ms = match to {
            Some(text) => time_param("to", text)?,
            None => now_ms(),
        };
        let from_ms = match from {
            Some(text) => time_param("from", text)?,
            None => to_ms.saturating_sub(paging.span_ms),
        };
        if from_ms >= to_ms {
            return Err(ApiError::BadRequest(format!(
                "empty range: from ({}) must be before to ({})",
                rfc3339(from_ms),
                rfc3339(to_ms)
            )));
        }
        let limit = limit.unwrap_or(paging.default_limit);
        if !(1..=paging.max_limit).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "limit must be from 1 to {}, not {limit}",
                paging.max_limit
            )));
        }
        Ok(Range {
            from_ms,
            to_ms,
            limit,
        })
    }
}

pub(super) fn time_param(name: &str, text: &str) -> Result<i64, ApiError> {
    parse_rfc3339(text).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "{name} must be an RFC 3339 time such as 2026-11-26T08:00:00Z, not {text:?}"
        ))
    })
}

fn check_group(api: &Api, group: Option<&str>) -> Result<(), ApiError> {
    match group {
        Some(g) if api.catalog.groups.get(g).is_none() => Err(ApiError::Unprocessable(format!(
            "no group {g:?}: create it at POST /api/v1/groups first"
        ))),
        _ => Ok(()),
    }
}

/// Ok for a device registered, live or with history; 404 otherwise.
pub(super) async fn ensure_known(api: &Api, id: &str) -> Result<(), ApiError> {
    let known = api.catalog.devices.get(id).is_some()
        || live_device(api, id).is_some()
        || api
            .history
            .latest(id)
            .await
            .map_err(history_error)?
            .is_some();
    if known {
        Ok(())
    } else {
        Err(unknown_device(id))
    }
}

pub(super) fn unknown_device(id: &str) -> ApiError {
    ApiError::NotFound(format!("unknown device {id:?}"))
}

pub(super) fn history_error(error: HistoryError) -> ApiError {
    match error {
        HistoryError::BadCursor(_) => ApiError::BadRequest(error.to_string()),
        HistoryError::Unavailable(_) => ApiError::Unavailable(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(params: &PositionParams) -> Result<Range, ApiError> {
        let (from, to) = (params.from.as_deref(), params.to.as_deref());
        Range::parse(from, to, params.limit, POSITIONS)
    }

    fn params(from: Option<&str>, to: Option<&str>, limit: Option<usize>) -> PositionParams {
        PositionParams {
            from: from.map(str::to_owned),
            to: to.map(str::to_owned),
            limit,
            cursor: None,
        }
    }

    #[test]
    fn ranges_default_to_the_last_day_and_validate() {
        let r = parse(&params(None, Some("2026-11-26T00:00:00Z"), None)).unwrap();
        assert_eq!(r.to_ms - r.from_ms, POSITIONS.span_ms);
        assert_eq!(r.limit, POSITIONS.default_limit);
        let day = "2026-11-26T00:00:00Z";
        let bad = [
            params(Some(day), Some("2026-11-25T00:00:00Z"), None),
            params(Some(day), Some(day), None),
            params(Some("last tuesday"), None, None),
            params(None, None, Some(0)),
            params(None, None, Some(POSITIONS.max_limit + 1)),
        ];
        for case in bad {
            assert!(
                matches!(parse(&case), Err(ApiError::BadRequest(_))),
                "{case:?}"
            );
        }
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let mut device = Device {
            id: "1".into(),
            name: Some("van".into()),
            phone: Some("+49".into()),
            ..Device::default()
        };
        let patch: DevicePatch =
            serde_json::from_str(r#"{"name": null, "model": "FMB920", "disabled": true}"#).unwrap();
        apply(&mut device, patch);
        assert_eq!(device.name, None);
        assert_eq!(device.phone.as_deref(), Some("+49"));
        assert_eq!(device.model.as_deref(), Some("FMB920"));
        assert!(device.disabled);
    }
}
