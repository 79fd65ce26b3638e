//! The live map: one canvas, redrawn on the animation frame after anything
//! it shows changed (the fleet's version, the viewport, a tile arriving, a
//! layer). Drag to pan, wheel or buttons to zoom, click a marker to select
//! its device; with a drawing tool on, presses draw a geofence instead.
//!
//! `data-marker-count` on the map element is the number of markers drawn in
//! the last frame (a contract with the browser tests).

mod draw;
pub mod layers;
pub mod projection;
mod sprites;
mod tiles;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use leptos::html::{Canvas, Div};
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, PointerEvent, WheelEvent};

use self::layers::{Draft, Layers, Shape, Tool};
use self::projection::{Viewport, project, unproject};
use self::sprites::Sprites;
use self::tiles::Tiles;
use crate::fleet::Live;

/// Closest a fit comes: a single vehicle in a street, not a doorway.
const FIT_MAX_ZOOM: f64 = 16.0;
/// A press that moves less than this is a click.
const CLICK_SLOP_PX: f64 = 4.0;
/// How near a click must be to a marker to select it.
const PICK_PX: f64 = 10.0;
/// Fleet updates alone redraw at most this often: positions come once a
/// second per device, so 10 frames a second show every move while leaving
/// the main thread to panning and to the stream.
const DATA_FRAME_MS: f64 = 100.0;

struct MapState {
    view: Viewport,
    tiles: Tiles,
    /// Anything changed since the last frame.
    dirty: bool,
    drawn_version: u64,
    fitted_once: bool,
    press: Option<Press>,
    marker_count: Option<usize>,
    /// A device was just selected: bring it into view if it is not.
    reveal: bool,
    sprites: Option<Sprites>,
    /// When the last frame was drawn (`performance.now()`).
    drawn_at: f64,
}

/// A pointer held down on the map.
struct Press {
    start: (f64, f64),
    last: (f64, f64),
    moved: bool,
}

