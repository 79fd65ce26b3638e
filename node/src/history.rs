//! The API's history reads ([`drover_api::history::History`]) on the two
//! backends: the embedded store ([`Embedded`]) and InfluxDB ([`Influx`]).

use std::sync::Arc;

use drover_api::history::{
    AlertPage, AlertQuery, BoxFuture, History, HistoryError, PositionPage, PositionQuery,
};
use drover_engine::systems::alerts::AlertSummary;
use drover_engine::systems::trips::TripSummary;
use drover_history as store;
use drover_influxdb::{InfluxClient, RowQuery};
use drover_protocols::model::Record;

use crate::{alerts, trips};

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

    fn trips<'a>(
        &'a self,
        device: &'a str,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<TripSummary>, HistoryError>> {
        let store = Arc::clone(&self.0);
        let device = device.to_owned();
        Box::pin(blocking(move || {
            let stored = store
                .trips(&device, from_ms, to_ms, limit)
                .map_err(store_error)?;
            stored
                .iter()
                .map(|bytes| {
                    trips::decode(bytes).map_err(|error| {
                        HistoryError::Unavailable(format!(
                            "the history store holds an unreadable trip of {device}: {error}"
                        ))
                    })
                })
                .collect()
        }))
    }

    fn alerts<'a>(
        &'a self,
        query: AlertQuery<'a>,
    ) -> BoxFuture<'a, Result<AlertPage, HistoryError>> {
        let store = Arc::clone(&self.0);
        let (device, kind) = (
            query.device.map(str::to_owned),
            query.kind.map(str::to_owned),
        );
        let (state, cursor) = (query.state, query.cursor.map(str::to_owned));
        let (from_ms, to_ms, limit) = (query.from_ms, query.to_ms, query.limit);
        Box::pin(blocking(move || {
            let query = AlertQuery {
                device: device.as_deref(),
                kind: kind.as_deref(),
                state,
                from_ms,
                to_ms,
                limit,
                cursor: cursor.as_deref(),
            };
            // Decoded once, as the store pages: unreadable entries are kept,
            // to be reported below.
            let mut decoded = Vec::new();
            let keep = |bytes: &[u8]| match alerts::decode(bytes) {
                Ok(alert) if !query.keeps(&alert) => false,
                read => {
                    decoded.push(read);
                    true
                }
            };
            let page = store
                .alerts(from_ms, to_ms, query.cursor, limit, keep)
                .map_err(store_error)?;
            // The store looks one entry past a full page.
            decoded.truncate(page.alerts.len());
            Ok(AlertPage {
                alerts: decoded
                    .into_iter()
                    .map(|read| read.map_err(unreadable_alert))
                    .collect::<Result<_, _>>()?,
                next_cursor: page.next,
            })
        }))
    }

    fn alert<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<AlertSummary>, HistoryError>> {
        let store = Arc::clone(&self.0);
        let id = id.to_owned();
        Box::pin(blocking(move || {
            store
                .alert(&id)
                .map_err(store_error)?
                .map(|bytes| decode_alert(&bytes))
                .transpose()
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

fn decode_alert(bytes: &[u8]) -> Result<AlertSummary, HistoryError> {
    alerts::decode(bytes).map_err(unreadable_alert)
}

fn unreadable_alert(error: serde_json::Error) -> HistoryError {
    HistoryError::Unavailable(format!(
        "the history store holds an unreadable alert: {error}"
    ))
}

/// InfluxDB, read with InfluxQL. The cursor is the time (ms) of the last
/// position of the previous page: a device has one position per ms there.
pub struct Influx(pub InfluxClient);

/// An InfluxDB page cursor: a number (a time, or an offset).
fn influx_cursor<T: std::str::FromStr>(cursor: Option<&str>) -> Result<Option<T>, HistoryError> {
    cursor
        .map(|c| {
            c.parse()
                .map_err(|_| HistoryError::BadCursor(format!("{c:?} is not a page cursor")))
        })
        .transpose()
}

fn influx_error(error: drover_influxdb::InfluxError) -> HistoryError {
    HistoryError::Unavailable(error.to_string())
}

impl History for Influx {
    fn positions<'a>(
        &'a self,
        query: PositionQuery<'a>,
    ) -> BoxFuture<'a, Result<PositionPage, HistoryError>> {
        Box::pin(async move {
            let after: Option<i64> = influx_cursor(query.cursor)?;
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

    fn trips<'a>(
        &'a self,
        device: &'a str,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<TripSummary>, HistoryError>> {
        Box::pin(async move {
            let rows = self
                .0
                .rows(RowQuery {
                    measurement: trips::MEASUREMENT,
                    equal: &[("device", device)],
                    from_ms,
                    to_ms,
                    limit,
                    offset: 0,
                })
                .await
                .map_err(influx_error)?;
            rows.iter()
                .map(|row| {
                    trips::from_row(row).ok_or_else(|| {
                        HistoryError::Unavailable(format!(
                            "InfluxDB holds a trip of {device} at {} without all its fields",
                            row.time_ms
                        ))
                    })
                })
                .collect()
        })
    }
    fn alerts<'a>(
        &'a self,
        query: AlertQuery<'a>,
    ) -> BoxFuture<'a, Result<AlertPage, HistoryError>> {
        Box::pin(async move {
            let offset: usize = influx_cursor(query.cursor)?.unwrap_or(0);
            let mut equal = Vec::new();
            if let Some(device) = query.device {
                equal.push(("device", device));
            }
            if let Some(kind) = query.kind {
                equal.push(("kind", kind));
            }
            if let Some(state) = query.state {
                equal.push(("state", state.as_str()));
            }
            let rows = self
                .0
                .rows(RowQuery {
                    measurement: alerts::MEASUREMENT,
                    equal: &equal,
                    from_ms: query.from_ms,
                    to_ms: query.to_ms,
                    limit: query.limit,
                    offset,
                })
                .await
                .map_err(influx_error)?;
            let alerts: Vec<AlertSummary> =
                rows.iter().map(alert_of_row).collect::<Result<_, _>>()?;
            let next_cursor =
                (alerts.len() == query.limit).then(|| (offset + alerts.len()).to_string());
            Ok(AlertPage {
                alerts,
                next_cursor,
            })
        })
    }

    fn alert<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<AlertSummary>, HistoryError>> {
        Box::pin(async move {
            let rows = self
                .0
                .rows(RowQuery {
                    measurement: alerts::MEASUREMENT,
                    equal: &[("id", id)],
                    // InfluxDB's times end in 2262.
                    from_ms: 0,
                    to_ms: INFLUX_TIME_END_MS,
                    limit: 1,
                    offset: 0,
                })
                .await
                .map_err(influx_error)?;
            rows.first().map(alert_of_row).transpose()
        })
    }
}

/// Far in the future, within InfluxDB's time range (ns in an i64).
const INFLUX_TIME_END_MS: i64 = 9_000_000_000_000;

fn alert_of_row(row: &drover_influxdb::Row) -> Result<AlertSummary, HistoryError> {
    alerts::from_row(row).ok_or_else(|| {
        HistoryError::Unavailable(format!(
            "InfluxDB holds an alert at {} without all its fields",
            row.time_ms
        ))
    })
}
