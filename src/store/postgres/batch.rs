//! The one transaction of a batch in PostgreSQL, at a fixed number of round trips whatever the
//! batch's size: the rows the rules read are preloaded with `= ANY($1)` (a read of something not
//! preloaded costs one query), every change is kept in a [`BatchBuffer`] and an [`ErrorBook`],
//! and [`Batch::finish`] writes them set-based (`unnest` arrays), with the run row and the key,
//! in one statement ([`sql::Write`]).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use postgres::Row;
use postgres::types::Type;

use super::buffer::{BatchBuffer, ContactRow, NewLine, PROVISIONAL};
use super::sync_errors::ErrorBook;
use super::{PgStore, Wire};
use crate::error::Error;
use crate::feedback::contacts::{
    ContactBook, ContactWriter, FoundContact, LineStatus, LineToAdd, PendingLine,
};
use crate::feedback::{Spectator, Ticket, TicketRecord, email_key, trim_email};
use crate::report::Counters;
use crate::store::{Batch, FailedTicket, KeyCommit, StoredRow};
use crate::timestamp::Timestamp;

mod sql;

use sql::Params;

/// The transaction of one batch. Dropping it without [`Batch::finish`] rolls everything back.
pub(crate) struct PgBatch<'s> {
    wire: Wire<'s>,
    label: &'s str,
    key_seen: &'s RefCell<Option<Option<String>>>,
    last_round_trips: &'s mut u32,
    run_id: i64,
    /// The batch's time, in the store's form, for every `*_at` it writes.
    now: String,
    buffer: BatchBuffer,
    /// Read on first use.
    errors: Option<ErrorBook>,
    /// The JSON array of the ticket fields the mapping did not read.
    unknown_fields: Option<String>,
}

