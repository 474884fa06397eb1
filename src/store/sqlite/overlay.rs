//! The store of a dry run (SPEC §4.8): an in-memory database with the store's schema as `main`,
//! the real store attached read-only as `store`, and rows copied from `store` into `main` the
//! first time a batch is about to read them. Every statement of a batch then runs unchanged
//! against `main`, and the run costs what the batch costs: it reads the rows the rules read and
//! writes nothing to the store's files, however large the store is.
//!
//! What is copied, and when:
//! - when the store is opened: the pagination key, the skip list, the unresolved sync errors, the
//!   latest live `sync_run` row (the feed's position) and, of every table with an integer id, the
//!   row with the largest id, so that the ids the dry run gives new rows continue after the
//!   store's, as a real run's would, and never collide with a row copied later;
//! - before a batch reads a ticket, the contacts of an e-mail key or the distribution lines of a
//!   ticket: those rows, unless `main` has them already (it keeps what earlier batches of the run
//!   changed, so `--max-batches` chains as a real run does).
//!
//! `main` holds only part of the store, so its foreign keys are not enforced: a copied ticket may
//! name a contact that was never copied. Every id a batch writes was read from the store or made
//! by the batch itself, so a real run would find each of them.

use std::path::Path;
use std::time::Instant;

use rusqlite::{Connection, params};

use super::{BUSY_TIMEOUT, InStore, STATEMENT_CACHE, SqliteStore, access, check_path, schema};
use crate::error::Error;

/// The schema name of the attached store.
const ATTACHED: &str = "store";

/// The tables whose rows are numbered by an integer `id` that new rows continue.
const NUMBERED: [&str; 5] = [
    "contact",
    "sync_run",
    "ticket_history",
    "distribution",
    "sync_error",
];

/// The statements that copy rows from the attached store into `main` before a batch reads them,
/// built once from the schema: each skips the rows `main` holds already, and takes the key of
/// the read as its one parameter.
pub(super) struct Overlay {
    /// The stored row of a ticket, by ticket number.
    pub(super) copy_ticket: String,
    /// The contacts of an e-mail key.
    pub(super) copy_contacts: String,
    /// The distribution lines of a ticket, by ticket number.
    pub(super) copy_lines: String,
}

/// `INSERT OR IGNORE INTO main.<table> SELECT … FROM store.<table> WHERE <condition>`, naming
/// every column but the generated ones (SQLite refuses to write those).
fn copy_sql(conn: &Connection, table: &str, condition: &str) -> rusqlite::Result<String> {
    let mut statement = conn.prepare("SELECT name FROM pragma_table_xinfo(?1) WHERE hidden = 0")?;
    let columns: Vec<String> = statement
        .query_map([table], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let columns = columns.join(", ");
    Ok(format!(
        "INSERT OR IGNORE INTO main.{table} ({columns}) SELECT {columns} FROM {ATTACHED}.{table} WHERE {condition}"
    ))
}

/// `path` as an SQLite URI that opens it read-only: every byte outside the unreserved set is
/// percent-encoded, so a `?`, `#` or `%` in a directory name stays part of the path.
///
/// SQLite reads a WAL store through its `-shm` (the WAL's index), and a reader opening it
/// read-write writes to it. When the `-wal` and the `-shm` are there, as every run of this
/// program leaves them, the `-shm` is opened read-only (`readonly_shm`): nothing at all is
/// written. When the last program to close the store removed them (the `sqlite3` shell does),
/// SQLite cannot read the store without them and creates both, empty, as any reader would
/// (`status` included); the store file is never written.
fn read_only_uri(path: &Path, companions: bool) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/._~-".contains(&byte) {
            uri.push(byte as char);
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri.push_str("?mode=ro");
    if companions {
        uri.push_str("&readonly_shm=1");
    }
    uri
}

/// Whether the store's `-wal` and `-shm` are both there.
fn has_companions(path: &Path) -> bool {
    ["-wal", "-shm"]
        .iter()
        .all(|suffix| access::companion(path, suffix).exists())
}

impl SqliteStore {
    /// The store of a dry run: the real store read-only behind an in-memory overlay (see the
    /// module's documentation), or an empty in-memory store when it does not exist. No file is
    /// created or written. A store of an older schema is copied whole and migrated in memory
    /// ([`SqliteStore::open_scratch`]): the overlay's rows must have the schema's columns.
    pub fn open_dry_run(path: &Path, deadline: Option<Instant>) -> Result<SqliteStore, Error> {
        let exists = path.exists();
        if exists {
            check_path(path, true)?;
            access::check_private(path)?;
        }
        let conn = Connection::open_in_memory().in_store(path)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.execute_batch("PRAGMA foreign_keys = OFF;")
            .in_store(path)?;
        let mut store = SqliteStore::on(conn, path, deadline);
        if exists && store.attach_read_only()? {
            let supported = schema::MIGRATIONS.len() as i64;
            if store.attached_version()? < supported {
                drop(store);
                return SqliteStore::open_scratch(path);
            }
            store.migrate()?;
            store.overlay = Some(store.seed_overlay().in_store(path)?);
        } else {
            store.migrate()?;
        }
        Ok(store)
    }

