//! The PostgreSQL store (SPEC §10): the same tables, rules and exit codes as the SQLite store,
//! in one schema per organizer of a shared database server.
//!
//! A writing command opens it with [`PgStore::open`]: connect, take the schema's advisory lock
//! on that session (held until the session ends), then create or migrate the schema under the
//! lock. Read-only commands use [`PgStore::open_read_only`]: no lock, and a missing or older
//! schema is refused, as SQLite's `Store::open_read_only` refuses a missing store.
//!
//! A batch is one transaction that costs a fixed number of round trips whatever its size
//! ([`batch`]): its reads are made ahead with `= ANY($1)`, its writes kept in memory ([`buffer`],
//! [`sync_errors`]) and sent set-based at the commit. The commands' reads and changes are in
//! [`queries`]. Every statement goes out with `query_typed` (its parameter types given): one
//! round trip, where a plain `query` would prepare it first.

mod batch;
mod buffer;
mod connect;
mod failure;
mod lock;
mod queries;
mod schema;
mod sync_errors;
mod target;
mod time;

use std::cell::RefCell;
use std::time::Instant;

use postgres::types::{ToSql, Type};
use postgres::{Client, Row};

pub use lock::lock_key;
pub use target::PgTarget;
pub(crate) use target::{DEFAULT_SCHEMA, is_url, parse_schema, url_scheme};

use crate::error::Error;
use failure::{InPg, classify, unusable};

/// An open PostgreSQL store: the run's one session, locked when it writes. The session sits in
/// a `RefCell` because the client needs `&mut` even to read, and the store's readers take `&self`
/// as SQLite's do.
pub struct PgStore {
    client: RefCell<Client>,
    /// The store as messages name it (URL without password, and schema).
    label: String,
    schema: String,
    /// The key as this run last read or saved it (`None`: not read yet): a batch that saves the
    /// key commits only if the store still holds this one (the fence of a run that lost its lock).
    key_seen: RefCell<Option<Option<String>>>,
    /// A dry run: everything happens in one transaction, rolled back when the store closes.
    dry_run: bool,
    /// The round trips of the latest batch committed.
    last_round_trips: u32,
}

impl PgStore {
    /// Opens the store for writing: connects, takes the lock (held → 75, naming the holder),
    /// then creates the schema on first use and migrates it forward. A schema newer than this
    /// binary is refused (78). A dry run first opens the one transaction it rolls back when the
    /// store closes: the schema it creates or migrates goes with it (PostgreSQL's DDL is
    /// transactional), so a dry run leaves the server as it found it.
    pub fn open(
        target: &PgTarget,
        deadline: Option<Instant>,
        dry_run: bool,
    ) -> Result<PgStore, Error> {
        let mut store = PgStore::connect(target, deadline, false)?;
        lock::acquire(store.client.get_mut(), &store.label, &store.schema)?;
        if dry_run {
            store.begin_dry_run()?;
        }
        store.migrate()?;
        Ok(store)
    }

    /// Opens a dry run's one transaction, rolled back when the store closes.
    fn begin_dry_run(&mut self) -> Result<(), Error> {
        Wire::open(self.client.get_mut(), &self.label, "BEGIN")?.keep();
        self.dry_run = true;
        Ok(())
    }

