//! Keeping up with the feed (SPEC §4.7, §6): `--drain`, the deadline between batches, and the lag
//! in the summary, `status` and the metrics, through the real binary against the simulator.

use crate::support;

use std::fs;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{API_KEY, Env, Fault, Feed, Simulator};

/// A fault on every request from now on.
const FOREVER: usize = usize::MAX;

/// A small generated organizer (about 140 events): seven batches of 20.
fn feed() -> Feed {
    Feed::generate(5, 40)
}

fn batches_for(sim: &Simulator, size: usize) -> usize {
    sim.feed().len().div_ceil(size)
}

#[test]
fn drain_fetches_batch_after_batch_until_caught_up() {
    let sim = Simulator::start(feed(), API_KEY);
    let env = Env::new();
    let summary = env
        .sync(&sim)
        .args(&["--batch-size", "20", "--drain"])
        .json();
    assert_eq!(summary["exit_code"], 0);
    assert_eq!(summary["batches"], batches_for(&sim, 20));
    assert_eq!(summary["fetched"], sim.feed().len());
    assert_eq!(summary["caught_up"], true);
    assert_eq!(env.stored_key(), Some(Feed::page_key(sim.feed().len())));
    assert_eq!(
        env.int("SELECT count(*) FROM sync_run"),
        batches_for(&sim, 20) as i64,
        "each batch committed on its own"
    );
}

#[test]
fn drain_is_bounded_by_max_batches_and_read_from_tixngo_drain() {
    let sim = Simulator::start(feed(), API_KEY);
    let env = Env::new();
    let summary = env
        .sync(&sim)
        .args(&["--batch-size", "20", "--drain", "--max-batches", "2"])
        .json();
    assert_eq!(summary["batches"], 2);
    assert_eq!(summary["caught_up"], false);

    let summary = env
        .sync(&sim)
        .env("TIXNGO_DRAIN", "on")
        .args(&["--batch-size", "20"])
        .json();
    assert_eq!(summary["caught_up"], true);
    assert_eq!(summary["batches"], batches_for(&sim, 20) - 2);

    let summary = env
        .sync(&sim)
        .env("TIXNGO_DRAIN", "off")
        .args(&["--batch-size", "20", "--pagination-key", ""])
        .json();
    assert_eq!(summary["batches"], 1, "off: the one batch of the default");

    env.sync(&sim)
        .env("TIXNGO_DRAIN", "sometimes")
        .code(64)
        .stderr_has("TIXNGO_DRAIN")
        .run();
}

/// Every answer takes 700 ms and the deadline is 2 s away: after the first batch, twice its time
/// no longer fits, so the run stops there without starting a fetch it could not finish.
#[test]
fn drain_starts_no_batch_the_deadline_leaves_no_time_for() {
    let sim = Simulator::start(feed(), API_KEY);
    sim.push_fault(Fault::Slow(Duration::from_millis(700)), FOREVER);
    let env = Env::new();
    let summary = env
        .sync(&sim)
        .args(&["--batch-size", "20", "--drain", "--timeout", "2"])
        // What fits follows from the 2 s: no slack for the store's login.
        .exact_timeout()
        .json();
    assert_eq!(summary["exit_code"], 0);
    assert_eq!(summary["batches"], 1);
    assert_eq!(summary["caught_up"], false);
    assert_eq!(
        sim.request_count(),
        1,
        "no fetch started for a second batch"
    );
    assert_eq!(env.stored_key(), Some(Feed::page_key(20)));
}

