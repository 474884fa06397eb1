//! The operator commands that are not a batch: `status`, `skip`, `cursor`, `errors` (SPEC §2).
//! Each returns its human text and its JSON object; [`crate::report::Output::of`] prints them.

use serde_json::{Value, json};

use crate::engine::{open_locked, open_read_only};
use crate::error::Error;
use crate::lock::{LockState, RunLock};
use crate::report::{count, escape, quoted};
use crate::settings::{CursorAction, ErrorsAction, SkipAction, StoreLocation};
use crate::store::{FeedState, Store, SyncErrorDetail, SyncErrorEntry};
use crate::timestamp::Timestamp;
use crate::tixngo::wire::PaginationKey;

/// How many runs and error tickets `status` shows.
const STATUS_RUNS: usize = 10;
const STATUS_ERROR_TICKETS: usize = 10;

type Shown = Result<(String, Value), Error>;

/// `status`: read-only, works while a sync runs, never creates the store.
pub fn status(location: &StoreLocation) -> Shown {
    let mut store = open_read_only(location)?;
    let lock = probe_lock(location, &store)?;
    let figures = store.status(STATUS_RUNS, STATUS_ERROR_TICKETS)?;
    let feed = store.feed_state()?;
    let mut lines = vec![
        format!("store: {}", location.describe()),
        format!(
            "pagination key: {} (saved {})",
            quoted(figures.pagination_key.as_deref()),
            figures
                .pagination_key_saved_at
                .as_deref()
                .unwrap_or("never")
        ),
        describe_feed(feed.as_ref()),
        describe_lock(&lock),
        format!("skip list: {}", count(figures.skip_count, "ticket")),
        if figures.unresolved_errors == 0 {
            "unresolved sync errors: 0".to_owned()
        } else {
            format!(
                "unresolved sync errors: {} (first: {})",
                figures.unresolved_errors,
                figures
                    .unresolved_error_tickets
                    .iter()
                    .map(|number| escape(number))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        format!(
            "tickets: {}, contacts: {}",
            figures.tickets, figures.contacts
        ),
    ];
    let unknown_fields = last_unknown_fields(&figures.runs);
    lines.push(format!(
        "ticket fields the mapping does not read (last sync or replay): {}",
        if unknown_fields.is_empty() {
            "none".to_owned()
        } else {
            escape(&unknown_fields.join(", ")).into_owned()
        }
    ));
    lines.extend(runs_table(&figures.runs));
    let mut json = serde_json::to_value(&figures).map_err(|e| Error::Internal(e.to_string()))?;
    json["unknown_fields"] = json!(unknown_fields);
    json["caught_up"] = json!(feed.as_ref().map(|f| f.caught_up));
    json["feed_lag_seconds"] = json!(feed.as_ref().and_then(|f| f.feed_lag_seconds));
    json["runs_behind"] = json!(feed.as_ref().map(|f| f.runs_behind));
    json["feed_checked_at"] = json!(feed.and_then(|f| f.checked_at));
    json["store"] = json!(location.describe());
    json["lock_held"] = json!(lock.held);
    json["lock_pid"] = json!(lock.pid);
    Ok((lines.join("\n"), json))
}

/// The lock line of `status`.
fn describe_lock(lock: &ProbedLock) -> String {
    match (lock.held, lock.pid, &lock.holder) {
        (true, Some(pid), Some(holder)) => format!("lock: held by pid {pid}: {holder}"),
        (true, None, Some(holder)) => format!("lock: held by {holder}"),
        (true, Some(pid), None) => format!("lock: held by pid {pid}"),
        (true, None, None) => "lock: held".to_owned(),
        (false, ..) => "lock: free".to_owned(),
    }
}

/// Whether a run holds the store's lock now, as `status` shows it.
struct ProbedLock {
    held: bool,
    /// The pid an SQLite store's holder wrote into the lock file.
    pid: Option<u32>,
    /// A PostgreSQL store's holder, as its session shows in `pg_stat_activity`.
    holder: Option<String>,
}

fn probe_lock(location: &StoreLocation, store: &Store) -> Result<ProbedLock, Error> {
    match (location, store) {
        (StoreLocation::Postgres(_), Store::Postgres(store)) => {
            let (holder, pid) = store.lock_holder()?.unzip();
            Ok(ProbedLock {
                held: holder.is_some(),
                pid: pid.flatten(),
                holder,
            })
        }
        (StoreLocation::Sqlite(files), _) => {
            let LockState { held, pid } = RunLock::probe(&files.lock)?;
            Ok(ProbedLock {
                held,
                pid,
                holder: None,
            })
        }
        (StoreLocation::Postgres(_), Store::Sqlite(_)) => Err(Error::Internal(
            "a PostgreSQL location opened as an SQLite store".to_owned(),
        )),
    }
}

/// The width `status` keeps its lines to, so that the run table reads in a terminal or a mail.
const WIDTH: usize = 100;

/// The characters of a key `status` shows; `status --json` and `cursor show` give it whole.
const KEY_SHOWN: usize = 32;

/// The counters of the run table: `sync_run` column and heading.
const RUN_COUNTERS: [(&str, &str); 6] = [
    ("fetched", "fetched"),
    ("stored", "stored"),
    ("unchanged", "unchngd"),
    ("skipped", "skipped"),
    ("stale", "stale"),
    ("failed", "failed"),
];

/// The start of a run table line, the columns every run has.
fn run_columns(started: &str, command: &str, exit: &str) -> String {
    format!("  {started:19}  {command:12}  {exit:>4}")
}

/// The `sync_run` rows as `status` shows them: a row of figures per batch (keys, contacts and
/// error on the lines below it), and a cursor move as the move it was.
fn runs_table(runs: &[serde_json::Map<String, Value>]) -> Vec<String> {
    let mut lines = vec![format!(
        "last {} (newest first):",
        count(runs.len() as u64, "run")
    )];
    if !runs.is_empty() {
        let mut heading = run_columns("started (UTC)", "command", "exit");
        for (_, title) in RUN_COUNTERS {
            heading.push_str(&format!(" {title:>7}"));
        }
        lines.push(format!("{heading} {:>9}", "time"));
    }
    for run in runs {
        lines.extend(describe_run(run));
    }
    lines
}

/// Where the latest sync that moved the live key left the feed, as a line of `status`.
fn describe_feed(feed: Option<&FeedState>) -> String {
    let Some(feed) = feed else {
        return "feed: no sync has moved the live key yet".to_owned();
    };
    let at = feed.checked_at.as_deref().unwrap_or("?");
    match (feed.caught_up, feed.feed_lag_seconds) {
        (true, _) => format!("feed: caught up at {at}"),
        (false, lag) => format!(
            "feed: behind{} at {at}, {} run{} in a row",
            lag.map(|lag| format!(" by {lag:.0} s")).unwrap_or_default(),
            feed.runs_behind,
            if feed.runs_behind == 1 { "" } else { "s" }
        ),
    }
}

/// The ticket fields that the latest `sync` or `replay` run (newest first in `runs`) found and the
/// mapping does not read: what TIXNGO actually sends beyond what is expected.
fn last_unknown_fields(runs: &[serde_json::Map<String, Value>]) -> Vec<String> {
    runs.iter()
        .find(|run| {
            matches!(
                run.get("command").and_then(Value::as_str),
                Some("sync" | "replay")
            )
        })
        .and_then(|run| run.get("unknown_fields")?.as_str())
        .and_then(|names| serde_json::from_str(names).ok())
        .unwrap_or_default()
}

/// One `sync_run` row as lines of `status`, none wider than [`WIDTH`].
fn describe_run(run: &serde_json::Map<String, Value>) -> Vec<String> {
    let text = |name: &str| run.get(name).and_then(Value::as_str);
    let number = |name: &str| run.get(name).and_then(Value::as_i64).unwrap_or(0);
    let started = shown_time(text("started_at"));
    let command = text("command").unwrap_or("?");
    let exit = run
        .get("exit_code")
        .and_then(Value::as_i64)
        .map_or("?".to_owned(), |c| c.to_string());
    let keys = format!(
        "{} -> {}",
        quoted(text("key_before").map(short_key).as_deref()),
        quoted(text("key_after").map(short_key).as_deref())
    );
    if command.starts_with("cursor ") {
        return vec![fit(format!(
            "{}  {keys}",
            run_columns(&started, command, &exit)
        ))];
    }
    let duration = match (
        text("started_at").and_then(Timestamp::parse_rfc3339),
        text("finished_at").and_then(Timestamp::parse_rfc3339),
    ) {
        (Some(start), Some(end)) => format!("{} ms", end.millis_since(start)),
        _ => "unfinished".to_owned(),
    };
    let mut row = run_columns(&started, command, &exit);
    for (name, _) in RUN_COUNTERS {
        row.push_str(&format!(" {:>7}", number(name)));
    }
    row.push_str(&format!(" {duration:>9}"));
    let mut detail = format!("      key {keys}");
    for (what, created, updated) in [
        ("contacts", "contacts_created", "contacts_updated"),
        (
            "distributions",
            "distributions_created",
            "distributions_updated",
        ),
    ] {
        if number(created) + number(updated) > 0 {
            detail.push_str(&format!(
                "; {what} +{} ~{}",
                number(created),
                number(updated)
            ));
        }
    }
    let mut lines = vec![fit(row), fit(detail)];
    lines.extend(text("error").map(|e| fit(format!("      error: {}", escape(e)))));
    lines
}

/// A key cut to [`KEY_SHOWN`] characters, marked when cut.
fn short_key(key: &str) -> String {
    match key.char_indices().nth(KEY_SHOWN) {
        Some((end, _)) => format!("{}…", &key[..end]),
        None => key.to_owned(),
    }
}

/// A line cut to [`WIDTH`] characters, marked when cut.
fn fit(line: String) -> String {
    match line.char_indices().nth(WIDTH - 1) {
        Some((end, _)) if line.chars().count() > WIDTH => format!("{}…", &line[..end]),
        _ => line,
    }
}

/// `skip add|remove|list`.
pub fn skip(location: &StoreLocation, command: &SkipAction) -> Shown {
    match command {
        SkipAction::List => {
            let entries = open_read_only(location)?.skip_entries()?;
            let human = if entries.is_empty() {
                "skip list: empty".to_owned()
            } else {
                entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{}\t{}\t{}",
                            escape(&e.ticket_number),
                            e.added_at,
                            escape(e.reason.as_deref().unwrap_or(""))
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            Ok((human, json!({ "skip": entries })))
        }
        SkipAction::Add { numbers, reason } => {
            change_skips(location, numbers, ("added", "already listed"), |store| {
                store.add_skips(numbers, reason.as_deref())
            })
        }
        SkipAction::Remove { numbers } => {
            change_skips(location, numbers, ("removed", "not listed"), |store| {
                store.remove_skips(numbers)
            })
        }
    }
}

/// `skip add` or `skip remove`, under the run lock: how many of `numbers` the change took
/// (`done`), how many it had nothing to do for (`not_done`), and the skip list's size after.
fn change_skips(
    location: &StoreLocation,
    numbers: &[String],
    (done, not_done): (&str, &str),
    change: impl FnOnce(&mut Store) -> Result<usize, Error>,
) -> Shown {
    let mut store = open_locked(location, false, None)?;
    let changed = change(&mut store)?;
    let total = store.skip_list()?.len();
    let unchanged = numbers.len() - changed;
    Ok((
        format!(
            "skip: {changed} {done}, {unchanged} {not_done}; {} on the skip list",
            count(total as u64, "ticket")
        ),
        json!({ done: changed, not_done.replace(' ', "_"): unchanged, "skip_count": total }),
    ))
}

/// `cursor show|set|reset`.
pub fn cursor(location: &StoreLocation, command: &CursorAction) -> Shown {
    let (name, key, confirmed) = match command {
        CursorAction::Show => {
            let (key, saved_at) = open_read_only(location)?.pagination_state()?;
            let human = format!(
                "pagination key: {} (saved {})",
                quoted(key.as_deref()),
                saved_at.as_deref().unwrap_or("never")
            );
            return Ok((
                human,
                json!({ "pagination_key": key, "pagination_key_saved_at": saved_at }),
            ));
        }
        CursorAction::Set { key, confirmed } => (
            command.name(),
            key.as_ref().map(PaginationKey::as_str),
            *confirmed,
        ),
        CursorAction::Reset { confirmed } => (command.name(), None, *confirmed),
    };
    if !confirmed {
        return Err(Error::Usage(format!(
            "`{name}` moves where the next sync starts: add --yes to confirm"
        )));
    }
    let before = open_locked(location, false, None)?.set_pagination_key(name, key)?;
    Ok((
        format!(
            "{name}: key {} -> {}",
            quoted(before.as_deref()),
            quoted(key)
        ),
        json!({ "key_before": before, "key_after": key }),
    ))
}

/// `errors list|show|dismiss`: triage of the tickets that could not be mapped. Dismissed errors
/// are kept, resolved with the operator's reason, never deleted.
pub fn errors(location: &StoreLocation, command: &ErrorsAction) -> Shown {
    match command {
        ErrorsAction::List => {
            let entries = open_read_only(location)?.unresolved_errors()?;
            let mut lines = vec![format!(
                "{}:",
                count(entries.len() as u64, "unresolved sync error")
            )];
            if !entries.is_empty() {
                lines.push(error_row("id", "ticket", "first seen (UTC)", "reason"));
            }
            lines.extend(entries.iter().map(|entry| {
                error_row(
                    &entry.id.to_string(),
                    &short_key(&escape(error_ticket(entry))),
                    &shown_time(entry.first_seen_at.as_deref()),
                    &escape(&entry.reason),
                )
            }));
            Ok((lines.join("\n"), json!({ "errors": entries })))
        }
        ErrorsAction::Show { id } => {
            let detail = open_read_only(location)?.sync_error(*id)?.ok_or_else(|| {
                Error::Usage(format!("there is no sync error {id} (see `errors list`)"))
            })?;
            let human = describe_error(&detail);
            Ok((human, json!({ "sync_error": detail })))
        }
        ErrorsAction::Dismiss { ids, reason } => {
            // Nothing to dismiss in a store that does not exist: never create one for it.
            match location {
                StoreLocation::Sqlite(files) if !files.store.exists() => {
                    return Err(Error::store(&files.store, "does not exist"));
                }
                StoreLocation::Postgres(_) => drop(open_read_only(location)?),
                StoreLocation::Sqlite(_) => {}
            }
            open_locked(location, false, None)?.dismiss_errors(ids, reason)?;
            let listed = ids
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            Ok((
                format!(
                    "errors dismiss: {} dismissed ({listed}), kept in sync_error with the reason",
                    count(ids.len() as u64, "error")
                ),
                json!({ "dismissed": ids, "reason": reason }),
            ))
        }
    }
}

/// The ticket number of an error, or what stands for a ticket without a readable one.
fn error_ticket(entry: &SyncErrorEntry) -> &str {
    entry.ticket_number.as_deref().unwrap_or("unreadable")
}

/// A line of `errors list`, cut to [`WIDTH`].
fn error_row(id: &str, ticket: &str, first_seen: &str, reason: &str) -> String {
    fit(format!("{id:>6}  {ticket:<33}  {first_seen:19}  {reason}"))
}

/// A stored time as the tables show it: to the second, without the `T`.
fn shown_time(at: Option<&str>) -> String {
    at.map_or("?".to_owned(), |t| {
        t.get(..19).unwrap_or(t).replace('T', " ")
    })
}

/// `errors show`: every field, then the payload line by line, each escaped.
fn describe_error(detail: &SyncErrorDetail) -> String {
    let entry = &detail.entry;
    let state = match (&detail.resolved_at, &detail.resolution) {
        (None, _) => "unresolved".to_owned(),
        (Some(at), Some(why)) => format!("dismissed at {at}: {}", escape(why)),
        (Some(at), None) => format!("resolved at {at}"),
    };
    let mut lines = vec![
        format!("sync error {}: {state}", entry.id),
        format!("ticket: {}", escape(error_ticket(entry))),
        format!(
            "first seen: {}",
            entry.first_seen_at.as_deref().unwrap_or("unknown")
        ),
        format!("reason: {}", escape(&entry.reason)),
        "payload:".to_owned(),
    ];
    lines.extend(detail.payload.lines().map(|line| escape(line).into_owned()));
    lines.join("\n")
}
