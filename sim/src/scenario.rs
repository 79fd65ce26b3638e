//! Scenario files: scripted drives whose every trip, stop and alert is known
//! in advance, written as JSON lines for `drover replay --scenario`.
//!
//! Each vehicle follows [`script`]: it waits at its depot, drives, speeds
//! through a geofence with a lower limit (entering and leaving it), stops
//! for ten minutes while someone siphons its fuel, drives again and parks.
//! Vehicles start from depots a few kilometres apart, so each has its own
//! geofence, and a fix every [`STEP_MS`]. The file holds the geofences first,
//! then every record of every vehicle in time order.
//!
//! Lines (one JSON object each, told apart by `type`):
//! - `{"type":"geofence","id","name","lat","lon","radius_m","speed_limit_kmh"}`
//!   (a circle);
//! - `{"type":"record","device","protocol","time_ms","lat","lon","speed_kmh",
//!   "course_deg","attributes"}`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use drover_protocols::model::{DeviceId, DeviceMessage, Fix, Record, RecordKind, Value, attr};
use serde::{Deserialize, Serialize};

use crate::SimError;

/// Between two fixes of a vehicle.
pub const STEP_MS: i64 = 10_000;
/// Metres in a degree of latitude (near enough along a meridian).
const M_PER_DEG: f64 = 111_195.0;
/// The first depot; the others are east of it.
const FIRST_DEPOT: (f64, f64) = (54.60, 25.20);
/// Between two depots, in degrees of longitude (about 6.4 km).
const DEPOT_SPACING_DEG: f64 = 0.1;
/// The speed limit inside each vehicle's geofence.
pub const ZONE_LIMIT_KMH: f64 = 80.0;
/// How much fuel is siphoned during the stop, in percent points.
pub const THEFT_PCT: f64 = 15.0;

/// One part of a vehicle's day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Leg {
    /// North at `kmh` for `minutes`, ignition on.
    Drive { minutes: i64, kmh: f64 },
    /// Standing, ignition off; `siphon_pct` of fuel disappears in the middle.
    Park { minutes: i64, siphon_pct: f64 },
}

/// Every vehicle's day: two trips, one stop between them with a fuel theft,
/// and speeding inside the geofence around the third leg.
pub fn script() -> [Leg; 7] {
    [
        Leg::Park {
            minutes: 2,
            siphon_pct: 0.0,
        },
        Leg::Drive {
            minutes: 10,
            kmh: 50.0,
        },
        // Through the geofence: 3 km of a 5 km leg, at 100 km/h under an 80 limit.
        Leg::Drive {
            minutes: 3,
            kmh: 100.0,
        },
        Leg::Drive {
            minutes: 5,
            kmh: 50.0,
        },
        Leg::Park {
            minutes: 10,
            siphon_pct: THEFT_PCT,
        },
        Leg::Drive {
            minutes: 8,
            kmh: 60.0,
        },
        Leg::Park {
            minutes: 10,
            siphon_pct: 0.0,
        },
    ]
}

/// A geofence of the scenario: a circle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioFence {
    pub id: String,
    pub name: String,
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
    pub speed_limit_kmh: Option<f64>,
}

/// A whole scenario.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scenario {
    pub geofences: Vec<ScenarioFence>,
    /// In time order (a vehicle's own in order; vehicles interleaved).
    pub records: Vec<Arc<DeviceMessage>>,
}

/// What a vehicle's script should give, to check a replay against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expected {
    /// Along the fixes of each trip, in metres.
    pub trip_m: [f64; 2],
}

/// The scripted day of `vehicles` vehicles (IMEIs from `first_imei` on),
/// starting at `start_ms`.
pub fn build(vehicles: u32, first_imei: u64, start_ms: i64) -> Scenario {
    let mut scenario = Scenario::default();
    for v in 0..vehicles {
        let imei = first_imei + u64::from(v);
        let (fence, records) = vehicle(imei, v, start_ms);
        scenario.geofences.push(fence);
        scenario.records.extend(records);
    }
    // Stable: a vehicle's records keep their order among equal times.
    scenario.records.sort_by_key(|m| m.record.time_ms);
    scenario
}

