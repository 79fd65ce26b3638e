//! The built-in systems, one module per concern, in the order of the Tick sets.

pub mod alarms;
pub mod alerts;
pub mod derived;
pub mod emit;
pub mod fuel;
pub mod geofences;
pub mod harsh;
pub mod ingest;
pub mod jobs;
pub mod motion;
pub mod offline;
pub mod overspeed;
pub mod presence;
pub mod retention;
pub mod stops;
pub mod trips;
pub mod usage;

use bevy_ecs::prelude::*;

/// Devices whose state may have changed this tick. Emit looks only at these
/// (and asks change detection what really changed), so a tick costs what
/// happened in it rather than the size of the fleet.
///
/// A user system that changes a device outside the ingest path pushes the
/// entity here to have the change emitted.
#[derive(Resource, Debug, Default)]
pub struct Touched(pub Vec<Entity>);

impl Touched {
    pub fn mark(&mut self, entity: Entity) {
        self.0.push(entity);
    }
}
