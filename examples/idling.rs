//! An idling detector: a vehicle standing with its engine running wastes
//! fuel. After `IDLING_MIN_SECS` (default 300) of ignition on and no speed,
//! by the device's clock, it raises an `idling` alert, which closes when
//! the vehicle moves or the engine stops; each stay's length so far is the
//! derived attribute `idling_s`, stored and published with the device's
//! records and shown in its live state.
//!
//! `cargo run --example idling -- serve` runs the whole server with it (the
//! same commands and settings as `drover`). docs/extending.md walks
//! through it.

use std::collections::HashMap;

use drover::prelude::*;

/// Below this speed a vehicle stands.
const STANDING_KMH: f64 = 3.0;

/// How long idling lasts before it is an alert.
#[derive(Resource)]
struct IdlingRules {
    min_ms: i64,
}

struct IdlingPlugin {
    min_secs: i64,
}

impl Plugin for IdlingPlugin {
    fn build(&self, engine: &mut Engine) {
        engine
            .insert_resource(IdlingRules {
                min_ms: self.min_secs * 1000,
            })
            .add_systems(TickSet::Analyze, detect_idling);
    }
}

/// When a device's current stay with the engine running began, and
/// whether it was reported.
#[derive(Default)]
struct Stay {
    since_ms: Option<i64>,
    raised: bool,
    last_ms: i64,
}

fn detect_idling(
    rules: Res<IdlingRules>,
    records: TickRecords,
    devices: Query<(Entity, &Reports), Changed<Reports>>,
    mut stays: Local<HashMap<Entity, Stay>>,
    mut alerts: Deferred<RaiseAlerts>,
    mut attributes: Deferred<SetAttributes>,
) {
    for (entity, reports) in &devices {
        let stay = stays.entry(entity).or_default();
        records.each_in_time_order(reports, |record| {
            let Some(fix) = record.valid_fix().filter(|_| record.time_ms > stay.last_ms) else {
                return;
            };
            stay.last_ms = record.time_ms;
            let idling = record.ignition == Some(true) && fix.speed_kmh < STANDING_KMH;
            if !idling {
                if let Some(since) = stay.since_ms.take() {
                    attributes.set(
                        entity,
                        record.time_ms,
                        "idling_s",
                        (record.time_ms - since) / 1000,
                    );
                    if stay.raised {
                        alerts.clear(entity, "idling", None, record.time_ms);
                    }
                }
                stay.raised = false;
                return;
            }
            let since = *stay.since_ms.get_or_insert(record.time_ms);
            let idle_ms = record.time_ms - since;
            if idle_ms >= rules.min_ms && !stay.raised {
                stay.raised = true;
                let mut details = Details::new();
                details.insert("since_ms".to_owned(), since.into());
                details.insert("lat".to_owned(), fix.lat.into());
                details.insert("lon".to_owned(), fix.lon.into());
                alerts.raise(
                    entity,
                    "idling",
                    None,
                    Severity::Warning,
                    record.time_ms,
                    details,
                );
                attributes.set(entity, record.time_ms, "idling_s", idle_ms / 1000);
            }
        });
    }
}

fn main() -> anyhow::Result<()> {
    let min_secs = std::env::var("IDLING_MIN_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    drover::App::new()
        .add_plugin(IdlingPlugin { min_secs })
        .run()
}
