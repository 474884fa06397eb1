//! `sync` through the real binary against the TIXNGO simulator: every exit code of SPEC §3, each
//! fault of the simulator, the lock (§5), the request on the wire (§4.1, §4.2), keys and batches
//! (§4.7), the output (§6) and the API key's secrecy (§7).
//!
//! Exit code 70 ("internal error: a bug") cannot be reached from outside by design: no input,
//! answer or environment is meant to produce it, so no test here fakes one. Every other code of
//! §3 is reached below.

use crate::support;

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{API_KEY, Env, Fault, Feed, Ran, Simulator, exists, ticket};

const BIN: &str = env!("CARGO_BIN_EXE_tixngo-feedback");
/// A fault on every request from now on.
const FOREVER: usize = usize::MAX;
/// A short `--timeout` for the runs that retry until the deadline.
const DEADLINE: &[&str] = &["--timeout", "2"];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A small generated organizer (about 140 events).
fn feed() -> Feed {
    Feed::generate(5, 40)
}

/// A store after one committed batch of 20: a stored key, tickets, contacts, one `sync_run`.
fn primed(sim: &Simulator) -> Env {
    let env = Env::new();
    env.sync(sim).args(&["--batch-size", "20"]).run();
    assert_eq!(env.stored_key(), Some(Feed::page_key(20)));
    env
}

/// What a failed run must leave as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    counts: Vec<(String, i64)>,
    key: Option<String>,
}

fn snapshot(env: &Env) -> Snapshot {
    Snapshot {
        counts: env.counts(),
        key: env.stored_key(),
    }
}

/// Nothing changed at all: no row of the batch, no `sync_run` row, the same key.
fn assert_untouched(env: &Env, before: &Snapshot) {
    assert_eq!(&snapshot(env), before, "the store changed");
}

/// A run that got the lock and failed: nothing of the batch, the same key, and exactly one new
/// `sync_run` row recording the exit code, zero counts and the error line.
fn assert_failure_recorded(env: &Env, before: &Snapshot, code: i64, error_has: &str) {
    assert_failure_recorded_from(env, before, before.key.as_deref(), code, error_has);
}

/// [`assert_failure_recorded`] for a run that started from `run_key` (`--pagination-key`).
fn assert_failure_recorded_from(
    env: &Env,
    before: &Snapshot,
    run_key: Option<&str>,
    code: i64,
    error_has: &str,
) {
    let after = snapshot(env);
    assert_eq!(after.key, before.key, "the key changed");
    for ((table, was), (_, now)) in before.counts.iter().zip(&after.counts) {
        let expected = if table == "sync_run" { was + 1 } else { *was };
        assert_eq!(*now, expected, "rows of {table}");
    }
    let row = last_run(env);
    assert_eq!(row["command"], "sync");
    assert_eq!(row["exit_code"], code);
    assert_eq!(row["fetched"], 0);
    assert_eq!(row["stored"], 0);
    assert_eq!(row["key_before"], json!(run_key));
    assert_eq!(row["key_after"], json!(run_key));
    let error = row["error"].as_str().expect("the error is recorded");
    assert!(error.contains(error_has), "sync_run.error {error:?}");
}

/// The latest `sync_run` row as JSON (integers as numbers, NULL as null).
fn last_run(env: &Env) -> Value {
    runs(env).pop().expect("a sync_run row")
}

/// Every `sync_run` row, oldest first.
fn runs(env: &Env) -> Vec<Value> {
    const COLUMNS: [&str; 8] = [
        "command",
        "key_before",
        "key_after",
        "fetched",
        "stored",
        "failed",
        "exit_code",
        "error",
    ];
    let sql = format!("SELECT {} FROM sync_run ORDER BY id", COLUMNS.join(", "));
    env.rows(&sql)
        .into_iter()
        .map(|row| {
            let fields = COLUMNS.iter().zip(row).map(|(name, text)| {
                let value = match (text.as_str(), text.parse::<i64>()) {
                    ("NULL", _) => Value::Null,
                    (_, Ok(n)) if !name.starts_with("key") => json!(n),
                    _ => json!(text),
                };
                (name.to_string(), value)
            });
            Value::Object(fields.collect())
        })
        .collect()
}

/// The one error line of a failed run: the last line of stderr, every line before it being a
/// warning of the log (retries, contact rules). Never a response body.
fn error_line(ran: &Ran) -> &str {
    let lines: Vec<&str> = ran.stderr.lines().collect();
    let (last, before) = lines.split_last().expect("an error line on stderr");
    assert!(
        last.starts_with("tixngo-feedback: error: "),
        "stderr:\n{}",
        ran.stderr
    );
    for line in before {
        assert!(
            line.starts_with('[') && line.contains(" WARN "),
            "only log lines precede the error line: {line}"
        );
    }
    assert!(
        !ran.stderr.contains("\"message\"") && !ran.stderr.contains("taxNumber"),
        "a response body on stderr:\n{}",
        ran.stderr
    );
    last.trim_start_matches("tixngo-feedback: error: ")
}

/// The diff requests the simulator received after the first `skip`.
/// A minimal ticket with an owner (so that no contact-rule warning is logged).
fn owned(number: &str, status: &str, updated: &str) -> Value {
    let mut event = ticket(number, status, updated);
    event["spectatorDetails"] = json!({ "email": format!("{number}@example.org") });
    event
}

/// A port of 127.0.0.1 on which nothing listens.
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("an ephemeral port")
        .port()
}

/// The binary, started in the background with a clean environment.
fn spawn(env: &Env, sim: &Simulator, args: &[&str]) -> Child {
    Command::new(BIN)
        .env_clear()
        .envs(env.store_env())
        .env("TIXNGO_API_URL", sim.url())
        .env("TIXNGO_API_KEY", API_KEY)
        .arg("sync")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts")
}

/// A child process killed (SIGKILL) and reaped when the test ends, passed or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `condition` holds, for 10 s at most.
fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < Duration::from_secs(10), "{what}");
        thread::sleep(Duration::from_millis(10));
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ---------------------------------------------------------------------------------------------
// 0: success, nothing new, caught up
// ---------------------------------------------------------------------------------------------

#[test]
fn a_first_sync_commits_the_batch_and_the_key_and_records_the_run() {
    let sim = Simulator::start(feed(), API_KEY);
    let env = Env::new();
    let summary = env
        .sync(&sim)
        .args(&["--batch-size", "20"])
        .stderr_empty()
        .json();
    assert_eq!(summary["exit_code"], 0);
    assert_eq!(summary["error"], Value::Null);
    assert_eq!(summary["fetched"], 20);
    assert_eq!(summary["batches"], 1);
    assert_eq!(summary["caught_up"], false);
    assert_eq!(summary["key_saved"], true);
    assert_eq!(summary["pagination_key_before"], Value::Null);
    assert_eq!(summary["next_pagination_key"], Feed::page_key(20));
    assert_eq!(env.stored_key(), Some(Feed::page_key(20)));
    let distinct: std::collections::HashSet<&str> = sim.feed().events()[..20]
        .iter()
        .map(|event| event["taxNumber"].as_str().unwrap())
        .collect();
    assert_eq!(
        env.int("SELECT count(*) FROM ticket"),
        distinct.len() as i64
    );
    let run = last_run(&env);
    assert_eq!(run["exit_code"], 0);
    assert_eq!(run["fetched"], 20);
    assert_eq!(run["key_before"], Value::Null);
    assert_eq!(run["key_after"], Feed::page_key(20));
    assert_eq!(run["error"], Value::Null);
    if let Some(store) = env.sqlite_store() {
        assert_eq!(
            mode(&store),
            0o600,
            "the store holds personal data: created 0600"
        );
    }
}

#[test]
fn a_run_at_the_end_of_the_feed_is_nothing_new_exit_0_and_keeps_the_key() {
    let sim = Simulator::start(feed(), API_KEY);
    let env = Env::new();
    let all = sim.feed().len();
    let first = env.sync(&sim).args(&["--batch-size", "10000"]).json();
    assert_eq!(first["fetched"], all);
    assert_eq!(
        first["caught_up"], true,
        "fewer tickets than the batch size"
    );
    assert_eq!(env.stored_key(), Some(Feed::page_key(all)));
    let before = env.counts();

    let second = env
        .sync(&sim)
        .args(&["--batch-size", "10000"])
        .stderr_empty()
        .json();
    assert_eq!(second["exit_code"], 0);
    assert_eq!(second["fetched"], 0);
    assert_eq!(second["caught_up"], true);
    assert_eq!(second["pagination_key_before"], Feed::page_key(all));
    assert_eq!(second["next_pagination_key"], Feed::page_key(all));
    assert_eq!(env.stored_key(), Some(Feed::page_key(all)));
    assert_eq!(
        sim.requests()[1].query_param("paginationKey"),
        Some(Feed::page_key(all).as_str())
    );
    // Only the run's own row is new.
    let after = env.counts();
    for ((table, was), (_, now)) in before.iter().zip(&after) {
        let expected = if table == "sync_run" { was + 1 } else { *was };
        assert_eq!(*now, expected, "rows of {table}");
    }
    let run = last_run(&env);
    assert_eq!(
        (run["exit_code"].clone(), run["fetched"].clone()),
        (json!(0), json!(0))
    );
}

