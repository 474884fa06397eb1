//! The set-based statements of a batch's commit and the arrays they take: one array per column,
//! one element per row, expanded server-side by `unnest` (`WITH ORDINALITY … ORDER BY` where the
//! rows take ids from a sequence, so that they get them in the batch's order, as in SQLite);
//! and [`Write`], which joins them into the one statement a batch writes with.

use std::sync::LazyLock;
use std::time::SystemTime;

use postgres::Row;
use postgres::types::{ToSql, Type};

use super::super::buffer::BatchBuffer;
use super::super::sync_errors::ErrorBook;
use super::super::time;
use crate::error::Error;
use crate::feedback::Spectator;
use crate::feedback::contacts::LineStatus;
use crate::feedback::{FieldValue, ReadColumns, TicketRecord};
use crate::report::Counters;
use crate::store::KeyCommit;

/// The parameters of one statement. Text arrays borrow the batch's rows: a batch sends tens of
/// thousands of strings, and copying each one first was a third of the client's allocations.
#[derive(Default)]
pub struct Params<'a>(Vec<(Box<dyn ToSql + Sync + 'a>, Type)>);

impl<'a> Params<'a> {
    fn with(mut self, value: impl ToSql + Sync + 'a, ty: Type) -> Params<'a> {
        self.0.push((Box::new(value), ty));
        self
    }

    fn texts(self, values: impl Iterator<Item = Option<&'a str>>) -> Params<'a> {
        self.with(values.collect::<Vec<_>>(), Type::TEXT_ARRAY)
    }

    fn ids(self, values: impl Iterator<Item = Option<i64>>) -> Params<'a> {
        self.with(values.collect::<Vec<_>>(), Type::INT8_ARRAY)
    }

    fn flags(self, values: impl Iterator<Item = Option<bool>>) -> Params<'a> {
        let values: Vec<Option<i16>> = values.map(|v| v.map(i16::from)).collect();
        self.with(values, Type::INT2_ARRAY)
    }

    /// Times in the store's text form, sent as a `timestamptz` array.
    fn times(self, values: impl Iterator<Item = Option<&'a str>>) -> Result<Params<'a>, Error> {
        let values: Vec<Option<SystemTime>> = values
            .map(|v| v.map(time::sent).transpose())
            .collect::<Result<_, _>>()?;
        Ok(self.with(values, Type::TIMESTAMPTZ_ARRAY))
    }

    fn at(self, time: SystemTime) -> Params<'a> {
        self.with(time, Type::TIMESTAMPTZ)
    }

    /// These parameters, then `other`'s.
    fn then(mut self, other: Params<'a>) -> Params<'a> {
        self.0.extend(other.0);
        self
    }

    pub fn as_slice(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        self.0
            .iter()
            .map(|(value, ty)| (value.as_ref(), ty.clone()))
            .collect()
    }
}

/// The columns of `ticket`, as the record's table lists them (`feedback::record`). Those ending
/// in `_at` are `timestamptz`, sent and read in binary (see [`time`]).
const TICKET_COLUMNS: [&str; TicketRecord::COLUMNS.len()] = TicketRecord::COLUMNS;

fn is_time(column: &str) -> bool {
    column.ends_with("_at")
}

/// A `ticket` row as the server sends it, read column by column into a [`TicketRecord`].
struct TicketRow<'r>(&'r Row);

impl ReadColumns for TicketRow<'_> {
    type Error = postgres::Error;

    fn text(&self, index: usize) -> Result<Option<String>, postgres::Error> {
        match is_time(TICKET_COLUMNS[index]) {
            true => time::read(self.0, index),
            false => self.0.try_get(index),
        }
    }

    fn integer(&self, index: usize) -> Result<Option<i64>, postgres::Error> {
        self.0.try_get(index)
    }
}

pub(crate) fn record_from_row(row: &Row) -> Result<TicketRecord, postgres::Error> {
    TicketRecord::read(&TicketRow(row))
}

pub(crate) static SELECT_TICKETS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM ticket WHERE ticket_number = ANY($1)",
        TICKET_COLUMNS.join(", ")
    )
});

