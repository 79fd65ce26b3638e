//! Notification rules: which alerts are sent where (webhook, email, MQTT).
//! Operators read them (without webhook secrets); admins make and delete
//! them, since a rule sends fleet data out of the node.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use drover_catalog::{Channel, NotificationRule, Role};
use drover_protocols::model::now_ms;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::blocking;
use crate::Api;
use crate::auth::Caller;
use crate::auth::secret::random_hex;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Body;
use crate::model::{check_id, check_name};
use crate::positions::rfc3339;

/// Most entries in each of a rule's lists, and most rules.
const MAX_LIST: usize = 100;
const MAX_RULES: usize = 1_000;
const MAX_URL: usize = 2_048;
const STATES: [&str; 3] = ["open", "acknowledged", "closed"];

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/api/v1/notifications", get(list).post(create))
        .route("/api/v1/notifications/{id}", get(one).delete(remove))
}

/// A new rule.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationCreate {
    #[schema(min_length = 1, max_length = 128, pattern = r"\S")]
    name: String,
    /// Alert kinds (snake_case); absent or empty: every kind.
    #[serde(default)]
    kinds: Vec<String>,
    /// Devices; with `groups` absent too: every device.
    #[serde(default)]
    devices: Vec<String>,
    /// Groups whose devices it covers.
    #[serde(default)]
    groups: Vec<String>,
    /// The alert states that notify: `open` (default), `acknowledged`, `closed`.
    states: Option<Vec<String>>,
    channel: ChannelBody,
}

/// Where the notifications go.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChannelBody {
    /// An HTTP POST of the alert's JSON; with a `secret`, signed in
    /// `X-Drover-Signature: sha256=<hex HMAC-SHA256 of the body>`.
    Webhook {
        url: String,
        #[serde(default, skip_serializing)]
        secret: Option<String>,
    },
    /// A plain-text email to each address (needs `[notifications.smtp]`).
    Email { to: Vec<String> },
    /// The alert's JSON on `{prefix}/notifications/{rule id}`.
    Mqtt,
}

/// A rule as the API shows it: webhook secrets are never shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationView {
    id: String,
    name: String,
    kinds: Vec<String>,
    devices: Vec<String>,
    groups: Vec<String>,
    states: Vec<String>,
    channel: ChannelBody,
    /// Whether the webhook signs its bodies.
    #[serde(skip_serializing_if = "Option::is_none")]
    signed: Option<bool>,
    created: String,
}

