//! The engine side of a virtual vehicle: what its OBD dongle would read.
//!
//! Driven by the vehicle's kinematics each sub-step, so that rpm, throttle,
//! load, fuel and coolant tell the same story as the track: idle at lights,
//! load when pulling away, fuel falling with distance and idling, coolant
//! warming after a cold start and cooling while parked.

use rand::Rng;
use rand::rngs::SmallRng;

/// Engine speed at idle, warm.
pub const IDLE_RPM: f64 = 800.0;
/// Where the thermostat holds the coolant.
pub const OPERATING_TEMP_C: f64 = 90.0;

/// Overall ratios (rpm per km/h) of gears 1–6 of a typical manual car.
const GEAR_RPM_PER_KMH: [f64; 6] = [110.0, 65.0, 45.0, 35.0, 28.0, 23.0];
/// The driver shifts up before this engine speed.
const SHIFT_UP_RPM: f64 = 2_500.0;
/// Time constants of coolant warming (engine running) and cooling (off).
const WARM_UP_TAU_S: f64 = 300.0;
const COOL_DOWN_TAU_S: f64 = 1_800.0;
/// Fuel burnt at warm idle, litres per hour.
const IDLE_LITRES_PER_HOUR: f64 = 0.8;
/// Fuel burnt per metre driven at light load (≈ 5 L/100 km).
const LITRES_PER_METRE: f64 = 5.0e-5;

/// What the engine is doing during one sub-step.
#[derive(Debug, Clone, Copy)]
pub struct Demand {
    pub ignition: bool,
    pub speed_kmh: f64,
    /// Longitudinal acceleration, m/s².
    pub accel_mps2: f64,
    /// The driver's strongest acceleration, to scale the throttle.
    pub max_accel_mps2: f64,
    pub distance_m: f64,
    pub dt_s: f64,
}

#[derive(Debug, Clone)]
pub struct Powertrain {
    pub ignition: bool,
    pub rpm: f64,
    pub throttle_pct: f64,
    pub load_pct: f64,
    pub coolant_c: f64,
    pub fuel_pct: f64,
    pub ambient_c: f64,
    tank_litres: f64,
}

impl Powertrain {
    /// A vehicle with a random tank size, fill and weather; the engine is warm
    /// when `running`, at ambient temperature otherwise.
    pub fn new(rng: &mut SmallRng, running: bool) -> Self {
        let ambient_c = rng.random_range(5.0..25.0);
        let coolant_c = if running {
            rng.random_range(40.0..OPERATING_TEMP_C)
        } else {
            ambient_c
        };
        Powertrain {
            ignition: running,
            rpm: if running { IDLE_RPM } else { 0.0 },
            throttle_pct: 0.0,
            load_pct: 0.0,
            coolant_c,
            fuel_pct: rng.random_range(25.0..100.0),
            ambient_c,
            tank_litres: rng.random_range(45.0..75.0),
        }
    }

    pub fn step(&mut self, d: &Demand) {
        self.ignition = d.ignition;
        if d.ignition {
            self.run(d);
        } else {
            self.stop(d.dt_s);
        }
    }

    /// Fills the tank; only ever called while parked with the engine off.
    pub fn refuel(&mut self, rng: &mut SmallRng) {
        self.fuel_pct = rng.random_range(90.0..100.0);
    }

    fn run(&mut self, d: &Demand) {
        self.throttle_pct = throttle(d);
        self.rpm = self.engine_speed(d);
        self.load_pct = if d.speed_kmh < 1.0 {
            // Idle load: alternator, pumps, air conditioning.
            20.0
        } else if self.throttle_pct == 0.0 {
            // Engine braking.
            8.0
        } else {
            (15.0 + 0.8 * self.throttle_pct).min(100.0)
        };
        let warm = 1.0 - (-d.dt_s / WARM_UP_TAU_S).exp();
        self.coolant_c += (OPERATING_TEMP_C - self.coolant_c) * warm;
        self.burn(d);
    }

    fn stop(&mut self, dt_s: f64) {
        self.rpm = 0.0;
        self.throttle_pct = 0.0;
        self.load_pct = 0.0;
        let cool = 1.0 - (-dt_s / COOL_DOWN_TAU_S).exp();
        self.coolant_c += (self.ambient_c - self.coolant_c) * cool;
    }

    fn engine_speed(&self, d: &Demand) -> f64 {
        if d.speed_kmh < 1.0 {
            // A cold engine idles faster.
            let cold = (60.0 - self.coolant_c).max(0.0) * 5.0;
            return IDLE_RPM + cold;
        }
        let ratio = GEAR_RPM_PER_KMH
            .iter()
            .copied()
            .find(|r| d.speed_kmh * r <= SHIFT_UP_RPM)
            .unwrap_or(GEAR_RPM_PER_KMH[5]);
        // Pulling hard holds a gear a little longer.
        (d.speed_kmh * ratio + self.throttle_pct * 6.0).max(IDLE_RPM + 100.0)
    }

    fn burn(&mut self, d: &Demand) {
        let idle = IDLE_LITRES_PER_HOUR / 3600.0 * d.dt_s * (self.rpm / IDLE_RPM);
        let moving = LITRES_PER_METRE * d.distance_m * (0.6 + self.load_pct / 100.0);
        let used_pct = (idle + moving) / self.tank_litres * 100.0;
        self.fuel_pct = (self.fuel_pct - used_pct).max(0.0);
    }
}

/// Pedal position from what the vehicle is doing: pressing to accelerate,
/// holding against drag when cruising, off when braking or stopped.
fn throttle(d: &Demand) -> f64 {
    if d.speed_kmh < 1.0 && d.accel_mps2 <= 0.05 {
        return 0.0;
    }
    let cruise = 6.0 + 0.15 * d.speed_kmh;
    let pct = if d.accel_mps2 > 0.05 {
        cruise + 70.0 * (d.accel_mps2 / d.max_accel_mps2).min(1.0)
    } else if d.accel_mps2 < -0.05 {
        0.0
    } else {
        cruise
    };
    pct.clamp(0.0, 100.0)
}
