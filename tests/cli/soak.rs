//! Soak test through the real binary (SPEC §3, §4.3, §4.6): thousands of consecutive one-batch
//! `sync` runs against the simulator, with a random fault injected before most runs and some runs
//! killed (SIGKILL) at a random moment, until the feed is caught up; then the store must equal the
//! store of one fault-free run over the same feed (same tickets, history, contacts, distribution
//! lines, sync errors), with `PRAGMA integrity_check` ok (on SQLite). Along the way every run must exit with a
//! code its faults allow, and a run that failed must leave the key and the data as they were.
//!
//! The small variant runs in the normal suite; the big one is ignored by default:
//!
//! ```sh
//! SOAK_RUNS=3000 cargo test --release --test cli soak:: -- --ignored --nocapture
//! ```
//!
//! `SOAK_SEED` changes the feed, the faults and the kills (the seed is printed with the figures,
//! so a failure can be replayed); `SOAK_BATCH` (default 50) and `SOAK_TIMEOUT` (seconds, default
//! 2) tune the runs.
//!
//! About [`Fault::MissingTicketNumber`]: the simulator then serves the page with its first ticket
//! stripped of `taxNumber`. That state really never reaches the store under its number: the run
//! records the payload (without a number) in `sync_error`, exits 2 and moves on. So the reference
//! is the fault-free run over the feed *as it was served*: the same events, those served without
//! a number stripped the same way. The test checks that each such payload is kept byte for byte,
//! then runs `replay --errors` on both stores (it fails again on both, a ticket without a number
//! cannot be mapped) before comparing them.

use crate::support;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

use support::{API_KEY, Env, Fault, Feed, Simulator, dump};

/// The normal suite's variant: small enough for a debug build, large enough to mix every fault
/// with kills, commits and failures.
#[test]
fn soak_a_few_dozen_runs_with_random_faults() {
    soak(Settings::from_env(60, 0x50a6_0001));
}

/// The real soak: `SOAK_RUNS` (default 2000) consecutive runs.
#[test]
#[ignore = "minutes long: SOAK_RUNS=3000 cargo test --release --test cli soak:: -- --ignored --nocapture"]
fn soak_thousands_of_runs_with_random_faults() {
    let runs = env_number("SOAK_RUNS").unwrap_or(2000) as usize;
    soak(Settings::from_env(runs, 0x50a6_2026));
}

// -------------------------------------------------------------------------------------------------
// Settings and randomness
// -------------------------------------------------------------------------------------------------

struct Settings {
    runs: usize,
    seed: u64,
    batch: usize,
    timeout_secs: u64,
    /// Share of the runs that are killed, in percent.
    kill_percent: u64,
}

impl Settings {
    fn from_env(runs: usize, default_seed: u64) -> Settings {
        Settings {
            runs,
            seed: env_number("SOAK_SEED").unwrap_or(default_seed),
            batch: env_number("SOAK_BATCH").unwrap_or(50) as usize,
            timeout_secs: env_number("SOAK_TIMEOUT").unwrap_or(2),
            kill_percent: 8,
        }
    }

    /// Tickets in the feed: about 3.5 events each, and about 60 % of the runs commit a batch,
    /// so the faulty runs consume the feed in about 90 % of the runs (the last ones exercise the
    /// faults on the empty page at the end; whatever is left is caught up fault-free).
    fn tickets(&self) -> usize {
        (self.runs * self.batch * 2 / 13).max(30)
    }
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    let value = value.trim();
    match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => value.parse().ok(),
    }
}

/// SplitMix64: the same faults and kills for a seed on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

// -------------------------------------------------------------------------------------------------
// Faults and the exit codes they allow
// -------------------------------------------------------------------------------------------------

/// The response cap of every soak run (`--max-response-mb`).
const CAP_MIB: usize = 1;

/// Every variant of [`Fault`], in the order the first runs take them.
const VARIANTS: [&str; 13] = [
    "TooManyRequests",
    "Status",
    "Redirect",
    "Slow",
    "Stall",
    "Truncated",
    "BrokenChunked",
    "Reset",
    "InvalidJson",
    "InvalidUtf8",
    "NotADiffDocument",
    "Oversized",
    "MissingTicketNumber",
];

