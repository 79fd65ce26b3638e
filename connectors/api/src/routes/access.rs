//! Logging in, the caller, users and API keys.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use drover_catalog::{ApiKey, Role, User};
use drover_protocols::model::now_ms;

use super::blocking;
use crate::Api;
use crate::auth::password::{self, MIN_PASSWORD_CHARS};
use crate::auth::{Caller, keys};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Body, ClientIp};
use crate::model::{
    KeyCreate, KeyCreated, KeyList, KeyView, LoginRequest, LoginResponse, Me, UserCreate, UserList,
    UserPatch, UserView, check_id, check_text,
};
use crate::positions::rfc3339;

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/me", get(me))
        .route("/api/v1/users", get(list_users).post(create_user))
        .route(
            "/api/v1/users/{username}",
            get(get_user).patch(patch_user).delete(delete_user),
        )
        .route("/api/v1/keys", get(list_keys).post(create_key))
        .route("/api/v1/keys/{id}", axum::routing::delete(delete_key))
}

/// Log in with a user name and password; the token goes in
/// `Authorization: Bearer`.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "access", security(()),
    request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 401, description = "wrong user name or password", body = ErrorBody),
        (status = 429, description = "too many failed logins", body = ErrorBody),
    ))]
async fn login(
    State(api): State<Api>,
    ClientIp(ip): ClientIp,
    Body(request): Body<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let (token, expires_s) = api
        .auth
        .login(&request.username, &request.password, ip)
        .await?;
    Ok(Json(LoginResponse {
        token,
        expires_at: rfc3339(expires_s.saturating_mul(1000)),
    }))
}

/// Who the credentials belong to, and their role.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "access",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
async fn me(caller: Caller) -> Json<Me> {
    Json(Me {
        name: caller.name,
        role: caller.role.into(),
    })
}

