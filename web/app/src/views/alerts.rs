//! Alerts as they happen: newest first, filtered by state and severity;
//! operators acknowledge and close them here. A click shows the device.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, Alert, Client};
use crate::fleet::Live;
use crate::format;
use crate::session::Auth;

/// Rows listed at most (the newest).
const SHOWN: usize = 300;

#[component]
pub fn AlertList() -> impl IntoView {
    let live = expect_context::<Live>();
    let state = RwSignal::new("active".to_owned());
    let severity = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let rows = Memo::new(move |_| {
        let (state, severity) = (state.get(), severity.get());
        live.with(|fleet| {
            let mut alerts: Vec<Alert> = fleet
                .alerts()
                .filter(|a| match state.as_str() {
                    "active" => !a.is_closed(),
                    "" => true,
                    wanted => a.state == wanted,
                })
                .filter(|a| severity.is_empty() || a.severity == severity)
                .cloned()
                .collect();
            alerts.sort_by(|a, b| b.opened_at.cmp(&a.opened_at).then(b.id.cmp(&a.id)));
            alerts.truncate(SHOWN);
            alerts
        })
    });
    view! {
        <section class="alerts" aria-label="Alerts">
            <div class="filters">
                <select aria-label="State" data-testid="alert-state-filter"
                    on:change=move |ev| state.set(event_target_value(&ev))>
                    <option value="active">"Open and acknowledged"</option>
                    <option value="open">"Open"</option>
                    <option value="acknowledged">"Acknowledged"</option>
                    <option value="closed">"Closed"</option>
                    <option value="">"All"</option>
                </select>
                <select aria-label="Severity" data-testid="alert-severity-filter"
                    on:change=move |ev| severity.set(event_target_value(&ev))>
                    <option value="">"Every severity"</option>
                    <option value="critical">"Critical"</option>
                    <option value="warning">"Warning"</option>
                    <option value="info">"Info"</option>
                </select>
            </div>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <ul class="alert-list" role="list">
                {move || rows.get().into_iter().map(|a| alert_row(a, live, error)).collect_view()}
            </ul>
        </section>
    }
}

fn alert_row(alert: Alert, live: Live, error: RwSignal<Option<String>>) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let client = expect_context::<Client>();
    let act = move |id: String, action: &'static str| {
        spawn_local(async move {
            let path = format!("/api/v1/alerts/{}/{action}", api::encode(&id));
            match client.post::<_, Alert>(&path, &serde_json::json!({})).await {
                Ok(updated) => {
                    error.set(None);
                    live.update(|f| f.put_alert(updated));
                    live.publish();
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    let device = alert.device.clone();
    let focus = move || {
        if device != "drover" {
            live.selected.set(Some(device.clone()));
            live.follow.set(true);
        }
    };
    let focus_by_key = {
        let focus = focus.clone();
        move |event: web_sys::KeyboardEvent| {
            if event.key() == "Enter" {
                focus();
            }
        }
    };
    let (ack_id, close_id) = (alert.id.clone(), alert.id.clone());
    let open = alert.state == "open";
    let closed = alert.is_closed();
    let where_ = alert
        .details
        .get("name")
        .or_else(|| alert.details.get("alarm"))
        .map(format::value)
        .unwrap_or_default();
    view! {
        <li
            class=format!("alert {} {}", alert.severity, alert.state)
            data-testid="alert-row"
            data-alert=alert.id.clone()
            data-state=alert.state.clone()
            tabindex="0"
            on:click=move |_| focus()
            on:keydown=focus_by_key
        >
            <span class="severity">{alert.severity.clone()}</span>
            <span class="kind">{alert.kind.replace('_', " ")}</span>
            <span class="device">{alert.device.clone()}</span>
            <span class="when">{format::time(&alert.opened_at)}</span>
            <span class="detail">{where_}</span>
            <span class="state">{alert.state.clone()}</span>
            <Show when=move || auth.can_operate() && !closed>
                {
                    let (ack_id, close_id) = (ack_id.clone(), close_id.clone());
                    view! {
                        <span class="actions">
                            {open.then(|| {
                                let id = ack_id.clone();
                                view! {
                                    <button data-testid="alert-ack"
                                        on:click=move |ev| { ev.stop_propagation(); act(id.clone(), "acknowledge") }>
                                        "Acknowledge"
                                    </button>
                                }
                            })}
                            <button data-testid="alert-close"
                                on:click=move |ev| { ev.stop_propagation(); act(close_id.clone(), "close") }>
                                "Close"
                            </button>
                        </span>
                    }
                }
            </Show>
        </li>
    }
}
