//! The store an [`Env`](super::Env) runs the binary against: an SQLite file in its directory
//! (the default) or a fresh schema of the PostgreSQL test cluster (`TIXNGO_TEST_STORE=postgres`),
//! and the tests' SQL on either, with the same results: every value as text, as
//! [`value_text`](super::value_text) renders SQLite's, a PostgreSQL `timestamptz` in the store's
//! own form (`2026-06-14T18:30:00.000Z`), a boolean as `1`/`0`.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use postgres::SimpleQueryMessage;
use postgres::types::Type;

use super::pg;

/// The variable choosing the store of the whole suite: `postgres`, or SQLite when unset.
pub const MODE_VARIABLE: &str = "TIXNGO_TEST_STORE";

/// Whether this test process runs the suite against PostgreSQL.
pub fn postgres_mode() -> bool {
    match std::env::var(MODE_VARIABLE).as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Ok("") | Err(_) => false,
        Ok(other) => panic!("{MODE_VARIABLE}={other}: expected postgres or sqlite"),
    }
}

/// What a PostgreSQL store costs a run's `--timeout` deadline beyond an SQLite file: the login
/// over TCP (SCRAM) and the advisory lock come out of the run's deadline, the more so when the
/// tests share one cluster side by side.
const POSTGRES_TIMEOUT_SLACK: Duration = Duration::from_secs(1);

impl super::Env {
    /// What the [`Run`](super::Run) builder adds to a run's `--timeout` on this store, so that
    /// the time left for fetching and retrying is what it is on SQLite; a bound on how long such
    /// a run takes adds it too.
    pub fn timeout_slack(&self) -> Duration {
        match self.pg {
            Some(_) => POSTGRES_TIMEOUT_SLACK,
            None => Duration::ZERO,
        }
    }
}

/// `args` with `slack` added to the seconds of a `--timeout SECS` (a value that is not a number
/// is left for the binary to refuse).
pub fn with_timeout_slack(args: &[String], slack: Duration) -> Vec<String> {
    let mut padded = args.to_vec();
    let at = args.iter().position(|arg| arg == "--timeout");
    if let Some(value) = at.and_then(|at| padded.get_mut(at + 1))
        && let Ok(seconds) = value.parse::<u64>()
    {
        *value = (seconds + slack.as_secs()).to_string();
    }
    padded
}

/// A schema of the test cluster, its login and the reader the tests' SQL goes through.
pub struct PgSchema {
    pub cluster: &'static pg::Cluster,
    pub schema: String,
    pub role: String,
    /// The login's password, mode 0600, in a directory of its own: the environment's directory
    /// holds what the binary writes, nothing else.
    pub password_file: PathBuf,
    _password_dir: tempfile::TempDir,
    /// A superuser session whose `search_path` is the schema, opened on first use.
    reader: Mutex<Option<postgres::Client>>,
}

/// The one login role of this test process: `(name, password)`.
fn role(cluster: &pg::Cluster) -> &'static (String, String) {
    static ROLE: OnceLock<(String, String)> = OnceLock::new();
    ROLE.get_or_init(|| cluster.role())
}

/// Functions of SQLite that the tests' SQL uses and PostgreSQL lacks or has otherwise (`lower`
/// lower-cases ASCII only, as SQLite's does), in a schema of their own that comes after the
/// store's and before PostgreSQL's own on the reader's `search_path`.
const COMPAT: &str = "
CREATE SCHEMA IF NOT EXISTS sqlite_compat;
CREATE OR REPLACE FUNCTION sqlite_compat.instr(text, text) RETURNS integer
    LANGUAGE sql IMMUTABLE AS 'SELECT strpos($1, $2)';
CREATE OR REPLACE FUNCTION sqlite_compat.lower(text) RETURNS text
    LANGUAGE sql IMMUTABLE AS
    'SELECT translate($1, ''ABCDEFGHIJKLMNOPQRSTUVWXYZ'', ''abcdefghijklmnopqrstuvwxyz'')';
";

