//! The login page: user name and password against `POST /api/v1/auth/login`.

use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::SubmitEvent;

use crate::api;
use crate::session::{Auth, Session};

#[component]
pub fn Login() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        error.set(None);
        let (name, pass) = (username.get_untracked(), password.get_untracked());
        spawn_local(async move {
            match log_in(&name, &pass).await {
                Ok(session) => auth.begin(session),
                Err(message) => {
                    password.set(String::new());
                    error.set(Some(message));
                }
            }
            busy.set(false);
        });
    };
    view! {
        <div class="login">
            <form on:submit=submit aria-labelledby="login-title">
                <h1 id="login-title">"Drover"</h1>
                {move || auth.notice.get().map(|n| view! {
                    <p class="notice" role="status" data-testid="login-notice">{n}</p>
                })}
                <label>"User name"
                    <input
                        data-testid="login-username"
                        autocomplete="username"
                        required
                        prop:value=move || username.get()
                        on:input=move |ev| username.set(event_target_value(&ev))
                    />
                </label>
                <label>"Password"
                    <input
                        type="password"
                        data-testid="login-password"
                        autocomplete="current-password"
                        required
                        prop:value=move || password.get()
                        on:input=move |ev| password.set(event_target_value(&ev))
                    />
                </label>
                {move || error.get().map(|e| view! {
                    <p class="error" role="alert" data-testid="login-error">{e}</p>
                })}
                <button type="submit" data-testid="login-submit" disabled=move || busy.get()>
                    {move || if busy.get() { "Logging in…" } else { "Log in" }}
                </button>
            </form>
        </div>
    }
}

async fn log_in(username: &str, password: &str) -> Result<Session, String> {
    let token = api::login(username, password)
        .await
        .map_err(|e| e.to_string())?;
    let me = api::me(&token.token).await.map_err(|e| e.to_string())?;
    Ok(Session {
        token: token.token,
        username: me.name,
        role: me.role,
        expires_ms: js_sys::Date::parse(&token.expires_at),
    })
}
