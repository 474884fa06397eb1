//! Timestamps between the store's text form (`YYYY-MM-DDTHH:MM:SS.mmmZ`, as SQLite holds them)
//! and `timestamptz`, sent and read in binary. A batch writes about ten timestamps per ticket:
//! as text, the server parsed each one (`::timestamptz`) and formatted each one it read
//! (`to_char`), about a sixth of the ticket upsert's time and a quarter of its read-ahead's; in
//! binary it does neither.

use std::time::SystemTime;

use postgres::types::{FromSql, Type};

use crate::error::Error;
use crate::timestamp::Timestamp;

/// A `timestamptz` read from the store, to the millisecond as the store's text form keeps it
/// (to_char's `.MS` truncated the same way). `infinity` and years outside 0000–9999, which
/// another tool may have written, are refused loudly rather than shown as some other instant.
pub(crate) struct StoreTime(Timestamp);

impl StoreTime {
    pub fn text(&self) -> String {
        self.0.to_string()
    }
}

/// Microseconds between the Unix epoch and PostgreSQL's, 2000-01-01T00:00:00Z.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

impl<'a> FromSql<'a> for StoreTime {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> Result<StoreTime, Box<dyn std::error::Error + Sync + Send>> {
        let micros = i64::from_be_bytes(raw.try_into()?);
        micros
            .checked_add(PG_EPOCH_MICROS)
            .and_then(|unix| Timestamp::from_unix_millis(unix.div_euclid(1000)))
            .map(StoreTime)
            .ok_or_else(|| "a timestamp outside the years 0000 to 9999 (or infinity)".into())
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }
}

/// The `timestamptz` column `index` of `row` in the store's text form.
pub(crate) fn read(row: &postgres::Row, index: usize) -> Result<Option<String>, postgres::Error> {
    Ok(row
        .try_get::<_, Option<StoreTime>>(index)?
        .map(|time| time.text()))
}

/// A time in the store's text form as a `timestamptz` parameter. The batch only holds times it
/// wrote in that form itself or read from the store, so another text is a defect: it fails
/// the batch instead of storing a different instant or none.
pub(crate) fn sent(text: &str) -> Result<SystemTime, Error> {
    Timestamp::parse_rfc3339(text)
        .map(Timestamp::to_system_time)
        .ok_or_else(|| Error::Internal(format!("not a timestamp in the store's form: {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(micros: i64) -> Option<String> {
        StoreTime::from_sql(&Type::TIMESTAMPTZ, &micros.to_be_bytes())
            .ok()
            .map(|time| time.text())
    }

    #[test]
    fn a_timestamptz_reads_as_the_store_text_truncated_to_the_millisecond() {
        assert_eq!(decoded(0).unwrap(), "2000-01-01T00:00:00.000Z");
        assert_eq!(decoded(1_999).unwrap(), "2000-01-01T00:00:00.001Z");
        assert_eq!(decoded(-1).unwrap(), "1999-12-31T23:59:59.999Z");
        assert_eq!(
            decoded(-PG_EPOCH_MICROS).unwrap(),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn infinity_and_years_past_9999_are_refused() {
        assert_eq!(decoded(i64::MAX), None);
        assert_eq!(decoded(i64::MIN), None);
        let year_10000 = 253_402_300_800_000_000 - PG_EPOCH_MICROS;
        assert_eq!(decoded(year_10000), None);
        assert!(decoded(year_10000 - 1).is_some());
        assert!(StoreTime::from_sql(&Type::TIMESTAMPTZ, &[0; 4]).is_err());
    }

    #[test]
    fn only_a_timestamptz_is_read_as_a_time() {
        assert!(StoreTime::accepts(&Type::TIMESTAMPTZ));
        // Same bytes, no zone: taking them for UTC would be a guess.
        assert!(!StoreTime::accepts(&Type::TIMESTAMP));
        assert!(!StoreTime::accepts(&Type::TEXT));
        assert!(!StoreTime::accepts(&Type::INT8));
    }

    #[test]
    fn only_the_store_text_form_is_sent() {
        let sent_at = sent("2026-06-01T12:00:00.123Z").unwrap();
        assert_eq!(
            Timestamp::from_system_time(sent_at).to_string(),
            "2026-06-01T12:00:00.123Z"
        );
        assert!(matches!(sent("yesterday"), Err(Error::Internal(_))));
    }
}