impl PgSchema {
    /// A fresh schema (the binary creates it), the password in a file of its own.
    pub fn new(cluster: &'static pg::Cluster) -> PgSchema {
        static COMPAT_CREATED: OnceLock<()> = OnceLock::new();
        COMPAT_CREATED.get_or_init(|| cluster.admin().batch_execute(COMPAT).unwrap());
        let (role, password) = role(cluster);
        let password_dir = tempfile::tempdir().expect("a temporary directory");
        let password_file = password_dir.path().join("store-password");
        std::fs::write(&password_file, format!("{password}\n")).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o600);
        std::fs::set_permissions(&password_file, mode).unwrap();
        PgSchema {
            cluster,
            schema: cluster.schema(),
            role: role.clone(),
            password_file,
            _password_dir: password_dir,
            reader: Mutex::new(None),
        }
    }

    /// The `--store` URL (no password in it).
    pub fn url(&self) -> String {
        self.cluster.url(&self.role)
    }

    /// Runs `work` on the reader session, opening it first if need be.
    fn with_reader<T>(&self, work: impl FnOnce(&mut postgres::Client) -> T) -> T {
        let mut reader = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        let client = reader.get_or_insert_with(|| {
            let mut client = self.cluster.admin();
            client
                .batch_execute(&format!(
                    "SET search_path TO {}, sqlite_compat, pg_catalog; SET TimeZone TO 'UTC';
                     SET DateStyle TO 'ISO, YMD'",
                    self.schema
                ))
                .unwrap();
            client
        });
        work(client)
    }

    /// Every row of a query, each value as text (`None` for NULL).
    pub fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.with_reader(|client| {
            let types: Vec<Type> = client
                .prepare(sql)
                .unwrap_or_else(|e| panic!("{sql}: {}", server_says(&e)))
                .columns()
                .iter()
                .map(|column| column.type_().clone())
                .collect();
            let messages = client
                .simple_query(sql)
                .unwrap_or_else(|e| panic!("{sql}: {}", server_says(&e)));
            messages
                .iter()
                .filter_map(|message| match message {
                    SimpleQueryMessage::Row(row) => Some(
                        (0..row.len())
                            .map(|i| row.get(i).map(|text| render(&types[i], text)))
                            .collect(),
                    ),
                    _ => None,
                })
                .collect()
        })
    }

    /// Runs statements (an S-360 tool or an operator editing rows by hand).
    pub fn execute(&self, sql: &str) {
        self.with_reader(|client| client.batch_execute(sql))
            .unwrap_or_else(|e| panic!("{sql}: {}", server_says(&e)));
    }

    /// The store as the binary names it.
    pub fn shown(&self) -> String {
        format!("{}, schema {}", self.url(), self.schema)
    }

    /// Whether the binary has created the schema.
    pub fn exists(&self) -> bool {
        let rows = self.query(&format!(
            "SELECT count(*) FROM pg_namespace WHERE nspname = '{}'",
            self.schema
        ));
        rows[0][0].as_deref() == Some("1")
    }
}

/// The server's message of a failed statement (the error's `Display` says only `db error`).
fn server_says(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => error.to_string(),
    }
}

/// A value of PostgreSQL's text output as SQLite's would read.
fn render(column: &Type, text: &str) -> String {
    if *column == Type::TIMESTAMPTZ {
        store_time(text)
    } else if *column == Type::BOOL {
        if text == "t" { "1" } else { "0" }.to_owned()
    } else {
        text.to_owned()
    }
}

/// `2026-06-14 18:30:00.5+00` (ISO output in UTC) as the store writes times:
/// `2026-06-14T18:30:00.500Z`.
fn store_time(text: &str) -> String {
    let local = text
        .strip_suffix("+00")
        .unwrap_or_else(|| panic!("not a UTC timestamp: {text}"));
    let (date, time) = local.split_once(' ').unwrap();
    let (seconds, fraction) = time.split_once('.').unwrap_or((time, ""));
    let millis: String = fraction.chars().chain("000".chars()).take(3).collect();
    format!("{date}T{seconds}.{millis}Z")
}

#[test]
fn postgresql_times_read_as_the_stores_own() {
    assert_eq!(
        store_time("2026-06-14 18:30:00+00"),
        "2026-06-14T18:30:00.000Z"
    );
    assert_eq!(
        store_time("2026-06-14 18:30:00.5+00"),
        "2026-06-14T18:30:00.500Z"
    );
    assert_eq!(
        store_time("2026-06-14 18:30:00.123+00"),
        "2026-06-14T18:30:00.123Z"
    );
}

#[test]
fn postgresql_values_read_as_sqlite_values_do() {
    let Some(cluster) = pg::cluster() else { return };
    let schema = PgSchema::new(cluster);
    cluster
        .admin()
        .batch_execute(&format!(
            "CREATE SCHEMA {0};
             CREATE TABLE {0}.t (n bigint, s smallint, x text, at timestamptz, f double precision);
             INSERT INTO {0}.t VALUES
                 (42, 1, 'ann', '2026-06-14T18:30:00.5Z', 0.5),
                 (NULL, NULL, NULL, NULL, NULL);",
            schema.schema
        ))
        .unwrap();
    assert!(schema.exists());
    let rows = schema
        .query("SELECT n, s, x, at, f, n = 42, instr(x, 'n'), sum(n) OVER () FROM t ORDER BY n");
    let some = |values: &[&str]| {
        values
            .iter()
            .map(|v| Some(v.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        rows[0],
        some(&[
            "42",
            "1",
            "ann",
            "2026-06-14T18:30:00.500Z",
            "0.5",
            "1",
            "2",
            "42"
        ])
    );
    assert_eq!(rows[1][..6], vec![None; 6]);
    schema.execute("UPDATE t SET at = '2026-01-01T00:00:00.000Z' WHERE n IS NULL");
    let at = schema.query("SELECT at FROM t WHERE n IS NULL");
    assert_eq!(at, [[Some("2026-01-01T00:00:00.000Z".to_owned())]]);
}

#[test]
fn a_timeout_gets_the_slack_and_nothing_else_does() {
    let args = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let slack = Duration::from_secs(1);
    assert_eq!(
        with_timeout_slack(&args(&["sync", "--timeout", "2", "--json"]), slack),
        args(&["sync", "--timeout", "3", "--json"])
    );
    assert_eq!(
        with_timeout_slack(&args(&["--timeout", "2"]), Duration::ZERO),
        args(&["--timeout", "2"])
    );
    for untouched in [
        &["--batch-size", "2"][..],
        &["--timeout", "soon"],
        &["--timeout"],
    ] {
        assert_eq!(with_timeout_slack(&args(untouched), slack), args(untouched));
    }
}
