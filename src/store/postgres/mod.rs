//! The PostgreSQL store (SPEC §10): one schema of a shared server. A batch is one transaction
//! that costs a fixed number of round trips whatever its size ([`batch`]): its reads are made
//! ahead with `= ANY($1)`, its writes kept in memory ([`buffer`], [`sync_errors`]) and sent
//! set-based at the commit. The commands' reads and changes are in [`queries`].
//!
//! Every statement goes out with `query_typed` (its parameter types given): one round trip,
//! where a plain `query` would prepare it first.

mod batch;
mod buffer;
pub mod error;
mod queries;
mod schema;
mod sync_errors;

use std::cell::RefCell;

use postgres::types::{ToSql, Type};
use postgres::{Client, Row};

use crate::error::Error;

/// An open PostgreSQL store.
pub struct PgStore {
    client: RefCell<Client>,
    /// Names the store in messages (never a password).
    label: String,
    /// The key as this run last read or saved it (`None`: not read yet): a batch that saves the
    /// key commits only if the store still holds this one.
    key_seen: RefCell<Option<Option<String>>>,
    /// A dry run: everything happens in one transaction, rolled back when the store closes.
    dry_run: bool,
    /// The round trips of the latest batch committed.
    last_round_trips: u32,
}

impl PgStore {
    /// A store on a connected client whose `search_path` is the organizer's schema: the schema
    /// is migrated forward, and a dry run opens its one transaction.
    pub fn from_client(client: Client, label: &str, dry_run: bool) -> Result<PgStore, Error> {
        let mut store = PgStore {
            client: RefCell::new(client),
            label: label.to_owned(),
            key_seen: RefCell::new(None),
            dry_run: false,
            last_round_trips: 0,
        };
        store.migrate()?;
        if dry_run {
            Wire::open(store.client.get_mut(), &store.label, "BEGIN")?.keep();
            store.dry_run = true;
        }
        Ok(store)
    }

    /// The round trips to the server the latest committed batch cost, its `BEGIN` and `COMMIT`
    /// included.
    pub fn last_batch_round_trips(&self) -> u32 {
        self.last_round_trips
    }

    /// Runs `work` in a transaction of its own (a savepoint of a dry run's), committed when it
    /// succeeds.
    fn in_transaction<T>(
        &mut self,
        work: impl FnOnce(&mut Wire<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut wire = Wire::begin(self.client.get_mut(), &self.label, self.dry_run)?;
        let result = work(&mut wire)?;
        wire.commit()?;
        Ok(result)
    }

    /// One statement outside any transaction of the run's own (a read).
    fn read(&self, sql: &str, params: &[(&(dyn ToSql + Sync), Type)]) -> Result<Vec<Row>, Error> {
        self.client
            .borrow_mut()
            .query_typed(sql, params)
            .map_err(|e| error::classify(&self.label, &e))
    }
}

impl Drop for PgStore {
    /// Ends a dry run's transaction (closing the session would too).
    fn drop(&mut self) {
        if self.dry_run {
            let _ = self.client.get_mut().batch_execute("ROLLBACK");
        }
    }
}

/// A transaction on the store's session that counts its round trips and rolls back when dropped
/// before [`Wire::commit`].
pub(super) struct Wire<'c> {
    client: &'c mut Client,
    label: &'c str,
    round_trips: u32,
    /// What ends the transaction: `(commit, rollback)`; `None` once ended.
    end: Option<(&'static str, &'static str)>,
}

impl<'c> Wire<'c> {
    /// Starts a transaction, or a savepoint inside a dry run's transaction.
    fn begin(client: &'c mut Client, label: &'c str, nested: bool) -> Result<Wire<'c>, Error> {
        let mut wire = if nested {
            Wire::open(client, label, "SAVEPOINT work")?
        } else {
            Wire::open(client, label, "BEGIN")?
        };
        wire.end = Some(if nested {
            (
                "RELEASE SAVEPOINT work",
                "ROLLBACK TO SAVEPOINT work; RELEASE SAVEPOINT work",
            )
        } else {
            ("COMMIT", "ROLLBACK")
        });
        Ok(wire)
    }

    fn open(client: &'c mut Client, label: &'c str, start: &str) -> Result<Wire<'c>, Error> {
        let mut wire = Wire {
            client,
            label,
            round_trips: 0,
            end: None,
        };
        wire.simple(start)?;
        Ok(wire)
    }

    /// Leaves what was started open (a dry run's outer transaction).
    fn keep(mut self) {
        self.end = None;
    }

    /// One statement with typed parameters: one round trip.
    pub(super) fn query(
        &mut self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, Error> {
        self.round_trips += 1;
        self.client
            .query_typed(sql, params)
            .map_err(|e| error::classify(self.label, &e))
    }

    /// Statements without parameters, sent as one simple query: one round trip.
    pub(super) fn simple(&mut self, sql: &str) -> Result<(), Error> {
        self.round_trips += 1;
        self.client
            .batch_execute(sql)
            .map_err(|e| error::classify(self.label, &e))
    }

    /// Commits (releases the savepoint): the round trips the transaction cost.
    pub(super) fn commit(mut self) -> Result<u32, Error> {
        if let Some((commit, _)) = self.end.take() {
            self.simple(commit)?;
        }
        Ok(self.round_trips)
    }
}

impl Drop for Wire<'_> {
    fn drop(&mut self) {
        if let Some((_, rollback)) = self.end.take() {
            let _ = self.client.batch_execute(rollback);
        }
    }
}

/// A `timestamptz` column read in the store's text form (`YYYY-MM-DDTHH:MM:SS.mmmZ`, as SQLite
/// holds it), so that both backends give the same bytes.
pub(super) fn read_time(column: &str) -> String {
    format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
}

/// A `timestamptz` value written from an expression in the store's text form.
pub(super) fn write_time(expression: &str) -> String {
    format!("({expression})::timestamptz")
}