/// Weights of the variants when drawn at random, in the order of [`VARIANTS`].
const WEIGHTS: [u64; 13] = [8, 22, 4, 6, 3, 8, 6, 8, 6, 5, 5, 6, 13];

const STATUSES: [u16; 19] = [
    500, 502, 503, 504, 408, 429, 501, 505, 520, 400, 404, 409, 410, 422, 401, 403, 200, 302, 307,
];

fn fault_of_variant(variant: usize, rng: &mut Rng, timeout: Duration) -> Fault {
    match VARIANTS[variant] {
        "TooManyRequests" => Fault::TooManyRequests {
            retry_after: rng
                .pick(&[
                    None,
                    Some("0"),
                    Some("1"),
                    Some("30"),
                    Some("Thu, 01 Jan 1970 00:00:00 GMT"),
                ])
                .map(str::to_owned),
        },
        "Status" => Fault::Status(*rng.pick(&STATUSES)),
        "Redirect" => Fault::Redirect("https://elsewhere.example.org/organizer/tickets".into()),
        "Slow" => Fault::Slow(*rng.pick(&[
            Duration::ZERO,
            Duration::from_millis(150),
            Duration::from_millis(600),
            timeout + Duration::from_millis(500),
        ])),
        "Stall" => Fault::Stall,
        "Truncated" => Fault::Truncated,
        "BrokenChunked" => Fault::BrokenChunked,
        "Reset" => Fault::Reset,
        "InvalidJson" => Fault::InvalidJson,
        "InvalidUtf8" => Fault::InvalidUtf8,
        "NotADiffDocument" => Fault::NotADiffDocument,
        "Oversized" => Fault::Oversized {
            bytes: if rng.percent(70) {
                CAP_MIB * 1024 * 1024 * 3 / 2
            } else {
                200 * 1024
            },
        },
        "MissingTicketNumber" => Fault::MissingTicketNumber,
        other => unreachable!("{other}"),
    }
}

fn random_fault(rng: &mut Rng, timeout: Duration) -> Fault {
    let total: u64 = WEIGHTS.iter().sum();
    let mut draw = rng.below(total);
    let variant = WEIGHTS
        .iter()
        .position(|&w| {
            if draw < w {
                true
            } else {
                draw -= w;
                false
            }
        })
        .unwrap();
    fault_of_variant(variant, rng, timeout)
}

/// A short name for the figures: the variant, with its parameter where it changes the outcome.
fn label(fault: &Fault) -> String {
    match fault {
        Fault::TooManyRequests { retry_after } => match retry_after {
            None => "TooManyRequests".into(),
            Some(after) if after.len() > 3 => "TooManyRequests(Retry-After: past date)".into(),
            Some(after) => format!("TooManyRequests(Retry-After: {after})"),
        },
        Fault::Status(status) => format!("Status({status})"),
        Fault::Redirect(_) => "Redirect".into(),
        Fault::Slow(delay) => format!("Slow({} ms)", delay.as_millis()),
        Fault::Oversized { bytes } if *bytes > CAP_MIB * 1024 * 1024 => {
            "Oversized(over the cap)".into()
        }
        Fault::Oversized { .. } => "Oversized(under the cap)".into(),
        other => format!("{other:?}"),
    }
}

/// What one faulty answer does to a run (SPEC §3, §4.2 and `src/tixngo/client.rs`).
enum Effect {
    /// Retried while the deadline allows; the run fails with this code when it does not.
    Transient(i32),
    /// Never retried: the run fails with this code.
    Final(i32),
    /// The run commits the page, exiting with this code.
    Commits(i32),
    /// Answered normally after a delay: commits (0), or times out and is retried (69).
    Delayed,
}

