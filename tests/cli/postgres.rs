//! The PostgreSQL store (SPEC §10), against the throwaway cluster of `support::pg`: the login,
//! the exit codes of its failures, the schema and its version, the advisory lock, the e-mail key.

use std::net::TcpListener;
use std::path::PathBuf;

use tixngo_feedback::Error;
use tixngo_feedback::store::Backend;
use tixngo_feedback::store::postgres::{PgStore, PgTarget, lock_key};

use crate::support::{API_KEY, Env, Fault, Feed, Simulator, pg};

#[test]
fn the_test_cluster_takes_password_logins_over_tcp() {
    let Some(cluster) = pg::cluster() else { return };
    let (role, password) = cluster.role();
    let mut client = postgres::Config::new()
        .host("127.0.0.1")
        .port(cluster.port)
        .user(&role)
        .password(&password)
        .dbname("postgres")
        .connect(postgres::NoTls)
        .expect("a password login over TCP");
    let user: String = client
        .query_one("SELECT current_user::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(user, role);
    let wrong = postgres::Config::new()
        .host("127.0.0.1")
        .port(cluster.port)
        .user(&role)
        .password("wrong")
        .dbname("postgres")
        .connect(postgres::NoTls);
    assert!(wrong.is_err(), "a wrong password was accepted");
}

/// A store in a fresh schema for a fresh role whose password is in a 0600 file of `env`.
struct PgCase {
    /// The store's URL, without its password.
    url: String,
    target: PgTarget,
    password_file: PathBuf,
    schema: String,
}

fn case(cluster: &pg::Cluster, env: &Env) -> PgCase {
    let (role, password) = cluster.role();
    let password_file = env.write("store-password", format!("{password}\n").as_bytes(), 0o600);
    let schema = cluster.schema();
    let url = cluster.url(&role);
    let target = PgTarget::parse(&url, &schema).unwrap();
    PgCase {
        url,
        target: target.with_password_from(Some(&password_file)).unwrap(),
        password_file,
        schema,
    }
}

fn code(error: &Error) -> u8 {
    error.exit_code().code()
}

fn opened(result: Result<PgStore, Error>) -> PgStore {
    result.unwrap_or_else(|e| panic!("the store did not open: {e}"))
}

/// Ends a store's session and waits (up to a minute) until the server has ended it too: the
/// server releases the session's lock as its backend exits, a moment after the client hung up.
fn close(cluster: &pg::Cluster, mut store: PgStore) {
    let backend: i32 = store
        .client()
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    drop(store);
    let mut admin = cluster.admin();
    for _ in 0..600 {
        let sessions: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                &[&backend],
            )
            .unwrap()
            .get(0);
        if sessions == 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the server kept the session {backend} a minute after the client ended it");
}

fn refused(result: Result<PgStore, Error>) -> Error {
    match result {
        Ok(store) => panic!("{} opened", store.name()),
        Err(error) => error,
    }
}

#[test]
fn the_first_writing_open_creates_the_schema_at_the_current_version() {
    let Some(cluster) = pg::cluster() else { return };
    let env = Env::new();
    let case = case(cluster, &env);
    let before = refused(PgStore::open_read_only(&case.target, None));
    assert_eq!(code(&before), 74, "{before}");
    assert!(
        before
            .to_string()
            .contains("run `tixngo-feedback sync` once"),
        "{before}"
    );
    let mut admin = cluster.admin();
    let schemas = "SELECT count(*) FROM pg_namespace WHERE nspname = $1";
    let count: i64 = admin.query_one(schemas, &[&case.schema]).unwrap().get(0);
    assert_eq!(count, 0, "a read-only open created the schema");

    close(cluster, opened(PgStore::open(&case.target, None, false)));
    let version: i32 = admin
        .query_one(
            &format!("SELECT version FROM {}.schema_version", case.schema),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(version, 4);
    for table in [
        "ticket",
        "ticket_history",
        "contact",
        "distribution",
        "sync_state",
        "skip_ticket",
        "sync_run",
        "sync_error",
    ] {
        let sql = format!("SELECT count(*) FROM {}.{table}", case.schema);
        admin.query_one(&sql, &[]).unwrap();
    }
    opened(PgStore::open_read_only(&case.target, None));
    // Opening again migrates nothing and keeps the rows.
    drop(opened(PgStore::open(&case.target, None, false)));
    let states: i64 = admin
        .query_one(
            &format!("SELECT count(*) FROM {}.sync_state", case.schema),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(states, 1);
}

#[test]
fn a_schema_newer_than_the_binary_is_refused() {
    let Some(cluster) = pg::cluster() else { return };
    let env = Env::new();
    let case = case(cluster, &env);
    close(cluster, opened(PgStore::open(&case.target, None, false)));
    let sql = format!("UPDATE {}.schema_version SET version = 99", case.schema);
    cluster.admin().execute(&sql, &[]).unwrap();
    for error in [
        refused(PgStore::open(&case.target, None, false)),
        refused(PgStore::open_read_only(&case.target, None)),
    ] {
        assert_eq!(code(&error), 78, "{error}");
        assert!(error.to_string().contains("schema version 99"), "{error}");
    }
}

#[test]
fn a_schema_holding_another_programs_tables_is_left_untouched() {
    let Some(cluster) = pg::cluster() else { return };
    let env = Env::new();
    let case = case(cluster, &env);
    cluster
        .admin()
        .batch_execute(&format!(
            "CREATE SCHEMA {0}; CREATE TABLE {0}.invoices (id int); GRANT ALL ON SCHEMA {0} TO PUBLIC;",
            case.schema
        ))
        .unwrap();
    let error = refused(PgStore::open(&case.target, None, false));
    assert_eq!(code(&error), 78, "{error}");
    assert!(error.to_string().contains("another program"), "{error}");
}

#[test]
fn a_wrong_password_is_a_configuration_error_and_never_shown() {
    let Some(cluster) = pg::cluster() else { return };
    let env = Env::new();
    let case = case(cluster, &env);
    let wrong = env.write("wrong-password", b"not-the-password-4711", 0o600);
    let target = PgTarget::parse(&cluster.url("postgres"), &case.schema)
        .unwrap()
        .with_password_from(Some(&wrong))
        .unwrap();
    let error = refused(PgStore::open(&target, None, false));
    assert_eq!(code(&error), 78, "{error}");
    let text = error.to_string();
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(!text.contains("4711") && !text.contains('\n'), "{text}");
    assert!(case.password_file.exists());
    // No password at all, where the server asks for one.
    let url = cluster.url("postgres");
    let without = PgTarget::parse(&url, &case.schema).unwrap();
    let error = refused(PgStore::open(&without, None, false));
    assert_eq!(code(&error), 78, "{error}");
    assert!(error.to_string().contains("asks for a password"), "{error}");
}

#[test]
fn a_server_that_is_not_there_is_a_store_error() {
    // No cluster needed: a port nobody listens on.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("postgres://feedback@127.0.0.1:{port}/s360");
    let target = PgTarget::parse(&url, "acme").unwrap();
    let error = refused(PgStore::open(&target, None, false));
    assert_eq!(code(&error), 74, "{error}");
    let text = error.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}/s360")), "{text}");
    assert!(text.contains("refused"), "{text}");
}

#[test]
fn a_held_lock_refuses_a_second_run_naming_the_holder_until_its_session_ends() {
    let Some(cluster) = pg::cluster() else { return };
    let env = Env::new();
    let case = case(cluster, &env);
    let mut holder = opened(PgStore::open(&case.target, None, false));
    let error = refused(PgStore::open(&case.target, None, false));
    assert_eq!(code(&error), 75, "{error}");
    let text = error.to_string();
    for needle in [
        format!("advisory lock {}", lock_key(&case.schema)),
        "tixngo-feedback/".to_owned(),
        format!("pid {}", std::process::id()),
        "from 127.0.0.1".to_owned(),
        "connected since".to_owned(),
    ] {
        assert!(text.contains(&needle), "{needle:?} missing from {text}");
    }
    // Readers never wait for the lock, and see who holds it.
    let reader = opened(PgStore::open_read_only(&case.target, None));
    let (shown, pid) = reader.lock_holder().unwrap().expect("the holder");
    assert!(
        shown.contains(&format!("pid {}", std::process::id())),
        "{shown}"
    );
    assert_eq!(pid, Some(std::process::id()), "{shown}");
    // The server ending the holder's session (a killed client, a lost network) frees the lock.
    let backend: i32 = holder
        .client()
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    cluster
        .admin()
        .execute("SELECT pg_terminate_backend($1, 5000)", &[&backend])
        .unwrap();
    let next = opened(PgStore::open(&case.target, None, false));
    assert!(reader.lock_holder().unwrap().is_some());
    // So does the holder's end.
    close(cluster, next);
    assert_eq!(reader.lock_holder().unwrap(), None);
    drop(opened(PgStore::open(&case.target, None, false)));
}

#[test]
fn two_schemas_lock_independently() {
    let Some(cluster) = pg::cluster() else { return };
    let env = Env::new();
    let first = case(cluster, &env);
    let second = case(cluster, &env);
    let _first = opened(PgStore::open(&first.target, None, false));
    let _second = opened(PgStore::open(&second.target, None, false));
    let error = refused(PgStore::open(&first.target, None, false));
    assert_eq!(code(&error), 75, "{error}");
}

#[test]
fn the_email_key_lowers_ascii_only_as_sqlites_does() {
    let Some(cluster) = pg::cluster() else { return };
    let env = Env::new();
    let case = case(cluster, &env);
    drop(opened(PgStore::open(&case.target, None, false)));
    let email = " \tÉmile.DUPONT@Example.COM\r\n";
    let mut admin = cluster.admin();
    // The database's own lower() would lower-case 'É': what the key must not do.
    let lowered: String = admin
        .query_one("SELECT lower($1::text)", &[&email])
        .unwrap()
        .get(0);
    assert!(lowered.contains('é'), "{lowered}");
    let key: String = admin
        .query_one(
            &format!(
                "INSERT INTO {}.contact (email) VALUES ($1) RETURNING email_key",
                case.schema
            ),
            &[&email],
        )
        .unwrap()
        .get(0);
    let sqlite: String = rusqlite::Connection::open_in_memory()
        .unwrap()
        .query_row(
            "SELECT lower(trim(?1, ' ' || char(9, 10, 13)))",
            [email],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(key, "Émile.dupont@example.com");
    assert_eq!(key, sqlite);
    let collation: String = admin
        .query_one(
            "SELECT collation_name::text FROM information_schema.columns
             WHERE table_schema = $1 AND table_name = 'contact' AND column_name = 'email_key'",
            &[&case.schema],
        )
        .unwrap()
        .get(0);
    assert_eq!(collation, "C");
}

/// The store's timestamps (`YYYY-MM-DDTHH:MM:SS.mmmZ`) as `<ts>`, so that two runs of one story
/// compare; anything else shaped almost like one stays and shows the difference.
fn mask_timestamps(text: &str) -> String {
    let shape = |window: &[u8]| {
        window.len() == 24
            && window.iter().enumerate().all(|(i, &b)| match i {
                4 | 7 => b == b'-',
                10 => b == b'T',
                13 | 16 => b == b':',
                19 => b == b'.',
                23 => b == b'Z',
                _ => b.is_ascii_digit(),
            })
    };
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes.len() - i >= 24 && shape(&bytes[i..i + 24]) {
            out.push_str("<ts>");
            i += 24;
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The operator commands' story, told to a store of either kind: every answer, one line each.
/// `sql` runs a statement on the store as another S-360 tool would.
macro_rules! operator_story {
    ($store:expr, $sql:expr) => {{
        let store = &mut $store;
        let sql: &mut dyn FnMut(&str) = &mut $sql;
        let mut told = Vec::new();
        let numbers = |list: &[&str]| list.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        told.push(format!("{:?}", store.pagination_key()));
        told.push(format!("{:?}", store.set_pagination_key("cursor set", Some("k1"))));
        told.push(format!("{:?}", store.pagination_state()));
        told.push(format!("{:?}", store.add_skips(&numbers(&["b", "a", "a"]), Some("why"))));
        told.push(format!("{:?}", store.add_skips(&numbers(&["a", "c"]), None)));
        told.push(format!("{:?}", store.remove_skips(&numbers(&["c", "x"]))));
        told.push(format!("{:?}", store.skip_entries()));
        let mut skips: Vec<String> = store.skip_list().unwrap().into_iter().collect();
        skips.sort();
        told.push(format!("{skips:?}"));
        let counters = tixngo_feedback::report::Counters {
            fetched: 3,
            failed: 3,
            ..Default::default()
        };
        told.push(format!(
            "{:?}",
            store.record_run(&tixngo_feedback::store::RunRecord {
                command: "sync",
                started_at: "2026-01-02T03:04:05.678Z",
                key_before: Some("k1"),
                key_after: None,
                counters: &counters,
                exit_code: 69,
                error: Some("TIXNGO unavailable"),
            })
        ));
        told.push(format!("{:?}", store.feed_state()));
        sql(
            "INSERT INTO sync_error (ticket_number, reason, payload) VALUES ('T1', 'bad', '{}'), (NULL, 'unreadable', '[')",
        );
        sql(
            "INSERT INTO sync_run (command, started_at, finished_at, caught_up, newest_change_at, feed_lag_seconds, runs_behind)
             VALUES ('sync', '2026-01-02T03:04:05.678Z', '2026-01-02T03:04:06.000Z', 0, '2026-01-02T03:00:00.000Z', 245.5, 3)",
        );
        told.push(format!("{:?}", store.feed_state()));
        told.push(format!("{:?}", store.unresolved_errors()));
        told.push(format!("{:?}", store.unresolved_payloads()));
        told.push(format!("{:?}", store.sync_error(2)));
        told.push(format!("{:?}", store.sync_error(99)));
        told.push(format!("{:?}", store.dismiss_errors(&[1, 99], "gone").map_err(|e| e.to_string())));
        told.push(format!("{:?}", store.dismiss_errors(&[1], "gone")));
        told.push(format!("{:?}", store.dismiss_errors(&[1], "again").map_err(|e| e.to_string())));
        told.push(format!("{:?}", store.sync_error(1)));
        told.push(serde_json::to_string(&store.status(10, 5).unwrap()).unwrap());
        told
    }};
}

#[test]
fn the_operator_commands_read_and_change_both_stores_alike() {
    let Some(cluster) = pg::cluster() else { return };
    // The SQLite side of the comparison, whichever store the suite runs on.
    let env = Env::sqlite();
    let case = case(cluster, &env);
    let mut sqlite = tixngo_feedback::store::Store::open(&env.store(), None).unwrap();
    let writer = env.writable_db();
    let sqlite_told = operator_story!(sqlite, |sql: &str| {
        writer.execute_batch(sql).unwrap();
    });
    let mut postgres = opened(PgStore::open(&case.target, None, false));
    let mut admin = cluster.admin();
    admin
        .batch_execute(&format!("SET search_path = {}", case.schema))
        .unwrap();
    let postgres_told = operator_story!(postgres, |sql: &str| {
        admin.batch_execute(sql).unwrap();
    });
    // The feed state holds the timestamps as written: the store's text form on both.
    assert!(
        sqlite_told[10].contains("2026-01-02T03:04:06.000Z"),
        "{}",
        sqlite_told[10]
    );
    assert_eq!(sqlite_told[10], postgres_told[10]);
    for (sqlite, postgres) in sqlite_told.iter().zip(&postgres_told) {
        assert_eq!(mask_timestamps(sqlite), mask_timestamps(postgres));
    }
}

#[test]
fn sslmode_require_verifies_the_server_against_the_roots_and_the_ca_file() {
    let Some(cluster) = pg::cluster() else { return };
    let env = Env::new();
    let case = case(cluster, &env);
    let (role, password) = cluster.role();
    let password_file = env.write("tls-password", password.as_bytes(), 0o600);
    let url = format!(
        "postgres://{role}@127.0.0.1:{}/postgres?sslmode=require",
        cluster.port
    );
    let target = |ca_file: Option<PathBuf>| {
        PgTarget::parse(&url, &case.schema)
            .unwrap()
            .with_ca_file(ca_file)
            .with_password_from(Some(&password_file))
            .unwrap()
    };
    let error = refused(PgStore::open(&target(None), None, false));
    assert_eq!(code(&error), 78, "{error}");
    assert!(error.to_string().contains("--ca-file"), "{error}");
    let mut store = opened(PgStore::open(&target(Some(pg::test_ca())), None, false));
    let encrypted: bool = store
        .client()
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(encrypted, "the session is not encrypted");
}

/// Pages slower than the store's keep-alive, the first and a prefetched one: while the run waits
/// for them it tells the server that its session is alive (PostgreSQL ends a session idle for a
/// minute, and the lock with it), then commits them.
#[test]
fn a_run_waiting_for_a_slow_page_keeps_its_session_alive() {
    let Some(cluster) = pg::cluster() else { return };
    let env = Env::new();
    let case = case(cluster, &env);
    let sim = Simulator::start(Feed::generate(7, 50), API_KEY);
    sim.push_fault(Fault::Slow(std::time::Duration::from_secs(21)), 2);
    let ran = env
        .sync(&sim)
        .env("TIXNGO_FEEDBACK_STORE", &case.url)
        .env("TIXNGO_FEEDBACK_PG_SCHEMA", &case.schema)
        .env("TIXNGO_FEEDBACK_STORE_PASSWORD_FILE", &case.password_file)
        .args(&["--batch-size", "20", "--max-batches", "2", "-vv", "--json"])
        .stderr_has("the session kept alive")
        .run();
    assert_eq!(ran.json()["exit_code"], 0);
    assert_eq!(
        ran.stderr.matches("the session kept alive").count(),
        2,
        "one keep-alive for each slow page: {}",
        ran.stderr
    );
    // Even at -vv, the PostgreSQL client's own log (every statement's parameters: spectators'
    // names and e-mails) stays out.
    assert!(!ran.stderr.contains("parameters"), "{}", ran.stderr);
    assert!(!ran.stderr.contains("@example"), "{}", ran.stderr);
    let count: i64 = cluster
        .admin()
        .query_one(&format!("SELECT count(*) FROM {}.ticket", case.schema), &[])
        .unwrap()
        .get(0);
    assert!(count > 0, "nothing was committed");
}

/// A `--store` written as a URL is a PostgreSQL store whatever the case of its scheme, or
/// refused (78) when of another scheme; either way the password it holds is never shown, and
/// no file or directory is made of it.
#[test]
fn a_store_url_of_any_scheme_never_shows_its_password_nor_becomes_a_path() {
    let env = Env::new();
    for url in [
        "POSTGRES://feedback:hunter2@db.example/s360",
        "PostgreSQL://feedback:hunter2@db.example/s360",
        "mysql://feedback:hunter2@db.example/s360",
        "postgre://feedback:hunter2@db.example/s360",
    ] {
        for command in [
            &["status"][..],
            &["skip", "add", "T-1"],
            &["sync", "--dry-run"],
        ] {
            let ran = env
                .cmd(command)
                .env("TIXNGO_FEEDBACK_STORE", url)
                .env("TIXNGO_API_KEY", "k")
                .env("TIXNGO_API_URL", "http://127.0.0.1:9/organizer/tickets")
                .code(78)
                .run();
            let said = format!("{}{}", ran.stdout, ran.stderr);
            assert!(!said.contains("hunter2"), "{url} {command:?}: {said}");
        }
    }
    let left: Vec<_> = std::fs::read_dir(env.dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files made of a URL: {left:?}");
}

/// A time another tool wrote that the store's form cannot show (`infinity`, a year past 9999)
/// stops the command that reads it (74, saying so): never read as NULL or as another instant,
/// and a sync that met it commits nothing.
#[test]
fn a_stored_time_the_store_form_cannot_show_is_refused_not_read_as_another() {
    let Some(env) = Env::postgres() else { return };
    let sim = Simulator::start(Feed::generate(5, 40), API_KEY);
    env.sync(&sim)
        .args(&["--batch-size", "20", "--max-batches", "1"])
        .run();
    let state = "SELECT pagination_key, count(*) FROM sync_state, ticket GROUP BY 1";
    let before = env.pg().query(state);
    env.execute("UPDATE ticket SET activated_at = 'infinity'");
    env.sync(&sim)
        .code(74)
        .stderr_has("the store holds a value this binary cannot read")
        .stderr_has("infinity")
        .run();
    assert_eq!(env.pg().query(state), before, "the refused sync wrote");

    env.execute("INSERT INTO skip_ticket VALUES ('T-1', NULL, '10000-01-01T00:00:00Z')");
    env.cmd(&["skip", "list"])
        .code(74)
        .stderr_has("outside the years 0000 to 9999")
        .run();
}

/// A `schema_version` table emptied by hand is named as what is wrong (74), for a run and for a
/// read alike, not taken for an unreachable server.
#[test]
fn an_emptied_schema_version_table_is_named() {
    let Some(env) = Env::postgres() else { return };
    let sim = Simulator::start(Feed::generate(5, 10), API_KEY);
    env.sync(&sim).run();
    env.execute("DELETE FROM schema_version");
    let says = "the schema_version table holds 0 rows instead of one";
    env.sync(&sim).code(74).stderr_has(says).run();
    env.cmd(&["status"]).code(74).stderr_has(says).run();
}

/// A database whose encoding is not UTF-8 is refused (74, naming it) before a run writes
/// anything, and by a read alike: in LATIN1 the first spectator named `Ł…` would fail the
/// whole batch, run after run.
#[test]
fn a_database_not_in_utf8_is_refused_before_anything_is_written() {
    let Some(cluster) = pg::cluster() else { return };
    let env = Env::new();
    let (role, password) = cluster.role();
    let database = format!("latin_{}", cluster.schema());
    cluster
        .admin()
        .batch_execute(&format!(
            "CREATE DATABASE {database} OWNER {role} TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'"
        ))
        .expect("a LATIN1 database");
    let url = cluster
        .url(&role)
        .replace("/postgres", &format!("/{database}"));
    let password_file = env.write("store-password", password.as_bytes(), 0o600);
    let says = "the database's encoding is LATIN1: spectators' names need UTF8";
    let sim = Simulator::start(Feed::generate(5, 10), API_KEY);
    for run in [env.sync(&sim), env.cmd(&["status"])] {
        run.env("TIXNGO_FEEDBACK_STORE", &url)
            .env("TIXNGO_FEEDBACK_STORE_PASSWORD_FILE", &password_file)
            .code(74)
            .stderr_has(says)
            .run();
    }
    assert_eq!(sim.requests().len(), 0, "the run asked TIXNGO for a page");
    let mut in_it = postgres::Config::new();
    let schemas: i64 = in_it
        .host("127.0.0.1")
        .port(cluster.port)
        .user(&role)
        .password(&password)
        .dbname(&database)
        .connect(postgres::NoTls)
        .expect("a login to the LATIN1 database")
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'tixngo_feedback'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(schemas, 0, "the refused run created its schema");
}
