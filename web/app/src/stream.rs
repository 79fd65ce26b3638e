//! The live stream (`GET /api/v1/stream`) feeding the fleet.
//!
//! Each connection starts with the whole fleet's snapshot, so after a drop
//! the dashboard reconnects (waiting 1 s, then longer up to 15 s) and the
//! new snapshot resyncs whatever it missed; alerts are read again from the
//! API at the same time. A connection refused for the credential shows as
//! a 401 on the next API call, which ends the session.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use crate::api::{Alert, Client, Me};
use crate::fleet::Live;
use crate::session::Auth;

/// The stream's messages come gathered over this period, one browser
/// event each instead of one per position (10,000 a second for 10,000
/// trackers); the map redraws data at most 10 times a second anyway.
const BATCH_MS: u32 = 100;
const FIRST_RETRY_MS: u32 = 1_000;
const MAX_RETRY_MS: u32 = 15_000;
/// Alerts read on (re)connect: pages of a state, and at most this many pages.
const ALERT_PAGE: usize = 1_000;
const ALERT_PAGES: usize = 20;

/// Whether the dashboard is live, shown in the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Live,
    /// Dropped; the next attempt is due in this many seconds.
    Retrying(u32),
}

/// The open stream; dropping it (logging out) closes it for good.
pub struct Stream {
    inner: Rc<RefCell<Inner>>,
}

struct Inner {
    live: Live,
    auth: Auth,
    client: Client,
    link: RwSignal<Link>,
    socket: Option<Socket>,
    retry_ms: u32,
    stopped: bool,
}

/// A WebSocket and the callbacks it holds (dropped with it).
struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}

impl Stream {
    pub fn open(live: Live, auth: Auth, client: Client, link: RwSignal<Link>) -> Stream {
        let inner = Rc::new(RefCell::new(Inner {
            live,
            auth,
            client,
            link,
            socket: None,
            retry_ms: FIRST_RETRY_MS,
            stopped: false,
        }));
        connect(&inner);
        Stream { inner }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let mut inner = self.inner.borrow_mut();
        inner.stopped = true;
        inner.socket = None;
    }
}

fn connect(inner: &Rc<RefCell<Inner>>) {
    let (token, link) = {
        let state = inner.borrow();
        if state.stopped {
            return;
        }
        (state.auth.token(), state.link)
    };
    let Some(token) = token else { return };
    link.set(Link::Connecting);
    let location = window().location();
    let scheme = match location.protocol().as_deref() {
        Ok("https:") => "wss",
        _ => "ws",
    };
    let host = location.host().unwrap_or_default();
    let url = format!(
        "{scheme}://{host}/api/v1/stream?token={}&batch_ms={BATCH_MS}&snapshot=summary",
        crate::api::encode(&token)
    );
    let ws = match WebSocket::new(&url) {
        Ok(ws) => ws,
        Err(_) => return retry(inner),
    };

    let on_open = {
        let inner = Rc::clone(inner);
        Closure::<dyn FnMut()>::new(move || {
            let mut state = inner.borrow_mut();
            state.retry_ms = FIRST_RETRY_MS;
            state.link.set(Link::Live);
            state.live.update(|f| f.synced = false);
            load_alerts(state.live, state.client);
        })
    };
    let on_message = {
        let live = inner.borrow().live;
        Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let Some(text) = event.data().as_string() else {
                return;
            };
            if let Err(error) = live
                .fleet
                .try_update_value(|fleet| fleet.apply_text(&text))
                .transpose()
            {
                leptos::logging::warn!("stream: unreadable message: {error}");
            }
        })
    };
    let on_close = {
        let inner = Rc::clone(inner);
        Closure::<dyn FnMut(CloseEvent)>::new(move |_event: CloseEvent| {
            // This callback belongs to the socket: drop it once it returns.
            let closed = inner.borrow_mut().socket.take();
            spawn_local(async move { drop(closed) });
            // A refused handshake looks like any drop to a browser: ask the
            // API, whose 401 would end the session.
            let client = inner.borrow().client;
            spawn_local(async move {
                let _ = client.get::<Me>("/api/v1/auth/me").await;
            });
            retry(&inner);
        })
    };
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    inner.borrow_mut().socket = Some(Socket {
        ws,
        _on_open: on_open,
        _on_message: on_message,
        _on_close: on_close,
    });
}

fn retry(inner: &Rc<RefCell<Inner>>) {
    let wait = {
        let mut state = inner.borrow_mut();
        if state.stopped {
            return;
        }
        let wait = state.retry_ms;
        state.retry_ms = (wait * 2).min(MAX_RETRY_MS);
        state.link.set(Link::Retrying(wait.div_ceil(1_000)));
        wait
    };
    let inner = Rc::clone(inner);
    set_timeout(
        move || connect(&inner),
        Duration::from_millis(u64::from(wait)),
    );
}

/// Reads the alerts not closed yet, replacing what the fleet held.
fn load_alerts(live: Live, client: Client) {
    spawn_local(async move {
        let mut alerts: Vec<Alert> = Vec::new();
        for state in ["open", "acknowledged"] {
            let path = format!("/api/v1/alerts?state={state}&limit={ALERT_PAGE}");
            match client.pages(&path, ALERT_PAGES).await {
                Ok((page, _)) => alerts.extend(page),
                Err(error) => {
                    leptos::logging::warn!("alerts: {error}");
                    return;
                }
            }
        }
        live.update(|fleet| fleet.set_alerts(alerts));
    });
}
