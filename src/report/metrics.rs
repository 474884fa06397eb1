//! The metrics file (SPEC §6): the run's figures in Prometheus text format, for node_exporter's
//! textfile collector. Rewritten atomically (a temporary file in the same directory, then a
//! rename), so the collector never reads half a file.

use std::fmt::Write as _;
use std::fs;
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Counters, Summary};
use crate::timestamp::Timestamp;

const PREFIX: &str = "tixngo_feedback";
const LAST_SUCCESS: &str = "tixngo_feedback_last_success_timestamp_seconds";
const FEED_LAG: &str = "tixngo_feedback_feed_lag_seconds";
const RUNS_BEHIND: &str = "tixngo_feedback_runs_behind";

/// Writes the metrics of a finished run. The last success time is carried over from the previous
/// file when this run did not succeed.
pub fn write(path: &Path, summary: &Summary, finished: Timestamp) -> std::io::Result<()> {
    let last_success = if summary.exit_code == 0 {
        finished.unix_seconds()
    } else {
        previous_last_success(path).unwrap_or(0.0)
    };
    let text = render(summary, finished, last_success);
    let (temporary, mut file) = create_temporary(path)?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::rename(&temporary, path));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// Attempts at a free random name before giving up (a clash is already one in 2^64).
const NAME_ATTEMPTS: usize = 8;

/// Creates the temporary file: a hidden sibling (the collector reads `*.prom` only) under a
/// random name, created exclusively (`O_EXCL`, never through a link planted in a directory
/// others can write) with mode 0644 at most, whatever the umask allows beyond that.
fn create_temporary(path: &Path) -> std::io::Result<(PathBuf, fs::File)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut attempt = 0;
    loop {
        let temporary = path.with_file_name(format!(".{name}.{:016x}.tmp", fastrand::u64(..)));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&temporary)
        {
            Err(e) if e.kind() == ErrorKind::AlreadyExists && attempt < NAME_ATTEMPTS => {
                attempt += 1;
            }
            Err(e) => return Err(e),
            Ok(file) => {
                // The umask may leave more than 0644 (umask 0): never world-writable.
                let mode = file.metadata()?.permissions().mode() & 0o644;
                file.set_permissions(fs::Permissions::from_mode(mode))?;
                return Ok((temporary, file));
            }
        }
    }
}

fn previous_last_success(path: &Path) -> Option<f64> {
    previous_value(path, LAST_SUCCESS)
}

/// A sample of the previous metrics file, when it has one.
fn previous_value(path: &Path, name: &str) -> Option<f64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// The summary with the feed's lag and the runs behind carried over from the previous metrics
/// file when this run committed no batch and so learnt nothing new about the feed (a failure, a
/// refused run): the gauges keep saying where the feed stood, and the alert on a growing lag does
/// not reset because of a run that could not look.
pub fn with_feed_carried_over(path: &Path, summary: &Summary) -> Summary {
    let mut summary = summary.clone();
    if summary.runs_behind.is_none() {
        summary.feed_lag_seconds = previous_value(path, FEED_LAG);
        summary.runs_behind = previous_value(path, RUNS_BEHIND).map(|runs| runs as u64);
    }
    summary
}

/// The file's text.
pub fn render(summary: &Summary, finished: Timestamp, last_success: f64) -> String {
    let mut gauges = Gauges::default();
    gauges.run(summary, finished, last_success);
    gauges.counters(&summary.counters, summary.batches);
    gauges.feed(summary);
    gauges.text
}

/// The file's text, gauge after gauge.
#[derive(Default)]
struct Gauges {
    text: String,
}

