//! Detect: stops — where a vehicle stood between two trips. A stop begins
//! where a trip ended (the stop that closed it) and ends where the next
//! trip starts, so stops and trips tile a device's time without gaps or
//! overlaps, in the device's own time like the trips they follow.
//!
//! An open stop is an entity with a [`Stop`]; its device points at it
//! through [`Stops`]. Openings and closings go out as [`StopChanged`]
//! messages, and a stop leaves the world once it is closed.

use std::collections::HashMap;

use bevy_ecs::prelude::*;
use drover_protocols::model::DeviceId;
use serde::{Deserialize, Serialize};

use crate::systems::ingest::DeviceIndex;
use crate::systems::trips::{Place, TripChanged};

/// One stop, as outputs see it. Open while `end` is `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopSummary {
    pub device: DeviceId,
    /// Where and when the vehicle stopped: the end of the trip before.
    pub start: Place,
    /// When it drove off: the start of the next trip.
    pub end: Option<Place>,
}

impl StopSummary {
    /// Stable across restarts and replays: the device and the start time.
    pub fn id(&self) -> String {
        format!("{}-{}", self.device, self.start.time_ms)
    }

    pub fn open(&self) -> bool {
        self.end.is_none()
    }
}

/// An open stop.
#[derive(Component, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stop(pub StopSummary);

/// On a stop entity: the device entity it belongs to.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopOf(pub Entity);

/// A device's open stop, if any.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stops {
    pub open: Option<Entity>,
}

/// A stop opened or closed.
#[derive(Message, Debug, Clone, PartialEq)]
pub enum StopChanged {
    Opened(StopSummary),
    Closed(StopSummary),
}

/// Follows the tick's trip changes: a closed trip opens a stop at its end,
/// an opened trip closes the device's stop at its start.
pub fn track_stops(
    mut commands: Commands,
    index: Res<DeviceIndex>,
    mut trips: MessageReader<TripChanged>,
    mut devices: Query<&mut Stops>,
    stops: Query<&Stop>,
    mut changed: MessageWriter<StopChanged>,
    // Stops opened this tick, whose entities are not spawned yet.
    mut fresh: Local<HashMap<Entity, StopSummary>>,
) {
    fresh.clear();
    for change in trips.read() {
        let (TripChanged::Opened(trip) | TripChanged::Closed(trip)) = change;
        let Some(device) = index.get(&trip.device) else {
            continue;
        };
        let Ok(mut open) = devices.get_mut(device) else {
            continue;
        };
        match (change, open.open) {
            (TripChanged::Closed(trip), None) => {
                let Some(start) = trip.end else { continue };
                let stop = StopSummary {
                    device: trip.device.clone(),
                    start,
                    end: None,
                };
                changed.write(StopChanged::Opened(stop.clone()));
                let entity = commands.spawn((Stop(stop.clone()), StopOf(device))).id();
                fresh.insert(entity, stop);
                open.open = Some(entity);
            }
            (TripChanged::Opened(trip), Some(entity)) => {
                let stop = fresh
                    .remove(&entity)
                    .or_else(|| stops.get(entity).ok().map(|stop| stop.0.clone()));
                if let Some(mut stop) = stop {
                    stop.end = Some(trip.start);
                    changed.write(StopChanged::Closed(stop));
                }
                commands.entity(entity).despawn();
                open.open = None;
            }
            _ => {}
        }
    }
}

/// The open stops, for a snapshot, sorted by device.
pub(crate) fn capture(world: &mut World) -> Vec<StopSummary> {
    let mut query = world.query::<&Stop>();
    let mut open: Vec<StopSummary> = query.iter(world).map(|stop| stop.0.clone()).collect();
    open.sort_by(|a, b| a.device.cmp(&b.device));
    open
}

/// Puts a snapshot's open stops back on their devices (restored first).
pub(crate) fn restore(world: &mut World, open: Vec<StopSummary>) {
    for stop in open {
        let Some(device) = world.resource::<DeviceIndex>().get(&stop.device) else {
            continue;
        };
        let entity = world.spawn((Stop(stop), StopOf(device))).id();
        if let Some(mut stops) = world.get_mut::<Stops>(device) {
            stops.open = Some(entity);
        }
    }
}
