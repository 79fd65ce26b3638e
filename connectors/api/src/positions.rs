//! The JSON form of records and of the live device state.

use drover_protocols::model::{Attributes, Record, RecordKind};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// RFC 3339 in UTC with exactly three fractional digits, as MQTT and the
/// stream write times, so one instant is one string everywhere.
const MILLIS: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// ms since the epoch as RFC 3339 (UTC, millisecond precision).
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(MILLIS).ok())
        .unwrap_or_default()
}

/// ms since the epoch that serializes as [`rfc3339`] without allocating:
/// a page of positions has a thousand of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub i64);

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The longest form, "-9999-12-31T23:59:59.999Z", fits with room.
        let mut buf = [0u8; 40];
        let mut free = &mut buf[..];
        let written = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .ok()
            .and_then(|t| t.format_into(&mut free, MILLIS).ok())
            .unwrap_or(0);
        let text = buf
            .get(..written)
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .unwrap_or_default();
        serializer.serialize_str(text)
    }
}

/// An RFC 3339 time as ms since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// One stored position.
#[derive(Debug, Serialize)]
pub struct Position<'a> {
    pub time: Timestamp,
    pub kind: RecordKind,
    pub lat: f64,
    pub lon: f64,
    pub speed_kmh: f64,
    pub course_deg: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub altitude_m: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub satellites: Option<u8>,
    pub valid: bool,
    pub archived: bool,
    pub attributes: &'a Attributes,
}

impl<'a> Position<'a> {
    /// `None` for a record without a fix.
    pub fn of(record: &'a Record) -> Option<Self> {
        let fix = record.fix.as_ref()?;
        Some(Position {
            time: Timestamp(record.time_ms),
            kind: record.kind,
            lat: fix.lat,
            lon: fix.lon,
            speed_kmh: fix.speed_kmh,
            course_deg: fix.course_deg,
            altitude_m: fix.altitude_m,
            satellites: fix.satellites,
            valid: fix.valid,
            archived: record.archived,
            attributes: &record.attributes,
        })
    }
}

/// A page of positions, the answer of `GET /api/v1/devices/{id}/positions`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PositionPage<'a> {
    pub device: &'a str,
    #[schema(value_type = String)]
    pub from: Timestamp,
    #[schema(value_type = String)]
    pub to: Timestamp,
    #[schema(value_type = Vec<Object>)]
    pub positions: Vec<Position<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<&'a str>,
}

/// The JSON of a page of `device`'s positions from `from_ms` to `to_ms`;
/// records without a fix are left out.
pub fn page_json(
    device: &str,
    from_ms: i64,
    to_ms: i64,
    records: &[Record],
    next_cursor: Option<&str>,
) -> Result<Vec<u8>, serde_json::Error> {
    // About 400 bytes a position with its OBD attributes.
    let mut json = Vec::with_capacity(records.len() * 512);
    serde_json::to_writer(
        &mut json,
        &PositionPage {
            device,
            from: Timestamp(from_ms),
            to: Timestamp(to_ms),
            positions: records.iter().filter_map(Position::of).collect(),
            next_cursor,
        },
    )?;
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_serialize_as_rfc3339() {
        for ms in [1_764_000_000_123, 0, -1, 253_402_300_799_999] {
            let json = serde_json::to_string(&Timestamp(ms)).unwrap();
            assert_eq!(json, format!("\"{}\"", rfc3339(ms)));
        }
    }

    #[test]
    fn rfc3339_round_trips_milliseconds() {
        let ms = 1_764_000_000_123;
        assert_eq!(rfc3339(ms), "2025-11-24T16:00:00.123Z");
        assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms));
        assert_eq!(
            parse_rfc3339("2025-11-24T18:00:00+02:00"),
            Some(1_764_000_000_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2025-11-24"), None);
    }
}
