//! The one transaction of a batch in SQLite: every read and write the sync makes for it, one
//! prepared statement per row (a read or a write costs no round trip here).

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::Path;
use std::sync::LazyLock;

use rusqlite::types::ToSql;
use rusqlite::{
    Connection, OptionalExtension, PrepFlags, Row, Statement, Transaction, TransactionBehavior,
    params,
};

use super::InStore;
use super::overlay::Overlay;
use crate::error::Error;
use crate::feedback::contacts::{
    ContactBook, ContactWriter, FoundContact, LineStatus, LineToAdd, PendingLine,
};
use crate::feedback::{FieldValue, ReadColumns, Spectator, Ticket, TicketRecord, trim_email};
use crate::report::Counters;
use crate::store::{Batch, FailedTicket, KeyCommit, StoredRow};
use crate::timestamp::Timestamp;

/// The columns of `ticket`, in the order of [`record_params`] and [`record_from_row`].
const TICKET_COLUMNS: [&str; TicketRecord::COLUMNS.len()] = TicketRecord::COLUMNS;

static SELECT_TICKET: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, rowid FROM ticket WHERE ticket_number = ?1",
        TICKET_COLUMNS.join(", ")
    )
});

static INSERT_TICKET: LazyLock<String> = LazyLock::new(|| {
    let placeholders: Vec<String> = (1..=TICKET_COLUMNS.len())
        .map(|i| format!("?{i}"))
        .collect();
    format!(
        "INSERT INTO ticket ({}) VALUES ({})",
        TICKET_COLUMNS.join(", "),
        placeholders.join(", ")
    )
});

/// The update of a stored row by its rowid (the last parameter), the columns of [`TicketRecord::SET_ONCE`] kept
/// and `cultural_contact_id` set only when `with_contact` holds: an UPDATE that sets a
/// foreign-key column makes SQLite copy every page it touches into a statement journal first,
/// the largest single cost of a batch when most updates keep the contact.
fn update_sql(with_contact: bool) -> String {
    let updates: Vec<String> = TICKET_COLUMNS
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            !TicketRecord::SET_ONCE.contains(c) && (with_contact || **c != "cultural_contact_id")
        })
        .map(|(i, c)| format!("{c} = ?{}", i + 1))
        .collect();
    format!(
        "UPDATE ticket SET {} WHERE rowid = ?{}",
        updates.join(", "),
        TICKET_COLUMNS.len() + 1
    )
}

static UPDATE_TICKET: LazyLock<String> = LazyLock::new(|| update_sql(false));
static UPDATE_TICKET_AND_CONTACT: LazyLock<String> = LazyLock::new(|| update_sql(true));

static FINISH_RUN: LazyLock<String> = LazyLock::new(|| {
    let figures: Vec<String> = Counters::NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| format!("{name} = ?{}", i + 4))
        .collect();
    format!(
        "UPDATE sync_run SET finished_at = ?1, key_after = ?2, exit_code = ?3, {} WHERE id = ?{}",
        figures.join(", "),
        Counters::NAMES.len() + 4
    )
});

/// The values of a row as SQLite parameters, borrowed from the record (no copy per ticket).
fn record_params(r: &TicketRecord) -> [&dyn ToSql; TicketRecord::COLUMNS.len()] {
    r.values().map(|value| match value {
        FieldValue::Text(text) => text as &dyn ToSql,
        FieldValue::OptionalText(text) => text,
        FieldValue::OptionalInteger(integer) => integer,
    })
}

/// The contact columns copied from `spectatorDetails` (SPEC §4.5), from `title` to
/// `accept_third_party_email`.
fn contact_details(owner: &Spectator) -> [&dyn ToSql; 11] {
    [
        &owner.title,
        &owner.first_name,
        &owner.last_name,
        &owner.birth_date,
        &owner.nationality,
        &owner.id_number,
        &owner.phone,
        &owner.residence_country,
        &owner.language,
        &owner.allow_promo_email,
        &owner.allow_third_party_email,
    ]
}

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<TicketRecord> {
    TicketRecord::read(row)
}

impl ReadColumns for Row<'_> {
    type Error = rusqlite::Error;

    fn text(&self, index: usize) -> rusqlite::Result<Option<String>> {
        self.get(index)
    }

    fn integer(&self, index: usize) -> rusqlite::Result<Option<i64>> {
        self.get(index)
    }
}

