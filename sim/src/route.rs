//! Where a virtual vehicle drives: an endless chain of straight road
//! segments joined at intersections, laid out on the fly.
//!
//! There is no map: the city is a street grid of random orientation per
//! vehicle, and each segment is drawn when the previous one ends. What
//! matters for load and analytics is that tracks look like driving — straight
//! runs at a road's speed, right-angle turns, stops at lights and for
//! deliveries — and stay inside the city.

use rand::Rng;
use rand::rngs::SmallRng;

/// Metres per degree of latitude (and of longitude at the equator).
pub const METRES_PER_DEGREE: f64 = 111_320.0;

/// A point on the WGS 84 ellipsoid, in degrees.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatLon {
    pub lat: f64,
    pub lon: f64,
}

impl LatLon {
    /// The point `metres` away along `heading_deg` (clockwise from north).
    ///
    /// A flat-earth step: the error over a few hundred metres is far below
    /// GNSS noise, and it keeps every step cheap.
    pub fn moved(self, heading_deg: f64, metres: f64) -> LatLon {
        let (sin, cos) = heading_deg.to_radians().sin_cos();
        let lat = self.lat + cos * metres / METRES_PER_DEGREE;
        let lon = self.lon + sin * metres / (METRES_PER_DEGREE * self.lat.to_radians().cos());
        LatLon { lat, lon }
    }

    /// Distance in metres (equirectangular; good to well under 1 % in a city).
    pub fn distance_to(self, other: LatLon) -> f64 {
        let (north, east) = self.offset_to(other);
        north.hypot(east)
    }

    /// Bearing in degrees clockwise from north towards `other`, [0, 360).
    pub fn bearing_to(self, other: LatLon) -> f64 {
        let (north, east) = self.offset_to(other);
        east.atan2(north).to_degrees().rem_euclid(360.0)
    }

    fn offset_to(self, other: LatLon) -> (f64, f64) {
        let mean_lat = ((self.lat + other.lat) / 2.0).to_radians();
        let north = (other.lat - self.lat) * METRES_PER_DEGREE;
        let east = (other.lon - self.lon) * METRES_PER_DEGREE * mean_lat.cos();
        (north, east)
    }
}

/// The kind of road a segment is, which sets its speed and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoadKind {
    Residential,
    Street,
    Arterial,
    Expressway,
}

impl RoadKind {
    /// The speed limit in km/h.
    pub fn limit_kmh(self) -> f64 {
        match self {
            RoadKind::Residential => 30.0,
            RoadKind::Street => 50.0,
            RoadKind::Arterial => 60.0,
            RoadKind::Expressway => 90.0,
        }
    }

    /// Range of segment lengths in metres (one block, or the run between exits).
    fn length_m(self) -> (f64, f64) {
        match self {
            RoadKind::Residential => (80.0, 250.0),
            RoadKind::Street => (120.0, 450.0),
            RoadKind::Arterial => (250.0, 900.0),
            RoadKind::Expressway => (800.0, 3000.0),
        }
    }

    /// What happens at the end of a segment of this kind when going straight on.
    /// Faster roads have fewer, longer-red lights; residential streets have signs.
    fn stop_odds(self) -> (f64, f64) {
        // (chance of a red light, chance of a stop sign)
        match self {
            RoadKind::Residential => (0.05, 0.35),
            RoadKind::Street => (0.35, 0.05),
            RoadKind::Arterial => (0.35, 0.0),
            RoadKind::Expressway => (0.0, 0.0),
        }
    }

    fn pick(rng: &mut SmallRng) -> RoadKind {
        match rng.random_range(0..100) {
            0..30 => RoadKind::Residential,
            30..70 => RoadKind::Street,
            70..92 => RoadKind::Arterial,
            _ => RoadKind::Expressway,
        }
    }
}

/// What waits at the end of a segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SegmentEnd {
    /// Drive on (possibly turning) without stopping.
    Through,
    /// Stop for this many seconds, engine running (red light, stop sign, queue).
    Halt { wait_s: f64 },
    /// Stop and park for this many seconds (a delivery, a break); the engine
    /// is switched off when `ignition_off`.
    Park { wait_s: f64, ignition_off: bool },
}

impl SegmentEnd {
    pub fn stops(self) -> bool {
        !matches!(self, SegmentEnd::Through)
    }
}

/// One straight piece of road.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub kind: RoadKind,
    pub start: LatLon,
    pub heading_deg: f64,
    pub length_m: f64,
    /// Change of heading at the end, degrees (negative = left).
    pub turn_deg: f64,
    pub end: SegmentEnd,
}

impl Segment {
    /// The point `along_m` metres from the segment's start.
    pub fn point_at(&self, along_m: f64) -> LatLon {
        self.start
            .moved(self.heading_deg, along_m.clamp(0.0, self.length_m))
    }

    pub fn end_point(&self) -> LatLon {
        self.point_at(self.length_m)
    }
}

/// The area a fleet drives in.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct City {
    pub centre: LatLon,
    /// Vehicles start within this distance and turn back towards the centre
    /// when they drive past it.
    pub radius_m: f64,
}

impl Default for City {
    fn default() -> Self {
        // Berlin Mitte: dense grid, well-known coordinates for a demo map.
        City {
            centre: LatLon {
                lat: 52.52,
                lon: 13.40,
            },
            radius_m: 12_000.0,
        }
    }
}

