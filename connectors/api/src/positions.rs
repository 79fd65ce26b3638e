//! The JSON form of records and of the live device state.

use drover_protocols::model::{Attributes, Record, RecordKind};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// ms since the epoch as RFC 3339 (UTC, millisecond precision).
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// An RFC 3339 time as ms since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// One stored position.
#[derive(Debug, Serialize)]
pub struct Position<'a> {
    pub time: String,
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
            time: rfc3339(record.time_ms),
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

#[cfg(test)]
mod tests {
    use super::*;

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
