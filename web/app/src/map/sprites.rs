//! Markers drawn once into small canvases and stamped onto the map: a
//! software-rendered canvas (no GPU) copies 10,000 small bitmaps far faster
//! than it fills 10,000 paths. One dot per status, and the moving marker's
//! arrow in [`HEADINGS`] directions.

use std::f64::consts::{FRAC_PI_2, PI, TAU};

use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

use crate::fleet::Status;

/// Directions an arrow is drawn in: 10° apart.
const HEADINGS: usize = 36;
/// Marker radius in CSS pixels.
pub const RADIUS: f64 = 5.0;
const ARROW: f64 = 8.0;

pub struct Sprites {
    dots: Vec<HtmlCanvasElement>,
    arrows: Vec<HtmlCanvasElement>,
    /// Half a sprite's side in device pixels.
    pub half: f64,
    /// Device pixels per CSS pixel they were drawn for.
    pub ratio: f64,
}

impl Sprites {
    pub fn new(ratio: f64) -> Option<Sprites> {
        let side = ((ARROW + 2.0) * 2.0 * ratio).ceil();
        let dots = Status::ALL
            .into_iter()
            .map(|status| {
                sprite(side, ratio, |ctx, c| {
                    ctx.begin_path();
                    let _ = ctx.arc(c, c, RADIUS, 0.0, TAU);
                    paint(ctx, status.colour());
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let arrows = (0..HEADINGS)
            .map(|i| {
                let course = (i as f64 * 360.0 / HEADINGS as f64).to_radians();
                sprite(side, ratio, |ctx, c| {
                    arrow(ctx, c, c, course);
                    paint(ctx, Status::Moving.colour());
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Sprites {
            dots,
            arrows,
            half: side / 2.0,
            ratio,
        })
    }

    pub fn dot(&self, status: Status) -> &HtmlCanvasElement {
        let index = Status::ALL.iter().position(|s| *s == status).unwrap_or(0);
        &self.dots[index]
    }

    /// The arrow nearest to `course_deg` (clockwise from north).
    pub fn arrow(&self, course_deg: f64) -> &HtmlCanvasElement {
        let step = 360.0 / HEADINGS as f64;
        let index = (course_deg.rem_euclid(360.0) / step).round() as usize % HEADINGS;
        &self.arrows[index]
    }
}

fn sprite(
    side: f64,
    ratio: f64,
    draw: impl FnOnce(&CanvasRenderingContext2d, f64),
) -> Option<HtmlCanvasElement> {
    let canvas: HtmlCanvasElement = leptos::prelude::document()
        .create_element("canvas")
        .ok()?
        .dyn_into()
        .ok()?;
    canvas.set_width(side as u32);
    canvas.set_height(side as u32);
    let ctx: CanvasRenderingContext2d = canvas.get_context("2d").ok()??.dyn_into().ok()?;
    ctx.scale(ratio, ratio).ok()?;
    draw(&ctx, side / ratio / 2.0);
    Some(canvas)
}

fn paint(ctx: &CanvasRenderingContext2d, colour: &str) {
    ctx.set_fill_style_str(colour);
    ctx.fill();
    ctx.set_stroke_style_str("rgba(255, 255, 255, 0.95)");
    ctx.set_line_width(1.2);
    ctx.stroke();
}

/// An arrow centred on (x, y) pointing along `course` (radians clockwise
/// from north).
fn arrow(ctx: &CanvasRenderingContext2d, x: f64, y: f64, course: f64) {
    let angle = course - FRAC_PI_2;
    let point = |a: f64, d: f64| (x + d * a.cos(), y + d * a.sin());
    let (tx, ty) = point(angle, ARROW);
    let (lx, ly) = point(angle + PI * 0.78, ARROW);
    let (rx, ry) = point(angle - PI * 0.78, ARROW);
    ctx.begin_path();
    ctx.move_to(tx, ty);
    ctx.line_to(lx, ly);
    ctx.line_to(x - (tx - x) * 0.25, y - (ty - y) * 0.25);
    ctx.line_to(rx, ry);
    ctx.close_path();
}
