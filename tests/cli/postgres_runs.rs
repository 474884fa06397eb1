//! The binary on a PostgreSQL store (SPEC §10), whatever the suite's store: the lock across
//! hosts (two processes with no file lock between them), a session lost mid-run, kill -9, the
//! fault matrix, the same feed giving the same rows as SQLite, and the login's failures. They run
//! in the suite's PostgreSQL pass (`TIXNGO_TEST_STORE=postgres`), which carries the cost of
//! PostgreSQL, and say that they skipped in the SQLite pass.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::crash_test::CrashSettings;
use crate::support::{self, API_KEY, Env, Fault, Feed, Simulator, dump, ticket};

const BIN: &str = env!("CARGO_BIN_EXE_tixngo-feedback");

/// Whether this is the PostgreSQL pass; says so on stderr when not.
fn pg_pass() -> bool {
    let pass = support::backend::postgres_mode();
    if !pass {
        eprintln!(
            "SKIPPED: a PostgreSQL test, run by TIXNGO_TEST_STORE=postgres cargo test --test cli"
        );
    }
    pass
}

/// A store on a fresh schema of the test cluster; `None` outside the PostgreSQL pass.
fn pg_env() -> Option<Env> {
    if !pg_pass() {
        return None;
    }
    Some(Env::new())
}

/// A small organizer: about 140 events.
fn feed() -> Feed {
    Feed::generate(5, 40)
}

/// A schema after one committed batch of 20.
fn primed(sim: &Simulator) -> Option<Env> {
    let env = pg_env()?;
    env.sync(sim).args(&["--batch-size", "20"]).run();
    assert_eq!(env.stored_key(), Some(Feed::page_key(20)));
    Some(env)
}

/// `sync` in the background, from a working directory of its own: two such runs share no file,
/// as two hosts would not.
fn spawn(env: &Env, sim: &Simulator, args: &[&str]) -> Killed {
    let own_dir = tempfile::tempdir().expect("a temporary directory");
    let child = Command::new(BIN)
        .env_clear()
        .envs(env.store_env())
        .env("TIXNGO_API_URL", sim.url())
        .env("TIXNGO_API_KEY", API_KEY)
        .current_dir(own_dir.path())
        .arg("sync")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    Killed {
        child: Some(child),
        _workdir: own_dir,
    }
}

/// A background run, killed (SIGKILL) and reaped when the test ends, passed or not; and its
/// working directory.
struct Killed {
    child: Option<Child>,
    _workdir: tempfile::TempDir,
}

impl Killed {
    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits for the end of the run: its exit code and stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        let output = self.child.take().unwrap().wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.code(), stderr)
    }

    /// kill -9, then reaps it.
    fn kill_9(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until `condition` holds, for 20 s at most.
fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < Duration::from_secs(20), "{what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// This host's name, as the binary puts it in `application_name`.
fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("the host name");
    name.trim().to_owned()
}

/// A run stalled on TIXNGO's answer after taking the lock: it has asked the simulator, which
/// it does only once it holds the lock.
fn stalled_holder(env: &Env, sim: &Simulator) -> Killed {
    let before = sim.request_count();
    sim.push_fault(Fault::Stall, 1);
    let holder = spawn(env, sim, &["--timeout", "60"]);
    wait_until("the holder takes the lock and asks TIXNGO", || {
        sim.request_count() > before
    });
    holder
}

/// The `application_name` of the sessions of the schema's runs, as `pg_stat_activity` has them.
fn application_names(env: &Env) -> Vec<String> {
    env.rows("SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'tixngo-feedback/%'")
        .into_iter()
        .map(|mut row| row.remove(0))
        .collect()
}

/// How many sessions the run of process `pid` has open.
fn sessions_of(env: &Env, pid: u32) -> i64 {
    env.int(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'tixngo-feedback/% pid {pid}'"
    ))
}

#[test]
fn a_second_run_on_the_same_schema_exits_75_naming_the_holder_by_version_host_and_pid() {
    let sim = Simulator::start(feed(), API_KEY);
    let Some(env) = primed(&sim) else { return };
    let before = (env.counts(), dump::data(&env));
    let holder = stalled_holder(&env, &sim);
    let named = format!(
        "tixngo-feedback/{} {} pid {}",
        env!("CARGO_PKG_VERSION"),
        hostname(),
        holder.pid()
    );
    assert!(
        application_names(&env).contains(&named),
        "{named:?} not in {:?}",
        application_names(&env)
    );
    let second = spawn(&env, &sim, &["--json"]);
    let (code, stderr) = second.finish();
    assert_eq!(code, Some(75), "{stderr}");
    assert!(stderr.contains(&named), "the holder is not named: {stderr}");
    assert_eq!(sim.request_count(), 2, "the refused run never fetched");
    holder.kill_9();
    assert_eq!(
        (env.counts(), dump::data(&env)),
        before,
        "the refused run wrote"
    );
    assert!(
        std::fs::read_dir(env.dir.path()).unwrap().next().is_none(),
        "a file appeared beside the runs"
    );
}