/// The transaction of one batch. Dropping it without [`Batch::finish`] rolls everything back.
pub(crate) struct SqliteBatch<'s> {
    /// The statements every ticket runs, prepared once per batch rather than looked up in the
    /// connection's cache by their text (hashing an update of over a kilobyte for every ticket
    /// is not free).
    hot: HotStatements<'s>,
    tx: Transaction<'s>,
    path: &'s Path,
    /// A dry run's overlay: the rows a read needs are copied from the store first.
    overlay: Option<&'s Overlay>,
    run_id: i64,
    /// The batch's time, in the store's form, for every `*_at` it writes.
    now: String,
}

struct HotStatements<'s> {
    select_ticket: RefCell<Statement<'s>>,
    insert_ticket: RefCell<Statement<'s>>,
    update_ticket: RefCell<Statement<'s>>,
    update_ticket_and_contact: RefCell<Statement<'s>>,
    insert_history: RefCell<Statement<'s>>,
    contact_by_email: RefCell<Statement<'s>>,
    lines_of_ticket: RefCell<Statement<'s>>,
}

impl<'s> HotStatements<'s> {
    fn prepare(conn: &'s Connection) -> rusqlite::Result<HotStatements<'s>> {
        // Persistent: SQLite then keeps its small-allocation slots for the work of each step.
        let prepare = |sql: &str| {
            conn.prepare_with_flags(sql, PrepFlags::SQLITE_PREPARE_PERSISTENT)
                .map(RefCell::new)
        };
        Ok(HotStatements {
            select_ticket: prepare(&SELECT_TICKET)?,
            insert_ticket: prepare(&INSERT_TICKET)?,
            update_ticket: prepare(&UPDATE_TICKET)?,
            update_ticket_and_contact: prepare(&UPDATE_TICKET_AND_CONTACT)?,
            insert_history: prepare(
                "INSERT INTO ticket_history (ticket_number, mobile_status, owner_email, holder_first_name,
                    holder_last_name, tixngo_updated_at, run_id, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?,
            // Usually one row; the preference is applied in Rust rather than with ORDER BY, which
            // would build a temporary b-tree for every look-up.
            contact_by_email: prepare(
                "SELECT id, coalesce(temporary, 0), coalesce(has_internet_account, 0),
                        coalesce(kind = 'individual', 0)
                 FROM contact WHERE email_key = ?1",
            )?,
            // The status is filtered in Rust, not in SQL: with a second equality on the index,
            // SQLite re-prepares the statement at every binding of the ticket number.
            lines_of_ticket: prepare(
                "SELECT id, new_contact_id, status = 'PENDING' FROM distribution WHERE ticket_number = ?1",
            )?,
        })
    }
}

impl<'s> SqliteBatch<'s> {
    pub(super) fn begin(
        conn: &'s Connection,
        path: &'s Path,
        overlay: Option<&'s Overlay>,
        command: &str,
        key_before: Option<&str>,
    ) -> Result<SqliteBatch<'s>, Error> {
        let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate).in_store(path)?;
        let now = Timestamp::now().to_string();
        tx.execute(
            "INSERT INTO sync_run (command, started_at, key_before) VALUES (?1, ?2, ?3)",
            params![command, now, key_before],
        )
        .in_store(path)?;
        let run_id = tx.last_insert_rowid();
        Ok(SqliteBatch {
            hot: HotStatements::prepare(conn).in_store(path)?,
            tx,
            path,
            overlay,
            run_id,
            now,
        })
    }

    fn execute(&self, sql: &str, params: &[&dyn ToSql]) -> Result<usize, Error> {
        self.tx
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute(params))
            .in_store(self.path)
    }

    /// In a dry run, copies the rows a read is about to need from the store (see [`Overlay`]).
    fn copy_in(&self, copy: impl FnOnce(&Overlay) -> &str, key: &str) -> Result<(), Error> {
        match self.overlay {
            Some(overlay) => self.execute(copy(overlay), &[&key]).map(drop),
            None => Ok(()),
        }
    }
}

