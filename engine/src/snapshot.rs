//! Snapshots of the live world: what the engine needs to come back after a
//! restart without replaying the whole journal.
//!
//! A [`Snapshot`] is taken between ticks and says which journal position it
//! covers: every record before [`Snapshot::position`] is in it, none after.
//! On start the shell restores the newest snapshot and replays the journal
//! from that position, so live state survives a crash.
//!
//! The persisted form is deliberately not the components' own serde form
//! (which is the API's JSON): a component can change shape without breaking
//! snapshots written by an earlier version. The format is versioned
//! ([`FORMAT`]); analytics state added later (open trips, open alerts, user
//! systems' state) goes into [`Snapshot::sections`] under its own name, so
//! adding it needs no new format version and an older node ignores it.
//!
//! Encoding is JSON: a snapshot is written every minute or so on its own
//! thread, an operator can read it with `jq`, and a self-describing format
//! keeps old files readable as fields are added (each new field has a
//! default).

use std::collections::BTreeMap;

use bevy_ecs::prelude::*;
use drover_protocols::model::{Attributes, DeviceId, Fix, Value};
use serde::{Deserialize, Serialize};

use crate::components::{
    CustomAttributes, Device, Ignition, Kinematics, LastFix, LastSeen, Obd, Power, Presence,
};
use crate::systems::ingest::{DeviceIndex, device_bundle};
use crate::systems::usage::{IgnitionSource, Usage};
use crate::systems::{alerts, geofences, jobs, stops, trips};

/// The snapshot format this build writes and reads.
pub const FORMAT: u32 = 1;

/// The live world at one journal position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`FORMAT`] of the writer; a reader refuses a newer one.
    pub format: u32,
    /// The journal sequence number of the first record *not* in the snapshot.
    pub position: u64,
    /// Engine clock when it was taken, ms since the epoch.
    pub taken_ms: i64,
    pub devices: Vec<DeviceSnapshot>,
    /// State of systems beyond the device basics, by section name.
    #[serde(default)]
    pub sections: BTreeMap<String, Section>,
}

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is not valid JSON of the expected shape: {0}")]
    Decode(#[from] serde_json::Error),
    #[error(
        "snapshot format {found} is newer than this build reads ({FORMAT}); \
         the engine will rebuild from the journal instead"
    )]
    Newer { found: u32 },
}

impl Snapshot {
    pub fn encode(&self) -> Vec<u8> {
        // A tree of plain values and strings: serialisation cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        let snapshot: Snapshot = serde_json::from_slice(bytes)?;
        if snapshot.format > FORMAT {
            return Err(SnapshotError::Newer {
                found: snapshot.format,
            });
        }
        Ok(snapshot)
    }
}

/// One device's state. Connections are not kept: they die with the process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceSnapshot {
    pub id: String,
    pub protocol: String,
    #[serde(default)]
    pub last_fix: Option<FixSnapshot>,
    #[serde(default)]
    pub motion: MotionSnapshot,
    #[serde(default)]
    pub ignition: Option<bool>,
    #[serde(default)]
    pub power: Power,
    #[serde(default)]
    pub obd: Obd,
    #[serde(default)]
    pub last_seen_ms: i64,
    #[serde(default)]
    pub attributes: Vec<(String, Value)>,
    #[serde(default)]
    pub usage: UsageSnapshot,
}

/// [`Usage`] as stored.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct UsageSnapshot {
    pub ignition: bool,
    pub ignition_source: IgnitionSource,
    pub engine_ms: i64,
    #[serde(default)]
    pub device_odometer_m: Option<f64>,
    pub last_ms: i64,
}

impl From<&Usage> for UsageSnapshot {
    fn from(u: &Usage) -> Self {
        UsageSnapshot {
            ignition: u.ignition,
            ignition_source: u.ignition_source,
            engine_ms: u.engine_ms,
            device_odometer_m: u.device_odometer_m,
            last_ms: u.last_ms,
        }
    }
}

impl From<UsageSnapshot> for Usage {
    fn from(s: UsageSnapshot) -> Self {
        Usage {
            ignition: s.ignition,
            ignition_source: s.ignition_source,
            engine_ms: s.engine_ms,
            device_odometer_m: s.device_odometer_m,
            last_ms: s.last_ms,
        }
    }
}

/// [`LastFix`] as stored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FixSnapshot {
    pub time_ms: i64,
    pub lat: f64,
    pub lon: f64,
    pub speed_kmh: f64,
    pub course_deg: f64,
    #[serde(default)]
    pub altitude_m: Option<f64>,
    #[serde(default)]
    pub satellites: Option<u8>,
    pub valid: bool,
}

/// [`Kinematics`] as stored, with the point the odometer continues from.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct MotionSnapshot {
    pub speed_kmh: f64,
    pub course_deg: f64,
    pub moving: bool,
    pub distance_m: f64,
    #[serde(default)]
    pub last_point: Option<(i64, f64, f64)>,
}

impl From<&LastFix> for FixSnapshot {
    fn from(last: &LastFix) -> Self {
        let f = &last.fix;
        FixSnapshot {
            time_ms: last.time_ms,
            lat: f.lat,
            lon: f.lon,
            speed_kmh: f.speed_kmh,
            course_deg: f.course_deg,
            altitude_m: f.altitude_m,
            satellites: f.satellites,
            valid: f.valid,
        }
    }
}

impl From<FixSnapshot> for LastFix {
    fn from(s: FixSnapshot) -> Self {
        LastFix {
            time_ms: s.time_ms,
            fix: Fix {
                lat: s.lat,
                lon: s.lon,
                speed_kmh: s.speed_kmh,
                course_deg: s.course_deg,
                altitude_m: s.altitude_m,
                satellites: s.satellites,
                valid: s.valid,
            },
        }
    }
}

