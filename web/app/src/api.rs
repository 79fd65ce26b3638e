//! The REST API as the dashboard uses it: one client that adds the token
//! and turns the API's JSON errors into messages, and the shapes of what it
//! answers (only the fields the dashboard reads; others are ignored).

use std::fmt;

use gloo_net::http::{Method, RequestBuilder};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::session::Auth;

/// Calls the API as the logged-in user; a 401 ends the session.
#[derive(Clone, Copy)]
pub struct Client {
    auth: Auth,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// The API answered with an error status and its message.
    Status { status: u16, message: String },
    /// The request did not get an answer (network, node down).
    Network(String),
    /// The answer was not what the dashboard expects.
    Decode(String),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Status { message, .. } => f.write_str(message),
            ApiError::Network(error) => write!(f, "the server did not answer: {error}"),
            ApiError::Decode(error) => write!(f, "unexpected answer: {error}"),
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: String,
}

impl Client {
    pub fn new(auth: Auth) -> Self {
        Client { auth }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.send(Method::GET, path, None::<&()>).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.send(Method::PATCH, path, Some(body)).await
    }

    /// A list read page by page through `next_cursor` (`path` has its query
    /// already), at most `max_pages` pages; the flag says whether more were
    /// left.
    pub async fn pages<T: DeserializeOwned>(
        &self,
        path: &str,
        max_pages: usize,
    ) -> Result<(Vec<T>, bool), ApiError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..max_pages {
            let page: Page<T> = match &cursor {
                Some(c) => self.get(&format!("{path}&cursor={}", encode(c))).await?,
                None => self.get(path).await?,
            };
            all.extend(page.items);
            cursor = page.next_cursor;
            if cursor.is_none() {
                return Ok((all, false));
            }
        }
        Ok((all, true))
    }

    pub async fn delete(&self, path: &str) -> Result<(), ApiError> {
        self.send::<(), Value>(Method::DELETE, path, None)
            .await
            .map(drop)
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ApiError> {
        let mut request = RequestBuilder::new(path).method(method);
        if let Some(token) = self.auth.token() {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request.json(body),
            None => request.build(),
        }
        .map_err(|e| ApiError::Network(e.to_string()))?;
        let response = request
            .send()
            .await
            .map_err(|e| ApiError::Network(e.to_string()))?;
        let status = response.status();
        if status == 401 {
            self.auth.expire();
        }
        let text = response
            .text()
            .await
            .map_err(|e| ApiError::Network(e.to_string()))?;
        if !(200..300).contains(&status) {
            let message = serde_json::from_str::<ErrorBody>(&text)
                .map(|b| b.error.message)
                .unwrap_or_else(|_| format!("the server answered {status}"));
            return Err(ApiError::Status { status, message });
        }
        // 204 and other empty answers read as JSON null.
        let text = if text.is_empty() { "null" } else { &text };
        serde_json::from_str(text).map_err(|e| ApiError::Decode(e.to_string()))
    }
}

/// Logs in without a session: the token and when it expires.
pub async fn login(username: &str, password: &str) -> Result<Token, ApiError> {
    let body = serde_json::json!({ "username": username, "password": password });
    let response = RequestBuilder::new("/api/v1/auth/login")
        .method(Method::POST)
        .json(&body)
        .map_err(|e| ApiError::Network(e.to_string()))?
        .send()
        .await
        .map_err(|e| ApiError::Network(e.to_string()))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| ApiError::Network(e.to_string()))?;
    match status {
        200 => serde_json::from_str(&text).map_err(|e| ApiError::Decode(e.to_string())),
        401 => Err(ApiError::Status {
            status,
            message: "Wrong user name or password.".to_owned(),
        }),
        _ => Err(ApiError::Status {
            status,
            message: serde_json::from_str::<ErrorBody>(&text)
                .map(|b| b.error.message)
                .unwrap_or_else(|_| format!("the server answered {status}")),
        }),
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Token {
    pub token: String,
    pub expires_at: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Me {
    pub name: String,
    pub role: crate::session::Role,
}

/// `GET /api/v1/devices/{id}` and the stream's snapshot entries.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Device {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub registered: bool,
    #[serde(default)]
    pub disabled: bool,
    /// `online`, `offline` or `never`.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub last_seen: Option<String>,
    #[serde(default)]
    pub speed_limit_kmh: Option<f64>,
    #[serde(default)]
    pub state: Option<LiveState>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default)]