impl<'s> PgBatch<'s> {
    pub(super) fn begin(
        store: &'s mut PgStore,
        command: &str,
        key_before: Option<&str>,
    ) -> Result<PgBatch<'s>, Error> {
        let PgStore {
            client,
            label,
            key_seen,
            dry_run,
            last_round_trips,
            ..
        } = store;
        let mut wire = Wire::begin(client.get_mut(), label, *dry_run)?;
        let started = Timestamp::now();
        let rows = wire.query(
            "INSERT INTO sync_run (command, started_at, key_before) VALUES ($1, $2, $3) RETURNING id",
            &[
                (&command, Type::TEXT),
                (&started.to_system_time(), Type::TIMESTAMPTZ),
                (&key_before, Type::TEXT),
            ],
        )?;
        Ok(PgBatch {
            wire,
            label,
            key_seen,
            last_round_trips,
            run_id: rows[0].get(0),
            now: started.to_string(),
            buffer: BatchBuffer::default(),
            errors: None,
            unknown_fields: None,
        })
    }

    /// Reads the rows of these tickets the batch does not know yet, in one query.
    fn load_tickets(&mut self, numbers: &[&str]) -> Result<(), Error> {
        let missing: Vec<&str> = unknown(numbers, |n| self.buffer.knows_ticket(n));
        if missing.is_empty() {
            return Ok(());
        }
        let rows = self
            .wire
            .query(&sql::SELECT_TICKETS, &[(&missing, Type::TEXT_ARRAY)])?;
        let mut found: HashMap<String, TicketRecord> = rows
            .iter()
            .map(|row| sql::record_from_row(row).map(|r| (r.ticket_number.clone(), r)))
            .collect::<Result<_, _>>()
            .map_err(|e| super::failure::classify(self.label, &e))?;
        for number in missing {
            self.buffer.load_ticket(number, found.remove(number));
        }
        Ok(())
    }

    /// Reads the contacts of these e-mail keys the batch does not know yet, in one query.
    fn load_contacts(&mut self, keys: &[&str]) -> Result<(), Error> {
        let found = self.read_groups(
            keys,
            BatchBuffer::knows_contacts,
            "SELECT email_key, id, coalesce(temporary, 0) <> 0, coalesce(has_internet_account, 0) <> 0,
                    coalesce(kind = 'individual', false)
             FROM contact WHERE email_key = ANY($1)",
            |row| ContactRow {
                id: row.get(1),
                temporary: row.get(2),
                internet: row.get(3),
                individual: row.get(4),
            },
        )?;
        for (key, rows) in found {
            self.buffer.load_contacts(&key, rows);
        }
        Ok(())
    }

    /// Reads the pending lines of these tickets the batch does not know yet, in one query.
    fn load_lines(&mut self, numbers: &[&str]) -> Result<(), Error> {
        let found = self.read_groups(
            numbers,
            BatchBuffer::knows_lines,
            "SELECT ticket_number, id, new_contact_id FROM distribution
             WHERE ticket_number = ANY($1) AND status = 'PENDING'",
            |row| PendingLine {
                id: row.get(1),
                new_contact_id: row.get(2),
            },
        )?;
        for (number, lines) in found {
            self.buffer.load_lines(&number, lines);
        }
        Ok(())
    }

    /// The rows of `sql` (its first column the key) for each of `keys` the batch does not know
    /// yet, an empty group for a key without rows; no query when it knows them all.
    fn read_groups<T>(
        &mut self,
        keys: &[&str],
        known: fn(&BatchBuffer, &str) -> bool,
        sql: &str,
        item: impl Fn(&Row) -> T,
    ) -> Result<HashMap<String, Vec<T>>, Error> {
        let missing: Vec<&str> = unknown(keys, |key| known(&self.buffer, key));
        if missing.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = self.wire.query(sql, &[(&missing, Type::TEXT_ARRAY)])?;
        let mut groups: HashMap<String, Vec<T>> = missing
            .iter()
            .map(|key| (key.to_string(), Vec::new()))
            .collect();
        for row in &rows {
            if let Some(group) = groups.get_mut(row.get::<_, &str>(0)) {
                group.push(item(row));
            }
        }
        Ok(groups)
    }

    /// The unresolved errors, read once per batch.
    fn errors(&mut self) -> Result<&mut ErrorBook, Error> {
        if self.errors.is_none() {
            let rows = self.wire.query(
                "SELECT id, ticket_number, CASE WHEN ticket_number IS NULL THEN payload END
                 FROM sync_error WHERE resolved_at IS NULL ORDER BY id",
                &[],
            )?;
            let unresolved = rows
                .iter()
                .map(|row| (row.get(0), row.get(1), row.get(2)))
                .collect();
            self.errors = Some(ErrorBook::new(unresolved));
        }
        Ok(self.errors.get_or_insert_default())
    }

    /// Creates a contact once the stored contacts of its e-mail key are known.
    fn create_contact(&mut self, email: &str, details: Option<&Spectator>) -> Result<i64, Error> {
        self.load_contacts(&[&email_key(Some(email)).unwrap_or_default()])?;
        Ok(self.buffer.create_contact(email, details))
    }

    /// Sends the changes kept so far and forgets what the batch had read: the store now holds
    /// it all, so that the batch's memory stays bounded by what one read-ahead brings, however
    /// long the batch.
    fn write_changes(&mut self) -> Result<(), Error> {
        self.write(None).map(drop)
    }

    /// Sends the changes kept so far, then the batch's end if given, in one statement (see
    /// [`sql::Write`]); returns the rows the fence saved (0 without one).
    fn write(&mut self, end: Option<End>) -> Result<i64, Error> {
        let ids = self.contact_ids()?;
        let at = (self.run_id, super::time::sent(&self.now)?);
        let mut write = changes(&self.buffer, self.errors.as_ref(), at, &ids)?;
        if let Some(End { run, fence }) = end {
            write = write.part("run", &sql::FINISH_RUN, run);
            if let Some(fence) = fence {
                write = write.fence(fence);
            }
        }
        let mut fenced = 0;
        if !write.is_empty() {
            let (statement, params) = write.statement();
            fenced = self.wire.query(&statement, &params.as_slice())?[0].get(0);
        }
        drop(write);
        self.buffer = BatchBuffer::default();
        // Read again only when written: its new rows have ids now. Unchanged, it still holds.
        let written = |book: &ErrorBook| {
            book.changed_rows().next().is_some() || book.new_rows().next().is_some()
        };
        if self.errors.as_ref().is_some_and(written) {
            self.errors = None;
        }
        Ok(fenced)
    }

    /// The real ids of the contacts created in the batch, in the order of their creation, from
    /// the table's identity sequence in one query.
    fn contact_ids(&mut self) -> Result<Vec<i64>, Error> {
        let count = self.buffer.new_contacts.len() as i64;
        if count == 0 {
            return Ok(Vec::new());
        }
        let rows = self.wire.query(
            "SELECT nextval(pg_get_serial_sequence('contact', 'id')) AS id
             FROM generate_series(1, $1) ORDER BY id",
            &[(&count, Type::INT8)],
        )?;
        Ok(rows.iter().map(|row: &Row| row.get(0)).collect())
    }
}

