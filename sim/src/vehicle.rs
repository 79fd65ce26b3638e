//! One virtual vehicle: where it is, how fast it goes, what its engine does,
//! and the [`Record`] its tracker would report.
//!
//! Pure and seeded: the same seed and device index, stepped by the same
//! durations, give the same track on any machine. Time is the vehicle's own
//! clock (ms since the Unix epoch), moved only by [`Vehicle::step`].

use std::borrow::Cow;
use std::time::Duration;

use drover_protocols::model::{Attributes, Fix, Record, RecordKind, Value, attr};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::powertrain::{Demand, Powertrain};
use crate::route::{City, LatLon, METRES_PER_DEGREE, Segment, SegmentEnd};

/// Longest integration step: long enough to be cheap for 100k vehicles,
/// short enough that braking to a stop line stays smooth.
const MAX_SUBSTEP_S: f64 = 0.5;
/// Speed through a right-angle turn, km/h.
const TURN_SPEED_KMH: f64 = 20.0;
/// Below this speed the vehicle counts as not moving, km/h.
const MOTION_THRESHOLD_KMH: f64 = 2.0;
/// A tank this low gets filled at the next stop with the engine off.
const REFUEL_BELOW_PCT: f64 = 15.0;

/// How a vehicle's driver drives.
#[derive(Debug, Clone, Copy)]
struct Driver {
    /// Fraction of the speed limit this driver cruises at.
    speed_factor: f64,
    accel_mps2: f64,
    brake_mps2: f64,
}

/// What the vehicle is doing.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Activity {
    Driving,
    /// Stopped with the engine running (light, sign, queue).
    Halted {
        remaining_s: f64,
    },
    /// Parked; the engine is off when `ignition_off`.
    Parked {
        remaining_s: f64,
        ignition_off: bool,
    },
}

/// A simulated vehicle with its tracker and OBD dongle.
#[derive(Debug, Clone)]
pub struct Vehicle {
    rng: SmallRng,
    city: City,
    clock_ms: i64,
    segment: Segment,
    along_m: f64,
    speed_mps: f64,
    activity: Activity,
    driver: Driver,
    powertrain: Powertrain,
    odometer_m: f64,
    satellites: u8,
    fault_count: u8,
    /// The tracker's relay cut the fuel (an engine stop command): the
    /// vehicle stands with its engine off until the relay is restored.
    engine_cut: bool,
}

