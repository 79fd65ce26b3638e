//! # drover-web
//!
//! Drover's live fleet dashboard: a Leptos app rendered in the browser
//! (client-side only) and compiled to WebAssembly. The node serves the built
//! files at `/` (`connectors/api`'s dashboard routes), so a browser needs
//! nothing but the node.
//!
//! * [`session`]: logging in and out, the token, an expired session.
//! * [`api`]: the REST client and the JSON the API answers.
//! * [`fleet`]: the live fleet, kept outside the reactive graph: 10,000
//!   devices updating every second would otherwise re-render the page
//!   10,000 times a second. Views read it when its version moves.
//! * [`stream`]: the WebSocket that feeds the fleet, reconnecting and
//!   resyncing from a fresh snapshot after a drop.
//! * [`map`]: Web Mercator, tiles, and every marker drawn on one canvas.
//! * [`views`]: the pages and panels.
//!
//! `data-testid` attributes are a contract with the browser tests
//! (`tests/web`): keep them when the markup changes.

mod api;
mod fleet;
mod format;
mod map;
mod session;
mod stream;
mod views;

use wasm_bindgen::prelude::wasm_bindgen;

/// Mounts the dashboard; runs when the module is instantiated.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(views::App);
}
