//! The JSON the API accepts and returns, with its OpenAPI schemas.
//!
//! Inputs reject unknown fields (a typo must not be silently ignored);
//! PATCH bodies tell "absent: unchanged" from "null: cleared".

use std::sync::Arc;

use drover_catalog::{ApiKey, Device, Group, Role, User};
use drover_engine::DeviceState;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::positions::{Position, rfc3339};
use crate::routes::trips::{StopView, TripView};

/// Deserializes a present field, null included, as `Some`: with
/// `#[serde(default)]`, an absent one stays `None`.
pub(crate) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Longest id, user name or name the API accepts.
const MAX_NAME_CHARS: usize = 128;

/// 422 unless `value` is a usable identifier: 1 to 64 characters from
/// letters, digits, `-`, `_`, `.` and `:`.
pub fn check_id(what: &str, value: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(format!(
            "{what} must be 1 to 64 letters, digits, '-', '_', '.' or ':', not {value:?}"
        )))
    }
}

/// 422 when a free-text field is too long.
pub fn check_text(what: &str, value: Option<&str>) -> Result<(), ApiError> {
    match value {
        Some(v) if v.chars().count() > MAX_NAME_CHARS => Err(ApiError::Unprocessable(format!(
            "{what} is longer than {MAX_NAME_CHARS} characters"
        ))),
        _ => Ok(()),
    }
}

/// 422 unless `name` is a usable display name: not blank, not too long.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() {
        return Err(ApiError::Unprocessable("name must not be empty".to_owned()));
    }
    check_text("name", Some(name))
}

/// What a user or key may do: `admin`, `operator` (the fleet) or `viewer` (reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleName {
    Admin,
    Operator,
    Viewer,
}

impl From<RoleName> for Role {
    fn from(role: RoleName) -> Role {
        match role {
            RoleName::Admin => Role::Admin,
            RoleName::Operator => Role::Operator,
            RoleName::Viewer => Role::Viewer,
        }
    }
}

impl From<Role> for RoleName {
    fn from(role: Role) -> RoleName {
        match role {
            Role::Admin => RoleName::Admin,
            Role::Operator => RoleName::Operator,
            Role::Viewer => RoleName::Viewer,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// The caller, as `GET /api/v1/auth/me` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// A user name, or `key:{id}` for an API key.
    pub name: String,
    pub role: RoleName,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    #[schema(pattern = r"^[A-Za-z0-9._:-]{1,64}$")]
    pub username: String,
    /// At least 8 characters.
    #[schema(min_length = 8)]
    pub password: String,
    pub role: RoleName,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default)]
    #[schema(min_length = 8)]
    pub password: Option<String>,
    #[serde(default)]
    pub role: Option<RoleName>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub username: String,
    pub role: RoleName,
    pub created: String,
    pub updated: String,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        UserView {
            username: user.username.clone(),
            role: user.role.into(),
            created: rfc3339(user.created_ms),
            updated: rfc3339(user.updated_ms.max(user.created_ms)),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyCreate {
    /// What the key is for, e.g. the integration's name.
    #[schema(min_length = 1, max_length = 128, pattern = r"\S")]
    pub name: String,
    pub role: RoleName,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub role: RoleName,
    pub created_by: String,
    pub created: String,
}

impl From<&ApiKey> for KeyView {
    fn from(key: &ApiKey) -> Self {
        KeyView {
            id: key.id.clone(),
            name: key.name.clone(),
            role: key.role.into(),
            created_by: key.created_by.clone(),
            created: rfc3339(key.created_ms),
        }
    }
}

/// A new key: `key` is shown this once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyCreated {
    #[serde(flatten)]
    pub view: KeyView,
    /// Send as `Authorization: Bearer <key>`, or as the MQTT password.
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceCreate {
    /// What the tracker announces itself as: usually its IMEI.
    #[schema(pattern = r"^[A-Za-z0-9._:-]{1,64}$")]
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// A group's id.
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    /// A disabled device is refused when it connects.
    #[serde(default)]
    pub disabled: bool,
    /// Its own overspeed limit in km/h, in place of the fleet's
    /// (`analytics.overspeed.limit_kmh`); geofences' lower limits still apply.
    #[serde(default)]
    pub speed_limit_kmh: Option<f64>,
}

/// Absent fields stay as they are; `null` clears one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevicePatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub group: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub model: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub notes: Option<Option<String>>,
    #[serde(default)]
    pub disabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>)]
    pub speed_limit_kmh: Option<Option<f64>>,
}

/// Where a device's state in an answer comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The engine's live state.
    Live,
    /// Only the latest stored position is known.
    Stored,
    /// Registered, never heard from.
    Registered,
}

/// `online`, `offline`, or `never` for a device never heard from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    Online,
    Offline,
    Never,
}

/// A device: its registration (if any) and its latest state.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceView<'a> {
    pub id: String,
    pub registered: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    pub disabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed_limit_kmh: Option<f64>,
    pub status: DeviceStatus,
    pub source: Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// The engine's live state: fix, kinematics, ignition, power, OBD,
    /// presence, attributes, usage, and the trip or stop under way (in the
    /// form of `GET …/trips` and `GET …/stops`).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "live_state")]
    #[schema(value_type = Option<Object>)]
    pub state: Option<Arc<DeviceState>>,
    /// The latest stored position, when there is no live state.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub position: Option<Position<'a>>,
}

