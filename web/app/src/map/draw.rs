//! Painting one frame: background and graticule, tiles, geofences, a
//! replayed trip, and every device as one marker (a sprite stamped in
//! place, `sprites.rs`).

use std::f64::consts::TAU;

use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

use super::layers::{Draft, Shape};
use super::projection::{MAX_LAT, Viewport, World, project, unproject};
use super::sprites::{RADIUS, Sprites};
use crate::fleet::{Fleet, Status};

const BACKGROUND: &str = "#eef2f4";
const GRATICULE: &str = "rgba(60, 80, 100, 0.25)";
const LABEL: &str = "rgba(40, 55, 70, 0.8)";
const GEOFENCE: &str = "rgba(128, 63, 191, 0.9)";
const GEOFENCE_FILL: &str = "rgba(128, 63, 191, 0.12)";
const REPLAY: &str = "rgba(230, 97, 1, 0.9)";

pub fn background(ctx: &CanvasRenderingContext2d, view: &Viewport) {
    ctx.set_fill_style_str(BACKGROUND);
    ctx.fill_rect(0.0, 0.0, view.width, view.height);
}

/// Lines of latitude and longitude with their degrees, so the map is
/// readable without tiles.
pub fn graticule(ctx: &CanvasRenderingContext2d, view: &Viewport) {
    let step = view.graticule_step();
    let (top, left) = unproject(view.world_at(0.0, 0.0));
    let (bottom, right) = unproject(view.world_at(view.width, view.height));
    ctx.set_stroke_style_str(GRATICULE);
    ctx.set_line_width(1.0);
    ctx.set_fill_style_str(LABEL);
    ctx.set_font("11px system-ui, sans-serif");
    ctx.begin_path();
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil() as usize
    };
    let mut lon = (left / step).floor() * step;
    while lon <= right {
        let (x, _) = view.screen(project(0.0, lon));
        let x = x.round() + 0.5;
        ctx.move_to(x, 0.0);
        ctx.line_to(x, view.height);
        let _ = ctx.fill_text(&format!("{lon:.decimals$}°"), x + 3.0, view.height - 4.0);
        lon += step;
    }
    let mut lat = (bottom.max(-MAX_LAT) / step).floor() * step;
    while lat <= top.min(MAX_LAT) {
        let (_, y) = view.screen(project(lat, left));
        let y = y.round() + 0.5;
        ctx.move_to(0.0, y);
        ctx.line_to(view.width, y);
        let _ = ctx.fill_text(&format!("{lat:.decimals$}°"), 3.0, y - 3.0);
        lat += step;
    }
    ctx.stroke();
}

/// Every device with a fix inside the canvas, alarms on top; returns how
/// many. Stamps sprites in device pixels, at whole pixels (no resampling).
pub fn markers(
    ctx: &CanvasRenderingContext2d,
    view: &Viewport,
    fleet: &Fleet,
    selected: Option<&str>,
    sprites: &Sprites,
) -> usize {
    let ratio = sprites.ratio;
    let _ = ctx.set_transform(1.0, 0.0, 0.0, 1.0, 0.0, 0.0);
    let margin = RADIUS * 2.0;
    let mut drawn = 0;
    let mut alarms = Vec::new();
    for vehicle in fleet.vehicles() {
        let Some(point) = vehicle.point else { continue };
        let (x, y) = view.screen(point);
        if x < -margin || y < -margin || x > view.width + margin || y > view.height + margin {
            continue;
        }
        drawn += 1;
        let sprite = match vehicle.status() {
            Status::Alarm => {
                alarms.push((x, y));
                continue;
            }
            Status::Moving => sprites.arrow(vehicle.fix().map_or(0.0, |f| f.course_deg)),
            status => sprites.dot(status),
        };
        stamp(
            ctx,
            sprite,
            x * ratio - sprites.half,
            y * ratio - sprites.half,
        );
    }
    let alarm = sprites.dot(Status::Alarm);
    for (x, y) in alarms {
        stamp(
            ctx,
            alarm,
            x * ratio - sprites.half,
            y * ratio - sprites.half,
        );
    }
    let _ = ctx.set_transform(ratio, 0.0, 0.0, ratio, 0.0, 0.0);
    if let Some(point) = selected.and_then(|id| fleet.get(id)).and_then(|v| v.point) {
        let (x, y) = view.screen(point);
        ctx.begin_path();
        let _ = ctx.arc(x, y, RADIUS * 2.4, 0.0, TAU);
        ctx.set_stroke_style_str("#111");
        ctx.set_line_width(2.5);
        ctx.stroke();
    }
    drawn
}

