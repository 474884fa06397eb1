//! The files the job writes and the store it keeps, under careless configuration and hostile
//! neighbours (SPEC §2 "Paths", §5, §7): paths that name one file twice, links and planted files,
//! modes, foreign databases, a store another program is writing, unusable store paths, a stderr
//! that cannot be written, and readers without a busy timeout during syncs.

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use support::{API_KEY, Env, Feed, Simulator};

/// A feed long enough for many back-to-back batches of 10.
fn long_feed() -> Feed {
    Feed::generate(11, 400)
}

/// One read as `sqlite3 -readonly` does it: a new read-only connection with no busy timeout.
fn read_once(store: &Path) -> rusqlite::Result<i64> {
    let db = Connection::open_with_flags(store, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    db.busy_timeout(Duration::ZERO)?;
    db.query_row("SELECT count(*) FROM ticket", [], |row| row.get(0))
}

/// SQLite's extended code for "another connection is rebuilding the WAL index": the moment the
/// first connection to open a WAL store (any program, readers included) reads the WAL. It
/// happens between two readers alike, with no sync running; the sync keeps it as short as it can
/// be by leaving an empty WAL.
const SQLITE_BUSY_RECOVERY: i32 = 261;

/// Back-to-back syncs (`READER_SYNCS`, default 15) while a reader without a busy timeout reads the
/// store in a loop: the reader never gets "database is locked" from a sync's lock (the checkpoint
/// and WAL removal when the last connection closed). Prints the figures.
#[test]
fn a_reader_without_busy_timeout_never_fails_during_back_to_back_syncs() {
    if support::sqlite_only("SQLite's readers beside a writer") {
        return;
    }
    let syncs: usize = std::env::var("READER_SYNCS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(15);
    let sim = Simulator::start(long_feed(), API_KEY);
    let env = Env::new();
    env.sync(&sim).args(&["--batch-size", "10"]).run();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, done) = (env.store(), Arc::clone(&done));
        thread::spawn(move || {
            let (mut reads, mut failures) = (0u64, Vec::new());
            while !done.load(Ordering::Relaxed) {
                reads += 1;
                if let Err(e) = read_once(&store) {
                    failures.push((e.sqlite_error().map(|e| e.extended_code), e.to_string()));
                }
            }
            (reads, failures)
        })
    };
    for _ in 0..syncs {
        env.sync(&sim).args(&["--batch-size", "10"]).run();
    }
    done.store(true, Ordering::Relaxed);
    let (reads, failures) = reader.join().unwrap();
    let (recovery, other): (Vec<_>, Vec<_>) = failures
        .iter()
        .partition(|(code, _)| *code == Some(SQLITE_BUSY_RECOVERY));
    println!(
        "{syncs} syncs, {reads} reads without busy timeout, {} failed ({} during a WAL-index rebuild)",
        failures.len(),
        recovery.len()
    );
    assert!(reads > 0);
    assert!(other.is_empty(), "{} reads failed: {other:?}", other.len());
}

const BIN: &str = env!("CARGO_BIN_EXE_tixngo-feedback");

fn small_feed() -> Feed {
    Feed::generate(5, 40)
}

/// A store after one committed batch.
fn primed(sim: &Simulator) -> Env {
    let env = Env::new();
    env.sync(sim).args(&["--batch-size", "20"]).run();
    env
}

/// A file's bytes and mode, to show it was left exactly as it was.
fn fingerprint(path: &Path) -> (Vec<u8>, u32) {
    let mode = fs::symlink_metadata(path).unwrap().permissions().mode();
    (fs::read(path).unwrap(), mode)
}

fn the_error_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr:\n{stderr}");
    lines[0]
}

// ---------------------------------------------------------------------------------------------
// Paths that name one file twice (SPEC §2 "Paths")
// ---------------------------------------------------------------------------------------------

