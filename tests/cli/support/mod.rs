//! Shared by the integration tests: the TIXNGO simulator (`crates/tixngo-sim`), a scratch directory with
//! a store, and a fluent builder that runs the real binary and checks its exit status, stdout and
//! stderr together.
#![allow(dead_code)]

pub mod backend;
pub mod crash_test;
pub mod dump;
pub mod pg;

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use tempfile::TempDir;
#[allow(unused_imports)]
pub use tixngo_sim::{Fault, Feed, Simulator};

/// The fields of a `sync`/`replay` `--json` summary (SPEC §6), in order; the ten counters (also the
/// counter columns of `sync_run`) are `SUMMARY_FIELDS[3..13]`.
pub const SUMMARY_FIELDS: [&str; 20] = [
    "command",
    "dry_run",
    "batches",
    "fetched",
    "stored",
    "unchanged",
    "skipped",
    "stale",
    "failed",
    "contacts_created",
    "contacts_updated",
    "distributions_created",
    "distributions_updated",
    "pagination_key_before",
    "next_pagination_key",
    "key_saved",
    "caught_up",
    "duration_ms",
    "exit_code",
    "error",
];

/// The tables whose row counts show what a run changed (SPEC §4.3).
pub const TABLES: [&str; 7] = [
    "ticket",
    "ticket_history",
    "contact",
    "distribution",
    "sync_error",
    "skip_ticket",
    "sync_run",
];

/// The API key the simulators of the tests accept.
pub const API_KEY: &str = "test-key-3f9c1e";

/// Environment variables of the product (and the proxies) that must not leak into a test run
/// from the machine's environment.
const SCRUBBED: [&str; 30] = [
    "TIXNGO_DRAIN",
    "TIXNGO_DIFF_PATH",
    "TIXNGO_API_KEY_HEADER",
    "TIXNGO_OPERATOR_LOGIN",
    "TIXNGO_FEEDBACK_STORE",
    "TIXNGO_FEEDBACK_LOCK",
    "TIXNGO_API_URL",
    "TIXNGO_API_KEY_FILE",
    "TIXNGO_API_KEY",
    "TIXNGO_BATCH_SIZE",
    "TIXNGO_MAX_FAILED_RATIO",
    "TIXNGO_CONTACTS",
    "TIXNGO_TIMEOUT",
    "TIXNGO_METRICS_FILE",
    "RUST_LOG",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "TIXNGO_CA_FILE",
    "TIXNGO_DUMP_DIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "TIXNGO_FEEDBACK_STORE_PASSWORD_FILE",
    "TIXNGO_FEEDBACK_PG_SCHEMA",
    "PGPASSWORD",
];

/// What [`Env::db`] on PostgreSQL says.
const SQLITE_ONLY: &str = "an SQLite connection to a PostgreSQL store: use Env::execute, \
     Env::rows…, or skip the test with support::sqlite_only";

/// A scratch directory, and the store the binary uses: an SQLite file in it, or a schema of the
/// PostgreSQL test cluster (`TIXNGO_TEST_STORE=postgres`, see [`backend`]).
pub struct Env {
    pub dir: TempDir,
    /// `None`: the SQLite file [`Env::store`].
    pub pg: Option<backend::PgSchema>,
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

impl Env {
    /// An environment on the suite's store (`TIXNGO_TEST_STORE`).
    pub fn new() -> Env {
        if !backend::postgres_mode() {
            return Env::sqlite();
        }
        Env::postgres().unwrap_or_else(|| {
            panic!(
                "{}=postgres, but PostgreSQL is not installed",
                backend::MODE_VARIABLE
            )
        })
    }

    /// An environment on an SQLite store, whatever the suite's store.
    pub fn sqlite() -> Env {
        Env {
            dir: tempfile::tempdir().expect("a temporary directory"),
            pg: None,
        }
    }

    /// An environment on a fresh schema of the PostgreSQL test cluster; `None` (after a loud
    /// line) where PostgreSQL is not installed and not required.
    pub fn postgres() -> Option<Env> {
        let cluster = pg::cluster()?;
        Some(Env {
            dir: tempfile::tempdir().expect("a temporary directory"),
            pg: Some(backend::PgSchema::new(cluster)),
        })
    }