#[test]
fn caught_up_only_when_the_batch_is_short_or_the_key_stops_moving() {
    let events = (1..=4)
        .map(|n| owned(&format!("T-{n}"), "INJECTED", "2025-03-01T10:00:00Z"))
        .collect();
    let sim = Simulator::start(Feed::from_events(events), API_KEY);
    let env = Env::new();
    let mut keys = Vec::new();
    for (fetched, caught_up) in [(2, false), (2, false), (0, true)] {
        let summary = env.sync(&sim).args(&["--batch-size", "2"]).json();
        assert_eq!(summary["fetched"], fetched, "{summary}");
        assert_eq!(summary["caught_up"], caught_up, "{summary}");
        keys.push(env.stored_key().unwrap());
    }
    assert_eq!(
        keys,
        [Feed::page_key(2), Feed::page_key(4), Feed::page_key(4)]
    );
}

// ---------------------------------------------------------------------------------------------
// 2: partial
// ---------------------------------------------------------------------------------------------

#[test]
fn a_ticket_without_a_number_is_recorded_and_the_rest_committed_exit_2() {
    let sim = Simulator::start(feed(), API_KEY);
    sim.push_fault(Fault::MissingTicketNumber, 1);
    let env = Env::new();
    let ran = env
        .sync(&sim)
        .args(&["--batch-size", "20"])
        .code(2)
        .stderr_has("tixngo-feedback: 1 ticket could not be mapped (recorded in sync_error)")
        .run();
    assert!(
        !ran.stderr.contains("tixngo-feedback: error:"),
        "{}",
        ran.stderr
    );
    assert_eq!(
        env.stored_key(),
        Some(Feed::page_key(20)),
        "the key advanced"
    );
    let run = last_run(&env);
    assert_eq!(
        (&run["exit_code"], &run["fetched"], &run["failed"]),
        (&json!(2), &json!(20), &json!(1))
    );
    let errors = env.rows("SELECT ticket_number, reason, payload, resolved_at FROM sync_error");
    assert_eq!(errors.len(), 1, "{errors:?}");
    let [number, reason, payload, resolved] = &errors[0][..] else {
        unreachable!()
    };
    assert_eq!(number, "NULL");
    assert!(reason.contains("taxNumber is missing"), "{reason}");
    assert_eq!(resolved, "NULL");
    let payload: Value = serde_json::from_str(payload).expect("the raw payload is JSON");
    let mut expected = sim.feed().events()[0].clone();
    expected.as_object_mut().unwrap().remove("taxNumber");
    assert_eq!(payload, expected, "the payload is the ticket as sent");
    // The other 19 events of the batch were stored.
    let stored: std::collections::HashSet<&str> = sim.feed().events()[1..20]
        .iter()
        .map(|event| event["taxNumber"].as_str().unwrap())
        .collect();
    assert_eq!(env.int("SELECT count(*) FROM ticket"), stored.len() as i64);
}

/// `[bad T-1, A, B, good T-1]`: T-1 fails in the first batch of 3, then a later run stores it.
fn feed_with_a_bad_ticket() -> Feed {
    let mut bad = owned("T-1", "INJECTED", "yesterday");
    bad["barcode"] = json!("B-1");
    Feed::from_events(vec![
        bad,
        owned("A-1", "INJECTED", "2025-03-01T10:00:00Z"),
        owned("A-2", "INJECTED", "2025-03-01T10:01:00Z"),
        owned("T-1", "DOWNLOADED", "2025-03-01T10:02:00+02:00"),
    ])
}

#[test]
fn a_bad_ticket_waits_in_sync_error_until_a_later_run_stores_it() {
    let sim = Simulator::start(feed_with_a_bad_ticket(), API_KEY);
    let env = Env::new();
    let partial = env
        .sync(&sim)
        .args(&["--batch-size", "3"])
        .code(2)
        .stderr_has("1 ticket could not be mapped")
        .json();
    assert_eq!(
        (&partial["fetched"], &partial["stored"], &partial["failed"]),
        (&json!(3), &json!(2), &json!(1))
    );
    assert_eq!(partial["exit_code"], 2);
    assert_eq!(env.stored_key(), Some(Feed::page_key(3)));
    assert_eq!(
        env.rows("SELECT ticket_number, resolved_at IS NULL FROM sync_error"),
        [["T-1", "1"]]
    );
    let payload = env.text("SELECT payload FROM sync_error").unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&payload).unwrap(),
        sim.feed().events()[0]
    );
    let reason = env.text("SELECT reason FROM sync_error").unwrap();
    assert!(reason.contains("lastUpdated"), "{reason}");
    assert!(
        !reason.contains("yesterday"),
        "reasons never quote values: {reason}"
    );
    assert_eq!(
        env.int("SELECT count(*) FROM ticket WHERE ticket_number = 'T-1'"),
        0
    );

    env.sync(&sim)
        .args(&["--batch-size", "3"])
        .stderr_empty()
        .run();
    assert_eq!(
        env.text("SELECT mobile_status FROM ticket WHERE ticket_number = 'T-1'"),
        Some("DOWNLOADED".into())
    );
    assert_eq!(
        env.int("SELECT count(*) FROM sync_error WHERE resolved_at IS NOT NULL"),
        1,
        "storing the ticket resolves its error"
    );
}

#[test]
fn skipping_a_failed_ticket_resolves_its_error() {
    let sim = Simulator::start(feed_with_a_bad_ticket(), API_KEY);
    let env = Env::new();
    env.sync(&sim).args(&["--batch-size", "3"]).code(2).run();
    let summary = env
        .sync(&sim)
        .args(&["--batch-size", "3", "--pagination-key", "", "--skip", "T-1"])
        .stderr_empty()
        .json();
    assert_eq!(
        (
            &summary["skipped"],
            &summary["unchanged"],
            &summary["failed"]
        ),
        (&json!(1), &json!(2), &json!(0))
    );
    assert_eq!(
        env.int("SELECT count(*) FROM sync_error WHERE resolved_at IS NULL"),
        0
    );
}

// ---------------------------------------------------------------------------------------------
// 64: usage
// ---------------------------------------------------------------------------------------------

/// Flags, an environment variable, and what the usage error names.
type UsageCase<'a> = (&'a [&'a str], Option<(&'a str, &'a str)>, &'a str);

#[test]
fn an_update_rewrites_the_row_in_place_and_keeps_the_columns_s360_owns() {
    let mut activated = owned("A-1", "ACTIVATED", "2025-03-02T10:00:00Z");
    activated["spectatorDetails"]["firstName"] = json!("Ana");
    let mut transferred = owned("A-1", "TRANSFERRED", "2025-03-03T10:00:00Z");
    transferred["spectatorDetails"] = json!({ "email": "b@example.org" });
    let sim = Simulator::start(
        Feed::from_events(vec![
            owned("A-1", "INJECTED", "2025-03-01T10:00:00Z"),
            activated,
            transferred,
        ]),
        API_KEY,
    );
    let env = Env::new();
    env.sync(&sim).args(&["--batch-size", "1"]).run();
    // Columns of S-360's own that the feedback sets once and must never overwrite.
    env.execute(
        "UPDATE ticket SET s360_state = 'PAID', first_synced_at = '2025-01-01T00:00:00.000Z'",
    );
    // SQLite's rowid shows a row rewritten in place; PostgreSQL has no such stable address.
    let row_address = if env.pg.is_some() {
        "ticket_number"
    } else {
        "rowid"
    };
    let columns = &format!(
        "SELECT {row_address}, ticket_number, s360_state, first_synced_at, mobile_status,
                owner_first_name, cultural_contact_id FROM ticket"
    );
    let [first] = &env.rows(columns)[..] else {
        panic!("one row")
    };
    let contact_a = first[6].clone();
    assert_ne!(contact_a, "NULL");

    // Same contact: the row is rewritten where it is, the contact kept.
    env.sync(&sim).args(&["--batch-size", "1"]).run();
    let expected = [
        &first[0],
        "A-1",
        "PAID",
        "2025-01-01T00:00:00.000Z",
        "ACTIVATED",
        "Ana",
    ];
    assert_eq!(
        env.rows(columns),
        vec![[&expected[..], &[&contact_a]].concat()]
    );

    // A completed transfer: the contact changes with the rest of the row.
    env.sync(&sim).args(&["--batch-size", "1"]).run();
    let [row] = &env.rows(columns)[..] else {
        panic!("one row")
    };
    assert_eq!(&row[..4], &expected[..4]);
    assert_eq!(row[4], "TRANSFERRED");
    let contact_b = env.int("SELECT id FROM contact WHERE email = 'b@example.org'");
    assert_eq!(row[6], contact_b.to_string());
    assert_ne!(row[6], contact_a);
    if let Some(store) = env.sqlite_store() {
        support::assert_sound(&env.db(), &store);
    }
}

#[test]
fn bad_flags_and_values_exit_64_with_one_line_and_create_nothing() {
    let cases: &[UsageCase] = &[
        (&["--batch-size", "0"], None, "--batch-size"),
        (&["--batch-size", "10001"], None, "--batch-size"),
        (&["--timeout", "0"], None, "--timeout"),
        (&["--timeout", "3601"], None, "--timeout"),
        (&["--max-batches", "0"], None, "--max-batches"),
        (&["--max-response-mb", "0"], None, "--max-response-mb"),
        (&["--max-failed-ratio", "1.5"], None, "--max-failed-ratio"),
        (&["--skip", "T-1,bad number"], None, "bad number"),
        (&["--skip", "Zürich"], None, "Zürich"),
        (&["--frobnicate"], None, "--frobnicate"),
        (&[], Some(("TIXNGO_CONTACTS", "maybe")), "TIXNGO_CONTACTS"),
        (&[], Some(("TIXNGO_BATCH_SIZE", "abc")), "abc"),
        (&[], Some(("TIXNGO_TIMEOUT", "-1")), "-1"),
    ];
    let sim = Simulator::start(feed(), API_KEY);
    for (args, variable, needle) in cases {
        let env = Env::new();
        // The bounds of --timeout are what is tested: no slack moves a value across them.
        let mut run = env
            .sync(&sim)
            .args(args)
            .exact_timeout()
            .code(64)
            .stdout_empty();
        if let Some((name, value)) = variable {
            run = run.env(name, value);
        }
        let ran = run.stderr_has(needle).run();
        assert_eq!(ran.stderr.lines().count(), 1, "{args:?}: {}", ran.stderr);
        assert!(
            ran.stderr.starts_with("tixngo-feedback: "),
            "{}",
            ran.stderr
        );
        assert!(!env.store_exists(), "{args:?} created the store");
        assert!(!exists(&env.lock_file()), "{args:?} created the lock file");
    }
    assert_eq!(sim.request_count(), 0);
}