fn stamp(ctx: &CanvasRenderingContext2d, sprite: &HtmlCanvasElement, x: f64, y: f64) {
    let _ = ctx.draw_image_with_html_canvas_element(sprite, x.round(), y.round());
}

pub fn shapes(ctx: &CanvasRenderingContext2d, view: &Viewport, shapes: &[Shape]) {
    ctx.set_line_width(2.0);
    ctx.set_stroke_style_str(GEOFENCE);
    ctx.set_fill_style_str(GEOFENCE_FILL);
    for shape in shapes {
        ctx.begin_path();
        shape_path(ctx, view, shape);
        ctx.fill();
        ctx.stroke();
    }
}

fn shape_path(ctx: &CanvasRenderingContext2d, view: &Viewport, shape: &Shape) {
    match shape {
        Shape::Circle { lat, lon, radius_m } => {
            let (x, y) = view.screen(project(*lat, *lon));
            let r = radius_px(view, *lat, *radius_m);
            ctx.move_to(x + r, y);
            let _ = ctx.arc(x, y, r, 0.0, TAU);
        }
        Shape::Polygon { ring } => {
            for (i, &(lat, lon)) in ring.iter().enumerate() {
                let (x, y) = view.screen(project(lat, lon));
                if i == 0 {
                    ctx.move_to(x, y);
                } else {
                    ctx.line_to(x, y);
                }
            }
            ctx.close_path();
        }
    }
}

/// A geofence being drawn, dashed, with its corners.
pub fn draft(ctx: &CanvasRenderingContext2d, view: &Viewport, draft: &Draft) {
    let dash = js_sys::Array::of2(&6.0.into(), &4.0.into());
    let _ = ctx.set_line_dash(&dash);
    ctx.set_line_width(2.0);
    ctx.set_stroke_style_str(GEOFENCE);
    ctx.set_fill_style_str(GEOFENCE_FILL);
    ctx.begin_path();
    match draft {
        Draft::Circle(shape) => shape_path(ctx, view, shape),
        Draft::Polygon(corners) => {
            for (i, &(lat, lon)) in corners.iter().enumerate() {
                let (x, y) = view.screen(project(lat, lon));
                if i == 0 {
                    ctx.move_to(x, y);
                } else {
                    ctx.line_to(x, y);
                }
            }
        }
    }
    ctx.fill();
    ctx.stroke();
    let _ = ctx.set_line_dash(&js_sys::Array::new());
    if let Draft::Polygon(corners) = draft {
        ctx.set_fill_style_str(GEOFENCE);
        ctx.begin_path();
        for &(lat, lon) in corners {
            let (x, y) = view.screen(project(lat, lon));
            ctx.move_to(x + 4.0, y);
            let _ = ctx.arc(x, y, 4.0, 0.0, TAU);
        }
        ctx.fill();
    }
}

/// A trip's path, and where the replay stands on it.
pub fn replay(ctx: &CanvasRenderingContext2d, view: &Viewport, path: &[World], at: Option<World>) {
    ctx.set_line_width(3.0);
    ctx.set_stroke_style_str(REPLAY);
    ctx.begin_path();
    for (i, &p) in path.iter().enumerate() {
        let (x, y) = view.screen(p);
        if i == 0 {
            ctx.move_to(x, y);
        } else {
            ctx.line_to(x, y);
        }
    }
    ctx.stroke();
    if let Some(at) = at {
        let (x, y) = view.screen(at);
        ctx.begin_path();
        let _ = ctx.arc(x, y, 7.0, 0.0, TAU);
        ctx.set_fill_style_str(REPLAY);
        ctx.fill();
        ctx.set_stroke_style_str("#fff");
        ctx.set_line_width(2.0);
        ctx.stroke();
    }
}

/// A circle's radius on the screen: Mercator stretches distances by
/// 1 / cos(latitude).
pub fn radius_px(view: &Viewport, lat: f64, radius_m: f64) -> f64 {
    const EARTH_CIRCUMFERENCE_M: f64 = 40_075_016.686;
    radius_m / (EARTH_CIRCUMFERENCE_M * lat.to_radians().cos()) * view.scale()
}

/// Metres between two points on the screen's latitude (for a circle
/// being drawn).
pub fn metres(view: &Viewport, lat: f64, px: f64) -> f64 {
    px / radius_px(view, lat, 1.0)
}
