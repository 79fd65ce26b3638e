//! `GET /metrics` for Prometheus: public unless `auth.public_metrics` is
//! off, then for viewers and up.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use drover_catalog::Role;

use crate::Api;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::metrics::CONTENT_TYPE;

pub fn routes() -> Router<Api> {
    Router::new().route("/metrics", get(metrics))
}

/// The node's metrics in the Prometheus text format 0.0.4.
#[utoipa::path(get, path = "/metrics", tag = "system", security((), ("bearer" = [])),
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn metrics(
    State(api): State<Api>,
    caller: Result<Caller, ApiError>,
) -> Result<Response, ApiError> {
    if !api.metrics.public() {
        caller?.require(Role::Viewer)?;
    }
    let text = api.metrics.render().map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}