// ---------------------------------------------------------------------------------------------
// The fault → exit code matrix (65, 69, 75, 77, 78)
// ---------------------------------------------------------------------------------------------

enum Requests {
    Exactly(usize),
    AtLeast(usize),
}

struct FaultCase {
    fault: Fault,
    args: &'static [&'static str],
    code: i64,
    error_has: String,
    requests: Requests,
}

/// `fault` on every request of the run.
fn case(
    fault: Fault,
    args: &'static [&'static str],
    code: i64,
    error_has: &str,
    requests: Requests,
) -> FaultCase {
    FaultCase {
        fault,
        args,
        code,
        error_has: error_has.to_owned(),
        requests,
    }
}

/// The simulator's faults: what each exits with, that it writes nothing but its `sync_run` row,
/// keeps the key, prints one error line (after any retry warnings) and the `--json` summary with
/// zero counts, and how many requests it made (never retried: exactly one).
#[test]
fn each_fault_exits_with_its_code_and_leaves_the_store_untouched() {
    use Requests::{AtLeast, Exactly};
    let retry_after_1 = Fault::TooManyRequests {
        retry_after: Some("1".into()),
    };
    let redirect =
        Fault::Redirect("https://elsewhere.example.org/organizer/tickets?t=s3cret".into());
    let slow = Fault::Slow(Duration::from_secs(4));
    let unavailable = "TIXNGO unavailable:";
    let cut_short = "TIXNGO unavailable: the response body was cut short";
    let timed_out = "TIXNGO unavailable: the request timed out";
    let body_timed_out = "TIXNGO unavailable: reading the response body timed out";
    #[rustfmt::skip]
    let mut cases = vec![
        case(Fault::InvalidJson, &[], 65, "bad data: the document is not a valid diff document", Exactly(1)),
        case(Fault::InvalidUtf8, &[], 65, "bad data: the document is not valid UTF-8", Exactly(1)),
        case(Fault::NotADiffDocument, &[], 65, "bad data: the document has no ticket list", Exactly(1)),
        case(Fault::Oversized { bytes: 2 << 20 }, &["--max-response-mb", "1"], 65,
            "bad data: the response is larger than the --max-response-mb cap of 1 MiB", Exactly(1)),
        case(Fault::Truncated, DEADLINE, 69, cut_short, AtLeast(2)),
        case(Fault::BrokenChunked, DEADLINE, 69, cut_short, AtLeast(2)),
        case(Fault::Reset, DEADLINE, 69, &format!("{unavailable} cannot reach TIXNGO"), AtLeast(2)),
        // Headers came, the body never ends: reading it runs into the deadline.
        case(Fault::Stall, DEADLINE, 69, body_timed_out, Exactly(1)),
        case(slow, DEADLINE, 69, timed_out, Exactly(1)),
        case(Fault::Status(501), &[], 69, &format!("{unavailable} HTTP 501"), Exactly(1)),
        case(retry_after_1, &["--timeout", "3"], 75,
            "TIXNGO kept answering 429 Too Many Requests until the deadline", AtLeast(2)),
        case(redirect, &[], 78,
            "a redirect to https://elsewhere.example.org: fix the API URL", Exactly(1)),
    ];
    for status in [500, 502, 503, 504] {
        let error = format!("{unavailable} HTTP {status}");
        cases.push(case(
            Fault::Status(status),
            DEADLINE,
            69,
            &error,
            AtLeast(2),
        ));
    }
    for status in [401, 403] {
        let error = format!("TIXNGO rejected the API key (HTTP {status})");
        cases.push(case(Fault::Status(status), &[], 77, &error, Exactly(1)));
    }
    for status in [400, 404, 422] {
        let error = format!("TIXNGO answered HTTP {status} for http://127.0.0.1:");
        cases.push(case(Fault::Status(status), &[], 78, &error, Exactly(1)));
    }
    // The cases mostly wait (for deadlines and retries): run them side by side, eight at a time,
    // so that their deadlines are not spent waiting for a core (on PostgreSQL each also logs in
    // and creates its schema).
    for group in cases.chunks(8) {
        thread::scope(|scope| {
            for case in group {
                scope.spawn(move || run_fault_case(case));
            }
        });
    }
}

fn run_fault_case(case: &FaultCase) {
    let sim = Simulator::start(feed(), API_KEY);
    let env = primed(&sim);
    let before = snapshot(&env);
    sim.push_fault(case.fault.clone(), FOREVER);
    let started = Instant::now();
    let ran = env
        .sync(&sim)
        .args(&["--batch-size", "20"])
        .args(case.args)
        .arg("--json")
        .code(case.code as i32)
        .run();
    let elapsed = started.elapsed();
    let what = format!("{:?} {:?}", case.fault, case.args);
    let error = error_line(&ran);
    assert!(error.contains(&case.error_has), "{what}: {error}");
    assert!(
        !error.contains("s3cret"),
        "{what}: the redirect's query is shown: {error}"
    );
    let summary = ran.json();
    assert_eq!(summary["exit_code"], case.code, "{what}");
    assert_eq!(summary["error"], error, "{what}");
    assert_eq!(summary["fetched"], 0, "{what}");
    assert_eq!(summary["stored"], 0, "{what}");
    assert_eq!(summary["key_saved"], false, "{what}");
    assert_eq!(
        summary["pagination_key_before"],
        Feed::page_key(20),
        "{what}"
    );
    assert_eq!(summary["next_pagination_key"], Feed::page_key(20), "{what}");
    assert_failure_recorded(&env, &before, case.code, &case.error_has);
    let made = sim.request_count() - 1;
    match case.requests {
        Requests::Exactly(n) => assert_eq!(made, n, "{what}: requests"),
        Requests::AtLeast(n) => assert!(made >= n, "{what}: {made} requests, retries expected"),
    }
    if case.args == DEADLINE {
        assert!(
            elapsed < Duration::from_millis(3500) + env.timeout_slack(),
            "{what}: the --timeout deadline was overrun: {elapsed:?}"
        );
    }
}

#[test]
fn a_refused_connection_is_retried_until_the_deadline_then_69() {
    let sim = Simulator::start(feed(), API_KEY);
    let env = primed(&sim);
    let before = snapshot(&env);
    let port = dead_port();
    let url = format!("http://127.0.0.1:{port}/organizer/tickets");
    let started = Instant::now();
    let ran = env
        .sync(&sim)
        .env("TIXNGO_API_URL", &url)
        .args(&["--timeout", "2"])
        .code(69)
        .stdout_empty()
        .stderr_has("retrying in")
        .stderr_has("(attempt 2)")
        .run();
    assert!(started.elapsed() < Duration::from_millis(3500) + env.timeout_slack());
    let error = error_line(&ran);
    assert!(
        error.contains("TIXNGO unavailable: cannot reach TIXNGO"),
        "{error}"
    );
    assert!(
        error.contains(&format!("127.0.0.1:{port}")),
        "host and port named: {error}"
    );
    assert!(
        error.contains("the pagination key is unchanged, the next run retries"),
        "{error}"
    );
    assert_failure_recorded(&env, &before, 69, "cannot reach TIXNGO");
}

#[test]
fn one_503_is_retried_with_a_warning_then_succeeds() {
    let sim = Simulator::start(feed(), API_KEY);
    sim.push_fault(Fault::Status(503), 1);
    let env = Env::new();
    let ran = env
        .sync(&sim)
        .args(&["--batch-size", "20"])
        .stderr_has("HTTP 503 Service Unavailable")
        .stderr_has("retrying in")
        .stderr_has("(attempt 2)")
        .run();
    assert_eq!(
        ran.stderr.lines().count(),
        1,
        "one warning per retry:\n{}",
        ran.stderr
    );
    assert_eq!(sim.request_count(), 2);
    assert_eq!(env.stored_key(), Some(Feed::page_key(20)));
    assert_eq!(last_run(&env)["exit_code"], 0);
}

#[test]
fn one_429_with_retry_after_is_honoured_then_succeeds() {
    let sim = Simulator::start(feed(), API_KEY);
    sim.push_fault(
        Fault::TooManyRequests {
            retry_after: Some("1".into()),
        },
        1,
    );
    let env = Env::new();
    let started = Instant::now();
    env.sync(&sim)
        .args(&["--batch-size", "20"])
        .stderr_has("429")
        .stderr_has("retrying in 1.")
        .stderr_has("(attempt 2)")
        .run();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured: {:?}",
        started.elapsed()
    );
    assert_eq!(sim.request_count(), 2);
    assert_eq!(env.stored_key(), Some(Feed::page_key(20)));
}

