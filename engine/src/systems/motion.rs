//! Derive: motion from successive fixes.

use bevy_ecs::prelude::*;

use crate::clock::Clock;
use crate::components::{Kinematics, LastFix, Trail};

/// Below this speed a vehicle counts as standing: GNSS jitter at rest reads
/// as a few km/h.
pub const MOVING_KMH: f64 = 5.0;

/// Fixes further apart than this are a jump (a bad fix or a long gap), not a
/// drive, and do not add to the distance.
pub const MAX_PLAUSIBLE_KMH: f64 = 400.0;

/// Mean Earth radius in metres (IUGG).
const EARTH_RADIUS_M: f64 = 6_371_008.8;

pub fn update_motion(
    clock: Res<Clock>,
    mut devices: Query<(&Trail, &mut Kinematics), Changed<Trail>>,
) {
    for (trail, mut kinematics) in &mut devices {
        let fixes = trail.of_tick(clock.tick);
        if fixes.is_empty() {
            continue;
        }
        let next = fixes.iter().fold(*kinematics, |k, fix| advance(&k, fix));
        kinematics.set_if_neq(next);
    }
}

fn advance(k: &Kinematics, last: &LastFix) -> Kinematics {
    let fix = &last.fix;
    let mut next = Kinematics {
        speed_kmh: fix.speed_kmh,
        course_deg: fix.course_deg,
        moving: fix.speed_kmh >= MOVING_KMH,
        ..*k
    };
    if !fix.valid {
        return next;
    }
    if let Some((t0, lat0, lon0)) = k.last_point {
        let metres = haversine_m(lat0, lon0, fix.lat, fix.lon);
        let hours = (last.time_ms - t0) as f64 / 3_600_000.0;
        if hours > 0.0 && metres / 1000.0 / hours <= MAX_PLAUSIBLE_KMH {
            next.distance_m += metres;
        }
    }
    next.last_point = Some((last.time_ms, fix.lat, fix.lon));
    next
}

/// Great-circle distance in metres.
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_degree_of_latitude_is_about_111_km() {
        let d = haversine_m(52.0, 13.0, 53.0, 13.0);
        assert!((d - 111_195.0).abs() < 100.0, "{d}");
    }
}
