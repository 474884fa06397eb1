//! The SQLite store: one file on the cron host, nothing to install (SPEC §4.3). A batch is one
//! `BEGIN IMMEDIATE` transaction ([`batch`]); the commands' reads and changes are in [`queries`];
//! a dry run reads the store through an in-memory overlay ([`overlay`]).

pub(crate) mod access;
mod batch;
mod overlay;
mod queries;
pub(super) mod schema;

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

pub use access::check_path;

use crate::error::Error;

/// How long a statement waits for another connection's lock (a reader checkpointing, an S-360
/// tool writing) before the store counts as unusable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The page size of new stores.
const PAGE_SIZE: u32 = 8192;

/// SQLite's page cache, in KiB. A batch's dirty pages must fit, or SQLite spills them to the WAL
/// mid-transaction and reads them back: with the default 2 MiB, a 1 000-ticket batch made seven
/// small reads and writes per ticket. Pages are only allocated as they are touched.
const CACHE_KIB: u32 = 32 * 1024;

/// WAL pages between automatic checkpoints (64 MiB with 8 KiB pages). A 1 000-ticket batch
/// writes about 450 pages; with SQLite's default of 1 000, a backfill checkpointed (random writes
/// to the store, and an fsync) every other batch. A writing run empties the WAL when it ends.
const CHECKPOINT_PAGES: u32 = 8192;

/// How long a writing run waits, when it ends, for readers to leave the WAL so that it can empty
/// it (within the deadline). Only this run waits: readers never wait for it.
const FINAL_CHECKPOINT_WAIT: Duration = Duration::from_secs(1);

/// Prepared statements kept per connection (a batch uses about twenty).
const STATEMENT_CACHE: usize = 64;

/// An open SQLite store.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// The run's deadline: no wait for another connection's lock outlasts it.
    deadline: Option<Instant>,
    /// A dry run's copy-on-read statements, when the real store sits attached behind `conn`.
    overlay: Option<overlay::Overlay>,
}

impl Drop for SqliteStore {
    /// Empties the WAL (checkpoint, then truncate to zero bytes) once the readers in it have
    /// left: the next program to open the store rebuilds the WAL index from the whole WAL while
    /// readers without a busy timeout get "database is locked", so an empty WAL keeps that moment
    /// as short as it can be. Readers starting meanwhile read the store file and never wait. If
    /// they do not leave in time, the WAL stays and the next run tries again.
    fn drop(&mut self) {
        // Not for a dry run's database in memory: the checkpoint would reach the store attached
        // to it read-only.
        let on_disk = self.conn.path().is_some_and(|file| !file.is_empty());
        if on_disk && !self.conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
            let _ = self
                .conn
                .busy_timeout(self.wait_at_most(FINAL_CHECKPOINT_WAIT));
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }
}

/// Adds the store's path to SQLite errors.
pub(crate) trait InStore<T> {
    fn in_store(self, path: &Path) -> Result<T, Error>;
}

impl<T> InStore<T> for rusqlite::Result<T> {
    fn in_store(self, path: &Path) -> Result<T, Error> {
        self.map_err(|e| sqlite_error(path, &e))
    }
}

/// An SQLite failure as the one line an operator reads: another writer is "try later"; a path
/// SQLite cannot open or write says why and how to fix it; and no message ever quotes SQL (an
/// input error's text carries the whole statement).
fn sqlite_error(path: &Path, error: &rusqlite::Error) -> Error {
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::StoreBusy {
            path: path.to_owned(),
        },
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
            let cause = access::diagnose(path, false);
            Error::store(path, cause.unwrap_or_else(|| error.to_string()))
        }
        _ => match error {
            rusqlite::Error::SqlInputError { msg, .. } => Error::store(path, msg),
            other => Error::store(path, other),
        },
    }
}

/// The refusal of an SQLite database that holds `objects` tables or indexes of another program.
fn foreign_database(path: &Path, objects: i64) -> Error {
    Error::Config(format!(
        "{} is an SQLite database of another program ({objects} tables or indexes, no tixngo-feedback schema): left untouched; give --store a new path",
        path.display()
    ))
}

impl SqliteStore {
    /// The store of `path` on a connection opened for it, without an overlay.
    fn on(conn: Connection, path: &Path, deadline: Option<Instant>) -> SqliteStore {
        SqliteStore {
            conn,
            path: path.to_owned(),
            deadline,
            overlay: None,
        }
    }

