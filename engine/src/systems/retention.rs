//! Detect: devices silent for weeks leave the live world.
//!
//! A fleet changes: trackers are retired, swapped or move to another server.
//! Without this sweep every IMEI ever seen would stay in memory (and in every
//! snapshot) for good. A forgotten device keeps its history; if it reports
//! again it comes back as a new entity.

use bevy_ecs::prelude::*;

use crate::clock::Clock;
use crate::components::{Device, LastSeen, Presence};
use crate::io::Delta;
use crate::systems::alerts::{CloseAlerts, DeviceAlerts};
use crate::systems::emit::Outbox;
use crate::systems::ingest::DeviceIndex;
use crate::systems::stops::Stops;

/// How long a device may stay silent before it is forgotten.
#[derive(Resource, Debug, Clone, Copy)]
pub struct ForgetAfter {
    pub after_ms: i64,
}

pub fn forget_silent_devices(
    mut commands: Commands,
    clock: Res<Clock>,
    forget: Res<ForgetAfter>,
    mut index: ResMut<DeviceIndex>,
    mut outbox: ResMut<Outbox>,
    devices: Query<(Entity, &Device, &Presence, &LastSeen, &DeviceAlerts, &Stops)>,
    mut alerts: CloseAlerts,
) {
    let cutoff = clock.now_ms.saturating_sub(forget.after_ms);
    for (entity, device, presence, seen, open, stop) in &devices {
        if presence.connections == 0 && seen.0 < cutoff {
            index.0.remove(&device.id);
            commands.entity(entity).despawn();
            // Its stop has no end to wait for.
            if let Some(stop) = stop.open {
                commands.entity(stop).despawn();
            }
            // Its alerts (an offline one, surely) end with it.
            alerts.close_all(&mut commands, open, clock.now_ms);
            // Despawned before Emit runs, so no state of it follows this.
            outbox.0.push(Delta::Removed {
                device: device.id.clone(),
            });
        }
    }
}