/// The rows written, inserted or updated in place with the columns set once kept.
pub(crate) static UPSERT_TICKETS: LazyLock<String> = LazyLock::new(|| {
    let count = TICKET_COLUMNS.len();
    let arrays: Vec<String> = (1..=count).map(|i| format!("${i}")).collect();
    let aliases: Vec<String> = (1..=count).map(|i| format!("c{i}")).collect();
    let updates: Vec<String> = TICKET_COLUMNS
        .iter()
        .filter(|c| !TicketRecord::SET_ONCE.contains(c))
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    format!(
        "INSERT INTO ticket ({}) SELECT {} FROM unnest({}) AS u({})
         ON CONFLICT (ticket_number) DO UPDATE SET {}",
        TICKET_COLUMNS.join(", "),
        aliases.join(", "),
        arrays.join(", "),
        aliases.join(", "),
        updates.join(", ")
    )
});

/// One array per column of the rows written, in the order of [`TICKET_COLUMNS`]; a contact id
/// given in the batch is replaced by the real one (`real`).
pub fn tickets<'a>(
    buffer: &'a BatchBuffer,
    real: &dyn Fn(i64) -> i64,
) -> Result<Params<'a>, Error> {
    let rows: Vec<[FieldValue<'a>; TICKET_COLUMNS.len()]> =
        buffer.written_tickets().map(TicketRecord::values).collect();
    let empty = TicketRecord::default();
    let kinds = empty.values();
    TICKET_COLUMNS
        .iter()
        .enumerate()
        .try_fold(Params::default(), |params, (index, column)| {
            let texts = || rows.iter().map(move |row| row[index].text());
            match kinds[index] {
                FieldValue::OptionalInteger(_) => {
                    Ok(params.ids(rows.iter().map(|row| row[index].integer().map(real))))
                }
                // A sync time another tool left NULL reads as empty, and goes back as NULL.
                _ if is_time(column) => {
                    params.times(texts().map(|text| text.filter(|t| !t.is_empty())))
                }
                _ => Ok(params.texts(texts())),
            }
        })
}

pub(crate) const INSERT_HISTORY: &str = "INSERT INTO ticket_history (ticket_number, mobile_status,
        owner_email, holder_first_name, holder_last_name, tixngo_updated_at, run_id, recorded_at)
     SELECT n, s, e, f, l, t, $7, $8
     FROM unnest($1, $2, $3, $4, $5, $6) WITH ORDINALITY AS u(n, s, e, f, l, t, ord)
     ORDER BY ord";

pub fn history(buffer: &BatchBuffer, run_id: i64, now: SystemTime) -> Result<Params<'_>, Error> {
    let rows = buffer.history();
    Ok(Params::default()
        .texts(rows.iter().map(|h| Some(h.ticket_number.as_str())))
        .texts(rows.iter().map(|h| Some(h.mobile_status.as_str())))
        .texts(rows.iter().map(|h| h.owner_email.as_deref()))
        .texts(rows.iter().map(|h| h.holder_first_name.as_deref()))
        .texts(rows.iter().map(|h| h.holder_last_name.as_deref()))
        .times(rows.iter().map(|h| h.tixngo_updated_at.as_deref()))?
        .with(run_id, Type::INT8)
        .at(now))
}

/// The contact columns copied from `spectatorDetails`, from `title` to `language`.
const DETAILS: &str = "title, first_name, last_name, birth_date, nationality, id_number, phone,
    residence_country, language, accept_institution_email, accept_third_party_email";

/// Arrays of the details of `spectators` (a temporary contact's where `None`), from `title` to
/// `accept_third_party_email`.
fn details<'a>(params: Params<'a>, spectators: &[Option<&'a Spectator>]) -> Params<'a> {
    type Text = fn(&Spectator) -> Option<&str>;
    let texts: [Text; 9] = [
        |s| s.title.as_deref(),
        |s| s.first_name.as_deref(),
        |s| s.last_name.as_deref(),
        |s| s.birth_date.as_deref(),
        |s| s.nationality.as_deref(),
        |s| s.id_number.as_deref(),
        |s| s.phone.as_deref(),
        |s| s.residence_country.as_deref(),
        |s| s.language.as_deref(),
    ];
    // What a temporary contact holds of them: "Pending CREATION".
    let temporary = [
        None,
        Some("Pending"),
        Some("CREATION"),
        None,
        None,
        None,
        None,
        None,
        None,
    ];
    let params = texts
        .iter()
        .zip(temporary)
        .fold(params, |params, (text, placeholder)| {
            params.texts(spectators.iter().map(|s| s.map_or(placeholder, text)))
        });
    params
        .flags(
            spectators
                .iter()
                .map(|s| s.and_then(|s| s.allow_promo_email)),
        )
        .flags(
            spectators
                .iter()
                .map(|s| s.and_then(|s| s.allow_third_party_email)),
        )
}

pub(crate) static INSERT_CONTACTS: LazyLock<String> = LazyLock::new(|| {
    let arrays: Vec<String> = (1..=15).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO contact (id, email, {DETAILS}, temporary, has_internet_account, kind,
            created_at, updated_at)
         SELECT u.*, 'individual', $16, $16 FROM unnest({}) AS u",
        arrays.join(", ")
    )
});

