//! Crash safety (SPEC §4.3): `kill -9` at random moments while `sync` fetches, maps and writes a
//! large batch leaves the store with either the whole batch and the new key or none of it, never
//! corrupt; and a rerun converges to the store an uninterrupted run makes.
//!
//! `CRASH_ITERATIONS` (default 20, plus a quarter as many kills aimed at the commit) and `CRASH_SEED` (default: random, printed) tune the run.

use crate::support;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use support::crash_test::CrashSettings;
use support::{API_KEY, Env, Feed, Simulator, dump};

const BIN: &str = env!("CARGO_BIN_EXE_tixngo-feedback");
/// The events the base store holds before the large batch.
const BASE_EVENTS: usize = 1_000;
/// The large batch every killed run writes (contacts on).
const BATCH: usize = 10_000;

/// `sync` of one large batch against `store`, in the background.
fn start_sync(store: &Path, sim: &Simulator, batch_size: usize) -> std::process::Child {
    Command::new(BIN)
        .env_clear()
        .env("TIXNGO_FEEDBACK_STORE", store)
        .env("TIXNGO_API_URL", sim.url())
        .env("TIXNGO_API_KEY", API_KEY)
        .args(["sync", "--quiet", "--batch-size", &batch_size.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts")
}

/// Runs `sync` to its end; returns how long it took.
fn sync_to_end(store: &Path, sim: &Simulator, batch_size: usize) -> Duration {
    let started = Instant::now();
    let output = start_sync(store, sim, batch_size)
        .wait_with_output()
        .unwrap();
    assert!(
        output.status.success(),
        "sync failed: {:?}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    started.elapsed()
}

/// What the crash test compares: row counts of every table, the stored key, and the content of
/// the data tables without the columns that hold the time of the run or its id.
#[derive(Debug, PartialEq, Eq)]
struct State {
    counts: Vec<(String, i64)>,
    key: Option<String>,
    committed_runs: i64,
}

/// Opens the store read-write, as the next run would (recovering the WAL), and checks it.
fn open_checked(store: &Path) -> Connection {
    let conn = Connection::open(store).expect("the store opens after the kill");
    support::assert_sound(&conn, store);
    conn
}

fn state(conn: &Connection) -> State {
    let counts = support::TABLES
        .iter()
        .map(|table| {
            let count = conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
                    row.get(0)
                })
                .unwrap();
            (table.to_string(), count)
        })
        .collect();
    State {
        counts,
        key: conn
            .query_row("SELECT pagination_key FROM sync_state", [], |row| {
                row.get(0)
            })
            .unwrap(),
        committed_runs: conn
            .query_row(
                "SELECT count(*) FROM sync_run WHERE exit_code = 0",
                [],
                |row| row.get(0),
            )
            .unwrap(),
    }
}

/// Copies the base store (and its WAL, if a clean exit left one) to `env`'s store path.
fn copy_store(from: &Path, to: &Path) {
    let _ = fs::remove_file(to);
    fs::copy(from, to).unwrap();
    for suffix in ["-wal", "-shm"] {
        let mut source = from.as_os_str().to_owned();
        source.push(suffix);
        let mut target = to.as_os_str().to_owned();
        target.push(suffix);
        let _ = fs::remove_file(&target);
        if Path::new(&source).exists() {
            fs::copy(&source, &target).unwrap();
        }
    }
}

/// When a run is killed.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// After this share of an uninterrupted run's duration.
    After(f64),
    /// This long after the WAL starts to grow: in the middle of the commit.
    InCommit(Duration),
}

fn wal_size(store: &Path) -> u64 {
    let mut wal = store.as_os_str().to_owned();
    wal.push("-wal");
    fs::metadata(wal).map_or(0, |m| m.len())
}