fn effect(fault: &Fault) -> Effect {
    match fault {
        Fault::TooManyRequests { .. } | Fault::Status(429) => Effect::Transient(75),
        Fault::Status(408 | 500 | 502 | 503 | 504) => Effect::Transient(69),
        Fault::Status(200..=299) => Effect::Final(65), // {"message":"OK"}: no ticket list
        Fault::Status(300..=399) | Fault::Redirect(_) => Effect::Final(78),
        Fault::Status(401 | 403) => Effect::Final(77),
        Fault::Status(400..=499) => Effect::Final(78),
        Fault::Status(_) => Effect::Final(69),
        Fault::Slow(_) => Effect::Delayed,
        Fault::Stall | Fault::Truncated | Fault::BrokenChunked | Fault::Reset => {
            Effect::Transient(69)
        }
        Fault::InvalidJson | Fault::InvalidUtf8 | Fault::NotADiffDocument => Effect::Final(65),
        Fault::Oversized { bytes } if *bytes > CAP_MIB * 1024 * 1024 => Effect::Final(65),
        Fault::Oversized { .. } => Effect::Commits(0),
        Fault::MissingTicketNumber => Effect::Commits(2),
        Fault::ByteOrderMark | Fault::Gzip => Effect::Commits(0),
        Fault::NextPageKey(key)
            if key.len() > 4096 || !key.bytes().all(|b| (b' '..=b'~').contains(&b)) =>
        {
            Effect::Final(65)
        }
        Fault::NextPageKey(_) => Effect::Commits(0),
        Fault::StatusWithBody(status, _) => effect(&Fault::Status(*status)),
        Fault::GzipBomb { bytes } if *bytes > CAP_MIB * 1024 * 1024 => Effect::Final(65),
        Fault::GzipBomb { .. } => Effect::Commits(0),
    }
}

/// The exit codes a run may end with when `faults` answer its first requests in order and the
/// feed answers normally after them; `empty_page` when the run's page holds no ticket.
fn allowed_codes(faults: &[Fault], empty_page: bool) -> Vec<i32> {
    let mut codes = Vec::new();
    for fault in faults {
        match effect(fault) {
            Effect::Transient(code) => codes.push(code),
            Effect::Final(code) => {
                codes.push(code);
                return codes;
            }
            Effect::Commits(code) => {
                // A page without tickets has no first ticket to strip.
                codes.push(if empty_page { 0 } else { code });
                return codes;
            }
            Effect::Delayed => codes.extend([0, 69]),
        }
    }
    codes.push(0);
    codes
}

// -------------------------------------------------------------------------------------------------
// The store, read between runs
// -------------------------------------------------------------------------------------------------

/// The stored key and the row counts of the data tables: what a failed run must leave as is.
#[derive(Clone, Debug, PartialEq)]
struct Snapshot {
    key: Option<String>,
    counts: Vec<i64>,
}

fn snapshot(env: &Env) -> Snapshot {
    if !env.store_exists() {
        return Snapshot {
            key: None,
            counts: vec![0; 5],
        };
    }
    let key = first(env, "SELECT pagination_key FROM sync_state");
    let counts = [
        "ticket",
        "ticket_history",
        "contact",
        "distribution",
        "sync_error",
    ]
    .iter()
    .map(|table| env.int(&format!("SELECT count(*) FROM {table}")))
    .collect();
    Snapshot { key, counts }
}

/// The first value of a query's first row: `None` without a row or for NULL.
fn first(env: &Env, sql: &str) -> Option<String> {
    let value = env.rows(sql).into_iter().next()?.remove(0);
    (value != "NULL").then_some(value)
}

fn last_run_exit_code(env: &Env) -> Option<i64> {
    first(
        env,
        "SELECT exit_code FROM sync_run ORDER BY id DESC LIMIT 1",
    )
    .map(|code| code.parse().unwrap())
}

/// The feed position a key addresses (`pk1.<hex offset>.<checksum>`; none: the start).
fn offset_of(key: Option<&str>) -> usize {
    match key {
        None | Some("") => 0,
        Some(key) => {
            let hex = key.split('.').nth(1).expect("a simulator key");
            let offset = usize::from_str_radix(hex, 16).expect("a hex offset");
            assert_eq!(Feed::page_key(offset), key, "a key the simulator issued");
            offset
        }
    }
}