pub(crate) fn new_contacts<'a>(
    buffer: &'a BatchBuffer,
    ids: &[i64],
    now: SystemTime,
) -> Params<'a> {
    let contacts = &buffer.new_contacts;
    let spectators: Vec<Option<&Spectator>> = contacts.iter().map(|c| c.details.as_ref()).collect();
    let params = Params::default()
        .ids(ids.iter().copied().map(Some))
        .texts(contacts.iter().map(|c| Some(c.email.as_str())));
    details(params, &spectators)
        .flags(spectators.iter().map(|s| Some(s.is_none())))
        .flags(spectators.iter().map(|s| Some(s.is_some())))
        .at(now)
}

pub(crate) static UPGRADE_CONTACTS: LazyLock<String> = LazyLock::new(|| {
    let arrays: Vec<String> = (1..=12).map(|i| format!("${i}")).collect();
    let sets: Vec<String> = DETAILS
        .split(',')
        .map(|c| format!("{0} = u.{0}", c.trim()))
        .collect();
    format!(
        "UPDATE contact c SET {}, temporary = 0, has_internet_account = 1, updated_at = $13
         FROM unnest({}) AS u(id, {DETAILS})
         WHERE c.id = u.id AND c.temporary = 1",
        sets.join(", "),
        arrays.join(", ")
    )
});

pub fn upgrades(buffer: &BatchBuffer, now: SystemTime) -> Params<'_> {
    let upgrades = &buffer.upgrades;
    let spectators: Vec<Option<&Spectator>> = upgrades.iter().map(|(_, s)| Some(s)).collect();
    let params = Params::default().ids(upgrades.iter().map(|(id, _)| Some(*id)));
    details(params, &spectators).at(now)
}

pub(crate) const INSERT_LINES: &str = "INSERT INTO distribution (ticket_number, old_contact_id,
        new_contact_id, action, status, created_at, updated_at, run_id, operator_login,
        ticket_state, date_time)
     SELECT t, o, n, 'DISTRIBUTE', s, $8, $8, $9, login, state, dt
     FROM unnest($1, $2, $3, $4, $5, $6, $7) WITH ORDINALITY
         AS u(t, o, n, s, login, state, dt, ord)
     ORDER BY ord";

pub(crate) fn new_lines<'a>(
    buffer: &'a BatchBuffer,
    real: &dyn Fn(i64) -> i64,
    run_id: i64,
    now: SystemTime,
) -> Result<Params<'a>, Error> {
    let lines = &buffer.new_lines;
    Ok(Params::default()
        .texts(lines.iter().map(|l| Some(l.ticket_number.as_str())))
        .ids(lines.iter().map(|l| l.old_contact_id.map(real)))
        .ids(lines.iter().map(|l| Some(real(l.new_contact_id))))
        .texts(lines.iter().map(|l| Some(l.status.as_str())))
        .texts(lines.iter().map(|l| Some(l.operator_login.as_str())))
        .texts(lines.iter().map(|l| l.ticket_state.as_deref()))
        .times(lines.iter().map(|l| Some(l.date_time.as_str())))?
        .at(now)
        .with(run_id, Type::INT8))
}

pub(crate) const UPDATE_LINES: &str = "UPDATE distribution d SET status = u.s, updated_at = $3
     FROM unnest($1, $2) AS u(id, s) WHERE d.id = u.id";

pub(crate) fn line_statuses(buffer: &BatchBuffer, now: SystemTime) -> Params<'_> {
    let changes = &buffer.line_statuses;
    Params::default()
        .ids(changes.iter().map(|(id, _)| Some(*id)))
        .texts(changes.iter().map(|(_, s)| Some(LineStatus::as_str(*s))))
        .at(now)
}

