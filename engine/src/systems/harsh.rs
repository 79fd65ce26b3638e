//! Detect: harsh braking and acceleration from the speed of consecutive
//! fixes. Only fixes close together say anything about acceleration (a
//! tracker reporting every 30 s does not); devices with an accelerometer
//! report these as alarms themselves (`systems::alarms`).

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use crate::components::Reports;
use crate::systems::alarms::place;
use crate::systems::alerts::{AlertRules, DeviceAlerts, RaiseAlerts, Severity, kinds};
use crate::systems::ingest::TickRecords;

#[derive(Resource, Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HarshRules {
    /// Deceleration in m/s² that counts as harsh braking; 0 turns it off.
    pub braking_ms2: f64,
    /// Acceleration in m/s² that counts as harsh; 0 turns it off.
    pub acceleration_ms2: f64,
    /// Fixes further apart than this are not compared.
    pub max_gap_ms: i64,
}

impl Default for HarshRules {
    fn default() -> Self {
        HarshRules {
            braking_ms2: 4.0,
            acceleration_ms2: 3.5,
            max_gap_ms: 3_000,
        }
    }
}

/// The previous fix's time and speed.
#[derive(Component, Debug, Clone, Copy, Default, PartialEq)]
pub struct LastSpeed {
    time_ms: i64,
    kmh: f64,
}

pub fn detect_harsh(
    rules: Res<HarshRules>,
    alert_rules: Res<AlertRules>,
    records: TickRecords,
    mut devices: Query<(Entity, &Reports, &mut LastSpeed, &DeviceAlerts), Changed<Reports>>,
    mut alerts: Deferred<RaiseAlerts>,
) {
    let now_ms = records.clock().now_ms;
    for (entity, reports, mut last, open) in &mut devices {
        records.each_in_time_order(reports, |record| {
            let Some(fix) = record.valid_fix().filter(|_| record.time_ms > last.time_ms) else {
                return;
            };
            let previous = std::mem::replace(
                &mut *last,
                LastSpeed {
                    time_ms: record.time_ms,
                    kmh: fix.speed_kmh,
                },
            );
            let gap_ms = record.time_ms - previous.time_ms;
            if previous.time_ms == 0
                || gap_ms > rules.max_gap_ms
                || !alert_rules.is_live(record, now_ms)
            {
                return;
            }
            let change = (fix.speed_kmh - previous.kmh) / 3.6 / (gap_ms as f64 / 1000.0);
            let kind = if rules.braking_ms2 > 0.0 && -change >= rules.braking_ms2 {
                kinds::HARSH_BRAKING
            } else if rules.acceleration_ms2 > 0.0 && change >= rules.acceleration_ms2 {
                kinds::HARSH_ACCELERATION
            } else {
                return;
            };
            if open.holds(kind) {
                return; // open already: it would change nothing
            }
            let mut details = place(Some(fix));
            details.insert("from_kmh".to_owned(), previous.kmh.into());
            details.insert("to_kmh".to_owned(), fix.speed_kmh.into());
            details.insert("ms2".to_owned(), change.abs().into());
            alerts.raise(
                entity,
                kind,
                None,
                Severity::Warning,
                record.time_ms,
                details,
            );
        });
    }
}