#[test]
fn a_lock_or_metrics_file_naming_the_store_or_another_file_is_refused_64_and_destroys_nothing() {
    if support::sqlite_only("the SQLite file and its companions") {
        return;
    }
    let sim = Simulator::start(small_feed(), API_KEY);
    let env = primed(&sim);
    let store = env.store();
    let key = env.write("api.key", API_KEY.as_bytes(), 0o600);
    let hard = env.path("hard-link");
    fs::hard_link(&store, &hard).unwrap();
    let soft = env.path("soft-link");
    std::os::unix::fs::symlink(&store, &soft).unwrap();
    let spelled = format!("{}/./store.db", env.dir.path().display());
    let wal = format!("{}-wal", store.display());
    let shm = format!("{}-shm", store.display());
    let key_text = key.display().to_string();
    let lock = env.lock_file().display().to_string();
    let cases: [&[&str]; 11] = [
        &["--lock-file", store.to_str().unwrap()],
        &["--lock-file", hard.to_str().unwrap()],
        &["--lock-file", soft.to_str().unwrap()],
        &["--lock-file", &wal],
        &["--metrics-file", &spelled],
        &["--metrics-file", &shm],
        &["--metrics-file", &key_text],
        &["--metrics-file", &lock],
        &["--lock-file", &key_text],
        &["--dump-dir", store.to_str().unwrap()],
        &["--dump-dir", &lock, "--lock-file", &lock],
    ];
    let before = (fingerprint(&store), fingerprint(&key));
    let requests = sim.request_count();
    for args in cases {
        let ran = env
            .sync(&sim)
            .env_remove("TIXNGO_API_KEY")
            .args(&["--api-key-file", &key_text])
            .args(args)
            .code(64)
            .stdout_empty()
            .run();
        let error = the_error_line(&ran.stderr);
        assert!(error.contains("the same file as"), "{args:?}: {error}");
        assert_eq!((fingerprint(&store), fingerprint(&key)), before, "{args:?}");
    }
    assert_eq!(sim.request_count(), requests, "nothing was fetched");
    assert!(!env.path("store.db-journal").exists());
    // `status` and the other commands check their paths too.
    env.cmd(&["status", "--lock-file", store.to_str().unwrap()])
        .code(64)
        .stderr_has("the same file as --store")
        .run();
}

// ---------------------------------------------------------------------------------------------
// The lock file: never emptied, never followed (SPEC §5, §7)
// ---------------------------------------------------------------------------------------------

#[test]
fn a_lock_file_holding_other_content_is_locked_without_losing_a_byte() {
    if support::sqlite_only("--lock-file, refused with PostgreSQL") {
        return;
    }
    let sim = Simulator::start(small_feed(), API_KEY);
    let env = Env::new();
    let precious = b"the operator's notes, which a careless --lock-file named\n".repeat(3);
    let lock = env.write("notes.txt", &precious, 0o600);
    env.sync(&sim)
        .args(&["--lock-file", lock.to_str().unwrap()])
        .run();
    assert_eq!(fs::read(&lock).unwrap(), precious);
    // An ordinary lock file holds the pid record, blanked when the run ends, never emptied.
    env.sync(&sim).run();
    let record = fs::read(env.lock_file()).unwrap();
    assert_eq!(record.len(), 11, "{record:?}");
    assert!(record.iter().all(|b| b.is_ascii_whitespace()), "{record:?}");
}

#[test]
fn a_symbolic_link_as_lock_file_is_refused_78_and_its_target_is_untouched() {
    if support::sqlite_only("--lock-file, refused with PostgreSQL") {
        return;
    }
    let sim = Simulator::start(small_feed(), API_KEY);
    let env = Env::new();
    let target = env.write("victim.conf", b"setting = 1\n", 0o600);
    std::os::unix::fs::symlink(&target, env.lock_file()).unwrap();
    let ran = env.sync(&sim).code(78).stdout_empty().run();
    let error = the_error_line(&ran.stderr);
    assert!(error.contains("is a symbolic link"), "{error}");
    assert_eq!(fs::read(&target).unwrap(), b"setting = 1\n");
    assert!(!env.store().exists(), "refused before the store");
    assert_eq!(sim.request_count(), 0);
}

// ---------------------------------------------------------------------------------------------
// The metrics file: never world-writable whatever the umask (SPEC §7)
// ---------------------------------------------------------------------------------------------

#[test]
fn the_metrics_file_is_0644_at_most_even_under_umask_0_and_leaves_no_temporary() {
    let sim = Simulator::start(small_feed(), API_KEY);
    let env = Env::new();
    let metrics = env.path("textfile/tixngo.prom");
    fs::create_dir(env.path("textfile")).unwrap();
    let status = std::process::Command::new("sh")
        .env_clear()
        .args([
            "-c",
            "umask 0; exec \"$0\" sync --metrics-file \"$1\" --quiet",
        ])
        .arg(BIN)
        .arg(&metrics)
        .envs(env.store_env())
        .env("TIXNGO_API_URL", sim.url())
        .env("TIXNGO_API_KEY", API_KEY)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let mode = fs::metadata(&metrics).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "{mode:o}");
    let names: Vec<_> = fs::read_dir(env.path("textfile")).unwrap().collect();
    assert_eq!(names.len(), 1, "the temporary file is gone");
    // A metrics file that cannot be written is still reported, even with --quiet.
    let unwritable = env.path("no-such-dir/tixngo.prom");
    env.sync(&sim)
        .args(&["--quiet", "--metrics-file", unwritable.to_str().unwrap()])
        .stderr_has("cannot write the metrics file")
        .run();
}

// ---------------------------------------------------------------------------------------------
// Modes and file kinds (SPEC §7)
// ---------------------------------------------------------------------------------------------