/// Both stores hold the same data; on a difference, shows the first rows found in one only.
fn assert_same_data(soaked: &Env, reference: &Env) -> usize {
    let (a, b) = (dump::canonical(soaked), dump::canonical(reference));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the same tables"
    );
    let mut report = String::new();
    let mut rows = 0;
    for (table, rows_a) in &a {
        let rows_b = &b[table];
        rows += rows_a.len();
        if rows_a == rows_b {
            continue;
        }
        // Both are sorted: a merge walk finds the rows of one that the other lacks.
        let only = |x: &[Vec<String>], y: &[Vec<String>]| -> Vec<String> {
            let (mut i, mut j, mut out) = (0, 0, Vec::new());
            while i < x.len() && out.len() < 5 {
                match y.get(j).map(|other| x[i].cmp(other)) {
                    Some(std::cmp::Ordering::Equal) => (i, j) = (i + 1, j + 1),
                    Some(std::cmp::Ordering::Greater) => j += 1,
                    _ => {
                        out.push(x[i].join(" | "));
                        i += 1;
                    }
                }
            }
            out
        };
        report.push_str(&format!(
            "\n{table}: {} rows after the soak, {} in the reference\n  only after the soak: {:#?}\n  only in the reference: {:#?}",
            rows_a.len(),
            rows_b.len(),
            only(rows_a, rows_b),
            only(rows_b, rows_a),
        ));
    }
    assert!(
        report.is_empty(),
        "the soaked store differs from the reference:{report}"
    );
    rows
}

// -------------------------------------------------------------------------------------------------
// Runs of the binary
// -------------------------------------------------------------------------------------------------

const BIN: &str = env!("CARGO_BIN_EXE_tixngo-feedback");

