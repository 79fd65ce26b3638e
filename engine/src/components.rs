//! Components of a Device entity.
//!
//! Each component is owned by one system that writes it, so systems that touch
//! different components run in parallel. Writes go through `set_if_neq` so a
//! value that did not change does not show up as changed in Emit.

use bevy_ecs::prelude::*;
use drover_protocols::model::{Attributes, DeviceId, Fix};
use serde::{Deserialize, Serialize};

/// Who the device is. Written once, at spawn.
#[derive(Component, Debug, Clone, PartialEq, Serialize)]
pub struct Device {
    pub id: DeviceId,
    /// The protocol it last spoke.
    pub protocol: &'static str,
}

/// The newest live fix (by device time). Archived and out-of-order records
/// never move it backwards. Written by Ingest.
#[derive(Component, Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct LastFix {
    pub time_ms: i64,
    pub fix: Fix,
}

/// The live fixes applied during the current tick, in order. Devices can
/// report several fixes per tick (a Teltonika packet carries many); Derive and
/// Detect systems that need every fix, not just the last, read this.
#[derive(Component, Debug, Clone, PartialEq, Default)]
pub struct Trail {
    /// The [`crate::Clock::tick`] the fixes belong to; older ones are stale.
    pub tick: u64,
    pub fixes: Vec<LastFix>,
}

impl Trail {
    /// The fixes of tick `tick` (empty when the trail is from an older tick).
    pub fn of_tick(&self, tick: u64) -> &[LastFix] {
        if self.tick == tick { &self.fixes } else { &[] }
    }
}

/// Where the device's records of the current tick are among the tick's
/// inputs (in arrival order, archived and out-of-order ones included): what
/// systems that follow a device through its own time (trips) read, with
/// [`crate::systems::ingest::TickRecords`]. A span rather than copies, so
/// the tick holds each record once. Written by Ingest; changes only for
/// devices that sent records, so `Changed<Reports>` finds them.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reports {
    /// The [`crate::Clock::tick`] the span belongs to; older ones are stale.
    pub(crate) tick: u64,
    /// Into the tick's inputs in visiting order (`IngestOrder`).
    pub(crate) first: u32,
    pub(crate) end: u32,
}

/// Motion derived from successive fixes. Written by Derive (motion).
#[derive(Component, Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Kinematics {
    pub speed_kmh: f64,
    pub course_deg: f64,
    pub moving: bool,
    /// Distance driven since the device was first seen, from GNSS fixes, in metres.
    pub distance_m: f64,
    /// The fix `distance_m` was last advanced to; `None` before the first valid fix.
    #[serde(skip)]
    pub(crate) last_point: Option<(i64, f64, f64)>,
}

/// Ignition as last reported. Written by Ingest.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Ignition(pub Option<bool>);

/// Supply and battery as last reported. Written by Ingest.
#[derive(Component, Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Power {
    pub external_v: Option<f64>,
    pub battery_v: Option<f64>,
    pub battery_level_pct: Option<f64>,
}

/// OBD values as last reported. Written by Ingest.
#[derive(Component, Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
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

/// Connection and reporting status. Written by Ingest (connect, disconnect,
/// records) and by Detect (presence timeout).
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Presence {
    pub online: bool,
    /// Open connections the device holds (devices sometimes reconnect before
    /// the old socket is noticed dead).
    pub connections: u32,
}

/// Every other attribute, by name, as last reported. Written by Ingest and by
/// user systems in Analyze (their outputs flow out like built-in values).
///
/// A small vector, not a map: a device has a handful of these, their names are
/// mostly `&'static str` from the decoders, and a linear scan over one
/// allocation is several times faster than a tree of heap-allocated keys
/// (which cost a cache miss per comparison across a large fleet).
#[derive(Component, Debug, Clone, PartialEq, Default, Serialize)]
pub struct CustomAttributes(pub Attributes);

/// When the device last sent anything, by the engine's clock (ms since the
/// epoch). Written by Ingest; changes with every record, so Emit does not
/// treat it as a change on its own.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct LastSeen(pub i64);
