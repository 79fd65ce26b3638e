//! Trips and stops, replayed deterministically through the engine: a drive
//! is a series of fixes every 10 s along a straight road north, at a known
//! speed, so the distance each trip should have is known exactly.

use std::sync::Arc;

use drover_engine::systems::motion::haversine_m;
use drover_engine::systems::stops::StopSummary;
use drover_engine::systems::trips::TripSummary;
use drover_engine::{Delta, Engine, EngineConfig, Executor, Input};
use drover_protocols::model::{DeviceId, DeviceMessage, Fix, Record, RecordKind, attr};

const T0: i64 = 1_764_000_000_000;
const DEVICE: &str = "356307042441013";
const STEP_MS: i64 = 10_000;
/// Metres of latitude in a degree, near enough for building the route.
const M_PER_DEG: f64 = 111_195.0;

/// Where the simulated vehicle is and what it reports.
struct Drive {
    time_ms: i64,
    lat: f64,
    lon: f64,
    /// Every fix so far, in order.
    fixes: Vec<Arc<DeviceMessage>>,
    /// The true distance driven from the first fix on.
    driven_m: f64,
}

impl Drive {
    fn new() -> Drive {
        Drive {
            time_ms: T0,
            lat: 54.68,
            lon: 25.28,
            fixes: Vec::new(),
            driven_m: 0.0,
        }
    }

    fn report(&mut self, speed_kmh: f64, ignition: bool, fuel_pct: f64) {
        self.report_at(self.lat, self.lon, speed_kmh, ignition, fuel_pct);
    }

    fn report_at(&mut self, lat: f64, lon: f64, speed_kmh: f64, ignition: bool, fuel_pct: f64) {
        let mut record = Record {
            time_ms: self.time_ms,
            kind: RecordKind::Position,
            fix: Some(Fix {
                lat,
                lon,
                speed_kmh,
                course_deg: 0.0,
                altitude_m: None,
                satellites: Some(9),
                valid: true,
            }),
            ..Record::default()
        };
        record.attributes.set(attr::IGNITION, ignition);
        record.attributes.set(attr::FUEL_LEVEL, fuel_pct);
        self.fixes.push(Arc::new(DeviceMessage {
            device: DeviceId::new(DEVICE),
            protocol: "teltonika",
            record,
        }));
    }

    /// `minutes` of driving north at `kmh`, a fix every 10 s.
    fn drive(&mut self, minutes: i64, kmh: f64) {
        for _ in 0..minutes * 6 {
            self.time_ms += STEP_MS;
            let metres = kmh / 3.6 * (STEP_MS as f64 / 1000.0);
            let lat = self.lat + metres / M_PER_DEG;
            // Along the fixes: nothing before the first.
            if !self.fixes.is_empty() {
                self.driven_m += haversine_m(self.lat, self.lon, lat, self.lon);
            }
            self.lat = lat;
            self.report(kmh, true, 60.0);
        }
    }

    /// `minutes` parked, ignition off, with GNSS jitter of a few metres.
    fn park(&mut self, minutes: i64) {
        for i in 0..minutes * 6 {
            self.time_ms += STEP_MS;
            let jitter = if i % 2 == 0 { 8.0 } else { -8.0 } / M_PER_DEG;
            let speed = if i % 3 == 0 { 2.0 } else { 0.0 };
            self.report_at(self.lat + jitter, self.lon - jitter, speed, false, 60.0);
        }
    }
}

fn engine() -> Engine {
    Engine::new(EngineConfig {
        executor: Executor::SingleThreaded,
        ..EngineConfig::default()
    })
}

/// Feeds `fixes` a few per tick, the clock following the device, and
/// returns every trip change in order.
fn run(engine: &mut Engine, fixes: &[Arc<DeviceMessage>], per_tick: usize) -> Vec<TripSummary> {
    let mut changes = Vec::new();
    for chunk in fixes.chunks(per_tick) {
        let now = chunk.last().map_or(T0, |m| m.record.time_ms);
        let mut inputs: Vec<Input> = chunk.iter().cloned().map(Input::Record).collect();
        changes.extend(tick(engine, now, &mut inputs));
    }
    changes
}

fn tick(engine: &mut Engine, now: i64, inputs: &mut Vec<Input>) -> Vec<TripSummary> {
    let mut deltas = Vec::new();
    engine.tick(now, inputs, &mut deltas);
    deltas
        .into_iter()
        .filter_map(|delta| match delta {
            Delta::Trip(trip) => Some(*trip),
            _ => None,
        })
        .collect()
}

fn closed(changes: &[TripSummary]) -> Vec<&TripSummary> {
    changes.iter().filter(|t| !t.open()).collect()
}

