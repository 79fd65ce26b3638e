//! Detect: alarms the devices report themselves (SOS, power cut, tamper,
//! …) and new OBD trouble codes, as alerts.
//!
//! Protocols name alarms as Traccar does (`sos`, `powerCut`,
//! `hardBraking`; several joined by commas); each becomes an alert of a
//! snake_case kind. A DTC code becomes one `dtc` alert the first time it
//! appears, not one per message; once the device reports no codes, a code
//! that comes back is new again.

use std::collections::BTreeSet;

use bevy_ecs::prelude::*;
use drover_protocols::model::{Fix, Value, attr};

use crate::components::Reports;
use crate::systems::alerts::{AlertRules, Details, DeviceAlerts, RaiseAlerts, Severity, kinds};
use crate::systems::ingest::TickRecords;

/// The DTC codes a device reported since it last reported none.
#[derive(Component, Debug, Clone, Default, PartialEq)]
pub struct KnownDtcs(pub BTreeSet<String>);

/// A device alarm's alert kind and severity; `None` for alarms that are
/// not alerts (locks, power on, the device's own geofences: Drover has
/// its own).
pub fn alarm_kind(alarm: &str) -> Option<(&'static str, Severity)> {
    use Severity::{Critical, Info, Warning};
    Some(match alarm {
        "sos" => ("sos", Critical),
        "accident" => ("accident", Critical),
        "fallDown" => ("fall_down", Critical),
        "powerCut" | "powerOff" => ("power_cut", Critical),
        "tampering" | "removing" => ("tamper", Critical),
        "jamming" => ("jamming", Critical),
        "tow" => ("tow", Critical),
        "lowBattery" => ("low_battery", Warning),
        "lowPower" => ("low_power", Warning),
        "vibration" => ("vibration", Warning),
        "overspeed" => (kinds::OVERSPEED, Warning),
        "hardBraking" => (kinds::HARSH_BRAKING, Warning),
        "hardAcceleration" => (kinds::HARSH_ACCELERATION, Warning),
        "hardCornering" => ("harsh_cornering", Warning),
        "fuelLeak" => (kinds::FUEL_DROP, Warning),
        "temperature" => ("temperature", Warning),
        "door" => ("door", Info),
        "idle" => ("idle", Info),
        "general" => ("alarm", Warning),
        _ => return None,
    })
}

/// Raises an alert for each alarm a live record reports.
pub fn detect_alarms(
    rules: Res<AlertRules>,
    records: TickRecords,
    devices: Query<(Entity, &Reports, &DeviceAlerts), Changed<Reports>>,
    mut alerts: Deferred<RaiseAlerts>,
) {
    let now_ms = records.clock().now_ms;
    for (entity, reports, open) in &devices {
        for (message, facts) in records.of(reports).filter(|(_, facts)| facts.alarm) {
            let record = &message.record;
            let Some(Value::Text(alarms)) = record.attributes.get(attr::ALARM) else {
                continue;
            };
            if !rules.is_live(&facts, now_ms) {
                continue;
            }
            for alarm in alarms.split(',') {
                let Some((kind, severity)) = alarm_kind(alarm) else {
                    continue;
                };
                if open.holds(kind) {
                    continue; // open already: it would change nothing
                }
                let mut details = place(facts.valid_fix());
                details.insert("alarm".to_owned(), alarm.into());
                alerts.raise(entity, kind, None, severity, record.time_ms, details);
            }
        }
    }
}

/// Raises one `dtc` alert per code a device reports for the first time.
pub fn detect_dtcs(
    rules: Res<AlertRules>,
    records: TickRecords,
    mut devices: Query<(Entity, &Reports, &mut KnownDtcs), Changed<Reports>>,
    mut alerts: Deferred<RaiseAlerts>,
) {
    let now_ms = records.clock().now_ms;
    for (entity, reports, mut known) in &mut devices {
        for (message, facts) in records.of(reports).filter(|(_, facts)| facts.dtcs) {
            let record = &message.record;
            let Some(Value::Text(codes)) = record.attributes.get(attr::DTCS) else {
                continue;
            };
            // An archived record says what the device knew then, not now.
            if record.archived {
                continue;
            }
            let codes: BTreeSet<&str> = codes
                .split([',', ' '])
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            if codes.is_empty() {
                if !known.0.is_empty() {
                    known.0.clear();
                }
                continue;
            }
            let live = rules.is_live(&facts, now_ms);
            for code in codes {
                if known.0.insert(code.to_owned()) && live {
                    let mut details = place(facts.valid_fix());
                    details.insert("code".to_owned(), code.into());
                    alerts.raise(
                        entity,
                        kinds::DTC,
                        Some(code.to_owned()),
                        Severity::Warning,
                        record.time_ms,
                        details,
                    );
                }
            }
        }
    }
}

/// Where a record was (its valid fix), for an alert's details.
pub(crate) fn place(fix: Option<Fix>) -> Details {
    let mut details = Details::new();
    if let Some(fix) = fix {
        details.insert("lat".to_owned(), fix.lat.into());
        details.insert("lon".to_owned(), fix.lon.into());
    }
    details
}
