//! Commands for devices: submitted by operators, read by anyone logged in.
//! The JSON of a command record is the one MQTT publishes on
//! `…/command/result` (docs/api.md, docs/mqtt.md).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use drover_catalog::Role;
use drover_commands::{CommandError, CommandId, CommandRecord, CommandRequest, Status};
use drover_protocols::model::DeviceId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::devices::unknown_device;
use super::live_device;
use crate::Api;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Body, Params};

/// Commands per page when the request does not say, and at most.
const DEFAULT_LIST: usize = 100;
const MAX_LIST: usize = 1_000;
/// When a client refused for too many open commands may try again: they
/// end within the answer timeout, a minute by default.
const RETRY_OPEN_SECS: u64 = 60;

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/api/v1/devices/{id}/commands", get(list).post(submit))
        .route("/api/v1/commands/{id}", get(one))
}

/// What a submission answers: where to follow the command.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// For `GET /api/v1/commands/{id}`.
    pub id: String,
    /// `queued`, or `sent` when the device was connected.
    #[schema(value_type = String)]
    pub status: Status,
}

/// A device's commands, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommandList {
    pub device: String,
    /// Command records, as `GET /api/v1/commands/{id}` returns them.
    #[schema(value_type = Vec<Object>)]
    pub commands: Vec<CommandRecord>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Commands to return, 1 to 1000 (default 100).
    limit: Option<usize>,
}

/// Queues a command for a device and sends it at once if the device is
/// connected (operator). The body is the command's JSON form, e.g.
/// `{"type": "engine_stop"}` or `{"type": "set_interval", "secs": 30}`,
/// with optional `ttl_secs` (default a day) and `attempts` (default 3).
#[utoipa::path(post, path = "/api/v1/devices/{id}/commands", tag = "commands",
    request_body(content = Object, description = "A command: `type` (engine_stop, engine_resume, set_interval with `secs`, reboot, custom with `text`), optional `ttl_secs` and `attempts`"),
    responses((status = 202, body = Accepted), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
async fn submit(
    State(api): State<Api>,
    caller: Caller,
    Path(id): Path<String>,
    Body(request): Body<CommandRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    caller.require(Role::Operator)?;
    if !known(&api, &id) {
        return Err(unknown_device(&id));
    }
    let command = request.command.name();
    let record = api
        .commands
        .submit(DeviceId::new(&id), request)
        .await
        .map_err(command_error)?;
    tracing::info!(imei = %id, command_id = %record.id, command, by = %caller.name, "command submitted");
    let accepted = Accepted {
        id: record.id.to_string(),
        status: record.status,
    };
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

/// One command: its status, the device's answer in `result`, or why it
/// failed or expired in `error`.
#[utoipa::path(get, path = "/api/v1/commands/{id}", tag = "commands",
    responses((status = 200, body = Object, description = "The command record"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn one(
    State(api): State<Api>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CommandRecord>, ApiError> {
    let no_command = || ApiError::NotFound(format!("no command {id:?}"));
    let command_id: CommandId = id.parse().map_err(|_| no_command())?;
    match api.commands.get(command_id).await.map_err(command_error)? {
        Some(record) => Ok(Json(record)),
        None => Err(no_command()),
    }
}

/// A device's latest commands, newest first.
#[utoipa::path(get, path = "/api/v1/devices/{id}/commands", tag = "commands", params(ListParams),
    responses((status = 200, body = CommandList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn list(
    State(api): State<Api>,
    _caller: Caller,
    Path(id): Path<String>,
    Params(params): Params<ListParams>,
) -> Result<Json<CommandList>, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_LIST);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be from 1 to {MAX_LIST}, not {limit}"
        )));
    }
    let commands = api
        .commands
        .list(DeviceId::new(&id), limit)
        .await
        .map_err(command_error)?;
    // A device the node forgot still shows the commands it had.
    if commands.is_empty() && !known(&api, &id) {
        return Err(unknown_device(&id));
    }
    Ok(Json(CommandList {
        device: id,
        commands,
    }))
}

/// Registered, or reporting (the live view).
fn known(api: &Api, id: &str) -> bool {
    api.catalog.devices.get(id).is_some() || live_device(api, id).is_some()
}

fn command_error(error: CommandError) -> ApiError {
    match error {
        CommandError::Invalid(_) => ApiError::Unprocessable(error.to_string()),
        CommandError::TooMany { .. } => ApiError::TooMany {
            message: error.to_string(),
            retry_after_secs: RETRY_OPEN_SECS,
        },
        _ => ApiError::internal(error),
    }
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;
    use drover_commands::InvalidRequest;

    use super::*;

    #[test]
    fn queue_errors_map_to_what_the_client_can_do() {
        let status = |error| command_error(error).into_response().status().as_u16();
        assert_eq!(
            status(CommandError::Invalid(InvalidRequest::Attempts(0))),
            422
        );
        let too_many = CommandError::TooMany {
            device: DeviceId::new("359339075005244"),
            open: 32,
        };
        assert_eq!(status(too_many), 429);
        let id: CommandId = "01KB6R1Z3D0000000000000000".parse().unwrap();
        assert_eq!(status(CommandError::Missing(id)), 500);
    }
}