impl Batch for SqliteBatch<'_> {
    fn now(&self) -> &str {
        &self.now
    }

    /// Nothing to read ahead: a read costs no round trip.
    fn preload(&mut self, _tickets: &[&Ticket]) -> Result<(), Error> {
        Ok(())
    }

    fn ticket(&mut self, ticket_number: &str) -> Result<Option<(StoredRow, TicketRecord)>, Error> {
        self.copy_in(|overlay| &overlay.copy_ticket, ticket_number)?;
        self.hot
            .select_ticket
            .borrow_mut()
            .query_row([ticket_number], |row| {
                let record = record_from_row(row)?;
                let stored = StoredRow {
                    id: row.get(TICKET_COLUMNS.len())?,
                    cultural_contact_id: record.cultural_contact_id,
                };
                Ok((stored, record))
            })
            .optional()
            .in_store(self.path)
    }

    fn write_ticket(
        &mut self,
        record: &TicketRecord,
        stored: Option<StoredRow>,
    ) -> Result<(), Error> {
        let values = record_params(record);
        match stored {
            None => self.hot.insert_ticket.borrow_mut().execute(&values[..]),
            Some(stored) => {
                let statement = if stored.cultural_contact_id == record.cultural_contact_id {
                    &self.hot.update_ticket
                } else {
                    &self.hot.update_ticket_and_contact
                };
                let mut values = values.to_vec();
                values.push(&stored.id);
                statement.borrow_mut().execute(&values[..])
            }
        }
        .map(drop)
        .in_store(self.path)
    }

    fn append_history(&mut self, record: &TicketRecord) -> Result<(), Error> {
        self.hot
            .insert_history
            .borrow_mut()
            .execute(params![
                record.ticket_number,
                record.mobile_status,
                record.owner_email,
                record.holder_first_name,
                record.holder_last_name,
                record.tixngo_updated_at,
                self.run_id,
                self.now,
            ])
            .map(drop)
            .in_store(self.path)
    }

    fn unresolved_error_tickets(&mut self) -> Result<HashSet<String>, Error> {
        let mut statement = self
            .tx
            .prepare_cached(
                "SELECT DISTINCT ticket_number FROM sync_error
                 WHERE resolved_at IS NULL AND ticket_number IS NOT NULL",
            )
            .in_store(self.path)?;
        let numbers = statement
            .query_map([], |row| row.get(0))
            .and_then(|rows| rows.collect())
            .in_store(self.path)?;
        Ok(numbers)
    }

    fn resolve_errors(&mut self, ticket_number: &str) -> Result<(), Error> {
        self.execute(
            "UPDATE sync_error SET resolved_at = ?1 WHERE ticket_number = ?2 AND resolved_at IS NULL",
            params![self.now, ticket_number],
        )
        .map(drop)
    }

    fn resolve_error(&mut self, id: i64) -> Result<(), Error> {
        self.execute(
            "UPDATE sync_error SET resolved_at = ?1 WHERE id = ?2 AND resolved_at IS NULL",
            params![self.now, id],
        )
        .map(drop)
    }

    fn refresh_error(&mut self, id: i64, reason: &str) -> Result<(), Error> {
        self.execute(
            "UPDATE sync_error SET run_id = ?1, reason = ?2 WHERE id = ?3",
            params![self.run_id, reason, id],
        )
        .map(drop)
    }

    fn record_error(&mut self, failed: &FailedTicket<'_>) -> Result<(), Error> {
        let FailedTicket {
            number: ticket_number,
            reason,
            payload,
        } = *failed;
        let refreshed = match ticket_number {
            Some(number) => self.execute(
                "UPDATE sync_error SET run_id = ?1, reason = ?2, payload = ?3
                 WHERE ticket_number = ?4 AND resolved_at IS NULL",
                params![self.run_id, reason, payload, number],
            )?,
            None => self.execute(
                "UPDATE sync_error SET run_id = ?1, reason = ?2
                 WHERE ticket_number IS NULL AND payload = ?3 AND resolved_at IS NULL",
                params![self.run_id, reason, payload],
            )?,
        };
        if refreshed == 0 {
            self.execute(
                "INSERT INTO sync_error (run_id, ticket_number, reason, payload) VALUES (?1, ?2, ?3, ?4)",
                params![self.run_id, ticket_number, reason, payload],
            )?;
        }
        Ok(())
    }

    fn record_unknown_fields(&mut self, names: &[String]) -> Result<(), Error> {
        let names = serde_json::to_string(names).map_err(|e| Error::Internal(e.to_string()))?;
        self.execute(
            "UPDATE sync_run SET unknown_fields = ?1 WHERE id = ?2",
            params![names, self.run_id],
        )
        .map(drop)
    }

    fn finish(
        self: Box<Self>,
        counters: &Counters,
        keys: &KeyCommit,
        exit_code: u8,
    ) -> Result<(), Error> {
        let key_after = keys.after.as_deref();
        let finished_at = Timestamp::now().to_string();
        let mut values: Vec<&dyn ToSql> = vec![&finished_at, &key_after, &exit_code];
        let figures = counters.values();
        values.extend(figures.iter().map(|v| v as &dyn ToSql));
        values.push(&self.run_id);
        self.execute(&FINISH_RUN, &values)?;
        if let Some(feed) = &keys.feed {
            self.execute(
                "UPDATE sync_run
                 SET caught_up = ?1, newest_change_at = ?2, feed_lag_seconds = ?3, runs_behind = ?4
                 WHERE id = ?5",
                params![
                    feed.caught_up,
                    feed.newest_change_at,
                    feed.feed_lag_seconds,
                    feed.runs_behind,
                    self.run_id
                ],
            )?;
        }
        if keys.save {
            self.execute(
                "UPDATE sync_state SET pagination_key = ?1, updated_at = ?2 WHERE id = 1",
                params![key_after, finished_at],
            )?;
        }
        self.tx.commit().in_store(self.path)
    }
}

