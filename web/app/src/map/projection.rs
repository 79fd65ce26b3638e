//! Web Mercator, as the tile servers cut the world: a point is a position
//! in the unit square (x east, y south), and the viewport says which part
//! of it the canvas shows at which zoom (256 × 2^zoom pixels for the
//! world, as tiles are 256 pixels at zoom 0).

use std::f64::consts::PI;

/// Web Mercator stops here so that the world is square.
pub const MAX_LAT: f64 = 85.051_128_78;
pub const MIN_ZOOM: f64 = 1.0;
pub const MAX_ZOOM: f64 = 19.0;
const TILE: f64 = 256.0;

/// A point of the unit square.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct World {
    pub x: f64,
    pub y: f64,
}

pub fn project(lat: f64, lon: f64) -> World {
    let lat = lat.clamp(-MAX_LAT, MAX_LAT).to_radians();
    World {
        x: (lon + 180.0) / 360.0,
        y: (1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / PI) / 2.0,
    }
}

/// Latitude and longitude of a point of the unit square.
pub fn unproject(point: World) -> (f64, f64) {
    let lon = point.x * 360.0 - 180.0;
    let lat = (PI * (1.0 - 2.0 * point.y)).sinh().atan().to_degrees();
    (lat, lon)
}

/// What the canvas shows: its centre, zoom and size in CSS pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Viewport {
    pub center: World,
    pub zoom: f64,
    pub width: f64,
    pub height: f64,
}

impl Default for Viewport {
    fn default() -> Self {
        Viewport {
            center: World { x: 0.5, y: 0.5 },
            zoom: 2.0,
            width: 800.0,
            height: 600.0,
        }
    }
}

impl Viewport {
    /// Pixels across the whole world.
    pub fn scale(&self) -> f64 {
        TILE * self.zoom.exp2()
    }

    pub fn screen(&self, point: World) -> (f64, f64) {
        let scale = self.scale();
        (
            (point.x - self.center.x) * scale + self.width / 2.0,
            (point.y - self.center.y) * scale + self.height / 2.0,
        )
    }

    pub fn world_at(&self, x: f64, y: f64) -> World {
        let scale = self.scale();
        World {
            x: self.center.x + (x - self.width / 2.0) / scale,
            y: self.center.y + (y - self.height / 2.0) / scale,
        }
    }

    /// Moves the map with the pointer by `dx`, `dy` pixels.
    pub fn pan(&mut self, dx: f64, dy: f64) {
        let scale = self.scale();
        self.center.x -= dx / scale;
        self.center.y = (self.center.y - dy / scale).clamp(0.0, 1.0);
        self.center.x = self.center.x.rem_euclid(1.0);
    }

    /// Zooms by `by` levels keeping the point under (`x`, `y`) in place.
    pub fn zoom_at(&mut self, x: f64, y: f64, by: f64) {
        let anchor = self.world_at(x, y);
        self.zoom = (self.zoom + by).clamp(MIN_ZOOM, MAX_ZOOM);
        let scale = self.scale();
        self.center = World {
            x: anchor.x - (x - self.width / 2.0) / scale,
            y: (anchor.y - (y - self.height / 2.0) / scale).clamp(0.0, 1.0),
        };
    }

    /// Shows every point, with `margin` pixels around them; `max_zoom`
    /// keeps a single vehicle from filling the screen.
    pub fn fit(&mut self, points: impl IntoIterator<Item = World>, margin: f64, max_zoom: f64) {
        let mut bounds: Option<(World, World)> = None;
        for p in points {
            bounds = Some(match bounds {
                None => (p, p),
                Some((lo, hi)) => (
                    World {
                        x: lo.x.min(p.x),
                        y: lo.y.min(p.y),
                    },
                    World {
                        x: hi.x.max(p.x),
                        y: hi.y.max(p.y),
                    },
                ),
            });
        }
        let Some((lo, hi)) = bounds else { return };
        self.center = World {
            x: (lo.x + hi.x) / 2.0,
            y: (lo.y + hi.y) / 2.0,
        };
        let span_x = (hi.x - lo.x).max(1e-12);
        let span_y = (hi.y - lo.y).max(1e-12);
        let usable_w = (self.width - 2.0 * margin).max(1.0);
        let usable_h = (self.height - 2.0 * margin).max(1.0);
        let scale = (usable_w / span_x).min(usable_h / span_y);
        self.zoom = (scale / TILE).log2().clamp(MIN_ZOOM, max_zoom);
    }

    /// The tiles at zoom level `z` that cover the canvas: (x, y) ranges,
    /// x possibly outside 0..2^z where the world repeats.
    pub fn tiles(&self, z: u32) -> (std::ops::RangeInclusive<i64>, std::ops::RangeInclusive<i64>) {
        let n = f64::from(1u32 << z);
        let top_left = self.world_at(0.0, 0.0);
        let bottom_right = self.world_at(self.width, self.height);
        let x0 = (top_left.x * n).floor() as i64;
        let x1 = (bottom_right.x * n).floor() as i64;
        let y0 = (top_left.y.max(0.0) * n).floor() as i64;
        let y1 = ((bottom_right.y.min(1.0) * n).ceil() as i64 - 1).max(y0);
        (x0..=x1, y0..=y1)
    }

    /// Degrees between graticule lines: about 100 pixels apart.
    pub fn graticule_step(&self) -> f64 {
        const STEPS: [f64; 14] = [
            30.0, 10.0, 5.0, 2.0, 1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001,
        ];
        let degrees_per_px = 360.0 / self.scale();
        let wanted = degrees_per_px * 100.0;
        STEPS
            .iter()
            .copied()
            .rev()
            .find(|&s| s >= wanted)
            .unwrap_or(STEPS[0])
    }
}

#[cfg(test)]
mod tests {
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[wasm_bindgen_test]
    fn projection_round_trips() {
        for (lat, lon) in [(0.0, 0.0), (52.52, 13.4), (-33.9, 151.2), (80.0, -170.0)] {
            let (back_lat, back_lon) = unproject(project(lat, lon));
            assert!(close(lat, back_lat) && close(lon, back_lon), "{lat},{lon}");
        }
        assert_eq!(project(0.0, 0.0), World { x: 0.5, y: 0.5 });
    }

    #[wasm_bindgen_test]
    fn zooming_keeps_the_point_under_the_pointer() {
        let mut view = Viewport::default();
        let before = view.world_at(100.0, 50.0);
        view.zoom_at(100.0, 50.0, 3.0);
        let after = view.world_at(100.0, 50.0);
        assert!(close(before.x, after.x) && close(before.y, after.y));
        assert_eq!(view.zoom, 5.0);
    }

    #[wasm_bindgen_test]
    fn fitting_shows_every_point() {
        let mut view = Viewport {
            width: 1000.0,
            height: 500.0,
            ..Viewport::default()
        };
        let points = [project(52.4, 13.2), project(52.6, 13.6)];
        view.fit(points, 20.0, 17.0);
        for p in points {
            let (x, y) = view.screen(p);
            assert!(
                (19.0..=981.0).contains(&x) && (19.0..=481.0).contains(&y),
                "{x},{y}"
            );
        }
    }

    #[wasm_bindgen_test]
    fn graticule_lines_are_about_100_pixels_apart() {
        let view = Viewport {
            zoom: 10.0,
            ..Viewport::default()
        };
        let px = view.graticule_step() / 360.0 * view.scale();
        assert!((100.0..=300.0).contains(&px), "{px}");
    }
}
