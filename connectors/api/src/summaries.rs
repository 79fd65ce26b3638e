//! Daily summaries: distance, driving and idle time, top speed, trips and
//! alerts per calendar day in the node's time zone
//! (`analytics.summaries.timezone`), from the stored trips and alerts. A
//! trip counts on the day it started. Days are the zone's own, so a day
//! with a daylight saving change has 23 or 25 hours.
//!
//! The API computes them on request; the node's scheduled job computes
//! yesterday's for every device and publishes them.

use drover_engine::systems::trips::TripSummary;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;
use utoipa::ToSchema;

use crate::history::{AlertQuery, History, HistoryError};

/// Trips and alerts read per range, at most.
const MAX_ITEMS: usize = 10_000;

/// One day of a device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct DaySummary {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Trips that started that day (closed ones, and the one under way).
    pub trips: usize,
    pub distance_m: f64,
    /// Time in motion.
    pub driving_s: f64,
    /// Standing with the ignition on during trips.
    pub idle_s: f64,
    pub max_speed_kmh: f64,
    /// Alerts opened that day.
    pub alerts: usize,
}

impl DaySummary {
    fn add_trip(&mut self, trip: &TripSummary) {
        self.trips += 1;
        self.distance_m += trip.distance_m;
        self.driving_s += trip.moving_ms as f64 / 1000.0;
        self.idle_s += trip.idle_ms as f64 / 1000.0;
        self.max_speed_kmh = self.max_speed_kmh.max(trip.max_speed_kmh);
    }
}

/// Calendar days in a zone, `first` to `last` included.
#[derive(Debug, Clone)]
pub struct Days {
    /// Each day's date and first ms, then the ms after the last day.
    starts: Vec<(Date, i64)>,
    end_ms: i64,
}

impl Days {
    /// `None` when a day is out of the calendar's range.
    pub fn new(first: Date, last: Date, zone: &TimeZone) -> Option<Days> {
        let start = |date: Date| -> Option<i64> {
            Some(
                date.to_zoned(zone.clone())
                    .ok()?
                    .timestamp()
                    .as_millisecond(),
            )
        };
        let mut starts = Vec::new();
        let mut date = first;
        while date <= last {
            starts.push((date, start(date)?));
            date = date.tomorrow().ok()?;
        }
        Some(Days {
            starts,
            end_ms: start(date)?,
        })
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    pub fn start_ms(&self) -> i64 {
        self.starts.first().map_or(self.end_ms, |(_, ms)| *ms)
    }

    pub fn end_ms(&self) -> i64 {
        self.end_ms
    }

    /// The day `ms` falls on, by index.
    fn of(&self, ms: i64) -> Option<usize> {
        if !(self.start_ms()..self.end_ms).contains(&ms) {
            return None;
        }
        Some(self.starts.partition_point(|(_, start)| *start <= ms) - 1)
    }
}

/// The device's summary of each of `days`, oldest first; `open` is the
/// trip under way, counted if it started in the range and is not stored.
pub async fn summarize(
    history: &dyn History,
    device: &str,
    open: Option<TripSummary>,
    days: &Days,
) -> Result<Vec<DaySummary>, HistoryError> {
    let (start_ms, end_ms) = (days.start_ms(), days.end_ms());
    let mut trips = history.trips(device, start_ms, end_ms, MAX_ITEMS).await?;
    if let Some(open) = open
        && (start_ms..end_ms).contains(&open.start.time_ms)
        && trips
            .last()
            .is_none_or(|t| t.start.time_ms < open.start.time_ms)
    {
        trips.push(open);
    }
    let alerts = history
        .alerts(AlertQuery {
            device: Some(device),
            kind: None,
            state: None,
            from_ms: start_ms,
            to_ms: end_ms,
            limit: MAX_ITEMS,
            cursor: None,
        })
        .await?
        .alerts;
    let mut summaries: Vec<DaySummary> = days
        .starts
        .iter()
        .map(|(date, _)| DaySummary {
            date: date.to_string(),
            ..DaySummary::default()
        })
        .collect();
    for trip in &trips {
        if let Some(day) = days
            .of(trip.start.time_ms)
            .and_then(|d| summaries.get_mut(d))
        {
            day.add_trip(trip);
        }
    }
    for alert in &alerts {
        if let Some(day) = days.of(alert.opened_ms).and_then(|d| summaries.get_mut(d)) {
            day.alerts += 1;
        }
    }
    Ok(summaries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_begin_at_local_midnight_and_follow_daylight_saving() {
        // invariant: a name in the built-in database.
        let vilnius = TimeZone::get("Europe/Vilnius").unwrap();
        // Clocks went back an hour on 2026-10-25.
        let days = Days::new(
            Date::constant(2026, 10, 24),
            Date::constant(2026, 10, 26),
            &vilnius,
        )
        .unwrap();
        assert_eq!(days.len(), 3);
        let hour = 3_600_000;
        let lengths: Vec<i64> = days
            .starts
            .windows(2)
            .map(|w| w[1].1 - w[0].1)
            .chain([days.end_ms - days.starts[2].1])
            .collect();
        assert_eq!(lengths, [24 * hour, 25 * hour, 24 * hour]);
        // 2026-10-24T00:00+03:00.
        assert_eq!(days.start_ms(), 1_792_789_200_000);
        assert_eq!(days.of(days.start_ms()), Some(0));
        assert_eq!(days.of(days.starts[1].1 - 1), Some(0));
        assert_eq!(days.of(days.starts[1].1), Some(1));
        assert_eq!(days.of(days.end_ms), None);
        let utc = Days::new(
            Date::constant(1970, 1, 2),
            Date::constant(1970, 1, 2),
            &TimeZone::UTC,
        )
        .unwrap();
        assert_eq!((utc.start_ms(), utc.end_ms()), (86_400_000, 2 * 86_400_000));
    }
}