impl From<&Kinematics> for MotionSnapshot {
    fn from(k: &Kinematics) -> Self {
        MotionSnapshot {
            speed_kmh: k.speed_kmh,
            course_deg: k.course_deg,
            moving: k.moving,
            distance_m: k.distance_m,
            last_point: k.last_point,
        }
    }
}

impl From<MotionSnapshot> for Kinematics {
    fn from(m: MotionSnapshot) -> Self {
        Kinematics {
            speed_kmh: m.speed_kmh,
            course_deg: m.course_deg,
            moving: m.moving,
            distance_m: m.distance_m,
            last_point: m.last_point,
        }
    }
}

/// Every device's state, sorted by id so equal worlds give equal snapshots.
pub(crate) fn capture_devices(world: &mut World) -> Vec<DeviceSnapshot> {
    let mut query = world.query::<(
        &Device,
        &LastFix,
        &Kinematics,
        &Ignition,
        &Power,
        &Obd,
        &LastSeen,
        &CustomAttributes,
        &Usage,
    )>();
    let mut devices: Vec<DeviceSnapshot> = query
        .iter(world)
        .map(
            |(device, last_fix, kinematics, ignition, power, obd, seen, attributes, usage)| {
                DeviceSnapshot {
                    id: device.id.as_str().to_owned(),
                    protocol: device.protocol.to_owned(),
                    last_fix: (last_fix.time_ms != 0).then(|| FixSnapshot::from(last_fix)),
                    motion: MotionSnapshot::from(kinematics),
                    ignition: ignition.0,
                    power: *power,
                    obd: *obd,
                    last_seen_ms: seen.0,
                    attributes: attributes
                        .0
                        .iter()
                        .map(|(k, v)| (k.to_owned(), v.clone()))
                        .collect(),
                    usage: UsageSnapshot::from(usage),
                }
            },
        )
        .collect();
    devices.sort_by(|a, b| a.id.cmp(&b.id));
    devices
}

/// The state of the analytics systems, by section name. Serialized to JSON
/// text right away: a tree of JSON values per open trip would take several
/// times the memory of the world it describes.
pub(crate) fn capture_sections(world: &mut World) -> BTreeMap<String, Section> {
    let mut sections = BTreeMap::new();
    let mut add = |name: &str, section: Option<Section>| {
        if let Some(section) = section {
            sections.insert(name.to_owned(), section);
        }
    };
    add(TRIPS, Section::of(&trips::capture(world)));
    add(ALERTS, Section::of(&alerts::capture(world)));
    add(STOPS, Section::of(&stops::capture(world)));
    add(JOBS, Section::of(&jobs::capture(world)));
    add(GEOFENCES, Section::of(&geofences::capture(world)));
    sections
}

/// Restores what [`capture_sections`] kept, after the devices. A section
/// this build cannot read is logged and skipped: its state starts afresh.
pub(crate) fn restore_sections(world: &mut World, sections: &BTreeMap<String, Section>) {
    restore_section(world, sections, TRIPS, trips::restore);
    restore_section(world, sections, STOPS, stops::restore);
    restore_section(world, sections, JOBS, jobs::restore);
    restore_section(world, sections, GEOFENCES, geofences::restore);
    // After trips and geofences: alerts point at devices they restored.
    restore_section(world, sections, ALERTS, alerts::restore);
}

fn restore_section<T: serde::de::DeserializeOwned>(
    world: &mut World,
    sections: &BTreeMap<String, Section>,
    name: &str,
    restore: impl FnOnce(&mut World, T),
) {
    let Some(section) = sections.get(name) else {
        return;
    };
    match serde_json::from_str(section.0.get()) {
        Ok(state) => restore(world, state),
        Err(error) => {
            tracing::warn!(%error, section = name, "a snapshot section is unreadable; its state starts afresh")
        }
    }
}

/// One section of a snapshot: JSON text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Section(Box<serde_json::value::RawValue>);

impl Section {
    /// `None` if `state` does not serialize (plain data always does).
    fn of<T: Serialize>(state: &T) -> Option<Section> {
        serde_json::value::to_raw_value(state).ok().map(Section)
    }
}

impl PartialEq for Section {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

/// The section of open trips.
const TRIPS: &str = "trips";
/// The section of open alerts.
const ALERTS: &str = "alerts";
/// The section of the geofences devices are in.
const GEOFENCES: &str = "geofences";
/// The section of the days scheduled jobs last fired.
const JOBS: &str = "jobs";
/// The section of open stops.
const STOPS: &str = "stops";

/// Spawns the snapshot's devices into an empty world. A device whose protocol
/// this build no longer knows keeps its state under the name `unknown`.
pub(crate) fn restore_devices(world: &mut World, devices: Vec<DeviceSnapshot>) {
    world.resource_scope(|world, mut index: Mut<DeviceIndex>| {
        for stored in devices {
            let id = DeviceId::new(&stored.id);
            let protocol = drover_protocols::protocol_name(&stored.protocol).unwrap_or("unknown");
            let mut attributes = Attributes::with_capacity(stored.attributes.len());
            for (key, value) in stored.attributes {
                attributes.set(key, value);
            }
            let mut entity = world.spawn(device_bundle(Device {
                id: id.clone(),
                protocol,
            }));
            if let Some(fix) = stored.last_fix {
                entity.insert(LastFix::from(fix));
            }
            entity.insert((
                Kinematics::from(stored.motion),
                Ignition(stored.ignition),
                stored.power,
                stored.obd,
                Presence::default(),
                LastSeen(stored.last_seen_ms),
                CustomAttributes(attributes),
                Usage::from(stored.usage),
            ));
            index.0.insert(id, entity.id());
        }
    });
}