#[component]
pub fn FleetMap(tile_url: String) -> impl IntoView {
    let live = expect_context::<Live>();
    let layers = expect_context::<Layers>();
    let canvas = NodeRef::<Canvas>::new();
    let host = NodeRef::<Div>::new();
    let state = Rc::new(RefCell::new(MapState {
        view: Viewport::default(),
        tiles: Tiles::new(tile_url),
        dirty: true,
        drawn_version: u64::MAX,
        fitted_once: false,
        press: None,
        marker_count: None,
        reveal: false,
        sprites: None,
        drawn_at: 0.0,
    }));
    let running = Arc::new(AtomicBool::new(true));
    {
        let running = Arc::clone(&running);
        on_cleanup(move || running.store(false, Ordering::Relaxed));
    }
    frame_loop(Rc::clone(&state), canvas, host, live, layers, running);

    // Layers and selection are signals: any change means a new frame.
    {
        let state = Rc::clone(&state);
        Effect::new(move |_| {
            layers.geofences.track();
            layers.draft.track();
            layers.replay.track();
            state.borrow_mut().dirty = true;
        });
    }
    {
        let state = Rc::clone(&state);
        Effect::new(move |_| {
            live.selected.track();
            let mut s = state.borrow_mut();
            s.reveal = true;
            s.dirty = true;
        });
    }
    {
        let state = Rc::clone(&state);
        Effect::new(move |previous: Option<u64>| {
            let asked = live.fit.get();
            if previous.is_some_and(|p| p != asked) {
                fit(&state, live, layers);
            }
            asked
        });
    }

    let on_down = {
        let state = Rc::clone(&state);
        move |event: PointerEvent| {
            let at = (f64::from(event.offset_x()), f64::from(event.offset_y()));
            if let Some(target) = event
                .target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            {
                let _ = target.set_pointer_capture(event.pointer_id());
            }
            let mut s = state.borrow_mut();
            s.press = Some(Press {
                start: at,
                last: at,
                moved: false,
            });
            if layers.tool.get_untracked() == Tool::Circle {
                let (lat, lon) = unproject(s.view.world_at(at.0, at.1));
                layers.draft.set(Some(Draft::Circle(Shape::Circle {
                    lat,
                    lon,
                    radius_m: 0.0,
                })));
            }
        }
    };
    let on_move = {
        let state = Rc::clone(&state);
        move |event: PointerEvent| {
            let at = (f64::from(event.offset_x()), f64::from(event.offset_y()));
            let mut s = state.borrow_mut();
            let Some(press) = s.press.as_mut() else {
                return;
            };
            let (dx, dy) = (at.0 - press.last.0, at.1 - press.last.1);
            press.last = at;
            let start = press.start;
            if (at.0 - start.0).hypot(at.1 - start.1) > CLICK_SLOP_PX {
                press.moved = true;
            }
            match layers.tool.get_untracked() {
                Tool::Circle => {
                    let view = s.view;
                    layers.draft.update(|draft| {
                        if let Some(Draft::Circle(Shape::Circle { lat, lon, radius_m })) = draft {
                            let (cx, cy) = view.screen(project(*lat, *lon));
                            *radius_m = draw::metres(&view, *lat, (at.0 - cx).hypot(at.1 - cy));
                        }
                    });
                }
                Tool::Pan | Tool::Polygon => {
                    if press.moved {
                        s.view.pan(dx, dy);
                        s.dirty = true;
                        live.follow.set(false);
                    }
                }
            }
        }
    };
    let on_up = {
        let state = Rc::clone(&state);
        move |event: PointerEvent| {
            let at = (f64::from(event.offset_x()), f64::from(event.offset_y()));
            let press = state.borrow_mut().press.take();
            let Some(press) = press else { return };
            if press.moved {
                return;
            }
            let view = state.borrow().view;
            match layers.tool.get_untracked() {
                Tool::Pan => {
                    if let Some(id) = live.fleet.with_value(|f| pick(&view, f, at)) {
                        live.selected.set(Some(id));
                    }
                }
                Tool::Polygon => {
                    let (lat, lon) = unproject(view.world_at(at.0, at.1));
                    layers.draft.update(|draft| match draft {
                        Some(Draft::Polygon(corners)) => corners.push((lat, lon)),
                        _ => *draft = Some(Draft::Polygon(vec![(lat, lon)])),
                    });
                }
                Tool::Circle => {}
            }
        }
    };
    let on_wheel = {
        let state = Rc::clone(&state);
        move |event: WheelEvent| {
            event.prevent_default();
            let by = (-event.delta_y() / 300.0).clamp(-1.0, 1.0);
            let mut s = state.borrow_mut();
            s.view
                .zoom_at(f64::from(event.offset_x()), f64::from(event.offset_y()), by);
            s.dirty = true;
        }
    };
    let zoom_by = {
        let state = Rc::clone(&state);
        move |by: f64| {
            let mut s = state.borrow_mut();
            let (w, h) = (s.view.width, s.view.height);
            s.view.zoom_at(w / 2.0, h / 2.0, by);
            s.dirty = true;
        }
    };
    let zoom_in = {
        let zoom_by = zoom_by.clone();
        move |_| zoom_by(1.0)
    };
    let zoom_out = move |_| zoom_by(-1.0);
    let toggle_follow = move |_| live.follow.update(|f| *f = !*f);

    view! {
        <div class="map" data-testid="map" node_ref=host>
            <canvas
                node_ref=canvas
                on:pointerdown=on_down
                on:pointermove=on_move
                on:pointerup=on_up
                on:wheel=on_wheel
                aria-label="Map of the fleet"
                role="img"
            ></canvas>
            <div class="map-controls">
                <button title="Zoom in" aria-label="Zoom in" on:click=zoom_in>"+"</button>
                <button title="Zoom out" aria-label="Zoom out" on:click=zoom_out>"−"</button>
                <button title="Show the whole fleet" data-testid="map-fit"
                    on:click=move |_| live.fit.update(|n| *n += 1)>"Fit"</button>
                <button
                    title="Keep the selected device in the centre"
                    data-testid="map-follow"
                    class:active=move || live.follow.get()
                    disabled=move || live.selected.with(Option::is_none)
                    on:click=toggle_follow
                >"Follow"</button>
            </div>
            <ul class="legend" aria-label="Marker colours">
                {crate::fleet::Status::ALL
                    .into_iter()
                    .map(|s| {
                        view! {
                            <li>
                                <span class="swatch" style:background=s.colour()></span>
                                {s.name()}
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        </div>
    }
}

/// Draws a frame whenever something changed, until the map is gone.
fn frame_loop(
    state: Rc<RefCell<MapState>>,
    canvas: NodeRef<Canvas>,
    host: NodeRef<Div>,
    live: Live,
    layers: Layers,
    running: Arc<AtomicBool>,
) {
    request_animation_frame(move || {
        if !running.load(Ordering::Relaxed) {
            return;
        }
        if let (Some(canvas), Some(host)) = (canvas.get_untracked(), host.get_untracked()) {
            paint(&state, &canvas, &host, live, layers);
        }
        frame_loop(state, canvas, host, live, layers, running);
    });
}

fn paint(
    state: &Rc<RefCell<MapState>>,
    canvas: &web_sys::HtmlCanvasElement,
    host: &web_sys::HtmlDivElement,
    live: Live,
    layers: Layers,
) {
    let mut s = state.borrow_mut();
    let ratio = window().device_pixel_ratio().max(1.0);
    let (width, height) = (
        f64::from(host.client_width()),
        f64::from(host.client_height()),
    );
    if width != s.view.width || height != s.view.height {
        s.view.width = width;
        s.view.height = height;
        canvas.set_width((width * ratio) as u32);
        canvas.set_height((height * ratio) as u32);
        s.dirty = true;
    }
    let (version, synced) = live
        .fleet
        .with_value(|f| (f.version, f.synced && f.len() > 0));
    if synced && !s.fitted_once {
        s.fitted_once = true;
        drop(s);
        fit(state, live, layers);
        s = state.borrow_mut();
    }
    let selected = live.selected.get_untracked();
    if std::mem::take(&mut s.reveal) {
        reveal(&mut s.view, live, selected.as_deref());
    }
    if live.follow.get_untracked() {
        let target = selected
            .as_deref()
            .and_then(|id| live.fleet.with_value(|f| f.get(id).and_then(|v| v.point)));
        if let Some(center) = target
            && center != s.view.center
        {
            s.view.center = center;
            s.dirty = true;
        }
    }
    if s.tiles.arrived.replace(false) {
        s.dirty = true;
    }
    let now = window().performance().map_or(0.0, |p| p.now());
    let data_due = version != s.drawn_version && now - s.drawn_at >= DATA_FRAME_MS;
    if !(s.dirty || data_due) || width == 0.0 {
        return;
    }
    s.dirty = false;
    s.drawn_version = version;
    s.drawn_at = now;
    if s.sprites.as_ref().is_none_or(|sp| sp.ratio != ratio) {
        s.sprites = Sprites::new(ratio);
    }
    let Some(ctx) = context(canvas) else { return };
    let _ = ctx.set_transform(ratio, 0.0, 0.0, ratio, 0.0, 0.0);
    let view = s.view;
    draw::background(&ctx, &view);
    s.tiles.draw(&ctx, &view);
    draw::graticule(&ctx, &view);
    layers.geofences.with_untracked(|fences| {
        let shapes: Vec<Shape> = fences.iter().map(|(_, s)| s.clone()).collect();
        draw::shapes(&ctx, &view, &shapes);
    });
    if let Some(draft) = layers.draft.get_untracked() {
        draw::draft(&ctx, &view, &draft);
    }
    layers.replay.with_untracked(|replay| {
        if let Some(replay) = replay {
            draw::replay(&ctx, &view, &replay.path, replay.at);
        }
    });
    let Some(sprites) = s.sprites.as_ref() else {
        return;
    };
    let count = live
        .fleet
        .with_value(|f| draw::markers(&ctx, &view, f, selected.as_deref(), sprites));
    if s.marker_count != Some(count) {
        s.marker_count = Some(count);
        let _ = host.set_attribute("data-marker-count", &count.to_string());
    }
}

fn context(canvas: &web_sys::HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into().ok())
}

/// Shows the replayed trip when there is one, else every device with a fix.
fn fit(state: &Rc<RefCell<MapState>>, live: Live, layers: Layers) {
    let replay = layers
        .replay
        .with_untracked(|r| r.as_ref().map(|r| r.path.clone()));
    let points = replay.unwrap_or_else(|| {
        live.fleet
            .with_value(|f| f.vehicles().iter().filter_map(|v| v.point).collect())
    });
    let mut s = state.borrow_mut();
    s.view.fit(points, 24.0, FIT_MAX_ZOOM);
    s.dirty = true;
}

/// Centres the map on the selected device when it is out of sight (picked
/// from the list or an alert, not on the map).
fn reveal(view: &mut Viewport, live: Live, selected: Option<&str>) {
    const MARGIN_PX: f64 = 40.0;
    let Some(point) =
        selected.and_then(|id| live.fleet.with_value(|f| f.get(id).and_then(|v| v.point)))
    else {
        return;
    };
    let (x, y) = view.screen(point);
    let inside = (MARGIN_PX..=view.width - MARGIN_PX).contains(&x)
        && (MARGIN_PX..=view.height - MARGIN_PX).contains(&y);
    if !inside {
        view.center = point;
    }
}

/// The device whose marker is nearest to a click, if one is near enough.
fn pick(view: &Viewport, fleet: &crate::fleet::Fleet, at: (f64, f64)) -> Option<String> {
    fleet
        .vehicles()
        .iter()
        .filter_map(|v| {
            let (x, y) = view.screen(v.point?);
            let d = (x - at.0).hypot(y - at.1);
            (d <= PICK_PX).then_some((d, v))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, v)| v.device.id.clone())
}