// ---------------------------------------------------------------------------------------------
// 65: batches rejected for their failed tickets
// ---------------------------------------------------------------------------------------------

/// `count` tickets `R-0`…, of which those at `bad` have an invalid `lastUpdated`.
fn feed_with_bad_tickets(count: usize, bad: &[usize]) -> Feed {
    let events = (0..count)
        .map(|n| {
            let updated = if bad.contains(&n) {
                "not a time"
            } else {
                "2025-03-01T10:00:00Z"
            };
            owned(&format!("R-{n}"), "INJECTED", updated)
        })
        .collect();
    Feed::from_events(events)
}

#[test]
fn stop_on_error_rolls_the_batch_back_exit_65() {
    let sim = Simulator::start(feed_with_bad_tickets(3, &[1]), API_KEY);
    let env = Env::new();
    // A store with a key, so that "unchanged" means something.
    env.sync(&sim).args(&["--batch-size", "1"]).run();
    let before = snapshot(&env);
    assert_eq!(before.key, Some(Feed::page_key(1)));
    let ran = env
        .sync(&sim)
        .args(&["--batch-size", "2", "--stop-on-error"])
        .code(65)
        .stdout_empty()
        .run();
    let error = error_line(&ran);
    assert!(error.contains("ticket R-1 cannot be mapped"), "{error}");
    assert!(error.contains("--stop-on-error"), "{error}");
    assert!(
        error.contains("the batch was rolled back and the pagination key is unchanged"),
        "{error}"
    );
    assert_failure_recorded(&env, &before, 65, "ticket R-1 cannot be mapped");
}

#[test]
fn over_max_failed_ratio_rolls_the_batch_back_exit_65_and_under_it_is_partial() {
    // One good ticket first (a stored key), then a batch of 10 of which 2 are bad: 20 %.
    let sim = Simulator::start(feed_with_bad_tickets(11, &[3, 7]), API_KEY);
    let env = Env::new();
    env.sync(&sim).args(&["--batch-size", "1"]).run();
    let before = snapshot(&env);
    let ran = env
        .sync(&sim)
        .args(&["--batch-size", "10", "--max-failed-ratio", "0.1"])
        .code(65)
        .stdout_empty()
        .run();
    let error = error_line(&ran);
    assert!(
        error.contains("2 of 10 tickets (20.0%) cannot be mapped, over --max-failed-ratio 0.1"),
        "{error}"
    );
    assert_failure_recorded(&env, &before, 65, "over --max-failed-ratio");

    env.sync(&sim)
        .args(&["--batch-size", "10"])
        .env("TIXNGO_MAX_FAILED_RATIO", "0.25")
        .code(2)
        .stderr_has("2 tickets could not be mapped")
        .run();
    assert_eq!(env.int("SELECT count(*) FROM ticket"), 9);
    assert_eq!(env.int("SELECT count(*) FROM sync_error"), 2);
    assert_eq!(env.stored_key(), Some(Feed::page_key(11)));
}

// ---------------------------------------------------------------------------------------------
// 75: the lock
// ---------------------------------------------------------------------------------------------

#[test]
fn a_lock_held_by_flock_1_exits_75_within_a_second_and_changes_nothing() {
    if support::sqlite_only("the lock file is SQLite's; postgres_runs:: tests the advisory lock") {
        return;
    }
    if Command::new("flock").arg("--version").output().is_err() {
        eprintln!("flock(1) is not installed: skipped");
        return;
    }
    let sim = Simulator::start(feed(), API_KEY);
    let env = primed(&sim);
    let before = snapshot(&env);
    let lock = env.lock_file();
    assert_eq!(
        fs::read_to_string(&lock).unwrap().trim(),
        "",
        "a finished run leaves no pid behind (its record blanked, the file never emptied), which a later holder would be mistaken for"
    );
    // `--no-fork`: flock execs the shell, which execs sleep; one process holds the lock.
    let mut holder = Killed(
        Command::new("flock")
            .args(["--nonblock", "--no-fork"])
            .arg(&lock)
            .args(["sh", "-c", "echo locked; exec sleep 30"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("flock starts"),
    );
    let mut line = String::new();
    BufReader::new(holder.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "locked\n", "flock(1) did not get the lock");

    let started = Instant::now();
    let ran = env
        .sync(&sim)
        .code(75)
        .stdout_empty()
        .stderr_has(&format!(
            "tixngo-feedback: error: another run holds the lock {} (holder unknown): try again later",
            lock.display()
        ))
        .run();
    let elapsed = started.elapsed();
    drop(holder);
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    assert!(elapsed < Duration::from_millis(1500), "took {elapsed:?}");
    assert_untouched(&env, &before);
    assert_eq!(sim.request_count(), 1, "a refused run never fetches");

    // Released by the holder's death: the next run goes through.
    env.sync(&sim).run();
}

#[test]
fn a_second_run_while_the_first_is_stalled_exits_75_naming_the_holder_pid() {
    if support::sqlite_only("the lock file is SQLite's; postgres_runs:: tests the advisory lock") {
        return;
    }
    let sim = Simulator::start(feed(), API_KEY);
    let env = primed(&sim);
    sim.push_fault(Fault::Stall, FOREVER);
    let mut first = Killed(spawn(&env, &sim, &["--timeout", "3"]));
    let pid = first.0.id();
    wait_until("the first run holds the lock and waits on TIXNGO", || {
        sim.request_count() == 2
            && fs::read_to_string(env.lock_file()).is_ok_and(|t| t.trim() == pid.to_string())
    });
    let before = snapshot(&env);
    let started = Instant::now();
    let ran = env
        .sync(&sim)
        .arg("--json")
        .code(75)
        .stderr_has(&format!(
            "another run holds the lock {} (pid {pid}): try again later",
            env.lock_file().display()
        ))
        .run();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(1500), "took {elapsed:?}");
    assert!(
        elapsed >= Duration::from_millis(450),
        "a writer retries for 500 ms before giving up: {elapsed:?}"
    );
    let summary = ran.json();
    assert_eq!(summary["exit_code"], 75);
    assert_eq!(summary["fetched"], 0);
    assert_untouched(&env, &before);
    assert_eq!(sim.request_count(), 2, "the refused run never fetched");

    let status = first.0.wait().unwrap();
    assert_eq!(status.code(), Some(69), "the stalled run times out");
    assert_failure_recorded(&env, &before, 69, "TIXNGO unavailable");
}

// ---------------------------------------------------------------------------------------------
// 78: configuration
// ---------------------------------------------------------------------------------------------

/// `TIXNGO_API_URL`, `TIXNGO_API_KEY`, `--api-key-file`, and what the error says.
type ConfigCase<'a> = (Option<&'a str>, Option<&'a str>, Option<String>, String);

#[test]
fn configuration_errors_exit_78_before_the_lock_the_store_or_the_network() {
    let sim = Simulator::start(feed(), API_KEY);
    let env = Env::new();
    let open_key = env.write("open.key", API_KEY.as_bytes(), 0o644);
    let group_key = env.write("group.key", API_KEY.as_bytes(), 0o640);
    let empty_key = env.write("empty.key", b" \n", 0o600);
    let missing_key = env.path("missing.key");
    let url = sim.url();
    let file = |path: &Path| path.to_str().unwrap().to_owned();
    let cases: Vec<ConfigCase> = vec![
        (None, Some(API_KEY), None, "no API URL".into()),
        (Some(" "), Some(API_KEY), None, "no API URL".into()),
        (
            Some("https://exa mple.org/organizer/tickets"),
            Some(API_KEY),
            None,
            "is not a valid URL".into(),
        ),
        (
            Some("ftp://127.0.0.1/organizer/tickets"),
            Some(API_KEY),
            None,
            "must start with https://".into(),
        ),
        (Some(&url), None, None, "no API key".into()),
        (Some(&url), Some(""), None, "no API key".into()),
        (
            Some(&url),
            Some(API_KEY),
            Some(file(&open_key)),
            format!(
                "the API key file {} is readable by others (mode 0644)",
                open_key.display()
            ),
        ),
        (
            Some(&url),
            None,
            Some(file(&group_key)),
            "is readable by others (mode 0640)".into(),
        ),
        (
            Some(&url),
            None,
            Some(file(&empty_key)),
            format!("the API key file {} is empty", empty_key.display()),
        ),
        (
            Some(&url),
            None,
            Some(file(&missing_key)),
            "cannot read the API key file".into(),
        ),
    ];
    for (api_url, api_key, key_file, error_has) in &cases {
        let mut run = env.cmd(&["sync"]).code(78).stdout_empty();
        if let Some(api_url) = api_url {
            run = run.env("TIXNGO_API_URL", api_url);
        }
        if let Some(api_key) = api_key {
            run = run.env("TIXNGO_API_KEY", api_key);
        }
        if let Some(key_file) = key_file {
            run = run.args(&["--api-key-file", key_file]);
        }
        let ran = run.run();
        let error = error_line(&ran);
        assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
        assert!(error.contains(error_has.as_str()), "{error_has}: {error}");
        assert!(!ran.stderr.contains(API_KEY), "{}", ran.stderr);
        assert!(!env.store_exists(), "{error_has}: the store was created");
        assert!(!exists(&env.lock_file()), "{error_has}: the lock was taken");
    }
    assert_eq!(sim.request_count(), 0);
}

#[test]
fn plain_http_to_a_non_loopback_host_is_refused_before_any_connection() {
    let env = Env::new();
    // 192.0.2.1 is TEST-NET-1: a connection attempt would hang until the connect timeout (or
    // fail as unreachable, 69); the refusal is immediate and a configuration error.
    for url in [
        "http://192.0.2.1/organizer/tickets",
        "http://192.0.2.1:80/organizer/tickets/",
        "HTTP://192.0.2.1/organizer/tickets",
        "http://localhost.192.0.2.1.nip.example/organizer/tickets",
    ] {
        let started = Instant::now();
        let ran = env
            .cmd(&["sync", "--timeout", "30"])
            .env("TIXNGO_API_URL", url)
            .env("TIXNGO_API_KEY", API_KEY)
            .code(78)
            .stdout_empty()
            .stderr_has("plain http:// to a host that is not loopback")
            .run();
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "{url}: {:?}",
            started.elapsed()
        );
        assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
        assert!(!env.store_exists());
        assert!(!exists(&env.lock_file()));
    }
}