    /// Attaches the store read-only; `false` (detached again) when it is an empty file or an
    /// empty database, which a real run would fill with the schema. A database of another
    /// program or of a newer schema is refused as a real run refuses it.
    fn attach_read_only(&mut self) -> Result<bool, Error> {
        self.conn
            .busy_timeout(self.wait_at_most(BUSY_TIMEOUT))
            .in_store(&self.path)?;
        self.conn
            .execute(
                &format!("ATTACH DATABASE ?1 AS {ATTACHED}"),
                [read_only_uri(&self.path, has_companions(&self.path))],
            )
            .in_store(&self.path)?;
        let version = self.attached_version()?;
        let supported = schema::MIGRATIONS.len() as i64;
        if version > supported {
            return Err(Error::StoreTooNew {
                path: self.path.clone(),
                found: version,
                supported,
            });
        }
        let objects: i64 = self
            .conn
            .query_row(
                &format!("SELECT count(*) FROM {ATTACHED}.sqlite_master"),
                [],
                |row| row.get(0),
            )
            .in_store(&self.path)?;
        if version == 0 && objects > 0 {
            return Err(super::foreign_database(&self.path, objects));
        }
        if version == 0 {
            self.conn
                .execute_batch(&format!("DETACH DATABASE {ATTACHED}"))
                .in_store(&self.path)?;
        }
        Ok(version != 0)
    }

    fn attached_version(&self) -> Result<i64, Error> {
        self.conn
            .query_row(&format!("PRAGMA {ATTACHED}.user_version"), [], |row| {
                row.get(0)
            })
            .in_store(&self.path)
    }

    /// Copies what every run reads when it starts (see the module's documentation), in one
    /// transaction, so that all of it comes from one state of the store.
    fn seed_overlay(&mut self) -> rusqlite::Result<Overlay> {
        let tx = self.conn.transaction()?;
        let mut seeds = vec![
            "DELETE FROM main.sync_state".to_owned(),
            copy_sql(&tx, "sync_state", "1")?,
            copy_sql(&tx, "skip_ticket", "1")?,
            copy_sql(&tx, "sync_error", "resolved_at IS NULL")?,
            copy_sql(
                &tx,
                "sync_run",
                &format!(
                    "id = (SELECT max(id) FROM {ATTACHED}.sync_run WHERE caught_up IS NOT NULL)"
                ),
            )?,
        ];
        for table in NUMBERED {
            let largest = format!("id = (SELECT max(id) FROM {ATTACHED}.{table})");
            seeds.push(copy_sql(&tx, table, &largest)?);
        }
        for sql in &seeds {
            tx.execute(sql, params![])?;
        }
        let overlay = Overlay {
            copy_ticket: copy_sql(&tx, "ticket", "ticket_number = ?1")?,
            copy_contacts: copy_sql(&tx, "contact", "email_key = ?1")?,
            copy_lines: copy_sql(&tx, "distribution", "ticket_number = ?1")?,
        };
        tx.commit()?;
        Ok(overlay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Backend;

    /// A store of 200 tickets, each with an owner contact and one pending distribution line.
    fn store_of_200(path: &Path) {
        let store = SqliteStore::open(path, None).unwrap();
        store
            .conn
            .execute_batch(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
                 INSERT INTO contact (id, email) SELECT i, 'fan' || i || '@example.org' FROM n;
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
                 INSERT INTO ticket (ticket_number, mobile_status, cultural_contact_id)
                     SELECT 'T' || i, 'ACTIVATED', i FROM n;
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
                 INSERT INTO distribution (ticket_number, new_contact_id, status, created_at, updated_at)
                     SELECT 'T' || i, i, 'PENDING', '', '' FROM n;",
            )
            .unwrap();
    }

    fn count(store: &SqliteStore, table: &str) -> i64 {
        store
            .conn
            .query_row(&format!("SELECT count(*) FROM main.{table}"), [], |row| {
                row.get(0)
            })
            .unwrap()
    }

    #[test]
    fn a_dry_run_copies_only_the_rows_a_batch_reads_and_numbers_new_rows_after_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        store_of_200(&path);
        let mut dry = SqliteStore::open_dry_run(&path, None).unwrap();
        // The rows with the largest ids only, so that new ids continue after them.
        assert_eq!((count(&dry, "ticket"), count(&dry, "contact")), (0, 1));
        assert_eq!(count(&dry, "distribution"), 1);

        let mut batch = dry.begin_batch("sync", None).unwrap();
        let (_, ticket) = batch
            .ticket("T7")
            .unwrap()
            .expect("T7 is read from the store");
        assert_eq!(ticket.cultural_contact_id, Some(7));
        assert!(batch.ticket("NEW-1").unwrap().is_none());
        let found = batch.contact_by_email("fan7@example.org").unwrap().unwrap();
        assert_eq!(found.id, 7);
        assert_eq!(batch.pending_lines("T7").unwrap().len(), 1);
        assert_eq!(
            batch.create_temporary_contact("new@example.org").unwrap(),
            201
        );
        batch
            .finish(
                &crate::report::Counters::default(),
                &crate::store::KeyCommit::UNTOUCHED,
                0,
            )
            .unwrap();

        assert_eq!(count(&dry, "ticket"), 1);
        assert_eq!(count(&dry, "contact"), 3);
        assert_eq!(count(&dry, "distribution"), 2);
    }

    #[test]
    fn uris_keep_every_path_byte_literal() {
        assert_eq!(
            read_only_uri(Path::new("/var/lib/tix ngo/a?b#c%d.db"), false),
            "file:/var/lib/tix%20ngo/a%3Fb%23c%25d.db?mode=ro"
        );
        assert_eq!(
            read_only_uri(Path::new("store.db"), true),
            "file:store.db?mode=ro&readonly_shm=1"
        );
    }
}
