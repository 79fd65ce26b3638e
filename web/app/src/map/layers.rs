//! What the map shows besides the fleet, shared by context with the panels
//! that control it: the geofences, the one being drawn, and a replayed
//! trip.

use leptos::prelude::*;
use serde_json::{Value, json};

use super::projection::World;

/// A geofence's area in degrees.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    Circle {
        lat: f64,
        lon: f64,
        radius_m: f64,
    },
    /// The outer ring, (lat, lon), not repeating its first corner.
    Polygon {
        ring: Vec<(f64, f64)>,
    },
}

impl Shape {
    /// From the API's GeoJSON geometry (positions are [lon, lat]).
    pub fn from_geojson(geometry: &Value, radius_m: Option<f64>) -> Option<Shape> {
        let coordinates = geometry.get("coordinates")?;
        match geometry.get("type")?.as_str()? {
            "Point" => Some(Shape::Circle {
                lon: coordinates.get(0)?.as_f64()?,
                lat: coordinates.get(1)?.as_f64()?,
                radius_m: radius_m?,
            }),
            "Polygon" => {
                let mut ring: Vec<(f64, f64)> = coordinates
                    .get(0)?
                    .as_array()?
                    .iter()
                    .filter_map(|p| Some((p.get(1)?.as_f64()?, p.get(0)?.as_f64()?)))
                    .collect();
                if ring.len() > 1 && ring.first() == ring.last() {
                    ring.pop();
                }
                Some(Shape::Polygon { ring })
            }
            _ => None,
        }
    }

    /// The API's geometry and radius for this shape.
    pub fn to_geojson(&self) -> (Value, Option<f64>) {
        match self {
            Shape::Circle { lat, lon, radius_m } => (
                json!({"type": "Point", "coordinates": [lon, lat]}),
                Some(radius_m.round().max(1.0)),
            ),
            Shape::Polygon { ring } => {
                let mut positions: Vec<Value> =
                    ring.iter().map(|(lat, lon)| json!([lon, lat])).collect();
                if let Some(first) = positions.first().cloned() {
                    positions.push(first);
                }
                (json!({"type": "Polygon", "coordinates": [positions]}), None)
            }
        }
    }
}

/// A geofence being drawn on the map.
#[derive(Clone, Debug, PartialEq)]
pub enum Draft {
    Circle(Shape),
    /// Corners so far, (lat, lon).
    Polygon(Vec<(f64, f64)>),
}

impl Draft {
    /// The finished shape, once it is one.
    pub fn shape(&self) -> Option<Shape> {
        match self {
            Draft::Circle(shape @ Shape::Circle { radius_m, .. }) if *radius_m >= 1.0 => {
                Some(shape.clone())
            }
            Draft::Polygon(corners) if corners.len() >= 3 => Some(Shape::Polygon {
                ring: corners.clone(),
            }),
            _ => None,
        }
    }
}

/// What a press on the map does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// Pan, and select a device by clicking it.
    Pan,
    /// Press at the centre, drag out the radius.
    Circle,
    /// Click each corner.
    Polygon,
}

/// A trip on the map: its path and where the replay stands.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ReplayPath {
    pub path: Vec<World>,
    pub at: Option<World>,
}

#[derive(Clone, Copy)]
pub struct Layers {
    pub geofences: RwSignal<Vec<(String, Shape)>>,
    pub draft: RwSignal<Option<Draft>>,
    pub tool: RwSignal<Tool>,
    pub replay: RwSignal<Option<ReplayPath>>,
}

impl Layers {
    pub fn new() -> Self {
        Layers {
            geofences: RwSignal::new(Vec::new()),
            draft: RwSignal::new(None),
            tool: RwSignal::new(Tool::Pan),
            replay: RwSignal::new(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;

    #[wasm_bindgen_test]
    fn shapes_round_trip_through_geojson() {
        let circle = Shape::Circle {
            lat: 52.5,
            lon: 13.4,
            radius_m: 300.0,
        };
        let (geometry, radius) = circle.to_geojson();
        assert_eq!(Shape::from_geojson(&geometry, radius), Some(circle));

        let polygon = Shape::Polygon {
            ring: vec![(52.0, 13.0), (52.0, 13.1), (52.1, 13.1)],
        };
        let (geometry, radius) = polygon.to_geojson();
        assert_eq!(geometry["coordinates"][0].as_array().map(Vec::len), Some(4));
        assert_eq!(Shape::from_geojson(&geometry, radius), Some(polygon));
    }

    #[wasm_bindgen_test]
    fn a_draft_becomes_a_shape_once_it_is_an_area() {
        assert_eq!(Draft::Polygon(vec![(1.0, 1.0), (1.0, 2.0)]).shape(), None);
        assert!(
            Draft::Polygon(vec![(1.0, 1.0), (1.0, 2.0), (2.0, 2.0)])
                .shape()
                .is_some()
        );
    }
}
