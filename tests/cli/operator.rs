use crate::support;

// The operator's commands through the real binary (SPEC §2, §4.7, §4.8, §5, §6): `replay`,
// `replay --errors`, `status`, `skip`, `cursor`, dry runs, backfills and the metrics file. Every
// check of the store is SQL on the store itself.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_parse::{LineInfo, SampleType, Scrape};
use serde_json::{Value, json};
use support::{API_KEY, Env, Fault, Feed, Simulator, ticket};

const BINARY: &str = env!("CARGO_BIN_EXE_tixngo-feedback");

/// The counters of a summary and of a `sync_run` row (SPEC §4.3, §6).
const COUNTERS: &[&str] = support::SUMMARY_FIELDS.split_at(3).1.split_at(10).0;

/// The columns of `sync_run` (SPEC §4.3): these around the counters.
const SYNC_RUN_OTHER_COLUMNS: [&str; 13] = [
    "id",
    "command",
    "started_at",
    "finished_at",
    "key_before",
    "key_after",
    "exit_code",
    "error",
    "caught_up",
    "newest_change_at",
    "feed_lag_seconds",
    "runs_behind",
    "unknown_fields",
];

/// The fields of `status --json` (SPEC §2).
const STATUS_FIELDS: [&str; 16] = [
    "store",
    "pagination_key",
    "pagination_key_saved_at",
    "lock_held",
    "lock_pid",
    "runs",
    "skip_count",
    "unresolved_errors",
    "unresolved_error_tickets",
    "tickets",
    "contacts",
    "caught_up",
    "feed_lag_seconds",
    "runs_behind",
    "feed_checked_at",
    "unknown_fields",
];

/// What every operator command's JSON line adds around its own fields.
const ENVELOPE_FIELDS: [&str; 3] = ["command", "exit_code", "error"];

/// The metrics SPEC §6 names.
const METRICS: [&str; 6] = [
    "tixngo_feedback_last_run_timestamp_seconds",
    "tixngo_feedback_last_success_timestamp_seconds",
    "tixngo_feedback_last_exit_code",
    "tixngo_feedback_last_duration_seconds",
    "tixngo_feedback_last_tickets",
    "tixngo_feedback_last_batches",
];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A ticket that cannot be mapped: its `lastUpdated` is no timestamp.
fn unmappable(number: &str) -> Value {
    ticket(number, "DOWNLOADED", "yesterday evening")
}

/// A mappable ticket with an owner, so that it creates a contact.
fn owned(number: &str, email: &str, updated: &str) -> Value {
    json!({
        "taxNumber": number,
        "status": "DOWNLOADED",
        "lastUpdated": updated,
        "spectatorDetails": { "email": email, "firstName": "Zoë", "lastName": "Müller" },
    })
}

/// The diff document a feed's first `limit` events make, exactly as the simulator serves it.
fn document(feed: &Feed, limit: usize) -> String {
    feed.page_json(None, limit).expect("the start of a feed")
}

/// The counters of a summary, by name.
fn counters(summary: &Value) -> BTreeMap<&'static str, u64> {
    COUNTERS
        .iter()
        .map(|&name| {
            let value = summary[name]
                .as_u64()
                .unwrap_or_else(|| panic!("{name} missing from {summary}"));
            (name, value)
        })
        .collect()
}

/// What a run did to the store, as comparable rows (no timestamps: two runs differ in those).
fn content(env: &Env) -> Vec<Vec<Vec<String>>> {
    [
        "SELECT ticket_number, tixngo_ticket_id, barcode, event_id, s360_state, mobile_status,
                tixngo_updated_at, owner_email, owner_first_name, holder_first_name,
                holder_last_name, previous_owner_email, downloaded_at, cultural_contact_id
         FROM ticket ORDER BY ticket_number",
        "SELECT ticket_number, mobile_status, owner_email, holder_first_name, tixngo_updated_at
         FROM ticket_history ORDER BY id",
        "SELECT id, email, first_name, last_name, temporary, has_internet_account, kind
         FROM contact ORDER BY id",
        "SELECT ticket_number, old_contact_id, new_contact_id, action, status
         FROM distribution ORDER BY id",
        "SELECT ticket_number, reason, payload, resolved_at IS NULL FROM sync_error ORDER BY id",
    ]
    .iter()
    .map(|sql| env.rows(sql))
    .collect()
}

/// The last `sync_run` row: command, key before, key after, exit code, error (NULL or not).
fn last_run(env: &Env) -> Vec<String> {
    env.rows(
        "SELECT command, coalesce(key_before, 'NULL'), coalesce(key_after, 'NULL'), exit_code,
                CASE WHEN error IS NULL THEN 'no error' ELSE 'error' END
         FROM sync_run ORDER BY id DESC LIMIT 1",
    )
    .pop()
    .expect("a sync_run row")
}