/// The first page comes at once; the second takes longer than the deadline allows. The run has
/// committed a batch and moved the key: it ends as a success, behind, and never says the key is
/// unchanged.
#[test]
fn the_deadline_reached_in_the_next_pages_fetch_ends_the_run_with_0() {
    let sim = Simulator::start(feed(), API_KEY);
    sim.push_fault(Fault::Slow(Duration::ZERO), 1);
    sim.push_fault(Fault::Slow(Duration::from_secs(10)), 1);
    let env = Env::new();
    let ran = env
        .sync(&sim)
        .args(&["--batch-size", "20", "--max-batches", "5", "--timeout", "2"])
        .arg("--json")
        .run();
    let summary = ran.json();
    assert_eq!(summary["exit_code"], 0);
    assert_eq!(summary["error"], Value::Null);
    assert_eq!(summary["batches"], 1);
    assert_eq!(summary["caught_up"], false);
    assert_eq!(env.stored_key(), Some(Feed::page_key(20)), "the key moved");
    assert!(
        !ran.stderr.contains("unchanged"),
        "no message says the key is unchanged:\n{}",
        ran.stderr
    );
    assert_eq!(
        env.int("SELECT count(*) FROM sync_run WHERE exit_code <> 0"),
        0
    );
}

fn metric(path: &std::path::Path, name: &str) -> f64 {
    let text = fs::read_to_string(path).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} missing from\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn the_lag_and_the_runs_behind_show_in_the_summary_status_and_metrics() {
    let sim = Simulator::start(feed(), API_KEY);
    let env = Env::new();
    let metrics = env.path("tixngo.prom");
    let sync = || {
        env.sync(&sim)
            .args(&["--batch-size", "20", "--metrics-file"])
            .arg(metrics.to_str().unwrap())
    };
    // The generated feed's changes are months old: each batch ends far behind.
    for runs_behind in 1..=2 {
        let summary = sync().json();
        assert_eq!(summary["caught_up"], false);
        assert_eq!(summary["runs_behind"], runs_behind);
        assert!(
            summary["feed_lag_seconds"].as_f64().unwrap() > 86_400.0,
            "{summary}"
        );
    }
    assert_eq!(metric(&metrics, "tixngo_feedback_last_caught_up"), 0.0);
    assert_eq!(metric(&metrics, "tixngo_feedback_runs_behind"), 2.0);
    assert!(metric(&metrics, "tixngo_feedback_feed_lag_seconds") > 86_400.0);
    let status = env.cmd(&["status", "--json"]).run().json();
    assert_eq!(status["caught_up"], false);
    assert_eq!(status["runs_behind"], 2);
    assert!(status["feed_lag_seconds"].as_f64().unwrap() > 86_400.0);
    env.cmd(&["status"])
        .stdout_has("feed: behind by ")
        .stdout_has(", 2 runs in a row")
        .run();

    // A run that cannot look at the feed keeps the figures of the last one that did.
    sim.push_fault(Fault::Status(401), 1);
    let summary = sync().code(77).json();
    assert_eq!(summary["runs_behind"], Value::Null);
    assert_eq!(metric(&metrics, "tixngo_feedback_runs_behind"), 2.0);
    assert_eq!(metric(&metrics, "tixngo_feedback_last_caught_up"), 0.0);

    let summary = sync().arg("--drain").json();
    assert_eq!(summary["caught_up"], true);
    assert_eq!(summary["feed_lag_seconds"], 0.0);
    assert_eq!(summary["runs_behind"], 0);
    assert_eq!(metric(&metrics, "tixngo_feedback_last_caught_up"), 1.0);
    assert_eq!(metric(&metrics, "tixngo_feedback_feed_lag_seconds"), 0.0);
    assert_eq!(metric(&metrics, "tixngo_feedback_runs_behind"), 0.0);
    env.cmd(&["status"]).stdout_has("feed: caught up at ").run();

    // Every committed batch of a live run carries its feed position, written with the batch;
    // a backfill from a given key (which moves no live key) and a failed run carry none.
    env.sync(&sim)
        .args(&["--batch-size", "20", "--pagination-key", ""])
        .run();
    let backfill = env.int("SELECT max(id) FROM sync_run");
    assert_eq!(
        env.int(&format!(
            "SELECT count(*) FROM sync_run WHERE command = 'sync' AND exit_code IN (0, 2)
             AND id < {backfill} AND caught_up IS NULL"
        )),
        0,
        "a live batch without its feed position"
    );
    assert_eq!(
        env.int(&format!(
            "SELECT count(*) FROM sync_run WHERE id = {backfill} AND caught_up IS NULL"
        )),
        1
    );
    assert_eq!(
        env.int("SELECT count(*) FROM sync_run WHERE exit_code = 77 AND caught_up IS NOT NULL"),
        0
    );
}

