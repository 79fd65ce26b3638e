//! Extractors that answer bad input in the API's JSON error form: the
//! caller from `Authorization`, the client's address, JSON bodies and query
//! strings.

use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::Api;
use crate::auth::Caller;
use crate::error::ApiError;

/// The bearer credential of a request, if it has one.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not text".to_owned()))?;
    match text.split_once(' ') {
        Some((scheme, credential)) if scheme.eq_ignore_ascii_case("bearer") => {
            Ok(Some(credential.trim()))
        }
        _ => Err(ApiError::Unauthorized(
            "use Authorization: Bearer <token or API key>".to_owned(),
        )),
    }
}

impl FromRequestParts<Api> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, Self::Rejection> {
        let credential = bearer(&parts.headers)?.ok_or_else(|| {
            ApiError::Unauthorized(
                "this needs Authorization: Bearer <token or API key>; log in at POST /api/v1/auth/login"
                    .to_owned(),
            )
        })?;
        api.auth.authenticate(credential)
    }
}

/// The address the request came from (unspecified when the server was not
/// started with connection info, as in unit tests).
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |info| info.0.ip());
        Ok(ClientIp(ip))
    }
}

/// A JSON body: 400 when it is not JSON, 422 when it does not fit, 413
/// when it is too large, 415 without `Content-Type: application/json`.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(body_error(rejection)),
        }
    }
}

fn body_error(rejection: JsonRejection) -> ApiError {
    let message = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => ApiError::Unprocessable(message),
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(message),
        JsonRejection::BytesRejection(_) if rejection.status().as_u16() == 413 => {
            ApiError::PayloadTooLarge("the request body is too large".to_owned())
        }
        _ => ApiError::BadRequest(message),
    }
}

/// Query parameters: 400 when they do not fit `T`.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Params(value)),
            Err(rejection) => Err(query_error(&rejection)),
        }
    }
}

fn query_error(rejection: &QueryRejection) -> ApiError {
    ApiError::BadRequest(rejection.body_text())
}