#[test]
fn a_0600_key_file_is_read_and_trimmed() {
    let sim = Simulator::start(feed(), API_KEY);
    let env = Env::new();
    let key = env.write("api.key", format!("  {API_KEY}\n").as_bytes(), 0o600);
    env.sync(&sim)
        .env_remove("TIXNGO_API_KEY")
        .env("TIXNGO_API_KEY_FILE", &key)
        .run();
    assert_eq!(sim.requests()[0].header("x-api-key"), Some(API_KEY));
    // The flag wins over the variable, and the file over TIXNGO_API_KEY.
    let wrong = env.write("wrong.key", b"wrong-key", 0o600);
    env.sync(&sim)
        .env("TIXNGO_API_KEY_FILE", &wrong)
        .args(&["--api-key-file", key.to_str().unwrap()])
        .env("TIXNGO_API_KEY", "also-wrong")
        .run();
    assert_eq!(sim.requests()[1].header("x-api-key"), Some(API_KEY));
}

#[test]
fn a_store_newer_than_the_binary_is_refused_78() {
    let sim = Simulator::start(feed(), API_KEY);
    let env = primed(&sim);
    env.set_schema_version(99);
    let before = snapshot(&env);
    let ran = env.sync(&sim).code(78).stdout_empty().run();
    let error = error_line(&ran);
    assert!(
        error.contains("has schema version 99, newer than"),
        "{error}"
    );
    assert!(error.contains("upgrade tixngo-feedback"), "{error}");
    assert_untouched(&env, &before);
    assert_eq!(env.schema_version(), 99);
    assert_eq!(
        sim.request_count(),
        1,
        "the store is checked before fetching"
    );
}

// ---------------------------------------------------------------------------------------------
// 74: the store
// ---------------------------------------------------------------------------------------------

#[test]
fn a_store_in_a_missing_directory_exits_74() {
    if support::sqlite_only("a path of an SQLite file") {
        return;
    }
    let sim = Simulator::start(feed(), API_KEY);
    let env = Env::new();
    let store = env.path("no/such/dir/store.db");
    let ran = env
        .sync(&sim)
        .env("TIXNGO_FEEDBACK_STORE", &store)
        .env("TIXNGO_FEEDBACK_LOCK", env.lock_file())
        .code(74)
        .stdout_empty()
        .run();
    let error = error_line(&ran);
    assert!(
        error.contains(&format!("store {}", store.display())),
        "{error}"
    );
    assert!(!exists(&env.path("no")));
    assert_eq!(sim.request_count(), 0);
    // Without a lock file of its own, the store's path is checked before the lock beside it.
    env.sync(&sim)
        .env("TIXNGO_FEEDBACK_STORE", &store)
        .code(74)
        .stderr_has("no such directory")
        .run();
}

#[test]
fn a_store_that_is_not_a_database_exits_74_and_is_left_as_it_was() {
    if support::sqlite_only("the content of an SQLite file") {
        return;
    }
    let sim = Simulator::start(feed(), API_KEY);
    let env = Env::new();
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    env.write("store.db", &garbage, 0o600);
    let ran = env.sync(&sim).code(74).stdout_empty().run();
    let error = error_line(&ran);
    assert!(
        error.contains(&format!("store {}", env.store().display())),
        "{error}"
    );
    assert!(error.contains("not a database"), "{error}");
    assert_eq!(fs::read(env.store()).unwrap(), garbage);
    assert_eq!(sim.request_count(), 0);
}

// ---------------------------------------------------------------------------------------------
// The request on the wire
// ---------------------------------------------------------------------------------------------

#[test]
fn the_request_carries_the_key_headers_limit_and_the_stored_key() {
    let sim = Simulator::start(feed(), API_KEY);
    let env = Env::new();
    env.sync(&sim).args(&["--batch-size", "7"]).run();
    env.sync(&sim).env("TIXNGO_BATCH_SIZE", "9").run();
    let requests = sim.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/organizer/tickets/diff");
        assert_eq!(request.header("x-api-key"), Some(API_KEY));
        assert_eq!(request.header("accept"), Some("application/json"));
        assert_eq!(
            request.header("user-agent"),
            Some(concat!("tixngo-feedback/", env!("CARGO_PKG_VERSION")))
        );
    }
    assert_eq!(requests[0].query_param("limit"), Some("7"));
    assert_eq!(
        requests[0].query_param("paginationKey"),
        None,
        "omitted on the first run"
    );
    assert_eq!(requests[1].query_param("limit"), Some("9"));
    assert_eq!(
        requests[1].query_param("paginationKey"),
        Some(Feed::page_key(7).as_str()),
        "the stored key"
    );
    assert_eq!(env.stored_key(), Some(Feed::page_key(16)));
}

#[test]
fn a_trailing_slash_on_the_api_url_makes_the_same_request() {
    let sim = Simulator::start(feed(), API_KEY);
    let env = Env::new();
    env.sync(&sim)
        .args(&["--api-url", &format!("{}/", sim.url())])
        .run();
    assert_eq!(sim.requests()[0].path, "/organizer/tickets/diff");
}

#[test]
fn a_pagination_key_with_special_characters_is_percent_encoded() {
    let sim = Simulator::start(feed(), API_KEY);
    let env = primed(&sim);
    let before = snapshot(&env);
    // Printable ASCII only (SPEC §2), every character with a meaning in a URL included.
    let key = "a b/c+d=~&limit=5%20?#x";
    let ran = env
        .sync(&sim)
        .args(&["--pagination-key", key])
        .code(78)
        .run();
    let error = error_line(&ran);
    assert!(error.contains("HTTP 400"), "{error}");
    let request = &sim.requests()[1];
    let limits: Vec<_> = request
        .query
        .iter()
        .filter(|(name, _)| name == "limit")
        .collect();
    assert_eq!(
        limits.len(),
        1,
        "the key leaked into the query: {:?}",
        request.query
    );
    assert_eq!(request.query_param("paginationKey"), Some(key));
    assert_eq!(request.path, "/organizer/tickets/diff");
    // A --pagination-key run never touches the stored key, even when it fails.
    assert_failure_recorded_from(&env, &before, Some(key), 78, "HTTP 400");
}

// ---------------------------------------------------------------------------------------------
// Keys and batches (§4.7)
// ---------------------------------------------------------------------------------------------

#[test]
fn a_pagination_key_run_neither_reads_nor_changes_the_stored_key() {
    let sim = Simulator::start(feed(), API_KEY);
    let env = primed(&sim);
    let summary = env
        .sync(&sim)
        .args(&[
            "--batch-size",
            "10",
            "--pagination-key",
            &Feed::page_key(50),
        ])
        .json();
    assert_eq!(
        sim.requests()[1].query_param("paginationKey"),
        Some(Feed::page_key(50).as_str())
    );
    assert_eq!(summary["pagination_key_before"], Feed::page_key(50));
    assert_eq!(summary["next_pagination_key"], Feed::page_key(60));
    assert_eq!(summary["key_saved"], false);
    assert_eq!(
        env.stored_key(),
        Some(Feed::page_key(20)),
        "the stored key is untouched"
    );
    let run = last_run(&env);
    assert_eq!(run["key_before"], Feed::page_key(50));
    assert_eq!(run["key_after"], Feed::page_key(60));

    // '' starts from the beginning of the feed.
    let summary = env
        .sync(&sim)
        .args(&["--batch-size", "10", "--pagination-key", ""])
        .json();
    assert_eq!(sim.requests()[2].query_param("paginationKey"), None);
    assert_eq!(summary["pagination_key_before"], Value::Null);
    assert_eq!(summary["next_pagination_key"], Feed::page_key(10));
    assert_eq!(summary["key_saved"], false);
    assert_eq!(env.stored_key(), Some(Feed::page_key(20)));

    // The human line says the key was not saved.
    env.sync(&sim)
        .args(&["--batch-size", "10", "--pagination-key", ""])
        .stdout_has(&format!("key '' -> '{}' (not saved)", Feed::page_key(10)))
        .run();
}