#[test]
fn two_schemas_sync_side_by_side_each_under_its_own_lock() {
    let sim = Simulator::start(feed(), API_KEY);
    let Some(first) = primed(&sim) else { return };
    let second = pg_env().unwrap();
    let holder = stalled_holder(&first, &sim);
    let summary = second.sync(&sim).args(&["--batch-size", "20"]).json();
    assert_eq!(summary["exit_code"], 0);
    assert_eq!(second.stored_key(), Some(Feed::page_key(20)));
    assert_eq!(dump::data(&second), dump::data(&first), "the same batch");
    holder.kill_9();
}

#[test]
fn kill_9_of_a_holder_frees_the_lock_for_the_next_run_at_once() {
    let sim = Simulator::start(feed(), API_KEY);
    let Some(env) = primed(&sim) else { return };
    let holder = stalled_holder(&env, &sim);
    holder.kill_9();
    let summary = env.sync(&sim).args(&["--batch-size", "20"]).json();
    assert_eq!(summary["exit_code"], 0, "{summary}");
    assert_eq!(env.stored_key(), Some(Feed::page_key(40)));
}

#[test]
fn a_session_the_server_ends_mid_run_exits_74_and_commits_nothing() {
    let sim = Simulator::start(feed(), API_KEY);
    let Some(env) = primed(&sim) else { return };
    let before = (env.counts(), dump::data(&env), env.stored_key());
    // The page comes 3 s late: the run holds its session and the lock, waiting.
    sim.push_fault(Fault::Slow(Duration::from_secs(3)), 1);
    let run = spawn(&env, &sim, &["--batch-size", "20", "--json"]);
    wait_until("the run asks TIXNGO", || sim.request_count() == 2);
    let pid = run.pid();
    let ended = env.int(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE application_name LIKE 'tixngo-feedback/% pid {pid}'"
    ));
    assert_eq!(ended, 1, "the run's session was not found");
    let (code, stderr) = run.finish();
    assert_eq!(code, Some(74), "{stderr}");
    let error = stderr.lines().last().unwrap_or_default();
    assert!(error.contains("the server ended the session"), "{stderr}");
    assert_eq!(
        (env.counts(), dump::data(&env), env.stored_key()),
        before,
        "the run wrote after losing its session"
    );
    // The next run goes through.
    env.sync(&sim).args(&["--batch-size", "20"]).run();
    assert_eq!(env.stored_key(), Some(Feed::page_key(40)));
}

#[test]
fn each_fault_leaves_the_schema_as_it_was_but_for_the_runs_row() {
    #[rustfmt::skip]
    let faults = [
        (Fault::TooManyRequests { retry_after: Some("1".into()) }, &["--timeout", "3"][..], 75),
        (Fault::Status(503), &["--timeout", "2"], 69),
        (Fault::Slow(Duration::from_secs(4)), &["--timeout", "2"], 69),
        (Fault::Truncated, &["--timeout", "2"], 69),
        (Fault::InvalidJson, &[], 65),
        (Fault::Oversized { bytes: 2 << 20 }, &["--max-response-mb", "1"], 65),
    ];
    if !pg_pass() {
        return;
    }
    thread::scope(|scope| {
        for (fault, args, code) in &faults {
            scope.spawn(move || {
                let sim = Simulator::start(feed(), API_KEY);
                let env = primed(&sim).unwrap();
                let data = dump::data(&env);
                let (mut counts, key) = (env.counts(), env.stored_key());
                sim.push_fault(fault.clone(), usize::MAX);
                let summary = env.sync(&sim).args(args).code(*code).json();
                assert_eq!(summary["stored"], 0, "{fault:?}");
                assert_eq!(dump::data(&env), data, "{fault:?}");
                assert_eq!(env.stored_key(), key, "{fault:?}");
                let runs = counts.iter_mut().find(|(table, _)| table == "sync_run");
                runs.unwrap().1 += 1;
                assert_eq!(
                    env.counts(),
                    counts,
                    "{fault:?}: more than one sync_run row"
                );
                let recorded = env.int("SELECT exit_code FROM sync_run ORDER BY id DESC LIMIT 1");
                assert_eq!(recorded, i64::from(*code), "{fault:?}");
            });
        }
    });
}