#[test]
fn a_store_or_wal_open_to_others_is_refused_78_with_the_chmod_fix_and_group_bits_pass() {
    if support::sqlite_only("the modes of the SQLite file and its WAL") {
        return;
    }
    let sim = Simulator::start(small_feed(), API_KEY);
    let env = primed(&sim);
    let store = env.store();
    let wal = env.path("store.db-wal");
    fs::write(&wal, b"").unwrap();
    for (file, mode) in [(&store, 0o644), (&store, 0o602), (&wal, 0o604)] {
        fs::set_permissions(file, fs::Permissions::from_mode(mode)).unwrap();
        let before = fingerprint(&store);
        for command in [env.sync(&sim), env.cmd(&["status"])] {
            let ran = command.code(78).stdout_empty().run();
            let error = the_error_line(&ran.stderr);
            assert!(
                error.contains(&format!("chmod o-rwx {}", file.display())),
                "{error}"
            );
        }
        assert_eq!(fingerprint(&store), before);
        fs::set_permissions(file, fs::Permissions::from_mode(0o600)).unwrap();
    }
    fs::set_permissions(&store, fs::Permissions::from_mode(0o640)).unwrap();
    env.sync(&sim).run();
}

#[test]
fn a_key_file_the_group_or_others_can_write_or_that_is_not_a_file_is_refused_78() {
    let sim = Simulator::start(small_feed(), API_KEY);
    let env = Env::new();
    let key = env.write("api.key", API_KEY.as_bytes(), 0o600);
    for mode in [0o602, 0o620, 0o640, 0o604] {
        fs::set_permissions(&key, fs::Permissions::from_mode(mode)).unwrap();
        env.sync(&sim)
            .env_remove("TIXNGO_API_KEY")
            .args(&["--api-key-file", key.to_str().unwrap()])
            .code(78)
            .stderr_has("chmod 600")
            .run();
    }
    fs::create_dir(env.path("key-dir")).unwrap();
    let fifo = env.path("key-fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    fs::set_permissions(&fifo, fs::Permissions::from_mode(0o600)).unwrap();
    for not_a_file in [fifo, env.path("key-dir")] {
        // Nobody writes to the FIFO: a run that opened it for reading would wait forever.
        let mut child = std::process::Command::new(BIN)
            .env_clear()
            .args(["sync", "--api-key-file"])
            .arg(&not_a_file)
            .envs(env.store_env())
            .env("TIXNGO_API_URL", sim.url())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut waited = 0;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if waited > 300 {
                let _ = child.kill();
                panic!("the run blocked on {}", not_a_file.display());
            }
            thread::sleep(Duration::from_millis(100));
            waited += 1;
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(78), "{stderr}");
        assert!(
            the_error_line(&stderr).contains("not a regular file"),
            "{stderr}"
        );
    }
    assert_eq!(sim.request_count(), 0);
}

// ---------------------------------------------------------------------------------------------
// A database of another program (SPEC §4.3)
// ---------------------------------------------------------------------------------------------

#[test]
fn an_sqlite_database_of_another_program_is_refused_78_untouched_and_no_sql_is_printed() {
    if support::sqlite_only(
        "an SQLite file of another program (postgres_runs:: has the schema's twin)",
    ) {
        return;
    }
    let sim = Simulator::start(small_feed(), API_KEY);
    for schema in [
        "CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL); INSERT INTO invoices VALUES (1, 9.5);",
        // A table name that collides with ours.
        "CREATE TABLE contact (id INTEGER PRIMARY KEY, phone TEXT);",
    ] {
        let env = Env::new();
        let db = Connection::open(env.store()).unwrap();
        db.execute_batch(schema).unwrap();
        drop(db);
        fs::set_permissions(env.store(), fs::Permissions::from_mode(0o600)).unwrap();
        let before = fingerprint(&env.store());
        for command in [env.sync(&sim), env.sync(&sim).arg("--dry-run")] {
            let ran = command.code(78).stdout_empty().run();
            let error = the_error_line(&ran.stderr);
            assert!(error.contains("another program"), "{error}");
            assert!(!error.to_uppercase().contains("CREATE"), "{error}");
        }
        assert_eq!(fingerprint(&env.store()), before, "{schema}");
        assert!(!env.path("store.db-wal").exists());
    }
    assert_eq!(sim.request_count(), 0);
}

// ---------------------------------------------------------------------------------------------
// A store another program is writing: the deadline holds (SPEC §7)
// ---------------------------------------------------------------------------------------------

#[test]
fn a_store_another_program_is_writing_is_try_later_75_within_the_deadline() {
    if support::sqlite_only("SQLite's busy wait") {
        return;
    }
    let sim = Simulator::start(small_feed(), API_KEY);
    let env = primed(&sim);
    let before = env.stored_key();
    let holder = env.writable_db();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let ran = env
        .sync(&sim)
        .args(&["--timeout", "2"])
        .code(75)
        .stdout_empty()
        .run();
    let error = the_error_line(&ran.stderr);
    assert!(
        error.contains("another program is writing the store"),
        "{error}"
    );
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    assert_eq!(env.stored_key(), before);
}