    /// A store on a session the caller connected, its `search_path` set to `schema`: the schema
    /// is created or migrated as [`PgStore::open`] does, without taking the lock (the caller's
    /// affair). For tests and tools that bring their own session.
    pub fn from_client(client: Client, schema: &str, dry_run: bool) -> Result<PgStore, Error> {
        let mut store = PgStore {
            client: RefCell::new(client),
            label: schema.to_owned(),
            schema: schema.to_owned(),
            key_seen: RefCell::new(None),
            dry_run: false,
            last_round_trips: 0,
        };
        if dry_run {
            store.begin_dry_run()?;
        }
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing store for reading only (`status`, `cursor show`, `skip list`, `errors
    /// list`): no lock, the session read-only, and a schema that is missing or older than this
    /// binary is refused (74) — nothing is created.
    pub fn open_read_only(target: &PgTarget, deadline: Option<Instant>) -> Result<PgStore, Error> {
        let mut store = PgStore::connect(target, deadline, true)?;
        let supported = schema::MIGRATIONS.len() as i64;
        match store.schema_version()? {
            None => Err(unusable(
                &store.label,
                "has no tixngo-feedback schema yet: run `tixngo-feedback sync` once to create it (or check --pg-schema)",
            )),
            Some(found) if found > supported => Err(store.too_new(found)),
            Some(found) if found < supported => Err(unusable(
                &store.label,
                &format!(
                    "has schema version {found}: run a writing command (sync) once to migrate it"
                ),
            )),
            Some(_) => Ok(store),
        }
    }

    fn connect(
        target: &PgTarget,
        deadline: Option<Instant>,
        read_only: bool,
    ) -> Result<PgStore, Error> {
        Ok(PgStore {
            client: RefCell::new(connect::connect(target, deadline, read_only)?),
            label: target.to_string(),
            schema: target.schema().to_owned(),
            key_seen: RefCell::new(None),
            dry_run: false,
            last_round_trips: 0,
        })
    }

    /// The store as messages name it.
    pub fn name(&self) -> &str {
        &self.label
    }

    /// The round trips to the server the latest committed batch cost, its `BEGIN` and `COMMIT`
    /// included.
    pub fn last_batch_round_trips(&self) -> u32 {
        self.last_round_trips
    }

    /// Who holds the store's lock now (its `application_name`, server pid, address and start),
    /// or `None`: what `status` shows, without taking the lock.
    pub fn lock_holder(&self) -> Result<Option<(String, Option<u32>)>, Error> {
        lock::holder_of(&mut self.client.borrow_mut(), &self.label, &self.schema)
    }

    /// The session, for the batch transaction and the queries.
    pub fn client(&mut self) -> &mut Client {
        self.client.get_mut()
    }

    /// The schema's version; `None` when the schema has no version table (or does not exist).
    /// Every run asks, so each statement goes with its types: one round trip, no prepare.
    /// A database whose encoding is not UTF-8 is refused (74) first: spectators' names in any
    /// script would fail whole batches at their first character it cannot hold (`Ł` in
    /// LATIN1), the feed stuck; `SQL_ASCII` would keep bytes no other tool could read.
    fn schema_version(&mut self) -> Result<Option<i64>, Error> {
        let client = self.client.get_mut();
        let row = client
            .query_typed(
                "SELECT to_regclass(format('%I.schema_version', $1::text)) IS NOT NULL,
                        current_setting('server_encoding')",
                &[(&self.schema, Type::TEXT)],
            )
            .in_pg(&self.label)?;
        let (versioned, encoding): (bool, String) = (row[0].get(0), row[0].get(1));
        if encoding != "UTF8" {
            return Err(unusable(
                &self.label,
                &format!(
                    "the database's encoding is {encoding}: spectators' names need UTF8 (a database created with ENCODING 'UTF8')"
                ),
            ));
        }
        if !versioned {
            return Ok(None);
        }
        let rows = client
            .query_typed("SELECT version FROM schema_version", &[])
            .in_pg(&self.label)?;
        match rows.as_slice() {
            [row] => Ok(Some(i64::from(row.get::<_, i32>(0)))),
            _ => Err(unusable(
                &self.label,
                &format!(
                    "the schema_version table holds {} rows instead of one: restore its row",
                    rows.len()
                ),
            )),
        }
    }

    fn too_new(&self, found: i64) -> Error {
        Error::StoreTooNew {
            path: self.label.clone().into(),
            found,
            supported: schema::MIGRATIONS.len() as i64,
        }
    }

    /// Creates the schema and its version table when missing, then applies the migrations it
    /// lacks, each in its own transaction (PostgreSQL's DDL is transactional: a failed
    /// migration leaves the previous version whole). Runs under the lock.
    fn migrate(&mut self) -> Result<(), Error> {
        let found = match self.schema_version()? {
            Some(found) => found,
            None => {
                self.create_schema()?;
                0
            }
        };
        let supported = schema::MIGRATIONS.len() as i64;
        if found > supported {
            return Err(self.too_new(found));
        }
        for (version, sql) in schema::MIGRATIONS.iter().enumerate().skip(found as usize) {
            let next = version as i32 + 1;
            self.in_transaction(|wire| {
                wire.simple(sql)?;
                wire.query(
                    "UPDATE schema_version SET version = $1, migrated_at = now()",
                    &[(&next, Type::INT4)],
                )
                .map(drop)
            })?;
            log::info!("store {} migrated to schema version {next}", self.label);
        }
        Ok(())
    }

    /// Creates the schema (unless an administrator did) and its version table at version 0.
    /// A schema that already holds tables of another program is refused (78), as SQLite's
    /// store refuses a foreign database: ours would mix with them.
    fn create_schema(&mut self) -> Result<(), Error> {
        let row = self
            .client
            .get_mut()
            .query_one(
                "SELECT n.oid IS NOT NULL,
                        (SELECT count(*) FROM pg_class c WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'm'))
                 FROM (SELECT $1::text AS name) s LEFT JOIN pg_namespace n ON n.nspname = s.name",
                &[&self.schema],
            )
            .in_pg(&self.label)?;
        let (exists, objects): (bool, i64) = (row.get(0), row.get(1));
        if objects > 0 {
            return Err(Error::Config(format!(
                "store {}: the schema holds {objects} tables or views of another program and no tixngo-feedback schema_version: left untouched; give --pg-schema a new schema",
                self.label
            )));
        }
        let create = format!("CREATE SCHEMA \"{}\"", self.schema);
        self.in_transaction(|wire| {
            if !exists {
                wire.simple(&create)?;
            }
            wire.simple(schema::VERSION_TABLE)
        })?;
        log::info!("store {}: schema created", self.label);
        Ok(())
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
            .map_err(|e| classify(&self.label, &e))
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
            .map_err(|e| classify(self.label, &e))
    }

    /// The store, as messages name it.
    pub(super) fn label(&self) -> &'c str {
        self.label
    }

    /// Statements without parameters, sent as one simple query: one round trip.
    pub(super) fn simple(&mut self, sql: &str) -> Result<(), Error> {
        self.round_trips += 1;
        self.client
            .batch_execute(sql)
            .map_err(|e| classify(self.label, &e))
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