/// A feed with contacts, transfers, updates and tickets that cannot be mapped.
fn mixed_feed() -> Feed {
    let mut events = Feed::generate(21, 300).events().to_vec();
    events.insert(30, serde_json::json!({ "status": "DOWNLOADED" }));
    events.insert(90, ticket("BAD 1", "ACTIVATED", "2026-03-01T10:00:00Z"));
    events.push(ticket(
        "T-LAST",
        "NOT_A_STATUS",
        "2026-03-01T11:00:00+02:00",
    ));
    Feed::from_events(events)
}

#[test]
fn the_same_feed_gives_the_same_rows_in_sqlite_and_in_postgresql_ids_included() {
    let Some(postgres) = pg_env() else { return };
    let sqlite = Env::sqlite();
    let sim = Simulator::start(mixed_feed(), API_KEY);
    for env in [&sqlite, &postgres] {
        let summary = env
            .sync(&sim)
            .args(&["--batch-size", "97", "--max-batches", "100"])
            .code(2)
            .json();
        assert_eq!(summary["caught_up"], true, "{summary}");
    }
    for (table, rows) in dump::assert_same_rows(&sqlite, &postgres) {
        assert!(rows > 0, "{table} is empty: nothing compared");
    }
}

/// The binary's `sync` against `url` with the environment's schema, and what it printed.
fn sync_to(env: &Env, sim: &Simulator, url: &str) -> support::Run {
    env.sync(sim).env("TIXNGO_FEEDBACK_STORE", url)
}

#[test]
fn a_url_holding_a_password_is_refused_78_and_the_password_is_never_shown() {
    let sim = Simulator::start(feed(), API_KEY);
    let Some(env) = pg_env() else { return };
    let pg = env.pg();
    let password = std::fs::read_to_string(&pg.password_file).unwrap();
    let password = password.trim();
    let url = format!(
        "postgres://{}:{password}@127.0.0.1:{}/postgres",
        pg.role, pg.cluster.port
    );
    let ran = sync_to(&env, &sim, &url)
        .arg("-vv")
        .code(78)
        .stdout_empty()
        .stderr_has("password")
        .run();
    assert!(!ran.stderr.contains(password), "{}", ran.stderr);
    assert!(!env.store_exists());
    assert_eq!(sim.request_count(), 0);
}

#[test]
fn a_wrong_password_is_78_and_no_server_listening_is_74() {
    let sim = Simulator::start(feed(), API_KEY);
    let Some(env) = pg_env() else { return };
    let wrong = env.write("wrong-password", b"not-the-password\n", 0o600);
    let ran = env
        .sync(&sim)
        .env("TIXNGO_FEEDBACK_STORE_PASSWORD_FILE", &wrong)
        .code(78)
        .stdout_empty()
        .run();
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    assert!(!ran.stderr.contains("not-the-password"), "{}", ran.stderr);

    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let nobody = format!("postgres://{}@127.0.0.1:{port}/postgres", env.pg().role);
    let ran = sync_to(&env, &sim, &nobody).code(74).stdout_empty().run();
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    assert!(!env.store_exists());
    assert_eq!(
        sim.request_count(),
        0,
        "the store is checked before fetching"
    );
}

#[test]
fn a_schema_newer_than_the_binary_is_refused_78_untouched() {
    let sim = Simulator::start(feed(), API_KEY);
    let Some(env) = primed(&sim) else { return };
    env.set_schema_version(99);
    let before = (env.counts(), dump::data(&env));
    let ran = env.sync(&sim).code(78).stdout_empty().run();
    assert!(ran.stderr.contains("99"), "{}", ran.stderr);
    assert_eq!((env.counts(), dump::data(&env)), before);
    assert_eq!(env.schema_version(), 99);
    assert_eq!(
        sim.request_count(),
        1,
        "the store is checked before fetching"
    );
}