/// The binary against `env`'s store and `sim`, with a clean environment.
fn command(env: &Env, sim: &Simulator, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .envs(env.store_env())
        .env("TIXNGO_API_URL", sim.url())
        .env("TIXNGO_API_KEY", API_KEY)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// How a run ended.
enum Ending {
    Exited {
        code: i32,
        stdout: String,
        stderr: String,
    },
    Killed,
}

/// Runs the binary; with `kill_after`, sends SIGKILL after that delay (the run may be over by
/// then).
fn run(mut command: Command, kill_after: Option<Duration>) -> Ending {
    let mut child = command.spawn().expect("the binary starts");
    if let Some(delay) = kill_after {
        sleep(delay);
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("the binary ends");
    match output.status.code() {
        Some(code) => Ending::Exited {
            code,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        },
        None => {
            assert_eq!(
                output.status.signal(),
                Some(9),
                "only our SIGKILL ends a run"
            );
            Ending::Killed
        }
    }
}

fn summary(stdout: &str) -> Value {
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// A run that must succeed: its summary.
fn run_ok(command: Command, codes: &[i32]) -> Value {
    match run(command, None) {
        Ending::Exited {
            code,
            stdout,
            stderr,
        } => {
            assert!(
                codes.contains(&code),
                "exit {code}, expected {codes:?}\n{stderr}"
            );
            summary(&stdout)
        }
        Ending::Killed => unreachable!(),
    }
}

// -------------------------------------------------------------------------------------------------
// The soak
// -------------------------------------------------------------------------------------------------

#[derive(Default)]
struct Figures {
    runs: usize,
    committed: usize,
    failed: usize,
    kills: usize,
    killed_after_commit: usize,
    kills_too_late: usize,
    without_fault: usize,
    with_several_faults: usize,
    faults: BTreeMap<String, usize>,
    codes: BTreeMap<i32, usize>,
}

fn soak(settings: Settings) {
    let started = Instant::now();
    let timeout = Duration::from_secs(settings.timeout_secs);
    let feed = Feed::generate(settings.seed, settings.tickets());
    let events = feed.len();
    let sim = Simulator::start(feed, API_KEY);
    let env = Env::new();
    let batch = settings.batch.to_string();
    let timeout_arg = settings.timeout_secs.to_string();
    let cap = CAP_MIB.to_string();
    let sync_args = [
        "sync",
        "--json",
        "--batch-size",
        &batch,
        "--timeout",
        &timeout_arg,
        "--max-response-mb",
        &cap,
    ];
    let mut rng = Rng(settings.seed ^ 0x736f_616b);
    let mut figures = Figures::default();
    // How long an undisturbed run takes, to kill runs anywhere in their life.
    let mut typical = Duration::from_millis(100);

    for number in 0..settings.runs {
        let before = snapshot(&env);
        let offset = offset_of(before.key.as_deref());
        let remaining = events.saturating_sub(offset);
        let next_key = Feed::page_key((offset + settings.batch).min(events));

        // The faults of this run: every variant once first, then a random mix.
        let mut faults = Vec::new();
        if number < VARIANTS.len() {
            faults.push(fault_of_variant(number, &mut rng, timeout));
        } else {
            let draw = rng.below(100);
            let count = match draw {
                0..20 => 0,
                20..85 => 1,
                _ => 2 + rng.below(2) as usize,
            };
            for _ in 0..count {
                faults.push(random_fault(&mut rng, timeout));
            }
        }
        match faults.len() {
            0 => figures.without_fault += 1,
            1 => {}
            _ => figures.with_several_faults += 1,
        }
        for fault in &faults {
            *figures.faults.entry(label(fault)).or_default() += 1;
            sim.push_fault(fault.clone(), 1);
        }
        let allowed = allowed_codes(&faults, remaining == 0);
        // Anywhere in the run's life, or (half of the kills) around its commit, near its end.
        let kill_after = rng.percent(settings.kill_percent).then(|| {
            let typical = typical.as_micros() as u64;
            let micros = if rng.percent(50) {
                rng.below(typical * 3 / 2 + 1)
            } else {
                typical * 7 / 10 + rng.below(typical * 4 / 10 + 1)
            };
            Duration::from_micros(micros)
        });

        let run_started = Instant::now();
        let ending = run(command(&env, &sim, &sync_args), kill_after);
        let took = run_started.elapsed();
        sim.clear_faults();
        figures.runs += 1;
        let after = snapshot(&env);
        let context = || {
            format!(
                "run {number} (seed {:#x}) with faults {faults:?}, kill after {kill_after:?}, key {:?}",
                settings.seed, before.key
            )
        };

        match ending {
            Ending::Killed => {
                figures.kills += 1;
                // All of the batch or none of it: the key and the data move together.
                if after.key == before.key {
                    assert_eq!(
                        after,
                        before,
                        "a killed run left part of a batch: {}",
                        context()
                    );
                } else {
                    assert_eq!(
                        after.key.as_deref(),
                        Some(next_key.as_str()),
                        "{}",
                        context()
                    );
                    figures.killed_after_commit += 1;
                    figures.committed += 1;
                }
            }
            Ending::Exited {
                code,
                stdout,
                stderr,
            } => {
                if kill_after.is_some() {
                    figures.kills_too_late += 1;
                }
                *figures.codes.entry(code).or_default() += 1;
                assert!(
                    allowed.contains(&code),
                    "exit {code}, allowed {allowed:?}: {}\n{stderr}",
                    context()
                );
                assert!(
                    !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
                    "{}\n{stderr}",
                    context()
                );
                let json = summary(&stdout);
                assert_eq!(json["exit_code"], code, "{}", context());
                if code == 0 || code == 2 {
                    figures.committed += 1;
                    assert_eq!(
                        after.key.as_deref(),
                        Some(next_key.as_str()),
                        "{}",
                        context()
                    );
                    assert_eq!(
                        json["caught_up"],
                        remaining < settings.batch,
                        "{}",
                        context()
                    );
                    if faults.is_empty() && kill_after.is_none() {
                        typical = (typical * 3 + took) / 4;
                    }
                } else {
                    figures.failed += 1;
                    assert_eq!(
                        after,
                        before,
                        "a failed run changed the store: {}",
                        context()
                    );
                    assert_eq!(
                        last_run_exit_code(&env),
                        Some(i64::from(code)),
                        "a failed run records itself in sync_run: {}",
                        context()
                    );
                    assert!(
                        json["error"].as_str().is_some_and(|e| !e.is_empty()),
                        "{}",
                        context()
                    );
                }
            }
        }
    }

    // Caught up, without faults.
    let final_sync = [
        "sync",
        "--json",
        "--batch-size",
        &batch,
        "--max-batches",
        "1000000",
        "--timeout",
        "3600",
    ];
    let json = run_ok(command(&env, &sim, &final_sync), &[0, 2]);
    assert_eq!(json["caught_up"], true);
    let catch_up_batches = json["batches"].as_u64().unwrap();
    assert_eq!(
        snapshot(&env).key.as_deref(),
        Some(Feed::page_key(events).as_str())
    );

    // The feed as it was served: the pages whose first ticket went out without its number.
    let mut served: Vec<Value> = sim.feed().events().to_vec();
    let stripped: Vec<(Option<String>, String)> = env
        .rows(
            "SELECT r.key_before, e.payload FROM sync_error e JOIN sync_run r ON r.id = e.run_id
             WHERE e.ticket_number IS NULL ORDER BY e.id",
        )
        .into_iter()
        .map(|row| {
            let [key, payload] = <[String; 2]>::try_from(row).unwrap();
            ((key != "NULL").then_some(key), payload)
        })
        .collect();
    for (key, payload) in &stripped {
        let event = &mut served[offset_of(key.as_deref())];
        event.as_object_mut().unwrap().remove("taxNumber");
        assert_eq!(
            &event.to_string(),
            payload,
            "the ticket served without a number is kept byte for byte in sync_error"
        );
    }
    let missing_number_codes = figures
        .faults
        .get("MissingTicketNumber")
        .copied()
        .unwrap_or(0);

    // The reference: one fault-free run over the same events.
    let reference_sim = Simulator::start(Feed::from_events(served), API_KEY);
    let reference = Env::new();
    let partial = if stripped.is_empty() { 0 } else { 2 };
    let json = run_ok(
        command(
            &reference,
            &reference_sim,
            &[
                "sync",
                "--json",
                "--batch-size",
                "1000",
                "--max-batches",
                "1000000",
                "--timeout",
                "3600",
            ],
        ),
        &[partial],
    );
    assert_eq!(json["caught_up"], true);
    assert_eq!(json["fetched"].as_u64(), Some(events as u64));

    // Nothing a rerun of the errors could still bring in: both fail the same way.
    for (store, sim) in [(&env, &sim), (&reference, &reference_sim)] {
        let json = run_ok(
            command(store, sim, &["replay", "--errors", "--json"]),
            &[partial],
        );
        assert_eq!(json["failed"].as_u64(), Some(stripped.len() as u64));
    }

    let rows = assert_same_data(&env, &reference);
    for store in [&env, &reference] {
        if let Some(file) = store.sqlite_store() {
            support::assert_sound(&store.db(), &file);
        }
    }
    report(
        &settings,
        &figures,
        events,
        catch_up_batches,
        stripped.len(),
        missing_number_codes,
        rows,
        &env,
        started.elapsed(),
    );
    assert!(
        figures.committed > 0 && figures.failed > 0,
        "a soak that mixes both"
    );
    if settings.runs >= VARIANTS.len() {
        for variant in VARIANTS {
            assert!(
                figures
                    .faults
                    .keys()
                    .any(|label| label.starts_with(variant)),
                "{variant} never injected"
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    settings: &Settings,
    figures: &Figures,
    events: usize,
    catch_up_batches: u64,
    stripped: usize,
    missing_number_faults: usize,
    rows: usize,
    env: &Env,
    wall: Duration,
) {
    let count = |table: &str| env.int(&format!("SELECT count(*) FROM {table}"));
    let faults: usize = figures.faults.values().sum();
    eprintln!(
        "soak: seed {:#x}, {} runs, batch {}, --timeout {} s",
        settings.seed, settings.runs, settings.batch, settings.timeout_secs
    );
    eprintln!(
        "  feed: {} tickets, {events} events; {catch_up_batches} batches left for the fault-free catch-up",
        settings.tickets()
    );
    eprintln!(
        "  runs: {} ({} committed a batch, {} failed cleanly, {} killed with SIGKILL: {} after their commit, {} before; {} kills came after the run had ended)",
        figures.runs,
        figures.committed,
        figures.failed,
        figures.kills,
        figures.killed_after_commit,
        figures.kills - figures.killed_after_commit,
        figures.kills_too_late,
    );
    eprintln!(
        "  faults tried: {faults} ({} runs without a fault, {} with two or three queued)",
        figures.without_fault, figures.with_several_faults
    );
    for (label, n) in &figures.faults {
        eprintln!("    {label:<40} {n:>6}");
    }
    let codes: Vec<String> = figures
        .codes
        .iter()
        .map(|(code, n)| format!("{code}: {n}"))
        .collect();
    eprintln!("  exit codes seen: {}", codes.join(", "));
    eprintln!(
        "  store: {} tickets, {} history rows, {} contacts, {} distribution lines, {} sync errors ({stripped} pages served with a ticket without taxNumber, of {missing_number_faults} such faults injected)",
        count("ticket"),
        count("ticket_history"),
        count("contact"),
        count("distribution"),
        count("sync_error"),
    );
    eprintln!(
        "  equal to the fault-free reference: {rows} rows compared, data lost: 0; integrity_check ok"
    );
    eprintln!("  wall time: {:.1} s", wall.as_secs_f64());
}
