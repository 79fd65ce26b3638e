//! Detect: devices entering and leaving geofences, with the fleet's
//! geofences in a spatial index.
//!
//! Each fix is checked against the geofences whose bounding box holds it
//! (an R-tree, so 10,000 geofences cost a handful of exact tests, not
//! 10,000); a circle holds a point within its radius on the sphere, a
//! polygon by the even-odd rule with its holes. Entering raises a
//! `geofence_enter` alert, open while the device stays inside (a
//! condition); leaving closes it and records a `geofence_exit` notice, each
//! with the geofence as its subject. Where a device is, is in the snapshot, so a
//! restart does not report every parked vehicle as entering again.

use std::collections::HashMap;
use std::ops::ControlFlow;

use bevy_ecs::prelude::*;
use drover_protocols::model::DeviceId;
use geo::{Contains, Coord, Distance, Haversine, LineString, Point, Polygon};
use rstar::RTree;
use rstar::primitives::{GeomWithData, Rectangle};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::components::{Device, Reports};
use crate::systems::alarms::place;
use crate::systems::alerts::{AlertRules, RaiseAlerts, Severity, kinds};
use crate::systems::ingest::{DeviceIndex, TickRecords};

/// Metres per degree of latitude (and of longitude at the equator).
const M_PER_DEG: f64 = 111_195.0;

/// A geofence's shape, in WGS 84 degrees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Shape {
    Circle {
        lat: f64,
        lon: f64,
        radius_m: f64,
    },
    /// An outer ring and its holes, `[lon, lat]` positions (GeoJSON order).
    Polygon {
        rings: Vec<Vec<[f64; 2]>>,
    },
}

/// One geofence as the engine gets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FenceSpec {
    pub id: String,
    pub name: String,
    pub shape: Shape,
    /// The speed limit inside, for overspeed alerts.
    pub speed_limit_kmh: Option<f64>,
}

impl FenceSpec {
    /// A circle of `radius_m` around a point.
    pub fn circle(
        id: &str,
        name: &str,
        (lat, lon): (f64, f64),
        radius_m: f64,
        speed_limit_kmh: Option<f64>,
    ) -> FenceSpec {
        FenceSpec {
            id: id.to_owned(),
            name: name.to_owned(),
            shape: Shape::Circle { lat, lon, radius_m },
            speed_limit_kmh,
        }
    }
}

/// A geofence ready for tests.
#[derive(Debug, Clone)]
struct Fence {
    spec: FenceSpec,
    area: Area,
}

#[derive(Debug, Clone)]
enum Area {
    Circle { center: Point, radius_m: f64 },
    Polygon(Polygon),
}

impl Area {
    fn of(shape: &Shape) -> Area {
        match shape {
            Shape::Circle { lat, lon, radius_m } => Area::Circle {
                center: Point::new(*lon, *lat),
                radius_m: *radius_m,
            },
            Shape::Polygon { rings } => {
                let ring = |positions: &Vec<[f64; 2]>| {
                    LineString::new(
                        positions
                            .iter()
                            .map(|[x, y]| Coord { x: *x, y: *y })
                            .collect(),
                    )
                };
                let mut rings = rings.iter().map(ring);
                let outer = rings.next().unwrap_or_else(|| LineString::new(Vec::new()));
                Area::Polygon(Polygon::new(outer, rings.collect()))
            }
        }
    }

    fn holds(&self, point: Point) -> bool {
        match self {
            Area::Circle { center, radius_m } => Haversine.distance(*center, point) <= *radius_m,
            Area::Polygon(polygon) => polygon.contains(&point),
        }
    }

    /// `[lon, lat]` corners of the bounding box.
    fn bounds(&self) -> ([f64; 2], [f64; 2]) {
        match self {
            Area::Circle { center, radius_m } => {
                let dlat = radius_m / M_PER_DEG;
                let cos = center.y().to_radians().cos().max(1e-6);
                let dlon = (radius_m / (M_PER_DEG * cos)).min(180.0);
                (
                    [center.x() - dlon, center.y() - dlat],
                    [center.x() + dlon, center.y() + dlat],
                )
            }
            Area::Polygon(polygon) => {
                let mut low = [f64::INFINITY; 2];
                let mut high = [f64::NEG_INFINITY; 2];
                for c in polygon.exterior().coords() {
                    low = [low[0].min(c.x), low[1].min(c.y)];
                    high = [high[0].max(c.x), high[1].max(c.y)];
                }
                (low, high)
            }
        }
    }
}