#[test]
fn max_batches_commits_each_batch_and_stops_once_caught_up() {
    let sim = Simulator::start(feed(), API_KEY);
    let all = sim.feed().len();
    // Three batches make the feed: two full ones and a short one.
    let size = all / 3 + 1;
    let env = Env::new();
    let batches = |max: &str| {
        env.sync(&sim)
            .args(&["--batch-size", &size.to_string(), "--max-batches", max])
    };
    let summary = batches("2").json();
    assert_eq!(summary["batches"], 2);
    assert_eq!(summary["fetched"], 2 * size);
    assert_eq!(summary["caught_up"], false);
    assert_eq!(env.stored_key(), Some(Feed::page_key(2 * size)));

    let summary = batches("10").json();
    assert_eq!(summary["batches"], 1, "stops at the short batch");
    assert_eq!(summary["fetched"], all - 2 * size);
    assert_eq!(summary["caught_up"], true);
    assert_eq!(sim.request_count(), 3);

    let keys: Vec<(Value, Value)> = runs(&env)
        .into_iter()
        .map(|run| (run["key_before"].clone(), run["key_after"].clone()))
        .collect();
    assert_eq!(
        keys,
        [
            (Value::Null, json!(Feed::page_key(size))),
            (json!(Feed::page_key(size)), json!(Feed::page_key(2 * size))),
            (json!(Feed::page_key(2 * size)), json!(Feed::page_key(all))),
        ],
        "one sync_run row per batch"
    );

    // With --pagination-key the keys chain in memory.
    let summary = batches("3").args(&["--pagination-key", ""]).json();
    assert_eq!(summary["batches"], 3);
    assert_eq!(summary["fetched"], all);
    assert_eq!(summary["next_pagination_key"], Feed::page_key(all));
    assert_eq!(summary["key_saved"], false);
    assert_eq!(runs(&env).len(), 6);
}

#[test]
fn a_failure_at_batch_k_keeps_the_batches_before_it() {
    let sim = Simulator::start(feed(), API_KEY);
    let env = Env::new();
    // The first request succeeds, the second is rejected.
    sim.push_fault(Fault::Slow(Duration::ZERO), 1);
    sim.push_fault(Fault::Status(404), 1);
    let ran = env
        .sync(&sim)
        .args(&["--batch-size", "20", "--max-batches", "3", "--json"])
        .code(78)
        .run();
    let summary = ran.json();
    assert_eq!(summary["exit_code"], 78);
    assert_eq!(env.stored_key(), Some(Feed::page_key(20)));
    let codes: Vec<Value> = runs(&env)
        .into_iter()
        .map(|run| run["exit_code"].clone())
        .collect();
    assert_eq!(codes, [json!(0), json!(78)]);
}

// ---------------------------------------------------------------------------------------------
// Output (§6)
// ---------------------------------------------------------------------------------------------

#[test]
fn the_human_summary_has_the_documented_shape() {
    let sim = Simulator::start(feed(), API_KEY);
    let env = Env::new();
    let ran = env
        .sync(&sim)
        .args(&["--batch-size", "30"])
        .stderr_empty()
        .run();
    let counts = env.rows(
        "SELECT fetched, stored, unchanged, skipped, stale, failed, contacts_created,
                contacts_updated, distributions_created, distributions_updated FROM sync_run",
    );
    let [f, s, u, sk, st, fa, cc, cu, dc, du] = &counts[0][..] else {
        unreachable!()
    };
    let expected = format!(
        "sync: {f} fetched, {s} stored, {u} unchanged, {sk} skipped, {st} stale, {fa} failed; \
         contacts +{cc} ~{cu}; distributions +{dc} ~{du}; key '' -> '{}'; caught up: no",
        Feed::page_key(30)
    );
    let line = ran
        .stdout
        .strip_suffix(" ms\n")
        .expect("one line ending in ' ms'");
    let rest = line
        .strip_prefix(&expected)
        .unwrap_or_else(|| panic!("expected\n{expected}…<N> ms\ngot\n{}", ran.stdout));
    // Behind: how far, when the batch held a dated ticket.
    let duration = match rest.strip_prefix(" (") {
        Some(lag) => {
            let (lag, duration) = lag.split_once(" behind the feed); ").expect(line);
            assert!(
                [" s", " min", " h"].iter().any(|unit| lag.ends_with(unit)),
                "{line}"
            );
            duration
        }
        None => rest.strip_prefix("; ").expect(line),
    };
    assert!(duration.parse::<u64>().is_ok(), "{}", ran.stdout);
    assert!(cc.parse::<u64>().unwrap() > 0, "contacts are on by default");
}

#[test]
fn json_has_every_documented_field_on_success_and_on_failure() {
    const FIELDS: [&str; 20] = support::SUMMARY_FIELDS;
    let sim = Simulator::start(feed(), API_KEY);
    let env = Env::new();
    let success = env.sync(&sim).json();
    sim.push_fault(Fault::Status(401), 1);
    let failure = env.sync(&sim).code(77).json();
    for (summary, code) in [(&success, 0), (&failure, 77)] {
        for field in FIELDS {
            assert!(summary.get(field).is_some(), "{field} missing: {summary}");
        }
        assert_eq!(summary["command"], "sync");
        assert_eq!(summary["dry_run"], false);
        assert_eq!(summary["exit_code"], code);
        assert!(summary["duration_ms"].is_u64());
    }
    assert_eq!(success["error"], Value::Null);
    assert!(success["fetched"].as_u64().unwrap() > 0);
    assert!(failure["error"].as_str().unwrap().contains("HTTP 401"));
    for counter in &FIELDS[2..13] {
        assert_eq!(failure[counter], 0, "{counter} of a failed run");
    }
}

#[test]
fn quiet_prints_nothing_on_success_even_after_a_retry_but_prints_failures() {
    let sim = Simulator::start(feed(), API_KEY);
    let env = Env::new();
    let quiet = |flag: &str| env.sync(&sim).args(&[flag, "--batch-size", "20"]);
    // A retry warns on stderr, but --quiet silences warnings of a successful run too.
    sim.push_fault(Fault::Status(503), 1);
    quiet("--quiet").stdout_empty().stderr_empty().run();
    assert_eq!(sim.request_count(), 2);
    quiet("-q").stdout_empty().stderr_empty().run();

    // A partial run is no success.
    sim.push_fault(Fault::MissingTicketNumber, 1);
    quiet("--quiet")
        .code(2)
        .stdout_empty()
        .stderr_has("1 ticket could not be mapped")
        .run();

    sim.push_fault(Fault::Status(403), 1);
    let ran = quiet("--quiet").code(77).stdout_empty().run();
    assert!(error_line(&ran).contains("HTTP 403"), "{}", ran.stderr);
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
}

// ---------------------------------------------------------------------------------------------
// Security (§7)
// ---------------------------------------------------------------------------------------------

#[test]
fn the_api_key_is_never_printed_logged_or_stored() {
    const SECRET: &str = "tk-Sup3rS3cr3t-7c41d9e0b2";
    const WRONG: &str = "tk-WrongS3cr3t-55aa0f13e8";
    let sim = Simulator::start(feed(), SECRET);
    let env = Env::new();
    let key_file = env.write("api.key", format!("{SECRET}\n").as_bytes(), 0o600);
    let open_key_file = env.write("open.key", SECRET.as_bytes(), 0o644);
    let sync = |extra: &[&str], code: i32| {
        env.cmd(&["sync", "--batch-size", "20", "--timeout", "2"])
            .env("TIXNGO_API_URL", sim.url())
            .env("TIXNGO_API_KEY", SECRET)
            .args(extra)
            .code(code)
    };
    let mut outputs = vec![
        sync(&["-vvv"], 0).run(),
        // RUST_LOG applies without -v; the HTTP crates stay capped at info.
        sync(&["--json"], 0)
            .env("RUST_LOG", "trace,ureq=trace,ureq_proto=trace,rustls=trace")
            .run(),
        sync(&["-vvv", "--api-key-file", key_file.to_str().unwrap()], 0)
            .env_remove("TIXNGO_API_KEY")
            .run(),
        sync(
            &["-vvv", "--api-key-file", open_key_file.to_str().unwrap()],
            78,
        )
        .run(),
        sync(&["-vvv"], 77).env("TIXNGO_API_KEY", WRONG).run(),
    ];
    for (fault, code) in [
        (Fault::Status(503), 69),
        (Fault::Truncated, 69),
        (Fault::InvalidJson, 65),
        (Fault::MissingTicketNumber, 2),
        (
            Fault::Redirect(format!("https://example.org/?key={SECRET}")),
            78,
        ),
        (Fault::Status(404), 78),
        (
            Fault::TooManyRequests {
                retry_after: Some("1".into()),
            },
            75,
        ),
    ] {
        sim.push_fault(fault, FOREVER);
        outputs.push(sync(&["-vvv"], code).run());
        sim.clear_faults();
    }
    // Trace logging did log: the check below is not vacuous.
    for ran in &outputs[..2] {
        assert!(ran.stderr.contains(" DEBUG "), "{}", ran.stderr);
    }
    for ran in &outputs {
        for secret in [SECRET, WRONG] {
            assert!(!ran.stdout.contains(secret), "stdout:\n{}", ran.stdout);
            assert!(!ran.stderr.contains(secret), "stderr:\n{}", ran.stderr);
        }
    }
    assert!(
        sim.requests()
            .iter()
            .any(|r| r.header("x-api-key") == Some(SECRET))
    );

    let errors = env.rows("SELECT coalesce(error, '') FROM sync_run");
    assert!(errors.len() > 8, "{errors:?}");
    for secret in [SECRET, WRONG] {
        assert!(errors.iter().all(|e| !e[0].contains(secret)), "{errors:?}");
        let files = env
            .sqlite_store()
            .map_or(&[][..], |_| &["", "-wal", "-shm", ".lock"]);
        for suffix in files {
            let mut name = env.store().into_os_string();
            name.push(suffix);
            if let Ok(bytes) = fs::read(&name) {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "the key is in {name:?}"
                );
            }
        }
    }
    if let Some(store) = env.sqlite_store() {
        assert_eq!(mode(&store), 0o600);
    }
}

