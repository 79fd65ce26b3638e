//! What goes into the engine and what comes out of it.

use std::sync::Arc;

use drover_protocols::model::{DeviceId, DeviceMessage};
use serde::Serialize;

use crate::components::{CustomAttributes, Kinematics, LastFix, Obd, Power, Presence};
use crate::systems::alerts::AlertSummary;
use crate::systems::jobs::JobDue;
use crate::systems::stops::StopSummary;
use crate::systems::trips::TripSummary;
use crate::systems::usage::Usage;

/// One thing that happened at the edge, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A connection identified itself as `device`.
    Connected {
        device: DeviceId,
        protocol: &'static str,
    },
    /// A connection of `device` closed.
    Disconnected { device: DeviceId },
    /// A decoded record that just arrived, shared with the other consumers
    /// of the record stream.
    Record(Arc<DeviceMessage>),
    /// A record that arrived before the engine started, replayed from the
    /// journal: when it arrived is unknown, so the device's own time says
    /// when the device was seen.
    Replayed(Arc<DeviceMessage>),
}

/// A change of derived state, produced by the Emit set.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Delta {
    /// The device went online or offline.
    Presence {
        device: DeviceId,
        online: bool,
        /// Clock time of the change, ms since the epoch.
        time_ms: i64,
    },
    /// Some of the device's live state changed (or it was seen again); this
    /// is all of it.
    State(Box<DeviceState>),
    /// The device left the live world (silent past `forget_after`); its
    /// history stays.
    Removed { device: DeviceId },
    /// A trip opened or closed.
    Trip(Box<TripSummary>),
    /// A stop opened or closed.
    Stop(Box<StopSummary>),
    /// An alert opened, was acknowledged or closed.
    Alert(Box<AlertSummary>),
    /// Attributes a system derived, as a record of their own.
    Derived(Arc<DeviceMessage>),
    /// A scheduled job came due, for the node to run off the tick.
    JobDue(Box<JobDue>),
}

impl Delta {
    /// The device the change is about (none for a job).
    pub fn device(&self) -> Option<&DeviceId> {
        match self {
            Delta::Presence { device, .. } | Delta::Removed { device } => Some(device),
            Delta::State(state) => Some(&state.device),
            Delta::Trip(trip) => Some(&trip.device),
            Delta::Stop(stop) => Some(&stop.device),
            Delta::Alert(alert) => Some(&alert.device),
            Delta::Derived(record) => Some(&record.device),
            Delta::JobDue(_) => None,
        }
    }
}

/// The live state of one device, as the API and the dashboard see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceState {
    pub device: DeviceId,
    pub protocol: &'static str,
    pub last_fix: Option<LastFix>,
    pub kinematics: Kinematics,
    pub ignition: Option<bool>,
    pub power: Power,
    pub obd: Obd,
    pub presence: Presence,
    pub last_seen_ms: i64,
    pub attributes: CustomAttributes,
    /// Ignition as analytics see it, and engine hours.
    pub usage: Usage,
    /// The device's odometer when it reports one, else the distance
    /// driven by its fixes since it was first seen, in metres.
    pub odometer_m: f64,
    /// The trip under way, as of the device's newest fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trip: Option<Box<TripSummary>>,
    /// The stop the vehicle stands in, since the trip before it closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Box<StopSummary>>,
}
