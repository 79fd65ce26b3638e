//! Geofences: the list, drawing a new circle or polygon on the map,
//! renaming one, giving it a speed limit or a new shape, deleting it.

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::{self, Client};
use crate::map::layers::{Draft, Layers, Shape, Tool};
use crate::session::Auth;

#[derive(Clone, Debug, PartialEq, Deserialize)]
struct Geofence {
    id: String,
    name: String,
    geometry: Value,
    #[serde(default)]
    radius_m: Option<f64>,
    #[serde(default)]
    speed_limit_kmh: Option<f64>,
}

#[component]
pub fn Geofences() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let client = expect_context::<Client>();
    let layers = expect_context::<Layers>();
    let fences = RwSignal::new(Vec::<Geofence>::new());
    let error = RwSignal::new(None::<String>);
    // The geofence being edited (None: a new one).
    let editing = RwSignal::new(None::<String>);
    let name = RwSignal::new(String::new());
    let limit = RwSignal::new(String::new());

    let reload = move || {
        spawn_local(async move {
            match load(client).await {
                Ok(list) => {
                    layers.geofences.set(shapes(&list));
                    fences.set(list);
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    reload();
    on_cleanup(move || {
        layers.tool.set(Tool::Pan);
        layers.draft.set(None);
    });

    let reset = move || {
        layers.tool.set(Tool::Pan);
        layers.draft.set(None);
        editing.set(None);
        name.set(String::new());
        limit.set(String::new());
    };
    let draw = move |tool: Tool| {
        layers.draft.set(None);
        layers.tool.set(tool);
    };
    let save = move |_| {
        let shape = layers
            .draft
            .with_untracked(|d| d.as_ref().and_then(Draft::shape));
        let editing_id = editing.get_untracked();
        let mut body = Map::new();
        body.insert("name".into(), json!(name.get_untracked().trim()));
        let limit_text = limit.get_untracked();
        let speed = limit_text.trim().parse::<f64>().ok();
        if editing_id.is_some() || speed.is_some() {
            body.insert("speed_limit_kmh".into(), json!(speed));
        }
        if let Some(shape) = &shape {
            let (geometry, radius) = shape.to_geojson();
            body.insert("geometry".into(), geometry);
            body.insert("radius_m".into(), json!(radius));
        }
        if editing_id.is_none() && shape.is_none() {
            error.set(Some("Draw the geofence on the map first.".into()));
            return;
        }
        spawn_local(async move {
            let result = match &editing_id {
                Some(id) => {
                    client
                        .patch::<_, Value>(&format!("/api/v1/geofences/{}", api::encode(id)), &body)
                        .await
                }
                None => client.post::<_, Value>("/api/v1/geofences", &body).await,
            };
            match result {
                Ok(_) => {
                    error.set(None);
                    reset();
                    reload();
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    let remove = move |id: String| {
        if !window()
            .confirm_with_message("Delete this geofence?")
            .unwrap_or(false)
        {
            return;
        }
        spawn_local(async move {
            match client
                .delete(&format!("/api/v1/geofences/{}", api::encode(&id)))
                .await
            {
                Ok(()) => reload(),
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    let edit = move |fence: Geofence| {
        editing.set(Some(fence.id));
        name.set(fence.name);
        limit.set(
            fence
                .speed_limit_kmh
                .map(|l| l.to_string())
                .unwrap_or_default(),
        );
        layers.draft.set(None);
        layers.tool.set(Tool::Pan);
    };
    let drawing = move || layers.tool.get() != Tool::Pan || editing.with(Option::is_some);
    let hint = move || match (layers.tool.get(), layers.draft.get()) {
        (Tool::Circle, None) => "Press at the centre and drag out the radius.",
        (Tool::Circle, Some(_)) => "Drag again to redraw it, or name it and save.",
        (Tool::Polygon, Some(Draft::Polygon(c))) if c.len() >= 3 => {
            "Click to add corners; name it and save when done."
        }
        (Tool::Polygon, _) => "Click each corner on the map (three at least).",
        (Tool::Pan, _) => {
            "Draw a circle or polygon to give this geofence a new shape, or just rename it."
        }
    };

    view! {
        <section class="geofences" aria-label="Geofences">
            <Show when=move || auth.can_operate()>
                <div class="tools">
                    <button data-testid="geofence-draw-circle" class:active=move || layers.tool.get() == Tool::Circle
                        on:click=move |_| draw(Tool::Circle)>"Draw circle"</button>
                    <button data-testid="geofence-draw-polygon" class:active=move || layers.tool.get() == Tool::Polygon
                        on:click=move |_| draw(Tool::Polygon)>"Draw polygon"</button>
                </div>
                <Show when=drawing>
                    <div class="geofence-form">
                        <p class="hint">{hint}</p>
                        <label>"Name"
                            <input data-testid="geofence-name" prop:value=move || name.get()
                                on:input=move |ev| name.set(event_target_value(&ev))/>
                        </label>
                        <label>"Speed limit (km/h, optional)"
                            <input data-testid="geofence-limit" inputmode="numeric" prop:value=move || limit.get()
                                on:input=move |ev| limit.set(event_target_value(&ev))/>
                        </label>
                        <button data-testid="geofence-save" on:click=save>"Save"</button>
                        <button on:click=move |_| reset()>"Cancel"</button>
                    </div>
                </Show>
            </Show>
            {move || error.get().map(|e| view! { <p class="error" role="alert" data-testid="geofence-error">{e}</p> })}
            <ul class="geofence-list">
                {move || fences.get().into_iter().map(|fence| {
                    let kind = if fence.radius_m.is_some() { "circle" } else { "polygon" };
                    let detail = match (fence.radius_m, fence.speed_limit_kmh) {
                        (Some(r), Some(l)) => format!("{kind}, {r:.0} m, limit {l:.0} km/h"),
                        (Some(r), None) => format!("{kind}, {r:.0} m"),
                        (None, Some(l)) => format!("{kind}, limit {l:.0} km/h"),
                        (None, None) => kind.to_owned(),
                    };
                    let (id, chosen) = (fence.id.clone(), fence.clone());
                    view! {
                        <li data-testid="geofence-row" data-geofence=fence.id.clone()>
                            <span class="name">{fence.name.clone()}</span>
                            <span class="detail">{detail}</span>
                            <Show when=move || auth.can_operate()>
                                {
                                    let (id, chosen) = (id.clone(), chosen.clone());
                                    view! {
                                        <button data-testid="geofence-edit" on:click=move |_| edit(chosen.clone())>"Edit"</button>
                                        <button data-testid="geofence-delete" on:click=move |_| remove(id.clone())>"Delete"</button>
                                    }
                                }
                            </Show>
                        </li>
                    }
                }).collect_view()}
            </ul>
        </section>
    }
}

/// The map layer of `fences`.
fn shapes(fences: &[Geofence]) -> Vec<(String, Shape)> {
    fences
        .iter()
        .filter_map(|g| Some((g.id.clone(), Shape::from_geojson(&g.geometry, g.radius_m)?)))
        .collect()
}

/// Puts the catalog's geofences on the map (at login, before anyone opens
/// the geofence list).
pub fn show_on_map(client: Client, layers: Layers) {
    spawn_local(async move {
        match load(client).await {
            Ok(list) => layers.geofences.set(shapes(&list)),
            Err(error) => leptos::logging::warn!("geofences: {error}"),
        }
    });
}

async fn load(client: Client) -> Result<Vec<Geofence>, api::ApiError> {
    let (all, _) = client
        .pages("/api/v1/geofences?limit=1000", usize::MAX)
        .await?;
    Ok(all)
}