/// Every user (admin).
#[utoipa::path(get, path = "/api/v1/users", tag = "access",
    responses((status = 200, body = UserList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_users(State(api): State<Api>, caller: Caller) -> Result<Json<UserList>, ApiError> {
    caller.require(Role::Admin)?;
    let users = api
        .catalog
        .users
        .list()
        .iter()
        .map(UserView::from)
        .collect();
    Ok(Json(UserList { users }))
}

/// Creates a user (admin).
#[utoipa::path(post, path = "/api/v1/users", tag = "access", request_body = UserCreate,
    responses((status = 201, body = UserView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_user(
    State(api): State<Api>,
    caller: Caller,
    Body(request): Body<UserCreate>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    caller.require(Role::Admin)?;
    check_id("username", &request.username)?;
    check_password(&request.password)?;
    let user = blocking(move || {
        let now = now_ms();
        let user = User {
            username: request.username.clone(),
            role: request.role.into(),
            password_hash: password::hash(&request.password).map_err(ApiError::internal)?,
            created_ms: now,
            updated_ms: now,
        };
        Ok(api.catalog.users.insert(&request.username, user)?)
    })
    .await?;
    tracing::info!(user = %user.username, by = %caller.name, "user created");
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

/// One user (admin, or the user themself).
#[utoipa::path(get, path = "/api/v1/users/{username}", tag = "access",
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_user(
    State(api): State<Api>,
    caller: Caller,
    Path(username): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    require_self_or_admin(&caller, &username)?;
    let user = api
        .catalog
        .users
        .get(&username)
        .ok_or_else(|| ApiError::NotFound(format!("no user {username:?}")))?;
    Ok(Json(UserView::from(&user)))
}

/// Changes a user's password (admin, or the user themself) or role (admin).
#[utoipa::path(patch, path = "/api/v1/users/{username}", tag = "access", request_body = UserPatch,
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn patch_user(
    State(api): State<Api>,
    caller: Caller,
    Path(username): Path<String>,
    Body(patch): Body<UserPatch>,
) -> Result<Json<UserView>, ApiError> {
    require_self_or_admin(&caller, &username)?;
    if patch.role.is_some() {
        caller.require(Role::Admin)?;
    }
    if let Some(password) = &patch.password {
        check_password(password)?;
    }
    let catalog = Arc::clone(&api.catalog);
    let name = username.clone();
    let user = blocking(move || {
        let hash = match &patch.password {
            Some(p) => Some(password::hash(p).map_err(ApiError::internal)?),
            None => None,
        };
        let role = patch.role.map(Role::from);
        if role.is_some_and(|r| r != Role::Admin) {
            refuse_last_admin(&catalog, &name)?;
        }
        catalog.users.update(&name, |user: &mut User| {
            if let Some(hash) = hash {
                user.password_hash = hash;
            }
            if let Some(role) = role {
                user.role = role;
            }
            user.updated_ms = now_ms();
            Ok::<(), ApiError>(())
        })
    })
    .await?;
    tracing::info!(user = %username, by = %caller.name, "user changed");
    Ok(Json(UserView::from(&user)))
}

/// Deletes a user (admin). The last admin cannot be deleted.
#[utoipa::path(delete, path = "/api/v1/users/{username}", tag = "access",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_user(
    State(api): State<Api>,
    caller: Caller,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    let name = username.clone();
    blocking(move || {
        refuse_last_admin(&api.catalog, &name)?;
        api.catalog.users.remove(&name)?;
        Ok(())
    })
    .await?;
    tracing::info!(user = %username, by = %caller.name, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Every API key, without its secret (admin).
#[utoipa::path(get, path = "/api/v1/keys", tag = "access",
    responses((status = 200, body = KeyList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_keys(State(api): State<Api>, caller: Caller) -> Result<Json<KeyList>, ApiError> {
    caller.require(Role::Admin)?;
    let keys = api.catalog.keys.list().iter().map(KeyView::from).collect();
    Ok(Json(KeyList { keys }))
}

/// Creates an API key (admin). The key is in this answer only.
#[utoipa::path(post, path = "/api/v1/keys", tag = "access", request_body = KeyCreate,
    responses((status = 201, body = KeyCreated), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_key(
    State(api): State<Api>,
    caller: Caller,
    Body(request): Body<KeyCreate>,
) -> Result<(StatusCode, Json<KeyCreated>), ApiError> {
    caller.require(Role::Admin)?;
    if request.name.trim().is_empty() {
        return Err(ApiError::Unprocessable("name must not be empty".to_owned()));
    }
    check_text("name", Some(&request.name))?;
    let new = keys::generate();
    let key = ApiKey {
        id: new.id.clone(),
        name: request.name,
        role: request.role.into(),
        digest: new.digest,
        created_by: caller.name.clone(),
        created_ms: now_ms(),
    };
    let stored = blocking(move || Ok(api.catalog.keys.insert(&new.id, key)?)).await?;
    tracing::info!(key = %stored.id, by = %caller.name, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(KeyCreated {
            view: KeyView::from(&stored),
            key: new.key,
        }),
    ))
}

/// Revokes an API key (admin).
#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "access",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_key(
    State(api): State<Api>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    let key_id = id.clone();
    blocking(move || {
        api.catalog.keys.remove(&key_id)?;
        Ok(())
    })
    .await?;
    tracing::info!(key = %id, by = %caller.name, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}

fn require_self_or_admin(caller: &Caller, username: &str) -> Result<(), ApiError> {
    if caller.name == username {
        Ok(())
    } else {
        caller.require(Role::Admin)
    }
}

fn check_password(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::Unprocessable(format!(
            "password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// 409 if `username` is the only admin: a node must keep one.
fn refuse_last_admin(catalog: &drover_catalog::Catalog, username: &str) -> Result<(), ApiError> {
    let admins: Vec<User> = catalog
        .users
        .list()
        .into_iter()
        .filter(|u| u.role == Role::Admin)
        .collect();
    if admins.len() == 1 && admins[0].username == username {
        return Err(ApiError::Conflict(format!(
            "{username} is the only admin; make another admin first"
        )));
    }
    Ok(())
}