fn assert_close(actual: f64, expected: f64, tolerance: f64) {
    assert!(
        (actual - expected).abs() <= expected * tolerance,
        "{actual} is not within {}% of {expected}",
        tolerance * 100.0
    );
}

#[test]
fn a_ten_minute_stop_splits_a_drive_into_two_trips_of_the_right_length() {
    let mut drive = Drive::new();
    drive.drive(10, 36.0);
    let first_m = drive.driven_m;
    drive.park(10);
    drive.drive(15, 50.0);
    let second_m = drive.driven_m - first_m;
    drive.park(6);

    let changes = run(&mut engine(), &drive.fixes, 3);
    let opened: Vec<_> = changes.iter().filter(|t| t.open()).collect();
    let closed = closed(&changes);
    assert_eq!((opened.len(), closed.len()), (2, 2), "{changes:#?}");

    let (a, b) = (closed[0], closed[1]);
    assert_eq!(a.start.time_ms, T0 + STEP_MS);
    assert_close(a.distance_m, first_m, 0.02);
    assert_close(b.distance_m, second_m, 0.02);
    // Each ends where its stop began, not where the stop was noticed.
    assert_eq!(a.end.map(|e| e.time_ms), Some(T0 + 61 * STEP_MS));
    assert_eq!(a.duration_ms(), 60 * STEP_MS);
    assert_eq!(a.max_speed_kmh, 36.0);
    assert_close(a.avg_speed_kmh(), 36.0, 0.02);
    assert_close(b.avg_speed_kmh(), 50.0, 0.02);
    assert_eq!(a.idle_ms, 0);
    assert_ne!(a.id(), b.id());
}

#[test]
fn a_short_stop_does_not_end_the_trip_and_parked_jitter_adds_no_distance() {
    let mut drive = Drive::new();
    drive.drive(5, 40.0);
    drive.park(3);
    drive.drive(5, 40.0);
    let driven = drive.driven_m;
    drive.park(30);

    let changes = run(&mut engine(), &drive.fixes, 1);
    let closed = closed(&changes);
    assert_eq!(closed.len(), 1, "{changes:#?}");
    // 3 minutes of ±8 m jitter would add ~300 m if it counted.
    assert_close(closed[0].distance_m, driven, 0.02);
}

#[test]
fn idling_with_the_engine_on_counts_as_idle_time() {
    let mut drive = Drive::new();
    drive.drive(5, 40.0);
    for _ in 0..12 {
        drive.time_ms += STEP_MS;
        drive.report(0.0, true, 60.0);
    }
    drive.drive(5, 40.0);
    drive.park(6);
    let changes = run(&mut engine(), &drive.fixes, 4);
    let closed = closed(&changes);
    assert_eq!(closed.len(), 1);
    // Standing from the first fix at 0 km/h to the first fix moving again.
    assert_eq!(closed[0].idle_ms, 12 * STEP_MS);
}

#[test]
fn a_device_that_goes_silent_closes_its_trip_by_the_engine_clock() {
    let mut drive = Drive::new();
    drive.drive(5, 40.0);
    let last = drive.time_ms;
    let mut engine = engine();
    let changes = run(&mut engine, &drive.fixes, 6);
    assert!(closed(&changes).is_empty());

    let quiet = tick(&mut engine, last + 299_000, &mut Vec::new());
    assert!(quiet.is_empty(), "closed before the stop time: {quiet:#?}");
    let changes = tick(&mut engine, last + 301_000, &mut Vec::new());
    let closed = closed(&changes);
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].end.map(|e| e.time_ms), Some(last));
}

#[test]
fn a_buffer_sent_late_gives_the_same_trips_as_live_reports() {
    let mut drive = Drive::new();
    drive.drive(8, 45.0);
    drive.park(7);
    drive.drive(4, 30.0);
    drive.park(7);

    let live = run(&mut engine(), &drive.fixes, 1);
    // The device was offline and sends it all at once, archived.
    let archived: Vec<_> = drive
        .fixes
        .iter()
        .map(|m| {
            let mut m = (**m).clone();
            m.record.archived = true;
            Arc::new(m)
        })
        .collect();
    let late = run(&mut engine(), &archived, archived.len());
    assert_eq!(closed(&live), closed(&late));
    assert_eq!(closed(&live).len(), 2);
}

#[test]
fn records_resent_after_newer_ones_count_once() {
    let mut drive = Drive::new();
    drive.drive(6, 40.0);
    let mut fixes = drive.fixes.clone();
    // The device resends its first two minutes (no ack reached it).
    fixes.extend(drive.fixes[..12].iter().cloned());
    drive.fixes.clear();
    drive.park(6);
    fixes.extend(drive.fixes.iter().cloned());

    let changes = run(&mut engine(), &fixes, 2);
    let closed = closed(&changes);
    assert_eq!(closed.len(), 1);
    assert_close(closed[0].distance_m, drive.driven_m, 0.02);
}