/// A refreshed error moves to this run and takes the new reason (and, for a numbered ticket,
/// the new payload); a resolved one takes the batch's time.
pub(crate) const UPDATE_ERRORS: &str = "UPDATE sync_error e SET
        run_id = CASE WHEN u.reason IS NULL THEN e.run_id ELSE $5 END,
        reason = coalesce(u.reason, e.reason),
        payload = coalesce(u.payload, e.payload),
        resolved_at = CASE WHEN u.resolve THEN $6 ELSE e.resolved_at END
     FROM unnest($1, $2, $3, $4) AS u(id, reason, payload, resolve) WHERE e.id = u.id";

pub(crate) fn changed_errors(book: &ErrorBook, run_id: i64, now: SystemTime) -> Params<'_> {
    let rows: Vec<_> = book.changed_rows().collect();
    Params::default()
        .ids(rows.iter().map(|r| r.id))
        .texts(rows.iter().map(|r| r.reason.as_deref()))
        .texts(
            rows.iter()
                .map(|r| r.payload.as_deref().filter(|_| r.payload_changed)),
        )
        .with(
            rows.iter()
                .map(|r| r.resolved && !r.resolved_before)
                .collect::<Vec<_>>(),
            Type::BOOL_ARRAY,
        )
        .with(run_id, Type::INT8)
        .at(now)
}

pub(crate) const INSERT_ERRORS: &str = "INSERT INTO sync_error (run_id, ticket_number, reason,
        payload, resolved_at)
     SELECT $5, n, r, p, CASE WHEN res THEN $6 END
     FROM unnest($1, $2, $3, $4) WITH ORDINALITY AS u(n, r, p, res, ord)
     ORDER BY ord";

pub(crate) fn new_errors(book: &ErrorBook, run_id: i64, now: SystemTime) -> Params<'_> {
    let rows: Vec<_> = book.new_rows().collect();
    Params::default()
        .texts(rows.iter().map(|r| r.ticket_number.as_deref()))
        .texts(rows.iter().map(|r| r.reason.as_deref()))
        .texts(rows.iter().map(|r| r.payload.as_deref()))
        .with(
            rows.iter().map(|r| r.resolved).collect::<Vec<_>>(),
            Type::BOOL_ARRAY,
        )
        .with(run_id, Type::INT8)
        .at(now)
}

/// The run row's end: its counters, exit code and key, where a live batch left the feed, the
/// fields it did not read.
pub(crate) static FINISH_RUN: LazyLock<String> = LazyLock::new(|| {
    let figures: Vec<String> = Counters::NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| format!("{name} = ${}", i + 4))
        .collect();
    let next = Counters::NAMES.len() + 4;
    format!(
        "UPDATE sync_run SET finished_at = $1, key_after = $2, exit_code = $3, {},
            caught_up = ${}, newest_change_at = ${}, feed_lag_seconds = ${}, runs_behind = ${},
            unknown_fields = ${}
         WHERE id = ${}",
        figures.join(", "),
        next,
        next + 1,
        next + 2,
        next + 3,
        next + 4,
        next + 5
    )
});

pub(crate) fn finished_run(
    run_id: i64,
    finished: SystemTime,
    counters: &Counters,
    keys: &KeyCommit,
    exit_code: u8,
    unknown_fields: &Option<String>,
) -> Result<Params<'static>, Error> {
    let feed = keys.feed.as_ref();
    let newest_change_at = feed
        .and_then(|f| f.newest_change_at.as_deref())
        .map(time::sent)
        .transpose()?;
    let params = Params::default()
        .at(finished)
        .with(keys.after.clone(), Type::TEXT)
        .with(i32::from(exit_code), Type::INT4);
    Ok(counters
        .values()
        .into_iter()
        .fold(params, |params, value| {
            params.with(value as i64, Type::INT8)
        })
        .with(feed.map(|f| i16::from(f.caught_up)), Type::INT2)
        .with(newest_change_at, Type::TIMESTAMPTZ)
        .with(feed.and_then(|f| f.feed_lag_seconds), Type::FLOAT8)
        .with(feed.map(|f| f.runs_behind as i64), Type::INT8)
        .with(unknown_fields.clone(), Type::TEXT)
        .with(run_id, Type::INT8))
}

/// Saves the next key if the store still holds the one this run read (`$4`: whether it read
/// one): one row when it did, none when another run moved the key.
pub(crate) const FENCE: &str = "UPDATE sync_state SET pagination_key = $1, updated_at = $2
     WHERE id = 1 AND (NOT $4 OR pagination_key IS NOT DISTINCT FROM $3) RETURNING 1";