impl Vehicle {
    /// Vehicle number `index` of a fleet seeded with `seed`, its clock at `start_ms`.
    pub fn new(seed: u64, index: u64, city: &City, start_ms: i64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed ^ index);
        let start = city.start_point(&mut rng);
        // Streets of one neighbourhood share an orientation.
        let heading = rng.random_range(0.0..360.0);
        let segment = city.next_segment(&mut rng, start, heading);
        let parked = rng.random_bool(0.2);
        let activity = if parked {
            Activity::Parked {
                remaining_s: rng.random_range(0.0..600.0),
                ignition_off: true,
            }
        } else {
            Activity::Driving
        };
        let driver = Driver {
            speed_factor: rng.random_range(0.85..1.08),
            accel_mps2: rng.random_range(1.2..2.5),
            brake_mps2: rng.random_range(2.0..3.5),
        };
        let powertrain = Powertrain::new(&mut rng, !parked);
        Vehicle {
            city: *city,
            clock_ms: start_ms,
            along_m: rng.random_range(0.0..segment.length_m * 0.5),
            segment,
            speed_mps: 0.0,
            activity,
            driver,
            powertrain,
            odometer_m: rng.random_range(10_000.0..250_000.0) * 1000.0,
            satellites: rng.random_range(7..13),
            fault_count: if rng.random_bool(0.05) {
                rng.random_range(1..4)
            } else {
                0
            },
            engine_cut: false,
            rng,
        }
    }

    /// Moves the vehicle and its clock forward by `dt`.
    pub fn step(&mut self, dt: Duration) {
        let total_s = dt.as_secs_f64();
        let substeps = (total_s / MAX_SUBSTEP_S).ceil().max(1.0);
        let h = total_s / substeps;
        for _ in 0..substeps as u64 {
            self.substep(h);
        }
        self.clock_ms += i64::try_from(dt.as_millis()).unwrap_or(i64::MAX);
    }

    /// What the tracker reports now.
    pub fn record(&self) -> Record {
        Record {
            time_ms: self.clock_ms,
            kind: RecordKind::Position,
            fix: Some(self.fix()),
            archived: false,
            attributes: self.attributes(),
        }
    }

    pub fn clock_ms(&self) -> i64 {
        self.clock_ms
    }

    pub fn position(&self) -> LatLon {
        self.segment.point_at(self.along_m)
    }

    pub fn speed_kmh(&self) -> f64 {
        self.speed_mps * 3.6
    }

    pub fn odometer_m(&self) -> f64 {
        self.odometer_m
    }

    pub fn ignition(&self) -> bool {
        self.powertrain.ignition
    }

    pub fn fuel_pct(&self) -> f64 {
        self.powertrain.fuel_pct
    }

    pub fn coolant_c(&self) -> f64 {
        self.powertrain.coolant_c
    }

    pub fn ambient_c(&self) -> f64 {
        self.powertrain.ambient_c
    }

    pub fn rpm(&self) -> f64 {
        self.powertrain.rpm
    }

    /// Cuts the fuel, as a tracker's relay does on an engine stop command:
    /// the vehicle stops where it is, engine off, until [`Self::restore_engine`].
    pub fn cut_engine(&mut self) {
        self.engine_cut = true;
    }

    pub fn restore_engine(&mut self) {
        self.engine_cut = false;
    }

    fn substep(&mut self, dt_s: f64) {
        if self.engine_cut {
            return self.stand_cut(dt_s);
        }
        let (accel, distance) = match self.activity {
            Activity::Driving => self.drive(dt_s),
            Activity::Halted { remaining_s } => {
                self.wait(dt_s, remaining_s, false);
                (0.0, 0.0)
            }
            Activity::Parked {
                remaining_s,
                ignition_off,
            } => {
                self.wait(dt_s, remaining_s, ignition_off);
                (0.0, 0.0)
            }
        };
        self.odometer_m += distance;
        let ignition = !matches!(
            self.activity,
            Activity::Parked {
                ignition_off: true,
                ..
            }
        );
        self.powertrain.step(&Demand {
            ignition,
            speed_kmh: self.speed_kmh(),
            accel_mps2: accel,
            max_accel_mps2: self.driver.accel_mps2,
            distance_m: distance,
            dt_s,
        });
        if self.rng.random_bool(0.01) {
            let delta: i8 = if self.rng.random_bool(0.5) { 1 } else { -1 };
            self.satellites = self.satellites.saturating_add_signed(delta).clamp(5, 14);
        }
    }

    /// A sub-step with the fuel cut. The stop is immediate rather than a
    /// coast: trackers report every few seconds, and what matters is that
    /// nothing moves until the relay is restored. The driver's plan (the
    /// current stop's countdown) waits too.
    fn stand_cut(&mut self, dt_s: f64) {
        self.speed_mps = 0.0;
        self.powertrain.step(&Demand {
            ignition: false,
            speed_kmh: 0.0,
            accel_mps2: 0.0,
            max_accel_mps2: self.driver.accel_mps2,
            distance_m: 0.0,
            dt_s,
        });
    }

    /// Counts down a stop; when it is over, drives on into the next segment.
    fn wait(&mut self, dt_s: f64, remaining_s: f64, ignition_off: bool) {
        self.speed_mps = 0.0;
        let remaining_s = remaining_s - dt_s;
        if remaining_s > 0.0 {
            self.activity = match self.activity {
                Activity::Parked { .. } => Activity::Parked {
                    remaining_s,
                    ignition_off,
                },
                _ => Activity::Halted { remaining_s },
            };
            return;
        }
        if ignition_off && self.powertrain.fuel_pct < REFUEL_BELOW_PCT {
            self.powertrain.refuel(&mut self.rng);
        }
        // A vehicle that starts the run parked mid-block drives on along it.
        if self.along_m >= self.segment.length_m {
            self.enter_next_segment(0.0);
        }
        self.activity = Activity::Driving;
    }

    /// One integration step on the road; returns (acceleration, distance).
    fn drive(&mut self, dt_s: f64) -> (f64, f64) {
        let remaining = self.segment.length_m - self.along_m;
        let desired = self.desired_speed(remaining);
        let v0 = self.speed_mps;
        let accel = if desired > v0 {
            // Acceleration fades as the car approaches its cruising speed.
            let fade = 1.0 - 0.5 * (v0 / desired.max(1.0));
            ((desired - v0) / dt_s).min(self.driver.accel_mps2 * fade)
        } else {
            // Up to twice the comfortable rate: an emergency stop still stops.
            ((desired - v0) / dt_s).max(-2.0 * self.driver.brake_mps2)
        };
        let v1 = (v0 + accel * dt_s).max(0.0);
        let ds = (v0 + v1) / 2.0 * dt_s;
        self.speed_mps = v1;
        if self.segment.end.stops() && (ds >= remaining || (remaining - ds < 1.0 && v1 < 3.0)) {
            self.arrive();
            return (accel, remaining.max(0.0));
        }
        if ds >= remaining {
            self.enter_next_segment(ds - remaining);
        } else {
            self.along_m += ds;
        }
        (accel, ds)
    }

    /// The speed the driver aims for at this point of the segment: the road's
    /// pace, but slow enough to stop at a stop line or take the coming turn.
    fn desired_speed(&self, remaining_m: f64) -> f64 {
        let cruise = self.segment.kind.limit_kmh() * self.driver.speed_factor / 3.6;
        let brake = self.driver.brake_mps2;
        let end_speed = if self.segment.end.stops() {
            0.0
        } else if self.segment.turn_deg.abs() > 30.0 {
            TURN_SPEED_KMH / 3.6
        } else {
            cruise
        };
        let reachable = (end_speed * end_speed + 2.0 * brake * remaining_m).sqrt();
        // Creep up to a stop line rather than stall short of it.
        let creep: f64 = if remaining_m > 1.0 { 1.0 } else { 0.0 };
        cruise.min(reachable).max(creep.min(cruise))
    }

    fn arrive(&mut self) {
        self.along_m = self.segment.length_m;
        self.speed_mps = 0.0;
        self.activity = match self.segment.end {
            SegmentEnd::Halt { wait_s } => Activity::Halted {
                remaining_s: wait_s,
            },
            SegmentEnd::Park {
                wait_s,
                ignition_off,
            } => Activity::Parked {
                remaining_s: wait_s,
                ignition_off,
            },
            SegmentEnd::Through => Activity::Driving,
        };
    }

    fn enter_next_segment(&mut self, carried_m: f64) {
        let start = self.segment.end_point();
        let heading = (self.segment.heading_deg + self.segment.turn_deg).rem_euclid(360.0);
        self.segment = self.city.next_segment(&mut self.rng, start, heading);
        self.along_m = carried_m.min(self.segment.length_m);
    }

    fn fix(&self) -> Fix {
        let p = self.position();
        // Rounded as trackers report them: 10⁻⁷ degree, whole km/h, degrees and metres.
        Fix {
            lat: (p.lat * 1e7).round() / 1e7,
            lon: (p.lon * 1e7).round() / 1e7,
            speed_kmh: self.speed_kmh().round(),
            course_deg: self.segment.heading_deg.round().rem_euclid(360.0),
            altitude_m: Some(self.altitude_m(p).round()),
            satellites: Some(self.satellites),
            valid: true,
        }
    }

    /// Gentle hills: a smooth function of position, so a vehicle passing the
    /// same place twice reports the same height.
    fn altitude_m(&self, p: LatLon) -> f64 {
        let north = (p.lat - self.city.centre.lat) * METRES_PER_DEGREE;
        let east = (p.lon - self.city.centre.lon) * METRES_PER_DEGREE;
        35.0 + 10.0 * (north / 1500.0).sin() * (east / 2100.0).cos()
    }

    fn attributes(&self) -> Attributes {
        let pt = &self.powertrain;
        let moving = self.speed_kmh() >= MOTION_THRESHOLD_KMH;
        // Alternator charging with the engine running, resting battery otherwise.
        let power = if pt.ignition { 14.1 } else { 12.5 };
        let values: [(&'static str, Value); 13] = [
            (attr::IGNITION, pt.ignition.into()),
            (attr::MOTION, moving.into()),
            (attr::POWER, Value::Float(power)),
            (attr::BATTERY, Value::Float(4.1)),
            (attr::ODOMETER, whole(self.odometer_m)),
            (attr::RPM, whole(pt.rpm)),
            (attr::COOLANT_TEMP, whole(pt.coolant_c)),
            (attr::ENGINE_LOAD, whole(pt.load_pct)),
            (attr::FUEL_LEVEL, whole(pt.fuel_pct)),
            (attr::THROTTLE, whole(pt.throttle_pct)),
            (attr::OBD_SPEED, whole(self.speed_kmh())),
            (attr::OBD_ODOMETER, whole(self.odometer_m)),
            (attr::FAULT_COUNT, Value::Int(self.fault_count.into())),
        ];
        let mut attributes = Attributes::new();
        for (key, value) in values {
            attributes.set(Cow::Borrowed(key), value);
        }
        attributes
    }
}