/// [`DeviceState`] as clients read it: the engine's fields, with its open
/// trip and stop as the trips and stops API shows them.
#[derive(Serialize)]
struct LiveState<'a> {
    device: &'a str,
    protocol: &'a str,
    last_fix: &'a Option<drover_engine::components::LastFix>,
    kinematics: &'a drover_engine::components::Kinematics,
    ignition: Option<bool>,
    power: &'a drover_engine::components::Power,
    obd: &'a drover_engine::components::Obd,
    presence: &'a drover_engine::components::Presence,
    last_seen_ms: i64,
    attributes: &'a drover_engine::components::CustomAttributes,
    usage: &'a drover_engine::systems::usage::Usage,
    odometer_m: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    trip: Option<TripView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<StopView>,
}

fn live_state<S: serde::Serializer>(
    state: &Option<Arc<DeviceState>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    state
        .as_deref()
        .map(|s| LiveState {
            device: s.device.as_str(),
            protocol: s.protocol,
            last_fix: &s.last_fix,
            kinematics: &s.kinematics,
            ignition: s.ignition,
            power: &s.power,
            obd: &s.obd,
            presence: &s.presence,
            last_seen_ms: s.last_seen_ms,
            attributes: &s.attributes,
            usage: &s.usage,
            odometer_m: s.odometer_m,
            trip: s.trip.as_deref().map(TripView::from),
            stop: s.stop.as_deref().map(|stop| {
                let newest = s.last_fix.map_or(stop.start.time_ms, |f| f.time_ms);
                StopView::new(stop, newest)
            }),
        })
        .serialize(serializer)
}

impl<'a> DeviceView<'a> {
    /// A device from whatever is known of it.
    pub fn new(id: &str, registration: Option<&Device>) -> Self {
        let r = registration;
        let field = |f: fn(&Device) -> &Option<String>| r.and_then(|d| f(d).clone());
        DeviceView {
            id: id.to_owned(),
            registered: r.is_some(),
            name: field(|d| &d.name),
            group: field(|d| &d.group),
            phone: field(|d| &d.phone),
            model: field(|d| &d.model),
            notes: field(|d| &d.notes),
            disabled: r.is_some_and(|d| d.disabled),
            speed_limit_kmh: r.and_then(|d| d.speed_limit_kmh),
            status: DeviceStatus::Never,
            source: Source::Registered,
            last_seen: None,
            state: None,
            position: None,
        }
    }

    pub fn with_live(mut self, state: Arc<DeviceState>) -> Self {
        self.status = if state.presence.online {
            DeviceStatus::Online
        } else {
            DeviceStatus::Offline
        };
        self.source = Source::Live;
        self.last_seen = Some(rfc3339(state.last_seen_ms));
        self.state = Some(state);
        self
    }

    pub fn with_stored(mut self, record: &'a drover_protocols::model::Record) -> Self {
        self.status = DeviceStatus::Offline;
        self.source = Source::Stored;
        self.last_seen = Some(rfc3339(record.time_ms));
        self.position = Position::of(record);
        self
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceList<'a> {
    pub devices: Vec<DeviceView<'a>>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A tracker refused because it is not registered.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnknownView {
    pub id: String,
    pub protocol: String,
    /// Address of its last attempt.
    pub peer: String,
    pub first_seen: String,
    pub last_seen: String,
    pub attempts: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnknownList {
    pub devices: Vec<UnknownView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupCreate {
    #[schema(pattern = r"^[A-Za-z0-9._:-]{1,64}$")]
    pub id: String,
    #[schema(min_length = 1, max_length = 128, pattern = r"\S")]
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupPatch {
    #[schema(min_length = 1, max_length = 128, pattern = r"\S")]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    pub id: String,
    pub name: String,
    /// Registered devices in the group.
    pub devices: usize,
    pub created: String,
    pub updated: String,
}

impl GroupView {
    pub fn new(group: &Group, devices: usize) -> Self {
        GroupView {
            id: group.id.clone(),
            name: group.name.clone(),
            devices,
            created: rfc3339(group.created_ms),
            updated: rfc3339(group.updated_ms.max(group.created_ms)),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    pub groups: Vec<GroupView>,
}

// invariant: test code (cfg(test) only): the unwraps below never see outside input.
#[cfg(test)]
mod tests {
    use super::*;
    use drover_engine::systems::stops::StopSummary;
    use drover_engine::systems::trips::Place;
    use drover_protocols::model::DeviceId;

    #[test]
    fn live_state_shows_its_stop_as_the_stops_api_does() {
        let stop = StopSummary {
            device: DeviceId::new("d"),
            start: Place {
                time_ms: 60_000,
                lat: 54.7,
                lon: 25.3,
            },
            end: None,
        };
        let state = DeviceState {
            device: DeviceId::new("d"),
            protocol: "gt06",
            last_fix: None,
            kinematics: Default::default(),
            ignition: Some(false),
            power: Default::default(),
            obd: Default::default(),
            presence: Default::default(),
            last_seen_ms: 90_000,
            attributes: Default::default(),
            usage: Default::default(),
            odometer_m: 1_200.0,
            trip: None,
            stop: Some(Box::new(stop)),
        };
        let view = DeviceView::new("d", None).with_live(Arc::new(state));
        let json = serde_json::to_value(&view).unwrap();
        let stop = &json["state"]["stop"];
        assert_eq!(stop["id"], "d-60000");
        assert_eq!(stop["start"]["time"], "1970-01-01T00:01:00.000Z");
        assert_eq!(stop["open"], true);
        assert!(json["state"].get("trip").is_none());
        assert_eq!(json["state"]["odometer_m"], 1_200.0);
        assert_eq!(json["state"]["usage"]["ignition_source"], "unknown");
    }
}
