//! Detect: overspeed — faster than the limit for at least a minimum
//! duration, by the device's clock; the alert closes when the vehicle is
//! back under the limit. The limit is the device's own when it has one,
//! else the fleet's (`limit_kmh`); inside geofences with their own, the
//! lowest of theirs and that.

use std::collections::HashMap;

use bevy_ecs::prelude::*;
use drover_protocols::model::DeviceId;
use serde::{Deserialize, Serialize};

use crate::components::{Device, Reports};
use crate::systems::alarms::place;
use crate::systems::alerts::{AlertRules, DeviceAlerts, RaiseAlerts, Severity, kinds};
use crate::systems::geofences::Geofences;
use crate::systems::ingest::TickRecords;

/// The speed limit and how long it must be exceeded.
#[derive(Resource, Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OverspeedRules {
    /// km/h; 0 turns the detector off.
    pub limit_kmh: f64,
    pub min_duration_ms: i64,
}

impl Default for OverspeedRules {
    fn default() -> Self {
        OverspeedRules {
            limit_kmh: 0.0,
            min_duration_ms: 10_000,
        }
    }
}

/// Devices with a speed limit of their own (a truck's is lower than the
/// fleet's cars'), in km/h.
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct DeviceLimits(pub HashMap<DeviceId, f64, foldhash::fast::RandomState>);

/// A device's speeding so far: since when, and the top speed.
#[derive(Component, Debug, Clone, Copy, Default, PartialEq)]
pub struct Speeding {
    since_ms: Option<i64>,
    max_kmh: f64,
    /// The newest fix looked at: older ones (resent) are skipped.
    last_ms: i64,
    raised: bool,
}

/// The limit where the vehicle is: the lowest of the geofences' there and
/// the device's (its own, else the fleet's), with the geofence that sets it.
fn limit_at(
    own: Option<f64>,
    fences: &Geofences,
    lat: f64,
    lon: f64,
) -> Option<(f64, Option<&str>)> {
    let fleet = own.filter(|limit| *limit > 0.0).map(|limit| (limit, None));
    let fence = fences
        .speed_limit_at(lat, lon)
        .map(|(limit, id)| (limit, Some(id)));
    match (fleet, fence) {
        (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
        (a, b) => a.or(b),
    }
}

pub fn detect_overspeed(
    rules: Res<OverspeedRules>,
    fences: Res<Geofences>,
    device_limits: Res<DeviceLimits>,
    alert_rules: Res<AlertRules>,
    records: TickRecords,
    mut devices: Query<(Entity, &Device, &Reports, &mut Speeding, &DeviceAlerts), Changed<Reports>>,
    mut alerts: Deferred<RaiseAlerts>,
) {
    if rules.limit_kmh <= 0.0 && fences.is_empty() && device_limits.0.is_empty() {
        return;
    }
    let now_ms = records.clock().now_ms;
    for (entity, device, reports, mut speeding, open) in &mut devices {
        let own = device_limits
            .0
            .get(&device.id)
            .copied()
            .or(Some(rules.limit_kmh));
        records.each_in_time_order(reports, |record| {
            let Some(fix) = record
                .valid_fix()
                .filter(|_| record.time_ms > speeding.last_ms)
            else {
                return;
            };
            speeding.last_ms = record.time_ms;
            let over = limit_at(own, &fences, fix.lat, fix.lon)
                .filter(|(limit, _)| fix.speed_kmh > *limit);
            let Some((limit, geofence)) = over else {
                // The alert may be older than this process (restored from
                // a snapshot): the device's alerts say it is there.
                let raised = speeding.since_ms.take().is_some() && speeding.raised;
                if raised || open.holds(kinds::OVERSPEED) {
                    alerts.clear(entity, kinds::OVERSPEED, None, record.time_ms);
                }
                speeding.raised = false;
                speeding.max_kmh = 0.0;
                return;
            };
            let since = *speeding.since_ms.get_or_insert(record.time_ms);
            speeding.max_kmh = speeding.max_kmh.max(fix.speed_kmh);
            if !speeding.raised
                && record.time_ms - since >= rules.min_duration_ms
                && alert_rules.is_live(record, now_ms)
            {
                speeding.raised = true;
                let mut details = place(Some(fix));
                details.insert("limit_kmh".to_owned(), limit.into());
                if let Some(geofence) = geofence {
                    details.insert("geofence".to_owned(), geofence.into());
                }
                details.insert("speed_kmh".to_owned(), speeding.max_kmh.into());
                alerts.raise(
                    entity,
                    kinds::OVERSPEED,
                    None,
                    Severity::Warning,
                    since,
                    details,
                );
            }
        });
    }
}
