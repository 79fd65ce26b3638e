//! The pages: the login page, and the dashboard (header, a side bar with
//! the device list, alerts, geofences and administration, the map, and the
//! selected device's panel).

mod admin;
mod alerts;
mod charts;
mod devices;
mod geofences;
mod login;
mod panel;

use std::time::Duration;

use leptos::prelude::*;
use send_wrapper::SendWrapper;

use crate::api::Client;
use crate::fleet::Live;
use crate::map::FleetMap;
use crate::map::layers::Layers;
use crate::session::Auth;
use crate::stream::{Link, Stream};

/// How often the list and panels catch up with the fleet.
const VIEW_REFRESH: Duration = Duration::from_millis(250);

#[component]
pub fn App() -> impl IntoView {
    let auth = Auth::restore();
    provide_context(auth);
    provide_context(Client::new(auth));
    move || match auth.session.with(Option::is_some) {
        true => view! { <Dashboard/> }.into_any(),
        false => view! { <login::Login/> }.into_any(),
    }
}

/// Runs `tick` every `period` while the calling view is mounted.
fn every(period: Duration, tick: impl Fn() + 'static) {
    if let Ok(handle) = set_interval_with_handle(tick, period) {
        on_cleanup(move || handle.clear());
    }
}

/// The tile URL template the node put in the page (`http.tile_url`).
fn tile_url() -> String {
    document()
        .query_selector("meta[name='drover:tile-url']")
        .ok()
        .flatten()
        .and_then(|m| m.get_attribute("content"))
        .unwrap_or_default()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tab {
    Devices,
    Alerts,
    Geofences,
    Admin,
}

#[component]
fn Dashboard() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let client = expect_context::<Client>();
    let live = Live::new();
    let layers = Layers::new();
    provide_context(live);
    provide_context(layers);
    geofences::show_on_map(client, layers);
    let link = RwSignal::new(Link::Connecting);
    let stream = SendWrapper::new(Stream::open(live, auth, client, link));
    on_cleanup(move || drop(stream));
    every(VIEW_REFRESH, move || live.publish());
    let tab = RwSignal::new(Tab::Devices);
    let open_alerts = move || live.with(|f| f.open_alerts());
    let user = move || {
        auth.session
            .with(|s| s.as_ref().map(|s| s.username.clone()))
            .unwrap_or_default()
    };
    let tab_button = move |which: Tab, label: &'static str, testid: &'static str| {
        view! {
            <button
                role="tab"
                data-testid=testid
                aria-selected=move || (tab.get() == which).to_string()
                class:active=move || tab.get() == which
                on:click=move |_| tab.set(which)
            >{label}</button>
        }
    };
    view! {
        <div class="dashboard">
            <header>
                <span class="brand">"Drover"</span>
                <span class="link" data-testid="link-state">{move || match link.get() {
                    Link::Connecting => "connecting…".to_owned(),
                    Link::Live => "live".to_owned(),
                    Link::Retrying(s) => format!("reconnecting in {s} s"),
                }}</span>
                <span class="spacer"></span>
                <button
                    class="badge"
                    data-testid="alerts-badge"
                    data-count=move || open_alerts().to_string()
                    title="Open alerts"
                    on:click=move |_| tab.set(Tab::Alerts)
                >{move || format!("Alerts {}", open_alerts())}</button>
                <span class="user">{user}</span>
                <button data-testid="logout" on:click=move |_| auth.logout()>"Log out"</button>
            </header>
            <main>
                <aside class="sidebar">
                    <nav role="tablist">
                        {tab_button(Tab::Devices, "Devices", "tab-devices")}
                        {tab_button(Tab::Alerts, "Alerts", "tab-alerts")}
                        {tab_button(Tab::Geofences, "Geofences", "tab-geofences")}
                        <Show when=move || auth.is_admin()>
                            {tab_button(Tab::Admin, "Admin", "tab-admin")}
                        </Show>
                    </nav>
                    {move || match tab.get() {
                        Tab::Devices => view! { <devices::DeviceList/> }.into_any(),
                        Tab::Alerts => view! { <alerts::AlertList/> }.into_any(),
                        Tab::Geofences => view! { <geofences::Geofences/> }.into_any(),
                        Tab::Admin => view! { <admin::Admin/> }.into_any(),
                    }}
                </aside>
                <FleetMap tile_url=tile_url()/>
                // A device picked anywhere (a marker, a row, an alert) shows in its panel.
                {move || live.selected.get().map(|id| view! { <panel::DevicePanel id=id/> })}
            </main>
        </div>
    }
}