#[test]
fn the_store_password_never_appears_in_any_output() {
    let sim = Simulator::start(feed(), API_KEY);
    let Some(env) = pg_env() else { return };
    let password = std::fs::read_to_string(&env.pg().password_file).unwrap();
    let password = password.trim().to_owned();
    let from_variable = |run: support::Run| {
        run.env_remove("TIXNGO_FEEDBACK_STORE_PASSWORD_FILE")
            .env("PGPASSWORD", &password)
    };
    let mut outputs = vec![
        env.sync(&sim).args(&["-vvv", "--batch-size", "20"]).run(),
        from_variable(env.sync(&sim))
            .args(&["--json", "--batch-size", "20"])
            .env("RUST_LOG", "trace")
            .run(),
        env.cmd(&["status", "-vvv"]).run(),
        from_variable(env.cmd(&["status", "--json"])).run(),
        env.cmd(&["cursor", "show"]).run(),
    ];
    let holder = stalled_holder(&env, &sim);
    outputs.push(env.sync(&sim).arg("-vvv").code(75).run());
    holder.kill_9();
    let wrong = env.write("wrong-password", b"wrong\n", 0o600);
    outputs.push(
        env.sync(&sim)
            .arg("-vvv")
            .env("TIXNGO_FEEDBACK_STORE_PASSWORD_FILE", &wrong)
            .code(78)
            .run(),
    );
    for ran in &outputs {
        assert!(!ran.stdout.contains(&password), "stdout:\n{}", ran.stdout);
        assert!(!ran.stderr.contains(&password), "stderr:\n{}", ran.stderr);
    }
    let stored = env.rows("SELECT coalesce(error, '') FROM sync_run");
    assert!(
        stored.iter().all(|e| !e[0].contains(&password)),
        "{stored:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// kill -9 mid-batch
// ---------------------------------------------------------------------------------------------

/// The events of the first, committed batch.
const BASE_EVENTS: usize = 1_000;
/// The large batch every killed run writes (contacts on).
const BATCH: usize = 5_000;

/// Row counts by table.
type Counts = Vec<(String, i64)>;

/// What a killed run may leave: the counts, the key and the data of the base or of the whole
/// batch, nothing between.
fn state(env: &Env) -> (Counts, Option<String>, Vec<String>) {
    let mut counts = env.counts();
    // A killed run leaves no sync_run row; the runs are compared by their committed ones.
    counts.retain(|(table, _)| table != "sync_run");
    let committed = env.int("SELECT count(*) FROM sync_run WHERE exit_code = 0");
    counts.push(("committed runs".into(), committed));
    (counts, env.stored_key(), dump::data(env))
}

/// What a rerun after a kill must reach: the counts, the key, and each ticket with its contact
/// by e-mail key. Not the contact ids: a rolled-back transaction does not give back the values it
/// drew from a sequence, so the rerun's new contacts may have higher ids than the reference's.
fn converged(env: &Env) -> (Counts, Option<String>, Vec<Vec<String>>) {
    let (counts, key, _) = state(env);
    let tickets = env.rows(
        "SELECT t.ticket_number, t.mobile_status, t.owner_email, c.email_key
         FROM ticket t LEFT JOIN contact c ON c.id = t.cultural_contact_id
         ORDER BY t.ticket_number",
    );
    (counts, key, tickets)
}

/// A fresh schema holding the base batch.
fn base(sim: &Simulator) -> Env {
    let env = pg_env().unwrap();
    let batch = BASE_EVENTS.to_string();
    env.sync(sim)
        .args(&["--quiet", "--batch-size", &batch])
        .run();
    env
}

#[test]
fn kill_9_during_a_large_batch_leaves_all_or_nothing_in_postgresql() {
    if !pg_pass() {
        return;
    }
    let settings = CrashSettings::from_env(8);
    let iterations = settings.iterations;
    eprintln!(
        "PostgreSQL crash test: {iterations} iterations, CRASH_SEED={}",
        settings.seed
    );
    let mut rng = settings.rng();
    let sim = Simulator::start(Feed::generate(11, 2_000), API_KEY);
    assert!(
        sim.feed().len() > BASE_EVENTS + BATCH,
        "the feed is too short"
    );
    let batch = BATCH.to_string();
    let args = ["--quiet", "--batch-size", &batch];

    let reference = base(&sim);
    let base_state = state(&reference);
    let started = Instant::now();
    reference.sync(&sim).args(&args).run();
    let mut duration = started.elapsed();
    let whole_state = state(&reference);
    assert_eq!(whole_state.1, Some(Feed::page_key(BASE_EVENTS + BATCH)));

    let (mut nothing, mut whole) = (0, 0);
    for iteration in 0..iterations {
        let share = 1.25 * (iteration as f64 + rng.f64()) / iterations as f64;
        let env = base(&sim);
        let started = Instant::now();
        let run = spawn(&env, &sim, &args);
        thread::sleep(duration.mul_f64(share));
        let pid = run.pid();
        run.kill_9();
        if started.elapsed() > duration {
            duration = (duration + started.elapsed()) / 2;
        }
        let context = format!("iteration {iteration}: killed after {share:.2} of {duration:?}");
        // The server ends the killed client's session; wait for it to be gone.
        wait_until(&format!("{context}: the session ends"), || {
            sessions_of(&env, pid) == 0
        });
        let after = state(&env);
        if after == base_state {
            nothing += 1;
        } else {
            assert_eq!(
                after, whole_state,
                "{context}: neither nothing nor the whole batch"
            );
            whole += 1;
            continue;
        }
        env.sync(&sim).args(&args).run();
        assert_eq!(
            converged(&env),
            converged(&reference),
            "{context}: the rerun"
        );
    }
    eprintln!("PostgreSQL crash test: {nothing} kills left nothing, {whole} the whole batch");
    assert!(nothing > 0, "no kill landed before the commit");
}