impl Gauges {
    /// One gauge with its help and type, and its samples by labels.
    fn gauge(&mut self, name: &str, help: &str, samples: &[(&str, f64)]) {
        let out = &mut self.text;
        let _ = writeln!(out, "# HELP {PREFIX}_{name} {help}");
        let _ = writeln!(out, "# TYPE {PREFIX}_{name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{PREFIX}_{name}{labels} {value}");
        }
    }

    /// When the run finished, its last success, its exit code and its duration.
    fn run(&mut self, summary: &Summary, finished: Timestamp, last_success: f64) {
        self.gauge(
            "last_run_timestamp_seconds",
            "Unix time at which the last run finished.",
            &[("", finished.unix_seconds())],
        );
        self.gauge(
            "last_success_timestamp_seconds",
            "Unix time at which the last successful run (exit code 0) finished; 0 if none yet.",
            &[("", last_success)],
        );
        self.gauge(
            "last_exit_code",
            "Exit code of the last run.",
            &[("", f64::from(summary.exit_code))],
        );
        self.gauge(
            "last_duration_seconds",
            "Duration of the last run.",
            &[("", summary.duration_ms as f64 / 1000.0)],
        );
    }

    /// What the run did: tickets by outcome, contacts, distribution lines, batches.
    fn counters(&mut self, c: &Counters, batches: u64) {
        self.gauge(
            "last_tickets",
            "Tickets of the last run, by outcome.",
            &[
                ("{outcome=\"stored\"}", c.stored as f64),
                ("{outcome=\"unchanged\"}", c.unchanged as f64),
                ("{outcome=\"skipped\"}", c.skipped as f64),
                ("{outcome=\"stale\"}", c.stale as f64),
                ("{outcome=\"failed\"}", c.failed as f64),
            ],
        );
        self.gauge(
            "last_contacts",
            "Cultural contacts created or updated by the last run.",
            &[
                ("{change=\"created\"}", c.contacts_created as f64),
                ("{change=\"updated\"}", c.contacts_updated as f64),
            ],
        );
        self.gauge(
            "last_distributions",
            "Distribution lines created or updated by the last run.",
            &[
                ("{change=\"created\"}", c.distributions_created as f64),
                ("{change=\"updated\"}", c.distributions_updated as f64),
            ],
        );
        self.gauge(
            "last_batches",
            "Batches committed by the last run.",
            &[("", batches as f64)],
        );
    }

    /// Where the run left the store behind the TIXNGO feed.
    fn feed(&mut self, summary: &Summary) {
        self.gauge(
            "last_caught_up",
            "1 if the last run ended caught up with the TIXNGO feed, else 0.",
            &[("", f64::from(u8::from(summary.caught_up)))],
        );
        self.gauge(
            "feed_lag_seconds",
            "How far behind the feed the store is: the end of the last run that committed a batch \
             minus the newest change it stored; 0 when it caught up.",
            &[("", summary.feed_lag_seconds.unwrap_or(0.0))],
        );
        self.gauge(
            "runs_behind",
            "Consecutive runs that ended behind the feed.",
            &[("", summary.runs_behind.unwrap_or(0) as f64)],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(exit_code: u8) -> Summary {
        let mut s = Summary {
            command: "sync",
            batches: 2,
            exit_code,
            duration_ms: 1500,
            feed_lag_seconds: Some(312.5),
            runs_behind: Some(3),
            ..Summary::default()
        };
        s.counters.stored = 7;
        s
    }

    #[test]
    fn renders_every_documented_metric_with_help_and_type() {
        let text = render(
            &summary(0),
            Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap(),
            5.0,
        );
        for needle in [
            "# HELP tixngo_feedback_last_run_timestamp_seconds ",
            "# TYPE tixngo_feedback_last_run_timestamp_seconds gauge",
            "tixngo_feedback_last_run_timestamp_seconds 1767225600\n",
            "tixngo_feedback_last_success_timestamp_seconds 5\n",
            "tixngo_feedback_last_exit_code 0\n",
            "tixngo_feedback_last_duration_seconds 1.5\n",
            "tixngo_feedback_last_tickets{outcome=\"stored\"} 7\n",
            "tixngo_feedback_last_tickets{outcome=\"failed\"} 0\n",
            "tixngo_feedback_last_batches 2\n",
            "# TYPE tixngo_feedback_last_caught_up gauge",
            "tixngo_feedback_last_caught_up 0\n",
            "tixngo_feedback_feed_lag_seconds 312.5\n",
            "tixngo_feedback_runs_behind 3\n",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
    }

    #[test]
    fn a_failed_run_keeps_the_previous_success_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.prom");
        let first = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        write(&path, &summary(0), first).unwrap();
        let later = Timestamp::parse_rfc3339("2026-01-01T00:05:00Z").unwrap();
        write(&path, &summary(69), later).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("tixngo_feedback_last_success_timestamp_seconds 1767225600\n"),
            "{text}"
        );
        assert!(
            text.contains("tixngo_feedback_last_run_timestamp_seconds 1767225900\n"),
            "{text}"
        );
        assert!(
            text.contains("tixngo_feedback_last_exit_code 69\n"),
            "{text}"
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "the temporary file is gone");
    }

    #[test]
    fn a_run_that_learnt_nothing_of_the_feed_keeps_the_previous_lag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.prom");
        let finished = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        write(&path, &summary(0), finished).unwrap();
        let refused = Summary {
            command: "sync",
            exit_code: 75,
            ..Summary::default()
        };
        let carried = with_feed_carried_over(&path, &refused);
        assert_eq!(carried.feed_lag_seconds, Some(312.5));
        assert_eq!(carried.runs_behind, Some(3));
        let caught_up = Summary {
            caught_up: true,
            feed_lag_seconds: Some(0.0),
            runs_behind: Some(0),
            ..refused
        };
        let kept = with_feed_carried_over(&path, &caught_up);
        assert_eq!(
            (kept.feed_lag_seconds, kept.runs_behind),
            (Some(0.0), Some(0))
        );
    }
}
