//! The integrator feed: every committed record once, in journal order, a
//! page at a time. An integrator stores the `next` cursor of each page and
//! asks from it, so it takes each record exactly once, across its own
//! restarts and the node's.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use drover_catalog::Role;
use drover_protocols::model::{Attributes, Fix, RecordKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::Api;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Params;
use crate::feed::{FeedError, FeedPage, FeedRecord, FeedSource};
use crate::positions::Timestamp;

/// Records per page when the request does not say, and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1_000;

pub fn routes() -> Router<Api> {
    Router::new().route("/api/v1/feed", get(feed))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct FeedParams {
    /// The `next` of the previous page; absent: from the oldest record the
    /// journal keeps.
    after: Option<String>,
    /// Records per page, 1 to 1000 (default 100).
    limit: Option<usize>,
}

/// A page of the feed.
#[derive(Debug, Serialize, ToSchema)]
struct Page<'a> {
    #[schema(value_type = Vec<Object>)]
    records: Vec<Item<'a>>,
    /// Pass as `after` for the next page; the same as `after` when the page
    /// is empty (nothing new yet).
    next: String,
}

/// One record as the feed shows it.
#[derive(Debug, Serialize)]
struct Item<'a> {
    seq: u64,
    device: &'a str,
    protocol: &'a str,
    time: Timestamp,
    kind: RecordKind,
    /// The fix fields, at the top level; absent for records without one.
    #[serde(flatten)]
    fix: Option<FixView>,
    archived: bool,
    attributes: &'a Attributes,
}

#[derive(Debug, Serialize)]
struct FixView {
    lat: f64,
    lon: f64,
    speed_kmh: f64,
    course_deg: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    altitude_m: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    satellites: Option<u8>,
    valid: bool,
}

impl From<&Fix> for FixView {
    fn from(fix: &Fix) -> Self {
        FixView {
            lat: fix.lat,
            lon: fix.lon,
            speed_kmh: fix.speed_kmh,
            course_deg: fix.course_deg,
            altitude_m: fix.altitude_m,
            satellites: fix.satellites,
            valid: fix.valid,
        }
    }
}

impl<'a> Item<'a> {
    fn of(record: &'a FeedRecord) -> Self {
        let (message, inner) = (&record.message, &record.message.record);
        Item {
            seq: record.seq,
            device: message.device.as_str(),
            protocol: message.protocol,
            time: Timestamp(inner.time_ms),
            kind: inner.kind,
            fix: inner.fix.as_ref().map(FixView::from),
            archived: inner.archived,
            attributes: &inner.attributes,
        }
    }
}

/// Committed records in journal order from `after` (viewer). Cursors are
/// opaque; one older than the journal keeps is 410.
#[utoipa::path(get, path = "/api/v1/feed", tag = "feed", params(FeedParams),
    responses((status = 200, body = Page), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 410, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn feed(
    State(api): State<Api>,
    caller: Caller,
    Params(params): Params<FeedParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Role::Viewer)?;
    read(api.feed.as_ref(), &params).await.map(Json)
}

/// The page `params` asks for, as JSON.
async fn read(source: &dyn FeedSource, params: &FeedParams) -> Result<serde_json::Value, ApiError> {
    let after = params.after.as_deref().map(parse_cursor).transpose()?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be from 1 to {MAX_LIMIT}, not {limit}"
        )));
    }
    let page: FeedPage = source
        .read(after, limit)
        .await
        .map_err(|error| feed_error(error, params.after.as_deref()))?;
    Ok(serde_json::json!(Page {
        records: page.records.iter().map(Item::of).collect(),
        next: page.next.to_string(),
    }))
}

/// A cursor is the journal position of the next record, in decimal.
fn parse_cursor(text: &str) -> Result<u64, ApiError> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse().ok()).flatten().ok_or_else(|| {
        ApiError::BadRequest(format!(
            "after must be the next cursor of a feed page, not {text:?}"
        ))
    })
}

