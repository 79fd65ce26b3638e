//! Detect: scheduled jobs on the engine's clock.
//!
//! A job is due at a local time of day in a time zone (daily summaries at
//! 00:05 in Europe/Vilnius). The engine only says *when*: a due job goes out
//! as [`Delta::JobDue`], and what the job does (reading days of history,
//! say) runs off the tick, in the node. Because the time is the engine's
//! clock, a replay fires jobs at the same moments as the live run did, and
//! because the last day fired is in the snapshot, a node that was down at
//! the time fires the missed days when it comes back — each once.

use bevy_ecs::prelude::*;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde::Serialize;

use crate::clock::Clock;
use crate::io::Delta;
use crate::systems::emit::Outbox;

/// Missed days fired after a restart, at most: a node down for a month does
/// not flood its consumers.
const MAX_CATCH_UP_DAYS: usize = 7;

/// A job due once a day.
#[derive(Debug, Clone)]
pub struct DailyJob {
    pub name: String,
    /// Local time of day it is due at.
    pub at: Time,
    pub zone: TimeZone,
    /// The local date it last fired on; `None` until the first run (or
    /// restore) decides where to start.
    last: Option<Date>,
}

impl DailyJob {
    pub fn new(name: impl Into<String>, at: Time, zone: TimeZone) -> DailyJob {
        DailyJob {
            name: name.into(),
            at,
            zone,
            last: None,
        }
    }

    /// When it is due on local `date`, ms since the epoch.
    fn due_ms(&self, date: Date) -> Option<i64> {
        let zoned = date.to_datetime(self.at).to_zoned(self.zone.clone()).ok()?;
        Some(zoned.timestamp().as_millisecond())
    }

    /// The local dates whose due time has passed by `now_ms` and that have
    /// not fired yet, oldest first.
    fn due_dates(&mut self, now_ms: i64) -> Vec<Date> {
        let Ok(now) = Timestamp::from_millisecond(now_ms) else {
            return Vec::new();
        };
        let today = Zoned::new(now, self.zone.clone()).date();
        let Some(last) = self.last else {
            // A first start is not a catch-up: only times from now on count.
            let passed = self.due_ms(today).is_some_and(|due| due <= now_ms);
            self.last = Some(if passed {
                today
            } else {
                today.yesterday().unwrap_or(today)
            });
            return Vec::new();
        };
        let mut dates = Vec::new();
        let mut next = last.tomorrow().ok();
        while let Some(date) = next.filter(|d| *d <= today) {
            if self.due_ms(date).is_none_or(|due| due > now_ms) {
                break;
            }
            dates.push(date);
            next = date.tomorrow().ok();
        }
        if let Some(newest) = dates.last() {
            self.last = Some(*newest);
        }
        let skip = dates.len().saturating_sub(MAX_CATCH_UP_DAYS);
        dates.split_off(skip)
    }
}

/// The engine's jobs.
#[derive(Resource, Debug, Clone, Default)]
pub struct Timetable(pub Vec<DailyJob>);

/// A job that came due, for the node to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobDue {
    pub name: String,
    /// The local date it is due on (`YYYY-MM-DD`).
    pub date: String,
    /// When it was due, ms since the epoch.
    pub due_ms: i64,
}

pub fn fire_jobs(clock: Res<Clock>, mut timetable: ResMut<Timetable>, mut outbox: ResMut<Outbox>) {
    // Bookkeeping only: nothing reads the timetable's change ticks.
    let timetable = timetable.bypass_change_detection();
    for job in &mut timetable.0 {
        for date in job.due_dates(clock.now_ms) {
            let Some(due_ms) = job.due_ms(date) else {
                continue;
            };
            outbox.0.push(Delta::JobDue(Box::new(JobDue {
                name: job.name.clone(),
                date: date.to_string(),
                due_ms,
            })));
        }
    }
}

/// The day each job last fired, for a snapshot.
pub(crate) fn capture(world: &World) -> Vec<(String, String)> {
    world
        .get_resource::<Timetable>()
        .map(|timetable| {
            timetable
                .0
                .iter()
                .filter_map(|job| Some((job.name.clone(), job.last?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Takes back the days jobs last fired, for jobs added before the restore.
pub(crate) fn restore(world: &mut World, fired: Vec<(String, String)>) {
    let Some(mut timetable) = world.get_resource_mut::<Timetable>() else {
        return;
    };
    for (name, date) in fired {
        let job = timetable.0.iter_mut().find(|job| job.name == name);
        if let (Some(job), Ok(date)) = (job, date.parse::<Date>()) {
            job.last = Some(date);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        // invariant: test input.
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn job() -> DailyJob {
        // invariant: a name in the built-in database.
        let zone = TimeZone::get("Europe/Vilnius").unwrap();
        DailyJob::new("daily_summary", Time::constant(0, 5, 0, 0), zone)
    }

    #[test]
    fn fires_once_a_day_at_the_local_time_from_the_first_start_on() {
        let mut job = job();
        // 21:00 UTC is midnight in Vilnius (UTC+3 in summer).
        assert!(job.due_dates(ms("2026-07-01T20:00:00Z")).is_empty());
        assert!(job.due_dates(ms("2026-07-01T21:04:00Z")).is_empty());
        let due = job.due_dates(ms("2026-07-01T21:05:00Z"));
        assert_eq!(due, vec![Date::constant(2026, 7, 2)]);
        assert!(job.due_dates(ms("2026-07-01T23:00:00Z")).is_empty());
        // In winter, UTC+2.
        let mut winter = job.clone();
        winter.last = Some(Date::constant(2026, 12, 2));
        assert!(winter.due_dates(ms("2026-12-02T21:30:00Z")).is_empty());
        let due = winter.due_dates(ms("2026-12-02T22:05:00Z"));
        assert_eq!(due, vec![Date::constant(2026, 12, 3)]);
    }

    #[test]
    fn a_restart_fires_the_missed_days_each_once() {
        let mut job = job();
        job.last = Some(Date::constant(2026, 7, 1));
        let due = job.due_dates(ms("2026-07-04T12:00:00Z"));
        assert_eq!(
            due,
            vec![
                Date::constant(2026, 7, 2),
                Date::constant(2026, 7, 3),
                Date::constant(2026, 7, 4)
            ]
        );
        assert!(job.due_dates(ms("2026-07-04T13:00:00Z")).is_empty());
        job.last = Some(Date::constant(2026, 5, 1));
        assert_eq!(
            job.due_dates(ms("2026-07-04T12:00:00Z")).len(),
            MAX_CATCH_UP_DAYS
        );
    }

    #[test]
    fn a_first_start_after_the_time_waits_for_tomorrow() {
        let mut job = job();
        assert!(job.due_dates(ms("2026-07-02T09:00:00Z")).is_empty());
        assert_eq!(job.last, Some(Date::constant(2026, 7, 2)));
    }
}
