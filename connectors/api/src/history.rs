//! What the API needs from a history backend. The node implements it for the
//! embedded store and InfluxDB; the API does not know either.

use std::future::Future;
use std::pin::Pin;

use drover_engine::systems::alerts::{AlertState, AlertSummary};
use drover_engine::systems::trips::TripSummary;
use drover_protocols::model::Record;

/// A boxed future, so backends can sit behind one `dyn History`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One page request of a device's positions.
#[derive(Debug, Clone, Copy)]
pub struct PositionQuery<'a> {
    pub device: &'a str,
    /// Inclusive, ms since the epoch.
    pub from_ms: i64,
    /// Exclusive, ms since the epoch.
    pub to_ms: i64,
    pub limit: usize,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<&'a str>,
}

/// Positions in ascending time, and where the next page starts (`None`: last page).
#[derive(Debug, Clone, Default)]
pub struct PositionPage {
    pub positions: Vec<Record>,
    pub next_cursor: Option<String>,
}

/// One page request of alerts, by opening time.
#[derive(Debug, Clone, Copy)]
pub struct AlertQuery<'a> {
    pub device: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub state: Option<AlertState>,
    /// Inclusive, ms since the epoch.
    pub from_ms: i64,
    /// Exclusive, ms since the epoch.
    pub to_ms: i64,
    pub limit: usize,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<&'a str>,
}

impl AlertQuery<'_> {
    /// Whether `alert` passes the query's filters (not its range).
    pub fn keeps(&self, alert: &AlertSummary) -> bool {
        self.device.is_none_or(|d| alert.device.as_str() == d)
            && self.kind.is_none_or(|k| alert.kind == k)
            && self.state.is_none_or(|s| alert.state == s)
    }
}

/// Alerts in opening order, and where the next page starts (`None`: last page).
#[derive(Debug, Clone, Default)]
pub struct AlertPage {
    pub alerts: Vec<AlertSummary>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    #[error("invalid cursor: {0}")]
    BadCursor(String),
    #[error("history backend unavailable: {0}")]
    Unavailable(String),
}

/// A history backend: the embedded store or InfluxDB.
pub trait History: Send + Sync + 'static {
    fn positions<'a>(
        &'a self,
        query: PositionQuery<'a>,
    ) -> BoxFuture<'a, Result<PositionPage, HistoryError>>;

    /// The newest position of one device.
    fn latest<'a>(&'a self, device: &'a str)
    -> BoxFuture<'a, Result<Option<Record>, HistoryError>>;

    /// The newest position of every device the backend knows.
    fn latest_all(&self) -> BoxFuture<'_, Result<Vec<(String, Record)>, HistoryError>>;

    /// `device`'s closed trips that started in `[from_ms, to_ms)`, in start
    /// order, at most `limit`.
    fn trips<'a>(
        &'a self,
        device: &'a str,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<TripSummary>, HistoryError>>;

    /// Alerts' newest stored states, a page at a time.
    fn alerts<'a>(
        &'a self,
        query: AlertQuery<'a>,
    ) -> BoxFuture<'a, Result<AlertPage, HistoryError>>;

    /// One alert's newest stored state.
    fn alert<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<AlertSummary>, HistoryError>>;
}
