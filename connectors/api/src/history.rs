//! What the API needs from a history backend. The node implements it for the
//! embedded store and InfluxDB; the API does not know either.

use std::future::Future;
use std::pin::Pin;

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
}
