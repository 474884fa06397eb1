//! Instants in milliseconds and their RFC 3339 forms, in the zones TIXNGO writes.

use std::fmt::Write as _;

/// Milliseconds since the Unix epoch.
pub(crate) type Millis = i64;

pub(crate) const SECOND: Millis = 1_000;
pub(crate) const MINUTE: Millis = 60 * SECOND;
pub(crate) const HOUR: Millis = 60 * MINUTE;
pub(crate) const DAY: Millis = 24 * HOUR;
/// 2026-02-01T00:00:00Z: tickets are injected during the 60 days that follow.
pub(crate) const SEASON_START: Millis = 1_769_904_000 * SECOND;
pub(crate) const SEASON_LENGTH: Millis = 60 * DAY;

/// How a timestamp's offset is written: `Z`, or `±HH:MM` (`+00:00` included).
#[derive(Clone, Copy)]
pub(crate) enum Zone {
    Utc,
    Offset { minutes: i32 },
}

pub(crate) const ZONE_MIX: [(Zone, u64); 5] = [
    (Zone::Utc, 65),
    (Zone::Offset { minutes: 120 }, 20),
    (Zone::Offset { minutes: 60 }, 5),
    (Zone::Offset { minutes: -240 }, 5),
    (Zone::Offset { minutes: 0 }, 5),
];

/// RFC 3339 for the instant `at`, written in `zone`, with or without milliseconds.
pub(crate) fn format_rfc3339(at: Millis, zone: Zone, with_millis: bool) -> String {
    let offset_minutes = match zone {
        Zone::Utc => 0,
        Zone::Offset { minutes } => minutes,
    };
    let local = at + Millis::from(offset_minutes) * MINUTE;
    let (year, month, day) = civil_from_days(local.div_euclid(DAY));
    let of_day = local.rem_euclid(DAY);
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / HOUR,
        of_day / MINUTE % 60,
        of_day / SECOND % 60
    );
    if with_millis {
        let _ = write!(text, ".{:03}", of_day % SECOND);
    }
    match zone {
        Zone::Utc => text.push('Z'),
        Zone::Offset { minutes } => {
            let sign = if minutes < 0 { '-' } else { '+' };
            let minutes = minutes.unsigned_abs();
            let _ = write!(text, "{sign}{:02}:{:02}", minutes / 60, minutes % 60);
        }
    }
    text
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
