//! The API's errors and their JSON form, `{"error": {"code", "message"}}`.
//!
//! Messages are written for the client. What went wrong inside (a storage
//! error, a panic) is logged with an id and never returned: the client gets
//! the id to quote.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use drover_catalog::CatalogError;
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer: a status, a stable code and a message for people.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (a parameter, a cursor, a time range).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no credentials, or credentials that are wrong or expired.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists, the method does not.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: it exists already, or is in use.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is larger than `http.max_body_bytes`.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: the body is not declared as JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 410: what the request points at is gone for good (a feed cursor
    /// older than the journal keeps).
    #[error("{0}")]
    Gone(String),
    /// 422: well-formed JSON that does not make a valid request.
    #[error("{0}")]
    Unprocessable(String),
    /// 429: too many attempts; `Retry-After` says when to come back.
    #[error("{message}")]
    TooMany {
        message: String,
        retry_after_secs: u64,
    },
    /// 503: a backend is down.
    #[error("{0}")]
    Unavailable(String),
    /// 503 with `Retry-After`: too much is waiting already.
    #[error("{0}")]
    Busy(String),
    /// 500: a fault inside the node. `what` is logged, not returned.
    #[error("internal error")]
    Internal { what: String },
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `bad_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `conflict`, `gone`, `payload_too_large`,
    /// `unsupported_media_type`, `unprocessable`, `too_many_requests`,
    /// `unavailable`, `busy`, `internal`.
    pub code: &'static str,
    /// For people.
    pub message: String,
}

/// Seconds a client told [`ApiError::Busy`] waits before it tries again.
const RETRY_AFTER_SECS: &str = "1";

/// Numbers internal errors so a client's report can be found in the log.
static INCIDENTS: AtomicU64 = AtomicU64::new(1);

impl ApiError {
    /// A fault inside the node, logged with its cause.
    pub fn internal(what: impl std::fmt::Display) -> ApiError {
        ApiError::Internal {
            what: what.to_string(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Gone(_) => (StatusCode::GONE, "gone"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            ApiError::TooMany { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            ApiError::Internal { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::Internal { what } => {
                let incident = INCIDENTS.fetch_add(1, Ordering::Relaxed);
                tracing::error!(incident, error = %what, "API request failed inside the node");
                format!("internal error (incident {incident}; the node's log has the cause)")
            }
            ApiError::Unavailable(_) | ApiError::Busy(_) => {
                tracing::warn!(error = %self, "API request refused");
                self.to_string()
            }
            _ => self.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.message(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        let retry_after = match &self {
            ApiError::Busy(_) => Some(HeaderValue::from_static(RETRY_AFTER_SECS)),
            ApiError::TooMany {
                retry_after_secs, ..
            } => Some(HeaderValue::from(*retry_after_secs)),
            _ => None,
        };
        if let Some(value) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::Exists { .. } | CatalogError::InUse { .. } => {
                ApiError::Conflict(error.to_string())
            }
            CatalogError::NotFound { .. } => ApiError::NotFound(error.to_string()),
            CatalogError::Engine { .. } | CatalogError::Corrupt { .. } => ApiError::internal(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn internal_errors_never_show_their_cause() {
        let response =
            ApiError::internal("fjall: /var/lib/drover/catalog: disk full").into_response();
        assert_eq!(response.status(), 500);
        let json = body(response).await;
        assert_eq!(json["error"]["code"], "internal");
        let message = json["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains("fjall") && message.contains("incident"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn throttled_and_busy_answers_say_when_to_retry() {
        let throttled = ApiError::TooMany {
            message: "slow down".into(),
            retry_after_secs: 42,
        }
        .into_response();
        assert_eq!(throttled.status(), 429);
        assert_eq!(throttled.headers()[header::RETRY_AFTER], "42");
        let busy = ApiError::Busy("later".into()).into_response();
        assert_eq!(busy.status(), 503);
        assert_eq!(busy.headers()[header::RETRY_AFTER], "1");
        let denied = ApiError::Unauthorized("who are you".into()).into_response();
        assert_eq!(denied.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