/// The parts of the batch's write that hold its changes (see [`sql::Write`]), the run's id and
/// the batch's time `at`; `ids` are the real ids of the contacts it created, in order.
fn changes<'a>(
    buffer: &'a BatchBuffer,
    errors: Option<&'a ErrorBook>,
    (run_id, now): (i64, SystemTime),
    ids: &[i64],
) -> Result<sql::Write<'a>, Error> {
    let real = |id: i64| match id {
        id if id >= PROVISIONAL => ids[(id - PROVISIONAL) as usize],
        id => id,
    };
    let mut write = sql::Write::default();
    if !buffer.new_contacts.is_empty() {
        let params = sql::new_contacts(buffer, ids, now);
        write = write.part("new_contacts", &sql::INSERT_CONTACTS, params);
    }
    if !buffer.upgrades.is_empty() {
        let params = sql::upgrades(buffer, now);
        write = write.part("upgrades", &sql::UPGRADE_CONTACTS, params);
    }
    if buffer.written_tickets().next().is_some() {
        let params = sql::tickets(buffer, &real)?;
        write = write.part("tickets", &sql::UPSERT_TICKETS, params);
    }
    if !buffer.history().is_empty() {
        let params = sql::history(buffer, run_id, now)?;
        write = write.part("history", sql::INSERT_HISTORY, params);
    }
    if !buffer.new_lines.is_empty() {
        let params = sql::new_lines(buffer, &real, run_id, now)?;
        write = write.part("new_lines", sql::INSERT_LINES, params);
    }
    if !buffer.line_statuses.is_empty() {
        let params = sql::line_statuses(buffer, now);
        write = write.part("line_statuses", sql::UPDATE_LINES, params);
    }
    if let Some(book) = errors {
        if book.changed_rows().next().is_some() {
            let params = sql::changed_errors(book, run_id, now);
            write = write.part("changed_errors", sql::UPDATE_ERRORS, params);
        }
        if book.new_rows().next().is_some() {
            let params = sql::new_errors(book, run_id, now);
            write = write.part("new_errors", sql::INSERT_ERRORS, params);
        }
    }
    Ok(write)
}

/// The end of a batch, written with its last changes: the run row's figures, and the fence
/// that saves the key when the run saves it.
struct End {
    run: Params<'static>,
    fence: Option<Params<'static>>,
}

/// The items the batch does not know yet, each once.
fn unknown<'a>(items: &[&'a str], known: impl Fn(&str) -> bool) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    items
        .iter()
        .copied()
        .filter(|item| !known(item) && seen.insert(*item))
        .collect()
}