impl ContactBook for SqliteBatch<'_> {
    fn contact_by_email(&mut self, email_key: &str) -> Result<Option<FoundContact>, Error> {
        self.copy_in(|overlay| &overlay.copy_contacts, email_key)?;
        let mut statement = self.hot.contact_by_email.borrow_mut();
        let mut rows = statement.query([email_key]).in_store(self.path)?;
        let mut best: Option<((bool, bool, bool, i64), FoundContact)> = None;
        while let Some(row) = rows.next().in_store(self.path)? {
            let read = || -> rusqlite::Result<_> {
                let id: i64 = row.get(0)?;
                let internet: i64 = row.get(2)?;
                let individual: i64 = row.get(3)?;
                let contact = FoundContact {
                    id,
                    temporary: row.get::<_, i64>(1)? != 0,
                };
                // Smallest wins: an internet account, then an individual, then a real contact
                // (SPEC §4.5 stops at the lowest id; preferring a temporary one there would
                // upgrade it into a duplicate of the real one), then the lowest id.
                Ok((
                    (internet == 0, individual == 0, contact.temporary, id),
                    contact,
                ))
            };
            let (rank, contact) = read().in_store(self.path)?;
            if best.as_ref().is_none_or(|(best_rank, _)| rank < *best_rank) {
                best = Some((rank, contact));
            }
        }
        Ok(best.map(|(_, contact)| contact))
    }

    fn pending_lines(&mut self, ticket_number: &str) -> Result<Vec<PendingLine>, Error> {
        self.copy_in(|overlay| &overlay.copy_lines, ticket_number)?;
        let mut statement = self.hot.lines_of_ticket.borrow_mut();
        let mut lines = Vec::new();
        let mut rows = statement.query([ticket_number]).in_store(self.path)?;
        while let Some(row) = rows.next().in_store(self.path)? {
            let pending: bool = row.get(2).in_store(self.path)?;
            if pending {
                lines.push(PendingLine {
                    id: row.get(0).in_store(self.path)?,
                    new_contact_id: row.get(1).in_store(self.path)?,
                });
            }
        }
        lines.sort_unstable_by_key(|line| line.id);
        Ok(lines)
    }
}

