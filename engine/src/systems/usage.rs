//! Derive: how much a vehicle is used — whether its engine runs, its
//! engine hours and its odometer — from every record, in the device's own
//! time.
//!
//! Ignition is what the device reports (an ACC wire, an IO element). Many
//! cheap trackers report none; for them the engine counts as running while
//! the vehicle moves (the speed rule), so engine hours are at least the
//! driving time. A device that reports its own engine hours or odometer is
//! believed over the engine's count: it saw the engine while the tracker
//! was asleep or out of coverage.

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use crate::components::Reports;
use crate::systems::ingest::{Facts, TickRecords};
use crate::systems::trips::TripRules;

/// How engine hours are counted.
#[derive(Resource, Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UsageRules {
    /// A gap between records longer than this is not counted as running,
    /// even with the ignition on before and after: the tracker slept or
    /// lost coverage, and what the engine did meanwhile is unknown.
    pub max_gap_ms: i64,
}

impl Default for UsageRules {
    fn default() -> Self {
        UsageRules {
            max_gap_ms: 600_000,
        }
    }
}

/// Where a device's ignition state comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IgnitionSource {
    /// Nothing known yet.
    #[default]
    Unknown,
    /// The device reports it.
    Reported,
    /// The device reports none: running while moving.
    Speed,
}

/// A device's use. Written by Derive (usage).
#[derive(Component, Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Usage {
    /// Whether the engine runs, as of the newest record.
    pub ignition: bool,
    pub ignition_source: IgnitionSource,
    /// Total engine running time, in ms: the device's own count when it
    /// reports one, else the time between records with the engine on.
    pub engine_ms: i64,
    /// The odometer the device reports (its own or the OBD bus's), in
    /// metres; without one, the distance from fixes is the odometer.
    pub device_odometer_m: Option<f64>,
    /// The newest record counted: older ones (resent) are skipped.
    #[serde(skip)]
    pub(crate) last_ms: i64,
}

impl Usage {
    /// Takes one record, in device time order.
    fn advance(&mut self, facts: &Facts, moving_kmh: f64, rules: &UsageRules) {
        if facts.time_ms <= self.last_ms {
            return;
        }
        let gap = facts.time_ms - self.last_ms;
        if self.ignition && self.last_ms > 0 && gap <= rules.max_gap_ms {
            self.engine_ms += gap;
        }
        self.last_ms = facts.time_ms;
        if let Some(on) = facts.ignition {
            self.ignition = on;
            self.ignition_source = IgnitionSource::Reported;
        } else if self.ignition_source != IgnitionSource::Reported
            && let Some(fix) = facts.valid_fix()
        {
            self.ignition = fix.speed_kmh >= moving_kmh;
            self.ignition_source = IgnitionSource::Speed;
        }
        if let Some(hours_ms) = facts.engine_hours_ms {
            self.engine_ms = hours_ms;
        }
        if facts.odometer_m.is_some() {
            self.device_odometer_m = facts.odometer_m;
        }
    }
}

pub fn update_usage(
    rules: Res<UsageRules>,
    trips: Res<TripRules>,
    records: TickRecords,
    mut devices: Query<(&Reports, &mut Usage), Changed<Reports>>,
) {
    for (reports, mut usage) in &mut devices {
        let mut next = *usage;
        records.each_in_time_order(reports, |facts| {
            next.advance(facts, trips.moving_kmh, &rules);
        });
        usage.set_if_neq(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_protocols::model::Fix;

    fn facts(time_ms: i64, ignition: Option<bool>, speed_kmh: Option<f64>) -> Facts {
        let mut facts = Facts::default();
        facts.time_ms = time_ms;
        facts.ignition = ignition;
        facts.fix = speed_kmh.map(|speed_kmh| Fix {
            lat: 52.0,
            lon: 13.0,
            speed_kmh,
            valid: true,
            ..Fix::default()
        });
        facts
    }

    fn run(records: &[Facts]) -> Usage {
        let mut usage = Usage::default();
        for facts in records {
            usage.advance(facts, 5.0, &UsageRules::default());
        }
        usage
    }

    #[test]
    fn reported_ignition_counts_the_time_it_is_on() {
        let usage = run(&[
            facts(60_000, Some(true), None),
            facts(120_000, Some(true), None),
            facts(180_000, Some(false), None),
            facts(240_000, Some(false), None),
        ]);
        assert_eq!(usage.engine_ms, 120_000);
        assert!(!usage.ignition);
        assert_eq!(usage.ignition_source, IgnitionSource::Reported);
    }

    #[test]
    fn without_reported_ignition_the_engine_runs_while_moving() {
        let usage = run(&[
            facts(60_000, None, Some(0.0)),
            facts(120_000, None, Some(40.0)),
            facts(180_000, None, Some(50.0)),
            facts(240_000, None, Some(0.0)),
        ]);
        assert_eq!(usage.engine_ms, 120_000);
        assert_eq!(usage.ignition_source, IgnitionSource::Speed);
        assert!(!usage.ignition);
    }

    #[test]
    fn a_long_gap_and_a_resent_record_add_nothing() {
        let usage = run(&[
            facts(60_000, Some(true), None),
            facts(60_000 + 3_600_000, Some(true), None),
            facts(120_000, Some(true), None),
        ]);
        assert_eq!(usage.engine_ms, 0);
    }

    #[test]
    fn a_device_count_replaces_the_engine_count() {
        let mut with_hours = facts(120_000, Some(true), None);
        with_hours.engine_hours_ms = Some(36_000_000);
        with_hours.odometer_m = Some(12_345.0);
        let usage = run(&[facts(60_000, Some(true), None), with_hours]);
        assert_eq!(usage.engine_ms, 36_000_000);
        assert_eq!(usage.device_odometer_m, Some(12_345.0));
    }
}