    /// The variables that point the binary at this environment's store.
    pub fn store_env(&self) -> Vec<(&'static str, OsString)> {
        match &self.pg {
            Some(pg) => vec![
                ("TIXNGO_FEEDBACK_STORE", pg.url().into()),
                (
                    "TIXNGO_FEEDBACK_STORE_PASSWORD_FILE",
                    pg.password_file.clone().into(),
                ),
                ("TIXNGO_FEEDBACK_PG_SCHEMA", pg.schema.clone().into()),
            ],
            None => vec![("TIXNGO_FEEDBACK_STORE", self.store().into())],
        }
    }

    /// The PostgreSQL schema of this environment; panics on SQLite.
    pub fn pg(&self) -> &backend::PgSchema {
        self.pg.as_ref().expect("a PostgreSQL environment")
    }

    /// The store as the binary names it in its messages and `status`.
    pub fn store_shown(&self) -> String {
        match &self.pg {
            Some(pg) => pg.shown(),
            None => self.store().display().to_string(),
        }
    }

    /// The run lock as a refused run names it: the lock file, or PostgreSQL's advisory lock.
    pub fn lock_shown(&self) -> String {
        match &self.pg {
            Some(_) => "advisory lock".to_owned(),
            None => self.lock_file().display().to_string(),
        }
    }

    /// What a read of a store never written says of it.
    pub fn missing_store_says(&self) -> &'static str {
        match &self.pg {
            Some(_) => "has no tixngo-feedback schema yet",
            None => "does not exist",
        }
    }

    /// The SQLite file of this environment; `None` on PostgreSQL.
    pub fn sqlite_store(&self) -> Option<PathBuf> {
        self.pg.is_none().then(|| self.store())
    }

    /// Whether the binary has created the store (the file, or the schema).
    pub fn store_exists(&self) -> bool {
        match &self.pg {
            Some(pg) => pg.exists(),
            None => self.store().exists(),
        }
    }