impl ContactWriter for SqliteBatch<'_> {
    fn create_owner_contact(&mut self, owner: &Spectator) -> Result<i64, Error> {
        let email = trim_email(owner.email.as_deref().unwrap_or_default());
        let mut values = vec![&email as &dyn ToSql];
        values.extend(contact_details(owner));
        values.push(&self.now);
        self.execute(
            "INSERT INTO contact (email, title, first_name, last_name, birth_date, nationality,
                id_number, phone, residence_country, language, accept_institution_email,
                accept_third_party_email, temporary, has_internet_account, kind, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 0, 1, 'individual', ?13, ?13)",
            &values,
        )?;
        Ok(self.tx.last_insert_rowid())
    }

    fn upgrade_contact(&mut self, id: i64, owner: &Spectator) -> Result<(), Error> {
        let mut values = contact_details(owner).to_vec();
        values.extend([&self.now as &dyn ToSql, &id]);
        self.execute(
            "UPDATE contact SET title = ?1, first_name = ?2, last_name = ?3, birth_date = ?4,
                nationality = ?5, id_number = ?6, phone = ?7, residence_country = ?8, language = ?9,
                accept_institution_email = ?10, accept_third_party_email = ?11, temporary = 0,
                has_internet_account = 1, updated_at = ?12
             WHERE id = ?13 AND temporary = 1",
            &values,
        )
        .map(drop)
    }

    fn create_temporary_contact(&mut self, email: &str) -> Result<i64, Error> {
        self.execute(
            "INSERT INTO contact (email, first_name, last_name, temporary, has_internet_account, kind,
                created_at, updated_at)
             VALUES (?1, 'Pending', 'CREATION', 1, 0, 'individual', ?2, ?2)",
            params![email, self.now],
        )?;
        Ok(self.tx.last_insert_rowid())
    }

    fn set_line_status(&mut self, id: i64, status: LineStatus) -> Result<(), Error> {
        self.execute(
            "UPDATE distribution SET status = ?1, updated_at = ?2 WHERE id = ?3",
            params![status.as_str(), self.now, id],
        )
        .map(drop)
    }

    fn insert_line(&mut self, line: &LineToAdd<'_>) -> Result<(), Error> {
        self.execute(
            "INSERT INTO distribution (ticket_number, old_contact_id, new_contact_id, action, status,
                created_at, updated_at, run_id, operator_login, ticket_state, date_time)
             VALUES (?1, ?2, ?3, 'DISTRIBUTE', ?4, ?5, ?5, ?6, ?7, ?8, ?9)",
            params![
                line.ticket_number,
                line.old_contact_id,
                line.new_contact_id,
                line.status.as_str(),
                self.now,
                self.run_id,
                line.written.operator_login,
                line.written.ticket_state,
                line.written.date_time,
            ],
        )
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;
    use crate::store::sqlite::SqliteStore;

    /// A row whose every column holds its own name and `tag` (integers: `tag` plus the
    /// column's position), so that a column read or written in another's place shows.
    struct Tagged(i64);

    impl ReadColumns for Tagged {
        type Error = Infallible;

        fn text(&self, index: usize) -> Result<Option<String>, Infallible> {
            Ok(Some(format!("{} {}", TICKET_COLUMNS[index], self.0)))
        }

        fn integer(&self, index: usize) -> Result<Option<i64>, Infallible> {
            Ok(Some(self.0 + index as i64))
        }
    }

    fn tagged(tag: i64) -> TicketRecord {
        let Ok(record) = TicketRecord::read(&Tagged(tag));
        record
    }

    #[test]
    fn the_record_s_columns_are_the_schema_s_ticket_columns() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("store.db"), None).unwrap();
        let mut schema: Vec<String> = store
            .conn
            .prepare("SELECT name FROM pragma_table_info('ticket')")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        schema.sort_unstable();
        let mut columns = TICKET_COLUMNS.to_vec();
        columns.sort_unstable();
        assert_eq!(schema, columns);
    }

    #[test]
    fn every_column_is_written_and_read_in_its_place_and_set_once_columns_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("store.db"), None).unwrap();
        let mut batch = SqliteBatch::begin(&store.conn, &store.path, None, "sync", None).unwrap();
        let (first, second) = (tagged(1000), tagged(2000));
        for id in [first.cultural_contact_id, second.cultural_contact_id] {
            batch
                .execute(
                    "INSERT INTO contact (id, email) VALUES (?1, 'fan@example.org')",
                    &[&id],
                )
                .unwrap();
        }
        batch.write_ticket(&first, None).unwrap();
        let number = first.ticket_number.as_str();
        let (row, stored) = batch.ticket(number).unwrap().unwrap();
        assert_eq!(stored, first);

        // The contact changes (one update statement), then only the other columns (the other).
        let mut expected = TicketRecord {
            ticket_number: first.ticket_number.clone(),
            s360_state: first.s360_state.clone(),
            first_synced_at: first.first_synced_at.clone(),
            ..second.clone()
        };
        batch.write_ticket(&second, Some(row)).unwrap();
        let (row, stored) = batch.ticket(number).unwrap().unwrap();
        assert_eq!(stored, expected);
        expected.mobile_status = "DELETED".into();
        batch.write_ticket(&expected, Some(row)).unwrap();
        assert_eq!(batch.ticket(number).unwrap().unwrap().1, expected);
    }
}
