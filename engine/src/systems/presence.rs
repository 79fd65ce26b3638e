//! Detect: devices that hold no connection and stopped reporting go offline.
//!
//! Connected devices are online until their connection closes (the device
//! server's idle timeout closes silent ones); this sweep covers devices seen
//! without a lasting connection.

use bevy_ecs::prelude::*;

use crate::clock::Clock;
use crate::components::{LastSeen, Presence};

/// How long a device without a connection stays online after its last report.
#[derive(Resource, Debug, Clone, Copy)]
pub struct PresenceTimeout {
    pub after_ms: i64,
}

pub fn expire_presence(
    clock: Res<Clock>,
    timeout: Res<PresenceTimeout>,
    mut devices: Query<(&mut Presence, &LastSeen)>,
) {
    let cutoff = clock.now_ms.saturating_sub(timeout.after_ms);
    for (mut presence, seen) in &mut devices {
        if presence.online && presence.connections == 0 && seen.0 < cutoff {
            presence.online = false;
        }
    }
}