type Entry = GeomWithData<Rectangle<[f64; 2]>, usize>;

/// The fleet's geofences and their index.
#[derive(Resource, Default)]
pub struct Geofences {
    fences: Vec<Fence>,
    index: RTree<Entry>,
    by_id: HashMap<String, usize>,
}

impl Geofences {
    pub fn new(specs: Vec<FenceSpec>) -> Geofences {
        let fences: Vec<Fence> = specs
            .into_iter()
            .map(|spec| Fence {
                area: Area::of(&spec.shape),
                spec,
            })
            .collect();
        let entries = fences
            .iter()
            .enumerate()
            .filter_map(|(i, fence)| {
                let (low, high) = fence.area.bounds();
                let finite = low.iter().chain(&high).all(|v| v.is_finite());
                finite.then(|| GeomWithData::new(Rectangle::from_corners(low, high), i))
            })
            .collect();
        let by_id = fences
            .iter()
            .enumerate()
            .map(|(i, f)| (f.spec.id.clone(), i))
            .collect();
        Geofences {
            fences,
            index: RTree::bulk_load(entries),
            by_id,
        }
    }

    pub fn len(&self) -> usize {
        self.fences.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fences.is_empty()
    }

    /// The geofences that hold the point, in index order.
    pub fn containing(&self, lat: f64, lon: f64) -> Held<'_> {
        let point = Point::new(lon, lat);
        let mut held = Held::new();
        // Internal iteration: the tree's own iterator copies node references
        // onto a stack at every level, a third of a lookup's instructions.
        let _ = self.index.locate_all_at_point_int(&[lon, lat], |entry| {
            if let Some(fence) = self.fences.get(entry.data)
                && fence.area.holds(point)
            {
                held.push(&fence.spec);
            }
            ControlFlow::<()>::Continue(())
        });
        held
    }

    /// The lowest speed limit of the geofences that hold the point, with
    /// the geofence's id.
    pub fn speed_limit_at(&self, lat: f64, lon: f64) -> Option<(f64, &str)> {
        self.containing(lat, lon)
            .into_iter()
            .filter_map(|f| Some((f.speed_limit_kmh?, f.id.as_str())))
            .min_by(|a, b| a.0.total_cmp(&b.0))
    }

    fn name(&self, id: &str) -> Option<&str> {
        let fence = self.fences.get(*self.by_id.get(id)?)?;
        Some(fence.spec.name.as_str())
    }
}

/// The geofences holding a point: seldom more than a few, kept inline.
pub type Held<'a> = SmallVec<[&'a FenceSpec; 4]>;

/// The geofences a device was in at its newest fix (sorted ids).
#[derive(Component, Debug, Clone, Default, PartialEq)]
pub struct Inside {
    pub ids: Vec<String>,
    last_ms: i64,
}

pub fn detect_geofences(
    fences: Res<Geofences>,
    rules: Res<AlertRules>,
    records: TickRecords,
    mut devices: Query<(Entity, &Reports, &mut Inside), Changed<Reports>>,
    mut alerts: Deferred<RaiseAlerts>,
) {
    let now_ms = records.clock().now_ms;
    for (entity, reports, mut inside) in &mut devices {
        if fences.is_empty() && inside.ids.is_empty() {
            continue;
        }
        records.each_in_time_order(reports, |record| {
            let Some(fix) = record
                .valid_fix()
                .filter(|_| record.time_ms > inside.last_ms)
            else {
                return;
            };
            inside.bypass_change_detection().last_ms = record.time_ms;
            // The common case, checked without allocating: still where it was.
            let held = fences.containing(fix.lat, fix.lon);
            if held.len() == inside.ids.len() && held.iter().all(|f| inside.ids.contains(&f.id)) {
                return;
            }
            let mut now: Vec<&str> = held.iter().map(|f| f.id.as_str()).collect();
            now.sort_unstable();
            let live = rules.is_live(record, now_ms);
            for id in now.iter().filter(|id| !inside.ids.iter().any(|i| i == *id)) {
                if live {
                    let details = details(&fences, id, fix);
                    alerts.raise(
                        entity,
                        kinds::GEOFENCE_ENTER,
                        Some((*id).to_owned()),
                        Severity::Info,
                        record.time_ms,
                        details,
                    );
                }
            }
            for id in inside.ids.iter().filter(|id| !now.contains(&id.as_str())) {
                // Leaving ends the stay, live or not.
                alerts.clear(
                    entity,
                    kinds::GEOFENCE_ENTER,
                    Some(id.clone()),
                    record.time_ms,
                );
                if live {
                    let details = details(&fences, id, fix);
                    alerts.notice(
                        entity,
                        kinds::GEOFENCE_EXIT,
                        Some(id.clone()),
                        Severity::Info,
                        record.time_ms,
                        details,
                    );
                }
            }
            inside.ids = now.into_iter().map(str::to_owned).collect();
        });
    }
}