impl NotificationView {
    fn new(rule: &NotificationRule) -> Self {
        let (channel, signed) = match &rule.channel {
            Channel::Webhook { url, secret } => (
                ChannelBody::Webhook {
                    url: url.clone(),
                    secret: None,
                },
                Some(secret.is_some()),
            ),
            Channel::Email { to } => (ChannelBody::Email { to: to.clone() }, None),
            Channel::Mqtt => (ChannelBody::Mqtt, None),
        };
        NotificationView {
            id: rule.id.clone(),
            name: rule.name.clone(),
            kinds: rule.kinds.clone(),
            devices: rule.devices.clone(),
            groups: rule.groups.clone(),
            states: rule.states.clone(),
            channel,
            signed,
            created: rfc3339(rule.created_ms),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationList {
    notifications: Vec<NotificationView>,
}

/// Every rule, in id order (operator).
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications",
    responses((status = 200, body = NotificationList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list(State(api): State<Api>, caller: Caller) -> Result<Json<NotificationList>, ApiError> {
    caller.require(Role::Operator)?;
    let rules = api.catalog.notifications.list();
    Ok(Json(NotificationList {
        notifications: rules.iter().map(NotificationView::new).collect(),
    }))
}

/// One rule (operator).
#[utoipa::path(get, path = "/api/v1/notifications/{id}", tag = "notifications",
    responses((status = 200, body = NotificationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn one(
    State(api): State<Api>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<NotificationView>, ApiError> {
    caller.require(Role::Operator)?;
    let rule = api
        .catalog
        .notifications
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no notification rule {id:?}")))?;
    Ok(Json(NotificationView::new(&rule)))
}

/// Creates a rule (admin); its id is chosen by the server.
#[utoipa::path(post, path = "/api/v1/notifications", tag = "notifications", request_body = NotificationCreate,
    responses((status = 201, body = NotificationView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create(
    State(api): State<Api>,
    caller: Caller,
    Body(request): Body<NotificationCreate>,
) -> Result<(StatusCode, Json<NotificationView>), ApiError> {
    caller.require(Role::Admin)?;
    if api.catalog.notifications.len() >= MAX_RULES {
        return Err(ApiError::Conflict(format!(
            "a node holds at most {MAX_RULES} notification rules"
        )));
    }
    let rule = rule(&api, request)?;
    let catalog = Arc::clone(&api.catalog);
    let rule = blocking(move || Ok(catalog.notifications.insert(&rule.id.clone(), rule)?)).await?;
    tracing::info!(rule = %rule.id, by = %caller.name, "notification rule created");
    Ok((StatusCode::CREATED, Json(NotificationView::new(&rule))))
}

/// Deletes a rule (admin).
#[utoipa::path(delete, path = "/api/v1/notifications/{id}", tag = "notifications",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove(
    State(api): State<Api>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    let catalog = Arc::clone(&api.catalog);
    let key = id.clone();
    blocking(move || Ok(catalog.notifications.remove(&key).map(drop)?)).await?;
    tracing::info!(rule = %id, by = %caller.name, "notification rule deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The rule `request` asks for, checked (422 for what cannot work).
fn rule(api: &Api, request: NotificationCreate) -> Result<NotificationRule, ApiError> {
    check_name(&request.name)?;
    for list in [&request.kinds, &request.devices, &request.groups] {
        if list.len() > MAX_LIST {
            return Err(ApiError::Unprocessable(format!(
                "kinds, devices and groups hold at most {MAX_LIST} entries each"
            )));
        }
    }
    for kind in &request.kinds {
        let snake = (1..=64).contains(&kind.len())
            && kind
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !snake {
            return Err(ApiError::Unprocessable(format!(
                "alert kinds are snake_case, such as overspeed or sos, not {kind:?}"
            )));
        }
    }
    for device in &request.devices {
        check_id("a device id", device)?;
    }
    for group in &request.groups {
        if api.catalog.groups.get(group).is_none() {
            return Err(ApiError::Unprocessable(format!("no group {group:?}")));
        }
    }
    let states = request.states.unwrap_or_else(|| vec!["open".to_owned()]);
    if states.is_empty() || states.iter().any(|s| !STATES.contains(&s.as_str())) {
        return Err(ApiError::Unprocessable(format!(
            "states are one or more of open, acknowledged and closed, not {states:?}"
        )));
    }
    Ok(NotificationRule {
        id: format!("nr_{}", random_hex(8)),
        name: request.name,
        kinds: request.kinds,
        devices: request.devices,
        groups: request.groups,
        states,
        channel: channel(api, request.channel)?,
        created_ms: now_ms(),
    })
}

fn channel(api: &Api, body: ChannelBody) -> Result<Channel, ApiError> {
    match body {
        ChannelBody::Webhook { url, secret } => {
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.len() > MAX_URL
                || url.contains(char::is_whitespace)
            {
                return Err(ApiError::Unprocessable(format!(
                    "a webhook url is http:// or https:// (up to {MAX_URL} characters), not {url:?}"
                )));
            }
            if secret
                .as_ref()
                .is_some_and(|s| s.is_empty() || s.len() > 256)
            {
                return Err(ApiError::Unprocessable(
                    "a webhook secret is 1 to 256 characters".to_owned(),
                ));
            }
            Ok(Channel::Webhook { url, secret })
        }
        ChannelBody::Email { to } => {
            if !api.alerts.email {
                return Err(ApiError::Unprocessable(
                    "email needs an SMTP relay: set [notifications.smtp] host".to_owned(),
                ));
            }
            if to.is_empty() || to.len() > MAX_LIST || !to.iter().all(|a| looks_like_address(a)) {
                return Err(ApiError::Unprocessable(format!(
                    "`to` holds 1 to {MAX_LIST} email addresses, not {to:?}"
                )));
            }
            Ok(Channel::Email { to })
        }
        ChannelBody::Mqtt => Ok(Channel::Mqtt),
    }
}

/// `local@domain`, no spaces, no angle brackets: what the mailer can parse.
fn looks_like_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    address.len() <= 254
        && !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !address.contains(|c: char| c.is_whitespace() || c == '<' || c == '>')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_local_at_domain() {
        assert!(looks_like_address("ops@example.com"));
        for bad in ["ops", "@example.com", "ops@", "a@b@c", "a b@c", "<a@b>"] {
            assert!(!looks_like_address(bad), "{bad}");
        }
    }

    #[test]
    fn a_view_never_shows_the_secret() {
        let rule = NotificationRule {
            id: "nr_1".to_owned(),
            name: "ops".to_owned(),
            kinds: vec![],
            devices: vec![],
            groups: vec![],
            states: vec!["open".to_owned()],
            channel: Channel::Webhook {
                url: "https://example.com/hook".to_owned(),
                secret: Some("s3cret".to_owned()),
            },
            created_ms: 0,
        };
        let json = serde_json::to_string(&NotificationView::new(&rule)).unwrap();
        assert!(!json.contains("s3cret"), "{json}");
        assert!(json.contains(r#""signed":true"#), "{json}");
    }
}