impl City {
    /// `count` geofences over the city: circles of 50 m (depots, customer
    /// sites) on a square grid across it, every other one with a speed
    /// limit of 30 km/h — what the engine benchmarks load.
    pub fn geofence_grid(&self, count: usize) -> Vec<crate::scenario::ScenarioFence> {
        let side = (count as f64).sqrt().ceil().max(1.0) as usize;
        let span_lat = 2.0 * self.radius_m / 111_195.0;
        let span_lon = span_lat / self.centre.lat.to_radians().cos();
        (0..count)
            .map(|i| {
                let (row, col) = ((i / side) as f64, (i % side) as f64);
                crate::scenario::ScenarioFence {
                    id: format!("gf_{i}"),
                    name: format!("zone {i}"),
                    lat: self.centre.lat - span_lat / 2.0 + span_lat * row / side as f64,
                    lon: self.centre.lon - span_lon / 2.0 + span_lon * col / side as f64,
                    radius_m: 50.0,
                    speed_limit_kmh: (i % 2 == 0).then_some(30.0),
                }
            })
            .collect()
    }

    /// A random start point, uniform over the disc.
    pub fn start_point(&self, rng: &mut SmallRng) -> LatLon {
        let r = self.radius_m * rng.random::<f64>().sqrt();
        self.centre.moved(rng.random_range(0.0..360.0), r)
    }

    /// The segment that follows `previous`, or a first one from `start`.
    pub fn next_segment(&self, rng: &mut SmallRng, start: LatLon, heading_deg: f64) -> Segment {
        let kind = RoadKind::pick(rng);
        let (min, max) = kind.length_m();
        let length_m = rng.random_range(min..max);
        let mut segment = Segment {
            kind,
            start,
            heading_deg,
            length_m,
            turn_deg: 0.0,
            end: SegmentEnd::Through,
        };
        segment.turn_deg = self.choose_turn(rng, &segment);
        segment.end = choose_end(rng, kind, segment.turn_deg);
        segment
    }

    /// Left, right or straight on at the segment's end: random inside the
    /// city, towards the centre outside it.
    fn choose_turn(&self, rng: &mut SmallRng, segment: &Segment) -> f64 {
        let end = segment.end_point();
        // A few degrees of wobble so that streets are not a perfect lattice.
        let wobble = rng.random_range(-4.0..4.0);
        if self.centre.distance_to(end) > self.radius_m {
            let home = end.bearing_to(self.centre);
            let best = [-90.0, 0.0, 90.0]
                .into_iter()
                .min_by(|a, b| {
                    let da = angle_between(segment.heading_deg + a, home);
                    let db = angle_between(segment.heading_deg + b, home);
                    da.total_cmp(&db)
                })
                .unwrap_or(90.0);
            return best + wobble;
        }
        let turn = match rng.random_range(0..10) {
            0..3 => -90.0,
            3..6 => 90.0,
            _ => 0.0,
        };
        turn + wobble
    }
}

fn choose_end(rng: &mut SmallRng, kind: RoadKind, turn_deg: f64) -> SegmentEnd {
    let roll: f64 = rng.random();
    let (red, sign) = kind.stop_odds();
    // Deliveries happen on ordinary streets, rarely on fast roads.
    let park = if kind == RoadKind::Expressway {
        0.0
    } else {
        0.03
    };
    if roll < park {
        let ignition_off = rng.random_bool(0.7);
        return SegmentEnd::Park {
            wait_s: rng.random_range(60.0..600.0),
            ignition_off,
        };
    }
    if roll < park + red {
        return SegmentEnd::Halt {
            wait_s: rng.random_range(8.0..45.0),
        };
    }
    // A turn across traffic sometimes means waiting for a gap.
    let sign = sign + if turn_deg < -45.0 { 0.2 } else { 0.0 };
    if roll < park + red + sign {
        return SegmentEnd::Halt {
            wait_s: rng.random_range(1.0..5.0),
        };
    }
    SegmentEnd::Through
}

/// Smallest absolute angle between two headings, degrees in [0, 180].
pub fn angle_between(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(360.0);
    d.min(360.0 - d)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn moving_then_measuring_gives_back_the_distance_and_bearing() {
        let a = LatLon {
            lat: 52.52,
            lon: 13.40,
        };
        let b = a.moved(30.0, 500.0);
        assert!((a.distance_to(b) - 500.0).abs() < 0.5);
        assert!((a.bearing_to(b) - 30.0).abs() < 0.1);
    }

    #[test]
    fn vehicles_outside_the_city_turn_back_towards_it() {
        let city = City::default();
        let mut rng = SmallRng::seed_from_u64(7);
        let far = city.centre.moved(0.0, city.radius_m * 1.5);
        for _ in 0..50 {
            // Heading further north, away from the centre.
            let s = city.next_segment(&mut rng, far, 0.0);
            let new_heading = s.heading_deg + s.turn_deg;
            let home = s.end_point().bearing_to(city.centre);
            assert!(angle_between(new_heading, home) <= 95.0, "{s:?}");
        }
    }

    #[test]
    fn segments_have_their_roads_lengths() {
        let city = City::default();
        let mut rng = SmallRng::seed_from_u64(1);
        for _ in 0..200 {
            let s = city.next_segment(&mut rng, city.centre, 90.0);
            let (min, max) = s.kind.length_m();
            assert!((min..max).contains(&s.length_m));
        }
    }
}