fn feed_error(error: FeedError, after: Option<&str>) -> ApiError {
    match error {
        FeedError::Gone { first } => ApiError::Gone(format!(
            "cursor {} points at records the journal no longer keeps; the feed now starts at \
             cursor {first} (to keep a longer window, raise journal.feed_keep_mb)",
            after.unwrap_or_default()
        )),
        FeedError::Unavailable(_) => ApiError::Unavailable(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::BoxFuture;
    use drover_protocols::model::{DeviceId, DeviceMessage, Record};

    /// Records 10..20 of a journal whose older ones were retired.
    struct Fake;

    const FIRST: u64 = 10;
    const END: u64 = 20;

    impl FeedSource for Fake {
        fn read(
            &self,
            after: Option<u64>,
            limit: usize,
        ) -> BoxFuture<'_, Result<FeedPage, FeedError>> {
            Box::pin(async move {
                let from = after.unwrap_or(FIRST);
                if from < FIRST {
                    return Err(FeedError::Gone { first: FIRST });
                }
                let to = END.min(from.saturating_add(limit as u64)).max(from);
                let records = (from..to).map(record).collect();
                Ok(FeedPage { records, next: to })
            })
        }
    }

    fn record(seq: u64) -> FeedRecord {
        let with_fix = seq.is_multiple_of(2);
        FeedRecord {
            seq,
            message: DeviceMessage {
                device: DeviceId::new("356307042441013"),
                protocol: "gt06",
                record: Record {
                    time_ms: 1_764_000_000_000 + seq as i64,
                    fix: with_fix.then(|| Fix {
                        lat: 52.5,
                        lon: 13.4,
                        ..Fix::default()
                    }),
                    ..Record::default()
                },
            },
        }
    }

    fn params(after: Option<&str>, limit: Option<usize>) -> FeedParams {
        FeedParams {
            after: after.map(str::to_owned),
            limit,
        }
    }

    async fn page(
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<serde_json::Value, ApiError> {
        read(&Fake, &params(after, limit)).await
    }

    #[test]
    fn cursors_are_decimal_positions_and_nothing_else() {
        assert_eq!(parse_cursor("0").ok(), Some(0));
        assert_eq!(parse_cursor("42").ok(), Some(42));
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1.0",
            "0x10",
            "abc",
            "99999999999999999999999",
        ] {
            assert!(
                matches!(parse_cursor(bad), Err(ApiError::BadRequest(_))),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn pages_follow_each_other_from_the_oldest_kept_record() {
        let first = page(None, Some(4)).await.expect("a page");
        let seqs: Vec<u64> = first["records"]
            .as_array()
            .expect("records")
            .iter()
            .filter_map(|r| r["seq"].as_u64())
            .collect();
        assert_eq!(seqs, [10, 11, 12, 13]);
        assert_eq!(first["next"], "14");
        let record = &first["records"][0];
        assert_eq!(record["device"], "356307042441013");
        assert_eq!(record["protocol"], "gt06");
        assert_eq!(record["time"], "2025-11-24T16:00:00.010Z");
        assert_eq!(record["kind"], "position");
        assert_eq!(record["lat"], 52.5);
        assert!(record.get("altitude_m").is_none(), "{record}");
        assert!(
            first["records"][1].get("lat").is_none(),
            "no fix, no fix fields"
        );
        let second = page(Some("14"), None).await.expect("a page");
        assert_eq!(second["records"].as_array().map(Vec::len), Some(6));
        assert_eq!(second["next"], "20");
    }

    #[tokio::test]
    async fn past_the_end_is_an_empty_page_with_the_same_cursor() {
        let page = page(Some("25"), None).await.expect("a page");
        assert_eq!(page["records"], serde_json::json!([]));
        assert_eq!(page["next"], "25");
    }

    #[tokio::test]
    async fn a_retired_cursor_is_gone_and_says_where_the_feed_starts() {
        match page(Some("3"), None).await {
            Err(ApiError::Gone(message)) => {
                assert!(message.contains("starts at cursor 10"), "{message}");
            }
            other => panic!("expected 410, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn malformed_cursors_and_limits_are_bad_requests() {
        for (after, limit) in [
            (Some("abc"), None),
            (Some("-1"), None),
            (None, Some(0)),
            (None, Some(MAX_LIMIT + 1)),
        ] {
            assert!(
                matches!(page(after, limit).await, Err(ApiError::BadRequest(_))),
                "{after:?} {limit:?}"
            );
        }
    }
}
