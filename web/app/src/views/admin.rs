//! Administration: registering, editing and disabling devices (and
//! registering the unknown ones that tried to connect), users and API keys.

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{self, Client, Device, Groups, Page};
use crate::format;

#[component]
pub fn Admin() -> impl IntoView {
    view! {
        <section class="admin" aria-label="Administration">
            <Devices/>
            <Unknown/>
            <Users/>
            <Keys/>
        </section>
    }
}

/// A request's outcome for the section that made it.
fn report(error: RwSignal<Option<String>>, result: Result<(), api::ApiError>) {
    error.set(result.err().map(|e| e.to_string()));
}

#[component]
fn Devices() -> impl IntoView {
    let client = expect_context::<Client>();
    let query = RwSignal::new(String::new());
    let devices = RwSignal::new(Vec::<Device>::new());
    let groups = RwSignal::new(Vec::<String>::new());
    let error = RwSignal::new(None::<String>);
    let (id, name, group, limit) = (
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
    );
    let reload = move || {
        let q = query.get_untracked();
        spawn_local(async move {
            let path = format!("/api/v1/devices?limit=100&q={}", api::encode(q.trim()));
            match client.get::<Page<Device>>(&path).await {
                Ok(page) => devices.set(page.items),
                Err(e) => error.set(Some(e.to_string())),
            }
            if let Ok(list) = client.get::<Groups>("/api/v1/groups?limit=1000").await {
                groups.set(list.groups.into_iter().map(|g| g.id).collect());
            }
        });
    };
    reload();
    let register = move |_| {
        let mut body = json!({"id": id.get_untracked().trim()});
        for (key, value) in [
            ("name", name.get_untracked()),
            ("group", group.get_untracked()),
        ] {
            if !value.trim().is_empty() {
                body[key] = json!(value.trim());
            }
        }
        if let Ok(limit) = limit.get_untracked().trim().parse::<f64>() {
            body["speed_limit_kmh"] = json!(limit);
        }
        spawn_local(async move {
            let result = client
                .post::<_, Value>("/api/v1/devices", &body)
                .await
                .map(drop);
            if result.is_ok() {
                for field in [id, name, group, limit] {
                    field.set(String::new());
                }
                reload();
            }
            report(error, result);
        });
    };
    let patch = move |device: String, body: Value| {
        spawn_local(async move {
            let path = format!("/api/v1/devices/{}", api::encode(&device));
            let result = client.patch::<_, Value>(&path, &body).await.map(drop);
            if result.is_ok() {
                reload();
            }
            report(error, result);
        });
    };
    let remove = move |device: String| {
        if !window()
            .confirm_with_message(&format!("Unregister {device}? Its history stays."))
            .unwrap_or(false)
        {
            return;
        }
        spawn_local(async move {
            let result = client
                .delete(&format!("/api/v1/devices/{}", api::encode(&device)))
                .await;
            if result.is_ok() {
                reload();
            }
            report(error, result);
        });
    };
    view! {
        <section aria-label="Devices">
            <h3>"Devices"</h3>
            <form class="inline" on:submit=move |ev| { ev.prevent_default(); register(()) }>
                <input aria-label="IMEI" placeholder="IMEI" data-testid="admin-device-id" required
                    prop:value=move || id.get() on:input=move |ev| id.set(event_target_value(&ev))/>
                <input aria-label="Name" placeholder="Name" data-testid="admin-device-name"
                    prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev))/>
                <select aria-label="Group" on:change=move |ev| group.set(event_target_value(&ev))>
                    <option value="">"No group"</option>
                    {move || groups.get().into_iter().map(|g| view! { <option value=g.clone()>{g.clone()}</option> }).collect_view()}
                </select>
                <input aria-label="Speed limit (km/h)" placeholder="Limit km/h" inputmode="numeric"
                    prop:value=move || limit.get() on:input=move |ev| limit.set(event_target_value(&ev))/>
                <button type="submit" data-testid="admin-device-register">"Register"</button>
            </form>
            <input type="search" aria-label="Search devices" placeholder="Search IMEI or name"
                prop:value=move || query.get()
                on:input=move |ev| { query.set(event_target_value(&ev)); reload(); }/>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <table>
                <thead><tr><th>"IMEI"</th><th>"Name"</th><th>"Group"</th><th>"Status"</th><th></th></tr></thead>
                <tbody>
                    {move || devices.get().into_iter().map(|d| {
                        let (rename, toggle, drop_id, register_id) = (d.id.clone(), d.id.clone(), d.id.clone(), d.id.clone());
                        let disabled = d.disabled;
                        let current = d.name.clone().unwrap_or_default();
                        view! {
                            <tr data-testid="admin-device-row" data-device=d.id.clone()>
                                <td>{d.id.clone()}</td>
                                <td>{d.name.clone().unwrap_or_default()}</td>
                                <td>{d.group.clone().unwrap_or_default()}</td>
                                <td>{if !d.registered { "not registered".to_owned() } else if disabled { "disabled".to_owned() } else { d.status.clone() }}</td>
                                <td class="actions">
                                    {if d.registered {
                                        view! {
                                            <button on:click=move |_| {
                                                if let Ok(Some(new)) = window().prompt_with_message_and_default("Name", &current) {
                                                    patch(rename.clone(), json!({"name": new}));
                                                }
                                            }>"Rename"</button>
                                            <button data-testid="admin-device-disable"
                                                on:click=move |_| patch(toggle.clone(), json!({"disabled": !disabled}))>
                                                {if disabled { "Enable" } else { "Disable" }}
                                            </button>
                                            <button on:click=move |_| remove(drop_id.clone())>"Unregister"</button>
                                        }.into_any()
                                    } else {
                                        view! {
                                            <button on:click=move |_| {
                                                let body = json!({"id": register_id.clone()});
                                                spawn_local(async move {
                                                    let result = client.post::<_, Value>("/api/v1/devices", &body).await.map(drop);
                                                    if result.is_ok() { reload(); }
                                                    report(error, result);
                                                });
                                            }>"Register"</button>
                                        }.into_any()
                                    }}
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
struct UnknownDevice {
    id: String,
    protocol: String,
    peer: String,
    last_seen: String,
    attempts: u64,
}

#[derive(Deserialize)]
struct UnknownDevices {
    devices: Vec<UnknownDevice>,
}

#[component]
fn Unknown() -> impl IntoView {
    let client = expect_context::<Client>();
    let devices = RwSignal::new(Vec::<UnknownDevice>::new());
    let error = RwSignal::new(None::<String>);
    let reload = move || {
        spawn_local(async move {
            match client
                .get::<UnknownDevices>("/api/v1/devices/unknown")
                .await
            {
                Ok(list) => devices.set(list.devices),
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    reload();
    let register = move |id: String| {
        spawn_local(async move {
            let result = client
                .post::<_, Value>("/api/v1/devices", &json!({"id": id}))
                .await
                .map(drop);
            if result.is_ok() {
                reload();
            }
            report(error, result);
        });
    };
    view! {
        <section aria-label="Unknown devices">
            <h3>"Unknown devices" <button class="small" on:click=move |_| reload()>"Refresh"</button></h3>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <Show when=move || devices.with(Vec::is_empty)>
                <p class="empty">"No unregistered tracker has tried to connect."</p>
            </Show>
            <ul>
                {move || devices.get().into_iter().map(|d| {
                    let id = d.id.clone();
                    view! {
                        <li data-testid="unknown-row" data-device=d.id.clone()>
                            <span>{d.id.clone()}</span>
                            <span class="detail">{format!("{} from {}, {} attempts, last {}", d.protocol, d.peer, d.attempts, format::time(&d.last_seen))}</span>
                            <button data-testid="unknown-register" on:click=move |_| register(id.clone())>"Register"</button>
                        </li>
                    }
                }).collect_view()}
            </ul>
        </section>
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
struct User {
    username: String,
    role: String,
}

#[derive(Deserialize)]
struct Users {
    users: Vec<User>,
}

const ROLES: [&str; 3] = ["viewer", "operator", "admin"];

fn role_options(selected: &str) -> impl IntoView + use<> {
    ROLES
        .into_iter()
        .map(|r| view! { <option value=r selected=r == selected>{r}</option> })
        .collect_view()
}

#[component]
fn Users() -> impl IntoView {
    let client = expect_context::<Client>();
    let users = RwSignal::new(Vec::<User>::new());
    let error = RwSignal::new(None::<String>);
    let (name, password, role) = (
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new("viewer".to_owned()),
    );
    let reload = move || {
        spawn_local(async move {
            match client.get::<Users>("/api/v1/users").await {
                Ok(list) => users.set(list.users),
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    reload();
    let create = move || {
        let body = json!({"username": name.get_untracked(), "password": password.get_untracked(), "role": role.get_untracked()});
        spawn_local(async move {
            let result = client
                .post::<_, Value>("/api/v1/users", &body)
                .await
                .map(drop);
            if result.is_ok() {
                name.set(String::new());
                password.set(String::new());
                reload();
            }
            report(error, result);
        });
    };
    let set_role = move |user: String, role: String| {
        spawn_local(async move {
            let path = format!("/api/v1/users/{}", api::encode(&user));
            let result = client
                .patch::<_, Value>(&path, &json!({"role": role}))
                .await
                .map(drop);
            reload();
            report(error, result);
        });
    };
    let remove = move |user: String| {
        if !window()
            .confirm_with_message(&format!("Delete user {user}?"))
            .unwrap_or(false)
        {
            return;
        }
        spawn_local(async move {
            let result = client
                .delete(&format!("/api/v1/users/{}", api::encode(&user)))
                .await;
            reload();
            report(error, result);
        });
    };
    view! {
        <section aria-label="Users">
            <h3>"Users"</h3>
            <form class="inline" on:submit=move |ev| { ev.prevent_default(); create() }>
                <input aria-label="User name" placeholder="User name" required autocomplete="off"
                    prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev))/>
                <input aria-label="Password" placeholder="Password (8+ characters)" type="password" required minlength="8" autocomplete="new-password"
                    prop:value=move || password.get() on:input=move |ev| password.set(event_target_value(&ev))/>
                <select aria-label="Role" on:change=move |ev| role.set(event_target_value(&ev))>{role_options("viewer")}</select>
                <button type="submit">"Add user"</button>
            </form>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <ul>
                {move || users.get().into_iter().map(|u| {
                    let (for_role, for_remove) = (u.username.clone(), u.username.clone());
                    view! {
                        <li data-testid="user-row" data-user=u.username.clone()>
                            <span>{u.username.clone()}</span>
                            <select aria-label="Role" on:change=move |ev| set_role(for_role.clone(), event_target_value(&ev))>
                                {role_options(&u.role)}
                            </select>
                            <button on:click=move |_| remove(for_remove.clone())>"Delete"</button>
                        </li>
                    }
                }).collect_view()}
            </ul>
        </section>
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
struct Key {
    id: String,
    name: String,
    role: String,
    created: String,
}

#[derive(Deserialize)]
struct Keys {
    keys: Vec<Key>,
}

#[derive(Deserialize)]
struct NewKey {
    key: String,
}

#[component]
fn Keys() -> impl IntoView {
    let client = expect_context::<Client>();
    let keys = RwSignal::new(Vec::<Key>::new());
    let error = RwSignal::new(None::<String>);
    let fresh = RwSignal::new(None::<String>);
    let (name, role) = (
        RwSignal::new(String::new()),
        RwSignal::new("viewer".to_owned()),
    );
    let reload = move || {
        spawn_local(async move {
            match client.get::<Keys>("/api/v1/keys").await {
                Ok(list) => keys.set(list.keys),
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    reload();
    let create = move || {
        let body = json!({"name": name.get_untracked(), "role": role.get_untracked()});
        spawn_local(async move {
            match client.post::<_, NewKey>("/api/v1/keys", &body).await {
                Ok(created) => {
                    fresh.set(Some(created.key));
                    name.set(String::new());
                    error.set(None);
                    reload();
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    let remove = move |id: String| {
        spawn_local(async move {
            let result = client
                .delete(&format!("/api/v1/keys/{}", api::encode(&id)))
                .await;
            reload();
            report(error, result);
        });
    };
    view! {
        <section aria-label="API keys">
            <h3>"API keys"</h3>
            <form class="inline" on:submit=move |ev| { ev.prevent_default(); create() }>
                <input aria-label="Key name" placeholder="What it is for" required
                    prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev))/>
                <select aria-label="Role" on:change=move |ev| role.set(event_target_value(&ev))>{role_options("viewer")}</select>
                <button type="submit">"Create key"</button>
            </form>
            {move || fresh.get().map(|k| view! {
                <p class="notice" role="status">"The new key, shown only now: " <code data-testid="new-key">{k}</code></p>
            })}
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <ul>
                {move || keys.get().into_iter().map(|k| {
                    let id = k.id.clone();
                    view! {
                        <li data-testid="key-row">
                            <span>{k.name.clone()}</span>
                            <span class="detail">{format!("{} · {} · created {}", k.id, k.role, format::time(&k.created))}</span>
                            <button on:click=move |_| remove(id.clone())>"Revoke"</button>
                        </li>
                    }
                }).collect_view()}
            </ul>
        </section>
    }
}