#[test]
fn an_open_trip_survives_a_snapshot_and_closes_with_the_whole_distance() {
    let mut drive = Drive::new();
    drive.drive(6, 40.0);
    let half = drive.fixes.len();
    drive.drive(6, 40.0);
    drive.park(6);

    let mut before = engine();
    run(&mut before, &drive.fixes[..half], 3);
    let snapshot = before.capture(drive.fixes[half - 1].record.time_ms);
    let mut after = engine();
    after.restore(snapshot).expect("restore");
    let changes = run(&mut after, &drive.fixes[half..], 3);

    let closed = closed(&changes);
    assert_eq!(closed.len(), 1, "{changes:#?}");
    assert_eq!(closed[0].start.time_ms, T0 + STEP_MS);
    assert_close(closed[0].distance_m, drive.driven_m, 0.02);
}

#[test]
fn both_executors_find_the_same_trips() {
    let mut drive = Drive::new();
    drive.drive(7, 55.0);
    drive.park(8);
    drive.drive(3, 20.0);
    drive.park(8);
    let single = run(&mut engine(), &drive.fixes, 5);
    let mut multi = Engine::new(EngineConfig {
        executor: Executor::MultiThreaded,
        ..EngineConfig::default()
    });
    assert_eq!(single, run(&mut multi, &drive.fixes, 5));
}

#[test]
fn an_old_buffer_sent_in_many_packets_is_not_cut_by_the_engine_clock() {
    let mut drive = Drive::new();
    drive.drive(12, 40.0);
    drive.park(7);
    // The records are hours old; a packet of 4 arrives every second.
    let mut engine = engine();
    let mut changes = Vec::new();
    let now = T0 + 5 * 3_600_000;
    for (i, chunk) in drive.fixes.chunks(4).enumerate() {
        let mut inputs: Vec<Input> = chunk.iter().cloned().map(Input::Record).collect();
        changes.extend(tick(&mut engine, now + i as i64 * 1000, &mut inputs));
    }
    let closed = closed(&changes);
    assert_eq!(closed.len(), 1, "{changes:#?}");
    assert_close(closed[0].distance_m, drive.driven_m, 0.02);
}

/// Feeds `fixes` a few per tick and returns every stop change in order.
fn stops(engine: &mut Engine, fixes: &[Arc<DeviceMessage>], per_tick: usize) -> Vec<StopSummary> {
    let mut changes = Vec::new();
    for chunk in fixes.chunks(per_tick) {
        let now = chunk.last().map_or(T0, |m| m.record.time_ms);
        let mut inputs: Vec<Input> = chunk.iter().cloned().map(Input::Record).collect();
        let mut deltas = Vec::new();
        engine.tick(now, &mut inputs, &mut deltas);
        changes.extend(deltas.into_iter().filter_map(|delta| match delta {
            Delta::Stop(stop) => Some(*stop),
            _ => None,
        }));
    }
    changes
}

#[test]
fn a_stop_lasts_from_the_end_of_one_trip_to_the_start_of_the_next() {
    let mut drive = Drive::new();
    drive.drive(10, 36.0);
    drive.park(10);
    drive.drive(5, 50.0);
    drive.park(6);

    let mut engine = engine();
    let changes = stops(&mut engine, &drive.fixes, 3);
    let trips = run(&mut Engine::new(EngineConfig::default()), &drive.fixes, 3);
    let trips = closed(&trips);
    assert_eq!(trips.len(), 2);
    // Opened when the first trip closed, closed when the second began,
    // then a second one opened when that one closed.
    assert_eq!(changes.len(), 3, "{changes:#?}");
    let first = &changes[1];
    assert_eq!(first.id(), changes[0].id());
    assert_eq!(Some(first.start), trips[0].end);
    assert_eq!(first.end, Some(trips[1].start));
    assert_eq!(changes[2].start, trips[1].end.expect("closed"));
    assert!(changes[2].open());
    // The stop the vehicle stands in is part of its live state, and a
    // restart keeps it.
    let device = DeviceId::new(DEVICE);
    let live = engine.device(&device).expect("live").stop;
    assert_eq!(live.as_deref(), Some(&changes[2]));
    let mut restarted = Engine::new(EngineConfig::default());
    restarted.restore(engine.capture(T0)).expect("restore");
    let after = restarted.device(&device).expect("restored").stop;
    assert_eq!(after.as_deref(), Some(&changes[2]));
}