#[test]
fn kill_9_during_a_large_batch_leaves_all_or_nothing_and_a_rerun_converges() {
    if support::sqlite_only(
        "the SQLite file after kill -9 (postgres_runs:: has PostgreSQL's crash test)",
    ) {
        return;
    }
    let settings = CrashSettings::from_env(20);
    let iterations = settings.iterations;
    eprintln!(
        "crash test: {iterations} (+{}) iterations, CRASH_SEED={}",
        iterations / 4,
        settings.seed
    );
    let mut rng = settings.rng();

    let sim = Simulator::start(Feed::generate(11, 4_000), API_KEY);
    assert!(
        sim.feed().len() > BASE_EVENTS + BATCH,
        "the feed is too short"
    );

    // The base: a store holding a first batch, so that the large batch updates tickets,
    // upgrades contacts and moves distribution lines as well as inserting.
    let base = Env::new();
    sync_to_end(&base.store(), &sim, BASE_EVENTS);
    let (base_state, base_dump) = {
        let conn = open_checked(&base.store());
        (state(&conn), dump::data(&base))
    };
    assert_eq!(base_state.key, Some(Feed::page_key(BASE_EVENTS)));

    // The reference: the same large batch, uninterrupted; its duration spreads the kills.
    let reference = Env::new();
    copy_store(&base.store(), &reference.store());
    let mut duration = sync_to_end(&reference.store(), &sim, BATCH);
    let (whole_state, whole_dump) = {
        let conn = open_checked(&reference.store());
        (state(&conn), dump::data(&reference))
    };
    assert_eq!(whole_state.key, Some(Feed::page_key(BASE_EVENTS + BATCH)));
    assert_eq!(whole_state.committed_runs, base_state.committed_runs + 1);
    assert!(whole_state.counts[0].1 > base_state.counts[0].1);
    eprintln!("crash test: an uninterrupted batch takes {duration:?}");

    // Most kills come after a share of the run's duration: one share in each slice of
    // [0, 1.25], in random order; the duration is re-measured on every uninterrupted run, as the
    // machine's load changes. A batch's pages fit in the page cache, so the commit is the only
    // moment the store's files are written, and it is short: a few kills aim at it, a random
    // instant after the WAL starts to grow.
    let mut kills: Vec<Kill> = (0..iterations)
        .map(|i| Kill::After(1.25 * (i as f64 + rng.f64()) / iterations as f64))
        .collect();
    for _ in 0..iterations / 4 {
        kills.push(Kill::InCommit(Duration::from_micros(rng.u64(..8_000))));
    }
    rng.shuffle(&mut kills);

    let (mut nothing, mut whole, mut torn, mut reruns) = (0, 0, 0, 0);
    let work = Env::new();
    let store = work.store();
    for (iteration, kill) in kills.iter().enumerate() {
        copy_store(&base.store(), &store);
        let started = Instant::now();
        let mut child = start_sync(&store, &sim, BATCH);
        let finished = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            match *kill {
                Kill::After(share) if started.elapsed() >= duration.mul_f64(share) => break None,
                Kill::After(_) => thread::sleep(Duration::from_millis(2)),
                Kill::InCommit(extra) if wal_size(&store) > 0 => {
                    thread::sleep(extra);
                    break None;
                }
                Kill::InCommit(_) => thread::sleep(Duration::from_micros(100)),
            }
        };
        let status = match finished {
            Some(status) => {
                duration = (duration + started.elapsed()) / 2;
                status
            }
            None => {
                let _ = child.kill();
                child.wait().unwrap()
            }
        };
        let wal_at_kill = wal_size(&store);
        let context = format!(
            "iteration {iteration}: {kill:?} after {:?}, {status:?}",
            started.elapsed()
        );

        let conn = open_checked(&store);
        let after = state(&conn);
        if std::env::var_os("CRASH_VERBOSE").is_some() {
            eprintln!(
                "{context}: WAL {wal_at_kill} bytes, committed: {}",
                after != base_state
            );
        }
        if after == base_state {
            assert_eq!(
                dump::data(&work),
                base_dump,
                "{context}: not all of it rolled back"
            );
            nothing += 1;
            torn += usize::from(wal_at_kill > 0);
        } else {
            assert_eq!(
                after, whole_state,
                "{context}: neither nothing nor the whole batch"
            );
            assert_eq!(
                dump::data(&work),
                whole_dump,
                "{context}: the committed batch"
            );
            whole += 1;
        }
        drop(conn);

        // A rerun converges to the store of the uninterrupted run. A kill early in the run
        // leaves the base store byte for byte in its data (checked above), from which the
        // reference run already converged; the later kills, which may have caught the
        // transaction open, are rerun.
        let late = !matches!(kill, Kill::After(share) if *share < 0.5);
        if after == base_state && (late || wal_at_kill > 0) {
            let took = sync_to_end(&store, &sim, BATCH);
            duration = (duration + took) / 2;
            let conn = open_checked(&store);
            assert_eq!(state(&conn), whole_state, "{context}: the rerun");
            assert_eq!(dump::data(&work), whole_dump, "{context}: the rerun's data");
            reruns += 1;
        }
    }
    eprintln!(
        "crash test: {nothing} kills left nothing ({torn} of them with a WAL written), \
         {whole} the whole batch; {reruns} reruns converged"
    );
    assert_eq!(nothing + whole, kills.len());
    assert!(nothing > 0, "no kill landed before the commit");
}
