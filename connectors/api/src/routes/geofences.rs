//! Geofences: the areas trips, alerts and speed limits refer to.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use drover_catalog::{Geofence, Role};
use drover_protocols::model::now_ms;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{blocking, page_limit};
use crate::Api;
use crate::auth::Caller;
use crate::auth::secret::random_hex;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Body, Params};
use crate::geofences::{
    GeofenceCreate, GeofenceList, GeofencePatch, GeofenceView, area, check_speed_limit, patched,
};
use crate::model::check_name;

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/api/v1/geofences", get(list).post(create))
        .route(
            "/api/v1/geofences/{id}",
            get(one).patch(patch).delete(remove),
        )
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// Geofences per page, 1 to 1000 (default 100).
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Every geofence, in id order, a page at a time.
#[utoipa::path(get, path = "/api/v1/geofences", tag = "geofences", params(ListParams),
    responses((status = 200, body = GeofenceList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list(
    State(api): State<Api>,
    _caller: Caller,
    Params(params): Params<ListParams>,
) -> Result<Json<GeofenceList>, ApiError> {
    let limit = page_limit(params.limit)?;
    let (page, more) = api
        .catalog
        .geofences
        .page(params.cursor.as_deref(), limit, |_| true);
    let next_cursor = more.then(|| page.last().map(|g| g.id.clone())).flatten();
    Ok(Json(GeofenceList {
        geofences: page.iter().map(GeofenceView::new).collect(),
        next_cursor,
    }))
}

/// Creates a geofence (operator); its id is chosen by the server.
#[utoipa::path(post, path = "/api/v1/geofences", tag = "geofences", request_body = GeofenceCreate,
    responses((status = 201, body = GeofenceView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create(
    State(api): State<Api>,
    caller: Caller,
    Body(request): Body<GeofenceCreate>,
) -> Result<(StatusCode, Json<GeofenceView>), ApiError> {
    caller.require(Role::Operator)?;
    check_name(&request.name)?;
    check_speed_limit(request.speed_limit_kmh)?;
    let now = now_ms();
    let geofence = Geofence {
        id: format!("gf_{}", random_hex(8)),
        name: request.name,
        area: area(request.geometry, request.radius_m)?,
        speed_limit_kmh: request.speed_limit_kmh,
        created_ms: now,
        updated_ms: now,
    };
    let catalog = Arc::clone(&api.catalog);
    let geofence =
        blocking(move || Ok(catalog.geofences.insert(&geofence.id.clone(), geofence)?)).await?;
    tracing::info!(geofence = %geofence.id, by = %caller.name, "geofence created");
    Ok((StatusCode::CREATED, Json(GeofenceView::new(&geofence))))
}

/// One geofence.
#[utoipa::path(get, path = "/api/v1/geofences/{id}", tag = "geofences",
    responses((status = 200, body = GeofenceView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn one(
    State(api): State<Api>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<GeofenceView>, ApiError> {
    let geofence = api
        .catalog
        .geofences
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no geofence {id:?}")))?;
    Ok(Json(GeofenceView::new(&geofence)))
}

/// Changes a geofence (operator): its name, shape, radius or speed limit.
#[utoipa::path(patch, path = "/api/v1/geofences/{id}", tag = "geofences", request_body = GeofencePatch,
    responses((status = 200, body = GeofenceView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn patch(
    State(api): State<Api>,
    caller: Caller,
    Path(id): Path<String>,
    Body(patch): Body<GeofencePatch>,
) -> Result<Json<GeofenceView>, ApiError> {
    caller.require(Role::Operator)?;
    if let Some(name) = &patch.name {
        check_name(name)?;
    }
    if let Some(limit) = patch.speed_limit_kmh {
        check_speed_limit(limit)?;
    }
    let catalog = Arc::clone(&api.catalog);
    let geofence = blocking(move || {
        catalog.geofences.update(&id, |g: &mut Geofence| {
            g.area = patched(&g.area, patch.geometry, patch.radius_m)?;
            if let Some(name) = patch.name {
                g.name = name;
            }
            if let Some(limit) = patch.speed_limit_kmh {
                g.speed_limit_kmh = limit;
            }
            g.updated_ms = now_ms();
            Ok::<(), ApiError>(())
        })
    })
    .await?;
    Ok(Json(GeofenceView::new(&geofence)))
}

/// Deletes a geofence (operator).
#[utoipa::path(delete, path = "/api/v1/geofences/{id}", tag = "geofences",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn remove(
    State(api): State<Api>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Operator)?;
    let catalog = Arc::clone(&api.catalog);
    let key = id.clone();
    blocking(move || Ok(catalog.geofences.remove(&key).map(drop)?)).await?;
    tracing::info!(geofence = %id, by = %caller.name, "geofence deleted");
    Ok(StatusCode::NO_CONTENT)
}
