//! The PostgreSQL store (SPEC §10): the same tables, rules and exit codes as the SQLite store,
//! in one schema per organizer of a shared database server.
//!
//! A writing command opens it with [`PgStore::open`]: connect, take the schema's advisory lock
//! on that session (held until the session ends), then create or migrate the schema under the
//! lock. Read-only commands use [`PgStore::open_read_only`]: no lock, and a missing or older
//! schema is refused, as SQLite's `Store::open_read_only` refuses a missing store.

mod connect;
mod failure;
mod lock;
mod queries;
mod schema;
mod target;

use std::cell::RefCell;
use std::time::Instant;

use postgres::Client;

pub use lock::lock_key;
pub use target::{DEFAULT_SCHEMA, PgTarget, is_url, parse_schema};

use crate::error::Error;
use failure::{InPg, unusable};

/// An open PostgreSQL store: the run's one session, locked when it writes. The session sits in
/// a `RefCell` because the client needs `&mut` even to read, and the store's readers take `&self`
/// as SQLite's do.
pub struct PgStore {
    client: RefCell<Client>,
    /// The store as messages name it (URL without password, and schema).
    store: String,
    schema: String,
}

impl PgStore {
    /// Opens the store for writing: connects, takes the lock (held → 75, naming the holder),
    /// then creates the schema on first use and migrates it forward. A schema newer than this
    /// binary is refused (78).
    pub fn open(target: &PgTarget, deadline: Option<Instant>) -> Result<PgStore, Error> {
        let mut store = PgStore::connect(target, deadline, false)?;
        lock::acquire(store.client.get_mut(), &store.store, &store.schema)?;
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
                &store.store,
                "has no tixngo-feedback schema yet: run `tixngo-feedback sync` once to create it (or check --pg-schema)",
            )),
            Some(found) if found > supported => Err(store.too_new(found)),
            Some(found) if found < supported => Err(unusable(
                &store.store,
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
            store: target.to_string(),
            schema: target.schema().to_owned(),
        })
    }

    /// The store as messages name it.
    pub fn name(&self) -> &str {
        &self.store
    }

    /// The session, for the batch transaction and the queries.
    pub fn client(&mut self) -> &mut Client {
        self.client.get_mut()
    }

    /// The schema's version; `None` when the schema has no version table (or does not exist).
    fn schema_version(&mut self) -> Result<Option<i64>, Error> {
        let versioned: bool = self
            .client
            .get_mut()
            .query_one(
                "SELECT to_regclass(format('%I.schema_version', $1::text)) IS NOT NULL",
                &[&self.schema],
            )
            .in_pg(&self.store)?
            .get(0);
        if !versioned {
            return Ok(None);
        }
        let version: i32 = self
            .client
            .get_mut()
            .query_one("SELECT version FROM schema_version", &[])
            .in_pg(&self.store)?
            .get(0);
        Ok(Some(i64::from(version)))
    }

    fn too_new(&self, found: i64) -> Error {
        Error::StoreTooNew {
            path: self.store.clone().into(),
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
            let mut tx = self.client.get_mut().transaction().in_pg(&self.store)?;
            tx.batch_execute(sql).in_pg(&self.store)?;
            tx.execute(
                "UPDATE schema_version SET version = $1, migrated_at = now()",
                &[&next],
            )
            .in_pg(&self.store)?;
            tx.commit().in_pg(&self.store)?;
            log::info!("store {} migrated to schema version {next}", self.store);
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
            .in_pg(&self.store)?;
        let (exists, objects): (bool, i64) = (row.get(0), row.get(1));
        if objects > 0 {
            return Err(Error::Config(format!(
                "store {}: the schema holds {objects} tables or views of another program and no tixngo-feedback schema_version: left untouched; give --pg-schema a new schema",
                self.store
            )));
        }
        let mut tx = self.client.get_mut().transaction().in_pg(&self.store)?;
        if !exists {
            tx.batch_execute(&format!("CREATE SCHEMA \"{}\"", self.schema))
                .in_pg(&self.store)?;
        }
        tx.batch_execute(schema::VERSION_TABLE).in_pg(&self.store)?;
        tx.commit().in_pg(&self.store)?;
        log::info!("store {}: schema created", self.store);
        Ok(())
    }
}
