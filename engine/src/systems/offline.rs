//! Detect: devices silent for longer than `after_ms` by the engine's clock
//! get an `offline` alert, which closes when they report again.

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::components::{LastSeen, Reports};
use crate::systems::alerts::{Details, DeviceAlerts, RaiseAlerts, Severity, kinds};

/// How long a silence makes a device offline.
#[derive(Resource, Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OfflineRules {
    /// 0 turns the detector off.
    pub after_ms: i64,
}

impl Default for OfflineRules {
    fn default() -> Self {
        OfflineRules {
            after_ms: 3_600_000,
        }
    }
}

/// A sweep over every device (run it every few seconds, not every tick).
pub fn detect_offline(
    rules: Res<OfflineRules>,
    clock: Res<Clock>,
    devices: Query<(Entity, &LastSeen, &DeviceAlerts)>,
    mut alerts: Deferred<RaiseAlerts>,
) {
    if rules.after_ms <= 0 {
        return;
    }
    for (entity, seen, open) in &devices {
        // Opened when the silence reached the limit: the same silence
        // gives the same alert, whenever the sweep notices it.
        let since_ms = seen.0.saturating_add(rules.after_ms);
        if since_ms <= clock.now_ms && !open.holds(kinds::OFFLINE) {
            let mut details = Details::new();
            details.insert("last_seen_ms".to_owned(), seen.0.into());
            alerts.raise(
                entity,
                kinds::OFFLINE,
                None,
                Severity::Warning,
                since_ms,
                details,
            );
        }
    }
}

/// A device that reports again is back.
pub fn clear_offline(
    clock: Res<Clock>,
    devices: Query<(Entity, &DeviceAlerts), Changed<Reports>>,
    mut alerts: Deferred<RaiseAlerts>,
) {
    for (entity, open) in &devices {
        if open.holds(kinds::OFFLINE) {
            alerts.clear(entity, kinds::OFFLINE, None, clock.now_ms);
        }
    }
}
