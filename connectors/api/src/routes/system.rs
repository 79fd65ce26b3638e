//! What needs no login: health (the OpenAPI document and its docs page are
//! mounted by [`super::router`]).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use crate::Api;

pub fn routes() -> Router<Api> {
    Router::new().route("/health", get(health))
}

/// The node's state and counters: listeners, journal, engine, sinks, MQTT.
#[utoipa::path(get, path = "/health", tag = "system", security(()),
    responses((status = 200, description = "the node's counters", body = Object)))]
async fn health(State(api): State<Api>) -> Json<Value> {
    Json((api.health)())
}
