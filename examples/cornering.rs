//! Harsh cornering from what every tracker reports: the course's change
//! over time is the turn rate ω, and speed × ω the sideways acceleration.
//! Above `CORNERING_MS2` (default 4 m/s², about 0.4 g) between two fixes
//! at most 3 s apart, it raises a `harsh_cornering` alert (an event: it
//! stays open until an operator closes it) and derives the attribute
//! `lateral_ms2`.
//!
//! `cargo run --example cornering -- serve` runs the whole server with it.

use drover::prelude::*;

/// Fixes further apart say nothing about a turn.
const MAX_GAP_MS: i64 = 3_000;

#[derive(Resource)]
struct CorneringRules {
    lateral_ms2: f64,
}

struct CorneringPlugin {
    lateral_ms2: f64,
}

impl Plugin for CorneringPlugin {
    fn build(&self, engine: &mut Engine) {
        engine
            .insert_resource(CorneringRules {
                lateral_ms2: self.lateral_ms2,
            })
            .add_systems(TickSet::Analyze, detect_cornering);
    }
}

/// The previous fix of a device: time, course and speed.
#[derive(Component, Clone, Copy)]
struct Heading {
    time_ms: i64,
    course_deg: f64,
    speed_kmh: f64,
}

fn detect_cornering(
    mut commands: Commands,
    rules: Res<CorneringRules>,
    records: TickRecords,
    mut devices: Query<(Entity, &Reports, Option<&mut Heading>), Changed<Reports>>,
    mut alerts: Deferred<RaiseAlerts>,
    mut attributes: Deferred<SetAttributes>,
) {
    for (entity, reports, heading) in &mut devices {
        let mut last = heading.as_deref().copied();
        records.each_in_time_order(reports, |record| {
            let Some(fix) = record.valid_fix() else {
                return;
            };
            let now = Heading {
                time_ms: record.time_ms,
                course_deg: fix.course_deg,
                speed_kmh: fix.speed_kmh,
            };
            let Some(before) = last.filter(|b| b.time_ms < now.time_ms) else {
                last = Some(now);
                return;
            };
            last = Some(now);
            let gap_s = (now.time_ms - before.time_ms) as f64 / 1000.0;
            if gap_s * 1000.0 > MAX_GAP_MS as f64 || record.archived {
                return;
            }
            // The shorter way round: 350° → 10° is a 20° turn.
            let turn_deg = (now.course_deg - before.course_deg + 540.0).rem_euclid(360.0) - 180.0;
            let rate = turn_deg.abs().to_radians() / gap_s;
            let speed_ms = (now.speed_kmh + before.speed_kmh) / 2.0 / 3.6;
            let lateral = speed_ms * rate;
            if lateral >= rules.lateral_ms2 {
                let mut details = Details::new();
                details.insert("lateral_ms2".to_owned(), lateral.into());
                details.insert("turn_deg".to_owned(), turn_deg.into());
                details.insert("speed_kmh".to_owned(), now.speed_kmh.into());
                alerts.raise(
                    entity,
                    "harsh_cornering",
                    None,
                    Severity::Warning,
                    now.time_ms,
                    details,
                );
                attributes.set(entity, now.time_ms, "lateral_ms2", lateral);
            }
        });
        match (heading, last) {
            (Some(mut heading), Some(last)) => *heading = last,
            (None, Some(last)) => {
                commands.entity(entity).insert(last);
            }
            _ => {}
        }
    }
}

fn main() -> anyhow::Result<()> {
    let lateral_ms2 = std::env::var("CORNERING_MS2")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4.0);
    drover::App::new()
        .add_plugin(CorneringPlugin { lateral_ms2 })
        .run()
}
