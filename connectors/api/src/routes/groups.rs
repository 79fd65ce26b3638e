//! Groups of devices.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use drover_catalog::{Group, Role};
use drover_protocols::model::now_ms;

use super::blocking;
use crate::Api;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Body;
use crate::model::{GroupCreate, GroupList, GroupPatch, GroupView, check_id, check_name};

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/api/v1/groups", get(list).post(create))
        .route("/api/v1/groups/{id}", get(one).patch(patch).delete(remove))
}

fn members(api: &Api, id: &str) -> usize {
    api.catalog
        .devices
        .list()
        .iter()
        .filter(|d| d.group.as_deref() == Some(id))
        .count()
}

/// Every group.
#[utoipa::path(get, path = "/api/v1/groups", tag = "groups",
    responses((status = 200, body = GroupList), (status = 401, body = ErrorBody)))]
async fn list(State(api): State<Api>, _caller: Caller) -> Json<GroupList> {
    let devices = api.catalog.devices.list();
    let groups = api
        .catalog
        .groups
        .list()
        .iter()
        .map(|g| {
            let n = devices
                .iter()
                .filter(|d| d.group.as_deref() == Some(&g.id))
                .count();
            GroupView::new(g, n)
        })
        .collect();
    Json(GroupList { groups })
}

/// Creates a group (operator).
#[utoipa::path(post, path = "/api/v1/groups", tag = "groups", request_body = GroupCreate,
    responses((status = 201, body = GroupView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create(
    State(api): State<Api>,
    caller: Caller,
    Body(request): Body<GroupCreate>,
) -> Result<(StatusCode, Json<GroupView>), ApiError> {
    caller.require(Role::Operator)?;
    check_id("id", &request.id)?;
    check_name(&request.name)?;
    let now = now_ms();
    let group = Group {
        id: request.id,
        name: request.name,
        created_ms: now,
        updated_ms: now,
    };
    let catalog = Arc::clone(&api.catalog);
    let group = blocking(move || Ok(catalog.groups.insert(&group.id.clone(), group)?)).await?;
    tracing::info!(group = %group.id, by = %caller.name, "group created");
    Ok((StatusCode::CREATED, Json(GroupView::new(&group, 0))))
}

/// One group.
#[utoipa::path(get, path = "/api/v1/groups/{id}", tag = "groups",
    responses((status = 200, body = GroupView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn one(
    State(api): State<Api>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<GroupView>, ApiError> {
    let group = api
        .catalog
        .groups
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no group {id:?}")))?;
    Ok(Json(GroupView::new(&group, members(&api, &id))))
}

/// Renames a group (operator).
#[utoipa::path(patch, path = "/api/v1/groups/{id}", tag = "groups", request_body = GroupPatch,
    responses((status = 200, body = GroupView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn patch(
    State(api): State<Api>,
    caller: Caller,
    Path(id): Path<String>,
    Body(patch): Body<GroupPatch>,
) -> Result<Json<GroupView>, ApiError> {
    caller.require(Role::Operator)?;
    check_name(&patch.name)?;
    let catalog = Arc::clone(&api.catalog);
    let key = id.clone();
    let group = blocking(move || {
        catalog.groups.update(&key, |g: &mut Group| {
            g.name = patch.name;
            g.updated_ms = now_ms();
            Ok::<(), ApiError>(())
        })
    })
    .await?;
    Ok(Json(GroupView::new(&group, members(&api, &id))))
}

/// Deletes a group (operator); 409 while devices belong to it.
#[utoipa::path(delete, path = "/api/v1/groups/{id}", tag = "groups",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn remove(
    State(api): State<Api>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Operator)?;
    let catalog = Arc::clone(&api.catalog);
    let key = id.clone();
    blocking(move || {
        catalog.delete_group(&key)?;
        Ok(())
    })
    .await?;
    tracing::info!(group = %id, by = %caller.name, "group deleted");
    Ok(StatusCode::NO_CONTENT)
}