/// The distance of each trip of the script (along straight north legs).
pub fn expected() -> Expected {
    let metres = |minutes: i64, kmh: f64| kmh / 3.6 * minutes as f64 * 60.0;
    let legs = script();
    let trip = |range: std::ops::Range<usize>| {
        legs[range]
            .iter()
            .map(|leg| match *leg {
                Leg::Drive { minutes, kmh } => metres(minutes, kmh),
                Leg::Park { .. } => 0.0,
            })
            .sum()
    };
    Expected {
        trip_m: [trip(1..4), trip(5..6)],
    }
}

fn vehicle(imei: u64, index: u32, start_ms: i64) -> (ScenarioFence, Vec<Arc<DeviceMessage>>) {
    let device = DeviceId::new(&imei.to_string());
    let (mut lat, lon) = (
        FIRST_DEPOT.0,
        FIRST_DEPOT.1 + f64::from(index) * DEPOT_SPACING_DEG,
    );
    let (mut time_ms, mut fuel) = (start_ms, 60.0);
    let mut records = Vec::new();
    let mut fence = None;
    for leg in script() {
        match leg {
            Leg::Drive { minutes, kmh } => {
                let step_deg = kmh / 3.6 * (STEP_MS as f64 / 1000.0) / M_PER_DEG;
                let steps = minutes * 60_000 / STEP_MS;
                if kmh > ZONE_LIMIT_KMH && fence.is_none() {
                    // Centred on the leg's middle, a kilometre short of both ends.
                    let half_m = kmh / 3.6 * minutes as f64 * 30.0;
                    fence = Some(ScenarioFence {
                        id: format!("zone-{imei}"),
                        name: format!("School zone {}", index + 1),
                        lat: lat + half_m / M_PER_DEG,
                        lon,
                        radius_m: half_m - 1_000.0,
                        speed_limit_kmh: Some(ZONE_LIMIT_KMH),
                    });
                }
                for _ in 0..steps {
                    time_ms += STEP_MS;
                    lat += step_deg;
                    fuel -= 0.01;
                    records.push(fix(&device, time_ms, lat, lon, kmh, true, fuel));
                }
            }
            Leg::Park {
                minutes,
                siphon_pct,
            } => {
                let steps = minutes * 60_000 / STEP_MS;
                // Siphoned over a minute in the middle of the stop.
                let (from, to) = (steps / 2, steps / 2 + 6);
                for step in 0..steps {
                    time_ms += STEP_MS;
                    if (from..to).contains(&step) {
                        fuel -= siphon_pct / (to - from) as f64;
                    }
                    records.push(fix(&device, time_ms, lat, lon, 0.0, false, fuel));
                }
            }
        }
    }
    // Every script has a leg over the zone's limit.
    let fence = fence.unwrap_or(ScenarioFence {
        id: format!("zone-{imei}"),
        name: format!("School zone {}", index + 1),
        lat,
        lon,
        radius_m: 100.0,
        speed_limit_kmh: Some(ZONE_LIMIT_KMH),
    });
    (fence, records)
}

fn fix(
    device: &DeviceId,
    time_ms: i64,
    lat: f64,
    lon: f64,
    speed_kmh: f64,
    ignition: bool,
    fuel_pct: f64,
) -> Arc<DeviceMessage> {
    let mut record = Record {
        time_ms,
        kind: RecordKind::Position,
        fix: Some(Fix {
            lat,
            lon,
            speed_kmh,
            course_deg: 0.0,
            altitude_m: Some(120.0),
            satellites: Some(10),
            valid: true,
        }),
        ..Record::default()
    };
    record.attributes.set(attr::IGNITION, ignition);
    // Levels as a fuel sensor reports them: to a tenth of a percent.
    record
        .attributes
        .set(attr::FUEL_LEVEL, (fuel_pct * 10.0).round() / 10.0);
    Arc::new(DeviceMessage {
        device: device.clone(),
        protocol: drover_protocols::teltonika::NAME,
        record,
    })
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    Geofence(ScenarioFence),
    Record(RecordLine),
}

#[derive(Serialize, Deserialize)]
struct RecordLine {
    device: String,
    protocol: String,
    time_ms: i64,
    lat: f64,
    lon: f64,
    speed_kmh: f64,
    course_deg: f64,
    attributes: BTreeMap<String, Value>,
}

