//! Geofences as clients send and read them: a GeoJSON `Polygon`, or a
//! `Point` with `radius_m` (a circle), checked before they are stored as a
//! catalog [`Area`].

use drover_catalog::{Area, Geofence};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::positions::rfc3339;

/// Most rings of a polygon (the outer one and its holes).
const MAX_RINGS: usize = 100;
/// Most positions of a polygon, all rings together.
const MAX_POSITIONS: usize = 10_000;
/// Largest circle: wider areas are polygons.
const MAX_RADIUS_M: f64 = 1_000_000.0;
/// Highest speed limit a geofence may set.
const MAX_SPEED_KMH: f64 = 500.0;

/// A GeoJSON geometry (RFC 7946), positions as `[lon, lat]` in degrees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type")]
pub enum Geometry {
    /// The centre of a circle; the geofence's `radius_m` is its radius.
    Point { coordinates: [f64; 2] },
    /// Closed rings (the last position repeats the first): the outer
    /// boundary, then any holes.
    Polygon { coordinates: Vec<Vec<[f64; 2]>> },
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GeofenceCreate {
    #[schema(min_length = 1, max_length = 128, pattern = r"\S")]
    pub name: String,
    pub geometry: Geometry,
    /// For a `Point`: the circle's radius in metres (1 to 1,000,000).
    pub radius_m: Option<f64>,
    /// The speed limit inside, for overspeed alerts (km/h, up to 500).
    pub speed_limit_kmh: Option<f64>,
}

/// Absent fields stay as they are; `null` clears the speed limit.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GeofencePatch {
    #[schema(min_length = 1, max_length = 128, pattern = r"\S")]
    pub name: Option<String>,
    pub geometry: Option<Geometry>,
    pub radius_m: Option<f64>,
    #[serde(default, deserialize_with = "crate::model::present")]
    #[schema(value_type = Option<f64>)]
    pub speed_limit_kmh: Option<Option<f64>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GeofenceView {
    pub id: String,
    pub name: String,
    pub geometry: Geometry,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub radius_m: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed_limit_kmh: Option<f64>,
    pub created: String,
    pub updated: String,
}

impl GeofenceView {
    pub fn new(geofence: &Geofence) -> Self {
        let (geometry, radius_m) = geometry_of(&geofence.area);
        GeofenceView {
            id: geofence.id.clone(),
            name: geofence.name.clone(),
            geometry,
            radius_m,
            speed_limit_kmh: geofence.speed_limit_kmh,
            created: rfc3339(geofence.created_ms),
            updated: rfc3339(geofence.updated_ms),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GeofenceList {
    pub geofences: Vec<GeofenceView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The geometry and radius a stored area reads back as.
pub fn geometry_of(area: &Area) -> (Geometry, Option<f64>) {
    match area {
        Area::Circle { lon, lat, radius_m } => (
            Geometry::Point {
                coordinates: [*lon, *lat],
            },
            Some(*radius_m),
        ),
        Area::Polygon { rings } => (
            Geometry::Polygon {
                coordinates: rings.clone(),
            },
            None,
        ),
    }
}

/// `current` with a PATCH's `geometry` and `radius_m` applied: a circle
/// keeps its radius when only its centre moves, its centre when only its
/// radius changes.
pub fn patched(
    current: &Area,
    geometry: Option<Geometry>,
    radius_m: Option<f64>,
) -> Result<Area, ApiError> {
    if geometry.is_none() && radius_m.is_none() {
        return Ok(current.clone());
    }
    let (current, current_radius) = geometry_of(current);
    let geometry = geometry.unwrap_or(current);
    let radius_m = match geometry {
        Geometry::Point { .. } => radius_m.or(current_radius),
        Geometry::Polygon { .. } => radius_m,
    };
    area(geometry, radius_m)
}

/// The area `geometry` and `radius_m` describe, or 422 saying what is wrong.
pub fn area(geometry: Geometry, radius_m: Option<f64>) -> Result<Area, ApiError> {
    match geometry {
        Geometry::Point { coordinates } => {
            check_position(coordinates)?;
            let radius_m = radius_m.ok_or_else(|| {
                unprocessable("a Point geofence needs radius_m, the circle's radius in metres")
            })?;
            if !(radius_m.is_finite() && (1.0..=MAX_RADIUS_M).contains(&radius_m)) {
                return Err(unprocessable(&format!(
                    "radius_m must be from 1 to {MAX_RADIUS_M} metres"
                )));
            }
            let [lon, lat] = coordinates;
            Ok(Area::Circle { lon, lat, radius_m })
        }
        Geometry::Polygon { coordinates } => {
            if radius_m.is_some() {
                return Err(unprocessable("radius_m is for Point geofences only"));
            }
            check_rings(&coordinates)?;
            Ok(Area::Polygon { rings: coordinates })
        }
    }
}

fn check_rings(rings: &[Vec<[f64; 2]>]) -> Result<(), ApiError> {
    if rings.is_empty() || rings.len() > MAX_RINGS {
        return Err(unprocessable(&format!(
            "a Polygon has 1 to {MAX_RINGS} rings"
        )));
    }
    if rings.iter().map(Vec::len).sum::<usize>() > MAX_POSITIONS {
        return Err(unprocessable(&format!(
            "a Polygon has at most {MAX_POSITIONS} positions"
        )));
    }
    for ring in rings {
        for position in ring {
            check_position(*position)?;
        }
        if ring.len() < 4 || ring.first() != ring.last() {
            return Err(unprocessable(
                "each ring is closed: at least 4 positions, the last equal to the first",
            ));
        }
        if distinct(&ring[1..]) < 3 {
            return Err(unprocessable(
                "each ring has at least 3 different positions",
            ));
        }
    }
    Ok(())
}

fn distinct(positions: &[[f64; 2]]) -> usize {
    let mut seen: Vec<[f64; 2]> = Vec::new();
    for position in positions {
        if !seen.contains(position) {
            seen.push(*position);
            if seen.len() == 3 {
                break;
            }
        }
    }
    seen.len()
}

fn check_position([lon, lat]: [f64; 2]) -> Result<(), ApiError> {
    if (-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat) {
        Ok(())
    } else {
        Err(unprocessable(&format!(
            "[{lon}, {lat}] is not a [longitude, latitude] in degrees"
        )))
    }
}

/// 422 unless `limit` is a usable speed limit.
pub fn check_speed_limit(limit: Option<f64>) -> Result<(), ApiError> {
    match limit {
        Some(kmh) if !(kmh.is_finite() && kmh > 0.0 && kmh <= MAX_SPEED_KMH) => Err(unprocessable(
            &format!("speed_limit_kmh must be above 0 and at most {MAX_SPEED_KMH}"),
        )),
        _ => Ok(()),
    }
}

fn unprocessable(message: &str) -> ApiError {
    ApiError::Unprocessable(message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square() -> Vec<Vec<[f64; 2]>> {
        vec![vec![
            [13.0, 52.0],
            [13.1, 52.0],
            [13.1, 52.1],
            [13.0, 52.1],
            [13.0, 52.0],
        ]]
    }

    #[test]
    fn a_point_with_a_radius_is_a_circle_and_reads_back_the_same() {
        let point = Geometry::Point {
            coordinates: [13.4, 52.5],
        };
        let stored = area(point.clone(), Some(250.0)).ok();
        assert_eq!(
            stored,
            Some(Area::Circle {
                lon: 13.4,
                lat: 52.5,
                radius_m: 250.0
            })
        );
        assert_eq!(stored.as_ref().map(geometry_of), Some((point, Some(250.0))));
    }

    #[test]
    fn bad_shapes_are_refused() {
        let point = |lon, lat| Geometry::Point {
            coordinates: [lon, lat],
        };
        let polygon = |rings| Geometry::Polygon { coordinates: rings };
        let mut open = square();
        open[0].pop();
        let mut flat = square();
        flat[0] = vec![
            [13.0, 52.0],
            [13.1, 52.0],
            [13.0, 52.0],
            [13.1, 52.0],
            [13.0, 52.0],
        ];
        for (geometry, radius) in [
            (point(13.4, 52.5), None),
            (point(13.4, 52.5), Some(0.0)),
            (point(13.4, 52.5), Some(f64::INFINITY)),
            (point(13.4, 95.0), Some(10.0)),
            (point(f64::NAN, 52.5), Some(10.0)),
            (polygon(square()), Some(10.0)),
            (polygon(vec![]), None),
            (polygon(open), None),
            (polygon(flat), None),
        ] {
            let what = format!("{geometry:?} {radius:?}");
            assert!(
                matches!(area(geometry, radius), Err(ApiError::Unprocessable(_))),
                "{what}"
            );
        }
        assert!(area(polygon(square()), None).is_ok());
    }

    #[test]
    fn a_patch_keeps_what_it_does_not_name() {
        let circle = Area::Circle {
            lon: 13.4,
            lat: 52.5,
            radius_m: 250.0,
        };
        let wider = patched(&circle, None, Some(500.0)).ok();
        assert_eq!(
            wider,
            Some(Area::Circle {
                lon: 13.4,
                lat: 52.5,
                radius_m: 500.0
            })
        );
        let moved = Geometry::Point {
            coordinates: [13.5, 52.6],
        };
        let moved = patched(&circle, Some(moved), None).ok();
        assert_eq!(
            moved,
            Some(Area::Circle {
                lon: 13.5,
                lat: 52.6,
                radius_m: 250.0
            })
        );
        let polygon = Geometry::Polygon {
            coordinates: square(),
        };
        assert!(matches!(
            patched(&circle, Some(polygon), None),
            Ok(Area::Polygon { .. })
        ));
        assert_eq!(patched(&circle, None, None).ok(), Some(circle.clone()));
        assert!(patched(&circle, None, Some(0.0)).is_err());
    }

    #[test]
    fn speed_limits_are_positive_and_plausible() {
        assert!(check_speed_limit(None).is_ok());
        assert!(check_speed_limit(Some(50.0)).is_ok());
        for bad in [0.0, -5.0, 501.0, f64::NAN] {
            assert!(check_speed_limit(Some(bad)).is_err(), "{bad}");
        }
    }
}
