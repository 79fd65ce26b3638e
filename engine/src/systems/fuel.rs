//! Detect: fuel that disappears while the vehicle is parked (theft, a
//! leak) — not a refuel, not consumption while driving.
//!
//! While parked, the level is compared with the highest level seen since
//! the vehicle stopped: a refuel raises that reference, a drop of at least
//! `drop_pct` below it raises a `fuel_drop` alert (and becomes the new
//! reference, so one theft is one alert).

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use crate::components::Reports;
use crate::systems::alarms::place;
use crate::systems::alerts::{AlertRules, DeviceAlerts, RaiseAlerts, Severity, kinds};
use crate::systems::ingest::TickRecords;
use crate::systems::trips::TripRules;

#[derive(Resource, Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FuelRules {
    /// Percent points below the parked level; 0 turns the detector off.
    pub drop_pct: f64,
}

impl Default for FuelRules {
    fn default() -> Self {
        FuelRules { drop_pct: 5.0 }
    }
}

/// The level a parked vehicle should still have.
#[derive(Component, Debug, Clone, Copy, Default, PartialEq)]
pub struct FuelWatch {
    parked_pct: Option<f64>,
    last_ms: i64,
}

pub fn detect_fuel_drop(
    rules: Res<FuelRules>,
    trips: Res<TripRules>,
    alert_rules: Res<AlertRules>,
    records: TickRecords,
    mut devices: Query<(Entity, &Reports, &mut FuelWatch, &DeviceAlerts), Changed<Reports>>,
    mut alerts: Deferred<RaiseAlerts>,
) {
    if rules.drop_pct <= 0.0 {
        return;
    }
    let now_ms = records.clock().now_ms;
    for (entity, reports, mut watch, open) in &mut devices {
        records.each_in_time_order(reports, |record| {
            let Some(level) = record.fuel_pct.filter(|_| record.time_ms > watch.last_ms) else {
                return;
            };
            watch.last_ms = record.time_ms;
            let moving = record
                .valid_fix()
                .is_some_and(|f| f.speed_kmh >= trips.moving_kmh);
            if moving {
                watch.parked_pct = None;
                return;
            }
            let reference = *watch.parked_pct.get_or_insert(level);
            if level > reference {
                watch.parked_pct = Some(level);
            } else if reference - level >= rules.drop_pct {
                watch.parked_pct = Some(level);
                if alert_rules.is_live(record, now_ms) && !open.holds(kinds::FUEL_DROP) {
                    let mut details = place(record.valid_fix());
                    details.insert("from_pct".to_owned(), reference.into());
                    details.insert("to_pct".to_owned(), level.into());
                    alerts.raise(
                        entity,
                        kinds::FUEL_DROP,
                        None,
                        Severity::Critical,
                        record.time_ms,
                        details,
                    );
                }
            }
        });
    }
}
