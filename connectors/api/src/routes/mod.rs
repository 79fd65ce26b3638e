//! The routes, the OpenAPI document built from them, and the layers every
//! request passes: body limit, timeout, concurrency limit, HTTP metrics,
//! CORS, security headers.

mod access;
mod alerts;
mod commands;
mod dashboard;
mod devices;
mod feed;
mod geofences;
mod groups;
mod metrics;
mod notifications;
mod stream;
mod summaries;
mod system;
pub(crate) mod trips;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use drover_engine::DeviceState;
use drover_protocols::model::DeviceId;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::Api;
use crate::error::ApiError;

#[derive(OpenApi)]
#[openapi(
    info(title = "Drover API", description = "Fleet telematics: devices, live state, history, commands. See docs/api.md."),
    paths(
        access::login, access::me, access::list_users, access::create_user, access::get_user,
        access::patch_user, access::delete_user, access::list_keys, access::create_key,
        access::delete_key,
        devices::list, devices::create, devices::one, devices::patch, devices::remove,
        devices::unknown, devices::positions, trips::trips, trips::stops, summaries::summaries,
        stream::stream,
        alerts::list, alerts::acknowledge, alerts::close,
        notifications::list, notifications::create, notifications::one, notifications::remove,
        groups::list, groups::create, groups::one, groups::patch, groups::remove,
        geofences::list, geofences::create, geofences::one, geofences::patch, geofences::remove,
        feed::feed,
        commands::submit, commands::one, commands::list,
        system::health, metrics::metrics,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "access", description = "Logging in, users and API keys"),
        (name = "devices", description = "The device registry, live state and history"),
        (name = "trips", description = "Trips, from where a vehicle started to where it stopped, and the stops between them"),
        (name = "alerts", description = "Alerts: raised by the engine, acknowledged and closed by operators"),
        (name = "notifications", description = "Who is told about which alerts: webhooks, email, MQTT"),
        (name = "groups", description = "Groups of devices"),
        (name = "geofences", description = "Areas on the map: circles and polygons"),
        (name = "feed", description = "Every committed record once, in order, for integrators"),
        (name = "commands", description = "Commands to devices and their answers"),
        (name = "system", description = "Health, metrics and documentation"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi).clone()
}

/// The API's routes with their layers, and JSON errors for unknown routes
/// and methods.
pub fn router(api: Api) -> Router {
    let limits = api.limits.clone();
    let http_metrics = api.metrics.http();
    let routes = Router::new()
        .merge(access::routes())
        .merge(devices::routes())
        .merge(trips::routes())
        .merge(summaries::routes())
        .merge(alerts::routes())
        .merge(notifications::routes())
        .merge(groups::routes())
        .merge(geofences::routes())
        .merge(commands::routes())
        .merge(feed::routes())
        .merge(system::routes())
        .merge(metrics::routes())
        .merge(dashboard::routes(&api.dashboard))
        .fallback(|| async { ApiError::NotFound("no such route".to_owned()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("this route does not take that method".to_owned())
        })
        .with_state(api.clone())
        .merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", openapi()));
    let routes = routes
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        // Global: Router::layer wraps each route apart, and a plain
        // concurrency limit would give every route its own budget.
        .layer(GlobalConcurrencyLimitLayer::new(
            limits.max_concurrent.max(1),
        ))
        // A stream lives for hours: neither the request timeout nor a
        // request's turn applies to it once upgraded.
        .merge(stream::routes().with_state(api))
        // Outside the limits: a request's time includes its wait for a turn.
        .layer(axum::middleware::from_fn_with_state(
            http_metrics,
            crate::metrics::record,
        ));
    let routes = match cors(&limits.cors_origins) {
        Some(cors) => routes.layer(cors),
        None => routes,
    };
    security_headers(routes)
}

/// CORS for the configured origins only; none configured, none allowed.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
    )
}

fn security_headers(router: Router) -> Router {
    let set = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    router
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(set(header::X_FRAME_OPTIONS, "DENY"))
        .layer(set(header::REFERRER_POLICY, "no-referrer"))
        .layer(set(header::CACHE_CONTROL, "no-store"))
}

/// `value` as a JSON response, serialized straight to bytes: answers as
/// large as a device list are not built as a `serde_json::Value` tree first.
pub(crate) fn json_bytes<T: serde::Serialize>(value: &T) -> axum::response::Response {
    use axum::response::IntoResponse;
    match serde_json::to_vec(value) {
        Ok(bytes) => json_response(bytes),
        Err(error) => ApiError::internal(format!("serializing an answer: {error}")).into_response(),
    }
}

/// An answer already written as JSON.
pub(crate) fn json_response(bytes: Vec<u8>) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

/// A list's page size: `limit` or 100, from 1 to 1,000 (400 otherwise).
pub(crate) fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    const DEFAULT_PAGE: usize = 100;
    const MAX_PAGE: usize = 1_000;
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::BadRequest(format!(
            "limit must be from 1 to {MAX_PAGE}, not {limit}"
        )))
    }
}

/// Runs catalog work that fsyncs off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)?
}

/// One device's state as of the engine's last tick.
pub(crate) fn live_device(api: &Api, id: &str) -> Option<Arc<DeviceState>> {
    api.live.load().get(&DeviceId::new(id)).cloned()
}