impl Batch for PgBatch<'_> {
    fn now(&self) -> &str {
        &self.now
    }

    /// Three queries: the tickets' rows, the contacts of their owners' and recipients' e-mail
    /// keys, their pending lines; after the changes of the tickets before them are written.
    fn preload(&mut self, tickets: &[&Ticket]) -> Result<(), Error> {
        self.write_changes()?;
        let numbers: Vec<&str> = tickets.iter().map(|t| t.ticket_number.as_str()).collect();
        let keys: Vec<String> = tickets
            .iter()
            .flat_map(|t| {
                let owner = t.owner.as_ref().and_then(|o| o.email.as_deref());
                [owner, t.transfer_recipient_email.as_deref()]
            })
            .filter_map(email_key)
            .collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.load_tickets(&numbers)?;
        self.load_contacts(&keys)?;
        self.load_lines(&numbers)
    }

    fn unresolved_error_tickets(&mut self) -> Result<HashSet<String>, Error> {
        Ok(self.errors()?.unresolved_tickets())
    }

    fn ticket(&mut self, ticket_number: &str) -> Result<Option<(StoredRow, TicketRecord)>, Error> {
        self.load_tickets(&[ticket_number])?;
        Ok(self.buffer.ticket(ticket_number).map(|record| {
            let stored = StoredRow {
                id: 0,
                cultural_contact_id: record.cultural_contact_id,
            };
            (stored, record.clone())
        }))
    }

    fn write_ticket(
        &mut self,
        record: &TicketRecord,
        _stored: Option<StoredRow>,
    ) -> Result<(), Error> {
        self.buffer.write_ticket(record);
        Ok(())
    }

    fn append_history(&mut self, record: &TicketRecord) -> Result<(), Error> {
        self.buffer.append_history(record);
        Ok(())
    }

    fn resolve_errors(&mut self, ticket_number: &str) -> Result<(), Error> {
        self.errors()?.resolve_ticket(ticket_number);
        Ok(())
    }

    fn resolve_error(&mut self, id: i64) -> Result<(), Error> {
        self.errors()?.resolve_id(id);
        Ok(())
    }

    fn refresh_error(&mut self, id: i64, reason: &str) -> Result<(), Error> {
        self.errors()?.refresh_id(id, reason);
        Ok(())
    }

    fn record_error(&mut self, failed: &FailedTicket<'_>) -> Result<(), Error> {
        self.errors()?
            .record(failed.number, failed.reason, failed.payload);
        Ok(())
    }

    fn record_unknown_fields(&mut self, names: &[String]) -> Result<(), Error> {
        let names = serde_json::to_string(names).map_err(|e| Error::Internal(e.to_string()))?;
        self.unknown_fields = Some(names);
        Ok(())
    }

    fn finish(
        mut self: Box<Self>,
        counters: &Counters,
        keys: &KeyCommit,
        exit_code: u8,
    ) -> Result<(), Error> {
        // One instant for the run row's end and the key's save.
        let finished = Timestamp::now().to_system_time();
        let unknown = &self.unknown_fields;
        let run = sql::finished_run(self.run_id, finished, counters, keys, exit_code, unknown)?;
        let seen = self.key_seen.borrow().clone();
        let fence = (keys.save).then(|| sql::fence(keys.after.clone(), finished, seen));
        let fenced = self.write(Some(End { run, fence }))?;
        if keys.save && fenced == 0 {
            return Err(super::failure::contended(
                self.label,
                "another run moved the pagination key: this run lost its lock",
            ));
        }
        let PgBatch {
            wire,
            key_seen,
            last_round_trips,
            ..
        } = *self;
        let round_trips = wire.commit()?;
        if keys.save {
            *key_seen.borrow_mut() = Some(keys.after.clone());
        }
        *last_round_trips = round_trips;
        log::info!("batch written in {round_trips} round trips to the server");
        Ok(())
    }
}

impl ContactBook for PgBatch<'_> {
    fn contact_by_email(&mut self, email_key: &str) -> Result<Option<FoundContact>, Error> {
        self.load_contacts(&[email_key])?;
        Ok(self.buffer.contact_by_email(email_key))
    }

    fn pending_lines(&mut self, ticket_number: &str) -> Result<Vec<PendingLine>, Error> {
        self.load_lines(&[ticket_number])?;
        Ok(self.buffer.pending_lines(ticket_number))
    }
}

impl ContactWriter for PgBatch<'_> {
    fn create_owner_contact(&mut self, owner: &Spectator) -> Result<i64, Error> {
        let email = trim_email(owner.email.as_deref().unwrap_or_default());
        self.create_contact(email, Some(owner))
    }

    fn upgrade_contact(&mut self, id: i64, owner: &Spectator) -> Result<(), Error> {
        self.buffer.upgrade_contact(id, owner);
        Ok(())
    }

    fn create_temporary_contact(&mut self, email: &str) -> Result<i64, Error> {
        self.create_contact(email, None)
    }

    fn set_line_status(&mut self, id: i64, status: LineStatus) -> Result<(), Error> {
        self.buffer.set_line_status(id, status);
        Ok(())
    }

    fn insert_line(&mut self, line: &LineToAdd<'_>) -> Result<(), Error> {
        self.load_lines(&[line.ticket_number])?;
        self.buffer.insert_line(NewLine {
            ticket_number: line.ticket_number.to_owned(),
            old_contact_id: line.old_contact_id,
            new_contact_id: line.new_contact_id,
            status: line.status,
            operator_login: line.written.operator_login.to_owned(),
            ticket_state: line.written.ticket_state.map(str::to_owned),
            date_time: line.written.date_time.to_owned(),
        });
        Ok(())
    }
}
