//! What a run tells the world: the counters, the one-line summary (human or JSON), the metrics
//! file.

pub mod metrics;

use std::borrow::Cow;

use serde::Serialize;

use crate::exit::ExitCode;

/// What a command prints: stdout gets the JSON line or, on success, the human text; stderr the
/// error line, or the warning of a partial success.
#[derive(Clone, Debug)]
pub struct Output {
    pub exit_code: ExitCode,
    pub human: String,
    pub json: String,
    pub error: Option<String>,
    pub warning: Option<String>,
}

impl Output {
    /// The output of an operator command: its human text and JSON object, or its error.
    pub fn of(command: &str, result: Result<(String, serde_json::Value), crate::Error>) -> Output {
        match result {
            Ok((human, mut json)) => {
                if let Some(object) = json.as_object_mut() {
                    object.insert("command".into(), command.into());
                    object.insert("exit_code".into(), 0.into());
                    object.insert("error".into(), serde_json::Value::Null);
                }
                Output {
                    exit_code: ExitCode::Success,
                    human,
                    json: json.to_string(),
                    error: None,
                    warning: None,
                }
            }
            Err(error) => {
                let code = error.exit_code();
                let message = error.to_string();
                let json = serde_json::json!({ "command": command, "exit_code": code.code(), "error": message });
                Output {
                    exit_code: code,
                    human: String::new(),
                    json: json.to_string(),
                    error: Some(message),
                    warning: None,
                }
            }
        }
    }
}

/// The figures of a batch, added up over a run (`sync_run` columns, summary and `--json` fields).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Always `stored + unchanged + skipped + stale + failed`.
    pub fetched: u64,
    pub stored: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub stale: u64,
    pub failed: u64,
    pub contacts_created: u64,
    pub contacts_updated: u64,
    pub distributions_created: u64,
    pub distributions_updated: u64,
}

impl Counters {
    /// The names of the figures, in the order of [`Counters::values`]: the `sync_run` columns.
    pub const NAMES: [&'static str; 10] = [
        "fetched",
        "stored",
        "unchanged",
        "skipped",
        "stale",
        "failed",
        "contacts_created",
        "contacts_updated",
        "distributions_created",
        "distributions_updated",
    ];

    /// The figures, in the order of [`Counters::NAMES`].
    pub fn values(&self) -> [u64; 10] {
        [
            self.fetched,
            self.stored,
            self.unchanged,
            self.skipped,
            self.stale,
            self.failed,
            self.contacts_created,
            self.contacts_updated,
            self.distributions_created,
            self.distributions_updated,
        ]
    }

    /// Adds another batch's figures.
    pub fn add(&mut self, other: &Counters) {
        self.fetched += other.fetched;
        self.stored += other.stored;
        self.unchanged += other.unchanged;
        self.skipped += other.skipped;
        self.stale += other.stale;
        self.failed += other.failed;
        self.contacts_created += other.contacts_created;
        self.contacts_updated += other.contacts_updated;
        self.distributions_created += other.distributions_created;
        self.distributions_updated += other.distributions_updated;
    }
}

/// The outcome of a `sync` or `replay` run, printed as one line (SPEC §6).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub command: &'static str,
    pub dry_run: bool,
    pub batches: u64,
    #[serde(flatten)]
    pub counters: Counters,
    pub pagination_key_before: Option<String>,
    pub next_pagination_key: Option<String>,
    pub key_saved: bool,
    pub caught_up: bool,
    /// The run's end minus the newest `lastUpdated` it stored when it did not catch up, 0 when it
    /// did; `None` when it committed no batch (or no dated ticket).
    pub feed_lag_seconds: Option<f64>,
    /// Consecutive runs that ended behind the feed, this one included; `None` when it committed
    /// no batch.
    pub runs_behind: Option<u64>,
    pub duration_ms: u64,
    pub exit_code: u8,
    pub error: Option<String>,
    /// Statuses outside TIXNGO's documented lists, with how many tickets had each.
    pub unknown_statuses: std::collections::BTreeMap<String, u64>,
    /// Ticket fields the mapping does not read, by name (never their values).
    pub unknown_fields: Vec<String>,
    /// What a replay processed; `None` for a sync. Human output only: the JSON fields stay those
    /// of SPEC §6.
    #[serde(skip)]
    pub replayed: Option<Replayed>,
}

/// The input of a `replay`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replayed {
    /// A saved response, with the next key it held (shown, never used).
    File { next_key: Option<String> },
    /// The raw payloads of the unresolved sync errors (`--errors`).
    Errors,
}

impl Summary {
    /// What the run prints.
    pub fn output(&self) -> Output {
        let exit_code = ExitCode::ALL
            .into_iter()
            .find(|c| c.code() == self.exit_code)
            .unwrap_or(ExitCode::Software);
        Output {
            exit_code,
            human: self.to_human(),
            json: self.to_json(),
            error: self.error.clone(),
            warning: (exit_code == ExitCode::Partial).then(|| self.partial_warning()),
        }
    }