/// The [`FENCE`]'s parameters: the key to save, when (the run row's end), and the key this run
/// read (`None` when it read none: a run that never read the key has nothing to compare).
pub(crate) fn fence(
    after: Option<String>,
    saved: SystemTime,
    seen: Option<Option<String>>,
) -> Params<'static> {
    let read = seen.is_some();
    Params::default()
        .with(after, Type::TEXT)
        .at(saved)
        .with(seen.flatten(), Type::TEXT)
        .with(read, Type::BOOL)
}

/// What a batch writes, joined into one statement of data-modifying `WITH` parts: one round
/// trip however many tables change. PostgreSQL runs every part to completion and checks the
/// foreign keys at the end of the statement, so a history row may name a ticket its sibling
/// part inserts. No two parts touch one row: the batch's buffer already merged a contact
/// created then upgraded, a line added then confirmed, an error recorded then resolved.
#[derive(Default)]
pub(crate) struct Write<'a> {
    parts: String,
    params: Params<'a>,
    fenced: bool,
}

impl<'a> Write<'a> {
    /// Adds the part `name`: `statement` with its parameters numbered from `$1`.
    pub fn part(mut self, name: &str, statement: &str, params: Params<'a>) -> Write<'a> {
        let separator = if self.parts.is_empty() {
            "WITH "
        } else {
            ",\n"
        };
        let statement = renumber(statement, self.params.0.len());
        self.parts
            .push_str(&format!("{separator}{name} AS ({statement})"));
        self.params = std::mem::take(&mut self.params).then(params);
        self
    }

    /// Adds the [`FENCE`]: the statement then returns whether it saved the key.
    pub fn fence(self, params: Params<'a>) -> Write<'a> {
        Write {
            fenced: true,
            ..self.part("fence", FENCE, params)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The statement and its parameters; its one row counts the rows the fence saved (0
    /// without a fence).
    pub fn statement(&self) -> (String, &Params<'a>) {
        let result = match self.fenced {
            true => "SELECT count(*) FROM fence",
            false => "SELECT 0::bigint",
        };
        (format!("{}\n{result}", self.parts), &self.params)
    }
}

/// `sql` with its parameters `$n` renumbered `$(n + offset)`; a `$` without digits is left
/// alone (the batch's statements hold none: no dollar quoting, no `$` in a literal).
fn renumber(sql: &str, offset: usize) -> String {
    let mut renumbered = String::with_capacity(sql.len() + 16);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        renumbered.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if let Ok(number) = rest[..digits].parse::<usize>() {
            renumbered.push_str(&(number + offset).to_string());
            rest = &rest[digits..];
        }
    }
    renumbered.push_str(rest);
    renumbered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_renumbered_after_those_before_them() {
        assert_eq!(renumber("a = $1, b = $12 $2x", 3), "a = $4, b = $15 $5x");
        assert_eq!(renumber("no parameter", 7), "no parameter");
        assert_eq!(renumber("a lone $ stays", 7), "a lone $ stays");
        assert_eq!(renumber("$1", 0), "$1");
    }

    #[test]
    fn the_parts_of_a_write_are_one_statement_with_their_parameters_in_order() {
        let write = Write::default()
            .part(
                "a",
                "UPDATE x SET v = $1 WHERE id = $2",
                Params::default()
                    .ids([Some(1)].into_iter())
                    .ids([Some(2)].into_iter()),
            )
            .part(
                "b",
                "INSERT INTO y SELECT $1",
                Params::default().ids([Some(3)].into_iter()),
            );
        let (sql, params) = write.statement();
        assert_eq!(
            sql,
            "WITH a AS (UPDATE x SET v = $1 WHERE id = $2),\nb AS (INSERT INTO y SELECT $3)\nSELECT 0::bigint"
        );
        assert_eq!(params.0.len(), 3);
        let fenced = Write::default().fence(fence(
            Some("k2".into()),
            SystemTime::UNIX_EPOCH,
            Some(Some("k1".into())),
        ));
        let (sql, params) = fenced.statement();
        assert!(sql.starts_with("WITH fence AS (UPDATE sync_state"), "{sql}");
        assert!(sql.ends_with("\nSELECT count(*) FROM fence"), "{sql}");
        assert_eq!(params.0.len(), 4);
        assert!(Write::default().is_empty());
    }
}