/// Integer attribute, rounded as OBD dongles report these values.
fn whole(v: f64) -> Value {
    Value::Int(v.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const START_MS: i64 = 1_764_133_200_000;

    fn vehicle(seed: u64, index: u64) -> Vehicle {
        Vehicle::new(seed, index, &City::default(), START_MS)
    }

    fn second() -> Duration {
        Duration::from_secs(1)
    }

    #[test]
    fn positions_move_by_speed_times_time() {
        for index in 0..20 {
            let mut v = vehicle(42, index);
            let mut moved_m = 0.0;
            for _ in 0..1800 {
                let (p0, s0, odo0) = (v.position(), v.speed_kmh() / 3.6, v.odometer_m());
                v.step(second());
                let (p1, s1) = (v.position(), v.speed_kmh() / 3.6);
                let chord = p0.distance_to(p1);
                let odo = v.odometer_m() - odo0;
                // The odometer integrates speed; a chord cut across a turn is shorter.
                let fastest = s0.max(s1) + v.driver.accel_mps2.max(2.0 * v.driver.brake_mps2);
                assert!(
                    odo <= fastest + 0.01,
                    "odometer {odo} m at up to {fastest} m/s"
                );
                assert!(chord <= odo + 0.05, "moved {chord} m, odometer {odo} m");
                moved_m += odo;
            }
            assert!(
                moved_m > 1000.0,
                "vehicle {index} barely moved: {moved_m} m"
            );
        }
    }

    #[test]
    fn clock_advances_by_the_steps() {
        let mut v = vehicle(1, 0);
        v.step(Duration::from_millis(250));
        v.step(Duration::from_secs(3));
        assert_eq!(v.clock_ms(), START_MS + 3250);
        assert_eq!(v.record().time_ms, START_MS + 3250);
    }

    #[test]
    fn vehicles_stop_at_lights_and_park_with_the_engine_off() {
        let (mut halted, mut parked_off) = (0, 0);
        for index in 0..20 {
            let mut v = vehicle(3, index);
            for _ in 0..3600 {
                v.step(second());
                if v.speed_kmh() == 0.0 && v.ignition() {
                    halted += 1;
                    assert!((700.0..=1100.0).contains(&v.rpm()), "idle rpm {}", v.rpm());
                }
                if !v.ignition() {
                    parked_off += 1;
                    assert_eq!(v.rpm(), 0.0);
                    assert_eq!(v.speed_kmh(), 0.0);
                }
            }
        }
        assert!(halted > 100, "halted {halted} s");
        assert!(parked_off > 100, "parked {parked_off} s");
    }

    #[test]
    fn fuel_never_rises_while_driving() {
        for index in 0..20 {
            let mut v = vehicle(5, index);
            let start = v.fuel_pct();
            for _ in 0..3600 {
                let before = v.fuel_pct();
                v.step(second());
                if v.ignition() {
                    assert!(
                        v.fuel_pct() <= before,
                        "fuel rose from {before} to {}",
                        v.fuel_pct()
                    );
                }
            }
            assert!(
                v.fuel_pct() < start || v.fuel_pct() > 85.0,
                "fuel never used"
            );
        }
    }

    #[test]
    fn coolant_warms_to_operating_temperature_and_stays_in_bounds() {
        let mut warmed = 0;
        for index in 0..20 {
            let mut v = vehicle(9, index);
            for _ in 0..3600 {
                v.step(second());
                let c = v.coolant_c();
                assert!(c >= v.ambient_c() - 0.01 && c <= 90.01, "coolant {c} °C");
            }
            if v.ignition() && v.coolant_c() > 80.0 {
                warmed += 1;
            }
        }
        assert!(warmed > 5, "only {warmed} engines warm after an hour");
    }

    #[test]
    fn same_seed_gives_the_same_track_and_another_seed_another() {
        let track = |seed| {
            let mut v = vehicle(seed, 17);
            (0..600)
                .map(|_| {
                    v.step(Duration::from_millis(700));
                    v.record()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(track(11), track(11));
        assert_ne!(track(11), track(12));
    }

    #[test]
    fn a_cut_engine_stands_still_until_restored() {
        let mut v = vehicle(4, 2);
        while v.speed_kmh() < 20.0 {
            v.step(second());
        }
        v.cut_engine();
        let (at, odometer) = (v.position(), v.odometer_m());
        for _ in 0..300 {
            v.step(second());
            let r = v.record();
            assert_eq!(r.fix.map(|f| f.speed_kmh), Some(0.0));
            assert_eq!(r.attributes.get(attr::IGNITION), Some(&Value::Bool(false)));
            assert_eq!(r.attributes.get(attr::RPM), Some(&Value::Int(0)));
        }
        assert_eq!((v.position(), v.odometer_m()), (at, odometer));
        v.restore_engine();
        for _ in 0..600 {
            v.step(second());
        }
        assert!(v.odometer_m() > odometer + 100.0, "did not drive on");
    }

    #[test]
    fn records_carry_the_fix_and_obd_attributes() {
        let mut v = vehicle(2, 4);
        v.step(Duration::from_secs(30));
        let r = v.record();
        let fix = r.fix.unwrap_or_default();
        assert!(fix.valid && (0.0..360.0).contains(&fix.course_deg));
        assert!(
            City::default().centre.distance_to(LatLon {
                lat: fix.lat,
                lon: fix.lon
            }) < 20_000.0
        );
        for key in [
            attr::IGNITION,
            attr::MOTION,
            attr::POWER,
            attr::BATTERY,
            attr::ODOMETER,
            attr::RPM,
            attr::COOLANT_TEMP,
            attr::ENGINE_LOAD,
            attr::FUEL_LEVEL,
            attr::THROTTLE,
            attr::OBD_SPEED,
            attr::OBD_ODOMETER,
            attr::FAULT_COUNT,
        ] {
            assert!(r.attributes.get(key).is_some(), "{key} missing");
        }
    }
}
