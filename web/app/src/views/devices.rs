//! The device list: search, filters and sort over the whole fleet, drawn
//! virtually (only the rows in sight are in the page), so 10,000 devices
//! scroll like 10. Arrow keys move the selection; a click or Enter opens
//! the device.

use leptos::html::Div;
use leptos::prelude::*;
use web_sys::KeyboardEvent;

use crate::fleet::{Fleet, Live, Status, Vehicle};
use crate::format;

const ROW_PX: f64 = 48.0;
/// Rows drawn beyond the visible ones, above and below.
const OVERSCAN: usize = 6;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sort {
    Name,
    LastSeen,
    Speed,
    Status,
}

#[derive(Clone, PartialEq)]
struct Filter {
    query: String,
    status: Option<Status>,
    group: Option<String>,
    sort: Sort,
}

#[component]
pub fn DeviceList() -> impl IntoView {
    let live = expect_context::<Live>();
    let query = RwSignal::new(String::new());
    let status = RwSignal::new(None::<Status>);
    let group = RwSignal::new(None::<String>);
    let sort = RwSignal::new(Sort::Name);
    let scroll_top = RwSignal::new(0.0_f64);
    let height = RwSignal::new(600.0_f64);
    let scroller = NodeRef::<Div>::new();

    let rows = Memo::new(move |_| {
        let filter = Filter {
            query: query.get().trim().to_lowercase(),
            status: status.get(),
            group: group.get(),
            sort: sort.get(),
        };
        live.with(|fleet| select(fleet, &filter))
    });
    let groups = Memo::new(move |_| live.with(Fleet::groups));

    let visible = move || {
        let rows = rows.get();
        let first = (scroll_top.get() / ROW_PX).floor() as usize;
        let first = first.saturating_sub(OVERSCAN).min(rows.len());
        let count = (height.get() / ROW_PX).ceil() as usize + 2 * OVERSCAN;
        let last = (first + count).min(rows.len());
        let selected = live.selected.get();
        live.with(|fleet| {
            rows[first..last]
                .iter()
                .enumerate()
                .filter_map(|(i, id)| {
                    let vehicle = fleet.get(id)?;
                    Some(row(
                        vehicle,
                        (first + i) as f64 * ROW_PX,
                        selected.as_deref() == Some(id),
                        live,
                    ))
                })
                .collect_view()
        })
    };

    Effect::new(move |_| {
        if let Some(el) = scroller.get() {
            height.set(f64::from(el.client_height()));
        }
    });
    let on_scroll = move |_| {
        if let Some(el) = scroller.get_untracked() {
            scroll_top.set(f64::from(el.scroll_top()));
            height.set(f64::from(el.client_height()));
        }
    };
    let on_key = move |event: KeyboardEvent| {
        let step: isize = match event.key().as_str() {
            "ArrowDown" => 1,
            "ArrowUp" => -1,
            "PageDown" => 10,
            "PageUp" => -10,
            _ => return,
        };
        event.prevent_default();
        let rows = rows.get_untracked();
        if rows.is_empty() {
            return;
        }
        let current = live
            .selected
            .get_untracked()
            .and_then(|id| rows.iter().position(|r| *r == id));
        let next = match current {
            Some(i) => i.saturating_add_signed(step).min(rows.len() - 1),
            None => 0,
        };
        live.selected.set(Some(rows[next].clone()));
        if let Some(el) = scroller.get_untracked() {
            let top = next as f64 * ROW_PX;
            let view = f64::from(el.client_height());
            let scrolled = f64::from(el.scroll_top());
            if top < scrolled {
                el.set_scroll_top(top as i32);
            } else if top + ROW_PX > scrolled + view {
                el.set_scroll_top((top + ROW_PX - view) as i32);
            }
        }
    };

    view! {
        <section class="devices" aria-label="Devices">
            <div class="filters">
                <input
                    type="search"
                    placeholder="Search IMEI or name"
                    aria-label="Search devices by IMEI or name"
                    data-testid="device-search"
                    prop:value=move || query.get()
                    on:input=move |ev| query.set(event_target_value(&ev))
                />
                <select aria-label="Status" data-testid="device-status-filter"
                    on:change=move |ev| status.set(Status::parse(&event_target_value(&ev)))>
                    <option value="">"Every status"</option>
                    {Status::ALL.into_iter().map(|s| view! { <option value=s.name()>{s.name()}</option> }).collect_view()}
                </select>
                <select aria-label="Group" data-testid="device-group-filter"
                    on:change=move |ev| {
                        let value = event_target_value(&ev);
                        group.set((!value.is_empty()).then_some(value));
                    }>
                    <option value="">"Every group"</option>
                    {move || groups.get().into_iter().map(|g| view! { <option value=g.clone()>{g.clone()}</option> }).collect_view()}
                </select>
                <select aria-label="Sort by" data-testid="device-sort"
                    on:change=move |ev| sort.set(match event_target_value(&ev).as_str() {
                        "seen" => Sort::LastSeen,
                        "speed" => Sort::Speed,
                        "status" => Sort::Status,
                        _ => Sort::Name,
                    })>
                    <option value="name">"Name"</option>
                    <option value="seen">"Last seen"</option>
                    <option value="speed">"Speed"</option>
                    <option value="status">"Status"</option>
                </select>
            </div>
            <p class="count" data-testid="device-count">{move || format!("{} devices", rows.with(Vec::len))}</p>
            <div
                class="rows"
                role="listbox"
                aria-label="Devices"
                tabindex="0"
                data-testid="device-list"
                data-count=move || rows.with(Vec::len).to_string()
                node_ref=scroller
                on:scroll=on_scroll
                on:keydown=on_key
            >
                <div class="spacer" style:height=move || format!("{}px", rows.with(Vec::len) as f64 * ROW_PX)>
                    {visible}
                </div>
            </div>
        </section>
    }
}

