//! Map tiles from the configured URL template (`http.tile_url`), loaded as
//! images and drawn on the canvas. A tile that cannot be loaded (no tile
//! server, offline installs) is not asked for again; the plain background
//! and graticule stay visible where tiles are missing.

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{CanvasRenderingContext2d, HtmlImageElement};

use super::projection::{MAX_ZOOM, Viewport};

/// Tiles kept once out of view.
const CACHE: usize = 512;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Load {
    Pending,
    Ready,
    Failed,
}

struct Tile {
    /// None only where the browser would not make an image.
    image: Option<HtmlImageElement>,
    load: Rc<Cell<Load>>,
}

pub struct Tiles {
    template: String,
    tiles: HashMap<(u32, i64, i64), Tile>,
    /// Set when a tile finishes loading: the map needs drawing again.
    pub arrived: Rc<Cell<bool>>,
}

impl Tiles {
    pub fn new(template: String) -> Self {
        Tiles {
            template,
            tiles: HashMap::new(),
            arrived: Rc::new(Cell::new(false)),
        }
    }

    /// Draws the tiles covering the viewport at the nearest zoom level,
    /// asking for the missing ones.
    pub fn draw(&mut self, ctx: &CanvasRenderingContext2d, view: &Viewport) {
        if self.template.is_empty() {
            return;
        }
        let z = view.zoom.round().clamp(0.0, MAX_ZOOM) as u32;
        let n = 1i64 << z;
        let size = view.scale() / n as f64;
        let (xs, ys) = view.tiles(z);
        if self.tiles.len() > CACHE {
            self.tiles.retain(|(tz, _, _), _| *tz == z);
        }
        for y in ys {
            for x in xs.clone() {
                let wrapped = x.rem_euclid(n);
                let tile = self.tile(z, wrapped, y);
                let (Load::Ready, Some(image)) = (tile.load.get(), &tile.image) else {
                    continue;
                };
                let origin = super::projection::World {
                    x: x as f64 / n as f64,
                    y: y as f64 / n as f64,
                };
                let (sx, sy) = view.screen(origin);
                // Half a pixel over, so that no seams show between tiles.
                let _ = ctx.draw_image_with_html_image_element_and_dw_and_dh(
                    image,
                    sx.floor(),
                    sy.floor(),
                    size.ceil() + 0.5,
                    size.ceil() + 0.5,
                );
            }
        }
    }

    fn tile(&mut self, z: u32, x: i64, y: i64) -> &Tile {
        let template = &self.template;
        let arrived = &self.arrived;
        self.tiles
            .entry((z, x, y))
            .or_insert_with(|| request(&url(template, z, x, y), arrived))
    }
}

fn request(url: &str, arrived: &Rc<Cell<bool>>) -> Tile {
    let load = Rc::new(Cell::new(Load::Pending));
    let Ok(image) = HtmlImageElement::new() else {
        load.set(Load::Failed);
        return Tile { image: None, load };
    };
    // Exactly one of load and error fires, so one once-callback serves both.
    let done = {
        let load = Rc::clone(&load);
        let arrived = Rc::clone(arrived);
        let image = image.clone();
        Closure::once_into_js(move || {
            let ok = image.complete() && image.natural_width() > 0;
            load.set(if ok { Load::Ready } else { Load::Failed });
            arrived.set(true);
        })
    };
    image.set_onload(Some(done.unchecked_ref()));
    image.set_onerror(Some(done.unchecked_ref()));
    // Tile servers ask web pages for their origin (the page's own policy
    // sends no referrer at all).
    image.set_referrer_policy("strict-origin-when-cross-origin");
    image.set_src(url);
    Tile {
        image: Some(image),
        load,
    }
}

/// The tile's URL: `{z}`, `{x}`, `{y}` and OpenStreetMap-style `{s}`
/// subdomains.
pub fn url(template: &str, z: u32, x: i64, y: i64) -> String {
    let subdomain = ["a", "b", "c"][(x + y).rem_euclid(3) as usize];
    template
        .replace("{z}", &z.to_string())
        .replace("{x}", &x.to_string())
        .replace("{y}", &y.to_string())
        .replace("{s}", subdomain)
}

#[cfg(test)]
mod tests {
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn urls_fill_the_template() {
        assert_eq!(
            super::url("https://tile.example/{z}/{x}/{y}.png", 3, 4, 5),
            "https://tile.example/3/4/5.png"
        );
        assert_eq!(
            super::url("https://{s}.t/{z}/{x}/{y}", 1, 0, 1),
            "https://b.t/1/0/1"
        );
    }
}