/// Which geofence, its name and where the device was.
fn details(
    fences: &Geofences,
    id: &str,
    fix: drover_protocols::model::Fix,
) -> crate::systems::alerts::Details {
    let mut details = place(Some(fix));
    details.insert("geofence".to_owned(), id.into());
    if let Some(name) = fences.name(id) {
        details.insert("name".to_owned(), name.into());
    }
    details
}

/// Where devices are, for a snapshot: only those inside a geofence.
pub(crate) fn capture(world: &mut World) -> Vec<(DeviceId, Vec<String>)> {
    let mut query = world.query::<(&Device, &Inside)>();
    let mut inside: Vec<_> = query
        .iter(world)
        .filter(|(_, inside)| !inside.ids.is_empty())
        .map(|(device, inside)| (device.id.clone(), inside.ids.clone()))
        .collect();
    inside.sort();
    inside
}

pub(crate) fn restore(world: &mut World, inside: Vec<(DeviceId, Vec<String>)>) {
    for (device, ids) in inside {
        let entity = world.resource::<DeviceIndex>().get(&device);
        if let Some(mut component) = entity.and_then(|e| world.get_mut::<Inside>(e)) {
            component.ids = ids;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn circle(id: &str, lat: f64, lon: f64, radius_m: f64, limit: Option<f64>) -> FenceSpec {
        FenceSpec {
            id: id.to_owned(),
            name: id.to_uppercase(),
            shape: Shape::Circle { lat, lon, radius_m },
            speed_limit_kmh: limit,
        }
    }

    fn square_with_hole() -> FenceSpec {
        let ring = |a: f64, b: f64| vec![[a, a], [b, a], [b, b], [a, b], [a, a]];
        FenceSpec {
            id: "yard".to_owned(),
            name: "Yard".to_owned(),
            shape: Shape::Polygon {
                rings: vec![ring(10.0, 11.0), ring(10.4, 10.6)],
            },
            speed_limit_kmh: Some(20.0),
        }
    }

    #[test]
    fn circles_hold_points_within_their_radius_and_polygons_respect_holes() {
        let fences = Geofences::new(vec![
            circle("depot", 54.68, 25.28, 500.0, Some(30.0)),
            square_with_hole(),
        ]);
        let ids = |lat, lon| -> Vec<String> {
            fences
                .containing(lat, lon)
                .iter()
                .map(|f| f.id.clone())
                .collect()
        };
        assert_eq!(ids(54.68 + 400.0 / M_PER_DEG, 25.28), ["depot"]);
        assert!(ids(54.68 + 600.0 / M_PER_DEG, 25.28).is_empty());
        assert_eq!(ids(10.1, 10.1), ["yard"]);
        assert!(ids(10.5, 10.5).is_empty(), "in the hole");
        assert!(ids(11.5, 10.5).is_empty());
        assert_eq!(fences.speed_limit_at(54.68, 25.28), Some((30.0, "depot")));
        assert_eq!(fences.speed_limit_at(0.0, 0.0), None);
    }

    #[test]
    fn ten_thousand_geofences_answer_by_their_index() {
        let specs = (0..10_000)
            .map(|i| {
                circle(
                    &i.to_string(),
                    f64::from(i % 100),
                    f64::from(i / 100),
                    1_000.0,
                    None,
                )
            })
            .collect();
        let fences = Geofences::new(specs);
        let found: Vec<&str> = fences
            .containing(42.0, 17.0)
            .iter()
            .map(|f| f.id.as_str())
            .collect();
        assert_eq!(found, ["1742"]);
    }
}