impl RecordLine {
    fn of(message: &DeviceMessage) -> Option<RecordLine> {
        let fix = message.record.fix?;
        Some(RecordLine {
            device: message.device.as_str().to_owned(),
            protocol: message.protocol.to_owned(),
            time_ms: message.record.time_ms,
            lat: fix.lat,
            lon: fix.lon,
            speed_kmh: fix.speed_kmh,
            course_deg: fix.course_deg,
            attributes: message
                .record
                .attributes
                .iter()
                .map(|(k, v)| (k.to_owned(), v.clone()))
                .collect(),
        })
    }

    fn into_message(self, line: usize) -> Result<DeviceMessage, SimError> {
        let protocol = drover_protocols::protocol_name(&self.protocol).ok_or_else(|| {
            SimError::Config(format!("line {line}: unknown protocol {:?}", self.protocol))
        })?;
        let mut record = Record {
            time_ms: self.time_ms,
            kind: RecordKind::Position,
            fix: Some(Fix {
                lat: self.lat,
                lon: self.lon,
                speed_kmh: self.speed_kmh,
                course_deg: self.course_deg,
                altitude_m: None,
                satellites: None,
                valid: true,
            }),
            ..Record::default()
        };
        for (key, value) in self.attributes {
            record.attributes.set(key, value);
        }
        Ok(DeviceMessage {
            device: DeviceId::new(&self.device),
            protocol,
            record,
        })
    }
}

/// Writes `scenario` to `path`.
pub fn write(path: &Path, scenario: &Scenario) -> Result<(), SimError> {
    let fences = scenario.geofences.iter().cloned().map(Line::Geofence);
    let records = scenario
        .records
        .iter()
        .filter_map(|m| RecordLine::of(m))
        .map(Line::Record);
    crate::write_json_lines(path, fences.chain(records))
}

/// Reads a scenario file; a line that is not one of the scenario's says
/// which, and nothing is read.
pub fn read(path: &Path) -> Result<Scenario, SimError> {
    let file = File::open(path).map_err(|source| SimError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut scenario = Scenario::default();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| SimError::Read {
            path: path.to_owned(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(&line)
            .map_err(|error| SimError::Config(format!("line {}: {error}", n + 1)))?;
        match parsed {
            Line::Geofence(fence) => scenario.geofences.push(fence),
            Line::Record(record) => scenario.records.push(Arc::new(record.into_message(n + 1)?)),
        }
    }
    Ok(scenario)
}

// invariant: test code (cfg(test) only): the unwraps below never see outside input.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_reads_back_as_written() {
        let scenario = build(2, 356_307_042_441_000, 1_764_000_000_000);
        assert_eq!(scenario.geofences.len(), 2);
        let minutes: i64 = 2 + 10 + 3 + 5 + 10 + 8 + 10;
        assert_eq!(scenario.records.len() as i64, 2 * minutes * 6);
        assert!(
            scenario
                .records
                .windows(2)
                .all(|w| w[0].record.time_ms <= w[1].record.time_ms)
        );
        let dir = std::env::temp_dir().join(format!("drover-scenario-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("scenario.jsonl");
        write(&path, &scenario).unwrap();
        let back = read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(back.geofences, scenario.geofences);
        assert_eq!(back.records.len(), scenario.records.len());
        let (a, b) = (&back.records[100], &scenario.records[100]);
        assert_eq!((&a.device, a.record.time_ms), (&b.device, b.record.time_ms));
        // A JSON object keeps no order: the same attributes, by name.
        let by_name = |m: &DeviceMessage| -> BTreeMap<String, Value> {
            m.record
                .attributes
                .iter()
                .map(|(k, v)| (k.to_owned(), v.clone()))
                .collect()
        };
        assert_eq!(by_name(a), by_name(b));
    }

    #[test]
    fn the_geofence_lies_on_the_fast_leg() {
        let scenario = build(1, 1, 0);
        let fence = &scenario.geofences[0];
        let inside: Vec<f64> = scenario
            .records
            .iter()
            .filter_map(|m| m.record.fix)
            .filter(|f| ((f.lat - fence.lat) * M_PER_DEG).abs() < fence.radius_m)
            .map(|f| f.speed_kmh)
            .collect();
        assert!(!inside.is_empty());
        assert!(inside.iter().all(|kmh| *kmh > ZONE_LIMIT_KMH), "{inside:?}");
        let expected = expected();
        assert!((expected.trip_m[1] - 8_000.0).abs() < 1e-6);
    }
}