// ---------------------------------------------------------------------------------------------
// The wire under attack: retries, keys, redirects, BOMs, names, compression, dumps
// ---------------------------------------------------------------------------------------------

/// The ten counters of a `--json` summary.
fn counters(summary: &Value) -> Vec<Value> {
    support::SUMMARY_FIELDS[3..13]
        .iter()
        .map(|field| summary[field].clone())
        .collect()
}

#[test]
fn retry_after_zero_or_in_the_past_is_a_floor_on_the_backoff_not_a_shortcut() {
    let past = "Wed, 21 Oct 2015 07:28:00 GMT".to_owned();
    thread::scope(|scope| {
        for retry_after in ["0".to_owned(), past] {
            scope.spawn(move || {
                let sim = Simulator::start(feed(), API_KEY);
                let env = primed(&sim);
                let before = snapshot(&env);
                sim.push_fault(
                    Fault::TooManyRequests {
                        retry_after: Some(retry_after.clone()),
                    },
                    FOREVER,
                );
                let ran = env
                    .sync(&sim)
                    .args(&["--timeout", "3"])
                    // The bound on the requests below follows from the 3 s.
                    .exact_timeout()
                    .code(75)
                    .stderr_has("HTTP 429 Too Many Requests from 127.0.0.1; retrying in ")
                    .stderr_has(" s (attempt 2)")
                    .run();
                // The waits are at least 0.25, 0.5, 1 and 2 s (half of each backoff step) and
                // Retry-After only adds to them: 0.25 + 0.5 + 1 = 1.75 s fits in 3 s, 3.75 s does
                // not, so at most 4 requests, whatever the server asks.
                let made = sim.request_count() - 1;
                assert!(
                    (2..=4).contains(&made),
                    "Retry-After {retry_after}: {made} requests"
                );
                let error = error_line(&ran);
                assert!(error.contains("kept answering 429"), "{error}");
                let warnings = ran.stderr.lines().filter(|line| line.contains(" WARN "));
                assert!(
                    warnings.clone().all(|line| !line.contains("deadline")),
                    "{}",
                    ran.stderr
                );
                assert_failure_recorded(&env, &before, 75, "429");
            });
        }
    });
}

#[test]
fn a_next_page_key_too_long_or_with_control_characters_is_bad_data_and_never_saved() {
    let sim = Simulator::start(feed(), API_KEY);
    let env = primed(&sim);
    for key in ["k".repeat(100_000), "pk\u{1b}[2J\u{7}".to_owned()] {
        let before = snapshot(&env);
        sim.push_fault(Fault::NextPageKey(key), 1);
        let ran = env.sync(&sim).args(&["--batch-size", "20"]).code(65).run();
        let error = error_line(&ran);
        assert!(error.contains("nextPageKey"), "{error}");
        assert!(
            !error.contains("kkkk") && !error.contains('\u{1b}'),
            "{error}"
        );
        assert_failure_recorded(&env, &before, 65, "nextPageKey");
    }
    // A key of 4 KiB of printable ASCII is a key like any other.
    let longest = "k".repeat(4096);
    sim.push_fault(Fault::NextPageKey(longest.clone()), 1);
    env.sync(&sim).args(&["--batch-size", "20"]).run();
    assert_eq!(env.stored_key(), Some(longest));
}

#[test]
fn a_bad_pagination_key_on_the_command_line_is_a_usage_error() {
    let sim = Simulator::start(feed(), API_KEY);
    let env = primed(&sim);
    let before = snapshot(&env);
    let long = "k".repeat(4097);
    for bad in [long.as_str(), "a\tb", "clé"] {
        env.cmd(&["cursor", "set", bad, "--yes"])
            .code(64)
            .stderr_has("the pagination key")
            .run();
        env.sync(&sim)
            .args(&["--pagination-key", bad])
            .code(64)
            .stderr_has("the pagination key")
            .run();
    }
    assert_untouched(&env, &before);
    assert_eq!(sim.request_count(), 1, "no request for a bad key");
}

#[test]
fn the_api_key_never_leaks_through_a_redirect_or_an_error_answer() {
    let sim = Simulator::start(feed(), API_KEY);
    let env = primed(&sim);
    let encoded = API_KEY.replace('-', "%2D");
    let cases = [
        (
            Fault::Redirect(format!(
                "https://login.example.org/{API_KEY}/{encoded}?key={API_KEY}"
            )),
            78,
            "a redirect to https://login.example.org: fix the API URL",
        ),
        (
            Fault::StatusWithBody(
                400,
                format!(r#"{{"message":"unknown key {API_KEY}\u001b[2J"}}"#),
            ),
            78,
            "(unknown key <API key>\\u{1b}[2J)",
        ),
        (
            Fault::StatusWithBody(422, format!(r#"{{"error":"{encoded}"}}"#)),
            78,
            "(<API key>)",
        ),
    ];
    for (fault, code, shown) in cases {
        sim.push_fault(fault, 1);
        let ran = env.sync(&sim).arg("--json").code(code).run();
        let error = error_line(&ran);
        assert!(error.contains(shown), "{error}");
        let recorded = last_run(&env)["error"].as_str().unwrap().to_owned();
        let status = env.cmd(&["status", "--json"]).run().stdout;
        for (what, text) in [
            ("stderr", &ran.stderr),
            ("stdout", &ran.stdout),
            ("sync_run.error", &recorded),
            ("status", &status),
        ] {
            assert!(
                !text.contains(API_KEY) && !text.contains(&encoded),
                "the key in {what}: {text}"
            );
        }
    }
}

#[test]
fn a_leading_byte_order_mark_is_skipped_in_a_response_a_file_and_stdin() {
    let sim = Simulator::start(feed(), API_KEY);
    sim.push_fault(Fault::ByteOrderMark, 1);
    let env = Env::new();
    let synced = env.sync(&sim).args(&["--batch-size", "20"]).json();
    assert_eq!(synced["fetched"], 20);
    assert_eq!(env.stored_key(), Some(Feed::page_key(20)));

    let mut body = b"\xEF\xBB\xBF".to_vec();
    body.extend_from_slice(sim.feed().page_json(None, 20).unwrap().as_bytes());
    let file = env.write("bom.json", &body, 0o600);
    for (env, replayed) in [Env::new(), Env::new()].iter().zip([true, false]) {
        let run = if replayed {
            env.cmd(&["replay", file.to_str().unwrap()])
        } else {
            env.cmd(&["replay", "-"]).stdin(body.clone())
        };
        let summary = run.json();
        assert_eq!(counters(&summary), counters(&synced));
    }
}

#[test]
fn a_host_that_does_not_resolve_is_a_configuration_error_at_once() {
    let env = Env::new();
    // RFC 6761: `.invalid` never resolves, with or without a network.
    let ran = env
        .cmd(&["sync", "--timeout", "60"])
        .env(
            "TIXNGO_API_URL",
            "https://tixngo-typo.invalid/organizer/tickets",
        )
        .env("TIXNGO_API_KEY", API_KEY)
        .code(78)
        .run();
    let error = error_line(&ran);
    assert!(
        error.contains("tixngo-typo.invalid") && error.contains("does not resolve"),
        "{error}"
    );
    assert!(error.contains("--api-url"), "{error}");
    assert!(!ran.stderr.contains("WARN"), "retried:\n{}", ran.stderr);
}

#[test]
fn a_rejected_request_names_the_options_to_check_and_which_key() {
    let sim = Simulator::start(feed(), API_KEY);
    let env = primed(&sim);
    sim.push_fault(Fault::Status(404), 1);
    let ran = env.sync(&sim).code(78).run();
    let error = error_line(&ran);
    assert!(
        error.contains("check --api-url")
            && error.contains("--batch-size")
            && error.contains("the API key (--api-key-file / TIXNGO_API_KEY)"),
        "{error}"
    );
}

#[test]
fn gzip_is_asked_for_and_decoded_and_a_bomb_is_bad_data() {
    let sim = Simulator::start(feed(), API_KEY);
    sim.push_fault(Fault::Gzip, FOREVER);
    let env = Env::new();
    let zipped = env.sync(&sim).args(&["--batch-size", "50"]).json();
    let request = sim.requests().pop().unwrap();
    assert!(
        request
            .header("accept-encoding")
            .is_some_and(|v| v.contains("gzip")),
        "{request:?}"
    );
    let plain = Simulator::start(feed(), API_KEY);
    let unzipped = Env::new().sync(&plain).args(&["--batch-size", "50"]).json();
    assert_eq!(counters(&zipped), counters(&unzipped));
    assert_eq!(zipped["next_pagination_key"], Feed::page_key(50));

    sim.clear_faults();
    let before = snapshot(&env);
    sim.push_fault(Fault::GzipBomb { bytes: 64 << 20 }, 1);
    let ran = env
        .sync(&sim)
        .args(&["--max-response-mb", "1"])
        .code(65)
        .run();
    let error = error_line(&ran);
    assert!(
        error.contains("larger than the --max-response-mb cap of 1 MiB"),
        "{error}"
    );
    assert_failure_recorded(&env, &before, 65, "--max-response-mb");
}

/// The dumps in `dir`, by kind of file, sorted.
fn dump_files(dir: &Path, extension: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

#[test]
fn dumps_are_replayable_private_pruned_and_hold_no_key() {
    let sim = Simulator::start(feed(), API_KEY);
    let env = Env::new();
    let dir = env.path("dumps");
    sim.push_fault(Fault::Status(503), 1);
    let synced = env
        .sync(&sim)
        .args(&["--batch-size", "20", "--max-batches", "3"])
        .args(&["--dump-dir", dir.to_str().unwrap(), "--dump-keep", "3"])
        .json();
    assert_eq!(synced["batches"], 3);
    assert_eq!(mode(&dir), 0o700);
    // Four answers (the 503 and three pages), three kept: the oldest, the 503, was pruned.
    let pages = dump_files(&dir, "json");
    let metas = dump_files(&dir, "meta");
    assert_eq!(
        (pages.len(), metas.len()),
        (3, 3),
        "{:?}",
        fs::read_dir(&dir).unwrap().collect::<Vec<_>>()
    );
    assert!(dump_files(&dir, "txt").is_empty());
    let first_meta = fs::read_to_string(&metas[0]).unwrap();
    assert_eq!(first_meta, "status: 200\nquery: limit=20\n");
    let last_meta = fs::read_to_string(&metas[2]).unwrap();
    assert!(
        last_meta.contains(&format!("paginationKey={}", Feed::page_key(40))),
        "{last_meta}"
    );
    for file in pages.iter().chain(&metas) {
        assert_eq!(mode(file), 0o600, "{file:?}");
        let bytes = fs::read(file).unwrap();
        assert!(
            !bytes
                .windows(API_KEY.len())
                .any(|w| w == API_KEY.as_bytes())
        );
    }
    // A dump replays to what the sync stored from it.
    let single = Env::new();
    let one = single.sync(&sim).args(&["--batch-size", "20"]).json();
    let replayed = Env::new()
        .cmd(&["replay", pages[0].to_str().unwrap()])
        .json();
    assert_eq!(counters(&replayed), counters(&one));

    // An error answer is dumped with its status, and never replays as a page.
    let errors = env.path("errors");
    sim.push_fault(Fault::Status(503), FOREVER);
    // Time for a first answer to be dumped once the store is open.
    env.sync(&sim)
        .args(&["--timeout", "1"])
        .args(&["--dump-dir", errors.to_str().unwrap()])
        .code(69)
        .run();
    let answers = dump_files(&errors, "txt");
    assert!(!answers.is_empty());
    let meta = fs::read_to_string(answers[0].with_extension("meta")).unwrap();
    assert!(meta.starts_with("status: 503\n"), "{meta}");
    Env::new()
        .cmd(&["replay", answers[0].to_str().unwrap()])
        .code(65)
        .run();
}

#[test]
fn a_dump_directory_that_cannot_be_written_is_a_warning_not_a_lost_batch() {
    let sim = Simulator::start(feed(), API_KEY);
    let env = Env::new();
    let blocker = env.write("not-a-directory", b"", 0o600);
    env.sync(&sim)
        .args(&["--batch-size", "20"])
        .env("TIXNGO_DUMP_DIR", blocker.join("dumps"))
        .stderr_has("could not be dumped")
        .run();
    assert_eq!(env.stored_key(), Some(Feed::page_key(20)));
}

// ---------------------------------------------------------------------------------------------
// TLS with a private CA, and proxies
// ---------------------------------------------------------------------------------------------

/// The private CA of `tests/fixtures/tls` (its key was destroyed once the server's certificate,
/// for `api.tixngo.test`, `localhost` and 127.0.0.1, valid until 2126, was signed).
const TEST_CA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/ca.pem");

/// Reads a request or CONNECT head (up to the blank line) from `stream`.
fn read_head(stream: &mut impl std::io::Read) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    Ok(head)
}

/// A TLS server in front of `sim`: it presents the private CA's certificate and passes each
/// request on to the simulator, and its answer back. Returns its port on 127.0.0.1.
fn tls_front(sim: &Simulator) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let fixture = |name: &str| format!("{}/tests/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR"));
    let chain = CertificateDer::pem_file_iter(fixture("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(fixture("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let config = std::sync::Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let backend = sim.port();
    thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = std::sync::Arc::clone(&config);
            thread::spawn(move || {
                let connection = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(connection, tcp);
                // A client that refuses the certificate ends here.
                let Ok(head) = read_head(&mut tls) else {
                    return;
                };
                let mut sim = std::net::TcpStream::connect(("127.0.0.1", backend)).unwrap();
                std::io::Write::write_all(&mut sim, &head).unwrap();
                let _ = std::io::copy(&mut sim, &mut tls);
                tls.conn.send_close_notify();
                let _ = std::io::Write::flush(&mut tls);
            });
        }
    });
    port
}

