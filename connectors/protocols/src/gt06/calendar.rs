//! Civil date and time to and from epoch milliseconds, without a clock.
//!
//! Devices send broken-down local times. Out-of-range fields roll over into
//! the next unit (month 13 is January of the next year, day 0 the last day of
//! the previous month) as `java.util.Calendar` does in lenient mode, so odd
//! device clocks decode to the same instants as in Traccar.

/// Date and time fields as a device sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Civil {
    /// Two-digit years mean 20xx.
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
}

impl Civil {
    /// Milliseconds since the epoch for this local time at `offset_s` east of UTC.
    pub(crate) fn to_epoch_ms(self, offset_s: i64) -> i64 {
        let year = if self.year < 100 {
            self.year + 2000
        } else {
            self.year
        };
        // Only odd clocks need the euclidean roll-over, which costs divisions.
        let (year, month) = if (1..=12).contains(&self.month) {
            (year, self.month)
        } else {
            let month0 = self.month - 1;
            (year + month0.div_euclid(12), month0.rem_euclid(12) + 1)
        };
        let days = days_from_civil(year, month, 1) + (self.day - 1);
        let seconds = days * 86_400 + self.hour * 3_600 + self.minute * 60 + self.second;
        (seconds - offset_s) * 1_000
    }

    /// The UTC fields of an instant (years in full).
    pub(crate) fn from_epoch_ms(ms: i64) -> Civil {
        let seconds = ms.div_euclid(1_000);
        let (days, in_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: in_day / 3_600,
            minute: in_day % 3_600 / 60,
            second: in_day % 60,
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm), for months 1..=12 and any day.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn civil(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Civil {
        Civil {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: s,
        }
    }

    #[test]
    fn known_instants() {
        assert_eq!(civil(0, 1, 1, 0, 0, 0).to_epoch_ms(0), 946_684_800_000);
        assert_eq!(civil(1970, 1, 1, 0, 0, 0).to_epoch_ms(0), 0);
        // 2015-10-20T14:21:11Z
        assert_eq!(
            civil(15, 10, 20, 14, 21, 11).to_epoch_ms(0),
            1_445_350_871_000
        );
        assert_eq!(
            civil(15, 10, 20, 18, 21, 11).to_epoch_ms(4 * 3600),
            1_445_350_871_000
        );
    }

    #[test]
    fn out_of_range_fields_roll_over_like_a_lenient_calendar() {
        let nov_30_1999 = civil(1999, 11, 30, 0, 0, 0).to_epoch_ms(0);
        assert_eq!(civil(0, 0, 0, 0, 0, 0).to_epoch_ms(0), nov_30_1999);
        let next = civil(24, 13, 32, 25, 61, 61).to_epoch_ms(0);
        assert_eq!(next, civil(2025, 2, 2, 2, 2, 1).to_epoch_ms(0));
    }

    #[test]
    fn round_trips_through_fields() {
        for ms in [0, 1_445_350_871_000, 4_102_444_799_000, -86_400_000] {
            assert_eq!(Civil::from_epoch_ms(ms).to_epoch_ms(0), ms);
        }
    }
}
