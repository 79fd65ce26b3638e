//! What the API needs from a history backend, and the two backends: the
//! embedded store ([`Embedded`]) and InfluxDB ([`Influx`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use drover_protocols::model::Record;
use drover_store::history as store;
use drover_store::influxdb::InfluxClient;

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
}

/// The embedded history store. Its reads block, so they run on tokio's
/// blocking threads.
pub struct Embedded(pub Arc<store::History>);

fn store_error(error: store::HistoryError) -> HistoryError {
    match error {
        store::HistoryError::InvalidCursor { .. } => HistoryError::BadCursor(error.to_string()),
        other => HistoryError::Unavailable(other.to_string()),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, HistoryError> + Send + 'static,
) -> Result<T, HistoryError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|panic| HistoryError::Unavailable(format!("history read panicked: {panic}")))?
}

impl History for Embedded {
    fn positions<'a>(
        &'a self,
        query: PositionQuery<'a>,
    ) -> BoxFuture<'a, Result<PositionPage, HistoryError>> {
        let store = Arc::clone(&self.0);
        let device = query.device.to_owned();
        let cursor = query.cursor.map(str::to_owned);
        Box::pin(blocking(move || {
            let cursor = cursor
                .map(|c| c.parse::<store::PageCursor>())
                .transpose()
                .map_err(store_error)?;
            let page = store
                .positions(
                    &device,
                    query.from_ms,
                    query.to_ms,
                    query.limit,
                    cursor.as_ref(),
                )
                .map_err(store_error)?;
            Ok(PositionPage {
                positions: page.records.into_iter().map(|r| r.record).collect(),
                next_cursor: page.next.map(|c| c.to_string()),
            })
        }))
    }

    fn latest<'a>(
        &'a self,
        device: &'a str,
    ) -> BoxFuture<'a, Result<Option<Record>, HistoryError>> {
        let store = Arc::clone(&self.0);
        let device = device.to_owned();
        Box::pin(blocking(move || {
            Ok(store
                .latest(&device)
                .map_err(store_error)?
                .map(|r| r.record))
        }))
    }

    fn latest_all(&self) -> BoxFuture<'_, Result<Vec<(String, Record)>, HistoryError>> {
        let store = Arc::clone(&self.0);
        Box::pin(blocking(move || {
            Ok(store
                .latest_all()
                .map_err(store_error)?
                .into_iter()
                .map(|(device, r)| (device.as_str().to_owned(), r.record))
                .collect())
        }))
    }
}

/// InfluxDB, read with InfluxQL. The cursor is the time (ms) of the last
/// position of the previous page: a device has one position per ms there.
pub struct Influx(pub InfluxClient);

fn influx_error(error: drover_store::influxdb::InfluxError) -> HistoryError {
    HistoryError::Unavailable(error.to_string())
}

impl History for Influx {
    fn positions<'a>(
        &'a self,
        query: PositionQuery<'a>,
    ) -> BoxFuture<'a, Result<PositionPage, HistoryError>> {
        Box::pin(async move {
            let after = query
                .cursor
                .map(|c| {
                    c.parse::<i64>()
                        .map_err(|_| HistoryError::BadCursor(format!("{c:?} is not a page cursor")))
                })
                .transpose()?;
            let positions = self
                .0
                .positions(query.device, query.from_ms, query.to_ms, query.limit, after)
                .await
                .map_err(influx_error)?;
            let next_cursor = (positions.len() == query.limit)
                .then(|| positions.last().map(|r| r.time_ms.to_string()))
                .flatten();
            Ok(PositionPage {
                positions,
                next_cursor,
            })
        })
    }

    fn latest<'a>(
        &'a self,
        device: &'a str,
    ) -> BoxFuture<'a, Result<Option<Record>, HistoryError>> {
        Box::pin(async move { self.0.latest_position(device).await.map_err(influx_error) })
    }

    fn latest_all(&self) -> BoxFuture<'_, Result<Vec<(String, Record)>, HistoryError>> {
        Box::pin(async move { self.0.latest_positions().await.map_err(influx_error) })
    }
}