    /// The stderr line of a partial run: what became of the tickets that could not be mapped.
    fn partial_warning(&self) -> String {
        let failed = count(self.counters.failed, "ticket");
        if self.dry_run {
            format!("{failed} could not be mapped (dry run: nothing was recorded)")
        } else if self.replayed == Some(Replayed::Errors) {
            format!(
                "{failed} still cannot be mapped and stay in sync_error: see `tixngo-feedback errors list`"
            )
        } else {
            format!(
                "{failed} could not be mapped (recorded in sync_error): see `tixngo-feedback errors list`, \
                 then fix and `replay --errors`, or `skip add` or `errors dismiss`"
            )
        }
    }

    /// The `--json` line: compact, one line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!(r#"{{"error":"cannot render the summary: {e}"}}"#))
    }

    /// The human line.
    pub fn to_human(&self) -> String {
        let dry_run = if self.dry_run { " (dry run)" } else { "" };
        match &self.replayed {
            None => self.sync_line(),
            Some(Replayed::File { next_key }) => format!(
                "replay{dry_run}: {}; {}; {} ms",
                self.counters_text(),
                match next_key {
                    Some(key) => format!(
                        "the file's next key {} was not used: the stored key was not touched",
                        quoted(Some(key))
                    ),
                    None => "the file has no next key; the stored key was not touched".to_owned(),
                },
                self.duration_ms
            ),
            Some(Replayed::Errors) => format!(
                "replay --errors{dry_run}: {}; the stored key was not touched; {} ms",
                self.counters_text(),
                self.duration_ms
            ),
        }
    }

    /// The counters as the human lines show them.
    fn counters_text(&self) -> String {
        let c = &self.counters;
        format!(
            "{} fetched, {} stored, {} unchanged, {} skipped, {} stale, {} failed; contacts +{} ~{}; \
             distributions +{} ~{}",
            c.fetched,
            c.stored,
            c.unchanged,
            c.skipped,
            c.stale,
            c.failed,
            c.contacts_created,
            c.contacts_updated,
            c.distributions_created,
            c.distributions_updated,
        )
    }

    /// The line of a sync (SPEC §6).
    fn sync_line(&self) -> String {
        format!(
            "{}{}: {}; key {} -> {}{}; caught up: {}; {} ms",
            self.command,
            if self.dry_run { " (dry run)" } else { "" },
            self.counters_text(),
            quoted(self.pagination_key_before.as_deref()),
            quoted(self.next_pagination_key.as_deref()),
            if self.key_saved { "" } else { " (not saved)" },
            match (self.caught_up, self.feed_lag_seconds) {
                (true, _) => "yes".to_owned(),
                (false, Some(lag)) => format!("no ({} behind the feed)", duration_text(lag)),
                (false, None) => "no".to_owned(),
            },
            self.duration_ms,
        )
    }
}