fn row(vehicle: &Vehicle, top: f64, selected: bool, live: Live) -> impl IntoView + use<> {
    let id = vehicle.device.id.clone();
    let status = vehicle.status();
    let label = vehicle.label().to_owned();
    let speed = match vehicle.fix() {
        Some(fix) => format!("{:.0} km/h", fix.speed_kmh),
        None => "no position".to_owned(),
    };
    // A named device shows its IMEI too; an unnamed one is its IMEI.
    let detail = match &vehicle.device.name {
        Some(_) => format!("{speed} · {}", vehicle.device.id),
        None => speed,
    };
    let seen = vehicle
        .fix_time_ms()
        .map(format::time_ms)
        .unwrap_or_default();
    let pick = id.clone();
    view! {
        <div
            class="row"
            class:selected=selected
            role="option"
            aria-selected=selected.to_string()
            data-testid="device-row"
            data-device=id
            style:top=format!("{top}px")
            on:click=move |_| live.selected.set(Some(pick.clone()))
        >
            <span class="dot" style:background=status.colour() title=status.name()></span>
            <span class="name">{label}</span>
            <span class="detail">{detail}</span>
            <span class="seen">{seen}</span>
        </div>
    }
}

/// The ids of the devices the filter keeps, in its order.
fn select(fleet: &Fleet, filter: &Filter) -> Vec<String> {
    let mut kept: Vec<&Vehicle> = fleet
        .vehicles()
        .iter()
        .filter(|v| filter.status.is_none_or(|s| v.status() == s))
        .filter(|v| {
            filter
                .group
                .as_deref()
                .is_none_or(|g| v.device.group.as_deref() == Some(g))
        })
        .filter(|v| {
            filter.query.is_empty()
                || v.device.id.to_lowercase().contains(&filter.query)
                || v.device
                    .name
                    .as_deref()
                    .is_some_and(|n| n.to_lowercase().contains(&filter.query))
        })
        .collect();
    match filter.sort {
        Sort::Name => {
            kept.sort_by(|a, b| a.label().cmp(b.label()).then(a.device.id.cmp(&b.device.id)))
        }
        Sort::LastSeen => kept.sort_by(|a, b| {
            b.fix_time_ms()
                .unwrap_or(0.0)
                .total_cmp(&a.fix_time_ms().unwrap_or(0.0))
        }),
        Sort::Speed => kept.sort_by(|a, b| {
            let speed = |v: &Vehicle| v.fix().map_or(-1.0, |f| f.speed_kmh);
            speed(b).total_cmp(&speed(a))
        }),
        Sort::Status => kept.sort_by_key(|v| (v.status() as u8, v.device.id.clone())),
    }
    kept.into_iter().map(|v| v.device.id.clone()).collect()
}
