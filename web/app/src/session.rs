//! Who is logged in: the token `POST /api/v1/auth/login` gave, kept in the
//! browser's local storage so a reload stays logged in, and dropped at its
//! expiry or at the first 401 the API answers (a deleted user, a key
//! rotation), which sends the operator back to the login page with a
//! message.

use std::time::Duration;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

const STORAGE_KEY: &str = "drover.session";
const EXPIRED: &str = "Your session has expired. Please log in again.";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub token: String,
    pub username: String,
    pub role: Role,
    /// When the token stops working, ms since the epoch.
    pub expires_ms: f64,
}

/// The API's roles, in the order of what they may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

/// The session and the message the login page shows, shared by context.
#[derive(Clone, Copy)]
pub struct Auth {
    pub session: RwSignal<Option<Session>>,
    pub notice: RwSignal<Option<String>>,
}

impl Auth {
    /// The session a previous page load left, unless it has expired.
    pub fn restore() -> Self {
        let stored = load();
        let notice = stored
            .as_ref()
            .filter(|s| s.expires_ms <= now_ms())
            .map(|_| EXPIRED.to_owned());
        let session = stored.filter(|s| s.expires_ms > now_ms());
        let auth = Auth {
            session: RwSignal::new(None),
            notice: RwSignal::new(notice),
        };
        if let Some(session) = session {
            auth.begin(session);
        } else {
            forget();
        }
        auth
    }

    pub fn begin(&self, session: Session) {
        save(&session);
        let wait = (session.expires_ms - now_ms()).max(0.0);
        self.notice.set(None);
        self.session.set(Some(session));
        let auth = *self;
        // Browsers fire timers late, never early; the check makes a timer
        // left over from an earlier session harmless.
        set_timeout(
            move || {
                let due = auth
                    .session
                    .with_untracked(|s| s.as_ref().is_some_and(|s| s.expires_ms <= now_ms()));
                if due {
                    auth.expire();
                }
            },
            Duration::from_millis(wait.min(f64::from(i32::MAX)) as u64),
        );
    }

    pub fn logout(&self) {
        forget();
        self.notice.set(None);
        self.session.set(None);
    }

    /// The token no longer works: back to the login page, saying why.
    pub fn expire(&self) {
        if self.session.with_untracked(Option::is_some) {
            forget();
            self.notice.set(Some(EXPIRED.to_owned()));
            self.session.set(None);
        }
    }

    pub fn token(&self) -> Option<String> {
        self.session
            .with_untracked(|s| s.as_ref().map(|s| s.token.clone()))
    }

    /// Whether the user may change things (operators and admins).
    pub fn can_operate(&self) -> bool {
        self.session
            .with(|s| s.as_ref().is_some_and(|s| s.role >= Role::Operator))
    }

    pub fn is_admin(&self) -> bool {
        self.session
            .with(|s| s.as_ref().is_some_and(|s| s.role == Role::Admin))
    }
}

pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn storage() -> Option<web_sys::Storage> {
    window().local_storage().ok().flatten()
}

fn load() -> Option<Session> {
    let text = storage()?.get_item(STORAGE_KEY).ok().flatten()?;
    serde_json::from_str(&text).ok()
}

fn save(session: &Session) {
    if let (Some(storage), Ok(text)) = (storage(), serde_json::to_string(session)) {
        // A full or disabled storage only costs the reload.
        let _ = storage.set_item(STORAGE_KEY, &text);
    }
}

fn forget() {
    if let Some(storage) = storage() {
        let _ = storage.remove_item(STORAGE_KEY);
    }
}