// ---------------------------------------------------------------------------------------------
// Store paths that cannot be used: the cause and the fix, no stray lock (SPEC §3: 74)
// ---------------------------------------------------------------------------------------------

#[test]
fn an_unusable_store_path_names_the_cause_and_the_fix_and_leaves_no_lock_file() {
    if support::sqlite_only("the path of the SQLite file") {
        return;
    }
    let sim = Simulator::start(small_feed(), API_KEY);
    let env = Env::new();
    let directory = env.path("stores");
    fs::create_dir(&directory).unwrap();
    let missing = env.path("no/such/dir/store.db");
    for (store, needle) in [
        (&directory, "is a directory".to_owned()),
        (
            &missing,
            format!("mkdir -p {}", env.path("no/such/dir").display()),
        ),
    ] {
        for command in [env.sync(&sim), env.cmd(&["skip", "add", "1"])] {
            let ran = command
                .env("TIXNGO_FEEDBACK_STORE", store)
                .code(74)
                .stdout_empty()
                .run();
            assert!(
                the_error_line(&ran.stderr).contains(&needle),
                "{}",
                ran.stderr
            );
        }
        assert!(!env.path("stores.lock").exists(), "no stray lock file");
    }
    env.cmd(&["status"])
        .code(74)
        .stderr_has("run `tixngo-feedback sync` once to create it")
        .run();
    assert!(!env.store().exists());
    assert_eq!(sim.request_count(), 0);
}

/// Another user (nobody), as cron runs the job, on a store owned by root.
#[test]
fn a_store_owned_by_another_user_names_both_users_and_the_chown_fix() {
    if support::sqlite_only("the owner of the SQLite file") {
        return;
    }
    let sim = Simulator::start(small_feed(), API_KEY);
    let env = primed(&sim);
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let output = std::process::Command::new("setpriv")
        .env_clear()
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "sync",
        ])
        .env("TIXNGO_FEEDBACK_STORE", env.store())
        .env(
            "TIXNGO_FEEDBACK_LOCK",
            "/tmp/tixngo-feedback-test-nobody.lock",
        )
        .env("TIXNGO_API_URL", sim.url())
        .env("TIXNGO_API_KEY", API_KEY)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(74), "{stderr}");
    let error = the_error_line(&stderr);
    assert!(
        error.contains("permission denied: user nobody cannot read and write")
            && error.contains("owned by root")
            && error.contains("chown nobody"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// A stderr or stdout that cannot be written: the exit code holds (SPEC §7)
// ---------------------------------------------------------------------------------------------

#[test]
fn an_unwritable_stderr_or_stdout_never_changes_the_exit_code() {
    let sim = Simulator::start(small_feed(), API_KEY);
    let env = Env::new();
    let cases: [(&[&str], i32); 4] = [
        (&["sync", "--frobnicate"], 64),
        (&["sync"], 78),
        (&["-vv", "sync", "--json"], 78),
        (&["status"], 74),
    ];
    for (args, code) in cases {
        for broken in ["/dev/full", "closed pipe"] {
            let sink = || -> std::process::Stdio {
                if broken == "/dev/full" {
                    fs::OpenOptions::new()
                        .write(true)
                        .open("/dev/full")
                        .unwrap()
                        .into()
                } else {
                    let (reader, writer) = std::io::pipe().unwrap();
                    drop(reader);
                    writer.into()
                }
            };
            let status = std::process::Command::new(BIN)
                .env_clear()
                .args(args)
                .envs(env.store_env())
                .env("TIXNGO_API_KEY", API_KEY)
                .stdout(sink())
                .stderr(sink())
                .status()
                .unwrap();
            assert_eq!(
                status.code(),
                Some(code),
                "{args:?} with {broken}: {status}"
            );
        }
    }
    let _ = sim;
}

// ---------------------------------------------------------------------------------------------
// Empty items in ticket number lists (SPEC §2 input rules)
// ---------------------------------------------------------------------------------------------

#[test]
fn an_empty_item_in_a_ticket_number_list_is_a_usage_error_naming_it() {
    let sim = Simulator::start(small_feed(), API_KEY);
    let env = Env::new();
    for value in [",,", " ", "1,,2", "1,"] {
        env.sync(&sim)
            .args(&["--skip", value])
            .code(64)
            .stderr_has(&format!("{value:?}"))
            .run();
    }
    env.cmd(&["skip", "add", " "])
        .code(64)
        .stderr_has("\" \"")
        .run();
    assert!(!env.store().exists());
    assert_eq!(sim.request_count(), 0);
}
