//! RFC 3339 timestamps, normalised to the one form the store keeps: UTC `YYYY-MM-DDTHH:MM:SS.mmmZ`.
//!
//! The normal form is fixed-width, so stored timestamps compare as instants with plain string
//! comparison (in Rust and in SQL). Written by hand: the few lines do not warrant a date crate.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An instant with millisecond precision, between years 0000 and 9999.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Milliseconds since 1970-01-01T00:00:00Z (negative before).
    millis: i64,
}

/// The first instant after year 9999, which the fixed-width form cannot show.
const MAX_MILLIS: i64 = 253_402_300_800_000;
/// 0000-01-01T00:00:00Z.
const MIN_MILLIS: i64 = -62_167_219_200_000;

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }

    /// Converts a system time, truncating to milliseconds.
    pub(crate) fn from_system_time(time: SystemTime) -> Timestamp {
        let millis = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_millis()).unwrap_or(MAX_MILLIS - 1),
            Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(-MIN_MILLIS),
        };
        Timestamp {
            millis: millis.clamp(MIN_MILLIS, MAX_MILLIS - 1),
        }
    }

    /// The same instant as a system time (what a PostgreSQL `timestamptz` parameter takes).
    pub(crate) fn to_system_time(self) -> SystemTime {
        let distance = Duration::from_millis(self.millis.unsigned_abs());
        if self.millis < 0 {
            UNIX_EPOCH - distance
        } else {
            UNIX_EPOCH + distance
        }
    }

    /// The instant `millis` milliseconds after the Unix epoch (before, when negative); `None`
    /// outside the years 0000 to 9999, which the store's form cannot show.
    pub(crate) fn from_unix_millis(millis: i64) -> Option<Timestamp> {
        (MIN_MILLIS..MAX_MILLIS)
            .contains(&millis)
            .then_some(Timestamp { millis })
    }

    /// Seconds since the Unix epoch, as Prometheus wants them.
    pub(crate) fn unix_seconds(self) -> f64 {
        self.millis as f64 / 1000.0
    }

    /// Milliseconds from `earlier` to this instant (negative when `earlier` is later).
    pub fn millis_since(self, earlier: Timestamp) -> i64 {
        self.millis - earlier.millis
    }

    /// Parses an RFC 3339 date-time in any offset (`T` or a space between date and time, any
    /// number of fraction digits, `Z` or `±HH:MM`). Returns `None` for anything else, including
    /// impossible dates such as February 30th.
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        let b = text.as_bytes();
        if b.len() < 20 {
            return None;
        }
        let local_seconds = seconds_of_date_time(&b[..19])?;
        let (millis_of_second, zone) = fraction_millis(&b[19..])?;
        let seconds = local_seconds - offset_minutes(zone)? * 60;
        Timestamp::from_unix_millis(seconds * 1000 + millis_of_second)
    }
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS` (`T`, `t` or a space between date and time)
/// read as UTC; `None` for another form or an impossible date or time.
fn seconds_of_date_time(b: &[u8]) -> Option<i64> {
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    // A leap second (60) is accepted and folded into the next second's first instant.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// The milliseconds of a `.` and any number of fraction digits (those beyond milliseconds are
/// dropped), 0 without a fraction, and what follows it.
fn fraction_millis(b: &[u8]) -> Option<(i64, &[u8])> {
    let Some(fraction) = b.strip_prefix(b".") else {
        return Some((0, b));
    };
    let mut count = 0;
    let mut millis = 0;
    while count < fraction.len() && fraction[count].is_ascii_digit() {
        if count < 3 {
            millis = millis * 10 + i64::from(fraction[count] - b'0');
        }
        count += 1;
    }
    if count == 0 {
        return None;
    }
    for _ in count..3 {
        millis *= 10;
    }
    Some((millis, &fraction[count..]))
}

/// The offset from UTC in minutes of `Z` or `±HH:MM`, and nothing after it.
fn offset_minutes(zone: &[u8]) -> Option<i64> {
    match zone {
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), rest @ ..] if rest.len() == 5 && rest[2] == b':' => {
            let hours = digits(rest, 0, 2)?;
            let minutes = digits(rest, 3, 2)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 60 + minutes;
            Some(if *sign == b'-' { -offset } else { offset })
        }
        _ => None,
    }
}

impl Timestamp {
    /// The store's form, `YYYY-MM-DDTHH:MM:SS.mmmZ`, always UTC, without allocating: it is
    /// written and compared several times per ticket. Written digit by digit, as `write!` with
    /// padding is several times slower.
    pub(crate) fn store_text(self) -> StoreText {
        let days = self.millis.div_euclid(86_400_000);
        let of_day = self.millis.rem_euclid(86_400_000);
        let (year, month, day) = civil_from_days(days);
        let mut text = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut value: i64| {
            for slot in text[at..at + width].iter_mut().rev() {
                *slot = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, of_day / 3_600_000);
        put(14, 2, of_day / 60_000 % 60);
        put(17, 2, of_day / 1000 % 60);
        put(20, 3, of_day % 1000);
        StoreText(text)
    }
}

/// A [`Timestamp`] in the store's form (see [`Timestamp::store_text`]).
#[derive(Clone, Copy)]
pub(crate) struct StoreText([u8; 24]);

impl StoreText {
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and the separators are ever written.
        std::str::from_utf8(&self.0).expect("ASCII")
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.store_text().as_str())
    }
}

/// Reads `len` ASCII digits at `start` as a number.
fn digits(b: &[u8], start: usize, len: usize) -> Option<i64> {
    let field = b.get(start..start + len)?;
    field.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
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
    use proptest::prelude::*;

    #[test]
    fn a_system_time_and_back_is_the_same_instant_on_either_side_of_the_epoch() {
        for text in [
            "2026-06-01T12:00:00.123Z",
            "1970-01-01T00:00:00.000Z",
            "1969-12-31T23:59:59.999Z",
            "0000-01-01T00:00:00.000Z",
            "9999-12-31T23:59:59.999Z",
        ] {
            let stamp = Timestamp::parse_rfc3339(text).unwrap();
            let back = Timestamp::from_system_time(stamp.to_system_time());
            assert_eq!(back.to_string(), text);
        }
        let one_before = Timestamp::parse_rfc3339("1969-12-31T23:59:59.999Z").unwrap();
        assert_eq!(
            UNIX_EPOCH
                .duration_since(one_before.to_system_time())
                .unwrap(),
            Duration::from_millis(1)
        );
    }

    #[test]
    fn unix_millis_outside_the_four_digit_years_are_refused() {
        assert_eq!(Timestamp::from_unix_millis(MAX_MILLIS), None);
        assert_eq!(Timestamp::from_unix_millis(MIN_MILLIS - 1), None);
        assert_eq!(
            Timestamp::from_unix_millis(MIN_MILLIS).unwrap().to_string(),
            "0000-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_unix_millis(-1).unwrap().to_string(),
            "1969-12-31T23:59:59.999Z"
        );
    }

    fn norm(text: &str) -> Option<String> {
        Timestamp::parse_rfc3339(text).map(|t| t.to_string())
    }

    #[test]
    fn normalises_offsets_to_utc_milliseconds() {
        assert_eq!(
            norm("2026-06-01T12:00:00Z").unwrap(),
            "2026-06-01T12:00:00.000Z"
        );
        assert_eq!(
            norm("2026-06-01T14:00:00+02:00").unwrap(),
            "2026-06-01T12:00:00.000Z"
        );
        assert_eq!(
            norm("2026-06-01T00:30:00.5-01:00").unwrap(),
            "2026-06-01T01:30:00.500Z"
        );
        assert_eq!(
            norm("2026-01-01T00:00:00.123456789+00:30").unwrap(),
            "2025-12-31T23:30:00.123Z"
        );
        assert_eq!(
            norm("2024-02-29 23:59:59z").unwrap(),
            "2024-02-29T23:59:59.000Z"
        );
        assert_eq!(
            norm("1969-12-31T23:59:59.999Z").unwrap(),
            "1969-12-31T23:59:59.999Z"
        );
        assert_eq!(
            norm("2016-12-31T23:59:60Z").unwrap(),
            "2017-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for bad in [
            "",
            "2026-06-01",
            "2026-06-01T12:00:00",
            "2026-06-01T12:00Z",
            "2026-13-01T12:00:00Z",
            "2026-02-29T12:00:00Z",
            "2026-04-31T12:00:00Z",
            "2026-06-01T24:00:00Z",
            "2026-06-01T12:00:00.Z",
            "2026-06-01T12:00:00+0200",
            "2026-06-01T12:00:00+02:00 ",
            "2026-06-01T12:00:00+24:00",
            "２０２６-06-01T12:00:00Z",
            "2026/06/01T12:00:00Z",
            "0000-01-01T00:00:00+00:01",
        ] {
            assert_eq!(norm(bad), None, "{bad:?} was accepted");
        }
    }

    #[test]
    fn normal_form_orders_as_instants() {
        let earlier = Timestamp::parse_rfc3339("2026-06-01T13:00:00+02:00").unwrap();
        let later = Timestamp::parse_rfc3339("2026-06-01T11:30:00Z").unwrap();
        assert!(earlier < later);
        assert!(earlier.to_string() < later.to_string());
    }

    proptest! {
        #[test]
        fn display_round_trips(millis in MIN_MILLIS..MAX_MILLIS) {
            let t = Timestamp { millis };
            prop_assert_eq!(Timestamp::parse_rfc3339(&t.to_string()), Some(t));
        }

        #[test]
        fn never_panics(text in ".{0,40}") {
            let _ = Timestamp::parse_rfc3339(&text);
        }

        #[test]
        fn string_order_is_instant_order(a in MIN_MILLIS..MAX_MILLIS, b in MIN_MILLIS..MAX_MILLIS) {
            let (ta, tb) = (Timestamp { millis: a }, Timestamp { millis: b });
            prop_assert_eq!(ta.cmp(&tb), ta.to_string().cmp(&tb.to_string()));
        }
    }
}
