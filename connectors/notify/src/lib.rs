//! # drover-notify
//!
//! Notifications of alerts: which [`NotificationRule`]s an alert matches
//! ([`matches`]), and delivery by webhook and email, retried with backoff
//! on a pool of workers ([`Notifier`]) so that nothing upstream (the
//! engine, the analytics consumer) ever waits for a receiver. MQTT
//! notifications are the node's, through its own publisher.
//!
//! * **Webhook**: an HTTP or HTTPS POST (rustls; the system's roots and
//!   the operator's `ca_file`) of the alert's JSON with
//!   `X-Drover-Signature: sha256=<hex HMAC-SHA256 of the body>` when the
//!   rule has a secret (the receiver recomputes it to trust the sender),
//!   `X-Drover-Event: alert` and `X-Drover-Delivery` (the alert id and
//!   state). Network errors, 429 and 5xx are retried (`attempts`, doubling
//!   waits); other answers are final.
//! * **Email**: a plain-text message over SMTP to each address: plain,
//!   STARTTLS or TLS (`smtp.tls`).
//! * **Bounded**: deliveries wait in a queue of `queue` entries; past it
//!   they are dropped and counted ([`NotifyStats::dropped`]).
//! * **Durable**: with a spool directory, each delivery is a file until it
//!   is delivered or given up, and a restart sends what was left (at least
//!   once).

mod deliver;
mod email;
mod rules;
mod spool;
mod webhook;

pub use deliver::{Notifier, NotifyConfig, NotifyStats, SmtpConfig, SmtpTls};
pub use drover_catalog::{Channel, NotificationRule};
pub use rules::{Notice, matches};
pub use webhook::signature;

/// Why a notifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("invalid notification settings: {0}")]
    Config(String),
}
