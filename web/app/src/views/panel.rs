//! The selected device's panel: its latest state (updated live), charts
//! of its history, its trips with replay on the map, and commands.

use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::json;

use super::charts::{self, SERIES};
use crate::api::{self, Client, Command, Commands, Page, Position, Trip};
use crate::fleet::{Live, Vehicle};
use crate::format;
use crate::map::layers::{Layers, ReplayPath};
use crate::map::projection::project;
use crate::session::Auth;

const HOUR_MS: f64 = 3_600_000.0;
/// Pages of positions a chart or replay reads at most.
const MAX_PAGES: usize = 5;
const POSITIONS_PAGE: usize = 10_000;
/// How often an open panel reads its device in full.
const REFRESH: Duration = Duration::from_secs(10);
/// How far back the trips list looks.
const TRIPS_DAYS: f64 = 7.0;

#[component]
pub fn DevicePanel(id: String) -> impl IntoView {
    let live = expect_context::<Live>();
    let layers = expect_context::<Layers>();
    let vehicle = {
        let id = id.clone();
        Memo::new(move |_| live.with(|f| f.get(&id).map(Vehicle::resolved)))
    };
    refresh_while_open(id.clone());
    let close = move |_| {
        live.selected.set(None);
        live.follow.set(false);
        layers.replay.set(None);
    };
    let title =
        move || vehicle.with(|v| v.as_ref().map(|v| v.label().to_owned()).unwrap_or_default());
    let (attribute, shown) = (id.clone(), id.clone());
    let (history, trips) = (id.clone(), id.clone());
    view! {
        <aside class="panel" data-testid="device-panel" data-device=attribute aria-label="Device">
            <header>
                <h2>{title}</h2>
                <button class="close" aria-label="Close the panel" on:click=close>"×"</button>
            </header>
            <p class="id">{shown}</p>
            {move || vehicle.get().map(|v| latest(&v))}
            <History id=history/>
            <Trips id=trips/>
            <DeviceCommands id=id/>
        </aside>
    }
}

/// Reads the device in full now and every [`REFRESH`] while the panel is
/// open: the stream's summary snapshot and its positions leave out what
/// only the panel shows (usage, odometer, power before the next position).
fn refresh_while_open(id: String) {
    let (live, client) = (expect_context::<Live>(), expect_context::<Client>());
    let refresh = move || {
        let path = format!("/api/v1/devices/{}", api::encode(&id));
        spawn_local(async move {
            match client.get::<api::Device>(&path).await {
                Ok(device) => live.update(|fleet| fleet.refresh(device)),
                Err(error) => leptos::logging::warn!("device: {error}"),
            }
        });
    };
    refresh();
    super::every(REFRESH, refresh);
}

fn latest(vehicle: &Vehicle) -> impl IntoView + use<> {
    let state = vehicle.state().cloned().unwrap_or_default();
    let fix = state.last_fix.clone();
    let (time, lat, lon, speed, course) = match &fix {
        Some(f) => (
            format::time_ms(f.time_ms),
            format::coordinate(f.fix.lat),
            format::coordinate(f.fix.lon),
            format!("{:.0} km/h", f.fix.speed_kmh),
            format!("{:.0}°", f.fix.course_deg),
        ),
        None => Default::default(),
    };
    let status = vehicle.status();
    let dtc = state
        .attributes
        .get("dtc")
        .or_else(|| state.attributes.get("dtcs"))
        .map(format::value)
        .unwrap_or_else(|| "none".to_owned());
    let engine_hours = state
        .usage
        .as_ref()
        .and_then(|u| u.engine_ms)
        .map(|ms| format!("{:.1} h", ms / HOUR_MS));
    let attributes: Vec<(String, String)> = state
        .attributes
        .iter()
        .filter(|(k, _)| k.as_str() != "dtc" && k.as_str() != "dtcs")
        .map(|(k, v)| (k.clone(), format::value(v)))
        .collect();
    let o = &state.obd;
    let p = &state.power;
    view! {
        <section class="latest" aria-label="Latest state">
            <p class="status"><span class="dot" style:background=status.colour()></span>{status.name()}</p>
            <dl>
                <dt>"Time"</dt><dd data-testid="device-time">{time}</dd>
                <dt>"Latitude"</dt><dd data-testid="device-lat">{lat}</dd>
                <dt>"Longitude"</dt><dd data-testid="device-lon">{lon}</dd>
                <dt>"Speed"</dt><dd data-testid="device-speed">{speed}</dd>
                <dt>"Heading"</dt><dd>{course}</dd>
                <dt>"Ignition"</dt><dd data-testid="device-ignition">{format::flag(state.ignition, "on", "off")}</dd>
                <dt>"External power"</dt><dd>{format::number(p.external_v, 1, "V")}</dd>
                <dt>"Battery"</dt><dd>{match (p.battery_v, p.battery_level_pct) {
                    (_, Some(pct)) => format!("{pct:.0} %"),
                    (v, None) => format::number(v, 2, "V"),
                }}</dd>
                <dt>"Odometer"</dt><dd>{state.odometer_m.map(format::distance).unwrap_or_else(|| "–".into())}</dd>
                <dt>"Engine hours"</dt><dd>{engine_hours.unwrap_or_else(|| "–".into())}</dd>
                <dt>"RPM"</dt><dd>{format::number(o.rpm, 0, "")}</dd>
                <dt>"Coolant"</dt><dd>{format::number(o.coolant_temp_c, 0, "°C")}</dd>
                <dt>"Engine load"</dt><dd>{format::number(o.engine_load_pct, 0, "%")}</dd>
                <dt>"Fuel level"</dt><dd>{format::number(o.fuel_level_pct, 0, "%")}</dd>
                <dt>"Throttle"</dt><dd>{format::number(o.throttle_pct, 0, "%")}</dd>
                <dt>"OBD speed"</dt><dd>{format::number(o.obd_speed_kmh, 0, "km/h")}</dd>
                <dt>"Fault codes"</dt><dd data-testid="device-dtc">{dtc}</dd>
            </dl>
            <details>
                <summary>{format!("Other attributes ({})", attributes.len())}</summary>
                <dl class="attributes">
                    {attributes.into_iter().map(|(k, v)| view! { <dt>{k}</dt><dd>{v}</dd> }).collect_view()}
                </dl>
            </details>
        </section>
    }
}

