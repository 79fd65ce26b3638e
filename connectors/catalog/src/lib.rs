//! # drover-catalog
//!
//! What the operators of a Drover node configure, as opposed to what devices
//! report: users and their roles, API keys for integrations, the device
//! registry (which trackers may connect, with their names and groups),
//! groups, geofences and notification rules. Small, read on every request and every device
//! login, written rarely — so every table lives in memory and is written
//! through to fjall with an fsync before a change is acknowledged
//! (`data_dir/catalog`).
//!
//! The catalog stores what it is given: password hashes and API-key
//! digests are computed by the API's authentication, never here, and no
//! secret is ever logged. Records are JSON, so a field added later reads
//! back from an older file with its default.
//!
//! Trackers that connect without being registered are remembered, in memory
//! only, in [`Catalog::unknown`] (bounded), so an operator can see and
//! register them.

mod table;
mod unknown;

use std::path::Path;

use fjall::{Database, KeyspaceCreateOptions};
use serde::{Deserialize, Serialize};

pub use table::Table;
pub use unknown::{UnknownDevice, UnknownDevices};

/// Everything that can go wrong in the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog store: cannot {what}: {source}")]
    Engine {
        what: &'static str,
        #[source]
        source: fjall::Error,
    },
    #[error("catalog store holds an unreadable {table} entry {key:?}: {source}")]
    Corrupt {
        table: &'static str,
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what} {id:?} already exists")]
    Exists { what: &'static str, id: String },
    #[error("no {what} {id:?}")]
    NotFound { what: &'static str, id: String },
    #[error("{what} {id:?} is in use: {by}")]
    InUse {
        what: &'static str,
        id: String,
        by: String,
    },
}

/// What a user or an API key may do. Each role may do what the ones after
/// it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, users and keys included.
    Admin,
    /// The fleet: devices, groups, commands, alerts.
    Operator,
    /// Reads only.
    Viewer,
}

impl Role {
    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        self <= needed
    }
}

/// A person who logs in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    pub role: Role,
    /// An argon2id PHC string.
    pub password_hash: String,
    pub created_ms: i64,
    #[serde(default)]
    pub updated_ms: i64,
}

/// An integration's credential. The secret itself is shown once and never
/// kept: only its digest is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// Hex SHA-256 of the secret.
    pub digest: String,
    pub created_by: String,
    pub created_ms: i64,
}

/// A registered tracker.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Device {
    /// What the tracker announces itself as, usually its IMEI.
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    /// A disabled device is refused like an unknown one.
    #[serde(default)]
    pub disabled: bool,
    /// Its own speed limit in km/h, in place of the fleet's.
    #[serde(default)]
    pub speed_limit_kmh: Option<f64>,
    pub created_ms: i64,
    #[serde(default)]
    pub updated_ms: i64,
}

/// A named set of devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub created_ms: i64,
    #[serde(default)]
    pub updated_ms: i64,
}

/// A named area of the map: trips, alerts and speed limits refer to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Geofence {
    pub id: String,
    pub name: String,
    pub area: Area,
    /// The speed limit inside it, where it has its own.
    #[serde(default)]
    pub speed_limit_kmh: Option<f64>,
    pub created_ms: i64,
    #[serde(default)]
    pub updated_ms: i64,
}

/// A geofence's shape, in WGS 84 degrees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "snake_case")]
pub enum Area {
    Circle {
        lon: f64,
        lat: f64,
        radius_m: f64,
    },
    /// An outer ring and its holes, each closed (`[lon, lat]` pairs whose
    /// last equals the first), as in GeoJSON.
    Polygon {
        rings: Vec<Vec<[f64; 2]>>,
    },
}

/// Who is told about which alerts, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationRule {
    pub id: String,
    pub name: String,
    /// Alert kinds it applies to; empty: every kind.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Devices it applies to; with `groups` empty too: every device.
    #[serde(default)]
    pub devices: Vec<String>,
    /// Groups whose devices it applies to.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The alert states that notify (`open`, `acknowledged`, `closed`).
    pub states: Vec<String>,
    pub channel: Channel,
    pub created_ms: i64,
}

/// Where a notification goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Channel {
    /// An HTTP POST of the alert's JSON, signed with `secret` when set.
    Webhook {
        url: String,
        #[serde(default)]
        secret: Option<String>,
    },
    /// An email to each address, through the node's SMTP relay.
    Email { to: Vec<String> },
    /// The alert's JSON on `{prefix}/notifications/{rule id}`.
    Mqtt,
}

/// May a tracker that identified itself as some id be served?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Registered,
    Disabled,
    Unknown,
}

/// The catalog of one node.
pub struct Catalog {
    pub users: Table<User>,
    pub keys: Table<ApiKey>,
    pub devices: Table<Device>,
    pub groups: Table<Group>,
    pub geofences: Table<Geofence>,
    pub notifications: Table<NotificationRule>,
    /// Node secrets (the token signing key), by name.
    pub secrets: Table<Vec<u8>>,
    /// Trackers refused because they are not registered (in memory).
    pub unknown: UnknownDevices,
}

impl Catalog {
    /// Opens (or creates) the catalog in `dir` and loads every table.
    pub fn open(dir: impl AsRef<Path>) -> Result<Catalog, CatalogError> {
        let dir = dir.as_ref();
        let db = Database::builder(dir)
            .open()
            .map_err(|source| CatalogError::Engine {
                what: "open the database",
                source,
            })?;
        let table = |name: &'static str| -> Result<_, CatalogError> {
            let keyspace = db
                .keyspace(name, KeyspaceCreateOptions::default)
                .map_err(|source| CatalogError::Engine {
                    what: "open a keyspace",
                    source,
                })?;
            Ok((db.clone(), keyspace, name))
        };
        let catalog = Catalog {
            users: Table::load(table("users")?)?,
            keys: Table::load(table("keys")?)?,
            devices: Table::load(table("devices")?)?,
            groups: Table::load(table("groups")?)?,
            geofences: Table::load(table("geofences")?)?,
            notifications: Table::load(table("notifications")?)?,
            secrets: Table::load(table("secrets")?)?,
            unknown: UnknownDevices::default(),
        };
        tracing::info!(
            path = %dir.display(),
            users = catalog.users.len(),
            devices = catalog.devices.len(),
            "catalog opened"
        );
        Ok(catalog)
    }

    /// Whether `id` may connect.
    pub fn admission(&self, id: &str) -> Admission {
        match self.devices.get(id) {
            Some(device) if device.disabled => Admission::Disabled,
            Some(_) => Admission::Registered,
            None => Admission::Unknown,
        }
    }

    /// Deletes group `id`, refusing while a device belongs to it.
    pub fn delete_group(&self, id: &str) -> Result<Group, CatalogError> {
        let members = self
            .devices
            .list()
            .into_iter()
            .filter(|d| d.group.as_deref() == Some(id))
            .count();
        if members > 0 {
            return Err(CatalogError::InUse {
                what: "group",
                id: id.to_owned(),
                by: format!("{members} devices"),
            });
        }
        self.groups.remove(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_allow_what_the_roles_after_them_allow() {
        assert!(Role::Admin.allows(Role::Viewer));
        assert!(Role::Operator.allows(Role::Operator));
        assert!(!Role::Viewer.allows(Role::Operator));
        assert!(!Role::Operator.allows(Role::Admin));
    }
}