pub struct LiveState {
    pub protocol: String,
    pub last_fix: Option<LastFix>,
    pub kinematics: Kinematics,
    pub ignition: Option<bool>,
    pub power: Power,
    pub obd: Obd,
    pub attributes: Map<String, Value>,
    pub usage: Option<Usage>,
    pub odometer_m: Option<f64>,
    pub trip: Option<Trip>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LastFix {
    pub time_ms: f64,
    pub fix: Fix,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Fix {
    pub lat: f64,
    pub lon: f64,
    pub speed_kmh: f64,
    pub course_deg: f64,
    #[serde(default)]
    pub altitude_m: Option<f64>,
    #[serde(default)]
    pub satellites: Option<u32>,
    #[serde(default)]
    pub valid: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default)]
pub struct Kinematics {
    pub speed_kmh: f64,
    pub course_deg: f64,
    pub moving: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default)]
pub struct Power {
    pub external_v: Option<f64>,
    pub battery_v: Option<f64>,
    pub battery_level_pct: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default)]
pub struct Obd {
    pub rpm: Option<f64>,
    pub coolant_temp_c: Option<f64>,
    pub engine_load_pct: Option<f64>,
    pub fuel_level_pct: Option<f64>,
    pub throttle_pct: Option<f64>,
    pub obd_speed_kmh: Option<f64>,
    pub odometer_m: Option<f64>,
    pub fault_count: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default)]
pub struct Usage {
    pub ignition: Option<bool>,
    pub engine_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Page<T> {
    #[serde(
        alias = "devices",
        alias = "alerts",
        alias = "geofences",
        alias = "trips",
        alias = "positions"
    )]
    pub items: Vec<T>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Alert {
    pub id: String,
    pub device: String,
    pub kind: String,
    pub severity: String,
    /// `open`, `acknowledged` or `closed`.
    pub state: String,
    pub opened_at: String,
    #[serde(default)]
    pub details: Value,
}

impl Alert {
    pub fn is_closed(&self) -> bool {
        self.state == "closed"
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Place {
    pub time: String,
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Trip {
    pub id: String,
    pub device: String,
    pub start: Place,
    #[serde(default)]
    pub end: Option<Place>,
    #[serde(default)]
    pub open: bool,
    #[serde(default)]
    pub distance_m: f64,
    #[serde(default)]
    pub duration_s: Option<f64>,
    #[serde(default)]
    pub max_speed_kmh: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Position {
    pub time: String,
    pub lat: f64,
    pub lon: f64,
    #[serde(default)]
    pub speed_kmh: f64,
    #[serde(default)]
    pub course_deg: f64,
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Group {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Groups {
    pub groups: Vec<Group>,
}

/// The answer of `POST …/commands` and a command's record.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Command {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub command: Value,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub created_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Commands {
    pub commands: Vec<Command>,
}

/// A path segment or query value, percent-encoded.
pub fn encode(value: &str) -> String {
    String::from(js_sys::encode_uri_component(value))
}

/// Who a fresh token belongs to.
pub async fn me(token: &str) -> Result<Me, ApiError> {
    let response = RequestBuilder::new("/api/v1/auth/me")
        .header("Authorization", &format!("Bearer {token}"))
        .send()
        .await
        .map_err(|e| ApiError::Network(e.to_string()))?;
    if response.status() != 200 {
        return Err(ApiError::Status {
            status: response.status(),
            message: format!("the server answered {}", response.status()),
        });
    }
    response
        .json()
        .await
        .map_err(|e| ApiError::Decode(e.to_string()))
}