    /// Opens the store for writing, creating it (mode 0600, schema included) when missing and
    /// migrating it forward. A store newer than this binary is refused; every wait for another
    /// program's lock ends at `deadline`.
    pub fn open(path: &Path, deadline: Option<Instant>) -> Result<SqliteStore, Error> {
        check_path(path, false)?;
        access::check_private(path)?;
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => log::info!("created the store {}", path.display()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::store(path, format!("cannot create it: {e}"))),
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .in_store(path)?;
        let mut store = SqliteStore::on(conn, path, deadline);
        store.bound_busy_wait()?;
        store.refuse_foreign()?;
        store.configure()?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing store for reading only (`status`, `cursor show`, `skip list`): a
    /// missing store is an error and nothing is created.
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, Error> {
        check_path(path, true)?;
        if !path.exists() {
            return Err(Error::store(
                path,
                "does not exist yet: run `tixngo-feedback sync` once to create it (or check --store)",
            ));
        }
        access::check_private(path)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .in_store(path)?;
        conn.busy_timeout(BUSY_TIMEOUT).in_store(path)?;
        let store = SqliteStore::on(conn, path, None);
        let supported = schema::MIGRATIONS.len() as i64;
        match store.schema_version()? {
            found if found > supported => Err(Error::StoreTooNew {
                path: path.to_owned(),
                found,
                supported,
            }),
            0 => Err(Error::store(
                path,
                "is not a tixngo-feedback store (no schema)",
            )),
            found if found < supported => Err(Error::store(
                path,
                format!(
                    "has schema version {found}: run a writing command (sync) once to migrate it"
                ),
            )),
            _ => Ok(store),
        }
    }

    /// A private copy of the store for a dry run: a temporary database that SQLite deletes on
    /// close, filled from the store (read-only) when it exists, or empty. The dry run writes to
    /// the copy as a real run would and the store file, its WAL included, is never written.
    pub fn open_scratch(path: &Path) -> Result<SqliteStore, Error> {
        let mut scratch = Connection::open("").in_store(path)?;
        if path.exists() {
            check_path(path, true)?;
            access::check_private(path)?;
            let source = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .in_store(path)?;
            source.busy_timeout(BUSY_TIMEOUT).in_store(path)?;
            rusqlite::backup::Backup::new(&source, &mut scratch)
                .and_then(|backup| backup.run_to_completion(4096, Duration::ZERO, None))
                .in_store(path)?;
        }
        scratch.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let mut store = SqliteStore::on(scratch, path, None);
        store
            .conn
            .execute_batch("PRAGMA foreign_keys = ON;")
            .in_store(path)?;
        store.refuse_foreign()?;
        store.migrate()?;
        Ok(store)
    }

    /// Waits for another connection's lock at most until the deadline (SQLite's busy timeout
    /// counts from each statement, so it is set again before each transaction).
    fn bound_busy_wait(&self) -> Result<(), Error> {
        self.conn
            .busy_timeout(self.wait_at_most(BUSY_TIMEOUT))
            .in_store(&self.path)
    }

    /// `longest`, or less when the deadline comes sooner.
    fn wait_at_most(&self, longest: Duration) -> Duration {
        self.deadline.map_or(longest, |deadline| {
            longest.min(deadline.saturating_duration_since(Instant::now()))
        })
    }

    /// Refuses (78), before writing anything to it, an SQLite database that holds tables of
    /// another program: adding ours would mix two programs' data, and a name clash would fail
    /// half-way.
    fn refuse_foreign(&self) -> Result<(), Error> {
        if self.schema_version()? != 0 {
            return Ok(());
        }
        let objects: i64 = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
            .in_store(&self.path)?;
        if objects == 0 {
            return Ok(());
        }
        Err(foreign_database(&self.path, objects))
    }

    fn configure(&self) -> Result<(), Error> {
        // Readers (BI tools, `sqlite3 -readonly`) often have no busy timeout: closing the last
        // connection must neither take an exclusive lock to checkpoint nor delete the WAL under
        // them. Checkpoints happen at commits (`wal_autocheckpoint`, passive) and when the run
        // ends (see `Drop`), neither of which makes a reader wait.
        self.conn
            .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .in_store(&self.path)?;
        // Only takes effect on a new, empty store: rows of about 600 bytes sit better on 8 KiB
        // pages, and a batch's commit writes half as many WAL frames.
        self.conn
            .execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE};"))
            .in_store(&self.path)?;
        // Room for every statement a batch prepares, so none is parsed twice.
        self.conn
            .set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .in_store(&self.path)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::store(
                &self.path,
                format!("cannot switch to WAL mode (journal mode is {mode})"),
            ));
        }
        self.conn
            .execute_batch(&format!(
                "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -{CACHE_KIB};
                 PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES};"
            ))
            .in_store(&self.path)
    }

    fn schema_version(&self) -> Result<i64, Error> {
        self.conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .in_store(&self.path)
    }

    /// Applies the migrations this store lacks, each in its own transaction.
    fn migrate(&mut self) -> Result<(), Error> {
        let supported = schema::MIGRATIONS.len() as i64;
        let found = self.schema_version()?;
        if found > supported {
            return Err(Error::StoreTooNew {
                path: self.path.clone(),
                found,
                supported,
            });
        }
        for (version, sql) in schema::MIGRATIONS.iter().enumerate().skip(found as usize) {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .in_store(&self.path)?;
            tx.execute_batch(sql).in_store(&self.path)?;
            tx.pragma_update(None, "user_version", version as i64 + 1)
                .in_store(&self.path)?;
            tx.commit().in_store(&self.path)?;
            log::info!(
                "store {} migrated to schema version {}",
                self.path.display(),
                version + 1
            );
        }
        Ok(())
    }
}