    /// Runs SQL statements on the store, as S-360 or an operator fixing rows by hand does.
    pub fn execute(&self, sql: &str) {
        match &self.pg {
            Some(pg) => pg.execute(sql),
            None => self
                .writable_db()
                .execute_batch(sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    /// The schema version of the store (`PRAGMA user_version`, or the `schema_version` table).
    pub fn schema_version(&self) -> i64 {
        match &self.pg {
            Some(_) => self.int("SELECT version FROM schema_version"),
            None => self.int("PRAGMA user_version"),
        }
    }

    /// Sets the schema version, as a newer release of the program would have left it.
    pub fn set_schema_version(&self, version: i64) {
        self.execute(&match &self.pg {
            Some(_) => format!("UPDATE schema_version SET version = {version}"),
            None => format!("PRAGMA user_version = {version}"),
        });
    }

    /// The tables of the store, by name.
    pub fn tables(&self) -> Vec<String> {
        let sql = match &self.pg {
            Some(pg) => format!(
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = '{}' AND table_type = 'BASE TABLE' ORDER BY 1",
                pg.schema
            ),
            None => "SELECT name FROM sqlite_master WHERE type = 'table'
                     AND name NOT LIKE 'sqlite_%' ORDER BY name"
                .to_owned(),
        };
        self.rows(&sql)
            .into_iter()
            .map(|mut row| row.remove(0))
            .collect()
    }

    /// The columns of a table, in order.
    pub fn columns(&self, table: &str) -> Vec<String> {
        let sql = match &self.pg {
            Some(pg) => format!(
                "SELECT column_name FROM information_schema.columns
                 WHERE table_schema = '{}' AND table_name = '{table}' ORDER BY ordinal_position",
                pg.schema
            ),
            // Generated columns too (table_info leaves them out); not a virtual table's hidden ones.
            None => format!("SELECT name FROM pragma_table_xinfo('{table}') WHERE hidden != 1"),
        };
        self.rows(&sql)
            .into_iter()
            .map(|mut row| row.remove(0))
            .collect()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The store every command of this environment uses.
    pub fn store(&self) -> PathBuf {
        self.path("store.db")
    }

    pub fn lock_file(&self) -> PathBuf {
        self.path("store.db.lock")
    }

    /// The binary with `args`, against this environment's store, with a clean environment.
    pub fn cmd(&self, args: &[&str]) -> Run {
        let mut command = assert_cmd::Command::cargo_bin("tixngo-feedback").expect("the binary");
        for name in SCRUBBED {
            command.env_remove(name);
        }
        command.current_dir(self.dir.path());
        command.envs(self.store_env());
        Run {
            command,
            args: args.iter().map(|a| a.to_string()).collect(),
            timeout_slack: self.timeout_slack(),
            code: 0,
            stdout: Expect::Anything,
            stderr: Expect::Anything,
        }
    }

    /// `sync` against a simulator, with the right key in `TIXNGO_API_KEY`.
    pub fn sync(&self, simulator: &Simulator) -> Run {
        self.cmd(&["sync"])
            .env("TIXNGO_API_URL", simulator.url())
            .env("TIXNGO_API_KEY", API_KEY)
    }

    /// Writes a file with the given mode.
    pub fn write(&self, name: &str, contents: &[u8], mode: u32) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// A read-only connection to the store, for the tests' SQL.
    /// Read-write only if SQLite insists (the leftovers of a killed run are for the next run
    /// to recover), and never on a missing store, which it would create.
    pub fn db(&self) -> Connection {
        assert!(self.pg.is_none(), "{}", SQLITE_ONLY);
        let store = self.store();
        Connection::open_with_flags(&store, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .or_else(|e| {
                if store.exists() {
                    Connection::open(&store)
                } else {
                    Err(e)
                }
            })
            .expect("the store opens")
    }

    /// A read-write connection to the store, as S-360 or an operator fixing rows by hand has.
    pub fn writable_db(&self) -> Connection {
        assert!(self.pg.is_none(), "{}", SQLITE_ONLY);
        Connection::open(self.store()).expect("the store opens for writing")
    }

    /// One integer from SQL (a count, an id…).
    pub fn int(&self, sql: &str) -> i64 {
        let Some(pg) = &self.pg else {
            return self
                .db()
                .query_row(sql, [], |row| row.get(0))
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        };
        let text = first_value(pg.query(sql), sql).unwrap_or_else(|| panic!("{sql}: NULL"));
        text.parse()
            .unwrap_or_else(|e| panic!("{sql}: {text:?} is not an integer ({e})"))
    }

    /// One optional text from SQL.
    pub fn text(&self, sql: &str) -> Option<String> {
        match &self.pg {
            Some(pg) => first_value(pg.query(sql), sql),
            None => self
                .db()
                .query_row(sql, [], |row| row.get(0))
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    /// Every row of a query, each column rendered as text (NULL as `NULL`), for comparisons.
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        if let Some(pg) = &self.pg {
            let rows = pg.query(sql).into_iter();
            return rows
                .map(|row| {
                    let values = row.into_iter();
                    values.map(|v| v.unwrap_or_else(|| "NULL".into())).collect()
                })
                .collect();
        }
        let db = self.db();
        let mut statement = db.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let columns = statement.column_count();
        let rows = statement
            .query_map([], |row| {
                (0..columns)
                    .map(|i| row.get_ref(i).map(value_text))
                    .collect::<rusqlite::Result<Vec<String>>>()
            })
            .unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    /// The stored pagination key.
    pub fn stored_key(&self) -> Option<String> {
        self.text("SELECT pagination_key FROM sync_state")
    }

    /// Row counts of every table, to show that a failed run changed nothing.
    pub fn counts(&self) -> Vec<(String, i64)> {
        TABLES
            .iter()
            .map(|table| {
                (
                    table.to_string(),
                    self.int(&format!("SELECT count(*) FROM {table}")),
                )
            })
            .collect()
    }
}

/// The first value of the first row, as SQLite's `query_row` reads it (no row is an error).
fn first_value(rows: Vec<Vec<Option<String>>>, sql: &str) -> Option<String> {
    let mut row = rows
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{sql}: no row"));
    row.swap_remove(0)
}

/// `text` as an SQL string literal, for both stores.
pub fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Whether a test about SQLite's files by nature is skipped because the suite runs against
/// PostgreSQL: says so, with `why`, on stderr.
pub fn sqlite_only(why: &str) -> bool {
    let skipped = backend::postgres_mode();
    if skipped {
        eprintln!("SKIPPED on PostgreSQL: {why}");
    }
    skipped
}

enum Expect {
    Anything,
    Empty,
    Contains(Vec<String>),
}

/// One run of the binary, built fluently, then checked as a whole by [`Run::run`].
pub struct Run {
    command: assert_cmd::Command,
    /// The arguments, given to the command only by [`Run::run`], with the slack added.
    args: Vec<String>,
    /// What [`Run::run`] adds to a `--timeout` argument: [`Env::timeout_slack`].
    timeout_slack: std::time::Duration,
    code: i32,
    stdout: Expect,
    stderr: Expect,
}

/// What a run printed, once its expectations held.
pub struct Ran {
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Stdout as the one JSON line `--json` prints.
    pub fn json(&self) -> Value {
        assert_eq!(
            self.stdout.lines().count(),
            1,
            "--json prints exactly one line:\n{}",
            self.stdout
        );
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

impl Run {
    pub fn arg(mut self, arg: &str) -> Run {
        self.args.push(arg.to_owned());
        self
    }

    pub fn args(mut self, args: &[&str]) -> Run {
        for arg in args {
            self = self.arg(arg);
        }
        self
    }

    pub fn env(mut self, name: &str, value: impl AsRef<std::ffi::OsStr>) -> Run {
        self.command.env(name, value);
        self
    }

    pub fn env_remove(mut self, name: &str) -> Run {
        self.command.env_remove(name);
        self
    }

    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Run {
        self.command.write_stdin(input.into());
        self
    }

    /// The `--timeout` as given, without the store's slack: for a test about the value itself
    /// (its bounds), or whose expectations follow from it (how many retries or batches fit).
    pub fn exact_timeout(mut self) -> Run {
        self.timeout_slack = std::time::Duration::ZERO;
        self
    }

    /// The exit status expected (0 unless said).
    pub fn code(mut self, code: i32) -> Run {
        self.code = code;
        self
    }

    pub fn stdout_empty(mut self) -> Run {
        self.stdout = Expect::Empty;
        self
    }

    pub fn stdout_has(mut self, needle: &str) -> Run {
        self.stdout = push(self.stdout, needle);
        self
    }

    pub fn stderr_empty(mut self) -> Run {
        self.stderr = Expect::Empty;
        self
    }

    pub fn stderr_has(mut self, needle: &str) -> Run {
        self.stderr = push(self.stderr, needle);
        self
    }

    /// Runs the binary and checks the exit status, stdout and stderr together; a failure shows all
    /// three.
    pub fn run(mut self) -> Ran {
        let args = backend::with_timeout_slack(&self.args, self.timeout_slack);
        let output: Output = self.command.args(&args).output().expect("the binary runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let shown = || {
            format!(
                "tixngo-feedback {}\nstatus: {:?}\n--- stdout\n{stdout}--- stderr\n{stderr}---",
                args.join(" "),
                output.status.code()
            )
        };
        assert_eq!(
            output.status.code(),
            Some(self.code),
            "unexpected exit status\n{}",
            shown()
        );
        check("stdout", &self.stdout, &stdout, &shown);
        check("stderr", &self.stderr, &stderr, &shown);
        Ran { stdout, stderr }
    }

    /// Runs with `--json` and returns the parsed line.
    pub fn json(self) -> Value {
        self.arg("--json").run().json()
    }
}

fn push(expect: Expect, needle: &str) -> Expect {
    match expect {
        Expect::Contains(mut needles) => {
            needles.push(needle.to_owned());
            Expect::Contains(needles)
        }
        _ => Expect::Contains(vec![needle.to_owned()]),
    }
}

fn check(stream: &str, expect: &Expect, actual: &str, shown: &dyn Fn() -> String) {
    match expect {
        Expect::Anything => {}
        Expect::Empty => assert!(actual.is_empty(), "{stream} should be empty\n{}", shown()),
        Expect::Contains(needles) => {
            for needle in needles {
                assert!(
                    actual.contains(needle.as_str()),
                    "{stream} lacks {needle:?}\n{}",
                    shown()
                );
            }
        }
    }
}

/// A minimal ticket event for `Feed::from_events`.
pub fn ticket(number: &str, status: &str, updated: &str) -> Value {
    serde_json::json!({ "taxNumber": number, "status": status, "lastUpdated": updated })
}

/// A stored value as text, for comparisons: NULL as `NULL`, a blob by its size.
pub fn value_text(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".to_owned(),
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Blob(b) => format!("<{} bytes>", b.len()),
    }
}

/// Asserts that a store is sound: `PRAGMA integrity_check` says ok and no foreign key dangles.
pub fn assert_sound(db: &Connection, store: &Path) {
    let check: Vec<String> = db
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
        .unwrap();
    assert_eq!(check, ["ok"], "integrity_check of {}", store.display());
    let violations: i64 = db
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(violations, 0, "foreign_key_check of {}", store.display());
}

/// Whether a file exists (a store that must not have been created).
pub fn exists(path: &Path) -> bool {
    path.exists()
}