/// A lag as an operator reads it: `45 s`, `5 min 12 s`, `3 h 05 min`, `300 d 07 h`.
fn duration_text(seconds: f64) -> String {
    let seconds = seconds.max(0.0).round() as u64;
    match seconds {
        0..=119 => format!("{seconds} s"),
        120..=7199 => format!("{} min {} s", seconds / 60, seconds % 60),
        7200..=172_799 => format!("{} h {:02} min", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{} d {:02} h", seconds / 86_400, seconds % 86_400 / 3600),
    }
}

/// A key as the human summary shows it: quoted, control characters escaped, `''` for none.
pub fn quoted(key: Option<&str>) -> String {
    format!("'{}'", escape(key.unwrap_or_default()))
}

/// Text from TIXNGO, a replayed file or the store (ticket numbers, keys, reasons, payloads) as
/// human output shows it: control characters (ESC, CR, BEL, C1 …) and the bidirectional overrides
/// escaped, so that data can never move the cursor, recolour or rewrite the operator's terminal.
/// The one escaping of human output: the summary, `status`, `errors`, `skip list`, log and error
/// lines all go through it.
pub fn escape(text: &str) -> Cow<'_, str> {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// "1 ticket", "2 tickets": a count with its noun (regular plurals only).
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Summary {
        Summary {
            command: "sync",
            batches: 1,
            counters: Counters {
                fetched: 1000,
                stored: 996,
                unchanged: 2,
                skipped: 1,
                stale: 0,
                failed: 1,
                contacts_created: 12,
                contacts_updated: 3,
                distributions_created: 30,
                distributions_updated: 5,
            },
            pagination_key_before: Some("abc".into()),
            next_pagination_key: Some("def".into()),
            key_saved: true,
            duration_ms: 23,
            exit_code: 2,
            ..Summary::default()
        }
    }

    #[test]
    fn human_line_matches_the_documented_shape() {
        assert_eq!(
            summary().to_human(),
            "sync: 1000 fetched, 996 stored, 2 unchanged, 1 skipped, 0 stale, 1 failed; contacts +12 ~3; \
             distributions +30 ~5; key 'abc' -> 'def'; caught up: no; 23 ms"
        );
    }

    #[test]
    fn human_line_says_how_far_behind_the_feed_a_run_ended() {
        let mut behind = summary();
        for (lag, text) in [
            (0.4, "0 s"),
            (119.0, "119 s"),
            (312.4, "5 min 12 s"),
            (11_100.0, "3 h 05 min"),
            (172_799.0, "47 h 59 min"),
            (25_945_500.0, "300 d 07 h"),
        ] {
            behind.feed_lag_seconds = Some(lag);
            let line = behind.to_human();
            assert!(
                line.contains(&format!("caught up: no ({text} behind the feed); 23 ms")),
                "{line}"
            );
        }
        behind.caught_up = true;
        assert!(behind.to_human().contains("caught up: yes; 23 ms"));
    }

    #[test]
    fn human_line_marks_dry_runs_and_unsaved_keys() {
        let mut s = summary();
        s.dry_run = true;
        s.key_saved = false;
        s.pagination_key_before = None;
        let line = s.to_human();
        assert!(line.starts_with("sync (dry run): "), "{line}");
        assert!(line.contains("key '' -> 'def' (not saved)"), "{line}");
    }

    #[test]
    fn json_has_every_documented_field_on_one_line() {
        let json = summary().to_json();
        assert!(!json.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        // The counters' fields are their `sync_run` names (`names_match_the_serialized_fields`).
        let before_counters = ["command", "dry_run", "batches"];
        let after_counters = [
            "pagination_key_before",
            "next_pagination_key",
            "key_saved",
            "caught_up",
            "feed_lag_seconds",
            "runs_behind",
            "duration_ms",
            "exit_code",
            "error",
        ];
        for field in before_counters
            .into_iter()
            .chain(Counters::NAMES)
            .chain(after_counters)
        {
            assert!(value.get(field).is_some(), "{field} missing from {json}");
        }
        assert_eq!(value["error"], serde_json::Value::Null);
    }

    #[test]
    fn names_match_the_serialized_fields() {
        let json = serde_json::to_value(summary().counters).unwrap();
        let counters = summary().counters;
        for (name, value) in Counters::NAMES.iter().zip(counters.values()) {
            assert_eq!(json[name], value, "{name}");
        }
    }

    #[test]
    fn escape_neutralizes_terminal_control_and_keeps_the_rest() {
        assert_eq!(escape("T-1 é ü 票"), "T-1 é ü 票");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(escape("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape("x\ry\nz\u{7}"), "x\\ry\\nz\\u{7}");
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape("abc\u{202e}def"), "abc\\u{202e}def");
        assert_eq!(quoted(Some("k\u{1b}]0;x\u{7}")), "'k\\u{1b}]0;x\\u{7}'");
    }

    #[test]
    fn counts_agree_with_their_number() {
        assert_eq!(count(0u64, "ticket"), "0 tickets");
        assert_eq!(count(1u64, "ticket"), "1 ticket");
        assert_eq!(count(2u64, "run"), "2 runs");
    }

    #[test]
    fn replay_lines_say_what_the_file_held_and_that_the_stored_key_stayed() {
        let mut s = summary();
        s.command = "replay";
        s.replayed = Some(Replayed::File {
            next_key: Some("next\u{1b}".into()),
        });
        let line = s.to_human();
        assert!(
            line.starts_with("replay: 1000 fetched, 996 stored"),
            "{line}"
        );
        assert!(
            line.contains(
                "the file's next key 'next\\u{1b}' was not used: the stored key was not touched"
            ),
            "{line}"
        );
        assert!(
            !line.contains("caught up") && !line.contains("key '' -> ''"),
            "{line}"
        );
        s.replayed = Some(Replayed::File { next_key: None });
        assert!(s.to_human().contains("the file has no next key"));
        s.replayed = Some(Replayed::Errors);
        s.dry_run = true;
        let line = s.to_human();
        assert!(line.starts_with("replay --errors (dry run): "), "{line}");
        let warning = s.output().warning.unwrap();
        assert_eq!(
            warning,
            "1 ticket could not be mapped (dry run: nothing was recorded)"
        );
        s.dry_run = false;
        let warning = s.output().warning.unwrap();
        assert!(
            warning.starts_with("1 ticket still cannot be mapped"),
            "{warning}"
        );
    }

    #[test]
    fn counters_add_up() {
        let mut total = Counters::default();
        total.add(&summary().counters);
        total.add(&summary().counters);
        assert_eq!(total.fetched, 2000);
        assert_eq!(total.distributions_updated, 10);
    }
}