/// The names in the environment's directory.
fn files_in(env: &Env) -> BTreeSet<String> {
    fs::read_dir(env.dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// The store's bytes and mtime, its `-wal`'s bytes when there is one, and the name and mtime of
/// every file beside it but the lock file: a run that writes nothing leaves all of them as they
/// were.
#[derive(Debug, PartialEq)]
struct OnDisk {
    store: Vec<u8>,
    modified: SystemTime,
    wal: Option<Vec<u8>>,
    files: Vec<(String, SystemTime)>,
}

fn on_disk(env: &Env) -> OnDisk {
    if env.pg.is_some() {
        // PostgreSQL: every row of every table stands for the store's bytes; no file to see.
        let rows: Vec<_> = support::TABLES
            .iter()
            .map(|table| env.rows(&format!("SELECT * FROM {table} ORDER BY 1")))
            .collect();
        return OnDisk {
            store: format!("{rows:?}").into_bytes(),
            modified: UNIX_EPOCH,
            wal: None,
            files: Vec::new(),
        };
    }
    let wal = env.path("store.db-wal");
    let files = files_in(env)
        .into_iter()
        .filter(|name| name != "store.db.lock")
        .map(|name| {
            let modified = fs::metadata(env.path(&name)).unwrap().modified().unwrap();
            (name, modified)
        })
        .collect();
    OnDisk {
        store: fs::read(env.store()).unwrap(),
        modified: fs::metadata(env.store()).unwrap().modified().unwrap(),
        wal: wal.exists().then(|| fs::read(&wal).unwrap()),
        files,
    }
}

/// A second environment holding a copy of this one's store (taken while nothing has it open).
fn copy_of(env: &Env) -> Env {
    let copy = Env::new();
    for suffix in ["", "-wal"] {
        let from = env.path(&format!("store.db{suffix}"));
        if from.exists() {
            fs::copy(&from, copy.path(&format!("store.db{suffix}"))).unwrap();
        }
    }
    copy
}

/// The offset a simulator key addresses (`pk1.<hex>.<checksum>`).
fn key_offset(key: &str) -> usize {
    let hex = key.split('.').nth(1).expect("a simulator key");
    usize::from_str_radix(hex, 16).unwrap()
}

/// The `paginationKey` of every request the simulator received.
fn requested_keys(sim: &Simulator) -> Vec<Option<String>> {
    sim.requests()
        .iter()
        .map(|r| r.query_param("paginationKey").map(str::to_owned))
        .collect()
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A process holding the run lock of a store until dropped.
struct LockHolder {
    child: Child,
    /// `flock(1)` running `cat`: closing its stdin ends it and releases the lock.
    stdin: Option<ChildStdin>,
    /// The simulator a stalled `tixngo-feedback sync` waits on.
    _sim: Option<Simulator>,
}

impl LockHolder {
    /// `flock <lock file> cat` from util-linux, or `None` when there is no `flock` here.
    fn flock(lock_file: &Path) -> Option<LockHolder> {
        let spawned = Command::new("flock")
            .args(["--wait", "10"])
            .arg(lock_file)
            .arg("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == ErrorKind::NotFound => return None,
            Err(e) => panic!("flock: {e}"),
        };
        let mut stdin = child.stdin.take().unwrap();
        // `cat` only runs, and echoes, once flock holds the lock.
        writeln!(stdin, "held").unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "held\n", "flock did not take {}", lock_file.display());
        Some(LockHolder {
            child,
            stdin: Some(stdin),
            _sim: None,
        })
    }

    /// A `tixngo-feedback sync` of this environment, blocked on a stalled response: it holds the
    /// lock and wrote its pid into the lock file.
    fn stalled_sync(env: &Env) -> LockHolder {
        let sim = Simulator::start(Feed::generate(1, 20), API_KEY);
        sim.push_fault(Fault::Stall, usize::MAX);
        let mut child = Command::new(BINARY)
            .env_clear()
            .current_dir(env.dir.path())
            .envs(env.store_env())
            .env("TIXNGO_API_URL", sim.url())
            .env("TIXNGO_API_KEY", API_KEY)
            .args(["sync", "--timeout", "60", "--quiet"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary starts");
        // It asks the simulator only once it holds the lock and has written its pid.
        let deadline = Instant::now() + Duration::from_secs(20);
        while sim.request_count() == 0 {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the stalled sync ended early: {status}");
            }
            assert!(Instant::now() < deadline, "the stalled sync never asked");
            thread::sleep(Duration::from_millis(10));
        }
        LockHolder {
            child,
            stdin: None,
            _sim: Some(sim),
        }
    }

    /// `flock(1)` where there is one, else (and always on PostgreSQL) a stalled sync.
    fn hold(env: &Env) -> LockHolder {
        let flock = env
            .sqlite_store()
            .and_then(|_| LockHolder::flock(&env.lock_file()));
        flock.unwrap_or_else(|| LockHolder::stalled_sync(env))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the holder is a `tixngo-feedback` run, which writes its pid into the lock file.
    fn writes_pid(&self) -> bool {
        self.stdin.is_none()
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        match self.stdin.take() {
            Some(stdin) => drop(stdin),
            None => {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

/// A metrics file, validated as Prometheus text format: every sample as `name{labels}` → value.
fn read_metrics(path: &Path) -> BTreeMap<String, f64> {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("the metrics file {}: {e}", path.display()));
    assert!(text.ends_with('\n'), "the last line is complete:\n{text}");
    // prometheus-parse skips the lines it does not understand: make every line count.
    let mut helped = BTreeSet::new();
    let mut typed = BTreeSet::new();
    for line in text.lines() {
        match LineInfo::parse(line) {
            LineInfo::Doc { metric_name, .. } => {
                assert!(helped.insert(metric_name.to_owned()), "two HELP: {line}");
            }
            LineInfo::Type {
                metric_name,
                sample_type,
                ..
            } => {
                assert_eq!(sample_type, SampleType::Gauge, "{line}");
                assert!(typed.insert(metric_name), "two TYPE: {line}");
            }
            LineInfo::Sample { metric_name, .. } => assert!(
                helped.contains(metric_name) && typed.contains(metric_name),
                "a sample before its HELP and TYPE: {line}\n{text}"
            ),
            other => panic!("not Prometheus text format: {line:?} ({other:?})\n{text}"),
        }
    }
    for name in METRICS {
        assert!(
            helped.contains(name) && typed.contains(name),
            "{name} lacks # HELP or # TYPE:\n{text}"
        );
    }
    promtool_check(&text);
    let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).unwrap();
    let mut samples = BTreeMap::new();
    for sample in scrape.samples {
        let prometheus_parse::Value::Gauge(value) = sample.value else {
            panic!("{} is not a gauge: {:?}", sample.metric, sample.value)
        };
        let key = if sample.labels.is_empty() {
            sample.metric.clone()
        } else {
            format!("{}{{{}}}", sample.metric, sample.labels)
        };
        assert!(samples.insert(key, value).is_none(), "a duplicate sample");
    }
    samples
}

/// `promtool check metrics` when Prometheus' own checker is on this machine.
fn promtool_check(text: &str) {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == ErrorKind::NotFound => return,
        Err(e) => panic!("promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Checks that the metrics say what the run's `--json` summary said.
fn assert_metrics_match(metrics: &BTreeMap<String, f64>, summary: &Value) {
    let number = |name: &str| summary[name].as_f64().unwrap();
    let mut expected = BTreeMap::from([
        (
            "tixngo_feedback_last_exit_code".to_owned(),
            number("exit_code"),
        ),
        ("tixngo_feedback_last_batches".to_owned(), number("batches")),
        (
            "tixngo_feedback_last_duration_seconds".to_owned(),
            number("duration_ms") / 1000.0,
        ),
    ]);
    for outcome in ["stored", "unchanged", "skipped", "stale", "failed"] {
        expected.insert(
            format!("tixngo_feedback_last_tickets{{outcome=\"{outcome}\"}}"),
            number(outcome),
        );
    }
    for (name, value) in expected {
        assert_eq!(metrics.get(&name), Some(&value), "{name} in {metrics:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// replay
// ---------------------------------------------------------------------------------------------

#[test]
fn replay_of_a_saved_response_stores_it_like_a_sync_and_never_touches_the_stored_key() {
    let sim = Simulator::start(Feed::generate(21, 40), API_KEY);
    let limit = 90;
    let body = document(sim.feed(), limit);
    let synced = Env::new();
    let by_sync = synced.sync(&sim).args(&["--batch-size", "90"]).json();
    assert_eq!(by_sync["fetched"], limit);
    assert!(synced.int("SELECT count(*) FROM contact") > 0);

    let operator_key = Feed::page_key(7);
    let file_key = Feed::page_key(limit);
    assert!(
        body.contains(&file_key),
        "the file carries a key of its own"
    );
    for from_stdin in [false, true] {
        let env = Env::new();
        env.cmd(&["cursor", "set", &operator_key, "--yes"]).run();
        let run = if from_stdin {
            env.cmd(&["-v", "replay", "-"]).stdin(body.clone())
        } else {
            let file = env.write("page.json", body.as_bytes(), 0o600);
            env.cmd(&["-v", "replay", file.to_str().unwrap()])
        };
        let by_replay = run
            .stderr_has("the file's pagination key is ignored")
            .json();
        let case = if from_stdin { "stdin" } else { "file" };
        assert_eq!(counters(&by_replay), counters(&by_sync), "{case}");
        assert_eq!(content(&env), content(&synced), "{case}");
        assert_eq!(by_replay["command"], "replay", "{case}");
        assert_eq!(by_replay["exit_code"], 0, "{case}");
        assert_eq!(by_replay["key_saved"], false, "{case}");
        assert_eq!(
            by_replay["pagination_key_before"],
            Value::Null,
            "{case}: the stored key is not read"
        );
        assert_eq!(
            env.stored_key().as_deref(),
            Some(operator_key.as_str()),
            "{case}: neither the stored key nor the file's is saved"
        );
        assert_eq!(last_run(&env)[0], "replay", "{case}");
    }
}

#[test]
fn replay_of_something_that_is_not_a_diff_document_is_65_and_records_only_its_run() {
    let env = Env::new();
    let feed = Feed::generate(3, 10);
    let file = env.write("good.json", document(&feed, 20).as_bytes(), 0o600);
    env.cmd(&["replay", file.to_str().unwrap()]).run();
    let before = env.counts();
    let key_before = env.stored_key();
    // Found bad only after thousands of tickets were read and mapped in the batch: the file is
    // decoded while it is mapped, and all of it is rolled back.
    let long = document(&Feed::generate(4, 1500), 3000);
    let long = long.trim_end().strip_suffix('}').expect("a JSON object");
    let broken_late = long.to_owned();
    let trailing_text = format!("{long}}} and more");
    let second_list = format!(r#"{long},"result":[]}}"#);
    for (case, body, from_stdin) in [
        ("broken after 3000 tickets", broken_late.as_bytes(), false),
        ("text after 3000 tickets", trailing_text.as_bytes(), false),
        (
            "a second list after 3000 tickets",
            second_list.as_bytes(),
            true,
        ),
        ("no ticket list", &br#"{"message":"ok"}"#[..], false),
        (
            "a list that is no array",
            br#"{"result":{"taxNumber":"1"}}"#,
            false,
        ),
        ("an array", b"[1,2]", false),
        ("not JSON", b"<html>502</html>", false),
        (
            "not UTF-8",
            b"{\"result\":[],\"venue\":\"Z\xfcrich\"}",
            false,
        ),
        ("empty", b"", false),
        ("not JSON on stdin", b"{\"result\":[", true),
    ] {
        let run = if from_stdin {
            env.cmd(&["replay", "-"]).stdin(body)
        } else {
            let file = env.write("bad.json", body, 0o600);
            env.cmd(&["replay", file.to_str().unwrap()])
        };
        let summary = run.code(65).stderr_has("error").json();
        assert_eq!(summary["exit_code"], 65, "{case}");
        assert!(summary["error"].is_string(), "{case}");
        assert_eq!(summary["fetched"], 0, "{case}");
        assert_eq!(
            last_run(&env)[..4],
            ["replay", "NULL", "NULL", "65"],
            "{case}"
        );
        assert_eq!(last_run(&env)[4], "error", "{case}");
    }
    let after = env.counts();
    for ((table, was), (_, is)) in before.iter().zip(&after) {
        let expected = if table == "sync_run" { was + 10 } else { *was };
        assert_eq!(*is, expected, "{table}");
    }
    assert_eq!(env.stored_key(), key_before);
}

#[test]
fn replay_names_a_bad_document_before_a_store_that_failed_on_its_first_tickets() {
    let env = Env::new();
    env.cmd(&["replay", "-"]).stdin(r#"{"result":[]}"#).run();
    let feed = Feed::generate(4, 1500);
    let first = feed.events()[0]["taxNumber"].as_str().unwrap().to_owned();
    // The store refuses the file's first ticket, as a full disk or an S-360 trigger might.
    env.execute(&if env.pg.is_some() {
        format!(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
             CREATE TRIGGER refuse BEFORE INSERT ON ticket FOR EACH ROW
             WHEN (NEW.ticket_number = '{first}') EXECUTE FUNCTION refuse();"
        )
    } else {
        format!(
            "CREATE TRIGGER refuse BEFORE INSERT ON ticket WHEN NEW.ticket_number = '{first}'
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
        )
    });
    let before = env.counts();
    let good = document(&feed, 3000);
    let file = env.write("good.json", good.as_bytes(), 0o600);
    env.cmd(&["replay", file.to_str().unwrap()])
        .code(74)
        .stderr_has("refused by the test")
        .run();
    // Cut short, the same file is bad data: SPEC §3 names the parse (65) before the write (74),
    // although the store failed long before the end of the file was read.
    let cut = good.trim_end().strip_suffix('}').expect("a JSON object");
    let file = env.write("cut.json", cut.as_bytes(), 0o600);
    env.cmd(&["replay", file.to_str().unwrap()])
        .code(65)
        .stderr_has("not a valid diff document")
        .run();
    for ((table, was), (_, is)) in before.iter().zip(&env.counts()) {
        let expected = if table == "sync_run" { was + 2 } else { *was };
        assert_eq!(
            *is, expected,
            "{table}: only the two failed runs are recorded"
        );
    }
}

#[test]
fn replay_of_a_missing_file_is_a_usage_error_that_creates_nothing() {
    let env = Env::new();
    let missing = env.path("no-such-file.json");
    env.cmd(&["replay", missing.to_str().unwrap()])
        .code(64)
        .stdout_empty()
        .stderr_has("no-such-file.json")
        .run();
    assert!(files_in(&env).is_empty(), "{:?}", files_in(&env));
}

#[test]
fn replay_takes_the_mapping_flags_of_a_sync() {
    let mut events = Feed::generate(11, 10).events().to_vec();
    events.insert(5, unmappable("BAD-1"));
    let body = document(&Feed::from_events(events.clone()), events.len());

    struct Case {
        flags: &'static [&'static str],
        code: i32,
        /// How the counters differ from a replay without flags.
        expect: fn(&mut BTreeMap<&'static str, u64>),
        check: fn(&Env),
    }
    let cases = [
        Case {
            flags: &[],
            code: 2,
            expect: |_| {},
            check: |env| {
                assert_eq!(env.int("SELECT count(*) FROM sync_error"), 1);
                assert!(env.int("SELECT count(*) FROM contact") > 0);
            },
        },
        Case {
            flags: &["--skip", " BAD-1 ,NOT-IN-FILE"],
            code: 0,
            expect: |c| {
                *c.get_mut("failed").unwrap() -= 1;
                *c.get_mut("skipped").unwrap() += 1;
            },
            check: |env| {
                assert_eq!(env.int("SELECT count(*) FROM sync_error"), 0);
                assert_eq!(
                    env.int("SELECT count(*) FROM ticket WHERE ticket_number = 'BAD-1'"),
                    0
                );
            },
        },
        Case {
            flags: &["--stop-on-error"],
            code: 65,
            expect: |c| c.values_mut().for_each(|v| *v = 0),
            check: |env| {
                assert_eq!(env.int("SELECT count(*) FROM ticket"), 0);
                assert_eq!(env.int("SELECT count(*) FROM sync_error"), 0);
                assert_eq!(last_run(env)[..4], ["replay", "NULL", "NULL", "65"]);
            },
        },
        Case {
            flags: &["--max-failed-ratio", "0.01"],
            code: 65,
            expect: |c| c.values_mut().for_each(|v| *v = 0),
            check: |env| assert_eq!(env.int("SELECT count(*) FROM ticket"), 0),
        },
        Case {
            flags: &["--no-contacts"],
            code: 2,
            expect: |c| {
                for (name, value) in c.iter_mut() {
                    if name.starts_with("contacts_") || name.starts_with("distributions_") {
                        *value = 0;
                    }
                }
            },
            check: |env| {
                assert_eq!(env.int("SELECT count(*) FROM contact"), 0);
                assert_eq!(env.int("SELECT count(*) FROM distribution"), 0);
                assert!(env.int("SELECT count(*) FROM ticket") > 0);
            },
        },
        Case {
            flags: &["--dry-run"],
            code: 2,
            expect: |_| {},
            check: |env| assert!(!env.store_exists(), "a dry run creates no store"),
        },
    ];
    let mut baseline = None;
    for case in cases {
        let env = Env::new();
        let file = env.write("page.json", body.as_bytes(), 0o600);
        let summary = env
            .cmd(&["replay", file.to_str().unwrap()])
            .args(case.flags)
            .code(case.code)
            .json();
        let mut expected = baseline.get_or_insert_with(|| counters(&summary)).clone();
        (case.expect)(&mut expected);
        assert_eq!(counters(&summary), expected, "{:?}", case.flags);
        assert_eq!(summary["dry_run"], case.flags == ["--dry-run"]);
        if case.code == 65 {
            let error = summary["error"].as_str().unwrap();
            assert!(
                error.contains("BAD-1"),
                "names the first failed ticket: {error}"
            );
        }
        (case.check)(&env);
    }
}

#[test]
fn replay_errors_reprocesses_the_stored_payloads_until_they_map() {
    let good = owned("GOOD-1", "ana@example.org", "2026-03-01T10:00:00Z");
    let bad = unmappable("BAD-7");
    // Without a readable number: only its row (its id) can tell when it has been dealt with.
    let nameless = json!({ "status": "DOWNLOADED", "lastUpdated": "2026-03-01T10:00:00Z" });
    let feed = Feed::from_events(vec![good, bad.clone(), nameless.clone()]);
    let sim = Simulator::start(feed, API_KEY);
    let env = Env::new();
    let partial = env.sync(&sim).code(2).stderr_has("sync_error").json();
    assert_eq!(
        (partial["stored"].as_u64(), partial["failed"].as_u64()),
        (Some(1), Some(2))
    );
    let key = env.stored_key();
    assert!(key.is_some(), "a partial batch advances the key");
    let payloads: Vec<Value> = env
        .rows("SELECT payload FROM sync_error ORDER BY id")
        .iter()
        .map(|row| serde_json::from_str(&row[0]).unwrap())
        .collect();
    assert_eq!(payloads, [bad, nameless], "the raw payloads are kept");
    let unresolved = "SELECT count(*) FROM sync_error WHERE resolved_at IS NULL";
    let status = env.cmd(&["status"]).json();
    assert_eq!(status["unresolved_errors"], 2);
    assert_eq!(
        status["unresolved_error_tickets"],
        json!(["BAD-7", "(unreadable)"])
    );

    // Unchanged, they still fail: the rows stay, refreshed, not duplicated.
    let rows_before = env.rows("SELECT id, ticket_number, payload FROM sync_error ORDER BY id");
    let again = env.cmd(&["replay", "--errors"]).code(2).json();
    assert_eq!(
        (again["fetched"].as_u64(), again["failed"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(
        env.rows("SELECT id, ticket_number, payload FROM sync_error ORDER BY id"),
        rows_before
    );
    assert_eq!(env.int(unresolved), 2);
    assert_eq!(env.int("SELECT count(*) FROM ticket"), 1);

    // Fixed by hand, they map: stored, and the errors resolved.
    for (number, fixed) in [
        (
            "'BAD-7'",
            owned("BAD-7", "cy@example.org", "2026-03-01T12:00:00+02:00"),
        ),
        (
            "NULL",
            owned("LOST-1", "di@example.org", "2026-03-01T10:00:00Z"),
        ),
    ] {
        // As an operator fixing a payload by hand would.
        env.execute(&format!(
            "UPDATE sync_error SET payload = {} WHERE ticket_number IS NOT DISTINCT FROM {number}",
            support::sql_text(&fixed.to_string())
        ));
    }
    let replayed = env.cmd(&["replay", "--errors"]).stderr_empty().json();
    assert_eq!(replayed["exit_code"], 0);
    assert_eq!(
        (replayed["fetched"].as_u64(), replayed["stored"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(
        env.rows("SELECT ticket_number, tixngo_updated_at FROM ticket ORDER BY 1"),
        [
            ["BAD-7", "2026-03-01T10:00:00.000Z"],
            ["GOOD-1", "2026-03-01T10:00:00.000Z"],
            ["LOST-1", "2026-03-01T10:00:00.000Z"],
        ]
    );
    assert_eq!(env.int(unresolved), 0);
    assert_eq!(env.int("SELECT count(*) FROM sync_error"), 2);
    assert_eq!(env.cmd(&["status"]).json()["unresolved_errors"], 0);

    // Nothing left to replay.
    let nothing = env.cmd(&["replay", "--errors"]).stderr_empty().json();
    assert_eq!(
        (nothing["fetched"].as_u64(), nothing["exit_code"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(env.stored_key(), key, "replay --errors never moves the key");
}

// ---------------------------------------------------------------------------------------------
// status
// ---------------------------------------------------------------------------------------------

#[test]
fn status_shows_the_key_the_runs_the_skip_list_the_errors_and_the_counts() {
    let feed = Feed::from_events(vec![
        owned("T-1", "ana@example.org", "2026-03-01T10:00:00Z"),
        owned("T-2", "ben@example.org", "2026-03-01T10:01:00Z"),
        unmappable("T-3"),
    ]);
    let sim = Simulator::start(feed, API_KEY);
    let env = Env::new();
    env.sync(&sim).code(2).run();
    env.cmd(&["skip", "add", "S-1,S-2"]).run();
    // Eleven more runs: status shows the last ten, newest first.
    for offset in 1..=11 {
        env.cmd(&["cursor", "set", &Feed::page_key(offset), "--yes"])
            .run();
    }
    let key = Feed::page_key(11);

    let status = env.cmd(&["status"]).stderr_empty().json();
    let fields: BTreeSet<&str> = status
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<&str> = STATUS_FIELDS.into_iter().chain(ENVELOPE_FIELDS).collect();
    assert_eq!(fields, expected);
    assert_eq!(status["store"], env.store_shown());
    assert_eq!(status["pagination_key"], key.as_str());
    assert_eq!(
        status["pagination_key_saved_at"].as_str(),
        env.text("SELECT updated_at FROM sync_state").as_deref()
    );
    assert_eq!(status["lock_held"], false);
    assert_eq!(status["lock_pid"], Value::Null);
    assert_eq!(status["skip_count"], 2);
    assert_eq!(status["unresolved_errors"], 1);
    assert_eq!(status["unresolved_error_tickets"], json!(["T-3"]));
    assert_eq!(status["tickets"], env.int("SELECT count(*) FROM ticket"));
    assert_eq!(status["tickets"], 2);
    assert_eq!(status["contacts"], env.int("SELECT count(*) FROM contact"));
    assert_eq!(status["contacts"], 2);
    let runs = status["runs"].as_array().unwrap();
    let newest: Vec<Vec<String>> = env.rows(
        "SELECT id, command, coalesce(key_after, '') FROM sync_run ORDER BY id DESC LIMIT 10",
    );
    assert_eq!(runs.len(), 10);
    for (run, row) in runs.iter().zip(&newest) {
        let columns: BTreeSet<&str> = run
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let expected: BTreeSet<&str> = SYNC_RUN_OTHER_COLUMNS
            .iter()
            .chain(COUNTERS)
            .copied()
            .collect();
        assert_eq!(columns, expected, "{run}");
        assert_eq!(run["id"].to_string(), row[0]);
        assert_eq!(run["command"], row[1].as_str());
        assert_eq!(run["key_after"].as_str().unwrap_or(""), row[2]);
    }
    assert_eq!(runs[0]["key_after"], key.as_str(), "newest first");

    let human = env.cmd(&["status"]).stderr_empty().run().stdout;
    for line in [
        format!("store: {}", env.store_shown()),
        format!("pagination key: '{key}' (saved "),
        "feed: caught up at ".to_owned(),
        "lock: free".to_owned(),
        "skip list: 2 tickets".to_owned(),
        "unresolved sync errors: 1 (first: T-3)".to_owned(),
        "tickets: 2, contacts: 2".to_owned(),
        "last 10 runs (newest first):".to_owned(),
        "ticket fields the mapping does not read (last sync or replay): none".to_owned(),
        format!("0  '{}' -> '{key}'", Feed::page_key(10)),
    ] {
        assert!(human.contains(&line), "{line:?} missing from\n{human}");
    }
    assert_eq!(human.lines().count(), 8 + 2 + 10, "{human}");
}

#[test]
fn status_shows_runs_as_a_table_within_100_columns_and_cursor_moves_as_moves() {
    let feed = Feed::from_events(vec![
        owned("T-1", "ana@example.org", "2026-03-01T10:00:00Z"),
        unmappable("T-3"),
    ]);
    let sim = Simulator::start(feed, API_KEY);
    let env = Env::new();
    env.sync(&sim).code(2).run();
    let synced_key = env.stored_key().unwrap();
    let long_key = "k".repeat(300);
    env.cmd(&["cursor", "set", &long_key, "--yes"]).run();
    env.cmd(&["skip", "add", "S-1"])
        .stdout_has("1 ticket on the skip list")
        .run();

    let human = env.cmd(&["status"]).stderr_empty().run().stdout;
    // The live key is shown whole (an operator copies it); every other line fits.
    for line in human.lines().filter(|l| !l.starts_with("pagination key: ")) {
        assert!(
            line.chars().count() <= 100,
            "wider than 100 columns: {line:?}"
        );
    }
    for needle in [
        "skip list: 1 ticket\n",
        "last 2 runs (newest first):",
        "started (UTC)",
        &format!(
            "cursor set       0  '{synced_key}' -> '{}…'",
            "k".repeat(32)
        ),
        &format!("      key '' -> '{synced_key}'; contacts +1 ~0"),
    ] {
        assert!(human.contains(needle), "{needle:?} missing from\n{human}");
    }
    let sync_row = human
        .lines()
        .find(|line| line.contains("  sync  "))
        .unwrap_or_else(|| panic!("no sync row in\n{human}"));
    let figures: Vec<&str> = sync_row.split_whitespace().skip(3).collect();
    // exit, fetched, stored, unchanged, skipped, stale, failed
    assert_eq!(
        figures[..7],
        ["2", "2", "1", "0", "0", "0", "1"],
        "{sync_row}"
    );
    assert!(!human.contains("cursor set       0       0"), "{human}");
}

#[test]
fn read_only_commands_on_a_missing_store_are_74_and_create_nothing() {
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["skip", "list"],
        &["skip", "list", "--json"],
        &["cursor", "show"],
        &["cursor", "show", "--json"],
    ] {
        let env = Env::new();
        let ran = env
            .cmd(args)
            .code(74)
            .stderr_has(&env.store_shown())
            .stderr_has(env.missing_store_says())
            .run();
        if args.contains(&"--json") {
            assert_eq!(ran.json()["exit_code"], 74, "{args:?}");
        } else {
            assert!(ran.stdout.is_empty(), "{args:?}: {}", ran.stdout);
        }
        assert!(
            files_in(&env).is_empty(),
            "{args:?} created {:?}",
            files_in(&env)
        );
    }
}

#[test]
fn writing_commands_refuse_with_75_while_the_lock_is_held_and_status_says_so() {
    let sim = Simulator::start(Feed::generate(2, 10), API_KEY);
    let env = Env::new();
    // Long enough that its reading thread is still waiting to hand tickets over at the refusal.
    let long = document(&Feed::generate(3, 2000), 5000);
    let page = env.write("page.json", long.as_bytes(), 0o600);
    let page = page.to_str().unwrap();
    env.cmd(&["skip", "add", "S-1"]).run();
    let before = env.counts();
    let key = env.stored_key();
    let lock_file = env.lock_shown();
    let lock_file = lock_file.as_str();
    {
        let holder = LockHolder::hold(&env);
        let status = env.cmd(&["status"]).stderr_empty().json();
        assert_eq!(status["lock_held"], true);
        // flock(1) writes no pid; the earlier `skip add` left none of its own behind.
        let pid = holder.writes_pid().then(|| holder.pid());
        assert_eq!(status["lock_pid"], json!(pid));
        let refused = [
            env.sync(&sim),
            env.cmd(&["replay", page]),
            env.cmd(&["replay", "--errors"]),
            env.cmd(&["skip", "add", "S-2"]),
            env.cmd(&["cursor", "set", &Feed::page_key(3), "--yes"]),
        ];
        for run in refused {
            let started = Instant::now();
            let summary = run
                .code(75)
                .stderr_has(lock_file)
                .stderr_has("try again")
                .json();
            assert_eq!(summary["exit_code"], 75);
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "refused quickly"
            );
        }
        assert_eq!(sim.request_count(), 0, "refused before fetching");
    }
    assert_eq!(env.counts(), before, "nothing written, no run recorded");
    assert_eq!(env.stored_key(), key);
    // Released with its holder.
    env.cmd(&["skip", "add", "S-2"]).run();
    assert_eq!(env.cmd(&["status"]).json()["lock_held"], false);
}

#[test]
fn status_names_the_pid_of_a_run_holding_the_lock() {
    let env = Env::new();
    let holder = LockHolder::stalled_sync(&env);
    let pid = holder.pid();
    let status = env.cmd(&["status"]).stderr_empty().json();
    assert_eq!(status["lock_held"], true);
    assert_eq!(status["lock_pid"], pid);
    env.cmd(&["status"])
        .stdout_has(&format!("lock: held by pid {pid}"))
        .run();
    drop(holder);
    let status = env.cmd(&["status"]).json();
    assert_eq!(
        (status["lock_held"].clone(), status["lock_pid"].clone()),
        (json!(false), Value::Null)
    );
}

#[test]
fn status_never_makes_a_concurrent_sync_fail() {
    let sim = Simulator::start(Feed::generate(9, 500), API_KEY);
    let env = Env::new();
    env.cmd(&["cursor", "reset", "--yes"]).run();
    let stop = AtomicBool::new(false);
    let (statuses, saw_held) = thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let (mut runs, mut saw_held) = (0, false);
            while !stop.load(Ordering::SeqCst) {
                let status = env.cmd(&["status"]).json();
                saw_held |= status["lock_held"] == true;
                runs += 1;
            }
            (runs, saw_held)
        });
        // A backfill, chained run after run, each taking the lock under the watcher's probes.
        let mut key = String::new();
        for _ in 0..20 {
            let summary = env
                .sync(&sim)
                .args(&["--pagination-key", &key, "--max-batches", "4"])
                .args(&["--batch-size", "100"])
                .json();
            assert_eq!(summary["exit_code"], 0);
            key = summary["next_pagination_key"].as_str().unwrap().to_owned();
            if summary["caught_up"] == true {
                break;
            }
        }
        stop.store(true, Ordering::SeqCst);
        watcher.join().unwrap()
    });
    assert!(statuses >= 5, "only {statuses} status runs");
    assert!(saw_held, "no status ran while a sync held the lock");
    assert_eq!(
        env.int("SELECT count(DISTINCT exit_code) FROM sync_run WHERE command = 'sync'"),
        1
    );
    assert_eq!(
        env.int("SELECT count(*) FROM sync_run WHERE command = 'sync' AND exit_code <> 0"),
        0
    );
}

// ---------------------------------------------------------------------------------------------
// skip
// ---------------------------------------------------------------------------------------------

#[test]
fn the_skip_list_is_kept_listed_and_honoured_by_the_next_sync() {
    let sim = Simulator::start(
        Feed::from_events(
            ["1001", "1002", "1003", "1004"]
                .iter()
                .map(|n| ticket(n, "DOWNLOADED", "2026-03-01T10:00:00Z"))
                .collect(),
        ),
        API_KEY,
    );
    let env = Env::new();
    let added = env
        .cmd(&[
            "skip",
            "add",
            "1001,1002",
            "1003",
            "--reason",
            "printed twice",
        ])
        .json();
    assert_eq!(
        (
            &added["added"],
            &added["already_listed"],
            &added["skip_count"]
        ),
        (&json!(3), &json!(0), &json!(3))
    );
    env.cmd(&["skip", "add", "1001", " 1004 "])
        .stdout_has("skip: 1 added, 1 already listed; 4 tickets on the skip list")
        .run();
    let removed = env.cmd(&["skip", "remove", "1002,9999"]).json();
    assert_eq!(
        (
            &removed["removed"],
            &removed["not_listed"],
            &removed["skip_count"]
        ),
        (&json!(1), &json!(1), &json!(3))
    );

    let listed = env.cmd(&["skip", "list"]).json();
    let entries = listed["skip"].as_array().unwrap();
    let shown: Vec<(&str, &Value)> = entries
        .iter()
        .map(|e| (e["ticket_number"].as_str().unwrap(), &e["reason"]))
        .collect();
    assert_eq!(
        shown,
        [
            ("1001", &json!("printed twice")),
            ("1003", &json!("printed twice")),
            ("1004", &Value::Null),
        ]
    );
    assert!(entries.iter().all(|e| e["added_at"].is_string()));
    let human = env.cmd(&["skip", "list"]).stderr_empty().run().stdout;
    let lines: Vec<Vec<&str>> = human.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 3, "{human}");
    assert_eq!((lines[0][0], lines[0][2]), ("1001", "printed twice"));
    assert_eq!((lines[2][0], lines[2][2]), ("1004", ""));

    let summary = env.sync(&sim).json();
    assert_eq!(
        (&summary["fetched"], &summary["skipped"], &summary["stored"]),
        (&json!(4), &json!(3), &json!(1))
    );
    assert_eq!(
        env.rows("SELECT ticket_number FROM ticket"),
        [["1002".to_owned()]]
    );
}

#[test]
fn a_bad_ticket_number_is_a_usage_error_naming_it_and_creates_nothing() {
    let long = "9".repeat(65);
    for (args, bad) in [
        (&["skip", "add", "a b"][..], "a b"),
        (&["skip", "add", "é"], "é"),
        (&["skip", "add", long.as_str()], long.as_str()),
        (&["skip", "add", "1001,bad number"], "bad number"),
        (&["skip", "add", "1;DROP"], "1;DROP"),
        (&["skip", "remove", "é"], "é"),
        (&["sync", "--skip", "a b"], "a b"),
        (&["replay", "--skip", "é", "page.json"], "é"),
    ] {
        let env = Env::new();
        env.cmd(args)
            .code(64)
            .stdout_empty()
            .stderr_has(&format!("invalid ticket number \"{bad}\""))
            .run();
        assert!(
            files_in(&env).is_empty(),
            "{args:?} created {:?}",
            files_in(&env)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// cursor
// ---------------------------------------------------------------------------------------------

#[test]
fn cursor_set_and_reset_need_yes_record_the_change_and_steer_the_next_sync() {
    let sim = Simulator::start(Feed::generate(4, 60), API_KEY);
    let env = Env::new();
    env.sync(&sim).args(&["--batch-size", "50"]).run();
    let synced_key = Feed::page_key(50);
    assert_eq!(env.stored_key().as_deref(), Some(synced_key.as_str()));

    let runs = env.int("SELECT count(*) FROM sync_run");
    for args in [&["cursor", "set", "pk-anything"][..], &["cursor", "reset"]] {
        env.cmd(args)
            .code(64)
            .stdout_empty()
            .stderr_has("--yes")
            .run();
    }
    assert_eq!(env.stored_key().as_deref(), Some(synced_key.as_str()));
    assert_eq!(env.int("SELECT count(*) FROM sync_run"), runs);

    let chosen = Feed::page_key(120);
    let set = env.cmd(&["cursor", "set", &chosen, "--yes"]).json();
    assert_eq!(
        (&set["key_before"], &set["key_after"]),
        (&json!(synced_key), &json!(chosen))
    );
    assert_eq!(
        last_run(&env),
        [
            "cursor set",
            synced_key.as_str(),
            chosen.as_str(),
            "0",
            "no error"
        ]
    );
    let shown = env.cmd(&["cursor", "show"]).json();
    assert_eq!(shown["pagination_key"], chosen.as_str());
    assert!(shown["pagination_key_saved_at"].is_string());
    env.cmd(&["cursor", "show"])
        .stdout_has(&format!("pagination key: '{chosen}' (saved "))
        .run();

    let after_set = env.sync(&sim).args(&["--batch-size", "50"]).json();
    assert_eq!(
        requested_keys(&sim).last().unwrap().as_deref(),
        Some(chosen.as_str())
    );
    assert_eq!(after_set["pagination_key_before"], chosen.as_str());
    let moved = env.stored_key().unwrap();
    assert_eq!(key_offset(&moved), sim.feed().len().min(170));

    let reset = env.cmd(&["cursor", "reset", "--yes"]).json();
    assert_eq!(
        (&reset["key_before"], &reset["key_after"]),
        (&json!(moved), &Value::Null)
    );
    assert_eq!(
        last_run(&env),
        ["cursor reset", moved.as_str(), "NULL", "0", "no error"]
    );
    assert_eq!(env.stored_key().unwrap_or_default(), "");
    env.sync(&sim).args(&["--batch-size", "50"]).run();
    assert_eq!(
        requested_keys(&sim).last().unwrap(),
        &None,
        "after a reset the request has no paginationKey"
    );
}

// ---------------------------------------------------------------------------------------------
// Dry runs
// ---------------------------------------------------------------------------------------------

#[test]
fn a_dry_run_reports_what_the_real_run_would_and_writes_nothing() {
    // Generated events with an unmappable one in the third batch of 40.
    let mut events = Feed::generate(5, 40).events().to_vec();
    assert!(events.len() > 100);
    events.insert(85, unmappable("BAD-9"));
    let feed = Feed::from_events(events);
    let sim = Simulator::start(feed.clone(), API_KEY);
    let whole = document(&feed, feed.len());
    let stored_already = document(&feed, 40);

    for (case, args, body, code) in [
        (
            "sync, partial, two batches",
            &["sync", "--max-batches", "2"][..],
            None,
            2,
        ),
        (
            "sync, three batches",
            &["sync", "--max-batches", "3"][..],
            None,
            2,
        ),
        ("sync, one clean batch", &["sync"], None, 0),
        ("replay, partial", &["replay", "page.json"], Some(&whole), 2),
        (
            "replay, stored already",
            &["replay", "page.json"],
            Some(&stored_already),
            0,
        ),
    ] {
        let prepared = || {
            let env = Env::new();
            env.sync(&sim).args(&["--batch-size", "40"]).run();
            env.cmd(&["skip", "add", "NOT-IN-FEED"]).run();
            // A reader leaves an empty -wal behind: the dry run must not grow it.
            env.cmd(&["status"]).run();
            env
        };
        let env = prepared();
        // A schema cannot be copied as a file is: the same commands make the twin.
        let real = if env.pg.is_some() {
            prepared()
        } else {
            copy_of(&env)
        };
        for env in [&env, &real] {
            if let Some(body) = body {
                env.write("page.json", body.as_bytes(), 0o600);
            }
        }
        let runs = env.int("SELECT count(*) FROM sync_run");
        let key = env.stored_key();
        let before = on_disk(&env);

        let run = |env: &Env, dry_run: bool| {
            let mut run = if args[0] == "sync" {
                let metrics = env.path("run.prom");
                env.sync(&sim).args(&args[1..]).args(&[
                    "--batch-size",
                    "40",
                    "--metrics-file",
                    metrics.to_str().unwrap(),
                ])
            } else {
                env.cmd(args)
            };
            if dry_run {
                run = run.arg("--dry-run");
            }
            run.code(code).json()
        };
        let dry = run(&env, true);
        let wet = run(&real, false);

        assert_eq!(counters(&dry), counters(&wet), "{case}");
        if args[0] == "sync" {
            for field in ["contacts_created", "distributions_created"] {
                assert!(wet[field].as_u64() > Some(0), "{case}: {field} {wet}");
            }
        }
        for field in ["exit_code", "batches", "next_pagination_key", "caught_up"] {
            assert_eq!(dry[field], wet[field], "{case}: {field}");
        }
        assert_eq!(dry["dry_run"], true, "{case}");
        assert_eq!(dry["key_saved"], false, "{case}");
        assert_eq!(
            on_disk(&env),
            before,
            "{case}: the store's files are untouched"
        );
        if env.pg.is_none() {
            assert!(before.wal.is_some(), "{case}: there is a -wal to compare");
        }
        assert_eq!(env.int("SELECT count(*) FROM sync_run"), runs, "{case}");
        assert_eq!(env.stored_key(), key, "{case}");
        assert!(!env.path("run.prom").exists(), "{case}: no metrics file");
        if args[0] == "sync" {
            assert!(
                real.path("run.prom").exists(),
                "{case}: the real run writes one"
            );
        }
    }
}

#[test]
fn a_dry_run_reads_the_wal_beside_a_writer_and_writes_nothing() {
    if support::sqlite_only("SQLite's WAL beside a writer") {
        return;
    }
    let feed = Feed::generate(7, 40);
    let sim = Simulator::start(feed.clone(), API_KEY);
    let env = Env::new();
    env.sync(&sim).args(&["--batch-size", "40"]).run();
    let next_batch: Vec<&str> = feed.events()[40..80]
        .iter()
        .map(|event| event["taxNumber"].as_str().unwrap())
        .collect();
    let held = *next_batch.iter().find(|n| **n != next_batch[0]).unwrap();
    // Another program commits a skip into the WAL (never checkpointed while it is open) and
    // holds a second one in a transaction it has not committed.
    let writer = env.writable_db();
    writer
        .execute_batch("PRAGMA wal_autocheckpoint = 0;")
        .unwrap();
    let add_skip = "INSERT INTO skip_ticket (ticket_number, added_at) VALUES (?1, '2026-01-01')";
    writer.execute(add_skip, [next_batch[0]]).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    writer.execute(add_skip, [held]).unwrap();
    let real = copy_of(&env);
    let before = on_disk(&env);
    assert!(
        before.wal.as_ref().is_some_and(|wal| !wal.is_empty()),
        "the WAL holds frames"
    );

    let dry = env
        .sync(&sim)
        .args(&["--batch-size", "40", "--dry-run"])
        .json();
    let wet = real.sync(&sim).args(&["--batch-size", "40"]).json();

    assert_eq!(counters(&dry), counters(&wet));
    let committed_skips = next_batch.iter().filter(|n| **n == next_batch[0]).count();
    assert_eq!(dry["skipped"], committed_skips, "{dry}");
    assert!(on_disk(&env) == before, "the store's files are untouched");
    writer.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn a_dry_run_on_a_missing_store_creates_no_store_and_chains_keys_in_memory() {
    let sim = Simulator::start(Feed::generate(6, 40), API_KEY);
    let env = Env::new();
    let summary = env
        .sync(&sim)
        .args(&["--dry-run", "--max-batches", "3", "--batch-size", "30"])
        .json();
    assert_eq!(
        (&summary["batches"], &summary["fetched"]),
        (&json!(3), &json!(90))
    );
    assert_eq!(summary["next_pagination_key"], Feed::page_key(90).as_str());
    let offsets: Vec<Option<usize>> = requested_keys(&sim)
        .iter()
        .map(|key| key.as_deref().map(key_offset))
        .collect();
    assert_eq!(offsets, [None, Some(30), Some(60)]);

    let page = env.write("page.json", document(sim.feed(), 20).as_bytes(), 0o600);
    let replayed = env
        .cmd(&["replay", "--dry-run", page.to_str().unwrap()])
        .json();
    assert_eq!(replayed["fetched"], 20);

    for suffix in ["", "-wal", "-shm"] {
        let path = env.path(&format!("store.db{suffix}"));
        assert!(!path.exists(), "{} was created", path.display());
    }
    assert!(!env.store_exists(), "the dry runs created the store");
    // The lock is taken, so its file is the only one left (none on PostgreSQL).
    let left: Vec<String> = files_in(&env)
        .into_iter()
        .filter(|name| name != "page.json")
        .collect();
    let lock_file: &[&str] = if env.pg.is_some() {
        &[]
    } else {
        &["store.db.lock"]
    };
    assert_eq!(left, lock_file);
}

// ---------------------------------------------------------------------------------------------
// Backfill
// ---------------------------------------------------------------------------------------------

#[test]
fn a_scripted_backfill_reaches_the_end_of_the_feed_and_never_touches_the_stored_key() {
    let sim = Simulator::start(Feed::generate(8, 200), API_KEY);
    let env = Env::new();
    let live = Feed::page_key(30);
    env.cmd(&["cursor", "set", &live, "--yes"]).run();
    let mut key = String::new();
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs <= 20, "the backfill never caught up");
        let summary = env
            .sync(&sim)
            .args(&[
                "--pagination-key",
                &key,
                "--max-batches",
                "3",
                "--batch-size",
                "100",
            ])
            .json();
        assert_eq!(summary["exit_code"], 0);
        assert_eq!(summary["key_saved"], false);
        assert_eq!(
            summary["pagination_key_before"],
            json!(Some(&key).filter(|k| !k.is_empty()))
        );
        assert_eq!(
            env.stored_key().as_deref(),
            Some(live.as_str()),
            "run {runs}"
        );
        let last = env.rows(
            "SELECT coalesce(key_before, ''), key_after FROM sync_run ORDER BY id DESC LIMIT 1",
        );
        assert_eq!(last[0][1], summary["next_pagination_key"].as_str().unwrap());
        key = summary["next_pagination_key"].as_str().unwrap().to_owned();
        if summary["caught_up"] == true {
            break;
        }
    }
    assert!(runs > 1, "the feed takes more than one run");
    let offsets: Vec<usize> = requested_keys(&sim)
        .iter()
        .map(|key| key.as_deref().map_or(0, key_offset))
        .collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "every request goes further: {offsets:?}"
    );
    assert!(
        requested_keys(&sim)
            .iter()
            .all(|k| k.as_deref() != Some(live.as_str())),
        "the stored key is never read"
    );
    let numbers: BTreeSet<&str> = sim
        .feed()
        .events()
        .iter()
        .map(|event| event["taxNumber"].as_str().unwrap())
        .collect();
    assert_eq!(env.int("SELECT count(*) FROM ticket"), numbers.len() as i64);
    assert_eq!(
        env.int("SELECT sum(fetched) FROM sync_run WHERE command = 'sync'"),
        sim.feed().len() as i64,
        "every event fetched exactly once"
    );
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

#[test]
fn the_metrics_file_is_rewritten_after_success_failure_and_refusal() {
    let sim = Simulator::start(Feed::generate(12, 40), API_KEY);
    let env = Env::new();
    let dir = env.path("textfile");
    fs::create_dir(&dir).unwrap();
    let path: PathBuf = dir.join("tixngo.prom");
    let metrics_file = path.to_str().unwrap();
    let only_the_file = || {
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["tixngo.prom"], "no temporary file is left");
    };

    let started = now_seconds();
    let success = env
        .sync(&sim)
        .args(&["--batch-size", "50", "--metrics-file", metrics_file])
        .json();
    let finished = now_seconds();
    assert!(success["stored"].as_u64().unwrap() > 0);
    let metrics = read_metrics(&path);
    only_the_file();
    assert_metrics_match(&metrics, &success);
    let ran_at = metrics["tixngo_feedback_last_run_timestamp_seconds"];
    assert!(
        (started - 1.0..=finished + 1.0).contains(&ran_at),
        "{started} <= {ran_at} <= {finished}"
    );
    let succeeded_at = metrics["tixngo_feedback_last_success_timestamp_seconds"];
    assert_eq!(succeeded_at, ran_at);

    sim.push_fault(Fault::Status(501), 1);
    let failure = env
        .sync(&sim)
        .args(&["--metrics-file", metrics_file])
        .code(69)
        .stderr_has("error")
        .json();
    let metrics = read_metrics(&path);
    only_the_file();
    assert_metrics_match(&metrics, &failure);
    assert_eq!(metrics["tixngo_feedback_last_exit_code"], 69.0);
    assert_eq!(
        metrics["tixngo_feedback_last_success_timestamp_seconds"], succeeded_at,
        "kept from the previous file"
    );
    assert!(metrics["tixngo_feedback_last_run_timestamp_seconds"] >= ran_at);

    let holder = LockHolder::hold(&env);
    let refused = env
        .sync(&sim)
        .args(&["--metrics-file", metrics_file])
        .code(75)
        .json();
    drop(holder);
    let metrics = read_metrics(&path);
    only_the_file();
    assert_metrics_match(&metrics, &refused);
    assert_eq!(metrics["tixngo_feedback_last_exit_code"], 75.0);
    assert_eq!(metrics["tixngo_feedback_last_batches"], 0.0);
    assert_eq!(
        metrics["tixngo_feedback_last_success_timestamp_seconds"],
        succeeded_at
    );
}

// ---------------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------------

/// A store holding three unresolved sync errors: T-3, T-4 and one without a readable number.
fn store_with_errors() -> Env {
    let feed = Feed::from_events(vec![
        owned("T-1", "ana@example.org", "2026-03-01T10:00:00Z"),
        unmappable("T-3"),
        unmappable("T-4"),
        json!({ "taxNumber": 42, "status": "DOWNLOADED" }),
    ]);
    let sim = Simulator::start(feed, API_KEY);
    let env = Env::new();
    env.sync(&sim).code(2).run();
    env
}

/// The ids of the unresolved sync errors, oldest first.
fn unresolved_ids(env: &Env) -> Vec<String> {
    env.rows("SELECT id FROM sync_error WHERE resolved_at IS NULL ORDER BY id")
        .into_iter()
        .map(|row| row[0].clone())
        .collect()
}

#[test]
fn errors_list_and_show_name_every_unresolved_error_even_without_a_ticket_number() {
    let env = store_with_errors();
    let ids = unresolved_ids(&env);
    assert_eq!(ids.len(), 3);

    let human = env.cmd(&["errors", "list"]).stderr_empty().run().stdout;
    assert!(human.starts_with("3 unresolved sync errors:\n"), "{human}");
    for (id, ticket) in ids.iter().zip(["T-3", "T-4", "unreadable"]) {
        let row = human
            .lines()
            .skip(2)
            .find(|line| line.split_whitespace().next() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("no row for error {id} in\n{human}"));
        assert!(row.contains(ticket), "{row}");
        assert!(row.contains(" 20"), "first seen: {row}");
    }
    let listed = env.cmd(&["errors", "list"]).json();
    assert_eq!(listed["command"], "errors list");
    assert_eq!(listed["exit_code"], 0);
    assert_eq!(listed["error"], Value::Null);
    let errors = listed["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3);
    assert_eq!(errors[2]["ticket_number"], Value::Null);
    assert!(errors[0]["first_seen_at"].as_str().unwrap().ends_with('Z'));

    let shown = env
        .cmd(&["errors", "show", &ids[2]])
        .stderr_empty()
        .stdout_has(&format!("sync error {}: unresolved", ids[2]))
        .stdout_has("ticket: unreadable")
        .stdout_has(r#""taxNumber":42"#)
        .run();
    assert!(shown.stdout.contains("payload:"), "{}", shown.stdout);
    let json = env.cmd(&["errors", "show", &ids[0]]).json();
    assert_eq!(json["command"], "errors show");
    assert_eq!(json["sync_error"]["ticket_number"], "T-3");
    assert_eq!(
        json["sync_error"]["payload"].as_str(),
        env.text(&format!(
            "SELECT payload FROM sync_error WHERE id = {}",
            ids[0]
        ))
        .as_deref()
    );

    let missing = env
        .cmd(&["errors", "show", "999"])
        .code(64)
        .stderr_has("there is no sync error 999")
        .json();
    assert_eq!(missing["command"], "errors show");
    assert_eq!(missing["exit_code"], 64);
    assert!(missing["error"].as_str().unwrap().contains("999"));
}

#[test]
fn errors_dismiss_keeps_the_errors_resolved_with_the_reason_all_or_none() {
    let env = store_with_errors();
    let ids = unresolved_ids(&env);
    let before = env.counts();

    // A missing id among good ones: nothing is dismissed.
    env.cmd(&["errors", "dismiss", &ids[0], "999", "--reason", "x"])
        .code(64)
        .stderr_has("there is no sync error 999")
        .run();
    env.cmd(&["errors", "dismiss", &ids[0]])
        .code(64)
        .stderr_has("--reason")
        .run();
    env.cmd(&["errors", "dismiss", &ids[0], "--reason", " "])
        .code(64)
        .stderr_has("must not be empty")
        .run();
    assert_eq!(unresolved_ids(&env), ids);

    let dismissed = env
        .cmd(&[
            "errors",
            "dismiss",
            &ids[0],
            &ids[2],
            "--reason",
            "duplicate of a ticket cancelled in S-360",
        ])
        .stderr_empty()
        .json();
    assert_eq!(dismissed["command"], "errors dismiss");
    assert_eq!(dismissed["exit_code"], 0);
    assert_eq!(dismissed["error"], Value::Null);
    assert_eq!(unresolved_ids(&env), [ids[1].clone()]);
    assert_eq!(env.counts(), before, "kept, never deleted");
    assert_eq!(
        env.rows(&format!(
            "SELECT resolution, resolved_at IS NOT NULL FROM sync_error WHERE id IN ({}, {}) ORDER BY id",
            ids[0], ids[2]
        )),
        [
            ["duplicate of a ticket cancelled in S-360", "1"],
            ["duplicate of a ticket cancelled in S-360", "1"]
        ]
    );
    env.cmd(&["errors", "show", &ids[0]])
        .stdout_has("dismissed at ")
        .stdout_has(": duplicate of a ticket cancelled in S-360")
        .run();
    env.cmd(&["status"])
        .stdout_has("unresolved sync errors: 1 (first: T-4)")
        .run();

    let again = env
        .cmd(&["errors", "dismiss", &ids[0], "--reason", "again"])
        .code(64)
        .json();
    assert!(
        again["error"]
            .as_str()
            .unwrap()
            .contains(&format!("sync error {} was already resolved", ids[0])),
        "{again}"
    );
    assert_eq!(
        env.text(&format!(
            "SELECT resolution FROM sync_error WHERE id = {}",
            ids[0]
        ))
        .as_deref(),
        Some("duplicate of a ticket cancelled in S-360")
    );
}

#[test]
fn replay_errors_as_a_dry_run_never_says_the_errors_were_recorded() {
    let env = store_with_errors();
    let before = env.counts();
    let ran = env
        .cmd(&["replay", "--errors", "--dry-run"])
        .code(2)
        .stdout_has("replay --errors (dry run): 3 fetched, 0 stored")
        .stdout_has("the stored key was not touched")
        .stderr_has("would be recorded in sync_error (dry run: nothing was written)")
        .stderr_has("3 tickets could not be mapped (dry run: nothing was recorded)")
        .run();
    assert!(!ran.stderr.contains("were recorded"), "{}", ran.stderr);
    assert!(!ran.stdout.contains("caught up"), "{}", ran.stdout);
    assert_eq!(env.counts(), before);
    let real = env.cmd(&["replay", "--errors"]).code(2).run();
    assert!(
        real.stderr
            .contains("3 tickets still cannot be mapped and stay in sync_error"),
        "{}",
        real.stderr
    );
}

#[test]
fn errors_dismiss_takes_the_lock_and_the_readers_need_a_store() {
    let env = store_with_errors();
    let ids = unresolved_ids(&env);
    {
        let _holder = LockHolder::hold(&env);
        env.cmd(&["errors", "dismiss", &ids[0], "--reason", "x"])
            .code(75)
            .stderr_has("try again")
            .run();
    }
    assert_eq!(unresolved_ids(&env), ids);

    let empty = Env::new();
    for args in [
        &["errors", "list"][..],
        &["errors", "show", "1"],
        &["errors", "dismiss", "1", "--reason", "x"],
    ] {
        empty
            .cmd(args)
            .code(74)
            .stderr_has(empty.missing_store_says())
            .run();
    }
    assert!(!empty.store_exists());
}

#[test]
fn server_text_with_terminal_escapes_never_reaches_the_terminal_raw() {
    let ticket_number = "T-\u{1b}]0;owned\u{7}\u{1b}[2J";
    let body = json!({
        "pagination": { "nextPageKey": "next-plain" },
        "result": [
            { "taxNumber": ticket_number, "status": "DOWNLOADED", "lastUpdated": "2026-03-01T10:00:00Z" },
            { "taxNumber": "T-1", "status": "DOWNLOADED", "lastUpdated": "2026-03-01T10:00:00Z" },
            // An undocumented status and an unread field, both named in the run's warnings.
            {
                "taxNumber": "T-2", "status": "NEW\u{1b}[2J", "lastUpdated": "2026-03-01T10:00:00Z",
                "odd\u{7}field": 1,
            },
        ],
    })
    .to_string();
    let env = Env::new();
    let file = env.write("page.json", body.as_bytes(), 0o600);
    let file = file.to_str().unwrap();
    // A key with control characters makes the document bad data (65), as from TIXNGO; the
    // refusal names the byte, never the key's raw text.
    let bad_key = json!({
        "pagination": { "nextPageKey": "next-\u{1b}[31mred\u{9b}1m" },
        "result": [],
    })
    .to_string();
    let bad_key = env.write("bad-key.json", bad_key.as_bytes(), 0o600);
    let mut outputs = vec![env.cmd(&["-vv", "replay", file]).code(2).run()];
    outputs.push(env.cmd(&["-vv", "replay", "--dry-run", file]).code(2).run());
    outputs.push(
        env.cmd(&["-vv", "replay", bad_key.to_str().unwrap()])
            .code(65)
            .run(),
    );
    outputs.push(env.cmd(&["status"]).run());
    outputs.push(env.cmd(&["errors", "list"]).run());
    let id = unresolved_ids(&env).pop().expect("the bad ticket's error");
    outputs.push(env.cmd(&["errors", "show", &id]).run());
    outputs.push(env.cmd(&["-vv", "replay", "--errors"]).code(2).run());
    for ran in &outputs {
        for (stream, text) in [("stdout", &ran.stdout), ("stderr", &ran.stderr)] {
            assert!(
                !text.contains(['\u{1b}', '\u{7}', '\u{9b}']),
                "a raw control character on {stream}:\n{text}"
            );
        }
    }
    assert!(
        outputs[0]
            .stdout
            .contains("the file's next key 'next-plain'")
    );
    assert!(outputs[2].stderr.contains("not printable ASCII"));
    assert!(
        outputs[3]
            .stdout
            .contains(r"T-\u{1b}]0;owned\u{7}\u{1b}[2J")
    );
    assert!(
        outputs[5]
            .stdout
            .contains(r"ticket: T-\u{1b}]0;owned\u{7}\u{1b}[2J")
    );
}

// ---------------------------------------------------------------------------------------------
// completions and man
// ---------------------------------------------------------------------------------------------

/// The subcommands every completion script and the man page must name.
const SUBCOMMANDS: [&str; 8] = [
    "sync",
    "replay",
    "status",
    "skip",
    "cursor",
    "errors",
    "completions",
    "man",
];

#[test]
fn completions_are_printed_for_every_shell_and_name_every_subcommand() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = env.cmd(&["completions", shell]).stderr_empty().run().stdout;
        assert!(script.contains("tixngo-feedback"), "{shell}:\n{script}");
        for name in SUBCOMMANDS.iter().chain(&["dismiss", "store", "api-url"]) {
            assert!(script.contains(name), "{shell} lacks {name}");
        }
    }
    env.cmd(&["completions", "tcsh"])
        .code(64)
        .stderr_has("tcsh")
        .run();
    assert!(!env.store_exists(), "no store for a completion script");
}

#[test]
fn the_man_page_is_roff_naming_every_command_and_option_and_man_renders_it() {
    let env = Env::new();
    let page = env.cmd(&["man"]).stderr_empty().run().stdout;
    assert!(page.contains(".TH tixngo-feedback 1"), "{page}");
    for name in SUBCOMMANDS {
        assert!(
            page.contains(&format!(
                ".SH \"TIXNGO\\-FEEDBACK {}\"",
                name.to_uppercase()
            )),
            "no section for {name}"
        );
    }
    for option in [
        "store",
        "api-url",
        "max-batches",
        "dry-run",
        "reason",
        "yes",
    ] {
        let roff = format!("\\-\\-{}", option.replace('-', "\\-"));
        assert!(page.contains(&roff), "{roff} missing");
    }
    assert!(
        page.contains("EXIT STATUS") && page.contains("78"),
        "exit codes"
    );
    assert!(!env.store_exists(), "no store for the man page");

    let file = env.write("tixngo-feedback.1", page.as_bytes(), 0o644);
    let rendered = match Command::new("man")
        .arg("-l")
        .arg(&file)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C")
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            eprintln!("SKIPPED: man is not installed here, the page was not rendered");
            return;
        }
        Err(e) => panic!("man: {e}"),
    };
    let text = String::from_utf8_lossy(&rendered.stdout);
    assert!(rendered.status.success(), "man -l failed: {rendered:?}");
    assert!(text.contains("TIXNGO-FEEDBACK ERRORS DISMISS"), "{text}");
    assert!(text.contains("--api-url <URL>"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// logs
// ---------------------------------------------------------------------------------------------

#[test]
fn verbose_logs_a_line_per_step_and_very_verbose_a_decision_per_ticket_without_personal_data() {
    let feed = Feed::from_events(vec![
        owned("T-1", "ana@example.org", "2026-03-01T10:00:00Z"),
        owned("T-2", "ben@example.org", "2026-03-01T10:01:00Z"),
        unmappable("T-3"),
    ]);
    let sim = Simulator::start(feed, API_KEY);
    let personal = ["ana@example.org", "ben@example.org", "Zoë", "Müller"];

    let env = Env::new();
    let verbose = env.sync(&sim).arg("-v").code(2).run();
    for step in [
        "lock ",
        " taken",
        "store ",
        " opened",
        "fetching up to 1000 tickets from key ''",
        "page received: ",
        "page read: 3 tickets, next key '",
        "batch committed: 2 stored, 0 unchanged, 0 skipped, 0 stale, 1 failed; key '",
    ] {
        assert!(
            verbose.stderr.contains(step),
            "{step:?} missing from\n{}",
            verbose.stderr
        );
    }
    assert!(
        !verbose.stderr.contains("ticket T-1: stored"),
        "{}",
        verbose.stderr
    );

    let env = Env::new();
    let very = env.sync(&sim).arg("-vv").code(2).run();
    for decision in [
        "ticket T-1: stored",
        "ticket T-2: stored",
        "ticket T-3 cannot be mapped",
    ] {
        assert!(
            very.stderr.contains(decision),
            "{decision:?} missing from\n{}",
            very.stderr
        );
    }
    let again = env
        .sync(&sim)
        .args(&["-vv", "--pagination-key", ""])
        .code(2)
        .run();
    assert!(
        again.stderr.contains("ticket T-1: unchanged"),
        "{}",
        again.stderr
    );
    // Every ticket has an owner e-mail, first seen or not.
    for ran in [&very, &again] {
        assert!(
            !ran.stderr.contains("no owner e-mail yet"),
            "{}",
            ran.stderr
        );
    }

    for ran in [&verbose, &very, &again] {
        for data in personal {
            assert!(
                !ran.stderr.contains(data),
                "{data} in the log:\n{}",
                ran.stderr
            );
            assert!(
                !ran.stdout.contains(data),
                "{data} on stdout:\n{}",
                ran.stdout
            );
        }
    }
}

#[test]
fn counts_in_messages_agree_with_their_number() {
    let env = Env::new();
    let body = json!({ "result": [unmappable("T-3")] }).to_string();
    let file = env.write("one.json", body.as_bytes(), 0o600);
    env.cmd(&["replay", "--stop-on-error", file.to_str().unwrap()])
        .code(65)
        .stderr_has("(--stop-on-error; 1 of 1 ticket cannot be mapped)")
        .run();
    env.cmd(&["replay", file.to_str().unwrap()])
        .code(2)
        .stderr_has("1 of 1 ticket cannot be mapped; recorded in sync_error; first: ticket T-3")
        .stderr_has("tixngo-feedback: 1 ticket could not be mapped (recorded in sync_error)")
        .run();
    env.cmd(&["status"])
        .stdout_has("skip list: 0 tickets")
        .stdout_has("last 2 runs (newest first):")
        .run();
}