/// Reads the device's positions in [from, to), up to [`MAX_PAGES`] pages;
/// the flag says whether more were left.
async fn positions(
    client: Client,
    id: &str,
    from_ms: f64,
    to_ms: f64,
) -> Result<(Vec<Position>, bool), api::ApiError> {
    let path = format!(
        "/api/v1/devices/{}/positions?from={}&to={}&limit={POSITIONS_PAGE}",
        api::encode(id),
        api::encode(&format::rfc3339(from_ms)),
        api::encode(&format::rfc3339(to_ms)),
    );
    client.pages(&path, MAX_PAGES).await
}

/// Charts over a chosen range, read when the range changes.
#[component]
fn History(id: String) -> impl IntoView {
    let client = expect_context::<Client>();
    let hours = RwSignal::new(1.0_f64);
    let data = RwSignal::new(None::<Result<(Vec<Position>, bool), String>>);
    Effect::new(move |_| {
        let hours = hours.get();
        let id = id.clone();
        data.set(None);
        spawn_local(async move {
            let now = js_sys::Date::now();
            let result = positions(client, &id, now - hours * HOUR_MS, now)
                .await
                .map_err(|e| e.to_string());
            data.set(Some(result));
        });
    });
    view! {
        <section class="history" aria-label="Charts" data-testid="device-charts">
            <header>
                <h3>"History"</h3>
                <select aria-label="Range" data-testid="chart-range"
                    on:change=move |ev| hours.set(event_target_value(&ev).parse().unwrap_or(1.0))>
                    <option value="1">"Last hour"</option>
                    <option value="6">"Last 6 hours"</option>
                    <option value="24">"Last 24 hours"</option>
                    <option value="168">"Last 7 days"</option>
                </select>
            </header>
            {move || match data.get() {
                None => view! { <p class="loading">"Loading…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
                Some(Ok((positions, more))) => view! {
                    {more.then(|| view! { <p class="note">{format!("The first {} positions of the range", positions.len())}</p> })}
                    {SERIES.iter().map(|s| charts::chart(s, &positions)).collect_view()}
                }.into_any(),
            }}
        </section>
    }
}

/// The trips of the last days, newest first, each replayable on the map.
#[component]
fn Trips(id: String) -> impl IntoView {
    let client = expect_context::<Client>();
    let live = expect_context::<Live>();
    let layers = expect_context::<Layers>();
    let trips = RwSignal::new(None::<Result<Vec<Trip>, String>>);
    let replay = RwSignal::new(None::<Replay>);
    {
        let id = id.clone();
        spawn_local(async move {
            let from = format::rfc3339(js_sys::Date::now() - TRIPS_DAYS * 24.0 * HOUR_MS);
            let path = format!(
                "/api/v1/devices/{}/trips?from={}&limit=1000",
                api::encode(&id),
                api::encode(&from)
            );
            let result = client
                .get::<Page<Trip>>(&path)
                .await
                .map(|p| p.items.into_iter().rev().collect())
                .map_err(|e| e.to_string());
            trips.set(Some(result));
        });
    }
    let start_replay = move |trip: Trip| {
        let id = id.clone();
        spawn_local(async move {
            let from = js_sys::Date::parse(&trip.start.time);
            let to = trip
                .end
                .as_ref()
                .map(|e| js_sys::Date::parse(&e.time) + 1.0)
                .unwrap_or_else(js_sys::Date::now);
            match positions(client, &id, from, to).await {
                Ok((positions, _)) if !positions.is_empty() => {
                    let loaded = Replay::new(trip.id.clone(), positions);
                    layers.replay.set(Some(loaded.path(0)));
                    replay.set(Some(loaded));
                    live.follow.set(false);
                    live.fit.update(|n| *n += 1);
                }
                Ok(_) => replay.set(None),
                Err(e) => leptos::logging::warn!("replay: {e}"),
            }
        });
    };
    view! {
        <section class="trips" aria-label="Trips">
            <h3>"Trips"</h3>
            {move || replay.get().map(|r| view! { <ReplayControls replay=r on_close=move || { replay.set(None); layers.replay.set(None); }/> })}
            {move || match trips.get() {
                None => view! { <p class="loading">"Loading…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
                Some(Ok(list)) if list.is_empty() => view! { <p class="empty">"No trips in the last 7 days"</p> }.into_any(),
                Some(Ok(list)) => view! {
                    <ul class="trip-list">
                        {list.into_iter().map(|trip| {
                            let start_replay = start_replay.clone();
                            let chosen = trip.clone();
                            view! {
                                <li data-testid="trip-row" data-trip=trip.id.clone() class:open=trip.open>
                                    <span class="when">{format::time(&trip.start.time)}</span>
                                    <span>{trip.duration_s.map(format::duration).unwrap_or_default()}</span>
                                    <span>{format::distance(trip.distance_m)}</span>
                                    <span>{trip.max_speed_kmh.map(|s| format!("max {s:.0} km/h")).unwrap_or_default()}</span>
                                    <button data-testid="trip-replay" on:click=move |_| start_replay(chosen.clone())>"Replay"</button>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any(),
            }}
        </section>
    }
}

/// A trip being replayed: its positions and their times.
#[derive(Clone, Debug, PartialEq)]
struct Replay {
    trip: String,
    positions: Vec<Position>,
    times: Vec<f64>,
}

impl Replay {
    fn new(trip: String, positions: Vec<Position>) -> Self {
        let times = positions
            .iter()
            .map(|p| js_sys::Date::parse(&p.time))
            .collect();
        Replay {
            trip,
            positions,
            times,
        }
    }

    /// The map layer with the replay at position `at`.
    fn path(&self, at: usize) -> ReplayPath {
        ReplayPath {
            path: self
                .positions
                .iter()
                .map(|p| project(p.lat, p.lon))
                .collect(),
            at: self.positions.get(at).map(|p| project(p.lat, p.lon)),
        }
    }

    /// The last position at or before `time_ms`.
    fn index_at(&self, time_ms: f64) -> usize {
        self.times
            .partition_point(|&t| t <= time_ms)
            .saturating_sub(1)
    }
}

/// Time slider, play/pause and speed for a replayed trip.
#[component]
fn ReplayControls(replay: Replay, on_close: impl Fn() + 'static) -> impl IntoView {
    let layers = expect_context::<Layers>();
    let last = replay.positions.len().saturating_sub(1);
    let at = RwSignal::new(0_usize);
    let playing = RwSignal::new(false);
    let speed = RwSignal::new(10.0_f64);
    let replay = StoredValue::new(replay);
    Effect::new(move |_| {
        let index = at.get();
        layers.replay.update(|layer| {
            if let Some(layer) = layer {
                layer.at =
                    replay.with_value(|r| r.positions.get(index).map(|p| project(p.lat, p.lon)));
            }
        });
    });
    const STEP: Duration = Duration::from_millis(100);
    super::every(STEP, move || {
        if !playing.get_untracked() {
            return;
        }
        let next = replay.with_value(|r| {
            let now = r.times.get(at.get_untracked()).copied().unwrap_or(0.0);
            r.index_at(now + STEP.as_millis() as f64 * speed.get_untracked())
                .max(at.get_untracked() + 1)
        });
        if next >= last {
            playing.set(false);
        }
        at.set(next.min(last));
    });
    let current = move || {
        replay.with_value(|r| {
            r.positions
                .get(at.get())
                .map(|p| format!("{} · {:.0} km/h", format::time(&p.time), p.speed_kmh))
                .unwrap_or_default()
        })
    };
    view! {
        <div class="replay" data-testid="replay" data-trip=replay.with_value(|r| r.trip.clone())>
            <input
                type="range"
                min="0"
                max=last.to_string()
                aria-label="Replay position"
                data-testid="replay-slider"
                prop:value=move || at.get().to_string()
                on:input=move |ev| at.set(event_target_value(&ev).parse().unwrap_or(0))
            />
            <div class="replay-bar">
                <button data-testid="replay-play" on:click=move |_| {
                    if at.get_untracked() >= last {
                        at.set(0);
                    }
                    playing.update(|p| *p = !*p);
                }>{move || if playing.get() { "Pause" } else { "Play" }}</button>
                <select aria-label="Replay speed" on:change=move |ev| speed.set(event_target_value(&ev).parse().unwrap_or(10.0))>
                    <option value="1">"1×"</option>
                    <option value="10" selected>"10×"</option>
                    <option value="60">"60×"</option>
                    <option value="300">"300×"</option>
                </select>
                <span class="replay-time" data-testid="replay-time" data-index=move || at.get().to_string()>{current}</span>
                <button aria-label="Stop the replay" on:click=move |_| on_close()>"×"</button>
            </div>
        </div>
    }
}

/// Sending a command and following its status.
#[component]
fn DeviceCommands(id: String) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let client = expect_context::<Client>();
    let kind = RwSignal::new("engine_stop".to_owned());
    let text = RwSignal::new(String::new());
    let confirming = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let commands = RwSignal::new(Vec::<Command>::new());
    let id = StoredValue::new(id);
    let refresh = move || {
        let path = format!(
            "/api/v1/devices/{}/commands?limit=10",
            api::encode(&id.get_value())
        );
        spawn_local(async move {
            if let Ok(list) = client.get::<Commands>(&path).await {
                commands.set(list.commands);
            }
        });
    };
    refresh();
    // Statuses change on the device's side: read them again while any is
    // still on its way.
    super::every(Duration::from_secs(2), move || {
        let pending = commands
            .with_untracked(|c| c.iter().any(|c| c.status == "queued" || c.status == "sent"));
        if pending {
            refresh();
        }
    });
    let send = move || {
        let body = match kind.get_untracked().as_str() {
            "custom" => json!({"type": "custom", "text": text.get_untracked()}),
            other => json!({"type": other}),
        };
        let path = format!("/api/v1/devices/{}/commands", api::encode(&id.get_value()));
        confirming.set(false);
        error.set(None);
        spawn_local(async move {
            match client.post::<_, Command>(&path, &body).await {
                Ok(_) => refresh(),
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    let needs_confirmation = move || matches!(kind.get().as_str(), "engine_stop" | "engine_resume");
    view! {
        <section class="commands" aria-label="Commands">
            <h3>"Commands"</h3>
            <Show when=move || auth.can_operate()>
                <div class="command-form">
                    <select aria-label="Command" data-testid="command-type"
                        on:change=move |ev| { kind.set(event_target_value(&ev)); confirming.set(false); }>
                        <option value="engine_stop">"Stop engine"</option>
                        <option value="engine_resume">"Resume engine"</option>
                        <option value="reboot">"Reboot"</option>
                        <option value="custom">"Custom"</option>
                    </select>
                    <Show when=move || kind.get() == "custom">
                        <input aria-label="Command text" data-testid="command-text" placeholder="e.g. WHERE#"
                            prop:value=move || text.get()
                            on:input=move |ev| text.set(event_target_value(&ev))/>
                    </Show>
                    <button data-testid="command-send" on:click=move |_| {
                        if needs_confirmation() { confirming.set(true) } else { send() }
                    }>"Send"</button>
                </div>
                <Show when=move || confirming.get()>
                    <div class="confirm" role="alertdialog" aria-label="Confirm the command">
                        <p>{move || format!("Really {} on {}? The vehicle's engine is cut or restored remotely.",
                            if kind.get() == "engine_stop" { "stop the engine" } else { "resume the engine" },
                            id.get_value())}</p>
                        <button class="danger" data-testid="command-confirm" on:click=move |_| send()>"Confirm"</button>
                        <button on:click=move |_| confirming.set(false)>"Cancel"</button>
                    </div>
                </Show>
                {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            </Show>
            <ul class="command-list">
                {move || commands.get().into_iter().map(|c| {
                    let what = c.command.get("type").map(format::value).unwrap_or_default();
                    let answer = c.result.clone().or(c.error.clone()).unwrap_or_default();
                    view! {
                        <li data-testid="command-row" data-command=c.id.clone() data-status=c.status.clone()>
                            <span>{what}</span>
                            <span class=format!("command-status {}", c.status)>{c.status.clone()}</span>
                            <span class="answer">{answer}</span>
                        </li>
                    }
                }).collect_view()}
            </ul>
        </section>
    }
}