/// A forward proxy on 127.0.0.1 that records each CONNECT's target and tunnels every one to
/// `backend` on 127.0.0.1, whatever it names: nothing leaves this host. Returns its port and
/// the targets.
fn connect_proxy(backend: u16) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let targets = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&targets);
    thread::spawn(move || {
        for mut client in listener.incoming().flatten() {
            let Ok(head) = read_head(&mut client) else {
                continue;
            };
            let head = String::from_utf8_lossy(&head).into_owned();
            let target = head.split(' ').nth(1).unwrap_or_default().to_owned();
            seen.lock()
                .unwrap()
                .push(format!("{} {target}", head.split(' ').next().unwrap()));
            let mut server = std::net::TcpStream::connect(("127.0.0.1", backend)).unwrap();
            std::io::Write::write_all(&mut client, b"HTTP/1.1 200 Connection established\r\n\r\n")
                .unwrap();
            let (mut upstream, mut downstream) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            thread::spawn(move || {
                let _ = std::io::copy(&mut upstream, &mut downstream);
                let _ = downstream.shutdown(std::net::Shutdown::Write);
            });
            thread::spawn(move || {
                let _ = std::io::copy(&mut server, &mut client);
                let _ = client.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (port, targets)
}

#[test]
fn a_private_ca_is_refused_unless_given_with_ca_file() {
    let sim = Simulator::start(feed(), API_KEY);
    let port = tls_front(&sim);
    let url = format!("https://localhost:{port}/organizer/tickets");
    let env = Env::new();
    let ran = env
        .sync(&sim)
        .env("TIXNGO_API_URL", &url)
        .args(&["--timeout", "20"])
        .code(78)
        .run();
    let error = error_line(&ran);
    assert!(
        error.contains("certificate of localhost is not trusted") && error.contains("--ca-file"),
        "{error}"
    );
    assert_eq!(sim.request_count(), 0);

    env.sync(&sim)
        .env("TIXNGO_API_URL", &url)
        .args(&["--batch-size", "20", "--ca-file", TEST_CA])
        .run();
    assert_eq!(env.stored_key(), Some(Feed::page_key(20)));
    assert_eq!(sim.request_count(), 1);

    // The platform's CA bundle is trusted as well as the built-in roots: the private CA in the
    // bundle (where an operator's `update-ca-certificates` puts it) is enough.
    env.sync(&sim)
        .env("TIXNGO_API_URL", &url)
        .env("SSL_CERT_FILE", TEST_CA)
        .args(&["--batch-size", "20"])
        .run();
    assert_eq!(env.stored_key(), Some(Feed::page_key(40)));
    assert_eq!(sim.request_count(), 2);

    let empty = env.write("empty.pem", b"", 0o644);
    let garbage = env.write(
        "garbage.pem",
        b"-----BEGIN CERTIFICATE-----\nnot base64\n",
        0o644,
    );
    let key_only = format!(
        "{}/tests/fixtures/tls/server.key",
        env!("CARGO_MANIFEST_DIR")
    );
    let missing = env.path("missing.pem");
    for bad in [&empty, &garbage, Path::new(&key_only), &missing] {
        env.sync(&sim)
            .env("TIXNGO_API_URL", &url)
            .env("TIXNGO_CA_FILE", bad)
            .code(78)
            .stderr_has("--ca-file")
            .run();
    }
    assert_eq!(
        sim.request_count(),
        2,
        "no request with an unusable --ca-file"
    );
}

#[test]
fn https_proxy_is_used_as_curl_uses_it_and_no_proxy_bypasses_it() {
    let sim = Simulator::start(feed(), API_KEY);
    let front = tls_front(&sim);
    let (proxy, targets) = connect_proxy(front);
    // The proxy resolves the name (here: it tunnels to the TLS front whatever the name).
    let url = format!("https://api.tixngo.test:{front}/organizer/tickets");
    let env = Env::new();
    let through_proxy = || {
        env.sync(&sim)
            .env("TIXNGO_API_URL", &url)
            .env("HTTPS_PROXY", format!("http://127.0.0.1:{proxy}"))
            .args(&["--batch-size", "20", "--ca-file", TEST_CA])
    };
    through_proxy().run();
    assert_eq!(env.stored_key(), Some(Feed::page_key(20)));
    assert_eq!(
        *targets.lock().unwrap(),
        [format!("CONNECT api.tixngo.test:{front}")]
    );

    // NO_PROXY names the domain: the host is reached directly, and `.test` never resolves.
    for no_proxy in [
        "tixngo.test",
        ".tixngo.test",
        "example.org, api.tixngo.test",
        "*",
    ] {
        let ran = through_proxy().env("NO_PROXY", no_proxy).code(78).run();
        assert!(
            error_line(&ran).contains("api.tixngo.test does not resolve"),
            "{no_proxy}"
        );
    }
    assert_eq!(
        targets.lock().unwrap().len(),
        1,
        "NO_PROXY was not honoured"
    );
    through_proxy()
        .env("NO_PROXY", "other.tixngo.test,tixngo.testing")
        .run();
    assert_eq!(targets.lock().unwrap().len(), 2);

    through_proxy()
        .env("HTTPS_PROXY", "ftp://127.0.0.1:1")
        .code(78)
        .stderr_has("HTTPS_PROXY is not a usable proxy URL")
        .run();
}