/// Runs `sync` with `args` on a schedule (every `period`, `runs` times) against a compressed
/// match day of `changes` over `window`, and returns each run's summary and the environment.
fn match_day_schedule(changes: usize, window: Duration, runs: u32, args: &[&str]) -> Vec<Value> {
    let sim = Simulator::start(Feed::match_day(7, changes, window), API_KEY);
    let env = Env::new();
    let period = window / runs;
    let start = Instant::now();
    let mut summaries = Vec::new();
    for run in 1..=runs {
        let due = start + period * run;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        summaries.push(env.sync(&sim).args(args).json());
    }
    // Once the day is over, one more drained run takes what is left: everything arrives.
    std::thread::sleep((start + window).saturating_duration_since(Instant::now()));
    let last = env
        .sync(&sim)
        .args(&["--batch-size", "40", "--drain"])
        .json();
    assert_eq!(last["caught_up"], true);
    assert_eq!(
        env.int("SELECT count(*) FROM ticket_history"),
        changes as i64,
        "every activation and control is in the store"
    );
    summaries
}

/// 500 changes over 5 s (100 a second), a run every second, 40 tickets per batch: one batch per
/// run takes 40 a second and falls further behind with every run; a drained run ends caught up
/// every time, however long the machine takes for it.
#[test]
fn on_a_growing_feed_drained_runs_catch_up_where_single_batches_fall_behind() {
    let window = Duration::from_secs(5);
    let drained = match_day_schedule(500, window, 5, &["--batch-size", "40", "--drain"]);
    for (run, summary) in drained.iter().enumerate() {
        assert_eq!(summary["exit_code"], 0, "run {run}: {summary}");
        assert_eq!(summary["caught_up"], true, "run {run}: {summary}");
        assert_eq!(summary["feed_lag_seconds"], 0.0, "run {run}: {summary}");
        assert_eq!(summary["runs_behind"], 0, "run {run}: {summary}");
    }

    let single = match_day_schedule(500, window, 5, &["--batch-size", "40"]);
    for (run, summary) in single.iter().enumerate() {
        assert_eq!(summary["batches"], 1, "run {run}: {summary}");
        assert_eq!(summary["caught_up"], false, "run {run}: {summary}");
        assert_eq!(summary["runs_behind"], run + 1, "run {run}: {summary}");
    }
    let lag = |summary: &Value| summary["feed_lag_seconds"].as_f64().unwrap();
    assert!(
        lag(&single[4]) > lag(&single[0]),
        "the lag grows: {} then {}",
        lag(&single[0]),
        lag(&single[4])
    );
}

/// Batch 2 is bad data: batch 1 stays committed with its key, and the error line says so.
#[test]
fn a_failure_after_a_committed_batch_says_where_the_key_stays() {
    let sim = Simulator::start(feed(), API_KEY);
    sim.push_fault(Fault::Slow(Duration::ZERO), 1);
    sim.push_fault(Fault::InvalidJson, 1);
    let env = Env::new();
    let ran = env
        .sync(&sim)
        .args(&["--batch-size", "20", "--max-batches", "3"])
        .code(65)
        .stderr_has("batch 2: bad data")
        .stderr_has("the pagination key stays where batch 1 left it")
        .run();
    assert!(!ran.stderr.contains("unchanged"), "{}", ran.stderr);
    assert_eq!(env.stored_key(), Some(Feed::page_key(20)));
}
